#include "scheduler/token_bucket.hpp"

#include <algorithm>
#include <cassert>
#include <stdexcept>

namespace dialer {

token_bucket::token_bucket(std::int64_t count, nanoseconds per, std::int64_t burst)
    : count_(count), per_(per), burst_(burst) {
  if (count < 1 || per.count() <= 0 || burst < 1) {
    throw std::invalid_argument("token_bucket: count, per and burst must be positive");
  }
}

token_bucket::scaled token_bucket::scale(steady_time t) const {
  return static_cast<scaled>(t.time_since_epoch().count()) * count_;
}

steady_time token_bucket::unscale_ceil(scaled v) const {
  // Round up: a token at 333333333.33 ns is not there at 333333333 ns.
  scaled q = v / count_;
  if (q * count_ < v) {
    ++q;
  }
  return steady_time{nanoseconds{static_cast<std::int64_t>(q)}};
}

steady_time token_bucket::next_available(steady_time now) const {
  const scaled n = scale(now);
  if (!started_) {
    return now;
  }
  // A token is available when tat - now <= (burst - 1) * per (scaled units).
  const scaled tolerance = static_cast<scaled>(burst_ - 1) * per_.count();
  // A request at whole nanosecond t stands for the earliest exact instant that rounds up to t;
  // taking t itself would throw the rounding away at every grant and drift.
  const scaled tat = std::max(tat_, n - (count_ - 1));
  if (tat - n <= tolerance) {
    return now;
  }
  return unscale_ceil(tat - tolerance);
}

std::int64_t token_bucket::available(steady_time now) const {
  if (!started_) {
    return burst_;
  }
  const scaled n = scale(now);
  const scaled tolerance = static_cast<scaled>(burst_ - 1) * per_.count();
  const scaled tat = std::max(tat_, n - (count_ - 1));
  if (tat - n > tolerance) {
    return 0;
  }
  return static_cast<std::int64_t>((tolerance - (tat - n)) / per_.count()) + 1;
}

token_bucket::decision token_bucket::try_acquire(steady_time now) {
  const scaled n = scale(now);
  if (!started_) {
    tat_ = n;
    started_ = true;
  }
  const scaled tolerance = static_cast<scaled>(burst_ - 1) * per_.count();
  // A request at whole nanosecond t stands for the earliest exact instant that rounds up to t;
  // taking t itself would throw the rounding away at every grant and drift.
  const scaled tat = std::max(tat_, n - (count_ - 1));
  if (tat - n > tolerance) {
    return {false, unscale_ceil(tat - tolerance)};
  }
  tat_ = tat + per_.count();
  return {true, now};
}

void token_bucket::set_rate(std::int64_t count, nanoseconds per, std::int64_t burst,
                            steady_time now) {
  if (count < 1 || per.count() <= 0 || burst < 1) {
    throw std::invalid_argument("token_bucket: count, per and burst must be positive");
  }
  if (started_) {
    // Keep the backlog in time (how far tat is ahead of now), re-expressed in the new scale, but
    // never more than the new bucket could hold: a lower burst takes effect at once.
    const scaled n = scale(now);
    const scaled ahead_scaled = std::max<scaled>(tat_ - n, 0);
    // Re-expressed in the new scale, rounded up: a reload must never let a token out early.
    const scaled ahead_new = (ahead_scaled * count + count_ - 1) / count_;
    count_ = count;
    per_ = per;
    burst_ = burst;
    const scaled n2 = scale(now);
    const scaled max_ahead = static_cast<scaled>(burst_) * per_.count();
    tat_ = n2 + std::min(ahead_new, max_ahead);
    return;
  }
  count_ = count;
  per_ = per;
  burst_ = burst;
}

}  // namespace dialer
