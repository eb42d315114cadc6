#include "webhooks/webhook_service.hpp"

#include <chrono>
#include <string_view>
#include <vector>

#include "core/log.hpp"
#include "core/session_update.hpp"
#include "core/webhook_auth.hpp"
#include "core/webhook_event.hpp"
#include "net/http_server.hpp"

namespace dialer {
namespace {

ip_allowlist parse_networks(const std::vector<config::located_text>& entries,
                            const std::string& file, std::string_view what) {
  std::vector<ip_network> networks;
  for (const auto& e : entries) {
    auto n = parse_ip_network(e.text);
    if (!n) {
      throw config::config_error(file, e.line, e.col,
                                 std::string(what) + ": \"" + e.text + "\" is not a network");
    }
    networks.push_back(*n);
  }
  return ip_allowlist(std::move(networks));
}

std::vector<std::string> reveal_all(const std::vector<config::secret>& secrets) {
  std::vector<std::string> out;
  for (const auto& s : secrets) {
    out.push_back(s.reveal());
  }
  return out;
}

net::response json_answer(int status, std::string_view result) {
  net::response r;
  r.status = status;
  r.body = "{\"result\":\"";
  r.body.append(result);
  r.body.append("\"}");
  return r;
}

}  // namespace

struct webhook_service::impl {
  impl(boost::asio::io_context& io, const config::webhook_settings& s, const std::string& file,
       state_store& st, const time_source& c, std::function<void(const update_outcome&)> applied)
      : settings(s),
        allow(parse_networks(s.allow_from, file, "webhooks.allow_from")),
        proxies(parse_networks(s.trusted_proxies, file, "webhooks.trusted_proxies")),
        shared_secrets(reveal_all(s.shared_secrets)),
        signing_secrets(reveal_all(s.signing_secrets)),
        store(st),
        clock(c),
        on_applied(std::move(applied)),
        alive(std::make_shared<bool>(true)) {
    net::server_limits limits;
    limits.max_header_bytes = s.max_header_bytes;
    limits.max_body_bytes = s.max_body_bytes;
    limits.max_connections = static_cast<std::size_t>(s.max_connections);
    limits.header_timeout = s.header_timeout;
    limits.body_timeout = s.body_timeout;
    limits.idle_timeout = s.idle_timeout;
    server = std::make_unique<net::http_server>(
        io, s.address, s.port, limits, [this](const net::request& req, net::responder respond) {
          handle(req, std::move(respond));
        });
  }
  ~impl() { *alive = false; }

  void count(std::string_view event, std::string_view result) {
    std::string key(event.empty() ? "unknown" : event);
    key += '/';
    key += result;
    ++by_event_and_result[key];
  }

  void refuse(net::responder& respond, int status, std::string_view result) {
    count("", result);
    respond(json_answer(status, result));
  }

