#include "sim/server.hpp"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include "sim/json_text.hpp"
#include "sim/request.hpp"

namespace dialer::sim {

namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using error_code = boost::system::error_code;
// Concrete executor types rather than any_io_executor: no type erasure on the hot path.
using executor = net::io_context::executor_type;
using tcp = net::ip::tcp;
using socket_type = net::basic_stream_socket<tcp, executor>;
using acceptor_type = net::basic_socket_acceptor<tcp, executor>;
using timer_type = net::basic_waitable_timer<std::chrono::steady_clock,
                                             net::wait_traits<std::chrono::steady_clock>, executor>;
using request_parser = http::request_parser<http::string_body>;

constexpr std::uint32_t header_limit = 16 * 1024;
constexpr std::uint64_t body_limit = 64 * 1024;
constexpr nanoseconds handshake_timeout = seconds(10);
constexpr nanoseconds write_timeout = seconds(30);
constexpr nanoseconds shutdown_timeout = seconds(5);
constexpr nanoseconds ledger_flush_interval = milliseconds(100);

std::string_view to_std(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

// The Date header, formatted once per second per thread.
std::string_view http_date_now() {
  thread_local std::int64_t cached_second = -1;
  thread_local std::string text;
  const system_time now = std::chrono::system_clock::now();
  const std::int64_t second = std::chrono::duration_cast<seconds>(now.time_since_epoch()).count();
  if (second != cached_second) {
    text.clear();
    append_http_date(text, now);
    cached_second = second;
  }
  return text;
}

// Serialised by hand into one buffer: cheaper to compile and to run than Beast's serializer, and
// one buffer is one TLS record and one send.
void serialize(const sim_response& r, bool close, std::string& out) {
  out.clear();
  out.append("HTTP/1.1 ");
  append_int(out, r.status);
  out.push_back(' ');
  out.append(reason(r.status));
  out.append("\r\nContent-Type: application/json\r\nContent-Length: ");
  append_int(out, static_cast<std::int64_t>(r.body.size()));
  out.append("\r\nDate: ");
  out.append(http_date_now());
  if (!r.retry_after.empty()) {
    out.append("\r\nRetry-After: ");
    out.append(r.retry_after);
  }
  if (!r.allow.empty()) {
    out.append("\r\nAllow: ");
    out.append(r.allow);
  }
  if (r.status == 401) {
    out.append("\r\nWWW-Authenticate: Bearer");
  }
  if (close) {
    out.append("\r\nConnection: close");
  }
  out.append("\r\n\r\n");
  out.append(r.body);
}

// One TLS connection. Every handler runs on the connection's io_context thread (one thread per
// io_context, so no strand is needed). A single watchdog timer enforces every deadline: I/O steps
// only move deadline_, and the timer re-arms itself when it wakes before it, which saves
// a timer cancel-and-rearm per request.
class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(socket_type socket, ssl::context& ctx, simulator& sim, nanoseconds idle_timeout)
      : stream_(std::move(socket), ctx),
        watchdog_(stream_.next_layer().get_executor()),
        latency_timer_(stream_.next_layer().get_executor()),
        sim_(sim),
        idle_timeout_(idle_timeout) {}

  void start() {
    error_code ec;
    stream_.next_layer().set_option(tcp::no_delay(true), ec);
    set_deadline(handshake_timeout);  // arms the watchdog
    stream_.async_handshake(
        ssl::stream_base::server,
        [self = shared_from_this()](const error_code& e) { self->on_handshake(e); });
  }

 private:
  // Moving the deadline later costs nothing; moving it earlier than the pending wake-up (an idle
  // timeout shorter than the handshake's, a shutdown after a write) re-arms the timer.
  void set_deadline(nanoseconds d) {
    deadline_ = std::chrono::steady_clock::now() + d;
    if (deadline_ < armed_at_) {
      arm_watchdog();
    }
  }

  void arm_watchdog() {
    armed_at_ = deadline_;
    watchdog_.expires_at(deadline_);  // cancels a pending wait; its handler sees operation_aborted
    watchdog_.async_wait(
        [self = shared_from_this()](const error_code& e) { self->on_watchdog(e); });
  }

  void on_watchdog(const error_code& ec) {
    if (ec || closed_) {
      return;
    }
    armed_at_ = std::chrono::steady_clock::time_point::max();
    if (std::chrono::steady_clock::now() >= deadline_) {
      close();
      return;
    }
    arm_watchdog();
  }

  void on_handshake(const error_code& ec) {
    if (ec) {
      close();
      return;
    }
    do_read();
  }

  void do_read() {
    set_deadline(idle_timeout_);
    parser_.emplace();
    parser_->header_limit(header_limit);
    parser_->body_limit(body_limit);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](const error_code& e, std::size_t) { self->on_read(e); });
  }

  void on_read(const error_code& ec) {
    if (closed_) {
      return;
    }
    if (ec) {
      if (ec == http::error::header_limit) {
        reject(431, "request header too large");
      } else if (ec == http::error::body_limit) {
        reject(413, "request body too large");
      } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message) {
        reject(400, "malformed HTTP request");
      } else {
        // The peer closed or reset. A TLS stream_truncated here is a client closing its idle
        // connection without close_notify: benign, there is no request to answer.
        close();
      }
      return;
    }
    const auto& req = parser_->get();
    request_.method = to_std(req.method_string());
    request_.target = to_std(req.target());
    request_.content_type = to_std(req[http::field::content_type]);
    request_.authorization = to_std(req[http::field::authorization]);
    request_.x_api_key = to_std(req["x-api-key"]);
    request_.idempotency_key = to_std(req["idempotency-key"]);
    request_.body = req.body();
    keep_alive_ = parser_->keep_alive();

    const nanoseconds delay = sim_.latency_for(request_);
    if (delay > nanoseconds::zero()) {
      set_deadline(delay + write_timeout);
      latency_timer_.expires_after(delay);
      latency_timer_.async_wait([self = shared_from_this()](const error_code& e) {
        if (!e && !self->closed_) {
          self->respond();
        }
      });
      return;
    }
    respond();
  }

  void respond() {
    sim_.handle(request_, response_);
    if (response_.drop) {
      drop();
      return;
    }
    do_write();
  }

  void reject(int status, std::string_view message) {
    sim_.on_protocol_error(status);
    response_.reset();
    response_.status = status;
    append_error_json(response_.body, message);
    keep_alive_ = false;
    do_write();
  }

  void do_write() {
    serialize(response_, !keep_alive_, out_);
    set_deadline(write_timeout);
    net::async_write(
        stream_, net::buffer(out_),
        [self = shared_from_this()](const error_code& e, std::size_t) { self->on_write(e); });
  }

  void on_write(const error_code& ec) {
    if (ec || closed_) {
      close();
      return;
    }
    if (!keep_alive_) {
      set_deadline(shutdown_timeout);
      // Sends close_notify and waits (bounded by the watchdog) for the peer's; whatever the
      // outcome, the response is complete and the socket is closed next.
      stream_.async_shutdown([self = shared_from_this()](const error_code&) { self->close(); });
      return;
    }
    do_read();
  }

  // A reset (RST) rather than a close: the client sees its request vanish without a response.
  void drop() {
    error_code ec;
    stream_.next_layer().set_option(net::socket_base::linger(true, 0), ec);
    close();
  }

  void close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    error_code ec;
    stream_.next_layer().close(ec);
    watchdog_.cancel();
    latency_timer_.cancel();
  }

  ssl::stream<socket_type> stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<request_parser> parser_;
  timer_type watchdog_;
  timer_type latency_timer_;
  std::chrono::steady_clock::time_point deadline_{};
  std::chrono::steady_clock::time_point armed_at_ = std::chrono::steady_clock::time_point::max();
  simulator& sim_;
  const nanoseconds idle_timeout_;
  sim_request request_;
  sim_response response_;
  std::string out_;
  bool keep_alive_ = true;
  bool closed_ = false;
};

