// dial_engine's weighted fair share and live control on a manual clock: stride scheduling of a
// trunk's rate between its campaigns, the weighted slot share, reserved slots, and the control
// calls (pause, resume, cancel, pace and capacity changes, retry, reconfigure), with the achieved
// rates and the request latency the status page shows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/state_store.hpp"
#include "core/time.hpp"
#include "scheduler/dial_engine.hpp"
#include "tests/unit/engine_fixture.hpp"

namespace dialer {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using test::agent_id;
using test::fake_pool;
using test::fake_store;
using test::parse_key;
using test::parsed_key;
using test::started;
using test::status;

// Task ids carry their campaign ("a-0007"), so one id names one row across campaigns.
std::string task_name(const std::string& campaign, int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "-%04d", i);
  return campaign + buf;
}

// Trunk "main" at 100/s, burst 1, with slots to spare; the campaigns are each test's own.
class dial_engine_share_test : public test::engine_fixture {
 protected:
  dial_engine_share_test() {
    trunk_.max_concurrent_calls = 100000;
    trunk_.calls_per_second = {100, seconds(1)};
    trunk_.burst = 1;
  }

  // A campaign on trunk "main" whose calls (3 h) outlast every test: a slot is freed only by a
  // session.ended update.
  static config::campaign_settings make_campaign(const std::string& id, int weight = 1) {
    config::campaign_settings c;
    c.id = id;
    c.agent_id = agent_id;
    c.trunk = "main";
    c.max_duration = hours(3);
    c.weight = weight;
    return c;
  }
  // The reference stays valid (a deque) for tweaks before start().
  config::campaign_settings& add_campaign(const std::string& id, int weight = 1) {
    campaigns_.push_back(make_campaign(id, weight));
    return campaigns_.back();
  }
  void add_tasks(const std::string& campaign, int n) {
    int& added = added_[campaign];
    for (int i = 1; i <= n; ++i) {
      ++added;
      ++phones_;
      store_.add_pending(campaign, task_name(campaign, added),
                         "+97150" + std::to_string(1000000 + phones_));
    }
  }
  [[nodiscard]] config::daemon_settings settings() const {
    config::daemon_settings s = settings_;
    s.trunks.emplace(trunk_.name, trunk_);
    s.campaigns.assign(campaigns_.begin(), campaigns_.end());
    return s;
  }

  // Scripts answers per campaign, task and attempt; nullopt leaves the request outstanding.
  void respond(
      std::function<std::optional<http_response>(const parsed_key&, std::size_t index)> f) {
    pool_.set_responder([f = std::move(f)](const fake_pool::written& w, std::size_t i) {
      return f(parse_key(w.idempotency_key), i);
    });
  }

  void start() { start_engine(settings()); }

  // What the daemon does with a session.ended webhook: the store applies it, the engine hears it.
  void end_call(const std::string& task) {
    const fake_store::row& r = store_.by_task(task);
    session_update u;
    u.ended = true;
    u.session_id = r.session_id;
    u.campaign_id = r.campaign;
    u.task_id = task;
    u.end_reason = "completed";
    u.event_name = "session.ended";
    u.source = "webhook";
    store_.apply_session(std::move(u), [this, task](bool ok, update_outcome o) {
      EXPECT_TRUE(ok);
      EXPECT_EQ(o.verdict, update_verdict::applied) << task;
      engine_->on_session_update(o);
    });
    settle();
  }
  // Ends the call written first among those still STARTED, whichever campaign placed it.
  std::string end_oldest_call() {
    for (const auto& w : writes()) {
      const parsed_key k = parse_key(w.idempotency_key);
      if (store_.by_task(k.task).state == task_state::started) {
        end_call(k.task);
        return k.task;
      }
    }
    ADD_FAILURE() << "no live call to end";
    return {};
  }
  // Writes of `campaign` among writes()[from, to).
  [[nodiscard]] std::size_t writes_of(const std::string& campaign, std::size_t from = 0,
                                      std::size_t to = SIZE_MAX) const {
    std::size_t n = 0;
    for (std::size_t i = from; i < std::min(to, writes().size()); ++i) {
      n += parse_key(writes()[i].idempotency_key).campaign == campaign ? 1 : 0;
    }
    return n;
  }
  // Writes (of `campaign`, or all) at instants in [from, to].
  [[nodiscard]] std::size_t writes_between(steady_time from, steady_time to,
                                           const std::string& campaign = "") const {
    std::size_t n = 0;
    for (const auto& w : writes()) {
      if (w.at >= from && w.at <= to &&
          (campaign.empty() || parse_key(w.idempotency_key).campaign == campaign)) {
        ++n;
      }
    }
    return n;
  }
  // The most writes (from writes()[from] on) in any closed window of length `window`.
  [[nodiscard]] std::size_t max_in_window(std::size_t from, nanoseconds window) const {
    std::size_t best = 0;
    std::size_t first = from;
    for (std::size_t i = from; i < writes().size(); ++i) {
      while (writes()[first].at < writes()[i].at - window) {
        ++first;
      }
      best = std::max(best, i - first + 1);
    }
    return best;
  }
  [[nodiscard]] std::vector<std::string> keys_from(std::size_t from) const {
    std::vector<std::string> out;
    for (std::size_t i = from; i < writes().size(); ++i) {
      out.push_back(writes()[i].idempotency_key);
    }
    return out;
  }

