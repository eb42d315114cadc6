#include "sim/rate_limiter.hpp"

#include <algorithm>

namespace dialer::sim {

rate_limiter::rate_limiter(std::int64_t per_second)
    : rate_limiter(per_second, std::max<std::int64_t>(per_second / 10, 1)) {}

rate_limiter::rate_limiter(std::int64_t per_second, std::int64_t burst)
    : rate_(per_second), burst_(std::max<std::int64_t>(burst, 1)) {}

bool rate_limiter::try_acquire(steady_time now) {
  if (rate_ <= 0) {
    return true;
  }
  if (!started_) {
    started_ = true;
    origin_ = now;
  }
  // One token every 1e9/rate ns is 1e9 units of 1/rate ns: exact for any rate.
  constexpr __int128 interval = 1'000'000'000;
  const __int128 t =
      static_cast<__int128>(std::max<std::int64_t>(to_ns(now) - to_ns(origin_), 0)) * rate_;
  const __int128 tat = std::max(tat_, t);
  // A full bucket lets `burst` requests through at one instant: the last of them may arrive
  // (burst - 1) intervals ahead of its theoretical time.
  if (tat - t > interval * (burst_ - 1)) {
    return false;
  }
  tat_ = tat + interval;
  return true;
}

}  // namespace dialer::sim
