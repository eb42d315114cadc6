// dial_engine's call-end logic on a manual clock: live calls and their slots, session.created /
// session.ended updates (as the daemon feeds them: fake_store::apply_session, then
// on_session_update), deadline expiry with session pulls, redials and await_call_end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/state_store.hpp"
#include "core/time.hpp"
#include "scheduler/dial_engine.hpp"
#include "tests/unit/engine_fixture.hpp"

namespace dialer {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using test::agent_id;
using test::campaign_id;
using test::fake_store;
using test::key;
using test::phone_number_id;
using test::started;
using test::status;
using test::task_name;

constexpr char sessions_path[] = "/api/v1/chat/sessions/";

session_update webhook(bool ended, const std::string& task, const std::string& session,
                       const std::string& end_reason = "") {
  session_update u;
  u.ended = ended;
  u.session_id = session;
  u.campaign_id = campaign_id;
  u.task_id = task;
  u.end_reason = end_reason;
  u.event_name = ended ? "session.ended" : "session.created";
  u.source = "webhook";
  return u;
}

// GET /api/v1/chat/sessions/{id}: agentix-api.md section 4's payload without `event`, plus
// `status`; an active session has no end fields yet.
std::string session_document(const std::string& task, const std::string& session,
                             const std::string& state) {
  std::string doc = R"({"sessionId":")" + session + R"(","status":")" + state +
                    R"(","timestamp":"2026-01-01T00:01:05Z","metadata":{"agentId":")" + agent_id +
                    R"(","phoneNumberId":")" + phone_number_id +
                    R"(","toPhoneNumber":"+971501234567","sessionVariables":{"taskId":")" + task +
                    R"(","campaignId":")" + campaign_id + R"(","crmContactId":"C-88812"}})";
  if (state == "ended") {
    doc += R"(,"durationSeconds":73,"endReason":"completed","analysis":{)"
           R"("intent":"renewal_interest","resolution":"resolved","sentiment":"positive",)"
           R"("data":{"preferred_time":"evenings","callback_requested":"false"}})";
  }
  return doc + "}";
}

http_response document(const std::string& body) {
  http_response r;
  r.status = 200;
  r.body = body;
  return r;
}

class dial_engine_session_test : public test::one_campaign_fixture {
 protected:
  dial_engine_session_test() {
    campaign_.max_duration = seconds(60);
    slot_grace_ = seconds(5);
  }

  // What the daemon does with a webhook: the store applies it, then the engine hears the outcome.
  update_outcome deliver(session_update u) {
    update_outcome seen;
    store_.apply_session(std::move(u), [this, &seen](bool ok, update_outcome o) {
      EXPECT_TRUE(ok);
      seen = o;
      engine_->on_session_update(o);
    });
    settle();
    return seen;
  }
  update_outcome ended(const std::string& task, const std::string& end_reason = "completed") {
    return deliver(webhook(true, task, store_.by_task(task).session_id, end_reason));
  }

  [[nodiscard]] nanoseconds deadline() const { return campaign_.max_duration + slot_grace_; }
  [[nodiscard]] const std::vector<std::string>& gets() const { return pool_.gets(); }
  [[nodiscard]] const fake_store::row& row(const std::string& task) { return store_.by_task(task); }
};

campaign_policy redial_no_answer(int max_attempts, std::int64_t after_ms) {
  campaign_policy p;
  p.redial_on = {"no_answer"};
  p.max_attempts = max_attempts;
  p.redial_after_ms = after_ms;
  return p;
}

// ---- 1. session.ended frees the slot at once ----

