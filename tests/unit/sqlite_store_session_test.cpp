// The call-lifecycle rules of the SQLite store (schema v2): session events, redials, number caps,
// unconfirmed calls and pulls, transcripts, the v1 → v2 migration and the indexes behind them.
// Assertions read the file through a separate connection, so they do not trust the store.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/sqlite_store.hpp"
#include "core/time.hpp"
#include "tests/unit/store_fixture.hpp"

namespace dialer {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::st;

constexpr std::int64_t ms_per_day = 86'400'000;

// raw_db that also reads one task's columns and counts.
class raw_db : public test::raw_db {
 public:
  using test::raw_db::raw_db;

  // One column of one task; nullopt for NULL.
  std::optional<std::string> field(std::int64_t row_id, const std::string& column) {
    const auto r = rows("SELECT " + column + " IS NULL, " + column +
                        " FROM tasks WHERE row_id = " + std::to_string(row_id));
    if (r.size() != 1) {
      throw std::runtime_error("no task " + std::to_string(row_id));
    }
    if (r[0][0] == "1") {
      return std::nullopt;
    }
    return r[0][1];
  }

  // Every column of a task, NULL told apart from '' (quote()), to prove a row did not change.
  std::map<std::string, std::string> snapshot(std::int64_t row_id) {
    std::vector<std::string> columns;
    for (const auto& c : rows("SELECT name FROM pragma_table_info('tasks') ORDER BY cid")) {
      columns.push_back(c[0]);
    }
    std::string sql = "SELECT ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
      sql += (i == 0 ? "quote(" : ", quote(") + columns[i] + ")";
    }
    sql += " FROM tasks WHERE row_id = " + std::to_string(row_id);
    const auto r = rows(sql);
    if (r.size() != 1) {
      throw std::runtime_error("no task " + std::to_string(row_id));
    }
    std::map<std::string, std::string> out;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      out[columns[i]] = r[0][i];
    }
    return out;
  }

  std::int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }
};

std::string st_text(task_state s) {
  return std::to_string(st(s));
}

session_update created(std::string sid, std::string campaign, std::string task_id) {
  session_update u;
  u.ended = false;
  u.session_id = std::move(sid);
  u.campaign_id = std::move(campaign);
  u.task_id = std::move(task_id);
  u.event_name = "session.created";
  u.source = "webhook";
  u.raw = R"({"event":"session.created","sessionId":")" + u.session_id + R"(","taskId":")" +
          u.task_id + R"("})";
  return u;
}

session_update ended(std::string sid, std::string campaign, std::string task_id,
                     std::string reason = "completed") {
  session_update u;
  u.ended = true;
  u.session_id = std::move(sid);
  u.campaign_id = std::move(campaign);
  u.task_id = std::move(task_id);
  u.end_reason = std::move(reason);
  u.duration_seconds = 42;
  u.intent = "book_appointment";
  u.resolution = "resolved";
  u.sentiment = "positive";
  u.analysis_data_json = R"({"score":7})";
  u.event_name = "session.ended";
  u.source = "webhook";
  u.raw = R"({"event":"session.ended","sessionId":")" + u.session_id + R"(","endReason":")" +
          u.end_reason + R"("})";
  return u;
}

struct apply_result {
  bool ok = false;
  update_outcome out;
};

class sqlite_store_session_test : public test::store_fixture {
 protected:
  sqlite_store_session_test() : store_fixture("sqlite_store_session_test") {}

  // One PENDING task (no phone dedupe); returns its row id.
  std::int64_t add_task(sqlite_store& s, const std::string& campaign, const std::string& task_id,
                        std::string phone = "") {
    const std::int64_t line = ++next_line_;
    if (phone.empty()) {
      phone = "+9715" + std::to_string(10000000 + line);
    }
    const std::vector<ingest_row> rows = {
        {line, task_id, phone, R"({"taskId":")" + task_id + R"("})"}};
    const auto r = s.ingest(campaign, rows, {}, false);
    EXPECT_EQ(r.pending, 1) << task_id;
    raw_db raw(db_path());
    return raw.count("SELECT row_id FROM tasks WHERE campaign = '" + campaign +
                     "' AND task_id = '" + task_id + "'");
  }

  claim_outcome claim(sqlite_store& s, std::int64_t row_id, int attempt = 1) {
    std::optional<claim_outcome> got;
    s.mark_dialing(row_id, attempt, [&](claim_outcome o) { got = o; });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(claim_outcome{});
  }

  bool record(sqlite_store& s, std::int64_t row_id, task_state state, int attempts = 1,
              std::string session_id = "") {
    attempt_outcome o;
    o.row_id = row_id;
    o.state = state;
    o.attempts = attempts;
    o.session_id = std::move(session_id);
    if (state == task_state::started) {
      o.http_status = 201;
    }
    std::optional<bool> got;
    s.record(std::move(o), [&](bool ok) { got = ok; });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(false);
  }

  // A task claimed and answered 2xx with `sid`.
  std::int64_t started_task(sqlite_store& s, const std::string& campaign,
                            const std::string& task_id, const std::string& sid) {
    const auto row_id = add_task(s, campaign, task_id);
    EXPECT_EQ(claim(s, row_id).result, claim_result::claimed);
    EXPECT_TRUE(record(s, row_id, task_state::started, 1, sid));
    return row_id;
  }

  apply_result apply(sqlite_store& s, session_update u) {
    std::optional<apply_result> got;
    s.apply_session(std::move(u), [&](bool ok, update_outcome o) {
      got = apply_result{ok, std::move(o)};
    });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(apply_result{});
  }

  std::vector<dial_task> pending(sqlite_store& s, const std::string& campaign) {
    std::optional<std::vector<dial_task>> got;
    s.fetch_pending(campaign, 0, 100000, [&](std::vector<dial_task> t) { got = std::move(t); });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(std::vector<dial_task>{});
  }

  due_page due(sqlite_store& s, const std::string& campaign, std::int64_t after_ms,
               std::int64_t after_row_id, std::int64_t up_to_ms, std::size_t limit = 100) {
    std::optional<due_page> got;
    s.fetch_due(campaign, after_ms, after_row_id, up_to_ms, limit,
                [&](due_page p) { got = std::move(p); });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(due_page{});
  }

  bool unconfirmed(sqlite_store& s, std::int64_t row_id, const std::string& sid) {
    std::optional<bool> got;
    s.mark_unconfirmed(row_id, sid, [&](bool ok) { got = ok; });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(false);
  }

  bool pull(sqlite_store& s, std::int64_t row_id, int pulls, std::string detail) {
    std::optional<bool> got;
    s.record_pull(row_id, pulls, std::move(detail), [&](bool ok) { got = ok; });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(false);
  }

  bool transcript(sqlite_store& s, std::int64_t row_id, std::string json) {
    std::optional<bool> got;
    s.save_transcript(row_id, std::move(json), [&](bool ok) { got = ok; });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(false);
  }

  std::int64_t purge(sqlite_store& s, const std::string& campaign, std::int64_t before_ms) {
    std::optional<std::int64_t> got;
    s.purge_transcripts(campaign, before_ms, [&](std::int64_t n) { got = n; });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(-1);
  }

