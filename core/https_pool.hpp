#pragma once
// The bounded keep-alive HTTPS connection pool behind http_connection_pool (core/http_client.hpp):
// HTTP/1.1 over TLS 1.2+, peer verified against `host`, redirects never followed. The state
// machine of a pooled connection is in core/https_pool.md.
//
// Threading: one io_context thread. Construct, call and destroy the pool on that thread; every
// callback runs there, always posted (never from inside the call that registered it). `io` must
// outlive the pool.
// Destruction aborts every connection and drops callbacks that have not run yet: call shutdown()
// and let in-flight requests finish first when their outcome matters.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/http_client.hpp"

namespace dialer {

struct https_pool_options {
  std::string host;  // name or IP literal: SNI (names only) and the name the certificate must carry
  std::string port = "443";
  std::string ca_file;               // PEM bundle; empty: the system's default verify paths
  std::size_t max_connections = 16;  // connecting + idle + busy
  std::chrono::milliseconds connect_timeout{5000};   // resolve + TCP connect + TLS handshake
  std::chrono::milliseconds request_timeout{10000};  // write + read of one exchange
  std::chrono::milliseconds idle_timeout{30000};     // an idle connection is closed after this
  std::size_t max_response_bytes = 1 << 20;          // body; larger responses are protocol_error
};

struct https_pool_stats {
  // Gauges: connections per state.
  std::size_t connecting = 0;
  std::size_t idle = 0;
  std::size_t busy = 0;
  std::size_t closing = 0;  // TLS shutdown in progress; not counted against max_connections
  // Counters since construction.
  std::uint64_t opened = 0;           // handshakes completed
  std::uint64_t reused = 0;           // exchanges started on a connection that had carried one
  std::uint64_t closed_idle = 0;      // closed by idle_timeout
  std::uint64_t closed_by_peer = 0;   // the response said Connection: close, or was HTTP/1.0
  std::uint64_t stale_discarded = 0;  // found closed by the server before a request was written
  std::uint64_t retried = 0;          // before-send failures retried on a fresh connection
  std::map<std::string, std::uint64_t> failures;  // by transport_error name (metric label)
  std::string last_error;                         // never contains request headers or bodies
};

class https_pool final : public http_connection_pool {
 public:
  // Throws std::runtime_error when `options.ca_file` cannot be loaded or `host` is empty.
  https_pool(boost::asio::io_context& io, https_pool_options options);
  ~https_pool() override;
  https_pool(const https_pool&) = delete;
  https_pool& operator=(const https_pool&) = delete;

  [[nodiscard]] std::size_t ready_count() const override;
  // Queued callbacks are all called (posted) when a connection becomes idle, after queued send()
  // requests have been served; each must re-check with try_send_now(). After shutdown() the
  // callback is dropped: no connection will become ready again.
  void when_ready(std::function<void()> cb) override;
  // Checks that the idle connection it takes was not closed by the server meanwhile (discarding
  // any that were) and starts writing before it returns.
  [[nodiscard]] bool try_send_now(http_request req, response_handler done) override;
  // Never failed by connect or TLS failures (nothing was sent): the pool keeps reopening with
  // backoff; the caller owns the timeout. Failed with transport_error::shutdown by shutdown().
  // For every request: CR, LF and NUL in the method, target and headers are dropped (no header
  // injection), and caller-given Host, Content-Length, Connection and Transfer-Encoding headers
  // are ignored in favour of the pool's own.
  void send(http_request req, response_handler done) override;
  // `done` runs when every connection this call waits for has finished opening (or failed).
  void warm_up(std::size_t n, std::function<void(std::size_t)> done) override;
  // Fails queued sends with transport_error::shutdown, aborts connection attempts, closes idle
  // connections, and closes each busy one when its exchange has completed.
  void shutdown() override;

  [[nodiscard]] https_pool_stats stats() const;

  // Skips the check for connections the server closed, so a test can make a write fail on a
  // dead reused connection and observe the retry.
  void skip_stale_check_for_test(bool skip);

 private:
  class core;
  std::shared_ptr<core> core_;
};

[[nodiscard]] std::unique_ptr<https_pool> make_https_pool(boost::asio::io_context& io,
                                                          https_pool_options options);

}  // namespace dialer