TEST_F(dial_engine_session_test, capacity_2_an_ended_update_frees_one_slot_at_once) {
  trunk_.max_concurrent_calls = 2;
  add_tasks(5);
  start();
  ASSERT_EQ(keys(), (std::vector<std::string>{key(task_name(1), 1), key(task_name(2), 1)}));
  EXPECT_EQ(active(), 2);

  run_for(seconds(20));
  poke();
  EXPECT_EQ(writes().size(), 2u);

  const steady_time t1 = now();
  const update_outcome o = ended(task_name(1));
  EXPECT_EQ(o.verdict, update_verdict::applied);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended);
  ASSERT_EQ(writes().size(), 3u) << "one freed slot, one more call, at once";
  EXPECT_EQ(writes()[2].idempotency_key, key(task_name(3), 1));
  EXPECT_EQ(writes()[2].at, t1);
  EXPECT_EQ(active(), 2);
  EXPECT_EQ(progress().ended, 1);
  // The vendor delivers again: a duplicate changes nothing, so it frees nothing.
  EXPECT_EQ(ended(task_name(1)).verdict, update_verdict::duplicate);
  EXPECT_EQ(writes().size(), 3u);
  EXPECT_EQ(active(), 2);

  // Task 2's slot expires at its deadline; task 1's deadline entry, already released, frees
  // nothing: exactly one more call then, not two.
  run_until(t0_ + deadline() - nanoseconds(1));
  poke();
  EXPECT_EQ(writes().size(), 3u);
  run_until(t0_ + deadline());
  ASSERT_EQ(writes().size(), 4u);
  EXPECT_EQ(writes()[3].idempotency_key, key(task_name(4), 1));
  EXPECT_EQ(writes()[3].at, t0_ + deadline());
  EXPECT_EQ(active(), 2);

  run_until(t1 + deadline() - nanoseconds(1));
  poke();
  EXPECT_EQ(writes().size(), 4u);
  run_until(t1 + deadline());
  ASSERT_EQ(writes().size(), 5u);
  EXPECT_EQ(writes()[4].at, t1 + deadline());
  EXPECT_EQ(active(), 2);
}

// ---- 2. session.ended overtakes the calls/start answer ----

TEST_F(dial_engine_session_test, ended_while_in_flight_frees_the_slot_when_the_answer_arrives) {
  trunk_.max_concurrent_calls = 3;
  campaign_.max_duration = seconds(10);
  slot_grace_ = nanoseconds(0);
  add_tasks(2);
  respond([](const std::string& task, int, std::size_t i) -> std::optional<http_response> {
    if (task == task_name(1)) {
      return std::nullopt;
    }
    return started(i);
  });
  start();
  ASSERT_EQ(writes().size(), 2u);
  ASSERT_EQ(pool_.outstanding(), std::vector<std::size_t>{0});
  EXPECT_EQ(active(), 2);

  run_for(seconds(1));
  const update_outcome o = deliver(webhook(true, task_name(1), "sess-webhook", "completed"));
  EXPECT_EQ(o.verdict, update_verdict::applied);
  EXPECT_EQ(o.previous, task_state::dialing);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended);
  EXPECT_EQ(active(), 2) << "the slot is freed by the answer, not by the event";
  EXPECT_EQ(progress().in_flight, 1);

  run_for(seconds(1));  // the answer arrives at t0 + 2 s
  pool_.answer(0, started(0));
  settle();
  EXPECT_EQ(active(), 1);  // task 2 only
  EXPECT_EQ(progress().in_flight, 0);
  EXPECT_EQ(progress().live, 1);
  EXPECT_EQ(progress().started, 2);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended);  // the answer changed nothing
  EXPECT_EQ(store_.records_after_event(), 1);

  // A call that is still live when a leaked task-1 hold (deadline t0 + 12 s) would expire.
  run_until(t0_ + seconds(5));
  add_tasks(1);
  engine_->tasks_added(campaign_id);
  settle();
  ASSERT_EQ(writes().size(), 3u);
  EXPECT_EQ(active(), 2);

  run_until(t0_ + seconds(10));  // task 2's deadline
  EXPECT_EQ(active(), 1);
  run_until(t0_ + seconds(12));
  poke();
  EXPECT_EQ(active(), 1) << "task 1 left a live entry that released a slot twice";
  EXPECT_EQ(progress().live, 1);
  run_until(t0_ + seconds(15));  // task 3's deadline
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(progress().live, 0);
  run_to_quiet();
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(engine_->trunks()[0].active, 0);
  // Task 1 ended: nothing to settle for it.
  for (const auto& g : gets()) {
    EXPECT_NE(g, std::string(sessions_path) + "sess-0");
    EXPECT_NE(g, std::string(sessions_path) + "sess-webhook");
  }
}

