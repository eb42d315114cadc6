#include "scheduler/token_bucket.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <tuple>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/time.hpp"

namespace dialer {
namespace {

using std::chrono::minutes;

struct rate {
  std::int64_t count;
  nanoseconds per;
  std::int64_t burst;
};

std::string rate_name(const ::testing::TestParamInfo<rate>& info) {
  const rate& r = info.param;
  const std::int64_t ms = std::chrono::duration_cast<milliseconds>(r.per).count();
  return std::to_string(r.count) + "_per_" + std::to_string(ms) + "ms_burst_" +
         std::to_string(r.burst);
}

// The most tokens any window of length `window` may see: burst + floor(window * count / per).
std::int64_t window_bound(const rate& r, nanoseconds window) {
  const __int128 earned = static_cast<__int128>(window.count()) * r.count / r.per.count();
  return r.burst + static_cast<std::int64_t>(earned);
}

// Grants `n` tokens to a requester that always asks again at the instant it was told; returns
// the grant instants as offsets from `start`.
std::vector<std::int64_t> saturate(token_bucket& bucket, steady_time start, std::int64_t n) {
  std::vector<std::int64_t> grants;
  grants.reserve(static_cast<std::size_t>(n));
  steady_time now = start;
  while (static_cast<std::int64_t>(grants.size()) < n) {
    const auto d = bucket.try_acquire(now);
    if (d.granted) {
      grants.push_back((now - start).count());
    } else {
      EXPECT_GT(d.earliest, now);
      now = d.earliest;
    }
  }
  return grants;
}

// Largest number of grants inside any closed window [g, g + window] that starts at a grant.
std::int64_t max_in_window(const std::vector<std::int64_t>& grants, nanoseconds window) {
  std::int64_t best = 0;
  std::size_t hi = 0;
  for (std::size_t lo = 0; lo < grants.size(); ++lo) {
    hi = std::max(hi, lo);
    while (hi < grants.size() && grants[hi] - grants[lo] <= window.count()) {
      ++hi;
    }
    best = std::max<std::int64_t>(best, static_cast<std::int64_t>(hi - lo));
  }
  return best;
}

TEST(token_bucket, constructor_rejects_zero_or_negative_arguments) {
  EXPECT_THROW(token_bucket(0, seconds(1), 1), std::invalid_argument);
  EXPECT_THROW(token_bucket(-1, seconds(1), 1), std::invalid_argument);
  EXPECT_THROW(token_bucket(1, nanoseconds(0), 1), std::invalid_argument);
  EXPECT_THROW(token_bucket(1, nanoseconds(-1), 1), std::invalid_argument);
  EXPECT_THROW(token_bucket(1, seconds(1), 0), std::invalid_argument);
  EXPECT_THROW(token_bucket(1, seconds(1), -5), std::invalid_argument);
  EXPECT_NO_THROW(token_bucket(1, nanoseconds(1), 1));
}

TEST(token_bucket, accessors_report_the_configured_rate) {
  const token_bucket bucket(7, seconds(2), 3);
  EXPECT_EQ(bucket.count(), 7);
  EXPECT_EQ(bucket.per(), seconds(2));
  EXPECT_EQ(bucket.burst(), 3);
}

TEST(token_bucket, fresh_bucket_is_available_now) {
  manual_time_source clock;
  const token_bucket bucket(1, seconds(1), 1);
  EXPECT_EQ(bucket.next_available(clock.steady_now()), clock.steady_now());
}

TEST(token_bucket, burst_is_granted_at_once_then_denied_until_exactly_one_interval_later) {
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(5, seconds(1), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(bucket.try_acquire(t0).granted) << i;
  }
  const auto denied = bucket.try_acquire(t0);
  EXPECT_FALSE(denied.granted);
  EXPECT_EQ(denied.earliest, t0 + milliseconds(200));

  clock.advance(milliseconds(200) - nanoseconds(1));
  const auto still_denied = bucket.try_acquire(clock.steady_now());
  EXPECT_FALSE(still_denied.granted);
  EXPECT_EQ(still_denied.earliest, t0 + milliseconds(200));

  clock.advance(nanoseconds(1));
  EXPECT_TRUE(bucket.try_acquire(clock.steady_now()).granted);
  EXPECT_FALSE(bucket.try_acquire(clock.steady_now()).granted);
}

TEST(token_bucket, nothing_before_one_second_then_six_tokens_at_six_seconds) {
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(1, seconds(1), 10);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(bucket.try_acquire(t0).granted);
  }

