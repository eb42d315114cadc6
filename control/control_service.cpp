#include "control/control_service.hpp"

#include <simdjson.h>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <vector>

#include "core/agentix_client.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/prometheus.hpp"
#include "core/webhook_auth.hpp"
#include "net/http_server.hpp"

namespace dialer {
namespace {

net::response json(int status, std::string body) {
  net::response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

net::response error(int status, std::string_view text) {
  std::string body = "{\"error\":";
  append_json_string(body, text);
  body += '}';
  return json(status, std::move(body));
}

net::response text(int status, std::string body) {
  net::response r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  out += buf;
}

// "/api/v1/campaigns/spring/pause" → {"campaigns", "spring", "pause"}.
std::vector<std::string_view> api_path(std::string_view target) {
  std::vector<std::string_view> parts;
  target = target.substr(0, target.find('?'));
  constexpr std::string_view prefix = "/api/v1/";
  if (!target.starts_with(prefix)) {
    return parts;
  }
  target.remove_prefix(prefix.size());
  while (!target.empty()) {
    const auto slash = target.find('/');
    parts.push_back(target.substr(0, slash));
    if (slash == std::string_view::npos) {
      break;
    }
    target.remove_prefix(slash + 1);
  }
  return parts;
}

// A JSON object body's string or number field; nullopt when absent or of another type.
struct body_fields {
  std::optional<std::string> text;
  std::optional<std::int64_t> integer;
};

std::optional<std::string> read_string(simdjson::ondemand::object& obj, std::string_view key) {
  std::string_view v;
  if (obj.find_field_unordered(key).get_string().get(v) == simdjson::SUCCESS) {
    return std::string(v);
  }
  return std::nullopt;
}

std::string_view campaign_state_name(const campaign_progress& p) {
  if (p.cancelled) {
    return "cancelled";
  }
  if (p.paused) {
    return "paused";
  }
  return p.complete ? "complete" : "running";
}

}  // namespace

struct control_service::impl {
  impl(boost::asio::io_context& io_ctx, const config::control_settings& s, control_context c)
      : io(io_ctx), ctx(std::move(c)), alive(std::make_shared<bool>(true)) {
    if (!s.token.empty()) {
      tokens.push_back(s.token.reveal());
    }
    net::server_limits limits;
    limits.max_body_bytes = 64 * 1024;
    limits.max_connections = 64;
    server = std::make_unique<net::http_server>(
        io, s.address, s.port, limits, [this](const net::request& req, net::responder respond) {
          handle(req, std::move(respond));
        });
  }
  ~impl() { *alive = false; }

  void handle(const net::request& req, net::responder respond) {
    const std::string_view path = req.target.substr(0, req.target.find('?'));
    if (path == "/healthz") {
      return respond(text(200, "ok\n"));
    }
    if (path == "/readyz") {
      if (ctx.draining && ctx.draining()) {
        return respond(text(503, "draining\n"));
      }
      return respond(ctx.ready && ctx.ready() ? text(200, "ready\n") : text(503, "starting\n"));
    }
    if (!tokens.empty()) {
      std::string_view auth = req.header("Authorization");
      constexpr std::string_view bearer = "Bearer ";
      if (!auth.starts_with(bearer) ||
          check_shared_secret(auth.substr(bearer.size()), tokens).has_value()) {
        net::response r = error(401, "a bearer token is required (control.token_file)");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return respond(std::move(r));
      }
    }
    if (path == "/metrics") {
      if (req.method != "GET") {
        return respond(error(405, "use GET"));
      }
      auto shared = std::make_shared<net::responder>(std::move(respond));
      return with_fresh_summaries([this, shared] {
        net::response r;
        r.content_type = std::string(prom::content_type);
        r.body = render_metrics(ctx, summaries);
        (*shared)(std::move(r));
      });
    }
    const auto parts = api_path(req.target);
    if (parts.empty()) {
      return respond(error(404, "no such path; see docs/operations.md"));
    }
    if (parts.size() == 1 && parts[0] == "status" && req.method == "GET") {
      auto shared = std::make_shared<net::responder>(std::move(respond));
      return with_fresh_summaries([this, shared] { (*shared)(json(200, status_json())); });
    }
    if (parts.size() == 1 && parts[0] == "phone-numbers" && req.method == "GET") {
      return phone_numbers(std::move(respond));
    }
    if (parts.size() == 3 && (parts[0] == "campaigns" || parts[0] == "trunks")) {
      if (req.method != "POST") {
        return respond(error(405, "use POST"));
      }
      if (ctx.draining && ctx.draining()) {
        return respond(error(503, "dialerd is draining (SIGTERM)"));
      }
      return command(std::string(parts[0]), std::string(parts[1]), parts[2], req.body,
                     std::move(respond));
    }
    respond(error(404, "no such path; see docs/operations.md"));
  }