  void handle(const net::request& req, net::responder respond) {
    std::string_view path = req.target.substr(0, req.target.find('?'));
    if (path != settings.path) {
      return refuse(respond, 404, "not_found");
    }
    if (req.method != "POST") {
      net::response r = json_answer(405, "method_not_allowed");
      r.headers.emplace_back("Allow", "POST");
      count("", "method_not_allowed");
      return respond(std::move(r));
    }
    const auto peer = parse_ip_address(req.peer_address);
    if (!peer) {
      return refuse(respond, 400, "bad_request");
    }
    ip_address client = *peer;
    if (!proxies.empty() && proxies.contains(*peer)) {
      // Several X-Forwarded-For fields are one list, in order (RFC 7230 3.2.2).
      std::string xff;
      for (const auto& [name, value] : req.headers) {
        if (name.size() == 15 && strcasecmp_equal(name, "X-Forwarded-For")) {
          if (!xff.empty()) {
            xff += ',';
          }
          xff.append(value);
        }
      }
      auto c = effective_client(*peer, xff, proxies);
      if (!c) {
        return refuse(respond, 400, "bad_request");
      }
      client = c.value();
    }
    if (!allow.empty() && !allow.contains(client)) {
      return refuse(respond, 403, "forbidden");
    }
    if (!shared_secrets.empty() &&
        check_shared_secret(req.header(settings.secret_header), shared_secrets)) {
      return refuse(respond, 401, "unauthorized");
    }
    if (!signing_secrets.empty()) {
      const auto now_s =
          std::chrono::duration_cast<std::chrono::seconds>(clock.system_now().time_since_epoch())
              .count();
      const auto tolerance_s =
          std::chrono::duration_cast<std::chrono::seconds>(settings.signature_tolerance).count();
      if (const auto failure = check_signature(req.header(settings.signature_header), req.body,
                                               signing_secrets, now_s, tolerance_s)) {
        return refuse(respond, 401,
                      *failure == auth_failure::stale ? "stale_signature" : "unauthorized");
      }
    }
    auto parsed = parse_session_event(req.body);
    if (!parsed) {
      count("", "bad_request");
      net::response r;
      r.status = 400;
      r.body = "{\"result\":\"bad_request\",\"reason\":\"" +
               parsed.error().substr(0, parsed.error().find(':')) + "\"}";
      return respond(std::move(r));
    }
    session_event event = std::move(parsed).value();
    if (event.kind == session_event_kind::other) {
      // Not ours to act on; acknowledged so the sender does not retry it forever.
      count("other", "ignored");
      return respond(json_answer(202, "ignored"));
    }
    const std::string event_name =
        event.kind == session_event_kind::ended ? "session.ended" : "session.created";
    auto pending = std::make_shared<net::responder>(std::move(respond));
    store.apply_session(
        to_session_update(std::move(event), std::string(req.body), "webhook"),
        [this, pending, event_name, alive = alive](bool ok, update_outcome o) {
          if (!*alive) {
            return;
          }
          if (!ok) {
            count(event_name, "store_failed");
            (*pending)(json_answer(503, "store_failed"));
            return;
          }
          count(event_name, to_string(o.verdict));
          if (o.verdict == update_verdict::orphan && orphans_logged < 20) {
            ++orphans_logged;
            DIALER_LOG_WARN("webhook %s for session %s: %s; kept in the events table for review",
                            event_name.c_str(), o.session_id.c_str(), o.reason.c_str());
          }
          (*pending)(json_answer(200, to_string(o.verdict)));
          if (on_applied) {
            on_applied(o);
          }
        });
  }

  static bool strcasecmp_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(a[i])) !=
          std::tolower(static_cast<unsigned char>(b[i]))) {
        return false;
      }
    }
    return true;
  }

  const config::webhook_settings& settings;
  ip_allowlist allow;
  ip_allowlist proxies;
  std::vector<std::string> shared_secrets;
  std::vector<std::string> signing_secrets;
  state_store& store;
  const time_source& clock;
  std::function<void(const update_outcome&)> on_applied;
  std::map<std::string, std::uint64_t> by_event_and_result;
  int orphans_logged = 0;
  std::shared_ptr<bool> alive;
  std::unique_ptr<net::http_server> server;
};

webhook_service::webhook_service(boost::asio::io_context& io,
                                 const config::webhook_settings& settings,
                                 const std::string& config_file, state_store& store,
                                 const time_source& clock,
                                 std::function<void(const update_outcome&)> on_applied)
    : impl_(
          std::make_unique<impl>(io, settings, config_file, store, clock, std::move(on_applied))) {}

webhook_service::~webhook_service() = default;

std::uint16_t webhook_service::port() const {
  return impl_->server->port();
}

void webhook_service::stop() {
  impl_->server->stop();
}

webhook_stats webhook_service::stats() const {
  webhook_stats s;
  s.by_event_and_result = impl_->by_event_and_result;
  const net::server_stats n = impl_->server->stats();
  s.refused_408 = n.status_408;
  s.refused_413 = n.status_413;
  s.refused_431 = n.status_431;
  s.refused_busy = n.refused_busy;
  s.open_connections = n.open;
  return s;
}

}  // namespace dialer