  std::int64_t events() {
    raw_db raw(db_path());
    return raw.count("SELECT count(*) FROM events");
  }

  static campaign_policy redial_policy() {
    campaign_policy p;
    p.redial_on = {"no_answer", "busy"};
    p.max_attempts = 3;
    p.redial_after_ms = 60000;
    return p;
  }

  std::int64_t next_line_ = 1;
};

// ---- Rule 1: lookup and orphans ----

TEST_F(sqlite_store_session_test, an_event_without_task_ids_and_an_unknown_session_is_an_orphan) {
  auto store = open();
  auto u = ended("s-nobody", "", "");
  const auto first = apply(*store, u);
  EXPECT_TRUE(first.ok);
  EXPECT_EQ(first.out.verdict, update_verdict::orphan);
  EXPECT_EQ(first.out.reason, "unknown_session");
  EXPECT_EQ(first.out.row_id, 0);
  {
    raw_db raw(db_path());
    const auto ev = raw.rows(
        "SELECT row_id IS NULL, verdict, reason, event, session_id, source, raw "
        "FROM events");
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0], (std::vector<std::string>{"1", "orphan", "unknown_session", "session.ended",
                                               "s-nobody", "webhook", u.raw}));
  }
  const auto again = apply(*store, u);
  EXPECT_TRUE(again.ok);
  EXPECT_EQ(again.out.verdict, update_verdict::duplicate);
  EXPECT_EQ(events(), 1);
}

TEST_F(sqlite_store_session_test, an_event_for_a_task_we_do_not_have_is_an_unknown_task_orphan) {
  auto store = open();
  add_task(*store, "c", "t-real");
  const auto first = apply(*store, ended("s-1", "c", "t-missing"));
  EXPECT_EQ(first.out.verdict, update_verdict::orphan);
  EXPECT_EQ(first.out.reason, "unknown_task");
  // Same task id, another campaign: still ours to not know.
  EXPECT_EQ(apply(*store, ended("s-2", "other", "t-real")).out.reason, "unknown_task");
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.count("SELECT count(*) FROM events WHERE row_id IS NULL AND reason = "
                        "'unknown_task'"),
              2);
  }
  EXPECT_EQ(apply(*store, ended("s-1", "c", "t-missing")).out.verdict, update_verdict::duplicate);
  EXPECT_EQ(events(), 2);
  // A different event of the same session is a different orphan.
  EXPECT_EQ(apply(*store, created("s-1", "c", "t-missing")).out.verdict, update_verdict::orphan);
  EXPECT_EQ(events(), 3);
}

TEST_F(sqlite_store_session_test, a_live_task_is_found_by_its_session_id_alone) {
  auto store = open();
  add_task(*store, "c", "t-other");
  const auto row_id = started_task(*store, "c", "t1", "s-live");
  const auto r = apply(*store, ended("s-live", "", ""));
  EXPECT_EQ(r.out.verdict, update_verdict::applied);
  EXPECT_EQ(r.out.row_id, row_id);
  EXPECT_EQ(r.out.campaign, "c");
  raw_db raw(db_path());
  EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::ended));
  EXPECT_EQ(raw.scalar("SELECT row_id FROM events"), std::to_string(row_id));
}

TEST_F(sqlite_store_session_test, a_task_that_is_not_live_is_found_only_by_campaign_and_task_id) {
  auto store = open();
  const auto row_id = add_task(*store, "c", "t1");
  ASSERT_EQ(claim(*store, row_id).result, claim_result::claimed);
  // DIALING has no session id yet and is not in tasks_live.
  const auto by_session = apply(*store, created("s-1", "", ""));
  EXPECT_EQ(by_session.out.verdict, update_verdict::orphan);
  EXPECT_EQ(by_session.out.reason, "unknown_session");
  const auto by_task = apply(*store, created("s-1", "c", "t1"));
  EXPECT_EQ(by_task.out.verdict, update_verdict::applied);
  EXPECT_EQ(by_task.out.row_id, row_id);
}

TEST_F(sqlite_store_session_test, another_session_for_a_started_task_is_a_mismatch_orphan) {
  auto store = open();
  const auto row_id = started_task(*store, "c", "t1", "s-1");
  const auto before = raw_db(db_path()).snapshot(row_id);
  const auto r = apply(*store, ended("s-9", "c", "t1"));
  EXPECT_EQ(r.out.verdict, update_verdict::orphan);
  EXPECT_EQ(r.out.reason, "session_mismatch");
  raw_db raw(db_path());
  EXPECT_EQ(raw.snapshot(row_id), before);
  EXPECT_EQ(raw.count("SELECT count(*) FROM events WHERE row_id IS NULL"), 1);
}

// ---- Rule 2: session.created racing the calls/start response ----

TEST_F(sqlite_store_session_test, created_before_the_start_response_wins_and_the_response_is_moot) {
  auto store = open();
  const auto row_id = add_task(*store, "c", "t1");
  ASSERT_EQ(claim(*store, row_id).result, claim_result::claimed);
  clock_.advance(2s);
  const std::int64_t created_at = now_ms();
  const auto r = apply(*store, created("s-1", "c", "t1"));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.out.verdict, update_verdict::applied);
  EXPECT_EQ(r.out.previous, task_state::dialing);
  EXPECT_EQ(r.out.state, task_state::started);
  EXPECT_EQ(r.out.session_id, "s-1");
  std::map<std::string, std::string> after_created;
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::started));
    EXPECT_EQ(raw.field(row_id, "session_id"), "s-1");
    EXPECT_EQ(raw.field(row_id, "started_ms"), std::to_string(created_at));
    EXPECT_EQ(raw.scalar("SELECT verdict || ' ' || row_id FROM events"),
              "applied " + std::to_string(row_id));
    after_created = raw.snapshot(row_id);
  }
  clock_.advance(1s);
  EXPECT_FALSE(record(*store, row_id, task_state::started, 1, "s-1"));
  EXPECT_FALSE(record(*store, row_id, task_state::unknown, 1));
  raw_db raw(db_path());
  EXPECT_EQ(raw.snapshot(row_id), after_created);
}

TEST_F(sqlite_store_session_test, a_response_recorded_after_the_end_does_not_revert_it) {
  auto store = open();
  const auto row_id = add_task(*store, "c", "t1");
  ASSERT_EQ(claim(*store, row_id).result, claim_result::claimed);
  ASSERT_EQ(apply(*store, ended("s-1", "c", "t1")).out.state, task_state::ended);
  const auto before = raw_db(db_path()).snapshot(row_id);
  clock_.advance(1s);
  for (const auto target :
       {task_state::started, task_state::pending, task_state::failed, task_state::unknown}) {
    EXPECT_FALSE(record(*store, row_id, target, 1, "s-1")) << to_string(target);
  }
  raw_db raw(db_path());
  EXPECT_EQ(raw.snapshot(row_id), before);
  EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::ended));
}

// ---- Rule 3: session.created by the state it finds ----