// ---- 3. session.created overtakes an ambiguous answer ----

TEST_F(dial_engine_session_test, created_while_in_flight_then_500_holds_a_started_live_call) {
  campaign_.max_duration = seconds(10);
  slot_grace_ = seconds(5);
  add_tasks(1);
  respond([](const std::string&, int, std::size_t) { return std::optional<http_response>{}; });
  start();
  ASSERT_EQ(writes().size(), 1u);

  run_for(seconds(1));
  const update_outcome o = deliver(webhook(false, task_name(1), "sess-created"));
  EXPECT_EQ(o.verdict, update_verdict::applied);
  EXPECT_EQ(row(task_name(1)).state, task_state::started);
  EXPECT_EQ(active(), 1);
  pool_.answer(0, status(500));
  settle();

  EXPECT_EQ(progress().started, 1);
  EXPECT_EQ(progress().unknown, 0);
  EXPECT_EQ(progress().live, 1);
  EXPECT_EQ(active(), 1);
  EXPECT_EQ(row(task_name(1)).state, task_state::started);
  EXPECT_EQ(row(task_name(1)).session_id, "sess-created");

  // Answered at t0 + 1 s: the deadline is t0 + 16 s.
  run_until(t0_ + seconds(16) - nanoseconds(1));
  poke();
  EXPECT_EQ(active(), 1);
  EXPECT_TRUE(gets().empty());
  run_until(t0_ + seconds(16));
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended_unconfirmed);
  EXPECT_EQ(gets(), std::vector<std::string>{std::string(sessions_path) + "sess-created"})
      << "no session pull at the deadline";
}

// ---- 4. Deadline without a webhook: settle by pull ----

TEST_F(dial_engine_session_test, deadline_frees_the_slot_marks_unconfirmed_and_pull_ends_it) {
  add_tasks(1);
  std::vector<task_state> state_at_get;
  std::vector<steady_time> get_at;
  pool_.set_get_responder([&](const http_request& r) {
    state_at_get.push_back(store_.by_task(task_name(1)).state);
    get_at.push_back(now());
    EXPECT_EQ(r.method, "GET");
    return document(session_document(task_name(1), "sess-0", "ended"));
  });
  start();
  ASSERT_EQ(writes().size(), 1u);
  ASSERT_EQ(row(task_name(1)).session_id, "sess-0");

  run_until(t0_ + deadline() - nanoseconds(1));
  poke();
  EXPECT_EQ(active(), 1);
  EXPECT_TRUE(gets().empty());
  EXPECT_EQ(row(task_name(1)).state, task_state::started);

  run_until(t0_ + deadline());
  settle();
  EXPECT_EQ(active(), 0);
  ASSERT_EQ(gets(), std::vector<std::string>{std::string(sessions_path) + "sess-0"})
      << "no session pull at the deadline";
  EXPECT_EQ(get_at.at(0), t0_ + deadline());
  EXPECT_EQ(state_at_get.at(0), task_state::ended_unconfirmed);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended);
  EXPECT_EQ(row(task_name(1)).end_reason, "completed");
  EXPECT_EQ(store_.applied_sessions(), 1);
  ASSERT_EQ(store_.applied_updates().size(), 1u);
  EXPECT_EQ(store_.applied_updates()[0].source, "pull");
  EXPECT_TRUE(store_.applied_updates()[0].ended);
  EXPECT_EQ(store_.applied_updates()[0].session_id, "sess-0");
  EXPECT_EQ(progress().ended, 1);
  EXPECT_EQ(progress().unconfirmed, 0);
  EXPECT_EQ(progress().settling, 0);
  run_to_quiet();
  EXPECT_EQ(gets().size(), 1u);
}

