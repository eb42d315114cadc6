#pragma once
// The two kinds of time, and the one seam that reads real clocks. Logic never reads a clock: it
// takes `now` as an argument, so tests drive it with manual_time_source and never sleep.
#include <chrono>

namespace dialer {

using nanoseconds = std::chrono::nanoseconds;
using milliseconds = std::chrono::milliseconds;
using seconds = std::chrono::seconds;
// Monotonic: pacing, timeouts, backoff.
using steady_time = std::chrono::steady_clock::time_point;
// Wall clock: calling windows, timestamps in the store and in exports.
using system_time = std::chrono::system_clock::time_point;

class time_source {
 public:
  virtual ~time_source() = default;
  [[nodiscard]] virtual steady_time steady_now() const = 0;
  [[nodiscard]] virtual system_time system_now() const = 0;

  // The process-wide source backed by the real clocks.
  static time_source& real();
};

// A clock that moves only when told to. Both clocks advance together.
class manual_time_source final : public time_source {
 public:
  manual_time_source();
  [[nodiscard]] steady_time steady_now() const override { return steady_; }
  [[nodiscard]] system_time system_now() const override { return system_; }
  void advance(nanoseconds d) {
    steady_ += d;
    system_ += std::chrono::duration_cast<system_time::duration>(d);
  }
  void set_system(system_time t) { system_ = t; }

 private:
  steady_time steady_;
  system_time system_;
};

// Milliseconds since the Unix epoch: the one wall-time representation in the store and ledgers.
[[nodiscard]] inline std::int64_t to_unix_ms(system_time t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

}  // namespace dialer