  clock.advance(milliseconds(999));
  const auto early = bucket.try_acquire(clock.steady_now());
  EXPECT_FALSE(early.granted);
  EXPECT_EQ(early.earliest, t0 + seconds(1));

  clock.advance(seconds(6) - milliseconds(999));
  int granted = 0;
  while (bucket.try_acquire(clock.steady_now()).granted) {
    ++granted;
  }
  EXPECT_EQ(granted, 6);
  EXPECT_EQ(bucket.next_available(clock.steady_now()), t0 + seconds(7));
}

TEST(token_bucket, idle_time_never_accumulates_more_than_burst) {
  manual_time_source clock;
  token_bucket bucket(100, seconds(1), 4);
  ASSERT_TRUE(bucket.try_acquire(clock.steady_now()).granted);
  clock.advance(std::chrono::hours(5));
  int granted = 0;
  while (bucket.try_acquire(clock.steady_now()).granted) {
    ++granted;
  }
  EXPECT_EQ(granted, 4);
}

TEST(token_bucket, non_integral_interval_rounds_each_earliest_up_to_the_next_nanosecond) {
  manual_time_source clock;
  token_bucket bucket(3, seconds(1), 1);
  const auto grants = saturate(bucket, clock.steady_now(), 5);
  // 333333333.33 ns apart: a token is never handed out before its exact arrival.
  const std::vector<std::int64_t> expected = {0, 333'333'334, 666'666'667, 1'000'000'000,
                                              1'333'333'334};
  EXPECT_EQ(grants, expected);
}

class token_bucket_exactness : public ::testing::TestWithParam<rate> {};

TEST_P(token_bucket_exactness, a_million_tokens_match_burst_plus_floor_rate_t_without_drift) {
  const rate r = GetParam();
  manual_time_source clock;
  token_bucket bucket(r.count, r.per, r.burst);
  constexpr std::int64_t n = 1'000'000;
  const auto grants = saturate(bucket, clock.steady_now(), n);

  // The last token arrives exactly when (n - burst) intervals have passed, rounded up to a ns.
  const __int128 last_scaled = static_cast<__int128>(n - r.burst) * r.per.count();
  const auto last = static_cast<std::int64_t>((last_scaled + r.count - 1) / r.count);
  EXPECT_EQ(grants.back(), last);

  // Tokens granted over [0, T] is exactly burst + floor(T * rate), for T at every grant, just
  // before every grant, and at seeded random instants.
  const auto granted_by = [&](std::int64_t t) {
    return static_cast<std::int64_t>(std::upper_bound(grants.begin(), grants.end(), t) -
                                     grants.begin());
  };
  for (std::size_t i = static_cast<std::size_t>(r.burst); i < grants.size(); i += 997) {
    const std::int64_t t = grants[i];
    ASSERT_EQ(granted_by(t), window_bound(r, nanoseconds(t))) << "T=" << t;
    ASSERT_EQ(granted_by(t - 1), window_bound(r, nanoseconds(t - 1))) << "T=" << t - 1;
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::int64_t> any_t(0, grants.back());
  for (int i = 0; i < 10'000; ++i) {
    const std::int64_t t = any_t(rng);
    ASSERT_EQ(granted_by(t), window_bound(r, nanoseconds(t))) << "T=" << t;
  }
}

INSTANTIATE_TEST_SUITE_P(rates, token_bucket_exactness,
                         ::testing::Values(rate{3, seconds(1), 1}, rate{7, seconds(1), 1},
                                           rate{1, minutes(1), 1}, rate{600, minutes(1), 1},
                                           rate{7, seconds(1), 5}, rate{200, seconds(1), 10},
                                           rate{1'000'000, seconds(1), 50}),
                         rate_name);

class token_bucket_windows : public ::testing::TestWithParam<rate> {};

TEST_P(token_bucket_windows, random_requests_never_exceed_burst_plus_rate_t_in_any_window) {
  const rate r = GetParam();
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(r.count, r.per, r.burst);

  // Seeded random request instants over 10 s: clusters of requests at one instant, separated by
  // exponential gaps whose mean is below the token interval, so the bucket is often empty.
  std::mt19937_64 rng(20260101);
  const double interval_ns = static_cast<double>(r.per.count()) / static_cast<double>(r.count);
  std::exponential_distribution<double> gap(1.0 / (interval_ns / 3.0));
  std::uniform_int_distribution<int> cluster(1, 4);
  std::vector<std::int64_t> grants;
  std::int64_t t = 0;
  while (t < nanoseconds(seconds(10)).count()) {
    const int requests = cluster(rng);
    for (int i = 0; i < requests; ++i) {
      if (bucket.try_acquire(t0 + nanoseconds(t)).granted) {
        grants.push_back(t);
      }
    }
    t += static_cast<std::int64_t>(gap(rng)) + 1;
  }
  ASSERT_GT(grants.size(), static_cast<std::size_t>(r.burst));
  for (nanoseconds window : {nanoseconds(0), nanoseconds(milliseconds(100)),
                             nanoseconds(seconds(1)), nanoseconds(seconds(10))}) {
    EXPECT_LE(max_in_window(grants, window), window_bound(r, window))
        << "window " << window.count() << " ns";
  }
}

TEST_P(token_bucket_windows, saturated_requester_gets_exactly_the_maximum_in_every_window) {
  const rate r = GetParam();
  manual_time_source clock;
  token_bucket bucket(r.count, r.per, r.burst);
  const std::int64_t n = window_bound(r, seconds(10));
  const auto grants = saturate(bucket, clock.steady_now(), n);
  EXPECT_LE(grants.back(), nanoseconds(seconds(10)).count());
  for (nanoseconds window :
       {nanoseconds(milliseconds(100)), nanoseconds(seconds(1)), nanoseconds(seconds(10))}) {
    EXPECT_EQ(max_in_window(grants, window), std::min(n, window_bound(r, window)))
        << "window " << window.count() << " ns";
  }
}

INSTANTIATE_TEST_SUITE_P(rates, token_bucket_windows,
                         ::testing::Values(rate{200, seconds(1), 10}, rate{3, seconds(1), 2},
                                           rate{7, seconds(1), 1}, rate{600, minutes(1), 5},
                                           rate{500, seconds(1), 50}),
                         rate_name);

TEST(token_bucket, next_available_agrees_with_try_acquire) {
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(7, seconds(1), 3);
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::int64_t> gap(0, nanoseconds(milliseconds(300)).count());
  std::int64_t t = 0;
  for (int i = 0; i < 20'000; ++i) {
    const steady_time now = t0 + nanoseconds(t);
    const steady_time next = bucket.next_available(now);
    const auto d = bucket.try_acquire(now);
    ASSERT_EQ(d.granted, next <= now) << "request " << i;
    if (!d.granted) {
      ASSERT_EQ(d.earliest, next) << "request " << i;
      ASSERT_TRUE(bucket.try_acquire(next).granted) << "request " << i;
      t = (next - t0).count();
    }
    const std::int64_t g = gap(rng);
    t += g % 3 == 0 ? 0 : g;  // a third of the requests repeat the previous instant
  }
}

TEST(token_bucket, next_available_does_not_spend_a_token) {
  manual_time_source clock;
  token_bucket bucket(1, seconds(1), 1);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(bucket.next_available(clock.steady_now()), clock.steady_now());
  }
  ASSERT_TRUE(bucket.try_acquire(clock.steady_now()).granted);
  EXPECT_EQ(bucket.next_available(clock.steady_now()), clock.steady_now() + seconds(1));
}

TEST(token_bucket, set_rate_before_first_acquire_applies_fully) {
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(1, seconds(1), 1);
  bucket.set_rate(10, seconds(1), 4, t0);
  const auto grants = saturate(bucket, t0, 6);
  const std::vector<std::int64_t> expected = {0, 0, 0, 0, 100'000'000, 200'000'000};
  EXPECT_EQ(grants, expected);
}

TEST(token_bucket, set_rate_up_mid_stream_applies_the_new_interval_from_now) {
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(1, seconds(1), 1);
  ASSERT_TRUE(bucket.try_acquire(t0).granted);
  clock.advance(milliseconds(500));
  bucket.set_rate(10, seconds(1), 1, clock.steady_now());
  // The backlog (0.5 s) is capped at what the new bucket holds (one 100 ms interval).
  const auto grants = saturate(bucket, clock.steady_now(), 4);
  const std::vector<std::int64_t> expected = {100'000'000, 200'000'000, 300'000'000, 400'000'000};
  EXPECT_EQ(grants, expected);
  EXPECT_LT(t0 + milliseconds(500) + nanoseconds(grants.front()), t0 + seconds(1));
}

TEST(token_bucket, set_rate_down_mid_stream_spaces_later_tokens_at_the_new_interval) {
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(10, seconds(1), 1);
  ASSERT_TRUE(bucket.try_acquire(t0).granted);
  clock.advance(milliseconds(50));
  bucket.set_rate(1, seconds(1), 1, clock.steady_now());
  // The token already due at 100 ms keeps its time; every later one is a second apart.
  const auto grants = saturate(bucket, t0, 3);
  const std::vector<std::int64_t> expected = {100'000'000, 1'100'000'000, 2'100'000'000};
  EXPECT_EQ(grants, expected);
}

TEST(token_bucket, lower_burst_on_a_full_bucket_takes_effect_at_once) {
  manual_time_source clock;
  token_bucket bucket(1, seconds(1), 10);
  ASSERT_TRUE(bucket.try_acquire(clock.steady_now()).granted);
  clock.advance(seconds(60));
  bucket.set_rate(1, seconds(1), 3, clock.steady_now());
  int granted = 0;
  while (bucket.try_acquire(clock.steady_now()).granted) {
    ++granted;
  }
  EXPECT_EQ(granted, 3);
  EXPECT_EQ(bucket.next_available(clock.steady_now()), clock.steady_now() + seconds(1));
}

TEST(token_bucket, lower_burst_mid_burst_grants_nothing_more_until_the_next_interval) {
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(1, seconds(1), 10);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(bucket.try_acquire(t0).granted);
  }
  bucket.set_rate(1, seconds(1), 3, t0);
  const auto d = bucket.try_acquire(t0);
  EXPECT_FALSE(d.granted);
  EXPECT_EQ(d.earliest, t0 + seconds(1));
}

TEST(token_bucket, higher_burst_on_a_full_bucket_is_available_at_once) {
  manual_time_source clock;
  token_bucket bucket(1, seconds(1), 2);
  ASSERT_TRUE(bucket.try_acquire(clock.steady_now()).granted);
  clock.advance(seconds(60));
  bucket.set_rate(1, seconds(1), 10, clock.steady_now());
  int granted = 0;
  while (bucket.try_acquire(clock.steady_now()).granted) {
    ++granted;
  }
  EXPECT_EQ(granted, 10);
}

TEST(token_bucket, set_rate_rejects_zero_or_negative_and_keeps_the_old_rate) {
  manual_time_source clock;
  token_bucket bucket(5, seconds(1), 2);
  ASSERT_TRUE(bucket.try_acquire(clock.steady_now()).granted);
  EXPECT_THROW(bucket.set_rate(0, seconds(1), 1, clock.steady_now()), std::invalid_argument);
  EXPECT_THROW(bucket.set_rate(1, nanoseconds(0), 1, clock.steady_now()), std::invalid_argument);
  EXPECT_THROW(bucket.set_rate(1, seconds(1), 0, clock.steady_now()), std::invalid_argument);
  EXPECT_THROW(bucket.set_rate(-3, seconds(-1), -1, clock.steady_now()), std::invalid_argument);
  EXPECT_EQ(bucket.count(), 5);
  EXPECT_EQ(bucket.per(), seconds(1));
  EXPECT_EQ(bucket.burst(), 2);
  EXPECT_TRUE(bucket.try_acquire(clock.steady_now()).granted);
  EXPECT_EQ(bucket.next_available(clock.steady_now()), clock.steady_now() + milliseconds(200));
}

// A config reload re-applies the same rate to every trunk; that must change nothing.
TEST(token_bucket, set_rate_with_unchanged_parameters_changes_no_grant_instant) {
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket plain(3, seconds(1), 1);
  token_bucket reloaded(3, seconds(1), 1);
  ASSERT_TRUE(plain.try_acquire(t0).granted);
  ASSERT_TRUE(reloaded.try_acquire(t0).granted);
  const steady_time reload_at = t0 + milliseconds(100);
  reloaded.set_rate(3, seconds(1), 1, reload_at);
  EXPECT_EQ(reloaded.next_available(reload_at), plain.next_available(reload_at));
  EXPECT_EQ(reloaded.next_available(reload_at), t0 + nanoseconds(333'333'334));
}

TEST(token_bucket, repeated_reloads_never_let_a_token_out_early) {
  const rate r{3, seconds(1), 1};
  manual_time_source clock;
  const steady_time t0 = clock.steady_now();
  token_bucket bucket(r.count, r.per, r.burst);
  std::vector<std::int64_t> grants;
  steady_time now = t0;
  while (grants.size() < 3000) {
    const auto d = bucket.try_acquire(now);
    if (d.granted) {
      grants.push_back((now - t0).count());
      bucket.set_rate(r.count, r.per, r.burst, now);
    } else {
      now = d.earliest;
    }
  }
  EXPECT_LE(max_in_window(grants, seconds(1)), window_bound(r, seconds(1)));
  // Token 3000 arrives 2999 intervals of 333333333.33 ns after the first, rounded up.
  EXPECT_EQ(grants.back(), 999'666'666'667) << "tokens drifted early over 3000 reloads";
}

}  // namespace
}  // namespace dialer

namespace dialer {
namespace {

// available() must agree with how many try_acquire() calls succeed at the same instant.
TEST(token_bucket_available, matches_the_grants_at_the_same_instant) {
  for (const auto& [count, per_ms, burst] :
       std::vector<std::tuple<int, int, int>>{{200, 1000, 10}, {3, 1000, 1}, {7, 1000, 4},
                                              {600, 60000, 5}}) {
    manual_time_source clock;
    token_bucket bucket(count, std::chrono::milliseconds(per_ms), burst);
    EXPECT_EQ(bucket.available(clock.steady_now()), burst);
    std::mt19937_64 rng(7);
    for (int step = 0; step < 2000; ++step) {
      clock.advance(std::chrono::microseconds(rng() % 20000));
      const steady_time now = clock.steady_now();
      const std::int64_t predicted = bucket.available(now);
      token_bucket probe = bucket;
      std::int64_t granted = 0;
      while (probe.try_acquire(now).granted) {
        ++granted;
      }
      ASSERT_EQ(predicted, granted) << count << "/" << per_ms << "ms burst " << burst;
      if (rng() % 2 == 0) {
        (void)bucket.try_acquire(now);
      }
    }
  }
}

}  // namespace
}  // namespace dialer