  static net::response answer(control_status s, std::string ok_body, std::string_view what) {
    switch (s) {
      case control_status::ok:
        return json(200, std::move(ok_body));
      case control_status::unknown:
        return error(404, std::string("unknown ") + std::string(what));
      case control_status::conflict:
        return error(409, "not possible: the campaign is cancelled");
      case control_status::invalid:
        return error(400, "value out of range");
    }
    return error(500, "unexpected");
  }

  void command(const std::string& kind, const std::string& name, std::string_view verb,
               std::string_view body, net::responder respond) {
    dial_engine& engine = *ctx.engine;
    std::string quoted;
    append_json_string(quoted, name);
    // Optional JSON object body.
    simdjson::padded_string padded(body.empty() ? std::string_view("{}") : body);
    simdjson::ondemand::document doc;
    simdjson::ondemand::object obj;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
        doc.get_object().get(obj) != simdjson::SUCCESS) {
      return respond(error(400, "the body must be a JSON object"));
    }
    const auto rate_and_burst = [&](int default_burst, config::rate& r, int& burst) {
      const auto text = read_string(obj, "calls_per_second");
      if (!text) {
        return std::string("calls_per_second is required, like \"10/s\"");
      }
      const auto parsed = config::parse_rate(*text);
      if (!parsed) {
        return "calls_per_second: expected a rate like 10/s or 600/min, got \"" + *text + "\"";
      }
      r = *parsed;
      std::int64_t b = default_burst;
      if (auto f = obj.find_field_unordered("burst"); f.error() == simdjson::SUCCESS) {
        if (f.get_int64().get(b) != simdjson::SUCCESS || b < 1 || b > 100000) {
          return std::string("burst: expected an integer 1..100000");
        }
      }
      burst = static_cast<int>(b);
      return std::string();
    };
    if (kind == "trunks") {
      if (verb == "rate") {
        config::rate r;
        int burst = 1;
        const auto trunks = engine.trunks();
        int current_burst = 1;
        (void)trunks;
        if (auto problem = rate_and_burst(current_burst, r, burst); !problem.empty()) {
          return respond(error(400, problem));
        }
        return respond(answer(engine.set_trunk_rate(name, r, burst),
                              "{\"trunk\":" + quoted + ",\"calls_per_second\":" + format_rate(r) +
                                  ",\"burst\":" + std::to_string(burst) + "}",
                              "trunk " + name));
      }
      if (verb == "concurrency") {
        std::int64_t n = 0;
        if (obj.find_field_unordered("max_concurrent_calls").get_int64().get(n) !=
            simdjson::SUCCESS) {
          return respond(error(400, "max_concurrent_calls: expected an integer"));
        }
        if (n < 1 || n > 100000) {
          return respond(error(400, "max_concurrent_calls: expected 1..100000 (above reserved)"));
        }
        return respond(
            answer(engine.set_trunk_capacity(name, static_cast<int>(n)),
                   "{\"trunk\":" + quoted + ",\"max_concurrent_calls\":" + std::to_string(n) + "}",
                   "trunk " + name));
      }
      return respond(error(404, "unknown trunk command; use rate or concurrency"));
    }
    if (verb == "pause") {
      return respond(answer(engine.pause_campaign(name),
                            "{\"campaign\":" + quoted + ",\"state\":\"paused\"}",
                            "campaign " + name));
    }
    if (verb == "resume") {
      return respond(answer(engine.resume_campaign(name),
                            "{\"campaign\":" + quoted + ",\"state\":\"running\"}",
                            "campaign " + name));
    }
    if (verb == "rate") {
      config::rate r;
      int burst = 1;
      if (auto problem = rate_and_burst(1, r, burst); !problem.empty()) {
        return respond(error(400, problem));
      }
      return respond(answer(engine.set_campaign_rate(name, r, burst),
                            "{\"campaign\":" + quoted + ",\"calls_per_second\":" + format_rate(r) +
                                ",\"burst\":" + std::to_string(burst) + "}",
                            "campaign " + name));
    }
    auto shared = std::make_shared<net::responder>(std::move(respond));
    const auto alive_now = alive;
    if (verb == "cancel") {
      const control_status s =
          engine.cancel_campaign(name, [shared, quoted, alive_now](std::int64_t n) {
            if (*alive_now) {
              (*shared)(json(200, "{\"campaign\":" + quoted +
                                      ",\"state\":\"cancelled\",\"cancelled_tasks\":" +
                                      std::to_string(n) + "}"));
            }
          });
      if (s != control_status::ok) {
        (*shared)(answer(s, "", "campaign " + name));
      }
      return;
    }
    if (verb == "retry") {
      const auto which = read_string(obj, "state");
      if (!which || (*which != "unknown" && *which != "failed")) {
        return (*shared)(error(400, "state: expected \"unknown\" or \"failed\""));
      }
      const control_status s =
          engine.retry_tasks(name, *which == "unknown" ? task_state::unknown : task_state::failed,
                             [shared, alive_now](std::int64_t n) {
                               if (*alive_now) {
                                 (*shared)(json(200, "{\"requeued\":" + std::to_string(n) + "}"));
                               }
                             });
      if (s != control_status::ok) {
        (*shared)(answer(s, "", "campaign " + name));
      }
      return;
    }
    if (verb == "csv") {
      const auto path = read_string(obj, "path");
      if (!path || path->empty() || (*path)[0] != '/') {
        return (*shared)(error(400, "path: expected an absolute path to a CSV file"));
      }
      if (!ctx.add_csv) {
        return (*shared)(error(409, "adding a CSV is not available"));
      }
      std::string problem = ctx.add_csv(name, *path);
      if (problem == "unknown campaign") {
        return (*shared)(error(404, "unknown campaign " + name));
      }
      if (!problem.empty()) {
        return (*shared)(error(409, problem));
      }
      return (*shared)(json(202, "{\"accepted\":true}"));
    }
    (*shared)(
        error(404, "unknown campaign command; use pause, resume, cancel, rate, retry or csv"));
  }

