#pragma once
// The TLS front of the simulator: HTTP/1.1 keep-alive over TLS 1.2/1.3, one io_context per
// thread, one acceptor handing connections round-robin to the threads. Asio and Beast stay
// inside server.cpp; this header is plain C++ so main.cpp compiles in a second.
#include <cstdint>
#include <memory>
#include <string>

#include "sim/simulator.hpp"
#include "sim/tls_cert.hpp"

namespace dialer::sim {

struct server_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  int threads = 1;
  cert_paths tls;
  nanoseconds idle_timeout = seconds(60);
};

class sim_server {
 public:
  // Loads the certificate and binds and listens at once, so port() is known before run().
  // `sim` must outlive the server. Throws std::runtime_error (bind, certificate).
  sim_server(simulator& sim, const server_options& options);
  ~sim_server();
  sim_server(const sim_server&) = delete;
  sim_server& operator=(const sim_server&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  // Serves until SIGTERM or SIGINT (or stop()), on the calling thread plus threads - 1 others;
  // flushes the ledger every 100 ms meanwhile. Returns once every thread has stopped; in-flight
  // requests are abandoned (a call is placed entirely or not at all, so the ledger stays exact).
  void run();
  // Thread-safe; may be called before run().
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace dialer::sim
