// Pool logic: which connection carries which request, when to open and close connections.
// Everything runs on the pool's single io_context thread, so there are no strands and no locks.
// The state machine is described in core/https_pool.md; transition() is the only place that moves
// a connection between the per-state lists, so the gauges are list sizes.
#include "core/https_pool.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cassert>
#include <cstdio>
#include <deque>
#include <list>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "core/https_connection.hpp"

namespace dialer {

namespace net = boost::asio;
using error_code = boost::system::error_code;

namespace {

enum class conn_state : std::uint8_t { connecting, idle, busy, closing, closed };
constexpr std::size_t state_count = 5;

constexpr std::size_t index(conn_state s) {
  return static_cast<std::size_t>(s);
}

const char* name(conn_state s) {
  switch (s) {
    case conn_state::connecting:
      return "connecting";
    case conn_state::idle:
      return "idle";
    case conn_state::busy:
      return "busy";
    case conn_state::closing:
      return "closing";
    case conn_state::closed:
      return "closed";
  }
  return "?";
}

// The transition table of core/https_pool.md.
bool allowed(conn_state from, conn_state to) {
  switch (from) {
    case conn_state::connecting:
      return to == conn_state::idle || to == conn_state::closed;
    case conn_state::idle:
      return to == conn_state::busy || to == conn_state::closing || to == conn_state::closed;
    case conn_state::busy:
      return to == conn_state::idle || to == conn_state::closing || to == conn_state::closed;
    case conn_state::closing:
      return to == conn_state::closed;
    case conn_state::closed:
      return false;
  }
  return false;
}

constexpr milliseconds first_backoff{100};
constexpr milliseconds max_backoff{5000};

struct pooled_connection;
using connection_ptr = std::shared_ptr<pooled_connection>;
using connection_list = std::list<connection_ptr>;

struct pooled_connection {
  pooled_connection(net::io_context& io, std::shared_ptr<detail::https_connection> c)
      : conn(std::move(c)), idle_timer(io) {}

  std::shared_ptr<detail::https_connection> conn;
  conn_state state = conn_state::connecting;
  connection_list::iterator position;  // into the list of `state`; splice keeps it valid
  net::steady_timer idle_timer;
  std::uint64_t idle_generation = 0;  // a timer handler of an earlier idle spell must not fire
  std::uint64_t exchanges = 0;
};

struct pending_send {
  http_request request;
  http_connection_pool::response_handler done;
  bool retried = false;
  bool needs_fresh = false;  // a retry: only a connection that has carried nothing may take it
};

struct warm_up_batch {
  std::vector<const pooled_connection*> waiting_for;  // identity only; all are connecting
  std::function<void(std::size_t)> done;
};

bool is_ip_literal(const std::string& host) {
  error_code ec;
  (void)net::ip::make_address(host, ec);
  return !ec;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    return lower(x) == lower(y);
  });
}

bool pool_owned_header(std::string_view name) {
  return iequals(name, "host") || iequals(name, "content-length") || iequals(name, "connection") ||
         iequals(name, "transfer-encoding");
}

// CR and LF would let a value start a header or a second request of its own.
void append_field(std::string& out, std::string_view text) {
  for (char c : text) {
    if (c != '\r' && c != '\n' && c != '\0') {
      out += c;
    }
  }
}

http_response error_response(transport_error error) {
  http_response response;
  response.error = error;
  return response;
}

}  // namespace