TEST_F(sqlite_store_session_test, created_reconciles_unknown_and_not_placed_tasks) {
  auto store = open();
  const auto unknown_row = add_task(*store, "c", "t-unknown");
  ASSERT_EQ(claim(*store, unknown_row).result, claim_result::claimed);
  ASSERT_TRUE(record(*store, unknown_row, task_state::unknown));
  const auto not_placed_row = add_task(*store, "c", "t-not-placed");
  ASSERT_EQ(claim(*store, not_placed_row).result, claim_result::claimed);
  ASSERT_TRUE(record(*store, not_placed_row, task_state::pending));

  const auto u = apply(*store, created("s-u", "c", "t-unknown"));
  EXPECT_EQ(u.out.verdict, update_verdict::applied);
  EXPECT_EQ(u.out.previous, task_state::unknown);
  EXPECT_EQ(u.out.state, task_state::started);
  const auto p = apply(*store, created("s-p", "c", "t-not-placed"));
  EXPECT_EQ(p.out.verdict, update_verdict::applied);
  EXPECT_EQ(p.out.previous, task_state::pending);
  EXPECT_EQ(p.out.state, task_state::started);

  raw_db raw(db_path());
  EXPECT_EQ(raw.field(unknown_row, "state"), st_text(task_state::started));
  EXPECT_EQ(raw.field(unknown_row, "session_id"), "s-u");
  EXPECT_NE(raw.field(unknown_row, "detail").value_or("").find("reconciled"), std::string::npos)
      << raw.field(unknown_row, "detail").value_or("NULL");
  EXPECT_EQ(raw.field(not_placed_row, "state"), st_text(task_state::started));
  EXPECT_EQ(raw.field(not_placed_row, "session_id"), "s-p");
  // And the scheduler will not dial it again.
  EXPECT_TRUE(pending(*store, "c").empty());
}

TEST_F(sqlite_store_session_test, created_for_a_task_never_dialed_or_failed_is_an_orphan) {
  auto store = open();
  const auto fresh = add_task(*store, "c", "t-fresh", "+971500000001");
  // Same number with dedupe: stored SUPPRESSED.
  const std::vector<ingest_row> dup = {{100, "t-dup", "+971500000001", "{}"}};
  ASSERT_EQ(store->ingest("c", dup, {}, true).duplicate_phone, 1);
  const auto failed = add_task(*store, "c", "t-failed");
  ASSERT_EQ(claim(*store, failed).result, claim_result::claimed);
  ASSERT_TRUE(record(*store, failed, task_state::failed));

  raw_db raw(db_path());
  const auto suppressed =
      raw.count("SELECT row_id FROM tasks WHERE task_id = 't-dup' AND state = 7");
  const auto before_fresh = raw.snapshot(fresh);
  const auto before_suppressed = raw.snapshot(suppressed);
  const auto before_failed = raw.snapshot(failed);

  const auto f = apply(*store, created("s-1", "c", "t-fresh"));
  EXPECT_EQ(f.out.verdict, update_verdict::orphan);
  EXPECT_EQ(f.out.reason, "not_dialed");
  const auto s = apply(*store, created("s-2", "c", "t-dup"));
  EXPECT_EQ(s.out.verdict, update_verdict::orphan);
  EXPECT_EQ(s.out.reason, "not_dialed");
  const auto x = apply(*store, created("s-3", "c", "t-failed"));
  EXPECT_EQ(x.out.verdict, update_verdict::orphan);
  EXPECT_EQ(x.out.reason, "failed_task");

  EXPECT_EQ(raw.snapshot(fresh), before_fresh);
  EXPECT_EQ(raw.snapshot(suppressed), before_suppressed);
  EXPECT_EQ(raw.snapshot(failed), before_failed);
  EXPECT_EQ(raw.count("SELECT count(*) FROM events WHERE row_id IS NULL AND verdict = 'orphan'"),
            3);
}

// ---- Rule 4: session.ended from every state that may hold a call ----

TEST_F(sqlite_store_session_test, ended_settles_started_dialing_unknown_and_unconfirmed_tasks) {
  auto store = open();
  const auto started = started_task(*store, "c", "t-started", "s-started");
  const auto dialing = add_task(*store, "c", "t-dialing");
  ASSERT_EQ(claim(*store, dialing).result, claim_result::claimed);
  const auto unknown = add_task(*store, "c", "t-unknown");
  ASSERT_EQ(claim(*store, unknown).result, claim_result::claimed);
  ASSERT_TRUE(record(*store, unknown, task_state::unknown));
  const auto unconfirmed_row = started_task(*store, "c", "t-unconfirmed", "s-unconfirmed");
  ASSERT_TRUE(unconfirmed(*store, unconfirmed_row, "s-unconfirmed"));

  struct one_case {
    std::int64_t row_id;
    std::string task_id;
    std::string sid;
    task_state from;
  };
  const std::vector<one_case> cases = {
      {started, "t-started", "s-started", task_state::started},
      {dialing, "t-dialing", "s-dialing", task_state::dialing},
      {unknown, "t-unknown", "s-unknown", task_state::unknown},
      {unconfirmed_row, "t-unconfirmed", "s-unconfirmed", task_state::ended_unconfirmed},
  };
  clock_.advance(10s);
  const std::int64_t event_ms = now_ms() - 1500;  // the vendor's timestamp, before we got it
  for (const auto& c : cases) {
    auto u = ended(c.sid, "c", c.task_id, "completed");
    u.event_ms = event_ms;
    const auto r = apply(*store, u);
    EXPECT_TRUE(r.ok) << c.task_id;
    EXPECT_EQ(r.out.verdict, update_verdict::applied) << c.task_id;
    EXPECT_EQ(r.out.previous, c.from) << c.task_id;
    EXPECT_EQ(r.out.state, task_state::ended) << c.task_id;
    EXPECT_EQ(r.out.row_id, c.row_id) << c.task_id;
    EXPECT_EQ(r.out.redial_at_ms, 0) << c.task_id;

    raw_db raw(db_path());
    EXPECT_EQ(raw.field(c.row_id, "state"), st_text(task_state::ended)) << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "session_id"), c.sid) << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "end_reason"), "completed") << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "duration_s"), "42") << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "intent"), "book_appointment") << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "resolution"), "resolved") << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "sentiment"), "positive") << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "analysis_data"), R"({"score":7})") << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "ended_ms"), std::to_string(event_ms)) << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "result_source"), "webhook") << c.task_id;
    EXPECT_EQ(raw.field(c.row_id, "redial_at_ms"), std::nullopt) << c.task_id;
    const auto ev = raw.rows(
        "SELECT verdict, coalesce(reason, ''), raw, received_ms FROM events "
        "WHERE row_id = " +
        std::to_string(c.row_id));
    ASSERT_EQ(ev.size(), 1u) << c.task_id;
    EXPECT_EQ(ev[0], (std::vector<std::string>{"applied", "", u.raw, std::to_string(now_ms())}))
        << c.task_id;
  }
}

