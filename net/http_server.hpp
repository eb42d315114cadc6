#pragma once
// A small HTTP/1.1 server for the daemon's listeners (Agentix webhooks from the internet; later the
// control API and /metrics on loopback). Hardened first: every phase of a connection has its own
// deadline, every buffer has a ceiling, and one connection never reads its next request before
// the current response is written. net/http_server.md has the connection state machine.
//
// Threading: everything here runs on the one thread that runs the io_context (a single-threaded
// io_context is assumed). The constructor, stop(), stats(), the destructor and responder calls must
// happen on that thread, or before it starts running the io_context.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dialer::net {

struct server_limits {
  std::size_t max_header_bytes = 8 * 1024;  // request line + fields; over it → 431 + close
  std::size_t max_body_bytes = 64 * 1024;   // Content-Length over it → 413 before reading the
                                            // body; a chunked body growing past it → 413
  std::size_t max_connections = 512;        // beyond it: accept, best-effort 503 "busy", close
  std::chrono::milliseconds header_timeout{5000};  // first byte of a request (or the accept) →
                                                   // header complete; a total, not per read → 408
  std::chrono::milliseconds body_timeout{10000};   // header complete → body complete → 408
  std::chrono::milliseconds idle_timeout{30000};   // keep-alive wait for a next request → silent
                                                   // close
  std::chrono::milliseconds write_timeout{10000};  // one response write → reset (RST) + close
  std::chrono::milliseconds handler_timeout{15000};  // handler has not responded → 503 + close
  std::size_t max_requests_per_connection = 10000;   // the last one is answered with
                                                     // Connection: close
};

using header_field = std::pair<std::string_view, std::string_view>;  // (name, value) as sent

// A view of one request; valid only during the handler call. Copy what you keep.
struct request {
  std::string_view method;        // as sent, e.g. "POST"
  std::string_view target;        // as sent (path + query)
  std::string_view peer_address;  // textual IP of the TCP peer ("127.0.0.1", "::1"), no port
  std::string_view body;          // de-chunked
  std::span<const header_field> headers;  // in arrival order, duplicates kept

  // The first field with this name, compared case-insensitively; "" when absent.
  [[nodiscard]] std::string_view header(std::string_view name) const;
};

struct response {
  int status = 200;                               // 200..599; anything else is answered as 500
  std::string content_type = "application/json";  // empty: no Content-Type field
  std::string body;
  // Extra fields. The server owns framing: Content-Length or Transfer-Encoding here is a bug and
  // turns the answer into a 500, as does a name that is not a token or a CR, LF or NUL in a value
  // (no response splitting). "Connection: close" closes after this response; other Connection
  // values are ignored. 204 and 304 are sent without a body.
  std::vector<std::pair<std::string, std::string>> headers;
};

namespace detail {
class connection;
struct server_state;
}  // namespace detail

// Completes one request, exactly once. Move-only (wrap it in a shared_ptr to keep it in a
// std::function). May be called during the handler or later, on the io_context thread only, e.g.
// once a disk commit has been posted back. A no-op when the connection died meanwhile or the
// handler timeout already answered 503. Destroying it uncalled answers 500 on the next loop turn,
// so a forgotten path never hangs a client. Holds no strong reference to the connection.
class responder {
 public:
  responder(responder&& other) noexcept;
  responder& operator=(responder&& other) noexcept;
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;
  ~responder();

  void operator()(response r);
  // True until called or moved from.
  [[nodiscard]] bool pending() const { return armed_; }

 private:
  friend class detail::connection;
  responder(std::weak_ptr<detail::connection> conn, std::uint64_t sequence);
  std::weak_ptr<detail::connection> conn_;
  std::uint64_t sequence_ = 0;
  bool armed_ = false;
};

// Called on the io_context thread for each complete request. It must not block; it answers through
// the responder, now or later. An exception escaping it is counted (handler_exceptions) and the
// request is answered 500.
using handler = std::function<void(const request&, responder)>;

// Counters since construction; read them on the io_context thread.
struct server_stats {
  std::uint64_t accepted = 0;      // connections admitted (not counting refused_busy)
  std::uint64_t open = 0;          // connection objects alive now (lingering closes included)
  std::uint64_t refused_busy = 0;  // accepted over max_connections and refused
  std::uint64_t requests = 0;      // complete requests handed to the handler
  std::uint64_t status_408 = 0;
  std::uint64_t status_413 = 0;
  std::uint64_t status_431 = 0;
  std::uint64_t status_400 = 0;
  std::uint64_t handler_timeouts = 0;    // answered 503 because the handler did not respond
  std::uint64_t handler_exceptions = 0;  // answered 500 because the handler threw
  std::uint64_t bad_responses = 0;       // answered 500 because the response broke the rules
};

class http_server {
 public:
  // Binds and listens at once, so port() is known before the io_context runs. `address` is an IP
  // literal ("127.0.0.1", "::1", "0.0.0.0", "::"); port 0 picks a free one. Throws
  // std::system_error on failure, e.g. "cannot listen on 127.0.0.1:8080: Address already in use".
  // `io` must outlive every connection (run it until it returns, or destroy it after the server).
  http_server(boost::asio::io_context& io, std::string_view address, std::uint16_t port,
              server_limits limits, handler on_request);
  // stop(), and the handler is never called again: a request completed later is answered 503 and
  // the handler object is released at once (or as soon as a running call of it returns).
  // In-flight responders still answer.
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  // Stops accepting and closes connections that wait for a next request. A request being read
  // is still served; every response from now on carries Connection: close. Idempotent.
  void stop();
  [[nodiscard]] server_stats stats() const;

 private:
  std::shared_ptr<detail::server_state> state_;  // shared with connections, which may outlive it
};

}  // namespace dialer::net