  [[nodiscard]] std::optional<campaign_progress> find_progress(const std::string& id) const {
    for (auto& p : engine_->campaigns()) {
      if (p.id == id) {
        return p;
      }
    }
    return std::nullopt;
  }
  [[nodiscard]] campaign_progress progress(const std::string& id) const {
    auto p = find_progress(id);
    if (!p) {
      ADD_FAILURE() << "campaigns() does not list " << id;
      return {};
    }
    return *p;
  }
  // Slots a campaign holds: requests in flight and live calls.
  [[nodiscard]] std::int64_t held(const std::string& id) const {
    const campaign_progress p = progress(id);
    return p.in_flight + p.live;
  }
  [[nodiscard]] std::size_t rows(const std::string& campaign, task_state s) const {
    std::size_t n = 0;
    for (const auto& [id, r] : store_.rows()) {
      n += r.campaign == campaign && r.state == s ? 1 : 0;
    }
    return n;
  }

  std::deque<config::campaign_settings> campaigns_;
  std::map<std::string, int> added_;
  int phones_ = 0;
};

// ---- Rate share ----

TEST_F(dial_engine_share_test, weights_3_to_1_split_60_s_of_starts_3_to_1_within_the_trunk_bound) {
  add_campaign("a", 3);
  add_campaign("b", 1);
  add_tasks("a", 5000);
  add_tasks("b", 2500);
  start();
  run_until(t0_ + seconds(60));

  // 100/s, burst 1, from t0 to t0 + 60 s inclusive.
  EXPECT_EQ(writes().size(), 6001u);
  const std::int64_t a = progress("a").started;
  const std::int64_t b = progress("b").started;
  EXPECT_EQ(a + b, 6001);
  EXPECT_EQ(progress("a").weight, 3);
  EXPECT_EQ(static_cast<std::size_t>(a), writes_of("a"));
  ASSERT_GT(b, 0);
  EXPECT_NEAR(static_cast<double>(a) / static_cast<double>(b), 3.0, 3.0 * 0.02)
      << "a " << a << ", b " << b;
  // Stride scheduling is exact at every prefix, not only on average: after k starts, a has
  // 3k/4 of them give or take one.
  std::int64_t worst = 0;
  std::int64_t worst_at = 0;
  std::int64_t a_so_far = 0;
  for (std::size_t k = 1; k <= writes().size(); ++k) {
    a_so_far += parse_key(writes()[k - 1].idempotency_key).campaign == "a" ? 1 : 0;
    const std::int64_t off = std::abs(4 * a_so_far - 3 * static_cast<std::int64_t>(k));
    if (off > worst) {
      worst = off;
      worst_at = static_cast<std::int64_t>(k);
    }
  }
  EXPECT_LE(worst, 4) << "4·a − 3·k is " << worst << " after k = " << worst_at << " starts";
  // The trunk's bound holds for the sum: at most burst + rate = 101 starts in any 1 s.
  EXPECT_LE(max_in_window(0, seconds(1)), 101u);
}

TEST_F(dial_engine_share_test, a_campaign_idle_for_10_s_gets_no_catch_up_turns_when_tasks_arrive) {
  add_campaign("a", 3);
  add_campaign("b", 1);
  add_tasks("a", 3000);
  start();
  run_until(t0_ + seconds(10) + milliseconds(5));
  ASSERT_EQ(writes_of("b"), 0u);
  ASSERT_EQ(writes().size(), 1001u);

  const std::size_t joined = writes().size();
  add_tasks("b", 500);
  engine_->tasks_added("b");
  run_for(seconds(5));
  ASSERT_GE(writes().size(), joined + 400);
  EXPECT_GE(writes_of("b", joined), 1u) << "b never dialed after its tasks arrived";
  const std::size_t b40 = writes_of("b", joined, joined + 40);
  EXPECT_GE(b40, 9u) << "b's share of the 40 starts after it joined: " << b40 << " of 40";
  EXPECT_LE(b40, 11u) << "b's share of the 40 starts after it joined: " << b40
                      << " of 40 (catch-up turns for its idle time)";
  const std::size_t b400 = writes_of("b", joined, joined + 400);
  EXPECT_GE(b400, 99u) << b400 << " of 400";
  EXPECT_LE(b400, 101u) << b400 << " of 400";
}

// ---- Slot share ----