TEST_F(dial_engine_session_test, an_active_session_is_pulled_with_doubling_delays_attempts_times) {
  settings_.settle.attempts = 6;
  settings_.settle.first_delay = seconds(2);
  settings_.settle.max_delay = seconds(10);
  add_tasks(1);
  std::vector<steady_time> get_at;
  pool_.set_get_responder([&](const http_request&) {
    get_at.push_back(now());
    return document(session_document(task_name(1), "sess-0", "active"));
  });
  start();

  run_until(t0_ + deadline());
  settle();
  run_to_quiet(hours(1));
  ASSERT_EQ(get_at.size(), 6u) << "exactly settle.attempts pulls";
  const steady_time d = t0_ + deadline();
  // 2, 4, 8, then capped at 10.
  const std::vector<nanoseconds> expected = {seconds(0),  seconds(2),  seconds(6),
                                             seconds(14), seconds(24), seconds(34)};
  for (std::size_t i = 0; i < get_at.size(); ++i) {
    EXPECT_EQ(get_at[i] - d, expected[i]) << "pull " << i + 1;
  }
  for (const auto& g : gets()) {
    EXPECT_EQ(g, std::string(sessions_path) + "sess-0");
  }
  const auto& r = row(task_name(1));
  EXPECT_EQ(r.state, task_state::ended_unconfirmed);
  EXPECT_EQ(r.pulls, 6);
  EXPECT_NE(r.detail.find("not settled after 6"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find("active"), std::string::npos) << r.detail;
  EXPECT_EQ(store_.applied_sessions(), 0);
  EXPECT_EQ(progress().unconfirmed, 1);
  EXPECT_EQ(progress().settling, 0);
  EXPECT_EQ(active(), 0);
}

TEST_F(dial_engine_session_test, an_active_session_records_each_pull_as_it_goes) {
  settings_.settle.attempts = 3;
  settings_.settle.first_delay = seconds(2);
  settings_.settle.max_delay = seconds(10);
  add_tasks(1);
  pool_.set_get_responder([&](const http_request&) {
    return document(session_document(task_name(1), "sess-0", "active"));
  });
  start();

  run_until(t0_ + deadline());
  settle();
  ASSERT_EQ(gets().size(), 1u);
  EXPECT_EQ(row(task_name(1)).pulls, 1);
  EXPECT_NE(row(task_name(1)).detail.find("not settled yet after 1"), std::string::npos)
      << row(task_name(1)).detail;
  run_until(t0_ + deadline() + seconds(2));
  EXPECT_EQ(gets().size(), 2u);
  EXPECT_EQ(row(task_name(1)).pulls, 2);
}

TEST_F(dial_engine_session_test, a_404_session_pull_is_made_once) {
  settings_.settle.attempts = 6;
  settings_.settle.first_delay = seconds(2);
  add_tasks(1);
  start();  // the fake pool answers GETs 404 by default

  run_until(t0_ + deadline());
  settle();
  run_to_quiet(hours(1));
  EXPECT_EQ(gets(), std::vector<std::string>{std::string(sessions_path) + "sess-0"});
  const auto& r = row(task_name(1));
  EXPECT_EQ(r.state, task_state::ended_unconfirmed);
  EXPECT_NE(r.detail.find("404"), std::string::npos) << r.detail;
  EXPECT_EQ(progress().settling, 0);
}

// ---- 5. UNKNOWN calls ----

TEST_F(dial_engine_session_test,
       an_unknown_call_past_its_deadline_frees_its_slot_and_is_not_pulled) {
  campaign_.max_duration = seconds(10);
  slot_grace_ = seconds(5);
  add_tasks(1);
  respond([](const std::string&, int, std::size_t) -> std::optional<http_response> {
    return status(500);
  });
  start();
  EXPECT_EQ(row(task_name(1)).state, task_state::unknown);
  EXPECT_EQ(active(), 1);

  run_until(t0_ + seconds(15) - nanoseconds(1));
  poke();
  EXPECT_EQ(active(), 1);
  run_until(t0_ + seconds(15));
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(progress().live, 0);
  run_to_quiet(hours(1));
  EXPECT_TRUE(gets().empty());
  EXPECT_EQ(row(task_name(1)).state, task_state::unknown);
  EXPECT_EQ(progress().unconfirmed, 0);
}

TEST_F(dial_engine_session_test, created_for_an_unknown_live_call_records_its_session) {
  campaign_.max_duration = seconds(10);
  slot_grace_ = seconds(5);
  add_tasks(1);
  respond([](const std::string&, int, std::size_t) -> std::optional<http_response> {
    return status(502);
  });
  start();
  ASSERT_EQ(row(task_name(1)).state, task_state::unknown);

  run_for(seconds(3));
  deliver(webhook(false, task_name(1), "sess-late"));
  EXPECT_EQ(row(task_name(1)).state, task_state::started);
  EXPECT_EQ(active(), 1);  // the same slot, not a second one
  EXPECT_EQ(progress().live, 1);

  run_until(t0_ + seconds(15));  // the UNKNOWN call's own deadline
  settle();
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended_unconfirmed);
  EXPECT_EQ(gets(), std::vector<std::string>{std::string(sessions_path) + "sess-late"});
}