std::vector<std::unique_ptr<net::io_context>> make_contexts(int n) {
  std::vector<std::unique_ptr<net::io_context>> contexts;
  for (int i = 0; i < std::max(n, 1); ++i) {
    // Each context is run by exactly one thread.
    contexts.push_back(std::make_unique<net::io_context>(1));
  }
  return contexts;
}

tcp::endpoint resolve_listen(const server_options& options) {
  const std::string host = options.host == "localhost" ? "127.0.0.1" : options.host;
  error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) {
    throw std::runtime_error("--listen: '" + options.host + "' is not an IP address");
  }
  return {address, options.port};
}

}  // namespace

struct sim_server::impl {
  impl(simulator& s, const server_options& o)
      : sim(s),
        options(o),
        ssl_ctx(ssl::context::tls_server),
        contexts(make_contexts(o.threads)),
        acceptor(contexts[0]->get_executor()),
        signals(contexts[0]->get_executor(), SIGINT, SIGTERM),
        flush_timer(contexts[0]->get_executor()),
        accept_retry(contexts[0]->get_executor()) {
    ssl_ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                        ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(ssl_ctx.native_handle(), TLS1_2_VERSION);
    error_code ec;
    ssl_ctx.use_certificate_chain_file(o.tls.cert, ec);
    if (ec) {
      throw std::runtime_error("cannot load '" + o.tls.cert + "': " + ec.message());
    }
    ssl_ctx.use_private_key_file(o.tls.key, ssl::context::pem, ec);
    if (ec) {
      throw std::runtime_error("cannot load '" + o.tls.key + "': " + ec.message());
    }
    static const unsigned char session_context[] = "agentix-sim";
    SSL_CTX_set_session_id_context(ssl_ctx.native_handle(), session_context,
                                   sizeof session_context - 1);

    const tcp::endpoint endpoint = resolve_listen(o);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(endpoint, ec);
    if (ec) {
      throw std::runtime_error("--listen: cannot bind " + o.host + ":" + std::to_string(o.port) +
                               ": " + ec.message());
    }
    acceptor.listen(net::socket_base::max_listen_connections);
    port = acceptor.local_endpoint().port();
  }

