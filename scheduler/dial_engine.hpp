#pragma once
// The pacing loop: per trunk a token bucket, a concurrency gate and a Retry-After hold; per
// campaign its own bucket, a page of pending tasks and a retry queue. It claims a task durably
// (PENDING → DIALING) before its request is written, and spends a rate token only when a pooled
// connection can write the request at once. Design and transitions: scheduler/dial_engine.md.
//
// Threading: every member runs on the io_context thread; store and pool callbacks arrive there.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/http_client.hpp"
#include "core/prometheus.hpp"
#include "core/state_store.hpp"
#include "core/time.hpp"

namespace dialer {

struct campaign_progress {
  std::string id;
  std::string trunk;
  int weight = 1;
  bool paused = false;
  bool paused_by_operator = false;  // waits for resume, even in a one-shot run
  bool cancelled = false;
  std::string pause_reason;
  bool complete = false;
  double rate_target = 0;    // calls/s: the campaign's own pace, else its trunk's
  double rate_achieved = 0;  // starts/s over the last 10 s
  std::int64_t requests = 0;
  std::int64_t started = 0;
  std::int64_t retried = 0;
  std::int64_t failed = 0;
  std::int64_t unknown = 0;
  std::int64_t in_flight = 0;
  std::int64_t live = 0;         // calls holding a slot until their session.ended
  std::int64_t ended = 0;        // session.ended recorded (webhook or pull)
  std::int64_t redials = 0;      // redials scheduled by an end reason
  std::int64_t unconfirmed = 0;  // no session.ended in time: settling by pull
  std::int64_t settling = 0;     // session or transcript pulls queued or in flight
  std::map<std::string, std::int64_t> failed_by_class;  // requests that started no call
  std::map<std::string, std::int64_t> ended_by_reason;
};

struct trunk_progress {
  std::string name;
  std::int64_t active = 0;    // DIALING + STARTED holding a slot
  std::int64_t capacity = 0;  // max_concurrent_calls
  std::int64_t reserved = 0;  // of which kept free for other traffic
  std::int64_t peak_active = 0;
  std::int64_t holds = 0;  // Retry-After holds of the whole trunk
  bool held = false;       // a hold is in force now
  double rate_target = 0;
  double rate_achieved = 0;
  prom::histogram request_latency{prom::latency_buckets()};  // calls/start, seconds
};

enum class control_status : std::uint8_t {
  ok,
  unknown,   // no such campaign or trunk
  conflict,  // not possible in its state (e.g. resume a cancelled campaign)
  invalid,   // a value out of range
};

class dial_engine {
 public:
  struct options {
    nanoseconds slot_grace{std::chrono::seconds(30)};
    std::size_t page_size = 1024;  // pending tasks fetched from the store at a time
    std::uint64_t seed = 0;        // jitter; 0 = random
    // With a webhook listener, a campaign is complete only once every call it placed has ended
    // (or been settled by pull) and no redial is waiting; without one, nobody would tell us.
    bool await_call_end = false;
    std::size_t max_pulls_in_flight = 4;
  };

  // `store`, `pool` and `clock` must outlive the engine.
  dial_engine(boost::asio::io_context& io, const config::daemon_settings& settings,
              state_store& store, http_connection_pool& pool, const time_source& clock,
              options opts);
  ~dial_engine();
  dial_engine(const dial_engine&) = delete;
  dial_engine& operator=(const dial_engine&) = delete;

  // Loads the slots still held by calls of an earlier run, then starts dialing. `on_idle` runs
  // once every campaign is complete or paused with nothing in flight (a draining engine too).
  void start(std::function<void()> on_idle);
  // More tasks may be pending in `campaign` (the ingest thread committed a batch).
  void tasks_added(const std::string& campaign);
  // No more tasks will be added to `campaign`.
  void ingest_finished(const std::string& campaign);
  // Stop claiming; requests in flight finish; then on_idle runs.
  void drain();
  // ---- Live control (the control API and reloads); io thread only. ----
  control_status pause_campaign(const std::string& id);
  control_status resume_campaign(const std::string& id);
  // Queued tasks become SUPPRESSED ("cancelled"); requests in flight and live calls finish.
  // `done` gets how many tasks were cancelled.
  control_status cancel_campaign(const std::string& id, std::function<void(std::int64_t)> done);
  control_status set_campaign_rate(const std::string& id, const config::rate& r, int burst);
  control_status set_trunk_rate(const std::string& name, const config::rate& r, int burst);
  control_status set_trunk_capacity(const std::string& name, int max_concurrent_calls);
  // UNKNOWN or FAILED tasks go back to PENDING (attempts kept) and are dialed as new attempts.
  control_status retry_tasks(const std::string& id, task_state which,
                             std::function<void(std::int64_t)> done);
  // A reloaded configuration: new campaigns start, removed ones stop claiming and drain, known
  // ones take the new pacing, weight, retry and duration settings; trunks take their new pace
  // and caps. The API settings are not reloadable (the pool is built from them).
  void reconfigure(const config::daemon_settings& settings);
  // More rows are being read into `id` (add-csv): it is not complete until ingest_finished.
  void ingest_started(const std::string& id);