class https_pool::core : public std::enable_shared_from_this<core> {
 public:
  core(net::io_context& io, https_pool_options options)
      : io_(io),
        options_(std::move(options)),
        tls_(detail::make_tls_client_context(options_.ca_file)),
        backoff_timer_(io) {
    if (options_.host.empty()) {
      throw std::runtime_error("https pool: host is empty");
    }
    if (options_.max_connections == 0) {
      throw std::runtime_error("https pool: max_connections must be at least 1");
    }
    auto endpoint = std::make_shared<detail::https_endpoint>();
    endpoint->host = options_.host;
    endpoint->port = options_.port;
    endpoint->host_is_ip = is_ip_literal(options_.host);
    const bool ipv6 = options_.host.find(':') != std::string::npos;
    const std::string bracketed = ipv6 ? "[" + options_.host + "]" : options_.host;
    endpoint->authority = bracketed + ":" + options_.port;
    endpoint->connect_timeout = options_.connect_timeout;
    endpoint->request_timeout = options_.request_timeout;
    endpoint->max_response_bytes = options_.max_response_bytes;
    endpoint_ = std::move(endpoint);
    host_header_ = options_.port == "443" ? bracketed : endpoint_->authority;
  }

  // Called by ~https_pool: handlers that are still queued find the weak_ptr expired.
  void destroy() {
    for (conn_state s : {conn_state::connecting, conn_state::idle, conn_state::busy,
                         conn_state::closing, conn_state::closed}) {
      for (auto& c : lists_[index(s)]) {
        c->conn->abort();
        c->idle_timer.cancel();
      }
      lists_[index(s)].clear();
    }
    sends_.clear();
    waiters_.clear();
    warm_ups_.clear();
    backoff_timer_.cancel();
  }

  std::size_t ready_count() const { return list(conn_state::idle).size(); }

  void when_ready(std::function<void()> cb) {
    if (shutting_down_) {
      return;
    }
    if (live_idle(false)) {
      net::post(io_, std::move(cb));
      return;
    }
    waiters_.push_back(std::move(cb));
    maybe_open();
  }

  bool try_send_now(http_request req, response_handler done) {
    if (shutting_down_) {
      return false;
    }
    connection_ptr c = live_idle(false);
    if (!c) {
      return false;
    }
    start_exchange(c, pending_send{std::move(req), std::move(done)});
    return true;
  }

  void send(http_request req, response_handler done) {
    if (shutting_down_) {
      respond(std::move(done), error_response(transport_error::shutdown));
      return;
    }
    sends_.push_back(pending_send{std::move(req), std::move(done)});
    dispatch();
  }

  void warm_up(std::size_t n, std::function<void(std::size_t)> done) {
    warm_up_batch batch{{}, std::move(done)};
    if (!shutting_down_) {
      const std::size_t target = std::min(n, options_.max_connections);
      std::size_t ready_or_coming = list(conn_state::idle).size();
      for (const auto& c : list(conn_state::connecting)) {
        batch.waiting_for.push_back(c.get());
        ++ready_or_coming;
      }
      while (ready_or_coming < target && total() < options_.max_connections) {
        batch.waiting_for.push_back(open_connection().get());
        ++ready_or_coming;
      }
    }
    if (batch.waiting_for.empty()) {
      post_warm_up_done(std::move(batch.done));
      return;
    }
    warm_ups_.push_back(std::move(batch));
  }

  void shutdown() {
    if (shutting_down_) {
      return;
    }
    shutting_down_ = true;
    backoff_timer_.cancel();
    backoff_pending_ = false;
    waiters_.clear();
    auto sends = std::move(sends_);
    sends_.clear();
    for (auto& s : sends) {
      respond(std::move(s.done), error_response(transport_error::shutdown));
    }
    while (!list(conn_state::connecting).empty()) {
      connection_ptr c = list(conn_state::connecting).front();
      c->conn->abort();
      transition(c, conn_state::closed);
    }
    while (!list(conn_state::idle).empty()) {
      close_gracefully(list(conn_state::idle).front());
    }
  }

  https_pool_stats stats() const {
    https_pool_stats out = stats_;
    out.connecting = list(conn_state::connecting).size();
    out.idle = list(conn_state::idle).size();
    out.busy = list(conn_state::busy).size();
    out.closing = list(conn_state::closing).size();
    return out;
  }

  void skip_stale_check(bool skip) { skip_stale_check_ = skip; }

 private:
  connection_list& list(conn_state s) { return lists_[index(s)]; }
  const connection_list& list(conn_state s) const { return lists_[index(s)]; }