TEST_F(sqlite_store_session_test, ended_without_a_timestamp_or_a_duration_uses_now_and_null) {
  auto store = open();
  const auto row_id = started_task(*store, "c", "t1", "s-1");
  clock_.advance(5s);
  auto u = ended("s-1", "c", "t1", "");
  u.duration_seconds.reset();
  u.intent.clear();
  u.analysis_data_json.clear();
  ASSERT_EQ(apply(*store, u).out.verdict, update_verdict::applied);
  raw_db raw(db_path());
  EXPECT_EQ(raw.field(row_id, "ended_ms"), std::to_string(now_ms()));
  EXPECT_EQ(raw.field(row_id, "duration_s"), std::nullopt);
  EXPECT_EQ(raw.field(row_id, "intent"), std::nullopt);
  EXPECT_EQ(raw.field(row_id, "analysis_data"), std::nullopt);
  EXPECT_EQ(raw.field(row_id, "end_reason"), "unknown");
}

TEST_F(sqlite_store_session_test, ended_before_created_ends_the_task_and_created_is_a_duplicate) {
  auto store = open();
  const auto row_id = add_task(*store, "c", "t1");
  ASSERT_EQ(claim(*store, row_id).result, claim_result::claimed);
  const auto e = apply(*store, ended("s-1", "c", "t1"));
  EXPECT_EQ(e.out.verdict, update_verdict::applied);
  EXPECT_EQ(e.out.state, task_state::ended);
  const auto before = raw_db(db_path()).snapshot(row_id);
  const auto events_before = events();
  clock_.advance(1s);
  const auto c = apply(*store, created("s-1", "c", "t1"));
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(c.out.verdict, update_verdict::duplicate);
  EXPECT_EQ(c.out.row_id, row_id);
  raw_db raw(db_path());
  EXPECT_EQ(raw.snapshot(row_id), before);
  EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::ended));
  EXPECT_EQ(events(), events_before);
}

// ---- Rule 5: repeated deliveries ----

TEST_F(sqlite_store_session_test, a_repeated_end_is_a_duplicate_and_changes_nothing) {
  auto store = open();
  const auto row_id = started_task(*store, "c", "t1", "s-1");
  ASSERT_EQ(apply(*store, ended("s-1", "c", "t1")).out.verdict, update_verdict::applied);
  const auto before = raw_db(db_path()).snapshot(row_id);
  ASSERT_EQ(events(), 1);
  clock_.advance(30s);
  // The retry may differ in what it says; the first end stands.
  auto retry = ended("s-1", "c", "t1", "no_answer");
  retry.duration_seconds = 1;
  const auto r = apply(*store, retry);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.out.verdict, update_verdict::duplicate);
  EXPECT_EQ(r.out.state, task_state::ended);
  EXPECT_EQ(raw_db(db_path()).snapshot(row_id), before);
  EXPECT_EQ(events(), 1);
  // A retry that carries only the session id cannot be told from an orphan any more (the task
  // left tasks_live); it is kept, once, for review.
  const auto bare = apply(*store, ended("s-1", "", ""));
  EXPECT_EQ(bare.out.verdict, update_verdict::orphan);
  EXPECT_EQ(bare.out.reason, "unknown_session");
  EXPECT_EQ(raw_db(db_path()).snapshot(row_id), before);
}

// A re-delivery of the session.ended that scheduled a redial (the vendor retrying a webhook
// whose 2xx it did not see) comes before the redial's claim: it must be a plain duplicate, not a
// stale event of an earlier attempt, and store nothing. (Found by this test: the previous_sessions
// check used to run first.)
TEST_F(sqlite_store_session_test, a_repeated_end_that_scheduled_a_redial_is_a_duplicate) {
  auto store = open();
  store->set_campaign_policy("c", redial_policy());
  const auto row_id = started_task(*store, "c", "t1", "s-1");
  ASSERT_EQ(apply(*store, ended("s-1", "c", "t1", "no_answer")).out.state, task_state::pending);
  const auto before = raw_db(db_path()).snapshot(row_id);
  clock_.advance(5s);
  const auto r = apply(*store, ended("s-1", "c", "t1", "no_answer"));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(raw_db(db_path()).snapshot(row_id), before);
  EXPECT_EQ(r.out.verdict, update_verdict::duplicate)
      << to_string(r.out.verdict) << " " << r.out.reason;
  EXPECT_EQ(events(), 1);
}

// ---- Rule 6: redials ----

TEST_F(sqlite_store_session_test, no_answer_schedules_a_redial_and_a_late_end_of_it_is_stale) {
  auto store = open();
  store->set_campaign_policy("c", redial_policy());
  const auto row_id = started_task(*store, "c", "t1", "s-1");
  clock_.advance(20s);
  const std::int64_t ended_at = now_ms();
  const std::int64_t redial_at = ended_at + 60000;

  const auto r = apply(*store, ended("s-1", "c", "t1", "no_answer"));
  EXPECT_EQ(r.out.verdict, update_verdict::applied);
  EXPECT_EQ(r.out.previous, task_state::started);
  EXPECT_EQ(r.out.state, task_state::pending);
  EXPECT_EQ(r.out.redial_at_ms, redial_at);
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::pending));
    EXPECT_EQ(raw.field(row_id, "redial_at_ms"), std::to_string(redial_at));
    EXPECT_EQ(raw.field(row_id, "previous_sessions"), "s-1");
    EXPECT_EQ(raw.field(row_id, "end_reason"), "no_answer");
  }
  EXPECT_TRUE(pending(*store, "c").empty());

  const auto early = due(*store, "c", 0, 0, redial_at - 1);
  EXPECT_TRUE(early.tasks.empty());
  EXPECT_EQ(early.next_due_ms, redial_at);
  const auto on_time = due(*store, "c", 0, 0, redial_at);
  ASSERT_EQ(on_time.tasks.size(), 1u);
  EXPECT_EQ(on_time.tasks[0].row_id, row_id);
  EXPECT_EQ(on_time.tasks[0].attempts, 1);
  EXPECT_EQ(on_time.tasks[0].not_before_ms, redial_at);
  EXPECT_EQ(on_time.next_due_ms, 0);

  clock_.advance(60s);
  ASSERT_EQ(claim(*store, row_id, 2).result, claim_result::claimed);
  std::map<std::string, std::string> dialing;
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::dialing));
    EXPECT_EQ(raw.field(row_id, "attempts"), "2");
    for (const char* cleared :
         {"session_id", "end_reason", "duration_s", "intent", "resolution", "sentiment",
          "analysis_data", "ended_ms", "result_source", "redial_at_ms"}) {
      EXPECT_EQ(raw.field(row_id, cleared), std::nullopt) << cleared;
    }
    EXPECT_EQ(raw.field(row_id, "pulls"), "0");
    EXPECT_EQ(raw.field(row_id, "previous_sessions"), "s-1");
    dialing = raw.snapshot(row_id);
  }
  EXPECT_TRUE(due(*store, "c", 0, 0, now_ms() + ms_per_day).tasks.empty());

  clock_.advance(1s);
  const auto events_before = events();
  const auto late = apply(*store, ended("s-1", "c", "t1", "no_answer"));
  EXPECT_TRUE(late.ok);
  EXPECT_EQ(late.out.verdict, update_verdict::stale);
  EXPECT_EQ(late.out.reason, "earlier_attempt");
  EXPECT_EQ(raw_db(db_path()).snapshot(row_id), dialing);
  // A late created of the first session is just as stale.
  EXPECT_EQ(apply(*store, created("s-1", "c", "t1")).out.verdict, update_verdict::stale);
  EXPECT_EQ(raw_db(db_path()).snapshot(row_id), dialing);
  {
    raw_db raw(db_path());
    // Stale events are kept once for review, unclaimed (row_id NULL) like orphans.
    EXPECT_EQ(raw.count("SELECT count(*) FROM events WHERE verdict = 'stale' AND row_id IS NULL "
                        "AND reason = 'earlier_attempt'"),
              events() - events_before);
  }

  // Attempt 2 answers and ends no_answer again: one more redial (2 < 3).
  ASSERT_EQ(apply(*store, created("s-2", "c", "t1")).out.state, task_state::started);
  const auto second = apply(*store, ended("s-2", "c", "t1", "busy"));
  EXPECT_EQ(second.out.state, task_state::pending);
  EXPECT_EQ(second.out.redial_at_ms, now_ms() + 60000);
  EXPECT_EQ(raw_db(db_path()).field(row_id, "previous_sessions"), "s-1,s-2");

  // Attempt 3 == max_attempts: no_answer ends the task.
  clock_.advance(61s);
  ASSERT_EQ(claim(*store, row_id, 3).result, claim_result::claimed);
  ASSERT_TRUE(record(*store, row_id, task_state::started, 3, "s-3"));
  const auto last = apply(*store, ended("s-3", "c", "t1", "no_answer"));
  EXPECT_EQ(last.out.verdict, update_verdict::applied);
  EXPECT_EQ(last.out.state, task_state::ended);
  EXPECT_EQ(last.out.redial_at_ms, 0);
  raw_db raw(db_path());
  EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::ended));
  EXPECT_EQ(raw.field(row_id, "redial_at_ms"), std::nullopt);
  EXPECT_TRUE(due(*store, "c", 0, 0, now_ms() + ms_per_day).tasks.empty());
}