  static std::string format_rate(const config::rate& r) {
    std::string out;
    append_number(out, static_cast<double>(r.count) * 1e9 / static_cast<double>(r.per.count()));
    return out;
  }

  void phone_numbers(net::responder respond) {
    // The pool queues a request until a connection is ready: an unreachable API would hold the
    // answer forever, so a timer answers first (the later completion is then dropped).
    struct pending {
      net::responder respond;
      boost::asio::steady_timer timer;
      bool answered = false;
    };
    auto p = std::make_shared<pending>(pending{std::move(respond), boost::asio::steady_timer(io)});
    p->timer.expires_after(ctx.api.pool.request_timeout + ctx.api.pool.connect_timeout);
    p->timer.async_wait([p](const boost::system::error_code& ec) {
      if (!ec && !p->answered) {
        p->answered = true;
        p->respond(error(504, "the Agentix API did not answer in time"));
      }
    });
    http_request req;
    req.method = "GET";
    req.target = ctx.api.base_path + "/api/v1/phone-numbers";
    req.headers.push_back({"x-api-key", ctx.api.api_key.reveal()});
    req.headers.push_back({"Accept", "application/json"});
    ctx.pool->send(std::move(req), [p, alive_now = alive](http_response r) {
      if (!*alive_now || p->answered) {
        return;
      }
      p->answered = true;
      p->timer.cancel();
      if (r.error != transport_error::none) {
        return p->respond(error(502, "the Agentix API could not be reached: " +
                                         std::string(to_string(r.error))));
      }
      if (r.status < 200 || r.status >= 300) {
        return p->respond(error(502, "the Agentix API answered HTTP " + std::to_string(r.status)));
      }
      p->respond(json(200, std::move(r.body)));
    });
  }

  // Runs `then` once every campaign's summary is at most a second old.
  void with_fresh_summaries(std::function<void()> then) {
    const auto now = std::chrono::steady_clock::now();
    if (refreshing == 0 && now - refreshed_at < std::chrono::seconds(1)) {
      return then();
    }
    waiters.push_back(std::move(then));
    if (refreshing != 0) {
      return;
    }
    const auto campaigns = ctx.engine->campaigns();
    refreshing = campaigns.size() + 1;  // +1: the loop below finishes before the last answer
    for (const auto& p : campaigns) {
      ctx.store->fetch_summary(p.id, [this, id = p.id, alive_now = alive](campaign_summary s) {
        if (*alive_now) {
          summaries[id] = std::move(s);
          refresh_done();
        }
      });
    }
    refresh_done();
  }

