#pragma once
// One TLS connection of the HTTPS pool: open (resolve, connect, handshake), one exchange at a
// time, stale detection, close. Internal to core/https_pool.cpp; the implementation is the only
// translation unit that includes Beast and Asio-SSL, so this header names none of their types.
//
// Threading: every member and every handler runs on the io_context thread that owns the pool.
// Lifetime: create() returns a shared_ptr; each pending operation holds a reference, so the
// object outlives its last handler. Each handler is called at most once, and never after abort().
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/http_client.hpp"
#include "core/time.hpp"

namespace dialer::detail {

// Where and how to connect; shared, immutable, by every connection of one pool.
struct https_endpoint {
  std::string host;  // as configured: a DNS name or an IP literal
  std::string port;
  std::string authority;  // "host:port", for error texts
  bool host_is_ip = false;
  milliseconds connect_timeout{5000};
  milliseconds request_timeout{10000};
  std::size_t max_response_bytes = 1 << 20;
};

// The OpenSSL client context (trust store, TLS 1.2 minimum), shared by the pool's connections.
class tls_client_context;
// Throws std::runtime_error when `ca_file` cannot be loaded (a start-up error).
[[nodiscard]] std::shared_ptr<tls_client_context> make_tls_client_context(
    const std::string& ca_file);

struct exchange_result {
  transport_error error = transport_error::none;
  int status = 0;
  std::string body;
  std::string retry_after;
  bool keep_alive = false;  // the connection may carry another exchange
  std::size_t bytes_written = 0;
  nanoseconds latency{0};
  std::string error_text;  // empty when error == none
};

class https_connection {
 public:
  using open_handler = std::function<void(transport_error, std::string error_text)>;
  using exchange_handler = std::function<void(exchange_result)>;
  using close_handler = std::function<void()>;

  virtual ~https_connection() = default;

  [[nodiscard]] static std::shared_ptr<https_connection> create(
      boost::asio::io_context& io, std::shared_ptr<tls_client_context> tls,
      std::shared_ptr<const https_endpoint> endpoint);

  // Resolves, connects and handshakes within endpoint.connect_timeout. `done` gets none,
  // connect_failed or tls_failed with a text such as "TLS handshake with 127.0.0.1:8443 failed:
  // certificate verify failed (unable to get local issuer certificate)".
  virtual void async_open(open_handler done) = 0;

  // Only for an open connection with no exchange in flight: true when the peer has closed it,
  // reset it or sent bytes nobody asked for, so it must not carry a request. Never blocks.
  [[nodiscard]] virtual bool peer_gone() = 0;

  // Writes `request` (already serialised) and reads one response, both within
  // endpoint.request_timeout. `head` tells the parser that the response has no body.
  virtual void async_exchange(std::string request, bool head, exchange_handler done) = 0;

  // TLS close_notify bounded to about a second, then closes the socket.
  virtual void async_close(close_handler done) = 0;

  // Closes the socket now and drops any pending handler without calling it.
  virtual void abort() = 0;
};

}  // namespace dialer::detail
