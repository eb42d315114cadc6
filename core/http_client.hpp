#pragma once
// The seam between the dialer and the network: a bounded pool of keep-alive HTTPS connections.
// Every member is called on the pool's io_context thread, and every callback runs there.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.hpp"

namespace dialer {

struct http_header {
  std::string name;
  std::string value;
};

struct http_request {
  std::string method = "POST";
  std::string target;  // origin-form: "/api/v1/phone-numbers/…/calls/start"
  std::vector<http_header> headers;  // Host, Content-Length and Connection are added by the pool
  std::string body;
};

// Why a request got no HTTP response. The names are also metric labels.
enum class transport_error : std::uint8_t {
  none = 0,
  connect_failed,      // nothing sent
  tls_failed,          // nothing sent (handshake, certificate)
  reset_before_send,   // connection failed before a byte of the request was written
  timeout_before_send,
  reset_after_send,    // bytes were written: the server may have acted on it
  timeout_after_send,
  protocol_error,      // unparseable response after sending
  shutdown,            // the pool was stopped before the request was written
};
[[nodiscard]] std::string_view to_string(transport_error e);
// True when the server may have received (part of) the request.
[[nodiscard]] bool maybe_delivered(transport_error e);

struct http_response {
  transport_error error = transport_error::none;
  int status = 0;  // 0 when error != none
  std::string body;
  std::string retry_after;  // raw Retry-After header, empty if absent
  nanoseconds latency{0};   // from the first byte written to the last byte read
  bool reused_connection = false;
};

class http_connection_pool {
 public:
  using response_handler = std::function<void(http_response)>;
  virtual ~http_connection_pool() = default;

  // Connections connected, handshaken and idle: a request given to send() now is written at once.
  [[nodiscard]] virtual std::size_t ready_count() const = 0;
  // Runs `cb` once, the next time a connection is (or becomes) ready, opening one if the pool is
  // below its size. The dialer spends a rate token only then, so fresh TLS handshakes never bunch
  // requests up at the server.
  virtual void when_ready(std::function<void()> cb) = 0;
  // Sends on a ready connection if there is one (returns true; `done` runs later); otherwise
  // returns false and does nothing.
  [[nodiscard]] virtual bool try_send_now(http_request req, response_handler done) = 0;
  // Queues behind other waiters (FIFO) until a connection is ready; for requests that are not
  // paced (phone-number lookups, session pulls).
  virtual void send(http_request req, response_handler done) = 0;
  // Opens connections until `n` are ready (or the pool is full); `done` gets how many are ready.
  virtual void warm_up(std::size_t n, std::function<void(std::size_t)> done) = 0;
  // Stops accepting requests, lets in-flight ones finish, closes idle connections.
  virtual void shutdown() = 0;
};

}  // namespace dialer