TEST_F(sqlite_store_session_test, only_listed_end_reasons_redial) {
  auto store = open();
  store->set_campaign_policy("c", redial_policy());
  const auto completed = started_task(*store, "c", "t-completed", "s-1");
  const auto hung_up = started_task(*store, "c", "t-voicemail", "s-2");
  const auto no_policy = started_task(*store, "other", "t-other", "s-3");
  EXPECT_EQ(apply(*store, ended("s-1", "c", "t-completed", "completed")).out.state,
            task_state::ended);
  EXPECT_EQ(apply(*store, ended("s-2", "c", "t-voicemail", "voicemail")).out.state,
            task_state::ended);
  // A campaign without a policy never redials.
  EXPECT_EQ(apply(*store, ended("s-3", "other", "t-other", "no_answer")).out.state,
            task_state::ended);
  raw_db raw(db_path());
  for (const auto row_id : {completed, hung_up, no_policy}) {
    EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::ended)) << row_id;
    EXPECT_EQ(raw.field(row_id, "redial_at_ms"), std::nullopt) << row_id;
    EXPECT_EQ(raw.field(row_id, "previous_sessions"), std::nullopt) << row_id;
  }
}

// ---- Rule 7: fetch_due order and cursor ----

TEST_F(sqlite_store_session_test, fetch_due_pages_return_each_due_task_once_in_due_order) {
  auto store = open();
  const std::int64_t t0 = now_ms();
  // Row order a < b < c < d < e; due order (1000,b) (1000,e) (2000,d) (3000,a) (3000,c): ties on
  // the due time are broken by row id, across a page boundary.
  const std::vector<std::pair<std::string, std::int64_t>> plan = {
      {"a", 3000}, {"b", 1000}, {"c", 3000}, {"d", 2000}, {"e", 1000}};
  std::map<std::string, std::int64_t> rows;
  for (const auto& entry : plan) {
    rows[entry.first] = started_task(*store, "c", entry.first, "s-" + entry.first);
  }
  for (const auto& [name, after] : plan) {
    auto p = redial_policy();
    p.redial_after_ms = after;
    store->set_campaign_policy("c", p);
    ASSERT_EQ(apply(*store, ended("s-" + name, "c", name, "no_answer")).out.redial_at_ms,
              t0 + after);
  }
  // Another campaign's due task never shows up.
  store->set_campaign_policy("x", redial_policy());
  started_task(*store, "x", "x1", "s-x1");
  ASSERT_EQ(apply(*store, ended("s-x1", "x", "x1", "no_answer")).out.state, task_state::pending);

  std::vector<std::int64_t> seen;
  std::int64_t after_ms = 0;
  std::int64_t after_row = 0;
  int pages = 0;
  for (;; ++pages) {
    ASSERT_LT(pages, 10);
    const auto page = due(*store, "c", after_ms, after_row, t0 + 10000, 2);
    ASSERT_LE(page.tasks.size(), 2u);
    if (page.tasks.empty()) {
      break;
    }
    for (const auto& t : page.tasks) {
      seen.push_back(t.row_id);
    }
    after_ms = page.tasks.back().not_before_ms;
    after_row = page.tasks.back().row_id;
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen,
            (std::vector<std::int64_t>{rows["b"], rows["e"], rows["d"], rows["a"], rows["c"]}));

  const auto partial = due(*store, "c", 0, 0, t0 + 2000, 10);
  ASSERT_EQ(partial.tasks.size(), 3u);
  EXPECT_EQ(partial.tasks[2].row_id, rows["d"]);
  EXPECT_EQ(partial.next_due_ms, t0 + 3000);
}

// ---- Rule 8: per-number call caps ----

TEST_F(sqlite_store_session_test, the_daily_cap_defers_a_second_call_to_the_next_utc_midnight) {
  auto store = open();
  campaign_policy p;
  p.cap_per_day = 1;
  store->set_campaign_policy("c", p);
  const std::string phone = "+971501234567";
  const auto first = add_task(*store, "c", "t1", phone);
  const auto second = add_task(*store, "c", "t2", phone);
  clock_.advance(10h + 17min);                               // 2026-01-01T10:17Z
  const std::int64_t midnight = 1767225600000 + ms_per_day;  // 2026-01-02T00:00Z

  EXPECT_EQ(claim(*store, first).result, claim_result::claimed);
  const auto capped = claim(*store, second);
  EXPECT_EQ(capped.result, claim_result::capped);
  EXPECT_EQ(capped.retry_at_ms, midnight);
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.field(second, "state"), st_text(task_state::pending));
    EXPECT_EQ(raw.field(second, "redial_at_ms"), std::to_string(midnight));
    EXPECT_EQ(raw.field(second, "error_class"), "number_cap_day");
    EXPECT_EQ(raw.field(second, "attempts"), "0");
    EXPECT_EQ(raw.count("SELECT sum(calls) FROM number_calls WHERE phone = '" + phone + "'"), 1);
  }
  EXPECT_TRUE(pending(*store, "c").empty());
  const auto today = due(*store, "c", 0, 0, midnight - 1);
  EXPECT_TRUE(today.tasks.empty());
  EXPECT_EQ(today.next_due_ms, midnight);

  clock_.set_system(system_time{} + std::chrono::milliseconds(midnight) + 5min);
  const auto tomorrow = due(*store, "c", 0, 0, now_ms());
  ASSERT_EQ(tomorrow.tasks.size(), 1u);
  EXPECT_EQ(tomorrow.tasks[0].row_id, second);
  EXPECT_EQ(claim(*store, second).result, claim_result::claimed);
  raw_db raw(db_path());
  EXPECT_EQ(raw.count("SELECT count(*) FROM number_calls WHERE phone = '" + phone + "'"), 2);
}