// ---- 6. Redials ----

TEST_F(dial_engine_session_test, no_answer_redials_exactly_redial_after_later_until_max_attempts) {
  campaign_.retry.max_attempts = 3;
  campaign_.retry.redial_on = {"no_answer"};
  campaign_.retry.redial_after = seconds(10);
  store_.set_campaign_policy(campaign_id, redial_no_answer(3, 10000));
  add_tasks(1);
  start();
  ASSERT_EQ(keys(), std::vector<std::string>{key(task_name(1), 1)});

  // Never while the first attempt is open.
  run_for(seconds(20));
  poke();
  EXPECT_EQ(writes().size(), 1u);

  for (int attempt = 1; attempt <= 2; ++attempt) {
    const steady_time t = now();
    const update_outcome o = ended(task_name(1), "no_answer");
    ASSERT_EQ(o.state, task_state::pending) << "attempt " << attempt;
    EXPECT_EQ(o.redial_at_ms, now_ms() + 10000);
    EXPECT_EQ(active(), 0);
    run_until(t + seconds(10) - nanoseconds(1));
    poke();
    ASSERT_EQ(writes().size(), static_cast<std::size_t>(attempt)) << "redialed early";
    run_until(t + seconds(10));
    ASSERT_EQ(writes().size(), static_cast<std::size_t>(attempt + 1)) << "attempt " << attempt;
    EXPECT_EQ(writes().back().idempotency_key, key(task_name(1), attempt + 1));
    EXPECT_EQ(writes().back().at, t + seconds(10));
    EXPECT_EQ(row(task_name(1)).state, task_state::started);
    EXPECT_EQ(active(), 1);
    run_for(seconds(30));
    poke();
    EXPECT_EQ(writes().size(), static_cast<std::size_t>(attempt + 1));
  }

  const update_outcome o = ended(task_name(1), "no_answer");
  EXPECT_EQ(o.state, task_state::ended);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended);
  EXPECT_EQ(row(task_name(1)).attempts, 3);
  run_to_quiet(hours(2));
  EXPECT_EQ(writes().size(), 3u);
  EXPECT_EQ(progress().redials, 2);
  EXPECT_EQ(progress().ended, 3);
  EXPECT_EQ(active(), 0);
}

