#pragma once
// Time for the simulator. sim/ links neither dialer_core nor its clock, so it has its own seam: the
// accounting takes `now` as an argument, and only simulator::handle reads a clock (through
// sim_clock, so tests can drive it by hand).
#include <chrono>
#include <cstdint>

namespace dialer::sim {

using nanoseconds = std::chrono::nanoseconds;
using milliseconds = std::chrono::milliseconds;
using seconds = std::chrono::seconds;
// Monotonic: call ends, sliding windows, rate limiting. On Linux this is CLOCK_MONOTONIC, the same
// clock the dialer's steady_clock reads, so ledger mono_ns values compare across processes.
using steady_time = std::chrono::steady_clock::time_point;
// Wall clock: ledger ts_ms, session timestamps, HTTP dates.
using system_time = std::chrono::system_clock::time_point;

class sim_clock {
 public:
  virtual ~sim_clock() = default;
  [[nodiscard]] virtual steady_time steady_now() const = 0;
  [[nodiscard]] virtual system_time system_now() const = 0;
};

class real_clock final : public sim_clock {
 public:
  [[nodiscard]] steady_time steady_now() const override { return std::chrono::steady_clock::now(); }
  [[nodiscard]] system_time system_now() const override { return std::chrono::system_clock::now(); }
};

// Moves only when told to; both clocks advance together. Starts at steady 1000 s (so windows
// reaching back before the first event stay positive) and wall 2026-01-01T00:00:00Z.
class manual_clock final : public sim_clock {
 public:
  [[nodiscard]] steady_time steady_now() const override { return steady_; }
  [[nodiscard]] system_time system_now() const override { return system_; }
  void advance(nanoseconds d) {
    steady_ += d;
    system_ += std::chrono::duration_cast<system_time::duration>(d);
  }

 private:
  steady_time steady_{seconds(1000)};
  system_time system_{seconds(1767225600)};
};

[[nodiscard]] inline std::int64_t to_unix_ms(system_time t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}
[[nodiscard]] inline std::int64_t to_ns(steady_time t) {
  return std::chrono::duration_cast<nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace dialer::sim