  void do_accept() {
    net::io_context& target = *contexts[next_context++ % contexts.size()];
    acceptor.async_accept(target, [this, &target](const error_code& ec, socket_type socket) {
      if (ec == net::error::operation_aborted || stopped.load()) {
        return;
      }
      if (ec) {
        // Out of descriptors or similar: retry shortly rather than spin.
        accept_retry.expires_after(milliseconds(100));
        accept_retry.async_wait([this](const error_code& e) {
          if (!e) {
            do_accept();
          }
        });
        return;
      }
      auto conn =
          std::make_shared<connection>(std::move(socket), ssl_ctx, sim, options.idle_timeout);
      // Started on its own thread, so that everything it does happens there.
      net::post(target, [conn] { conn->start(); });
      do_accept();
    });
  }

  void arm_flush() {
    flush_timer.expires_after(ledger_flush_interval);
    flush_timer.async_wait([this](const error_code& ec) {
      if (ec) {
        return;
      }
      sim.flush_ledger();
      arm_flush();
    });
  }

  void stop_all() {
    stopped.store(true);
    for (auto& c : contexts) {
      c->stop();
    }
  }

  simulator& sim;
  server_options options;
  ssl::context ssl_ctx;
  // Declared after ssl_ctx and before everything bound to them: destroyed in the right order.
  std::vector<std::unique_ptr<net::io_context>> contexts;
  acceptor_type acceptor;
  net::basic_signal_set<executor> signals;
  timer_type flush_timer;
  timer_type accept_retry;
  std::size_t next_context = 0;
  std::uint16_t port = 0;
  std::atomic<bool> stopped{false};
};

sim_server::sim_server(simulator& sim, const server_options& options)
    : impl_(std::make_unique<impl>(sim, options)) {}

sim_server::~sim_server() = default;

std::uint16_t sim_server::port() const {
  return impl_->port;
}

void sim_server::stop() {
  impl_->stop_all();
}

void sim_server::run() {
  impl& s = *impl_;
  if (s.stopped.load()) {
    return;
  }
  s.signals.async_wait([&s](const error_code& ec, int) {
    if (!ec) {
      error_code ignored;
      s.acceptor.close(ignored);
      s.stop_all();
    }
  });
  s.do_accept();
  s.arm_flush();

  // The other threads may have no connection yet; the guards keep them waiting for one.
  std::vector<net::executor_work_guard<executor>> guards;
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < s.contexts.size(); ++i) {
    guards.push_back(net::make_work_guard(*s.contexts[i]));
    threads.emplace_back([&s, i] {
      try {
        s.contexts[i]->run();
      } catch (const std::exception& e) {
        std::cerr << "agentix-sim: I/O thread " << i << " failed: " << e.what() << "\n";
        s.stop_all();
      }
    });
  }
  try {
    s.contexts[0]->run();
  } catch (...) {
    s.stop_all();
    for (auto& t : threads) {
      t.join();
    }
    throw;
  }
  s.stop_all();
  for (auto& t : threads) {
    t.join();
  }
}

}  // namespace dialer::sim