  std::size_t total() const {
    return list(conn_state::connecting).size() + list(conn_state::idle).size() +
           list(conn_state::busy).size();
  }

  void transition(const connection_ptr& c, conn_state to) {
    const conn_state from = c->state;
    if (!allowed(from, to)) {
      std::fprintf(stderr, "https pool: bug: connection moved from %s to %s\n", name(from),
                   name(to));
      assert(false && "illegal https pool connection transition");
      return;
    }
    if (from == conn_state::idle) {
      ++c->idle_generation;
      c->idle_timer.cancel();
    }
    // Most recently idle first: reusing the warmest connection lets the others age out.
    list(to).splice(list(to).begin(), list(from), c->position);
    c->state = to;
    if (from == conn_state::connecting) {
      finish_warm_ups(c.get());
    }
    if (to == conn_state::idle) {
      arm_idle_timer(c);
    }
    if (to == conn_state::closed) {
      schedule_reap();
    }
  }

  // Closed connections are released on the next loop turn, never inside their own handler.
  void schedule_reap() {
    if (reap_posted_) {
      return;
    }
    reap_posted_ = true;
    net::post(io_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) {
        self->reap_posted_ = false;
        self->list(conn_state::closed).clear();
      }
    });
  }

  connection_ptr open_connection() {
    auto c = std::make_shared<pooled_connection>(
        io_, detail::https_connection::create(io_, tls_, endpoint_));
    auto& connecting = list(conn_state::connecting);
    connecting.push_front(c);
    c->position = connecting.begin();
    c->conn->async_open([weak = weak_from_this(), c](transport_error error, std::string text) {
      if (auto self = weak.lock()) {
        self->on_open(c, error, std::move(text));
      }
    });
    return c;
  }

  void on_open(const connection_ptr& c, transport_error error, std::string text) {
    if (c->state != conn_state::connecting) {
      return;
    }
    if (error == transport_error::none) {
      ++stats_.opened;
      if (failure_streak_ > 0) {
        std::fprintf(stderr, "https pool: connections to %s recovered after %llu failed attempts\n",
                     endpoint_->authority.c_str(),
                     static_cast<unsigned long long>(failure_streak_));
        failure_streak_ = 0;
        backoff_ = first_backoff;
        backoff_timer_.cancel();
        backoff_pending_ = false;
      }
      transition(c, conn_state::idle);
    } else {
      count_failure(error, text);
      transition(c, conn_state::closed);
      if (++failure_streak_ == 1) {
        std::fprintf(stderr, "https pool: %s; retrying with backoff\n", text.c_str());
      }
      arm_backoff();
    }
    dispatch();
  }

  void arm_backoff() {
    if (shutting_down_ || backoff_pending_ || demand() == 0) {
      return;
    }
    backoff_pending_ = true;
    backoff_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, max_backoff);
    backoff_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) {
        return;
      }
      self->backoff_pending_ = false;
      self->maybe_open();
    });
  }

  std::size_t demand() const { return sends_.size() + waiters_.size(); }

  // One connection attempt per unserved waiter, up to the bound; during a failure streak a
  // single probe at a time, paced by the backoff timer.
  void maybe_open() {
    if (shutting_down_ || backoff_pending_) {
      return;
    }
    auto& connecting = list(conn_state::connecting);
    while (connecting.size() < demand() && total() < options_.max_connections) {
      if (failure_streak_ > 0 && !connecting.empty()) {
        return;
      }
      open_connection();
    }
    // A retry waits for a fresh connection; a pool full of idle reused ones must make room.
    const bool fresh_wanted = std::any_of(sends_.begin(), sends_.end(),
                                          [](const pending_send& s) { return s.needs_fresh; });
    if (fresh_wanted && connecting.empty() && !list(conn_state::idle).empty() &&
        total() >= options_.max_connections) {
      close_gracefully(list(conn_state::idle).back());
      open_connection();
    }
  }

  // An idle connection that the server has not closed meanwhile, discarding those it has.
  connection_ptr live_idle(bool fresh_only) {
    auto& idle = list(conn_state::idle);
    for (auto it = idle.begin(); it != idle.end();) {
      connection_ptr c = *it;
      ++it;  // before transition() moves *it to another list
      if (fresh_only && c->exchanges > 0) {
        continue;
      }
      if (!skip_stale_check_ && c->conn->peer_gone()) {
        ++stats_.stale_discarded;
        c->conn->abort();
        transition(c, conn_state::closed);
        continue;
      }
      return c;
    }
    return nullptr;
  }

  // Queued sends first, in order (a retry waiting for a fresh connection lets later requests
  // pass); when_ready waiters only if a connection is still idle after that.
  void dispatch() {
    if (shutting_down_) {
      return;
    }
    for (auto it = sends_.begin(); it != sends_.end() && !list(conn_state::idle).empty();) {
      connection_ptr c = live_idle(it->needs_fresh);
      if (!c) {
        if (it->needs_fresh) {
          ++it;
          continue;
        }
        break;
      }
      pending_send s = std::move(*it);
      it = sends_.erase(it);
      start_exchange(c, std::move(s));
    }
    if (!waiters_.empty() && !list(conn_state::idle).empty()) {
      auto waiters = std::move(waiters_);
      waiters_.clear();
      for (auto& cb : waiters) {
        net::post(io_, std::move(cb));
      }
    }
    maybe_open();
  }

  void start_exchange(const connection_ptr& c, pending_send s) {
    transition(c, conn_state::busy);
    const bool reused = c->exchanges++ > 0;
    if (reused) {
      ++stats_.reused;
    }
    const bool head = s.request.method == "HEAD";
    std::string wire = serialise(s.request);
    c->conn->async_exchange(
        std::move(wire), head,
        [weak = weak_from_this(), c, s = std::move(s), reused](detail::exchange_result r) mutable {
          if (auto self = weak.lock()) {
            self->on_exchange(c, std::move(s), reused, std::move(r));
          }
        });
  }

  void on_exchange(const connection_ptr& c, pending_send s, bool reused,
                   detail::exchange_result r) {
    if (c->state != conn_state::busy) {
      return;
    }
    if (r.error == transport_error::none) {
      http_response response;
      response.status = r.status;
      response.body = std::move(r.body);
      response.retry_after = std::move(r.retry_after);
      response.latency = r.latency;
      response.reused_connection = reused;
      respond(std::move(s.done), std::move(response));
      if (!r.keep_alive) {
        ++stats_.closed_by_peer;
        c->conn->abort();
        transition(c, conn_state::closed);
      } else if (shutting_down_) {
        close_gracefully(c);
      } else {
        transition(c, conn_state::idle);
      }
      dispatch();
      return;
    }
    count_failure(r.error, r.error_text);
    transition(c, conn_state::closed);
    const bool before_send = r.error == transport_error::reset_before_send ||
                             r.error == transport_error::timeout_before_send;
    // Only a request that certainly did not reach the server goes again, and only once: a
    // reused connection may have died unseen between the stale check and the write.
    if (before_send && reused && !s.retried && !shutting_down_) {
      ++stats_.retried;
      s.retried = true;
      s.needs_fresh = true;
      sends_.push_front(std::move(s));
    } else {
      http_response response = error_response(r.error);
      response.latency = r.latency;
      response.reused_connection = reused;
      respond(std::move(s.done), std::move(response));
    }
    dispatch();
  }

  void close_gracefully(const connection_ptr& c) {
    transition(c, conn_state::closing);
    c->conn->async_close([weak = weak_from_this(), c] {
      auto self = weak.lock();
      if (self && c->state == conn_state::closing) {
        self->transition(c, conn_state::closed);
      }
    });
  }

  void arm_idle_timer(const connection_ptr& c) {
    c->idle_timer.expires_after(options_.idle_timeout);
    c->idle_timer.async_wait(
        [weak = weak_from_this(), c, generation = c->idle_generation](const error_code& ec) {
          auto self = weak.lock();
          if (ec || !self || c->state != conn_state::idle || c->idle_generation != generation) {
            return;
          }
          ++self->stats_.closed_idle;
          self->close_gracefully(c);
          self->maybe_open();
        });
  }

  void finish_warm_ups(const pooled_connection* c) {
    for (auto it = warm_ups_.begin(); it != warm_ups_.end();) {
      auto& waiting = it->waiting_for;
      waiting.erase(std::remove(waiting.begin(), waiting.end(), c), waiting.end());
      if (waiting.empty()) {
        post_warm_up_done(std::move(it->done));
        it = warm_ups_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void post_warm_up_done(std::function<void(std::size_t)> done) {
    if (done) {
      net::post(io_, [done = std::move(done), ready = ready_count()] { done(ready); });
    }
  }

  void respond(response_handler done, http_response response) {
    if (done) {
      net::post(io_, [done = std::move(done), response = std::move(response)]() mutable {
        done(std::move(response));
      });
    }
  }

  void count_failure(transport_error error, const std::string& text) {
    ++stats_.failures[std::string(to_string(error))];
    stats_.last_error = text;
  }

  std::string serialise(const http_request& req) const {
    std::string out;
    out.reserve(128 + req.target.size() + req.body.size() + 64 * req.headers.size());
    append_field(out, req.method);
    out += ' ';
    append_field(out, req.target.empty() ? std::string_view("/") : std::string_view(req.target));
    out += " HTTP/1.1\r\nHost: ";
    out += host_header_;
    out += "\r\n";
    for (const auto& h : req.headers) {
      if (pool_owned_header(h.name)) {
        continue;
      }
      append_field(out, h.name);
      out += ": ";
      append_field(out, h.value);
      out += "\r\n";
    }
    out += "Content-Length: ";
    out += std::to_string(req.body.size());
    out += "\r\n\r\n";
    out += req.body;
    return out;
  }

  net::io_context& io_;
  const https_pool_options options_;
  std::shared_ptr<detail::tls_client_context> tls_;
  std::shared_ptr<const detail::https_endpoint> endpoint_;
  std::string host_header_;

  std::array<connection_list, state_count> lists_;
  std::deque<pending_send> sends_;
  std::vector<std::function<void()>> waiters_;
  std::list<warm_up_batch> warm_ups_;

  net::steady_timer backoff_timer_;
  milliseconds backoff_ = first_backoff;
  bool backoff_pending_ = false;
  std::uint64_t failure_streak_ = 0;

  bool shutting_down_ = false;
  bool reap_posted_ = false;
  bool skip_stale_check_ = false;
  https_pool_stats stats_;
};

https_pool::https_pool(net::io_context& io, https_pool_options options)
    : core_(std::make_shared<core>(io, std::move(options))) {}

https_pool::~https_pool() {
  core_->destroy();
}

std::size_t https_pool::ready_count() const {
  return core_->ready_count();
}

void https_pool::when_ready(std::function<void()> cb) {
  core_->when_ready(std::move(cb));
}

bool https_pool::try_send_now(http_request req, response_handler done) {
  return core_->try_send_now(std::move(req), std::move(done));
}

void https_pool::send(http_request req, response_handler done) {
  core_->send(std::move(req), std::move(done));
}

void https_pool::warm_up(std::size_t n, std::function<void(std::size_t)> done) {
  core_->warm_up(n, std::move(done));
}

void https_pool::shutdown() {
  core_->shutdown();
}

https_pool_stats https_pool::stats() const {
  return core_->stats();
}

void https_pool::skip_stale_check_for_test(bool skip) {
  core_->skip_stale_check(skip);
}

std::unique_ptr<https_pool> make_https_pool(net::io_context& io, https_pool_options options) {
  return std::make_unique<https_pool>(io, std::move(options));
}

}  // namespace dialer
