#pragma once
// The simulated Agentix service: authentication, routing, validation, faults and limits, call
// placement, the session endpoints, the ledger and the stats. It knows nothing of sockets: the
// server hands it a parsed request and sends back what it fills in. All members may be called
// from any thread; shared state is behind one mutex, held only for the part of a request that
// touches it (validation and response formatting run outside it).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "sim/fault_plan.hpp"
#include "sim/ledger.hpp"
#include "sim/prng.hpp"
#include "sim/rate_limiter.hpp"
#include "sim/session_store.hpp"
#include "sim/sim_config.hpp"
#include "sim/sim_stats.hpp"
#include "sim/sim_time.hpp"
#include "sim/webhook_queue.hpp"

namespace dialer::sim {

// Views into the server's parsed message; they must stay valid during handle().
struct sim_request {
  std::string_view method;
  std::string_view target;
  std::string_view content_type;
  std::string_view x_api_key;
  std::string_view authorization;
  std::string_view idempotency_key;
  std::string_view body;
};

// Reused across requests by each connection so that steady state allocates nothing.
struct sim_response {
  int status = 200;
  std::string body;         // JSON
  std::string retry_after;  // empty: no Retry-After header
  std::string_view allow;   // non-empty on 405
  bool drop = false;        // send nothing; reset the connection

  void reset() {
    status = 200;
    body.clear();
    retry_after.clear();
    allow = {};
    drop = false;
  }
};

class simulator {
 public:
  // `clock` must outlive the simulator. Throws if the ledger or the webhook log cannot be opened.
  simulator(const sim_config& config, const sim_clock& clock, std::uint64_t seed);

  // The delay to add before answering this request: a draw from --latency for calls/start,
  // zero for everything else.
  [[nodiscard]] nanoseconds latency_for(const sim_request& req);
  // Answers one request; counts it (unless under /_sim/) and, for a placed call, writes the
  // ledger line before returning.
  void handle(const sim_request& req, sim_response& out);
  // The server answered a request it could not parse (400, 413, 431) without calling handle().
  void on_protocol_error(int status);

  // Writes buffered ledger lines out (the server calls it every 100 ms and at exit).
  void flush_ledger();
  [[nodiscard]] long ledger_errors();
  // The stats document; with webhooks configured it ends with their counters.
  [[nodiscard]] std::string stats_json();

  // The deliveries of this simulator's webhooks, for the sender (webhook_client.hpp); nullptr
  // without --webhook-url. Lives as long as the simulator.
  [[nodiscard]] webhook_queue* webhooks() { return webhooks_.get(); }

 private:
  void list_phone_numbers(std::string_view query, sim_response& out);
  void start_call(const sim_request& req, std::string_view phone_number_id, sim_response& out);
  void get_session(std::string_view id, bool messages, sim_response& out);
  [[nodiscard]] bool authorized(const sim_request& req) const;
  [[nodiscard]] int phone_number_index(std::string_view id) const;
  void set_retry_after(sim_response& out, system_time now) const;
  void error(sim_response& out, int status, std::string_view message, std::string_view field = {});

  const sim_config config_;
  const sim_clock& clock_;
  const fault_plan faults_;

  std::mutex mutex_;
  prng rng_;
  sim_stats stats_;
  rate_limiter limiter_;
  session_store sessions_;  // after rng_: its salt is the first draw
  ledger ledger_;
  std::unique_ptr<webhook_queue> webhooks_;  // after sessions_, which it reads
};

}  // namespace dialer::sim