TEST_F(dial_engine_share_test,
       weights_3_to_1_converge_to_6_and_2_of_8_slots_and_share_unused_ones) {
  trunk_.max_concurrent_calls = 8;
  add_campaign("a", 3);
  add_campaign("b", 1);
  add_tasks("a", 14);
  start();
  run_for(seconds(1));
  EXPECT_EQ(writes().size(), 8u);
  EXPECT_EQ(held("a"), 8) << "b has no work: a may use every slot";
  EXPECT_EQ(held("b"), 0);

  add_tasks("b", 100);
  engine_->tasks_added("b");
  run_for(seconds(1));
  EXPECT_EQ(writes().size(), 8u) << "no slot was free";

  // Slots are freed oldest call first, whichever campaign placed it. The first two go to b (a is
  // above its share of 6); from then on each freed slot goes back to the campaign that freed it.
  std::vector<std::pair<std::int64_t, std::int64_t>> seen;
  for (int i = 0; i < 10; ++i) {
    end_oldest_call();
    run_for(milliseconds(100));
    seen.emplace_back(held("a"), held("b"));
    EXPECT_EQ(trunk().active, 8) << "after end " << i + 1;
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> expected(10, {6, 2});
  expected[0] = {7, 1};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(writes_of("a"), 14u);

  // a has dialed all 14 tasks: as its calls end, b takes their slots (work-conserving).
  for (int guard = 0; guard < 20 && progress("a").live > 0; ++guard) {
    end_oldest_call();
    run_for(milliseconds(100));
  }
  EXPECT_EQ(held("a"), 0);
  EXPECT_EQ(held("b"), 8);
  EXPECT_EQ(trunk().active, 8);
  EXPECT_EQ(trunk().peak_active, 8);
}

TEST_F(dial_engine_share_test, shares_of_7_5_and_2_5_of_10_slots_leave_no_slot_idle) {
  trunk_.max_concurrent_calls = 10;
  add_campaign("a", 3);
  add_campaign("b", 1);
  add_tasks("a", 100);
  add_tasks("b", 100);
  start();
  run_for(seconds(1));
  // Both are at or above their share at 7 + 2: the tenth slot goes to one of them all the same.
  EXPECT_EQ(trunk().active, 10);
  EXPECT_EQ(held("a") + held("b"), 10);
  EXPECT_GE(held("a"), 7);
  EXPECT_GE(held("b"), 2);
}

TEST_F(dial_engine_share_test,
       a_slot_a_campaign_cannot_use_for_want_of_its_own_token_goes_to_another) {
  trunk_.max_concurrent_calls = 8;
  add_campaign("a", 3);
  config::campaign_settings& b = add_campaign("b", 1);
  b.calls_per_second = config::rate{1, minutes(1)};
  b.burst = 1;
  add_tasks("a", 100);
  add_tasks("b", 100);
  start();
  run_for(seconds(1));
  EXPECT_EQ(held("b"), 1);
  EXPECT_EQ(held("a"), 7) << "a's share is 6, but b cannot use its second slot yet";
  EXPECT_EQ(trunk().active, 8);

  // b's next token arrives with no slot free; the next slot freed is b's (it is under its share).
  run_until(t0_ + minutes(1) + seconds(1));
  EXPECT_EQ(writes().size(), 8u);
  end_oldest_call();
  run_for(milliseconds(100));
  EXPECT_EQ(held("a"), 6);
  EXPECT_EQ(held("b"), 2);
}

// ---- Reserved slots and capacity ----

TEST_F(dial_engine_share_test, reserved_3_of_10_allows_7_calls_and_capacity_20_allows_17) {
  trunk_.max_concurrent_calls = 10;
  trunk_.reserved_slots = 3;
  add_campaign("a");
  add_tasks("a", 40);
  start();
  run_for(seconds(1));
  EXPECT_EQ(writes().size(), 7u);
  EXPECT_EQ(trunk().active, 7);
  EXPECT_EQ(trunk().capacity, 10);
  EXPECT_EQ(trunk().reserved, 3);

  end_oldest_call();
  end_oldest_call();
  run_for(seconds(1));
  EXPECT_EQ(writes().size(), 9u) << "two freed slots, two more calls";
  EXPECT_EQ(trunk().active, 7);
  EXPECT_EQ(trunk().peak_active, 7) << "more than max_concurrent_calls - reserved_slots at once";

  EXPECT_EQ(engine_->set_trunk_capacity("main", 3), control_status::invalid) << "<= reserved";
  EXPECT_EQ(engine_->set_trunk_capacity("main", 0), control_status::invalid);
  EXPECT_EQ(engine_->set_trunk_capacity("other", 20), control_status::unknown);
  EXPECT_EQ(trunk().capacity, 10);

  EXPECT_EQ(engine_->set_trunk_capacity("main", 20), control_status::ok);
  run_for(seconds(1));
  EXPECT_EQ(writes().size(), 19u);
  EXPECT_EQ(trunk().active, 17);
  EXPECT_EQ(trunk().peak_active, 17);
  EXPECT_EQ(trunk().capacity, 20);
  EXPECT_EQ(trunk().reserved, 3);

  // A lower capacity revokes nothing, and frees nothing for new calls until below it (8 − 3).
  EXPECT_EQ(engine_->set_trunk_capacity("main", 8), control_status::ok);
  for (int i = 0; i < 3; ++i) {
    end_oldest_call();
  }
  run_for(seconds(1));
  EXPECT_EQ(writes().size(), 19u);
  EXPECT_EQ(trunk().active, 14);
}

// ---- Pause and resume ----

TEST_F(dial_engine_share_test,
       an_operator_pause_stops_writes_keeps_the_run_waiting_and_resumes_at_once) {
  trunk_.calls_per_second = {10, seconds(1)};
  add_campaign("a");
  add_campaign("b");
  add_tasks("a", 30);
  add_tasks("b", 2);
  // The two requests written last before the pause are still in flight when it comes.
  respond([](const parsed_key&, std::size_t i) -> std::optional<http_response> {
    if (i == 9 || i == 10) {
      return std::nullopt;
    }
    return started(i);
  });
  start();
  engine_->ingest_finished("a");
  engine_->ingest_finished("b");
  run_until(t0_ + milliseconds(1050));
  ASSERT_EQ(writes().size(), 11u);
  ASSERT_EQ(pool_.outstanding(), (std::vector<std::size_t>{9, 10}));
  ASSERT_EQ(writes_of("b"), 2u);

  EXPECT_EQ(engine_->pause_campaign("a"), control_status::ok);
  EXPECT_EQ(engine_->pause_campaign("zz"), control_status::unknown);
  EXPECT_TRUE(progress("a").paused);
  EXPECT_TRUE(progress("a").paused_by_operator);
  EXPECT_EQ(progress("a").in_flight, 2);
  run_for(seconds(5));
  poke();
  EXPECT_EQ(writes().size(), 11u) << "a write after the pause";

  // The requests in flight are still answered and recorded.
  pool_.answer(9, started(9));
  pool_.answer(10, started(10));
  settle();
  for (const std::size_t i : {9u, 10u}) {
    const parsed_key k = parse_key(writes()[i].idempotency_key);
    EXPECT_EQ(store_.by_task(k.task).state, task_state::started) << k.task;
    EXPECT_EQ(store_.by_task(k.task).session_id, "sess-" + std::to_string(i));
  }
  EXPECT_EQ(progress("a").in_flight, 0);
  EXPECT_EQ(progress("a").started, 9);
  EXPECT_TRUE(progress("b").complete);

  // Nothing in flight, b complete: still an operator pause keeps a one-shot run waiting.
  run_for(seconds(30));
  EXPECT_EQ(idle_calls_, 0);
  EXPECT_EQ(writes().size(), 11u);

  const steady_time resumed = now();
  EXPECT_EQ(engine_->resume_campaign("a"), control_status::ok);
  EXPECT_EQ(engine_->resume_campaign("zz"), control_status::unknown);
  settle();
  ASSERT_EQ(writes().size(), 12u);
  EXPECT_EQ(writes()[11].at, resumed) << "the first write after resume waited";
  EXPECT_EQ(parse_key(writes()[11].idempotency_key).campaign, "a");
  EXPECT_FALSE(progress("a").paused);
  EXPECT_FALSE(progress("a").paused_by_operator);

  run_for(seconds(5));
  EXPECT_EQ(writes_of("a"), 30u);
  EXPECT_EQ(idle_calls_, 1);
}

TEST_F(dial_engine_share_test, a_pause_by_a_401_still_lets_on_idle_run) {
  add_campaign("a");
  add_tasks("a", 5);
  respond(
      [](const parsed_key&, std::size_t) -> std::optional<http_response> { return status(401); });
  start();
  engine_->ingest_finished("a");
  run_for(seconds(10));
  EXPECT_EQ(writes().size(), 1u);
  EXPECT_TRUE(progress("a").paused);
  EXPECT_FALSE(progress("a").paused_by_operator);
  EXPECT_EQ(idle_calls_, 1);
  EXPECT_EQ(rows("a", task_state::pending), 5u);
}

TEST_F(dial_engine_share_test, a_claim_still_committing_when_the_pause_comes_is_not_written) {
  trunk_.calls_per_second = {10, seconds(1)};
  add_campaign("a");
  add_tasks("a", 10);
  start();
  ASSERT_EQ(writes().size(), 1u);
  store_.hold_claims(true);
  run_until(t0_ + milliseconds(100));  // the next token: a claim, its commit still running
  ASSERT_EQ(store_.held_claims().size(), 1u);

  EXPECT_EQ(engine_->pause_campaign("a"), control_status::ok);
  store_.hold_claims(false);
  store_.release_claims();
  settle();
  run_for(seconds(5));
  poke();
  EXPECT_EQ(writes().size(), 1u) << "a request written after the pause";

  // Whatever became of that claim, resume dials every task exactly once.
  EXPECT_EQ(engine_->resume_campaign("a"), control_status::ok);
  run_for(seconds(5));
  std::set<std::string> tasks;
  for (const auto& w : writes()) {
    tasks.insert(parse_key(w.idempotency_key).task);
  }
  EXPECT_EQ(tasks.size(), 10u);
  EXPECT_EQ(writes().size(), 10u);
  EXPECT_EQ(rows("a", task_state::started), 10u);
}

TEST_F(dial_engine_share_test, a_claim_waiting_out_a_trunk_hold_is_not_written_after_a_pause) {
  trunk_.burst = 2;
  add_campaign("a");
  add_tasks("a", 10);
  respond([](const parsed_key&, std::size_t i) -> std::optional<http_response> {
    if (i == 0) {
      return std::nullopt;
    }
    return started(i);
  });
  store_.hold_claims(true);
  start();
  ASSERT_EQ(store_.held_claims().size(), 2u);  // two tokens: two claims
  store_.release_claims(1);
  settle();
  ASSERT_EQ(writes().size(), 1u);
  // The first answer holds the trunk for 60 s; the second claim commits during the hold.
  http_response busy = status(429);
  busy.retry_after = "60";
  pool_.answer(0, busy);
  settle();
  store_.hold_claims(false);
  store_.release_claims();
  settle();
  ASSERT_EQ(writes().size(), 1u);
  ASSERT_TRUE(trunk().held);

  const steady_time paused = now();
  EXPECT_EQ(engine_->pause_campaign("a"), control_status::ok);
  run_for(seconds(61));
  poke();
  for (std::size_t i = 1; i < writes().size(); ++i) {
    ADD_FAILURE() << writes()[i].idempotency_key << " written "
                  << std::chrono::duration_cast<milliseconds>(writes()[i].at - paused).count()
                  << " ms after the campaign was paused";
  }
}

// ---- Pace changes ----

TEST_F(dial_engine_share_test, set_campaign_rate_from_100_to_10_per_s_holds_in_the_next_second) {
  trunk_.calls_per_second = {200, seconds(1)};
  trunk_.burst = 10;
  config::campaign_settings& a = add_campaign("a");
  a.calls_per_second = config::rate{100, seconds(1)};
  a.burst = 1;
  add_tasks("a", 500);
  start();
  run_until(t0_ + seconds(1) + milliseconds(5));
  ASSERT_EQ(writes().size(), 101u);
  EXPECT_DOUBLE_EQ(progress("a").rate_target, 100);

  const steady_time changed = now();
  const std::size_t before = writes().size();
  EXPECT_EQ(engine_->set_campaign_rate("a", config::rate{10, seconds(1)}, 1), control_status::ok);
  run_for(seconds(3));
  const std::size_t next_second = writes_between(changed, changed + seconds(1));
  EXPECT_LE(next_second, 11u) << "burst 1 + 10/s";
  EXPECT_GE(next_second, 9u) << "it stopped dialing";
  EXPECT_LE(max_in_window(before, seconds(1)), 11u);
  EXPECT_DOUBLE_EQ(progress("a").rate_target, 10);
}

TEST_F(dial_engine_share_test, set_trunk_rate_from_100_to_10_per_s_holds_in_the_next_second) {
  add_campaign("a");
  add_tasks("a", 500);
  start();
  run_until(t0_ + seconds(1) + milliseconds(5));
  ASSERT_EQ(writes().size(), 101u);

  const steady_time changed = now();
  const std::size_t before = writes().size();
  // 600/min: 10/s written another way.
  EXPECT_EQ(engine_->set_trunk_rate("main", config::rate{600, minutes(1)}, 2), control_status::ok);
  run_for(seconds(3));
  const std::size_t next_second = writes_between(changed, changed + seconds(1));
  EXPECT_LE(next_second, 12u) << "burst 2 + 10/s";
  EXPECT_GE(next_second, 9u) << "it stopped dialing";
  EXPECT_LE(max_in_window(before, seconds(1)), 12u);
  EXPECT_DOUBLE_EQ(trunk().rate_target, 10);
  EXPECT_DOUBLE_EQ(progress("a").rate_target, 10) << "a has no pace of its own";
}

TEST_F(dial_engine_share_test, invalid_paces_and_unknown_names_are_refused_and_change_nothing) {
  add_campaign("a");
  add_tasks("a", 5);
  start();
  const config::rate ten{10, seconds(1)};
  EXPECT_EQ(engine_->set_campaign_rate("zz", ten, 1), control_status::unknown);
  EXPECT_EQ(engine_->set_campaign_rate("a", config::rate{0, seconds(1)}, 1),
            control_status::invalid);
  EXPECT_EQ(engine_->set_campaign_rate("a", config::rate{-5, seconds(1)}, 1),
            control_status::invalid);
  EXPECT_EQ(engine_->set_campaign_rate("a", config::rate{10, nanoseconds(0)}, 1),
            control_status::invalid);
  EXPECT_EQ(engine_->set_campaign_rate("a", ten, 0), control_status::invalid);
  EXPECT_EQ(engine_->set_trunk_rate("other", ten, 1), control_status::unknown);
  EXPECT_EQ(engine_->set_trunk_rate("main", config::rate{0, seconds(1)}, 1),
            control_status::invalid);
  EXPECT_EQ(engine_->set_trunk_rate("main", config::rate{10, nanoseconds(-1)}, 1),
            control_status::invalid);
  EXPECT_EQ(engine_->set_trunk_rate("main", ten, 0), control_status::invalid);
  EXPECT_DOUBLE_EQ(trunk().rate_target, 100);
  EXPECT_DOUBLE_EQ(progress("a").rate_target, 100);
}

// ---- Cancel ----

TEST_F(dial_engine_share_test,
       cancel_suppresses_queued_tasks_dials_nothing_more_and_answers_in_flight) {
  trunk_.calls_per_second = {10, seconds(1)};
  add_campaign("a");
  add_tasks("a", 20);
  respond([](const parsed_key&, std::size_t i) -> std::optional<http_response> {
    if (i == 4 || i == 5) {
      return std::nullopt;
    }
    return started(i);
  });
  start();
  engine_->ingest_finished("a");
  run_until(t0_ + milliseconds(550));
  ASSERT_EQ(writes().size(), 6u);
  ASSERT_EQ(pool_.outstanding(), (std::vector<std::size_t>{4, 5}));
  const int claims = store_.mark_dialing_calls();

  std::optional<std::int64_t> cancelled;
  EXPECT_EQ(engine_->cancel_campaign("zz", nullptr), control_status::unknown);
  EXPECT_EQ(engine_->cancel_campaign("a", [&](std::int64_t n) { cancelled = n; }),
            control_status::ok);
  settle();
  EXPECT_EQ(cancelled, std::optional<std::int64_t>(14));
  EXPECT_EQ(rows("a", task_state::suppressed), 14u);
  for (int i = 7; i <= 20; ++i) {
    const fake_store::row& r = store_.by_task(task_name("a", i));
    EXPECT_EQ(r.state, task_state::suppressed) << r.task_id;
    EXPECT_EQ(r.error_class, "cancelled") << r.task_id;
  }
  EXPECT_EQ(rows("a", task_state::dialing), 2u);
  EXPECT_TRUE(progress("a").cancelled);
  EXPECT_EQ(progress("a").in_flight, 2);
  EXPECT_EQ(idle_calls_, 0) << "idle with two requests in flight";

  pool_.answer(4, started(4));
  pool_.answer(5, started(5));
  settle();
  EXPECT_EQ(store_.by_task(task_name("a", 5)).state, task_state::started);
  EXPECT_EQ(store_.by_task(task_name("a", 6)).state, task_state::started);
  EXPECT_EQ(store_.by_task(task_name("a", 6)).session_id, "sess-5");
  EXPECT_EQ(progress("a").started, 6);
  EXPECT_EQ(progress("a").in_flight, 0);
  EXPECT_TRUE(progress("a").complete) << "cancelled tasks are still queued in memory";
  EXPECT_EQ(idle_calls_, 1);

  run_for(seconds(10));
  poke();
  EXPECT_EQ(writes().size(), 6u);
  EXPECT_EQ(store_.mark_dialing_calls(), claims) << "a cancelled task was claimed";
  EXPECT_EQ(engine_->resume_campaign("a"), control_status::conflict);
  EXPECT_EQ(engine_->pause_campaign("a"), control_status::conflict);
  EXPECT_EQ(engine_->retry_tasks("a", task_state::unknown, nullptr), control_status::conflict);
  EXPECT_TRUE(progress("a").paused);
}

TEST_F(dial_engine_share_test, a_claim_committed_just_before_cancel_is_not_written) {
  trunk_.calls_per_second = {10, seconds(1)};
  add_campaign("a");
  add_tasks("a", 10);
  start();
  engine_->ingest_finished("a");
  ASSERT_EQ(writes().size(), 1u);
  store_.hold_claims(true);
  run_until(t0_ + milliseconds(100));
  ASSERT_EQ(store_.held_claims().size(), 1u);
  // The store commits the claim before the cancel (the order of its writer's queue); the engine
  // hears of the commit only after it has cancelled.
  store_.hold_claims(false);
  store_.release_claims();
  std::optional<std::int64_t> cancelled;
  EXPECT_EQ(engine_->cancel_campaign("a", [&](std::int64_t n) { cancelled = n; }),
            control_status::ok);
  settle();
  run_for(seconds(5));
  // 10 tasks, 1 written: the other 9 are cancelled, the withdrawn claim included (the cancel's
  // store job waits for it, so the count the operator reads is the whole truth).
  EXPECT_EQ(cancelled, std::optional<std::int64_t>(9));
  EXPECT_EQ(store_.count(task_state::suppressed), 9u);
  EXPECT_EQ(writes().size(), 1u) << "a request written after the cancel";
  EXPECT_EQ(progress("a").in_flight, 0);
  EXPECT_EQ(idle_calls_, 1);
}

// ---- Retry ----

TEST_F(dial_engine_share_test, retry_tasks_redials_unknown_then_failed_tasks_as_the_next_attempt) {
  add_campaign("a");
  add_tasks("a", 4);
  respond([](const parsed_key& k, std::size_t i) -> std::optional<http_response> {
    if (k.task == "a-0002" && k.attempt == 1) {
      return status(500);  // ambiguous: UNKNOWN after 1 attempt
    }
    if (k.task == "a-0003" && k.attempt == 1) {
      return status(409);  // not placed: retried
    }
    if (k.task == "a-0003" && k.attempt == 2) {
      return status(502);  // ambiguous: UNKNOWN after 2 attempts
    }
    if (k.task == "a-0004" && k.attempt == 1) {
      return status(400);  // FAILED after 1 attempt
    }
    return started(i);
  });
  start();
  engine_->ingest_finished("a");
  run_for(seconds(10));
  ASSERT_EQ(store_.by_task("a-0002").state, task_state::unknown);
  ASSERT_EQ(store_.by_task("a-0002").attempts, 1);
  ASSERT_EQ(store_.by_task("a-0003").state, task_state::unknown);
  ASSERT_EQ(store_.by_task("a-0003").attempts, 2);
  ASSERT_EQ(store_.by_task("a-0004").state, task_state::failed);
  ASSERT_EQ(writes().size(), 5u);

  EXPECT_EQ(engine_->retry_tasks("zz", task_state::unknown, nullptr), control_status::unknown);
  EXPECT_EQ(engine_->retry_tasks("a", task_state::started, nullptr), control_status::invalid);
  run_for(seconds(1));
  EXPECT_EQ(writes().size(), 5u);

  std::optional<std::int64_t> requeued;
  EXPECT_EQ(engine_->retry_tasks("a", task_state::unknown, [&](std::int64_t n) { requeued = n; }),
            control_status::ok);
  run_for(seconds(1));
  EXPECT_EQ(requeued, std::optional<std::int64_t>(2));
  EXPECT_EQ(keys_from(5), (std::vector<std::string>{"a:a-0002:2", "a:a-0003:3"}));
  EXPECT_EQ(store_.by_task("a-0002").state, task_state::started);
  EXPECT_EQ(store_.by_task("a-0002").attempts, 2);
  EXPECT_EQ(store_.by_task("a-0003").state, task_state::started);
  EXPECT_EQ(store_.by_task("a-0003").attempts, 3);
  EXPECT_EQ(store_.by_task("a-0004").state, task_state::failed) << "only UNKNOWN was asked for";

  requeued.reset();
  EXPECT_EQ(engine_->retry_tasks("a", task_state::failed, [&](std::int64_t n) { requeued = n; }),
            control_status::ok);
  run_for(seconds(1));
  EXPECT_EQ(requeued, std::optional<std::int64_t>(1));
  EXPECT_EQ(keys_from(7), (std::vector<std::string>{"a:a-0004:2"}));
  EXPECT_EQ(store_.by_task("a-0004").state, task_state::started);
}

TEST_F(dial_engine_share_test, retries_requested_at_the_same_instant_are_all_redialed) {
  add_campaign("a");
  add_tasks("a", 3);
  respond([](const parsed_key& k, std::size_t i) -> std::optional<http_response> {
    if (k.task == "a-0001" && k.attempt == 1) {
      return status(400);
    }
    if (k.task == "a-0002" && k.attempt == 1) {
      return status(500);
    }
    return started(i);
  });
  start();
  run_for(seconds(1));
  ASSERT_EQ(store_.by_task("a-0001").state, task_state::failed);
  ASSERT_EQ(store_.by_task("a-0002").state, task_state::unknown);
  EXPECT_EQ(engine_->retry_tasks("a", task_state::unknown, nullptr), control_status::ok);
  settle();
  EXPECT_EQ(engine_->retry_tasks("a", task_state::failed, nullptr), control_status::ok);
  settle();
  run_for(seconds(5));
  EXPECT_EQ(keys_from(3), (std::vector<std::string>{"a:a-0002:2", "a:a-0001:2"}));
}

TEST_F(dial_engine_share_test, a_retry_after_the_wall_clock_stepped_back_is_redialed) {
  add_campaign("a");
  add_tasks("a", 1);
  respond([](const parsed_key& k, std::size_t i) -> std::optional<http_response> {
    if (k.attempt <= 2) {
      return status(500);
    }
    return started(i);
  });
  start();
  run_for(seconds(1));
  EXPECT_EQ(engine_->retry_tasks("a", task_state::unknown, nullptr), control_status::ok);
  run_for(seconds(1));
  ASSERT_EQ(keys_from(0), (std::vector<std::string>{"a:a-0001:1", "a:a-0001:2"}));
  ASSERT_EQ(store_.by_task("a-0001").state, task_state::unknown);

  // NTP steps the wall clock back a minute; the operator retries again.
  clock_.set_system(clock_.system_now() - minutes(1));
  EXPECT_EQ(engine_->retry_tasks("a", task_state::unknown, nullptr), control_status::ok);
  run_for(seconds(5));
  EXPECT_EQ(keys_from(2), (std::vector<std::string>{"a:a-0001:3"}));
  EXPECT_EQ(store_.by_task("a-0001").state, task_state::started);
}

// ---- Reconfigure and ingest ----

TEST_F(dial_engine_share_test, reconfigure_adds_and_removes_campaigns_and_repaces_the_trunk_live) {
  trunk_.calls_per_second = {20, seconds(1)};
  add_campaign("a");
  add_tasks("a", 300);
  add_tasks("b", 300);  // in the state file; not in the configuration yet
  bool hold_next_a = false;
  respond([&](const parsed_key& k, std::size_t i) -> std::optional<http_response> {
    if (k.campaign == "a" && hold_next_a) {
      hold_next_a = false;
      return std::nullopt;
    }
    return started(i);
  });
  start();
  run_until(t0_ + seconds(1) + milliseconds(25));
  EXPECT_EQ(writes_of("a"), 21u);
  EXPECT_EQ(writes_of("b"), 0u);

  // b joins: it dials, and the two share the trunk equally.
  config::daemon_settings with_b = settings();
  with_b.campaigns.push_back(make_campaign("b"));
  engine_->reconfigure(with_b);
  settle();
  const std::size_t joined = writes().size();
  run_for(seconds(2));
  const std::size_t b_writes = writes_of("b", joined);
  EXPECT_GE(b_writes, 19u);
  EXPECT_LE(b_writes, 21u);
  EXPECT_EQ(writes().size() - joined, 40u);
  EXPECT_EQ(engine_->campaigns().size(), 2u);

  // a's next request stays unanswered; then a is removed and the trunk slowed to 5/s.
  hold_next_a = true;
  run_for(milliseconds(200));
  ASSERT_EQ(pool_.outstanding().size(), 1u);
  const std::size_t held_index = pool_.outstanding()[0];
  const std::string held_task = parse_key(writes()[held_index].idempotency_key).task;
  // Now t0 + 3.225 s: between two of the trunk's tokens (every 50 ms from t0).

  config::daemon_settings only_b = with_b;
  only_b.campaigns.erase(only_b.campaigns.begin());
  only_b.trunks.at("main").calls_per_second = {5, seconds(1)};
  const steady_time removed = now();
  const std::size_t a_pending = rows("a", task_state::pending);
  const std::size_t a_writes = writes_of("a");
  engine_->reconfigure(only_b);
  settle();
  EXPECT_DOUBLE_EQ(trunk().rate_target, 5);
  EXPECT_EQ(engine_->pause_campaign("a"), control_status::unknown) << "a is gone for control";
  ASSERT_TRUE(find_progress("a").has_value()) << "a is listed while its request is in flight";
  EXPECT_EQ(progress("a").in_flight, 1);

  // Its ingest goes on: more of its rows arrive, and are not dialed either.
  add_tasks("a", 10);
  engine_->tasks_added("a");
  run_for(seconds(3));
  EXPECT_EQ(writes_of("a"), a_writes) << "a removed, still dialing";
  EXPECT_EQ(rows("a", task_state::pending), a_pending + 10) << "a's queued tasks stay PENDING";
  const std::size_t next_second = writes_between(removed, removed + seconds(1));
  EXPECT_LE(next_second, 6u) << "burst 1 + 5/s";
  EXPECT_GE(next_second, 4u);
  EXPECT_EQ(writes_between(removed, removed + seconds(3), "b"),
            writes_between(removed, removed + seconds(3)));

  pool_.answer(held_index, started(held_index));
  settle();
  EXPECT_EQ(store_.by_task(held_task).state, task_state::started);
  ASSERT_TRUE(find_progress("a").has_value()) << "a is listed while its calls are live";
  EXPECT_EQ(progress("a").in_flight, 0);

  std::vector<std::string> live_a;
  for (const auto& [id, r] : store_.rows()) {
    if (r.campaign == "a" && r.state == task_state::started) {
      live_a.push_back(r.task_id);
    }
  }
  EXPECT_EQ(live_a.size(), a_writes);
  for (const auto& task : live_a) {
    end_call(task);
  }
  EXPECT_FALSE(find_progress("a").has_value()) << "a is idle and removed: no longer listed";
  EXPECT_EQ(engine_->campaigns().size(), 1u);
}

TEST_F(dial_engine_share_test, reconfigure_applies_new_weights_and_campaign_paces_live) {
  add_campaign("a", 1);
  add_campaign("b", 1);
  add_tasks("a", 2000);
  add_tasks("b", 2000);
  start();
  run_until(t0_ + seconds(2) + milliseconds(5));
  EXPECT_EQ(writes_of("a"), writes_of("b") + 1) << "equal weights alternate";

  config::daemon_settings next = settings();
  next.campaigns[0].weight = 3;
  engine_->reconfigure(next);
  settle();
  EXPECT_EQ(progress("a").weight, 3);
  const std::size_t changed = writes().size();
  run_for(seconds(5));
  ASSERT_GE(writes().size(), changed + 400);
  const std::size_t a400 = writes_of("a", changed, changed + 400);
  EXPECT_GE(a400, 299u) << a400 << " of 400";
  EXPECT_LE(a400, 301u) << a400 << " of 400";

  // b gets a pace of its own, 2/s: the trunk's other 98/s go to a.
  next.campaigns[1].calls_per_second = config::rate{2, seconds(1)};
  next.campaigns[1].burst = 1;
  engine_->reconfigure(next);
  settle();
  const steady_time paced = now();
  run_for(seconds(5));
  EXPECT_LE(writes_between(paced, paced + seconds(5), "b"), 11u) << "burst 1 + 2/s for 5 s";
  EXPECT_GE(writes_between(paced, paced + seconds(5), "b"), 9u);
  EXPECT_DOUBLE_EQ(progress("b").rate_target, 2);
  EXPECT_GE(writes_between(paced, paced + seconds(5)), 499u) << "the trunk's pace left unused";
}

TEST_F(dial_engine_share_test, a_campaign_removed_and_added_back_dials_its_remaining_tasks) {
  trunk_.calls_per_second = {20, seconds(1)};
  add_campaign("a");
  add_tasks("a", 100);
  start();
  engine_->ingest_finished("a");
  run_until(t0_ + seconds(1) + milliseconds(25));
  ASSERT_EQ(writes().size(), 21u);

  config::daemon_settings without_a = settings();
  without_a.campaigns.clear();
  engine_->reconfigure(without_a);
  settle();
  run_for(seconds(2));
  EXPECT_EQ(writes().size(), 21u);
  EXPECT_EQ(rows("a", task_state::pending), 79u);

  engine_->reconfigure(settings());
  settle();
  ASSERT_TRUE(find_progress("a").has_value());
  run_for(seconds(10));
  EXPECT_EQ(writes_of("a"), 100u) << "the tasks it had buffered when removed were never dialed";
  EXPECT_EQ(rows("a", task_state::pending), 0u);
}

TEST_F(dial_engine_share_test, ingest_started_keeps_a_campaign_open_until_its_ingest_finishes) {
  add_campaign("a");
  add_tasks("a", 3);
  start();
  engine_->ingest_finished("a");
  run_for(seconds(1));
  ASSERT_TRUE(progress("a").complete);
  ASSERT_EQ(idle_calls_, 1);

  engine_->ingest_started("a");  // add-csv
  settle();
  EXPECT_FALSE(progress("a").complete);
  add_tasks("a", 2);
  engine_->tasks_added("a");
  run_for(seconds(1));
  EXPECT_EQ(writes().size(), 5u);
  EXPECT_FALSE(progress("a").complete) << "more rows may still come";
  EXPECT_EQ(idle_calls_, 1);

  engine_->ingest_finished("a");
  run_for(seconds(1));
  EXPECT_TRUE(progress("a").complete);
  EXPECT_EQ(idle_calls_, 2);
}

// ---- What the status page shows ----

TEST_F(dial_engine_share_test, rate_achieved_equals_the_simulated_pace_over_10_s) {
  trunk_.calls_per_second = {20, seconds(1)};
  add_campaign("a");
  config::campaign_settings& b = add_campaign("b");
  b.calls_per_second = config::rate{5, seconds(1)};
  b.burst = 1;
  add_tasks("a", 1000);
  add_tasks("b", 1000);
  start();
  // Late in a second: its starts so far are not a whole second's and must not count.
  run_until(t0_ + milliseconds(12950));

  EXPECT_NEAR(trunk().rate_achieved, 20, 1);
  EXPECT_NEAR(progress("a").rate_achieved, 15, 1);
  EXPECT_NEAR(progress("b").rate_achieved, 5, 1);
  EXPECT_DOUBLE_EQ(trunk().rate_target, 20);
  EXPECT_DOUBLE_EQ(progress("a").rate_target, 20);
  EXPECT_DOUBLE_EQ(progress("b").rate_target, 5);

  // Nothing dialed for 11 s: the 10 s window has emptied.
  EXPECT_EQ(engine_->pause_campaign("a"), control_status::ok);
  EXPECT_EQ(engine_->pause_campaign("b"), control_status::ok);
  run_for(seconds(11));
  EXPECT_DOUBLE_EQ(trunk().rate_achieved, 0);
  EXPECT_DOUBLE_EQ(progress("a").rate_achieved, 0);
  EXPECT_DOUBLE_EQ(progress("b").rate_achieved, 0);
}

TEST_F(dial_engine_share_test, request_latency_observes_each_answer_but_not_transport_failures) {
  add_campaign("a").retry.max_attempts = 1;  // no retry writes
  add_tasks("a", 4);
  respond([](const parsed_key&, std::size_t i) -> std::optional<http_response> {
    http_response r = started(i);
    if (i == 0) {
      r.latency = milliseconds(40);
    } else if (i == 1) {
      r.latency = milliseconds(300);
    } else if (i == 2) {
      r = status(409);
      r.latency = seconds(3);
    } else {
      r = http_response{};
      r.error = transport_error::connect_failed;
      r.latency = seconds(7);
    }
    return r;
  });
  start();
  run_for(milliseconds(35));
  ASSERT_EQ(writes().size(), 4u);

  const trunk_progress t = trunk();
  EXPECT_EQ(t.request_latency.count(), 3u);
  EXPECT_NEAR(t.request_latency.sum(), 3.34, 1e-9);
  const std::vector<double>& bounds = t.request_latency.upper_bounds();
  std::vector<std::uint64_t> expected(bounds.size() + 1, 0);
  for (const double v : {0.04, 0.3, 3.0}) {
    ++expected[static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) -
                                        bounds.begin())];
  }
  const auto counts = t.request_latency.bucket_counts();
  EXPECT_EQ(std::vector<std::uint64_t>(counts.begin(), counts.end()), expected);
}

}  // namespace
}  // namespace dialer
