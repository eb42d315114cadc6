#pragma once
// An exact token bucket (GCRA: a theoretical arrival time in integer nanoseconds). `count` tokens
// arrive per `per`; at most `burst` can be spent at once. Over any window of length T it grants at
// most burst + floor(T * count / per) tokens, and it never drifts: arithmetic is exact (128-bit
// products of nanoseconds and counts), not periodic refills. Not thread-safe; time is passed in.
#include <cstdint>

#include "core/time.hpp"

namespace dialer {

class token_bucket {
 public:
  // count >= 1, per > 0, burst >= 1.
  token_bucket(std::int64_t count, nanoseconds per, std::int64_t burst);

  struct decision {
    bool granted = false;
    steady_time earliest;  // when not granted: the first instant a token is available
  };
  // Spends one token if one is available at `now`.
  [[nodiscard]] decision try_acquire(steady_time now);
  // The first instant a token is available (<= now when one is).
  [[nodiscard]] steady_time next_available(steady_time now) const;
  // How many tokens could be spent at `now` without waiting (0..burst).
  [[nodiscard]] std::int64_t available(steady_time now) const;
  // Changes rate and burst from `now` on, keeping the tokens already spent within the window.
  void set_rate(std::int64_t count, nanoseconds per, std::int64_t burst, steady_time now);

  [[nodiscard]] std::int64_t count() const { return count_; }
  [[nodiscard]] nanoseconds per() const { return per_; }
  [[nodiscard]] std::int64_t burst() const { return burst_; }

 private:
  // All instants are kept multiplied by count_ ("scaled"), so one token is exactly per_ scaled
  // nanoseconds apart and no division ever rounds.
  using scaled = __int128;
  [[nodiscard]] scaled scale(steady_time t) const;
  [[nodiscard]] steady_time unscale_ceil(scaled v) const;

  std::int64_t count_;
  nanoseconds per_;
  std::int64_t burst_;
  scaled tat_ = 0;  // theoretical arrival time of the next token, scaled
  bool started_ = false;
};

}  // namespace dialer