TEST_F(dial_engine_session_test, a_redial_waits_while_the_first_request_is_still_unanswered) {
  campaign_.retry.max_attempts = 3;
  campaign_.retry.redial_on = {"no_answer"};
  campaign_.retry.redial_after = seconds(10);
  store_.set_campaign_policy(campaign_id, redial_no_answer(3, 10000));
  add_tasks(1);
  respond([](const std::string&, int, std::size_t) { return std::optional<http_response>{}; });
  start();
  ASSERT_EQ(writes().size(), 1u);

  run_for(seconds(1));
  const update_outcome o = deliver(webhook(true, task_name(1), "sess-a1", "no_answer"));
  ASSERT_EQ(o.state, task_state::pending);
  run_for(seconds(20));  // the redial is due at t0 + 11 s; attempt 1 is still unanswered
  poke();
  EXPECT_EQ(keys(), std::vector<std::string>{key(task_name(1), 1)})
      << "attempt 2 written while attempt 1's request is open";

  pool_.answer(0, started(0));
  settle();
  run_for(seconds(1));
  for (const std::size_t i : pool_.outstanding()) {
    pool_.answer(i, started(i));
  }
  settle();
  // Whatever the order, the store must end up with the latest attempt's call.
  ASSERT_EQ(keys(), (std::vector<std::string>{key(task_name(1), 1), key(task_name(1), 2)}));
  EXPECT_EQ(row(task_name(1)).state, task_state::started);
  EXPECT_EQ(row(task_name(1)).attempts, 2);
  EXPECT_EQ(row(task_name(1)).session_id, "sess-1");
  EXPECT_EQ(active(), 1);
  EXPECT_EQ(progress().live, 1);
}

// ---- 7. await_call_end ----

TEST_F(dial_engine_session_test, await_call_end_idles_only_after_the_last_call_and_redial_end) {
  await_call_end_ = true;
  campaign_.retry.max_attempts = 2;
  campaign_.retry.redial_on = {"no_answer"};
  campaign_.retry.redial_after = seconds(10);
  store_.set_campaign_policy(campaign_id, redial_no_answer(2, 10000));
  add_tasks(2);
  start();
  engine_->ingest_finished(campaign_id);
  settle();
  ASSERT_EQ(writes().size(), 2u);
  EXPECT_EQ(idle_calls_, 0) << "idle with two live calls";
  EXPECT_FALSE(progress().complete);

  run_for(seconds(5));
  ended(task_name(1));
  EXPECT_EQ(idle_calls_, 0) << "idle with task 2 live";
  const steady_time t = now();
  ended(task_name(2), "no_answer");
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(idle_calls_, 0) << "idle with a redial waiting";
  EXPECT_FALSE(progress().complete);

  run_until(t + seconds(10) - nanoseconds(1));
  poke();
  EXPECT_EQ(idle_calls_, 0);
  run_until(t + seconds(10));
  ASSERT_EQ(keys().back(), key(task_name(2), 2));
  EXPECT_EQ(idle_calls_, 0) << "idle with the redial live";

  run_for(seconds(7));
  ended(task_name(2), "no_answer");  // attempts exhausted: ENDED
  EXPECT_EQ(row(task_name(2)).state, task_state::ended);
  EXPECT_EQ(idle_calls_, 1);
  EXPECT_TRUE(progress().complete);
  run_to_quiet(hours(1));
  EXPECT_EQ(idle_calls_, 1);
  EXPECT_EQ(writes().size(), 3u);
}

TEST_F(dial_engine_session_test, await_call_end_waits_for_the_settle_pulls_of_an_expired_call) {
  await_call_end_ = true;
  settings_.settle.attempts = 2;
  settings_.settle.first_delay = seconds(2);
  add_tasks(1);
  pool_.set_get_responder([&](const http_request&) {
    return document(session_document(task_name(1), "sess-0", "active"));
  });
  start();
  engine_->ingest_finished(campaign_id);
  settle();
  EXPECT_EQ(idle_calls_, 0);

  run_until(t0_ + deadline());
  settle();
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(idle_calls_, 0) << "idle while the expired call's session is still being settled";
  run_to_quiet(hours(1));
  EXPECT_EQ(gets().size(), 2u);
  EXPECT_EQ(idle_calls_, 1);
}

TEST_F(dial_engine_session_test, without_await_call_end_idles_once_every_request_is_answered) {
  add_tasks(2);
  respond([](const std::string&, int, std::size_t) { return std::optional<http_response>{}; });
  start();
  engine_->ingest_finished(campaign_id);
  settle();
  pool_.answer(0, started(0));
  settle();
  EXPECT_EQ(idle_calls_, 0);
  pool_.answer(1, started(1));
  settle();
  EXPECT_EQ(idle_calls_, 1);
  EXPECT_EQ(progress().live, 2);  // live calls do not delay completion here
  EXPECT_TRUE(progress().complete);
}

