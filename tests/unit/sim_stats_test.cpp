#include "sim/sim_stats.hpp"

#include <gtest/gtest.h>

#include "sim/rate_limiter.hpp"
#include "sim/string_set.hpp"

namespace dialer::sim {
namespace {

class sim_stats_test : public ::testing::Test {
 protected:
  // Places a call at `at` (from the test's origin) lasting `duration`.
  sim_stats::placement place(nanoseconds at, nanoseconds duration = seconds(10),
                             std::string_view campaign = "c", std::string_view task = {},
                             std::string_view phone = {}) {
    const std::string task_id = task.empty() ? "T-" + std::to_string(next_++) : std::string(task);
    const std::string phone_number =
        phone.empty() ? "+97150" + std::to_string(1000000 + next_++) : std::string(phone);
    return stats_.on_placed(origin_ + at,
                            wall_ + std::chrono::duration_cast<system_time::duration>(at), duration,
                            campaign, task_id, phone_number);
  }

  sim_stats stats_;
  steady_time origin_{seconds(1000)};
  system_time wall_{seconds(1767225600)};
  int next_ = 0;
};

TEST_F(sim_stats_test, window_of_100ms_is_half_open) {
  for (const int ms : {0, 50, 99, 100, 150}) {
    place(milliseconds(ms));
  }
  // (t - 100 ms, t]: {0, 50, 99}, {50, 99, 100}, {99, 100, 150}; never all four of 0..100.
  EXPECT_EQ(stats_.max_starts_100ms(), 3);
  EXPECT_EQ(stats_.max_starts_1s(), 5);
}

TEST_F(sim_stats_test, window_of_100ms_holds_a_placement_one_ns_inside) {
  place(milliseconds(0));
  place(milliseconds(50));
  place(milliseconds(99));
  place(milliseconds(100) - nanoseconds(1));
  EXPECT_EQ(stats_.max_starts_100ms(), 4);
}

TEST_F(sim_stats_test, simultaneous_placements_share_a_window) {
  for (int i = 0; i < 7; ++i) {
    place(milliseconds(500));
  }
  place(milliseconds(600));
  EXPECT_EQ(stats_.max_starts_100ms(), 7);
  EXPECT_EQ(stats_.max_starts_1s(), 8);
}

TEST_F(sim_stats_test, window_of_1s_is_exact_at_the_boundary) {
  for (int i = 0; i < 10; ++i) {
    place(milliseconds(100 * i));  // 0, 100, …, 900
  }
  place(seconds(1));  // 0 leaves the window as 1000 enters
  EXPECT_EQ(stats_.max_starts_1s(), 10);
  place(seconds(1));  // two at 1000 ms: 100..900 (9) + 2
  EXPECT_EQ(stats_.max_starts_1s(), 11);
  EXPECT_EQ(stats_.max_starts_100ms(), 2);
}

TEST_F(sim_stats_test, max_window_is_kept_after_the_rate_drops) {
  for (int i = 0; i < 5; ++i) {
    place(milliseconds(10 * i));
  }
  place(seconds(5));
  place(seconds(6));
  EXPECT_EQ(stats_.max_starts_100ms(), 5);
  EXPECT_EQ(stats_.max_starts_1s(), 5);
}

TEST_F(sim_stats_test, active_calls_expire_at_place_time_plus_duration) {
  place(milliseconds(0), milliseconds(100));
  place(milliseconds(10), milliseconds(200));
  place(milliseconds(20), milliseconds(50));
  EXPECT_EQ(stats_.active(origin_ + milliseconds(20)), 3);
  EXPECT_EQ(stats_.active(origin_ + milliseconds(70) - nanoseconds(1)), 3);
  EXPECT_EQ(stats_.active(origin_ + milliseconds(70)), 2);
  EXPECT_EQ(stats_.active(origin_ + milliseconds(100)), 1);
  EXPECT_EQ(stats_.active(origin_ + milliseconds(210) - nanoseconds(1)), 1);
  EXPECT_EQ(stats_.active(origin_ + milliseconds(210)), 0);
  EXPECT_EQ(stats_.max_active(), 3);
}

TEST_F(sim_stats_test, max_active_counts_a_call_ending_as_another_starts_once) {
  place(milliseconds(0), milliseconds(100));
  place(milliseconds(100), milliseconds(100));  // the first ended exactly now
  EXPECT_EQ(stats_.max_active(), 1);
  place(milliseconds(150), milliseconds(100));
  EXPECT_EQ(stats_.max_active(), 2);
  EXPECT_EQ(stats_.active(origin_ + milliseconds(150)), 2);
}

TEST_F(sim_stats_test, max_active_is_a_high_water_mark) {
  for (int i = 0; i < 4; ++i) {
    place(milliseconds(i), milliseconds(10));
  }
  place(seconds(1), milliseconds(10));
  EXPECT_EQ(stats_.max_active(), 4);
  EXPECT_EQ(stats_.active(origin_ + seconds(1)), 1);
}

TEST_F(sim_stats_test, zero_length_call_is_never_active) {
  place(milliseconds(0), nanoseconds::zero());
  EXPECT_EQ(stats_.active(origin_), 0);
  EXPECT_EQ(stats_.max_active(), 0);
  EXPECT_EQ(stats_.placed(), 1);
}

TEST_F(sim_stats_test, a_time_going_backwards_counts_as_the_latest_seen) {
  place(milliseconds(100));
  place(milliseconds(40));  // a racing thread's older timestamp
  place(milliseconds(199));
  EXPECT_EQ(stats_.max_starts_100ms(), 3);  // all at 100, 100, 199
}

TEST_F(sim_stats_test, duplicates_by_task_id_need_the_same_campaign) {
  EXPECT_FALSE(place(milliseconds(0), seconds(1), "spring", "T-1").duplicate_task);
  EXPECT_TRUE(place(milliseconds(1), seconds(1), "spring", "T-1").duplicate_task);
  EXPECT_FALSE(place(milliseconds(2), seconds(1), "autumn", "T-1").duplicate_task);
  EXPECT_TRUE(place(milliseconds(3), seconds(1), "spring", "T-1").duplicate_task);
  // Concatenation must not make different pairs equal.
  EXPECT_FALSE(place(milliseconds(4), seconds(1), "ab", "c").duplicate_task);
  EXPECT_FALSE(place(milliseconds(5), seconds(1), "a", "bc").duplicate_task);
  EXPECT_EQ(stats_.duplicates_by_task_id(), 2);
  EXPECT_EQ(stats_.duplicates_by_phone(), 0);
  EXPECT_EQ(stats_.placed(), 6);
}

TEST_F(sim_stats_test, duplicates_by_phone_across_tasks_and_campaigns) {
  EXPECT_FALSE(place(milliseconds(0), seconds(1), "a", "T-1", "+971501234567").duplicate_phone);
  EXPECT_TRUE(place(milliseconds(1), seconds(1), "a", "T-2", "+971501234567").duplicate_phone);
  EXPECT_TRUE(place(milliseconds(2), seconds(1), "b", "T-3", "+971501234567").duplicate_phone);
  EXPECT_FALSE(place(milliseconds(3), seconds(1), "b", "T-4", "+971501234568").duplicate_phone);
  EXPECT_EQ(stats_.duplicates_by_phone(), 2);
  EXPECT_EQ(stats_.duplicates_by_task_id(), 0);
}

TEST_F(sim_stats_test, json_has_every_counter) {
  stats_.on_request();
  stats_.on_request();
  stats_.on_request();
  stats_.on_unauthorized();
  stats_.on_response(401);
  stats_.on_bad_request();
  stats_.on_response(422);
  stats_.on_response(201);
  stats_.on_fault(fault_kind::rate_limited);
  place(milliseconds(0), milliseconds(500), "c", "T-1", "+971501234567");
  place(milliseconds(250), milliseconds(500), "c", "T-1", "+971501234567");
  EXPECT_EQ(
      stats_.to_json(origin_ + milliseconds(600)),
      R"({"requests":3,"placed":2,"duplicates_by_task_id":1,"duplicates_by_phone":1,)"
      R"("max_active":2,"active":1,"max_starts_100ms":1,"max_starts_1s":2,)"
      R"("responses_by_status":{"201":1,"401":1,"422":1},)"
      R"("faults":{"429":0,"503":0,"500_after_place":0,"drop_after_place":0,"rate_limited":1,)"
      R"("max_active":0},"unauthorized":1,"bad_requests":1,)"
      R"("first_placed_ms":1767225600000,"last_placed_ms":1767225600250})");
}

TEST_F(sim_stats_test, empty_json_has_zeros) {
  EXPECT_EQ(stats_.to_json(origin_),
            R"({"requests":0,"placed":0,"duplicates_by_task_id":0,"duplicates_by_phone":0,)"
            R"("max_active":0,"active":0,"max_starts_100ms":0,"max_starts_1s":0,)"
            R"("responses_by_status":{},"faults":{"429":0,"503":0,"500_after_place":0,)"
            R"("drop_after_place":0,"rate_limited":0,"max_active":0},"unauthorized":0,)"
            R"("bad_requests":0,"first_placed_ms":0,"last_placed_ms":0})");
}

TEST(sim_string_set_test, exact_membership_across_growth) {
  string_set set(16);
  for (int i = 0; i < 100'000; ++i) {
    ASSERT_TRUE(set.insert("key-" + std::to_string(i))) << i;
  }
  for (int i = 0; i < 100'000; i += 7) {
    ASSERT_FALSE(set.insert("key-" + std::to_string(i))) << i;
  }
  EXPECT_TRUE(set.insert(""));
  EXPECT_FALSE(set.insert(""));
  EXPECT_EQ(set.size(), 100'001u);
}

TEST(sim_rate_limiter_test, burst_then_one_token_per_interval) {
  rate_limiter limiter(100);  // 100/s, burst 10, one token per 10 ms
  const steady_time t0{seconds(5)};
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(limiter.try_acquire(t0)) << i;
  }
  EXPECT_FALSE(limiter.try_acquire(t0));
  EXPECT_FALSE(limiter.try_acquire(t0 + milliseconds(10) - nanoseconds(1)));
  EXPECT_TRUE(limiter.try_acquire(t0 + milliseconds(10)));
  EXPECT_FALSE(limiter.try_acquire(t0 + milliseconds(10)));
  // Idle for a long time refills to the burst, not beyond.
  const steady_time t1 = t0 + seconds(10);
  int granted = 0;
  while (limiter.try_acquire(t1)) {
    ++granted;
  }
  EXPECT_EQ(granted, 10);
}

TEST(sim_rate_limiter_test, exact_for_rates_that_do_not_divide_1e9) {
  rate_limiter limiter(3);  // burst 1: one token every 333333333.33 ns after the last grant
  const steady_time t0{seconds(5)};
  EXPECT_TRUE(limiter.try_acquire(t0));
  EXPECT_FALSE(limiter.try_acquire(t0 + nanoseconds(333'333'333)));
  EXPECT_TRUE(limiter.try_acquire(t0 + nanoseconds(333'333'334)));
  // The next token is due at 333333334 + 333333333.33 = 666666667.33 ns.
  EXPECT_FALSE(limiter.try_acquire(t0 + nanoseconds(666'666'667)));
  EXPECT_TRUE(limiter.try_acquire(t0 + nanoseconds(666'666'668)));
  EXPECT_EQ(limiter.burst(), 1);
}

TEST(sim_rate_limiter_test, sustained_rate_is_exact_over_many_seconds) {
  rate_limiter limiter(7);  // burst 1
  const steady_time t0{seconds(5)};
  int granted = 0;
  for (std::int64_t us = 0; us < 10'000'000; ++us) {
    granted += limiter.try_acquire(t0 + std::chrono::microseconds(us)) ? 1 : 0;
  }
  // Polled every microsecond, each grant comes at most 1 us after its token: 70 tokens in 10 s,
  // minus at most one lost to that lag.
  EXPECT_GE(granted, 69);
  EXPECT_LE(granted, 70);
}

TEST(sim_rate_limiter_test, zero_means_unlimited) {
  rate_limiter limiter(0);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(limiter.try_acquire(steady_time{}));
  }
}

}  // namespace
}  // namespace dialer::sim
