#pragma once
// The webhook deliveries of placed calls, from placement to a final outcome: one heap of
// deliveries ordered by due time (future session.ended events, delays, retries), a bound on
// what is pending, the exact counters, and the JSONL webhook log. No sockets and no clocks:
// the simulator schedules a call's events at placement, and the sender (webhook_client.hpp)
// takes what is due and reports every attempt's result.
//
// Threads: every member is thread-safe (one mutex). The simulator calls on_placed() while
// holding its own lock, so the lock order is simulator → queue; the queue never calls back into
// the simulator. The waker is called with the queue's lock held and must not block.
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sim/ledger.hpp"
#include "sim/prng.hpp"
#include "sim/session_store.hpp"
#include "sim/sim_config.hpp"
#include "sim/sim_time.hpp"

namespace dialer::sim {

class hmac_sha256;

// One delivery of one event: the original or its duplicate's copy. 40 bytes, so the deliveries of
// 100,000 pending calls cost about 8 MB (the session itself lives in the session store).
struct webhook_delivery {
  steady_time due{};
  std::uint64_t seq = 0;  // orders equal due times first in, first out
  const session_record* session = nullptr;
  std::uint64_t index = 0;  // the session's index in the store (its id)
  session_event event = session_event::created;
  bool copy = false;  // the duplicate fault's second delivery
  bool lost = false;  // the lose fault: logged and counted when due, never sent
  std::uint8_t attempts = 0;
  std::int16_t last_status = 0;  // of the last attempt; 0 for a transport failure
};
static_assert(sizeof(webhook_delivery) <= 40);

// Why an attempt got no HTTP status.
enum class transport_error : std::uint8_t { none, connect, timeout, io };
inline constexpr std::size_t transport_error_count = 4;
[[nodiscard]] std::string_view to_string(transport_error e);

struct attempt_result {
  int status = 0;  // 0 when `error` is set
  transport_error error = transport_error::none;
};

class webhook_queue {
 public:
  // `store` and `phone_number_ids` must outlive the queue. Opens (truncates) the webhook log
  // when options.log_path is set; throws std::runtime_error if it cannot.
  webhook_queue(const webhook_options& options, const session_store& store,
                const std::vector<std::string>& phone_number_ids);

  // Schedules a placed call's session.created at `now` and session.ended at now + duration,
  // each with the faults drawn from `rng` (the caller's lock protects it). A delivery that
  // would take the pending count past the limit is dropped, counted and logged instead.
  void on_placed(const session_record& s, std::uint64_t index, steady_time now, prng& rng);

  // Called (under the lock) when a delivery is scheduled earlier than the time the sender last
  // said it would look again; the sender posts itself a wake-up. Empty: never.
  void set_waker(std::function<void()> wake);

  // Moves up to `max` deliveries due by `now` into `out` (in flight from then on until
  // on_attempt() reports them); lost ones due by now are logged and counted on the way and do
  // not count against `max`. Returns when the next delivery falls due (steady_time::max() if
  // none is scheduled).
  steady_time take_due(steady_time now, system_time wall, std::size_t max,
                       std::vector<webhook_delivery>& out);
  // The outcome of one attempt of an in-flight delivery: 2xx delivers it; anything else is
  // retried after retry_delay() until max_attempts, then given up.
  void on_attempt(webhook_delivery d, attempt_result result, steady_time now, system_time wall);

  // The HTTP request for one attempt of `d`, signed at `wall` when `signer` is given. Reads only
  // immutable data: callable without the lock from any thread.
  void build_request(const webhook_delivery& d, system_time wall, hmac_sha256* signer,
                     std::string& out) const;

  // Scheduled plus in flight.
  [[nodiscard]] std::int64_t pending();
  void flush_log();
  // At exit: whatever is still pending is counted as pending_at_exit and forgotten; the log is
  // flushed.
  void finish();
  [[nodiscard]] long log_errors();

  // ,"webhooks":{…} for the stats document (see docs/agentix-sim.md).
  void append_stats_json(std::string& out);

  [[nodiscard]] const webhook_options& options() const { return options_; }

 private:
  enum class log_result : std::uint8_t { delivered, duplicate_delivered, lost, gave_up, dropped };
  void schedule(webhook_delivery d);
  void push(webhook_delivery d);
  void log(const webhook_delivery& d, log_result result, system_time wall, steady_time now);

  const webhook_options options_;
  const session_store& store_;
  const std::vector<std::string>& phone_number_ids_;

  std::mutex mutex_;
  std::vector<webhook_delivery> heap_;  // min-heap on (due, seq)
  std::uint64_t next_seq_ = 0;
  std::int64_t in_flight_ = 0;
  std::function<void()> wake_;
  steady_time sender_looks_at_ = steady_time::max();
  bool wake_posted_ = false;
  ledger log_;
  std::string scratch_;

  std::int64_t events_ = 0;
  std::int64_t duplicated_ = 0;
  std::int64_t sent_ = 0;
  std::int64_t delivered_ = 0;
  std::int64_t duplicates_delivered_ = 0;
  std::int64_t retries_ = 0;
  std::int64_t lost_ = 0;
  std::int64_t gave_up_ = 0;
  std::int64_t queue_dropped_ = 0;
  std::int64_t pending_at_exit_ = 0;
  std::int64_t non2xx_[600] = {};
  std::int64_t transport_errors_[transport_error_count] = {};
};

}  // namespace dialer::sim