  void refresh_done() {
    if (--refreshing != 0) {
      return;
    }
    refreshed_at = std::chrono::steady_clock::now();
    auto ready = std::move(waiters);
    waiters.clear();
    for (auto& w : ready) {
      w();
    }
  }

  std::string status_json() {
    std::string out = "{\"version\":";
    append_json_string(out, ctx.version);
    out += ",\"ready\":";
    out += ctx.ready && ctx.ready() ? "true" : "false";
    out += ",\"draining\":";
    out += ctx.draining && ctx.draining() ? "true" : "false";
    out += ",\"state_path\":";
    append_json_string(out, ctx.state_path);
    out += ",\"campaigns\":[";
    bool first = true;
    for (const auto& p : ctx.engine->campaigns()) {
      if (!first) {
        out += ',';
      }
      first = false;
      const campaign_summary& s = summaries[p.id];
      out += "{\"id\":";
      append_json_string(out, p.id);
      out += ",\"trunk\":";
      append_json_string(out, p.trunk);
      out += ",\"state\":\"";
      out += campaign_state_name(p);
      out += "\",\"pause_reason\":";
      append_json_string(out, p.pause_reason);
      out += ",\"weight\":" + std::to_string(p.weight);
      out += ",\"rows_read\":" + std::to_string(s.rows_read);
      out += ",\"tasks\":{";
      for (std::size_t k = 0; k < task_state_count; ++k) {
        if (k != 0) {
          out += ',';
        }
        out += '"';
        out += to_string(static_cast<task_state>(k));
        out += "\":" + std::to_string(s.by_state[k]);
      }
      out += "},\"rate_target\":";
      append_number(out, p.rate_target);
      out += ",\"rate_achieved\":";
      append_number(out, p.rate_achieved);
      out += ",\"in_flight\":" + std::to_string(p.in_flight);
      out += ",\"live\":" + std::to_string(p.live);
      out += ",\"started\":" + std::to_string(p.started);
      out += ",\"ended\":" + std::to_string(p.ended);
      out += ",\"redials\":" + std::to_string(p.redials);
      out += ",\"eta_seconds\":";
      const auto pending = s.by_state[static_cast<std::size_t>(task_state::pending)];
      if (pending == 0) {
        out += '0';
      } else if (p.rate_achieved > 0) {
        out += std::to_string(static_cast<std::int64_t>(std::ceil(pending / p.rate_achieved)));
      } else {
        out += "null";
      }
      out += '}';
    }
    out += "],\"trunks\":[";
    first = true;
    for (const auto& t : ctx.engine->trunks()) {
      if (!first) {
        out += ',';
      }
      first = false;
      out += "{\"name\":";
      append_json_string(out, t.name);
      out += ",\"active\":" + std::to_string(t.active);
      out += ",\"capacity\":" + std::to_string(t.capacity);
      out += ",\"reserved\":" + std::to_string(t.reserved);
      out += ",\"rate_target\":";
      append_number(out, t.rate_target);
      out += ",\"rate_achieved\":";
      append_number(out, t.rate_achieved);
      out += ",\"held\":";
      out += t.held ? "true" : "false";
      out += ",\"holds\":" + std::to_string(t.holds);
      out += '}';
    }
    out += "]}";
    return out;
  }

  boost::asio::io_context& io;
  control_context ctx;
  std::vector<std::string> tokens;
  simdjson::ondemand::parser parser;
  std::map<std::string, campaign_summary> summaries;
  std::chrono::steady_clock::time_point refreshed_at{};
  std::size_t refreshing = 0;
  std::vector<std::function<void()>> waiters;
  std::shared_ptr<bool> alive;
  std::unique_ptr<net::http_server> server;
};

control_service::control_service(boost::asio::io_context& io,
                                 const config::control_settings& settings, control_context context)
    : impl_(std::make_unique<impl>(io, settings, std::move(context))) {}

control_service::~control_service() = default;

std::uint16_t control_service::port() const {
  return impl_->server->port();
}

void control_service::stop() {
  impl_->server->stop();
}

}  // namespace dialer