TEST_F(sqlite_store_session_test, the_lifetime_cap_fails_the_call_after_the_cap) {
  auto store = open();
  campaign_policy p;
  p.cap_lifetime = 2;
  store->set_campaign_policy("c", p);
  store->set_campaign_policy("d", p);
  const std::string phone = "+971507654321";
  const auto t1 = add_task(*store, "c", "t1", phone);
  const auto t2 = add_task(*store, "c", "t2", phone);
  const auto t3 = add_task(*store, "c", "t3", phone);
  const auto elsewhere = add_task(*store, "d", "t1", phone);

  clock_.advance(9h);
  EXPECT_EQ(claim(*store, t1).result, claim_result::claimed);
  clock_.advance(24h);
  EXPECT_EQ(claim(*store, t2).result, claim_result::claimed);
  clock_.advance(24h);
  const auto third = claim(*store, t3);
  EXPECT_EQ(third.result, claim_result::capped);
  EXPECT_EQ(third.retry_at_ms, 0);
  // The count is the number's, over every campaign.
  EXPECT_EQ(claim(*store, elsewhere).result, claim_result::capped);

  raw_db raw(db_path());
  for (const auto row_id : {t3, elsewhere}) {
    EXPECT_EQ(raw.field(row_id, "state"), st_text(task_state::failed)) << row_id;
    EXPECT_EQ(raw.field(row_id, "error_class"), "number_cap_lifetime") << row_id;
    EXPECT_EQ(raw.field(row_id, "redial_at_ms"), std::nullopt) << row_id;
  }
  EXPECT_EQ(raw.count("SELECT count(*) FROM number_calls WHERE phone = '" + phone + "'"), 2);
  EXPECT_EQ(raw.count("SELECT sum(calls) FROM number_calls WHERE phone = '" + phone + "'"), 2);
  EXPECT_EQ(store->summary("c").failed_by_class.at("number_cap_lifetime"), 1);
}

TEST_F(sqlite_store_session_test, without_caps_no_number_calls_are_counted) {
  auto store = open();
  const std::string phone = "+971500000042";
  const auto a = add_task(*store, "c", "t1", phone);
  EXPECT_EQ(claim(*store, a).result, claim_result::claimed);
  // A policy without caps, and caps on another campaign only, count nothing here either.
  store->set_campaign_policy("c", redial_policy());
  const auto b = add_task(*store, "c", "t2", phone);
  EXPECT_EQ(claim(*store, b).result, claim_result::claimed);
  campaign_policy capped;
  capped.cap_per_day = 1;
  store->set_campaign_policy("other", capped);
  const auto c = add_task(*store, "c", "t3", phone);
  EXPECT_EQ(claim(*store, c).result, claim_result::claimed);
  raw_db raw(db_path());
  EXPECT_EQ(raw.count("SELECT count(*) FROM number_calls"), 0);
}

// ---- Rule 9: unconfirmed calls, pulls and fetch_active ----

TEST_F(sqlite_store_session_test, unconfirmed_calls_are_pulled_and_settled_by_a_pulled_end) {
  auto store = open();
  const auto a = started_task(*store, "c", "t-a", "s-a");
  clock_.advance(1h);
  const auto b = started_task(*store, "c", "t-b", "s-b");
  const std::int64_t b_started = now_ms();
  clock_.advance(1min);
  const auto u = add_task(*store, "c", "t-u");
  ASSERT_EQ(claim(*store, u).result, claim_result::claimed);
  const std::int64_t u_claimed = now_ms();
  ASSERT_TRUE(record(*store, u, task_state::unknown));
  const auto done = started_task(*store, "c", "t-done", "s-done");
  ASSERT_EQ(apply(*store, ended("s-done", "c", "t-done")).out.state, task_state::ended);

  EXPECT_FALSE(unconfirmed(*store, a, "s-b"));        // another session
  EXPECT_FALSE(unconfirmed(*store, done, "s-done"));  // not STARTED
  EXPECT_FALSE(unconfirmed(*store, u, ""));           // UNKNOWN
  EXPECT_FALSE(pull(*store, a, 1, "not yet"));        // only ENDED_UNCONFIRMED
  clock_.advance(10min);
  EXPECT_TRUE(unconfirmed(*store, a, "s-a"));
  EXPECT_FALSE(unconfirmed(*store, a, "s-a"));  // already
  EXPECT_TRUE(pull(*store, a, 1, "session still live"));
  EXPECT_FALSE(pull(*store, b, 1, "STARTED"));
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.field(a, "state"), st_text(task_state::ended_unconfirmed));
    EXPECT_EQ(raw.field(a, "error_class"), "no_session_ended");
    EXPECT_EQ(raw.field(a, "pulls"), "1");
    EXPECT_EQ(raw.field(a, "detail"), "session still live");
    EXPECT_EQ(raw.field(b, "pulls"), "0");
  }

  // STARTED whatever its age, ENDED_UNCONFIRMED with its pulls, UNKNOWN only since `since`.
  const auto recent = active(*store, "c", u_claimed + 1);
  ASSERT_EQ(recent.size(), 2u);
  EXPECT_EQ(recent[0].row_id, a);
  EXPECT_EQ(recent[0].state, task_state::ended_unconfirmed);
  EXPECT_EQ(recent[0].session_id, "s-a");
  EXPECT_EQ(recent[0].pulls, 1);
  EXPECT_EQ(recent[1].row_id, b);
  EXPECT_EQ(recent[1].state, task_state::started);
  EXPECT_EQ(recent[1].started_at_ms, b_started);
  const auto all = active(*store, "c", u_claimed);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].row_id, u);
  EXPECT_EQ(all[2].state, task_state::unknown);
  EXPECT_EQ(all[2].started_at_ms, u_claimed);
  EXPECT_EQ(all[2].session_id, "");

  // A pulled document without metadata: the pull knows its row. (ENDED_UNCONFIRMED is not in
  // tasks_live, so the session id alone would not find it.)
  auto pulled = ended("s-a", "", "", "completed");
  pulled.source = "pull";
  pulled.row_id = a;
  const auto r = apply(*store, pulled);
  EXPECT_EQ(r.out.verdict, update_verdict::applied);
  EXPECT_EQ(r.out.previous, task_state::ended_unconfirmed);
  EXPECT_EQ(r.out.state, task_state::ended);
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.field(a, "state"), st_text(task_state::ended));
    EXPECT_EQ(raw.field(a, "result_source"), "pull");
    EXPECT_EQ(raw.scalar("SELECT source FROM events WHERE row_id = " + std::to_string(a)), "pull");
  }
  EXPECT_FALSE(pull(*store, a, 2, "after the end"));
  const auto after = active(*store, "c", u_claimed);
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].row_id, b);
  EXPECT_EQ(after[1].row_id, u);
}

// ---- Rule 10: transcripts ----

