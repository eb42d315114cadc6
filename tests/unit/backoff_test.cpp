#include "scheduler/backoff.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <random>

#include "core/time.hpp"

namespace dialer {
namespace {

constexpr milliseconds base{100};
constexpr milliseconds cap{30'000};
constexpr std::uint64_t max_random = UINT64_MAX;

// min(max, base * 2^(retry - 1)), the documented ceiling for retry n.
nanoseconds ceiling_for(int retry) {
  std::int64_t c = nanoseconds(base).count();
  for (int i = 1; i < retry && c < nanoseconds(cap).count(); ++i) {
    c *= 2;
  }
  return std::min(nanoseconds(c), nanoseconds(cap));
}

TEST(full_jitter_backoff, zero_random_gives_no_delay_for_every_retry) {
  for (int retry = 1; retry <= 20; ++retry) {
    EXPECT_EQ(full_jitter_backoff(retry, base, cap, 0), nanoseconds(0)) << retry;
  }
}

TEST(full_jitter_backoff, max_random_stays_within_zero_and_the_ceiling) {
  for (int retry = 1; retry <= 20; ++retry) {
    const nanoseconds d = full_jitter_backoff(retry, base, cap, max_random);
    EXPECT_GE(d, nanoseconds(0)) << retry;
    EXPECT_LE(d, ceiling_for(retry)) << retry;
  }
}

TEST(full_jitter_backoff, ceiling_doubles_from_base_then_stops_at_max) {
  // random == ceiling is the one value that maps onto the ceiling itself.
  const std::array<milliseconds, 12> expected = {
      milliseconds(100),    milliseconds(200),    milliseconds(400),    milliseconds(800),
      milliseconds(1600),   milliseconds(3200),   milliseconds(6400),   milliseconds(12'800),
      milliseconds(25'600), milliseconds(30'000), milliseconds(30'000), milliseconds(30'000)};
  for (int retry = 1; retry <= 12; ++retry) {
    const nanoseconds ceiling = expected[static_cast<std::size_t>(retry - 1)];
    const auto at_ceiling = static_cast<std::uint64_t>(ceiling.count());
    EXPECT_EQ(full_jitter_backoff(retry, base, cap, at_ceiling), ceiling) << retry;
    EXPECT_EQ(full_jitter_backoff(retry, base, cap, at_ceiling + 1), nanoseconds(0)) << retry;
  }
}

TEST(full_jitter_backoff, ceiling_stays_capped_for_many_retries) {
  for (int retry : {20, 64, 1000, INT_MAX}) {
    const auto at_cap = static_cast<std::uint64_t>(nanoseconds(cap).count());
    EXPECT_EQ(full_jitter_backoff(retry, base, cap, at_cap), nanoseconds(cap)) << retry;
    EXPECT_LE(full_jitter_backoff(retry, base, cap, max_random), nanoseconds(cap)) << retry;
  }
}

TEST(full_jitter_backoff, base_above_max_is_capped_at_max) {
  const milliseconds small_cap{50};
  const auto beyond = static_cast<std::uint64_t>(nanoseconds(small_cap).count());
  EXPECT_EQ(full_jitter_backoff(1, base, small_cap, beyond), nanoseconds(small_cap));
  EXPECT_LE(full_jitter_backoff(1, base, small_cap, max_random), nanoseconds(small_cap));
}

TEST(full_jitter_backoff, zero_base_never_waits) {
  for (int retry = 1; retry <= 20; ++retry) {
    EXPECT_EQ(full_jitter_backoff(retry, milliseconds(0), cap, max_random), nanoseconds(0));
  }
}

TEST(full_jitter_backoff, long_cap_doubles_without_overflow) {
  const milliseconds week{7LL * 24 * 3600 * 1000};
  const auto at_week = static_cast<std::uint64_t>(nanoseconds(week).count());
  EXPECT_EQ(full_jitter_backoff(100, milliseconds(1), week, at_week), nanoseconds(week));
  EXPECT_LE(full_jitter_backoff(100, milliseconds(1), week, max_random), nanoseconds(week));
}

TEST(full_jitter_backoff, delay_is_roughly_uniform_over_zero_to_ceiling) {
  std::mt19937_64 rng(12345);
  constexpr int retry = 4;  // ceiling 800 ms
  const nanoseconds ceiling = ceiling_for(retry);
  constexpr int bins = 10;
  constexpr int samples = 100'000;
  std::array<int, bins> histogram{};
  double sum = 0;
  for (int i = 0; i < samples; ++i) {
    const nanoseconds d = full_jitter_backoff(retry, base, cap, rng());
    ASSERT_GE(d, nanoseconds(0));
    ASSERT_LE(d, ceiling);
    const auto bin = std::min<std::int64_t>(bins - 1, d.count() * bins / (ceiling.count() + 1));
    ++histogram[static_cast<std::size_t>(bin)];
    sum += static_cast<double>(d.count());
  }
  // Each bin expects 10000 (standard deviation about 95): 5 % is over five of them.
  for (int b = 0; b < bins; ++b) {
    EXPECT_NEAR(histogram[static_cast<std::size_t>(b)], samples / bins, samples / bins / 20)
        << "bin " << b;
  }
  EXPECT_NEAR(sum / samples / static_cast<double>(ceiling.count()), 0.5, 0.01);
}

}  // namespace
}  // namespace dialer
