#pragma once
// Exact accounting of what the simulator saw and placed. It is the referee of the integration
// tests and of the benchmark, so nothing here is sampled or approximated. Time is an argument:
// every event carries `now`, and a `now` earlier than one already seen counts as that earlier
// instant's successor (clamped), so the windows stay exact under concurrent callers.
// Not thread-safe: the simulator calls it under its lock.
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "sim/sim_time.hpp"
#include "sim/string_set.hpp"

namespace dialer::sim {

enum class fault_kind : std::uint8_t {
  http_429,          // injected by --fault-429
  http_503,          // injected by --fault-503
  after_place_500,   // placed, then answered 500
  drop_after_place,  // placed, then the connection was reset without a response
  rate_limited,      // --rate-limit refused it
  max_active,        // --max-active refused it (409)
};
inline constexpr std::size_t fault_kind_count = 6;
// The stats JSON key of each kind, and the ledger outcome of the after-place ones.
[[nodiscard]] std::string_view to_string(fault_kind k);

// Sliding windows are half-open: a window of length W ending at a placement at t holds the
// placements in (t - W, t]. Placements at 0, 50, 99, 100 ms are 3 in 100 ms, not 4.
class sim_stats {
 public:
  static constexpr nanoseconds window_100ms = milliseconds(100);
  static constexpr nanoseconds window_1s = seconds(1);

  void on_request() { ++requests_; }
  void on_unauthorized() { ++unauthorized_; }
  void on_bad_request() { ++bad_requests_; }
  // Every response sent, by status (a dropped connection sends none).
  void on_response(int status);
  void on_fault(fault_kind k) { ++faults_[static_cast<std::size_t>(k)]; }

  struct placement {
    bool duplicate_task = false;   // (campaign_id, task_id) was placed before
    bool duplicate_phone = false;  // phone was placed before
  };
  // Records a placed call that stays active during [now, now + duration).
  placement on_placed(steady_time now, system_time wall, nanoseconds duration,
                      std::string_view campaign_id, std::string_view task_id,
                      std::string_view phone);

  // Calls placed and not yet ended at `now` (a call ends at place time + duration exactly).
  [[nodiscard]] std::int64_t active(steady_time now);

  [[nodiscard]] std::int64_t requests() const { return requests_; }
  [[nodiscard]] std::int64_t placed() const { return placed_; }
  [[nodiscard]] std::int64_t duplicates_by_task_id() const { return duplicates_by_task_id_; }
  [[nodiscard]] std::int64_t duplicates_by_phone() const { return duplicates_by_phone_; }
  [[nodiscard]] std::int64_t max_active() const { return max_active_; }
  [[nodiscard]] std::int64_t max_starts_100ms() const { return max_starts_100ms_; }
  [[nodiscard]] std::int64_t max_starts_1s() const { return max_starts_1s_; }
  [[nodiscard]] std::int64_t unauthorized() const { return unauthorized_; }
  [[nodiscard]] std::int64_t bad_requests() const { return bad_requests_; }
  [[nodiscard]] std::int64_t responses(int status) const;
  [[nodiscard]] std::int64_t faults(fault_kind k) const {
    return faults_[static_cast<std::size_t>(k)];
  }

  // The stats document (one line, no trailing newline); expires ended calls first.
  [[nodiscard]] std::string to_json(steady_time now);

 private:
  steady_time clamp(steady_time now);
  void expire(steady_time now);

  std::int64_t requests_ = 0;
  std::int64_t placed_ = 0;
  std::int64_t duplicates_by_task_id_ = 0;
  std::int64_t duplicates_by_phone_ = 0;
  std::int64_t max_active_ = 0;
  std::int64_t max_starts_100ms_ = 0;
  std::int64_t max_starts_1s_ = 0;
  std::int64_t unauthorized_ = 0;
  std::int64_t bad_requests_ = 0;
  std::int64_t first_placed_ms_ = 0;
  std::int64_t last_placed_ms_ = 0;
  std::array<std::int64_t, 600> responses_{};
  std::array<std::int64_t, fault_kind_count> faults_{};

  steady_time latest_{};
  std::priority_queue<steady_time, std::vector<steady_time>, std::greater<>> ends_;
  std::deque<steady_time> starts_100ms_;
  std::deque<steady_time> starts_1s_;
  string_set task_keys_;
  string_set phones_;
  std::string key_scratch_;
};

}  // namespace dialer::sim
