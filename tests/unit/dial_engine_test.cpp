#include "scheduler/dial_engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/time.hpp"
#include "tests/unit/engine_fixture.hpp"

namespace dialer {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using test::agent_id;
using test::campaign_id;
using test::key;
using test::phone_number_id;
using test::started;
using test::status;
using test::task_name;
using test::transport;

// "campaign:task:N" → {task, N}: the tests below read the task as `.first`.
std::pair<std::string, int> parse_key(const std::string& key) {
  test::parsed_key k = test::parse_key(key);
  return {std::move(k.task), k.attempt};
}

class dial_engine_test : public test::one_campaign_fixture {
 protected:
  [[nodiscard]] nanoseconds at(std::size_t i) const { return writes().at(i).at - t0_; }
  [[nodiscard]] std::vector<std::string> keys_of(const std::string& task) const {
    std::vector<std::string> out;
    for (const auto& w : writes()) {
      if (parse_key(w.idempotency_key).first == task) {
        out.push_back(w.idempotency_key);
      }
    }
    return out;
  }
  [[nodiscard]] std::vector<steady_time> instants_of(const std::string& task) const {
    std::vector<steady_time> out;
    for (const auto& w : writes()) {
      if (parse_key(w.idempotency_key).first == task) {
        out.push_back(w.at);
      }
    }
    return out;
  }
};

// ---- 1. Rate ----

TEST_F(dial_engine_test, rate_200_per_second_burst_10_holds_every_window_over_1000_calls) {
  trunk_.calls_per_second = {200, seconds(1)};
  trunk_.burst = 10;
  trunk_.max_concurrent_calls = 5000;  // not binding
  add_tasks(1000);
  start(/*page_size=*/100);
  engine_->ingest_finished(campaign_id);
  run_to_quiet();

  ASSERT_EQ(writes().size(), 1000u);
  EXPECT_EQ(store_.count(task_state::started), 1000u);
  EXPECT_EQ(at(0), nanoseconds(0));
  // GCRA: 10 at once, then one every 5 ms: the last at (1000 - 10) / 200 s exactly.
  EXPECT_EQ(at(999) - at(0), milliseconds(4950));
  // Every closed window between two sends: at most burst + floor(rate * T) (token_bucket.hpp).
  std::size_t violations = 0;
  for (std::size_t i = 0; i < writes().size(); ++i) {
    for (std::size_t j = i; j < writes().size(); ++j) {
      const std::int64_t t = (writes()[j].at - writes()[i].at).count();
      const std::int64_t bound =
          10 + static_cast<std::int64_t>(static_cast<__int128>(t) * 200 / 1'000'000'000);
      if (static_cast<std::int64_t>(j - i + 1) > bound) {
        ++violations;
      }
    }
  }
  EXPECT_EQ(violations, 0u);
  const auto max_in = [&](nanoseconds window) {
    std::size_t best = 0;
    std::size_t hi = 0;
    for (std::size_t lo = 0; lo < writes().size(); ++lo) {
      while (hi < writes().size() && writes()[hi].at - writes()[lo].at <= window) {
        ++hi;
      }
      best = std::max(best, hi - lo);
    }
    return best;
  };
  EXPECT_EQ(max_in(milliseconds(100)), 30u);  // 10 + 200 * 0.1
  EXPECT_EQ(max_in(seconds(1)), 210u);        // 10 + 200 * 1
  EXPECT_EQ(idle_calls_, 1);
}

// ---- 2. Concurrency ----

TEST_F(dial_engine_test, capacity_5_allows_no_sixth_live_call_until_the_first_slot_expires) {
  trunk_.max_concurrent_calls = 5;
  trunk_.calls_per_second = {1000, seconds(1)};
  trunk_.burst = 100;
  campaign_.max_duration = seconds(10);
  slot_grace_ = nanoseconds(0);
  add_tasks(20);
  start();

  EXPECT_EQ(writes().size(), 5u);
  EXPECT_EQ(active(), 5);
  run_until(t0_ + seconds(10) - nanoseconds(1));
  poke();
  EXPECT_EQ(writes().size(), 5u);
  run_until(t0_ + seconds(10));
  ASSERT_EQ(writes().size(), 10u);
  EXPECT_EQ(at(5), seconds(10));
  EXPECT_EQ(at(9), seconds(10));

  run_to_quiet();
  ASSERT_EQ(writes().size(), 20u);
  EXPECT_EQ(at(19), seconds(30));
  for (std::size_t i = 0; i < writes().size(); ++i) {
    int live = 0;
    for (std::size_t j = 0; j <= i; ++j) {
      live += writes()[i].at - writes()[j].at < seconds(10) ? 1 : 0;
    }
    EXPECT_LE(live, 5) << "at request " << i;
  }
  EXPECT_EQ(trunk().peak_active, 5);
}

// ---- 3. Tokens wait for connections ----

TEST_F(dial_engine_test, no_token_is_spent_and_nothing_claimed_until_a_connection_is_ready) {
  pool_.set_ready(0);
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 3;
  add_tasks(10);
  start();

  EXPECT_EQ(writes().size(), 0u);
  EXPECT_EQ(store_.mark_dialing_calls(), 0);
  EXPECT_EQ(store_.count(task_state::dialing), 0u);
  EXPECT_EQ(pool_.waiters(), 1u);

  run_for(seconds(5));
  poke();
  EXPECT_EQ(writes().size(), 0u);
  EXPECT_EQ(store_.mark_dialing_calls(), 0);

  const steady_time ready_at = now();
  pool_.set_ready(16);
  pool_.fire_when_ready();
  settle();
  ASSERT_EQ(writes().size(), 3u);  // burst, not 5 s worth of tokens
  for (const auto& w : writes()) {
    EXPECT_EQ(w.at, ready_at);
  }
  run_to_quiet();
  ASSERT_EQ(writes().size(), 10u);
  for (std::size_t i = 3; i < writes().size(); ++i) {
    EXPECT_EQ(writes()[i].at - ready_at, milliseconds(100) * static_cast<int>(i - 2)) << i;
  }
}

// ---- 4. Durable first ----

TEST_F(dial_engine_test, a_request_is_written_only_after_its_claim_is_committed) {
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 3;
  store_.hold_claims(true);
  add_tasks(5);
  start();

  ASSERT_EQ(store_.held_claims().size(), 3u);
  EXPECT_EQ(writes().size(), 0u);
  EXPECT_EQ(store_.count(task_state::dialing), 0u);
  run_for(seconds(2));
  poke();
  EXPECT_EQ(writes().size(), 0u);

  const std::int64_t first_row = store_.held_claims().front().row_id;
  store_.release_claims(1);
  settle();
  ASSERT_EQ(writes().size(), 1u);
  EXPECT_EQ(parse_key(writes()[0].idempotency_key).first, store_.rows().at(first_row).task_id);
  EXPECT_EQ(writes()[0].at, now());  // written at the commit

  store_.release_claims();
  settle();
  EXPECT_EQ(writes().size(), 3u);
}

TEST_F(dial_engine_test, a_refused_claim_is_never_sent_and_gives_its_slot_back) {
  trunk_.max_concurrent_calls = 2;
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 2;
  store_.hold_claims(true);
  add_tasks(3);
  start();

  ASSERT_EQ(store_.held_claims().size(), 2u);
  EXPECT_EQ(active(), 2);
  // Another writer changed task 2 while its claim was queued: the claim must come back false.
  store_.by_task(task_name(2)).state = task_state::suppressed;
  store_.release_claims();
  settle();

  EXPECT_EQ(keys(), std::vector<std::string>{key(task_name(1), 1)});
  EXPECT_EQ(store_.by_task(task_name(2)).state, task_state::suppressed);
  // The refused claim's slot went to task 3 at once.
  ASSERT_EQ(store_.held_claims().size(), 1u);
  EXPECT_EQ(store_.rows().at(store_.held_claims().front().row_id).task_id, task_name(3));
  EXPECT_EQ(active(), 2);  // task 1 started + task 3 claimed
  store_.hold_claims(false);
  store_.release_claims();
  run_to_quiet();
  EXPECT_EQ(keys(), (std::vector<std::string>{key(task_name(1), 1), key(task_name(3), 1)}));
}

TEST_F(dial_engine_test, waiting_for_a_commit_with_every_ready_connection_reserved_does_not_spin) {
  pool_.set_ready(1);
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 3;
  store_.hold_claims(true);
  add_tasks(3);
  start();  // settle() fails the test if the loop never goes quiet

  EXPECT_FALSE(busy_);
  EXPECT_EQ(store_.held_claims().size(), 1u);
  EXPECT_LE(pool_.when_ready_calls(), 2) << "the engine polls the pool while a commit is pending";
  store_.hold_claims(false);
  store_.release_claims();
  run_to_quiet();
  EXPECT_EQ(writes().size(), 3u);
}

// ---- 5. 429 / 503: the trunk is held ----

TEST_F(dial_engine_test, retry_after_2_holds_the_trunk_2_s_then_retries_with_attempt_2) {
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 1;
  add_tasks(3);
  respond([](const std::string& task, int attempt, std::size_t i) -> std::optional<http_response> {
    if (task == task_name(1) && attempt == 1) {
      return status(429, "2");
    }
    return started(i);
  });
  const std::int64_t start_ms = now_ms();
  start();

  ASSERT_EQ(writes().size(), 1u);
  EXPECT_EQ(store_.by_task(task_name(1)).state, task_state::pending);
  EXPECT_EQ(store_.by_task(task_name(1)).not_before_ms, start_ms + 2000);
  EXPECT_EQ(active(), 0);
  run_until(t0_ + seconds(2) - nanoseconds(1));
  poke();
  EXPECT_EQ(writes().size(), 1u);

  run_to_quiet();
  ASSERT_EQ(writes().size(), 4u);
  EXPECT_EQ(writes()[1].idempotency_key, key(task_name(1), 2));
  EXPECT_EQ(at(1), seconds(2));
  EXPECT_EQ(writes()[2].idempotency_key, key(task_name(2), 1));
  EXPECT_EQ(at(2), milliseconds(2100));
  EXPECT_EQ(store_.by_task(task_name(1)).state, task_state::started);
  EXPECT_EQ(store_.by_task(task_name(1)).attempts, 2);
  EXPECT_EQ(trunk().holds, 1);
}

TEST_F(dial_engine_test, a_503_without_retry_after_holds_the_trunk_with_backoff_of_at_most_60_s) {
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 1;
  campaign_.retry.max_attempts = 50;
  add_tasks(2);
  respond([](const std::string&, int, std::size_t i) -> std::optional<http_response> {
    return i < 10 ? status(503) : started(i);
  });
  start();
  run_to_quiet();

  ASSERT_EQ(writes().size(), 12u);
  for (std::size_t i = 1; i < writes().size(); ++i) {
    EXPECT_LE(writes()[i].at - writes()[i - 1].at, seconds(60) + milliseconds(100)) << i;
  }
  EXPECT_EQ(trunk().holds, 10);
  EXPECT_EQ(store_.count(task_state::started), 2u);
}

TEST_F(dial_engine_test, a_retry_after_of_a_day_is_capped_at_10_minutes) {
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 1;
  add_tasks(1);
  respond([](const std::string&, int attempt, std::size_t i) -> std::optional<http_response> {
    return attempt == 1 ? status(429, "86400") : started(i);
  });
  start();
  run_to_quiet(hours(48));
  ASSERT_EQ(writes().size(), 2u);
  EXPECT_EQ(at(1), minutes(10));
}

// ---- 6. retry_later ----

TEST_F(dial_engine_test, retry_later_backs_off_and_fails_after_max_attempts_counting_in_the_key) {
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 5;
  campaign_.retry.max_attempts = 3;
  campaign_.retry.backoff_base = seconds(1);
  campaign_.retry.backoff_max = seconds(4);
  add_tasks(3);
  respond([](const std::string& task, int, std::size_t i) -> std::optional<http_response> {
    if (task == task_name(1)) {
      return status(409);
    }
    if (task == task_name(2)) {
      return transport(transport_error::connect_failed);
    }
    return started(i);
  });
  const std::int64_t start_ms = now_ms();
  start();

  const auto& a = store_.by_task(task_name(1));
  ASSERT_EQ(a.outcomes.size(), 1u);
  EXPECT_EQ(a.state, task_state::pending);
  EXPECT_EQ(a.outcomes[0].error_class, "http_409");
  EXPECT_GE(a.not_before_ms, start_ms);
  EXPECT_LE(a.not_before_ms, start_ms + 1000);  // backoff 1: uniform in [0, 1 s]
  EXPECT_EQ(active(), 1);                       // only task 3's call holds a slot

  run_to_quiet();
  EXPECT_EQ(
      keys_of(task_name(1)),
      (std::vector<std::string>{key(task_name(1), 1), key(task_name(1), 2), key(task_name(1), 3)}));
  EXPECT_EQ(
      keys_of(task_name(2)),
      (std::vector<std::string>{key(task_name(2), 1), key(task_name(2), 2), key(task_name(2), 3)}));
  for (const auto& task : {task_name(1), task_name(2)}) {
    const auto& r = store_.by_task(task);
    EXPECT_EQ(r.state, task_state::failed) << task;
    EXPECT_EQ(r.attempts, 3) << task;
    EXPECT_NE(r.detail.find("3 attempt"), std::string::npos) << r.detail;
    const auto t = instants_of(task);
    ASSERT_EQ(t.size(), 3u);
    EXPECT_LE(t[1] - t[0], seconds(1) + milliseconds(200)) << task;
    EXPECT_LE(t[2] - t[1], seconds(2) + milliseconds(200)) << task;
  }
  EXPECT_EQ(store_.by_task(task_name(1)).error_class, "http_409");
  EXPECT_EQ(store_.by_task(task_name(2)).error_class, "connect_failed");
  EXPECT_EQ(store_.by_task(task_name(3)).state, task_state::started);
  EXPECT_EQ(progress().failed, 2);
  EXPECT_EQ(progress().retried, 4);
  EXPECT_EQ(active(), 1);
}

// ---- 7. Permanent errors and pauses ----

TEST_F(dial_engine_test, http_400_and_422_fail_the_task_at_once_and_release_the_slot) {
  trunk_.max_concurrent_calls = 1;
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 5;
  add_tasks(3);
  respond([](const std::string& task, int, std::size_t i) -> std::optional<http_response> {
    if (task == task_name(1)) {
      return status(400, "", R"({"error":"invalid to_phone_number"})");
    }
    if (task == task_name(2)) {
      return status(422);
    }
    return started(i);
  });
  start();

  // Capacity 1, yet all three go out at t0: each failure gave its slot straight back.
  ASSERT_EQ(keys(), (std::vector<std::string>{key(task_name(1), 1), key(task_name(2), 1),
                                              key(task_name(3), 1)}));
  EXPECT_EQ(at(2), nanoseconds(0));
  EXPECT_EQ(store_.by_task(task_name(1)).state, task_state::failed);
  EXPECT_EQ(store_.by_task(task_name(1)).error_class, "http_400");
  EXPECT_NE(store_.by_task(task_name(1)).detail.find("invalid to_phone_number"), std::string::npos);
  EXPECT_EQ(store_.by_task(task_name(2)).state, task_state::failed);
  EXPECT_EQ(store_.by_task(task_name(2)).error_class, "http_422");
  EXPECT_EQ(store_.by_task(task_name(3)).state, task_state::started);
  EXPECT_EQ(progress().failed, 2);
}

class dial_engine_pause_test : public dial_engine_test,
                               public ::testing::WithParamInterface<int> {};

TEST_P(dial_engine_pause_test, pauses_the_campaign_keeps_the_task_pending_and_goes_idle) {
  const int code = GetParam();
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 1;
  add_tasks(3);
  respond([code](const std::string& task, int, std::size_t i) -> std::optional<http_response> {
    return task == task_name(1) ? status(code) : started(i);
  });
  start();

  ASSERT_EQ(writes().size(), 1u);
  const campaign_progress p = progress();
  EXPECT_TRUE(p.paused);
  EXPECT_NE(p.pause_reason.find(std::to_string(code)), std::string::npos) << p.pause_reason;
  EXPECT_EQ(p.pause_reason.find("pk_test"), std::string::npos) << p.pause_reason;
  EXPECT_EQ(store_.by_task(task_name(1)).state, task_state::pending);
  EXPECT_EQ(store_.by_task(task_name(1)).error_class, "http_" + std::to_string(code));
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(idle_calls_, 1);

  run_for(minutes(5));
  poke();
  EXPECT_EQ(writes().size(), 1u);
  EXPECT_EQ(store_.mark_dialing_calls(), 1);
  EXPECT_EQ(store_.count(task_state::pending), 3u);
  EXPECT_EQ(idle_calls_, 1);
}

INSTANTIATE_TEST_SUITE_P(statuses, dial_engine_pause_test, ::testing::Values(401, 403, 404),
                         [](const auto& info) { return "http_" + std::to_string(info.param); });

// ---- 8. Ambiguous outcomes ----

struct ambiguous_case {
  const char* name;
  http_response response;
  const char* error_class;
};

class dial_engine_ambiguous_test : public dial_engine_test,
                                   public ::testing::WithParamInterface<ambiguous_case> {};

TEST_P(dial_engine_ambiguous_test,
       leaves_the_task_unknown_and_holds_its_slot_for_duration_and_grace) {
  trunk_.max_concurrent_calls = 1;
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 5;
  campaign_.max_duration = seconds(10);
  slot_grace_ = seconds(5);
  add_tasks(2);
  const http_response ambiguous = GetParam().response;
  respond([&](const std::string& task, int, std::size_t i) -> std::optional<http_response> {
    return task == task_name(1) ? ambiguous : started(i);
  });
  start();

  ASSERT_EQ(writes().size(), 1u);
  EXPECT_EQ(store_.by_task(task_name(1)).state, task_state::unknown);
  EXPECT_EQ(store_.by_task(task_name(1)).error_class, GetParam().error_class);
  EXPECT_EQ(active(), 1);
  run_until(t0_ + seconds(15) - nanoseconds(1));
  poke();
  EXPECT_EQ(writes().size(), 1u);
  run_until(t0_ + seconds(15));
  ASSERT_EQ(writes().size(), 2u);
  EXPECT_EQ(writes()[1].idempotency_key, key(task_name(2), 1));
  EXPECT_EQ(at(1), seconds(15));
  EXPECT_EQ(progress().unknown, 1);
}

http_response ok_without_session() {
  http_response r;
  r.status = 200;
  r.body = R"({"status":"queued"})";
  return r;
}

INSTANTIATE_TEST_SUITE_P(
    outcomes, dial_engine_ambiguous_test,
    ::testing::Values(
        ambiguous_case{"http_500", status(500), "http_500"},
        ambiguous_case{"http_502", status(502), "http_502"},
        ambiguous_case{"http_504", status(504), "http_504"},
        ambiguous_case{"reset_after_send", transport(transport_error::reset_after_send),
                       "reset_after_send"},
        ambiguous_case{"timeout_after_send", transport(transport_error::timeout_after_send),
                       "timeout_after_send"},
        ambiguous_case{"ok_without_session_id", ok_without_session(), "no_session_id"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(dial_engine_test, on_ambiguous_retry_redials_while_the_first_slot_is_still_held) {
  trunk_.max_concurrent_calls = 2;
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 5;
  campaign_.max_duration = seconds(10);
  campaign_.on_ambiguous = config::ambiguous_policy::retry;
  campaign_.retry.max_attempts = 3;
  campaign_.retry.backoff_base = milliseconds(100);
  campaign_.retry.backoff_max = seconds(1);
  slot_grace_ = seconds(5);
  add_tasks(1);
  respond([](const std::string&, int attempt, std::size_t i) -> std::optional<http_response> {
    return attempt == 1 ? status(500) : started(i);
  });
  start();

  EXPECT_EQ(store_.by_task(task_name(1)).state, task_state::pending);
  EXPECT_EQ(active(), 1);  // the first request's slot: that call may be ringing
  run_to_quiet(seconds(5));
  ASSERT_EQ(keys(), (std::vector<std::string>{key(task_name(1), 1), key(task_name(1), 2)}));
  EXPECT_LT(at(1), seconds(15));
  EXPECT_EQ(active(), 2);  // the held slot and the started retry
  EXPECT_EQ(store_.by_task(task_name(1)).state, task_state::started);
  EXPECT_EQ(store_.by_task(task_name(1)).outcomes.at(0).error_class, "http_500");
}

// ---- 9. Drain ----

TEST_F(dial_engine_test, drain_writes_committed_claims_makes_no_new_ones_and_idles_after_answers) {
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 4;
  store_.hold_claims(true);
  add_tasks(20);
  respond([](const std::string&, int, std::size_t) { return std::optional<http_response>{}; });
  start();

  ASSERT_EQ(store_.held_claims().size(), 4u);
  store_.release_claims(2);
  settle();
  ASSERT_EQ(writes().size(), 2u);

  engine_->drain();
  settle();
  store_.release_claims();  // committed after drain(): DIALING, so they are still written
  settle();
  EXPECT_EQ(writes().size(), 4u);
  run_for(seconds(10));
  poke();
  EXPECT_EQ(store_.mark_dialing_calls(), 4);
  EXPECT_EQ(writes().size(), 4u);

  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(idle_calls_, 0) << "idle with " << 4 - i << " response(s) outstanding";
    pool_.answer(i, started(i));
    settle();
  }
  EXPECT_EQ(idle_calls_, 1);
  EXPECT_EQ(store_.count(task_state::started), 4u);
  EXPECT_EQ(store_.count(task_state::pending), 16u);
  run_for(minutes(1));
  poke();
  EXPECT_EQ(idle_calls_, 1);
}

TEST_F(dial_engine_test, drain_writes_claims_committed_during_a_trunk_hold_when_the_hold_ends) {
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 4;
  store_.hold_claims(true);
  add_tasks(20);
  respond([](const std::string&, int, std::size_t) { return std::optional<http_response>{}; });
  start();

  store_.release_claims(2);
  settle();
  ASSERT_EQ(writes().size(), 2u);
  pool_.answer(0, status(429, "1"));  // the trunk is held until t0 + 1 s
  pool_.answer(1, started(1));
  settle();
  store_.release_claims();  // DIALING now, but held behind the Retry-After
  settle();
  EXPECT_EQ(writes().size(), 2u);

  engine_->drain();
  settle();
  run_until(t0_ + seconds(1));
  ASSERT_EQ(writes().size(), 4u) << "committed claims never written after drain()";
  EXPECT_EQ(at(2), seconds(1));
  pool_.answer(2, started(2));
  pool_.answer(3, started(3));
  settle();
  EXPECT_EQ(idle_calls_, 1);
  EXPECT_EQ(store_.mark_dialing_calls(), 4);
}

// ---- 10. Restart ----

TEST_F(dial_engine_test, calls_of_an_earlier_run_hold_their_slots_until_they_must_have_ended) {
  trunk_.max_concurrent_calls = 3;
  trunk_.calls_per_second = {10, seconds(1)};
  trunk_.burst = 5;
  campaign_.max_duration = seconds(10);
  slot_grace_ = nanoseconds(0);
  store_.add_started(campaign_id, "E-1", now_ms() - 1000);
  store_.add_started(campaign_id, "E-2", now_ms() - 1000);
  store_.add_started(campaign_id, "E-3", now_ms() - 1000);
  store_.by_task("E-3").state = task_state::unknown;           // claimed 1 s ago, outcome unknown
  store_.add_started(campaign_id, "E-old", now_ms() - 11000);  // must have ended already
  add_tasks(5);
  start();

  EXPECT_EQ(writes().size(), 0u);
  EXPECT_EQ(active(), 3);
  run_until(t0_ + seconds(9) - nanoseconds(1));
  poke();
  EXPECT_EQ(writes().size(), 0u);
  run_until(t0_ + seconds(9));
  ASSERT_EQ(writes().size(), 3u);
  EXPECT_EQ(at(0), seconds(9));
}

// ---- 11. The request ----

TEST_F(dial_engine_test, the_request_is_exactly_the_documented_calls_start) {
  campaign_.max_duration = minutes(10);
  const std::string vars = R"({"taskId":"T-000123","campaignId":"spring",)"
                           R"("crmContactId":"C-88812","first_name":"Layla"})";
  store_.add_pending(campaign_id, "T-000123", "+971501234567", vars);
  start();

  ASSERT_EQ(writes().size(), 1u);
  const http_request& r = writes()[0].request;
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, std::string("/api/v1/phone-numbers/") + phone_number_id + "/calls/start");
  std::map<std::string, std::string> headers;
  for (const auto& h : r.headers) {
    EXPECT_TRUE(headers.emplace(h.name, h.value).second) << "duplicate header " << h.name;
  }
  EXPECT_EQ(headers["x-api-key"], "pk_test");
  EXPECT_EQ(headers["Content-Type"], "application/json");
  EXPECT_EQ(headers["Idempotency-Key"], "spring:T-000123:1");
  EXPECT_EQ(r.body, std::string(R"({"to_phone_number":"+971501234567","agent_id":")") + agent_id +
                        R"(","max_duration_seconds":600,"session_variables":)" + vars + "}");
}

// ---- 12. Completion ----

TEST_F(dial_engine_test, on_idle_runs_exactly_once_when_ingest_is_finished_and_all_answered) {
  add_tasks(3);
  respond([](const std::string&, int, std::size_t) { return std::optional<http_response>{}; });
  start();
  engine_->ingest_finished(campaign_id);
  settle();
  ASSERT_EQ(writes().size(), 3u);
  pool_.answer(0, started(0));
  pool_.answer(1, started(1));
  settle();
  EXPECT_EQ(idle_calls_, 0);
  pool_.answer(2, started(2));
  settle();
  EXPECT_EQ(idle_calls_, 1);
  EXPECT_TRUE(progress().complete);
  engine_->tasks_added(campaign_id);
  run_for(minutes(30));
  poke();
  EXPECT_EQ(idle_calls_, 1);
}

TEST_F(dial_engine_test, tasks_added_after_an_empty_fetch_fetches_and_dials_them) {
  start();
  EXPECT_EQ(store_.fetch_pending_calls(), 1);
  EXPECT_EQ(idle_calls_, 0);  // ingest still running

  add_tasks(3);
  poke();
  EXPECT_EQ(writes().size(), 0u);  // no news, no fetch
  engine_->tasks_added(campaign_id);
  run_to_quiet();
  EXPECT_EQ(writes().size(), 3u);
  EXPECT_EQ(idle_calls_, 0);
  engine_->ingest_finished(campaign_id);
  run_to_quiet();
  EXPECT_EQ(idle_calls_, 1);
}

TEST_F(dial_engine_test, started_calls_holding_every_slot_do_not_delay_completion) {
  trunk_.max_concurrent_calls = 2;
  add_tasks(2);
  start();
  ASSERT_EQ(store_.count(task_state::started), 2u);
  EXPECT_EQ(active(), 2);

  engine_->ingest_finished(campaign_id);
  settle();
  EXPECT_EQ(idle_calls_, 1) << "completion waits for the STARTED calls' slot holds";
}

}  // namespace
}  // namespace dialer