  // A session event the store applied (from a webhook or a pull): frees the slot of an ended call,
  // learns the session of a started one, wakes due redials and queues transcript pulls.
  void on_session_update(const update_outcome& outcome);

  // Test hooks for a manual clock: the instant the engine's timer is armed for (max() when none),
  // and one scheduling pass at the clock's current time. The real timer firing early is harmless:
  // every pass reads the injected clock.
  [[nodiscard]] steady_time next_wake_for_test() const { return timer_at_; }
  void pump_for_test() { pump(); }

  [[nodiscard]] std::vector<campaign_progress> campaigns() const;
  [[nodiscard]] std::vector<trunk_progress> trunks() const;
  // Session pulls by result: settled, active, not_found, error.
  [[nodiscard]] const std::map<std::string, std::int64_t>& pull_results() const {
    return pull_results_;
  }

 private:
  struct campaign_state;
  struct trunk_state;
  struct attempt;
  struct live_call;
  struct pull;

  campaign_state& add_campaign_state(const config::campaign_settings& c);
  void load_campaign(campaign_state& c);
  void apply_trunk_settings(trunk_state& t, const config::trunk_settings& s);
  void pump();
  void pump_trunk(trunk_state& trunk, steady_time now, steady_time& wake);
  campaign_state* next_campaign(trunk_state& trunk, steady_time now, steady_time& wake);
  void refill(campaign_state& campaign);
  void dispatch(trunk_state& trunk, campaign_state& campaign, dial_task task, steady_time now);
  void on_claimed(std::shared_ptr<attempt> a, claim_outcome o);
  void withdraw(std::shared_ptr<attempt> a, steady_time now);
  void issue_cancel(campaign_state& c);
  [[nodiscard]] static bool stopped(const campaign_state& c);
  void write_ready(trunk_state& trunk, steady_time now, steady_time& wake);
  void send(std::shared_ptr<attempt> a);
  void on_response(std::shared_ptr<attempt> a, http_response response);
  void hold_live(campaign_state& campaign, std::int64_t row_id, steady_time until,
                 std::string session_id);
  void release_live(std::int64_t row_id);
  void expire_live(steady_time now, steady_time& wake);
  void refill_due(campaign_state& campaign, std::int64_t now_ms);
  void queue_pull(campaign_state& campaign, std::int64_t row_id, std::string session_id,
                  bool transcript, int pulls_done, steady_time due);
  void start_pulls(steady_time now, steady_time& wake);
  void on_pull(std::shared_ptr<pull> p, http_response r);
  void settle_failed(pull& p, std::string detail);
  void schedule_retry(campaign_state& campaign, dial_task task, steady_time due);
  void pause(campaign_state& campaign, std::string reason);
  campaign_state* find_campaign(const std::string& id);
  void arm_timer(steady_time wake);
  void check_idle();
  void announce();
  [[nodiscard]] bool campaign_complete(const campaign_state& campaign) const;
  [[nodiscard]] std::uint64_t random();

  boost::asio::io_context& io_;
  config::api_settings api_;
  config::settle_settings settle_;
  state_store& store_;
  http_connection_pool& pool_;
  const time_source& clock_;
  options options_;
  std::map<std::string, std::unique_ptr<trunk_state>> trunks_;
  std::map<std::string, std::unique_ptr<campaign_state>> campaigns_;
  boost::asio::steady_timer timer_;
  steady_time timer_at_ = steady_time::max();
  std::mt19937_64 rng_;
  std::size_t reserved_connections_ = 0;  // claimed tasks waiting for their DIALING commit
  bool waiting_for_connection_ = false;
  bool draining_ = false;
  bool started_ = false;
  bool idle_reported_ = false;
  std::size_t startup_loads_ = 0;
  std::function<void()> on_idle_;
  std::shared_ptr<bool> alive_;
  // Calls holding a trunk slot after their request (STARTED, or UNKNOWN: maybe ringing), by row.
  std::unordered_map<std::int64_t, live_call> live_;
  std::priority_queue<std::pair<steady_time, std::int64_t>,
                      std::vector<std::pair<steady_time, std::int64_t>>, std::greater<>>
      live_deadlines_;
  std::unordered_map<std::int64_t, attempt*> in_flight_;  // requests sent, not answered
  std::vector<std::shared_ptr<pull>> pull_queue_;         // a heap by due time
  std::size_t pulls_in_flight_ = 0;
  std::int64_t last_anonymous_hold_ = 0;
  std::map<std::string, std::int64_t>
      pull_results_;  // live_ keys below 0: holds no webhook can name
};

}  // namespace dialer