TEST_F(sqlite_store_session_test, purge_erases_only_older_transcripts_of_its_campaign) {
  auto store = open();
  const auto old_c = started_task(*store, "c", "t-old", "s-1");
  const auto new_c = started_task(*store, "c", "t-new", "s-2");
  const auto old_x = started_task(*store, "x", "t-old", "s-3");
  const std::int64_t t0 = now_ms();
  ASSERT_TRUE(transcript(*store, old_c, R"([{"role":"agent","text":"hi"}])"));
  ASSERT_TRUE(transcript(*store, old_x, R"([{"role":"agent","text":"x"}])"));
  clock_.advance(10s);
  ASSERT_TRUE(transcript(*store, new_c, R"([{"role":"user","text":"hello"}])"));
  EXPECT_FALSE(transcript(*store, 999999, "[]"));

  EXPECT_EQ(purge(*store, "c", t0), 0);  // strictly before
  EXPECT_EQ(purge(*store, "c", t0 + 5000), 1);
  raw_db raw(db_path());
  EXPECT_EQ(raw.field(old_c, "transcript"), std::nullopt);
  EXPECT_EQ(raw.field(old_c, "transcript_ms"), std::nullopt);
  EXPECT_EQ(raw.field(new_c, "transcript"), R"([{"role":"user","text":"hello"}])");
  EXPECT_EQ(raw.field(new_c, "transcript_ms"), std::to_string(t0 + 10000));
  EXPECT_EQ(raw.field(old_x, "transcript"), R"([{"role":"agent","text":"x"}])");
  EXPECT_EQ(purge(*store, "c", t0 + 5000), 0);
}

// ---- Rule 11: v1 → v2 ----

// Schema version 1 as `git show HEAD:core/sqlite_store.cpp` had it (schema_sql), verbatim.
constexpr const char* v1_schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS tasks (
  row_id INTEGER PRIMARY KEY,
  campaign TEXT NOT NULL,
  task_id TEXT NOT NULL,
  line INTEGER NOT NULL,
  phone TEXT NOT NULL,
  variables TEXT NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  http_status INTEGER,
  error_class TEXT,
  detail TEXT,
  session_id TEXT,
  not_before_ms INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  dialing_ms INTEGER,
  started_ms INTEGER,
  UNIQUE (campaign, task_id)
);
CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (campaign) WHERE state = 0;
CREATE INDEX IF NOT EXISTS tasks_by_phone ON tasks (campaign, phone);
CREATE INDEX IF NOT EXISTS tasks_dialing ON tasks (state) WHERE state = 1;
CREATE TABLE IF NOT EXISTS rejects (
  campaign TEXT NOT NULL,
  line INTEGER NOT NULL,
  task_id TEXT NOT NULL,
  phone TEXT NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT NOT NULL,
  suppressed INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (campaign, line)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaigns (
  id TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  rows_read INTEGER NOT NULL,
  ingest_complete INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

TEST_F(sqlite_store_session_test, a_v1_store_migrates_to_v2_and_keeps_its_tasks) {
  {
    raw_db v1(db_path(), true);
    v1.exec(v1_schema_sql);
    v1.exec("PRAGMA user_version = 1; PRAGMA application_id = " + std::to_string(0x6469616c));
    v1.exec(
        "INSERT INTO tasks (row_id, campaign, task_id, line, phone, variables, state, attempts, "
        "created_ms, updated_ms) VALUES (7, 'c', 't1', 2, '+971500000007', '{}', 0, 0, 5, 5)");
    v1.exec(
        "INSERT INTO tasks (row_id, campaign, task_id, line, phone, variables, state, attempts, "
        "session_id, created_ms, updated_ms, dialing_ms, started_ms) VALUES (8, 'c', 't2', 3, "
        "'+971500000008', '{}', 2, 1, 's-v1', 5, 6, 6, 6)");
    v1.exec("INSERT INTO campaigns VALUES ('c', 'fp', 2, 1, 5)");
  }
  auto store = open();
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.scalar("PRAGMA user_version"), "3");
    EXPECT_EQ(raw.scalar("PRAGMA application_id"), std::to_string(0x6469616c));
    EXPECT_EQ(raw.count("SELECT count(*) FROM tasks"), 2);
    EXPECT_EQ(raw.field(7, "task_id"), "t1");
    EXPECT_EQ(raw.field(7, "phone"), "+971500000007");
    EXPECT_EQ(raw.field(7, "state"), "0");
    for (const std::int64_t row_id : {7, 8}) {
      for (const char* column : {"redial_at_ms", "previous_sessions", "end_reason", "duration_s",
                                 "intent", "resolution", "sentiment", "analysis_data", "ended_ms",
                                 "result_source", "transcript", "transcript_ms"}) {
        EXPECT_EQ(raw.field(row_id, column), std::nullopt) << row_id << " " << column;
      }
      EXPECT_EQ(raw.field(row_id, "pulls"), "0") << row_id;
    }
    std::set<std::string> names;
    for (const auto& r : raw.rows("SELECT name FROM sqlite_master")) {
      names.insert(r[0]);
    }
    for (const char* name :
         {"tasks_live", "tasks_redial", "events", "events_orphans", "number_calls"}) {
      EXPECT_TRUE(names.count(name)) << name;
    }
  }
  EXPECT_TRUE(store->ingest_complete("c", "fp"));
  const auto p = pending(*store, "c");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].row_id, 7);
  // The v1 STARTED call is in the new tasks_live index: its end is found by session id alone.
  const auto r = apply(*store, ended("s-v1", "", ""));
  EXPECT_EQ(r.out.verdict, update_verdict::applied);
  EXPECT_EQ(r.out.row_id, 8);
}

// ---- Rule 12: the partial indexes serve the lookups ----

TEST_F(sqlite_store_session_test, session_lookup_and_due_scan_use_their_partial_indexes) {
  open().reset();
  raw_db raw(db_path());
  const auto plan = [&](const std::string& sql) {
    std::string out;
    for (const auto& r : raw.rows("EXPLAIN QUERY PLAN " + sql)) {
      out += r.back() + "\n";
    }
    return out;
  };
  const auto by_session = plan("SELECT row_id FROM tasks WHERE session_id = ? AND state = 2");
  EXPECT_NE(by_session.find("USING INDEX tasks_live"), std::string::npos) << by_session;

  const auto due_scan = plan(
      "SELECT row_id FROM tasks WHERE campaign = ? AND state = 0 AND redial_at_ms IS NOT NULL "
      "AND redial_at_ms <= ? ORDER BY redial_at_ms, row_id");
  EXPECT_NE(due_scan.find("USING INDEX tasks_redial"), std::string::npos) << due_scan;
  EXPECT_EQ(due_scan.find("TEMP B-TREE"), std::string::npos) << due_scan;

  // The statement fetch_due really runs, cursor included.
  const auto fetch_due = plan(
      "SELECT row_id, task_id, phone, variables, attempts, redial_at_ms FROM tasks "
      "WHERE campaign = ?1 AND state = 0 AND redial_at_ms IS NOT NULL "
      "AND (redial_at_ms > ?2 OR (redial_at_ms = ?2 AND row_id > ?3)) "
      "AND redial_at_ms <= ?4 ORDER BY redial_at_ms, row_id LIMIT ?5");
  EXPECT_NE(fetch_due.find("USING INDEX tasks_redial"), std::string::npos) << fetch_due;
  EXPECT_EQ(fetch_due.find("TEMP B-TREE"), std::string::npos) << fetch_due;
}