// ---- 8. on_ambiguous: retry ----

TEST_F(dial_engine_session_test, ended_for_a_retried_row_frees_only_the_latest_attempts_slot) {
  trunk_.max_concurrent_calls = 2;
  campaign_.max_duration = seconds(10);
  slot_grace_ = seconds(5);
  campaign_.on_ambiguous = config::ambiguous_policy::retry;
  campaign_.retry.max_attempts = 3;
  campaign_.retry.backoff_base = milliseconds(100);
  campaign_.retry.backoff_max = seconds(1);
  add_tasks(1);
  respond([](const std::string& task, int attempt, std::size_t i) -> std::optional<http_response> {
    return task == task_name(1) && attempt == 1 ? status(500) : started(i);
  });
  start();
  EXPECT_EQ(active(), 1);

  run_until(t0_ + seconds(2));
  ASSERT_EQ(keys(), (std::vector<std::string>{key(task_name(1), 1), key(task_name(1), 2)}));
  const steady_time second_at = writes()[1].at;
  EXPECT_EQ(active(), 2);
  EXPECT_EQ(progress().live, 2);

  ended(task_name(1));
  EXPECT_EQ(row(task_name(1)).state, task_state::ended);
  EXPECT_EQ(active(), 1) << "the first attempt's anonymous hold keeps its slot";
  EXPECT_EQ(progress().live, 1);

  // Another call, live past the second attempt's stale deadline.
  run_until(t0_ + seconds(4));
  add_tasks(1);
  engine_->tasks_added(campaign_id);
  settle();
  ASSERT_EQ(writes().size(), 3u);
  EXPECT_EQ(active(), 2);

  run_until(t0_ + seconds(15) - nanoseconds(1));
  poke();
  EXPECT_EQ(active(), 2);
  run_until(t0_ + seconds(15));  // the first attempt's deadline
  EXPECT_EQ(active(), 1);
  run_until(second_at + seconds(15));
  poke();
  EXPECT_EQ(active(), 1) << "attempt 2's stale deadline released a slot";
  run_until(t0_ + seconds(19));  // task 2's deadline
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(progress().live, 0);
  run_to_quiet(hours(1));
  // The anonymous hold has no session to pull.
  for (const auto& g : gets()) {
    EXPECT_NE(g, std::string(sessions_path)) << "a pull for an empty session id";
  }
}

TEST_F(dial_engine_session_test, a_retried_row_at_its_deadline_is_settled_by_its_latest_session) {
  trunk_.max_concurrent_calls = 2;
  campaign_.max_duration = seconds(10);
  slot_grace_ = seconds(5);
  campaign_.on_ambiguous = config::ambiguous_policy::retry;
  campaign_.retry.max_attempts = 3;
  campaign_.retry.backoff_base = milliseconds(100);
  campaign_.retry.backoff_max = seconds(1);
  add_tasks(1);
  respond([](const std::string&, int attempt, std::size_t i) -> std::optional<http_response> {
    return attempt == 1 ? status(500) : started(i);
  });
  start();
  run_until(t0_ + seconds(2));
  ASSERT_EQ(keys(), (std::vector<std::string>{key(task_name(1), 1), key(task_name(1), 2)}));
  const steady_time second_at = writes()[1].at;
  ASSERT_EQ(row(task_name(1)).session_id, "sess-1");

  run_until(t0_ + seconds(15));  // the first attempt's anonymous hold: nothing to settle
  EXPECT_EQ(active(), 1);
  EXPECT_EQ(row(task_name(1)).state, task_state::started);
  run_until(second_at + seconds(15));
  poke();
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended_unconfirmed)
      << "attempt 2's live call lost its session id: it was never marked unconfirmed";
  EXPECT_EQ(gets(), std::vector<std::string>{std::string(sessions_path) + "sess-1"});
}

