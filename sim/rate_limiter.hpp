#pragma once
// The server-side limit of --rate-limit N/s: a token bucket of N tokens per second holding at most
// `burst` (N/10, at least 1), as GCRA on a theoretical arrival time kept in integer units of
// 1/N ns so that no rate drifts. Not thread-safe: the simulator calls it under its lock.
#include <cstdint>

#include "sim/sim_time.hpp"

namespace dialer::sim {

class rate_limiter {
 public:
  // per_second == 0 disables the limit.
  explicit rate_limiter(std::int64_t per_second);
  rate_limiter(std::int64_t per_second, std::int64_t burst);

  // Takes one token if one is available at `now`.
  [[nodiscard]] bool try_acquire(steady_time now);

  [[nodiscard]] std::int64_t burst() const { return burst_; }

 private:
  std::int64_t rate_;
  std::int64_t burst_;
  bool started_ = false;
  steady_time origin_{};
  // Theoretical arrival time of the next token, in units of 1/rate_ ns since origin_.
  __int128 tat_ = 0;
};

}  // namespace dialer::sim