// ---- Throughput of session.ended with synchronous FULL (printed, not asserted) ----

struct burst_result {
  double seconds = 0;
  double submit_seconds = 0;
  std::uint64_t commits = 0;
  int applied = 0;
};

class sqlite_store_session_throughput : public sqlite_store_session_test {
 protected:
  // `n` STARTED tasks of `campaign`, and a webhook-sized session.ended for each (the raw body is
  // kept in `events`, so its size matters).
  std::vector<session_update> started_calls(sqlite_store& s, const std::string& campaign, int n) {
    std::vector<ingest_row> rows;
    for (int i = 0; i < n; ++i) {
      const std::string id = "t" + std::to_string(i);
      rows.push_back({i + 2, id, "+9715" + std::to_string(20000000 + i),
                      R"({"taskId":")" + id + R"(","campaignId":")" + campaign + R"("})"});
    }
    for (std::size_t i = 0; i < rows.size(); i += 4096) {
      const auto batch = std::span(rows).subspan(i, std::min<std::size_t>(4096, rows.size() - i));
      EXPECT_EQ(s.ingest(campaign, batch, {}, false).pending,
                static_cast<std::int64_t>(batch.size()));
    }
    const auto tasks = pending(s, campaign);
    EXPECT_EQ(tasks.size(), static_cast<std::size_t>(n));
    int claimed = 0;
    for (const auto& t : tasks) {
      s.mark_dialing(t.row_id, 1, [&](claim_outcome c) {
        claimed += c.result == claim_result::claimed ? 1 : 0;
      });
    }
    EXPECT_TRUE(exec_.run_until([&] { return claimed == n; }));
    int started = 0;
    for (const auto& t : tasks) {
      attempt_outcome a;
      a.row_id = t.row_id;
      a.state = task_state::started;
      a.attempts = 1;
      a.http_status = 201;
      a.session_id = campaign + "-sess-" + t.task_id;
      s.record(std::move(a), [&](bool ok) { started += ok ? 1 : 0; });
    }
    EXPECT_TRUE(exec_.run_until([&] { return started == n; }));

    const std::string analysis =
        R"({"summary":"Customer confirmed the appointment for Tuesday at 10:00 and asked for )"
        R"(an SMS reminder.","score":8,"tags":["appointment","confirmed"]})";
    std::vector<session_update> updates;
    updates.reserve(tasks.size());
    for (const auto& t : tasks) {
      auto u = ended(campaign + "-sess-" + t.task_id, campaign, t.task_id, "completed");
      u.analysis_data_json = analysis;
      u.event_ms = now_ms();
      u.raw = R"({"event":"session.ended","timestamp":"2026-01-01T00:00:00Z","data":)"
              R"({"sessionId":")" +
              u.session_id +
              R"(","endReason":"completed","durationSeconds":42,"intent":"book_appointment",)"
              R"("resolution":"resolved","sentiment":"positive","analysisData":)" +
              analysis + R"(,"metadata":{"sessionVariables":{"campaignId":")" + campaign +
              R"(","taskId":")" + t.task_id + R"("}}}})";
      updates.push_back(std::move(u));
    }
    return updates;
  }

  // Submits every update from one producer thread as fast as the store's queue takes them; the
  // test thread runs the completions meanwhile, as the event loop would.
  burst_result burst(sqlite_store& s, std::vector<session_update> updates) {
    burst_result r;
    const int n = static_cast<int>(updates.size());
    const auto commits_before = s.stats().commits;
    int answered = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point submitted_at;
    std::thread producer([&] {
      for (auto& u : updates) {
        s.apply_session(std::move(u), [&](bool ok, update_outcome out) {
          ++answered;
          r.applied += ok && out.verdict == update_verdict::applied ? 1 : 0;
        });
      }
      submitted_at = std::chrono::steady_clock::now();
    });
    const bool all = exec_.run_until([&] { return answered == n; }, 300s);
    const auto t1 = std::chrono::steady_clock::now();
    producer.join();
    EXPECT_TRUE(all) << answered;
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    r.submit_seconds = std::chrono::duration<double>(submitted_at - t0).count();
    r.commits = s.stats().commits - commits_before;
    return r;
  }

  static void print(const char* what, int n, const burst_result& r) {
    std::printf(
        "[ measure ] %s: %d session.ended in %.3f s = %.0f /s (submitted in %.3f s; %llu "
        "commits, %.1f events per commit)\n",
        what, n, r.seconds, n / r.seconds, r.submit_seconds,
        static_cast<unsigned long long>(r.commits),
        r.commits > 0 ? static_cast<double>(n) / static_cast<double>(r.commits) : 0.0);
  }
};

TEST_F(sqlite_store_session_throughput, session_ended_per_second_with_synchronous_full) {
  constexpr int n = 20000;
  {
    // The daemon's defaults: synchronous FULL, max_queued_jobs 65536.
    auto o = options();
    ASSERT_TRUE(o.synchronous_full);
    auto store = std::make_unique<sqlite_store>(o);
    auto updates = started_calls(*store, "c", n);
    std::size_t raw_bytes = 0;
    for (const auto& u : updates) {
      raw_bytes += u.raw.size();
    }
    const auto r = burst(*store, std::move(updates));
    EXPECT_EQ(r.applied, n);
    EXPECT_EQ(store->summary("c").by_state[st(task_state::ended)], n);
    raw_db raw(db_path());
    EXPECT_EQ(raw.count("SELECT count(*) FROM events WHERE verdict = 'applied' AND campaign = 'c'"),
              n);
    std::printf("[ measure ] raw body %zu B on average\n", raw_bytes / n);
    print("synchronous FULL, max_queued_jobs 65536", n, r);
    RecordProperty("session_ended_per_second", static_cast<int>(n / r.seconds));
  }
  {
    // A queue that pushes back: groups are at most ~64 jobs, so the fsync per commit shows.
    auto o = options();
    o.max_queued_jobs = 64;
    auto store = std::make_unique<sqlite_store>(o);
    auto updates = started_calls(*store, "q", n);
    const auto r = burst(*store, std::move(updates));
    EXPECT_EQ(r.applied, n);
    print("synchronous FULL, max_queued_jobs 64", n, r);
  }
  {
    // One webhook at a time, each waiting for its own commit: the fsync latency bound.
    constexpr int serial = 500;
    auto store = open();
    auto updates = started_calls(*store, "s", serial);
    const auto commits_before = store->stats().commits;
    const auto t0 = std::chrono::steady_clock::now();
    int applied = 0;
    for (auto& u : updates) {
      applied += apply(*store, std::move(u)).out.verdict == update_verdict::applied ? 1 : 0;
    }
    burst_result r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.submit_seconds = r.seconds;
    r.commits = store->stats().commits - commits_before;
    EXPECT_EQ(applied, serial);
    print("synchronous FULL, one at a time", serial, r);
  }
}

}  // namespace
}  // namespace dialer