// ---- 9. Restart ----

TEST_F(dial_engine_session_test, restart_pulls_overdue_and_unsettled_calls_and_holds_no_slot) {
  trunk_.max_concurrent_calls = 1;
  settings_.settle.attempts = 3;
  const std::int64_t overdue_ms = std::chrono::duration_cast<milliseconds>(deadline()).count();
  store_.add_started(campaign_id, "E-overdue", now_ms() - overdue_ms - 1000);
  store_.add_started(campaign_id, "E-unc1", now_ms() - overdue_ms - 60000);
  store_.by_task("E-unc1").state = task_state::ended_unconfirmed;
  store_.by_task("E-unc1").pulls = 1;
  store_.add_started(campaign_id, "E-unc3", now_ms() - overdue_ms - 60000);
  store_.by_task("E-unc3").state = task_state::ended_unconfirmed;
  store_.by_task("E-unc3").pulls = 3;
  start();

  std::vector<std::string> got = gets();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{std::string(sessions_path) + "earlier-E-overdue",
                                           std::string(sessions_path) + "earlier-E-unc1"}));
  EXPECT_EQ(row("E-overdue").state, task_state::ended_unconfirmed);
  EXPECT_EQ(active(), 0) << "an overdue call of an earlier run holds a slot";
  EXPECT_EQ(progress().live, 0);

  add_tasks(1);
  engine_->tasks_added(campaign_id);
  settle();
  ASSERT_EQ(writes().size(), 1u) << "capacity 1 is free: the task is dialed at once";
  EXPECT_EQ(writes()[0].at, t0_);

  run_to_quiet(hours(1));
  EXPECT_EQ(std::count(gets().begin(), gets().end(), std::string(sessions_path) + "earlier-E-unc3"),
            0);
}

// ---- 10. Placed although answered "not placed" ----

TEST_F(dial_engine_session_test,
       created_for_a_task_answered_409_occupies_a_slot_and_is_not_redialed) {
  campaign_.retry.max_attempts = 3;
  campaign_.retry.backoff_base = seconds(1);
  campaign_.retry.backoff_max = seconds(1);
  add_tasks(1);
  respond([](const std::string&, int attempt, std::size_t i) -> std::optional<http_response> {
    return attempt == 1 ? status(409) : started(i);
  });
  start();
  ASSERT_EQ(row(task_name(1)).state, task_state::pending);
  EXPECT_EQ(active(), 0);

  const steady_time t = now();
  const update_outcome o = deliver(webhook(false, task_name(1), "sess-placed"));
  EXPECT_EQ(o.verdict, update_verdict::applied);
  EXPECT_EQ(o.previous, task_state::pending);
  EXPECT_EQ(row(task_name(1)).state, task_state::started);
  EXPECT_EQ(active(), 1);
  EXPECT_EQ(progress().live, 1);

  run_for(seconds(5));  // the 409's retry came due within 1 s
  poke();
  EXPECT_EQ(writes().size(), 1u) << "a placed call was dialed again";
  EXPECT_EQ(store_.mark_dialing_calls(), 2);  // the retry was refused by the store
  EXPECT_EQ(row(task_name(1)).state, task_state::started);
  EXPECT_EQ(row(task_name(1)).session_id, "sess-placed");
  EXPECT_EQ(active(), 1);

  run_until(t + deadline() - nanoseconds(1));
  poke();
  EXPECT_EQ(active(), 1);
  run_until(t + deadline());
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(row(task_name(1)).state, task_state::ended_unconfirmed);
}

// ---- Transcripts ----

TEST_F(dial_engine_session_test, an_ended_call_of_a_transcript_campaign_pulls_its_messages) {
  campaign_.transcripts.store = true;
  add_tasks(1);
  start();
  run_for(seconds(3));
  ended(task_name(1));
  EXPECT_EQ(gets(), std::vector<std::string>{std::string(sessions_path) + "sess-0/messages"});
}

}  // namespace
}  // namespace dialer
