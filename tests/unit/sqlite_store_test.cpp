#include "core/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/time.hpp"
#include "tests/unit/store_fixture.hpp"

namespace dialer {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::make_rows;
using test::st;
using test::test_executor;

// What the file says, read with a separate connection so assertions do not trust the store.
struct stored_task {
  std::string task_id;
  std::int64_t line = 0;
  std::string phone;
  int state = -1;
  int attempts = 0;
  std::int64_t http_status = 0;
  std::string error_class;
  std::string detail;
  std::string session_id;
  std::int64_t not_before_ms = 0;
  std::int64_t dialing_ms = 0;
  std::int64_t started_ms = 0;
};

// raw_db that also reads every task.
class raw_db : public test::raw_db {
 public:
  using test::raw_db::raw_db;

  std::map<std::int64_t, stored_task> tasks() {
    std::map<std::int64_t, stored_task> out;
    for (const auto& r :
         rows("SELECT row_id, task_id, line, phone, state, attempts, coalesce(http_status, 0), "
              "error_class, detail, session_id, not_before_ms, coalesce(dialing_ms, 0), "
              "coalesce(started_ms, 0) FROM tasks")) {
      stored_task t;
      t.task_id = r[1];
      t.line = std::stoll(r[2]);
      t.phone = r[3];
      t.state = std::stoi(r[4]);
      t.attempts = std::stoi(r[5]);
      t.http_status = std::stoll(r[6]);
      t.error_class = r[7];
      t.detail = r[8];
      t.session_id = r[9];
      t.not_before_ms = std::stoll(r[10]);
      t.dialing_ms = std::stoll(r[11]);
      t.started_ms = std::stoll(r[12]);
      out.emplace(std::stoll(r[0]), std::move(t));
    }
    return out;
  }
};

ingest_row row(std::int64_t line, std::string task_id, std::string phone) {
  return ingest_row{line, std::move(task_id), std::move(phone), "{}"};
}

std::int64_t total(const ingest_result& r) {
  return r.pending + r.duplicate_phone + r.duplicate_task_id + r.already_known + r.rejects;
}

class sqlite_store_test : public test::store_fixture {
 protected:
  sqlite_store_test() : store_fixture("sqlite_store_test") {}

  bool mark(sqlite_store& s, std::int64_t row_id, int attempt = 1) {
    std::optional<bool> got;
    s.mark_dialing(row_id, attempt,
                   [&](claim_outcome o) { got = o.result == claim_result::claimed; });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(false);
  }

  bool record(sqlite_store& s, attempt_outcome outcome) {
    std::optional<bool> got;
    s.record(std::move(outcome), [&](bool ok) { got = ok; });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(false);
  }

  std::vector<dial_task> fetch(sqlite_store& s, const std::string& campaign, std::int64_t after = 0,
                               std::size_t limit = 1000) {
    std::optional<std::vector<dial_task>> got;
    s.fetch_pending(campaign, after, limit, [&](std::vector<dial_task> t) { got = std::move(t); });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(std::vector<dial_task>{});
  }

  void flush(sqlite_store& s) {
    bool done = false;
    s.flush([&] { done = true; });
    ASSERT_TRUE(exec_.run_until([&] { return done; }));
  }

  static attempt_outcome outcome(std::int64_t row_id, task_state state, int attempts = 1) {
    attempt_outcome o;
    o.row_id = row_id;
    o.state = state;
    o.attempts = attempts;
    return o;
  }
};

TEST_F(sqlite_store_test, creates_the_schema_and_reopens_it) {
  {
    auto store = open();
    EXPECT_EQ(store->recovered_dialing(), 0);
    const auto rows = make_rows(2, 3);
    EXPECT_EQ(store->ingest("c", rows, {}, true).pending, 3);
    store->finish_ingest("c", "fp", 3);
  }
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.scalar("PRAGMA user_version"), "3");
    EXPECT_EQ(raw.scalar("PRAGMA application_id"), std::to_string(0x6469616c));
    EXPECT_EQ(raw.scalar("PRAGMA journal_mode"), "wal");
    std::set<std::string> names;
    for (const auto& r : raw.rows("SELECT name FROM sqlite_master")) {
      names.insert(r[0]);
    }
    for (const char* name :
         {"tasks", "rejects", "campaigns", "tasks_pending", "tasks_by_phone", "tasks_dialing"}) {
      EXPECT_TRUE(names.count(name)) << name;
    }
  }
  auto store = open();
  EXPECT_TRUE(store->ingest_complete("c", "fp"));
  const auto s = store->summary("c");
  EXPECT_EQ(s.rows_read, 3);
  EXPECT_EQ(s.by_state[st(task_state::pending)], 3);
  EXPECT_EQ(fetch(*store, "c").size(), 3u);
}

TEST_F(sqlite_store_test, fetch_pending_is_served_by_an_index_without_a_sort) {
  open().reset();
  raw_db raw(db_path());
  std::string plan;
  for (const auto& r : raw.rows("EXPLAIN QUERY PLAN SELECT row_id FROM tasks WHERE campaign = 'c' "
                                "AND state = 0 AND row_id > 5 ORDER BY row_id LIMIT 10")) {
    plan += r.back() + "\n";
  }
  EXPECT_NE(plan.find("tasks_pending"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
}

TEST_F(sqlite_store_test, refuses_a_file_that_is_not_a_store) {
  {
    std::ofstream out(db_path());
    for (int i = 0; i < 100; ++i) {
      out << "this is a CSV file, not a database\n";
    }
  }
  try {
    open();
    FAIL() << "opened a text file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(db_path().string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a database"), std::string::npos) << e.what();
  }

  fs::remove(db_path());
  {
    raw_db other(db_path(), true);
    other.exec("PRAGMA application_id = 42; CREATE TABLE t (x)");
  }
  try {
    open();
    FAIL() << "opened another application's database";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a dialerd state store"), std::string::npos)
        << e.what();
  }

  fs::remove(db_path());
  {
    raw_db other(db_path(), true);
    other.exec("CREATE TABLE tasks (id INTEGER PRIMARY KEY, name TEXT)");
  }
  try {
    open();
    FAIL() << "opened a database without our schema version";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no schema version"), std::string::npos) << e.what();
  }
  raw_db raw(db_path());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM sqlite_schema"), "1");  // left untouched
}

TEST_F(sqlite_store_test, refuses_a_newer_schema) {
  open().reset();
  {
    raw_db raw(db_path(), true);
    raw.exec("PRAGMA user_version = 4");
  }
  EXPECT_THROW(open(), std::runtime_error);
}

TEST_F(sqlite_store_test, one_store_per_file) {
  auto first = open();
  try {
    open();
    FAIL() << "two stores on one file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("locked"), std::string::npos) << e.what();
  }
  first.reset();
  EXPECT_NO_THROW(open());
}

TEST_F(sqlite_store_test, requires_an_executor) {
  auto o = options();
  o.post = nullptr;
  EXPECT_THROW(sqlite_store{o}, std::invalid_argument);
}

TEST_F(sqlite_store_test, ingest_counts_and_a_rerun_is_already_known) {
  auto store = open();
  const auto rows = make_rows(2, 10);
  const std::vector<ingest_reject> rejects = {
      {12, "t12", "", "ragged_row", "3 fields, expected 4", false},
      {13, "t13", "12", "invalid_number", "too short", false},
  };
  const auto first = store->ingest("c", rows, rejects, true);
  EXPECT_EQ(first.pending, 10);
  EXPECT_EQ(first.rejects, 2);
  EXPECT_EQ(first.already_known, 0);
  EXPECT_EQ(total(first), 12);

  const auto again = store->ingest("c", rows, rejects, true);
  EXPECT_EQ(again.already_known, 12);
  EXPECT_EQ(again.pending, 0);
  EXPECT_EQ(again.rejects, 0);
  EXPECT_EQ(total(again), 12);

  const auto s = store->summary("c");
  EXPECT_EQ(s.by_state[st(task_state::pending)], 10);
  EXPECT_EQ(s.rejected_by_reason,
            (std::map<std::string, std::int64_t>{{"invalid_number", 1}, {"ragged_row", 1}}));
  EXPECT_TRUE(s.suppressed_by_reason.empty());
  raw_db raw(db_path());
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM tasks"), "10");
  EXPECT_EQ(raw.scalar("SELECT detail FROM rejects WHERE line = 12"), "3 fields, expected 4");
}

TEST_F(sqlite_store_test, a_task_id_on_another_line_is_a_suppressed_reject) {
  auto store = open();
  const std::vector<ingest_row> batch1 = {
      row(2, "a", "+971500000001"), row(3, "b", "+971500000002"), row(4, "a", "+971500000003")};
  const std::vector<ingest_row> batch2 = {row(5, "b", "+971500000004")};
  const auto r1 = store->ingest("c", batch1, {}, false);
  EXPECT_EQ(r1.pending, 2);
  EXPECT_EQ(r1.duplicate_task_id, 1);
  const auto r2 = store->ingest("c", batch2, {}, false);
  EXPECT_EQ(r2.duplicate_task_id, 1);
  EXPECT_EQ(store->ingest("c", batch1, {}, false).already_known, 3);
  EXPECT_EQ(store->ingest("c", batch2, {}, false).already_known, 1);

  // The same task id in another campaign is a different task.
  EXPECT_EQ(store->ingest("other", batch2, {}, false).pending, 1);

  raw_db raw(db_path());
  const auto rejects = raw.rows(
      "SELECT line, task_id, phone, reason, detail, suppressed FROM rejects ORDER BY line");
  ASSERT_EQ(rejects.size(), 2u);
  EXPECT_EQ(rejects[0], (std::vector<std::string>{"4", "a", "+971500000003", "duplicate_task_id",
                                                  "task id first seen on line 2", "1"}));
  EXPECT_EQ(rejects[1][4], "task id first seen on line 3");
  const auto s = store->summary("c");
  EXPECT_EQ(s.suppressed_by_reason.at("duplicate_task_id"), 2);
  EXPECT_TRUE(s.rejected_by_reason.empty());
  EXPECT_EQ(s.by_state[st(task_state::pending)], 2);
}

TEST_F(sqlite_store_test, a_repeated_number_is_suppressed_only_with_dedupe) {
  auto store = open();
  const std::vector<ingest_row> rows = {row(2, "a", "+971500000001"), row(3, "b", "+971500000002"),
                                        row(4, "c", "+971500000001")};
  const auto with = store->ingest("dedupe", rows, {}, true);
  EXPECT_EQ(with.pending, 2);
  EXPECT_EQ(with.duplicate_phone, 1);
  const auto without = store->ingest("keep", rows, {}, false);
  EXPECT_EQ(without.pending, 3);
  // Another campaign holding the number does not make it a duplicate.
  const std::vector<ingest_row> other = {row(2, "z", "+971500000001")};
  EXPECT_EQ(store->ingest("third", other, {}, true).pending, 1);

  raw_db raw(db_path());
  const auto r = raw.rows(
      "SELECT state, error_class, detail FROM tasks WHERE campaign = 'dedupe' AND task_id = 'c'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], (std::vector<std::string>{std::to_string(st(task_state::suppressed)),
                                            "duplicate_phone", "same number as task a (line 2)"}));
  const auto s = store->summary("dedupe");
  EXPECT_EQ(s.by_state[st(task_state::suppressed)], 1);
  EXPECT_EQ(s.suppressed_by_reason.at("duplicate_phone"), 1);
  std::vector<std::string> ids;
  for (const auto& t : fetch(*store, "dedupe")) {
    ids.push_back(t.task_id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(fetch(*store, "keep").size(), 3u);
}

TEST_F(sqlite_store_test, fetch_pending_pages_in_row_order) {
  auto store = open();
  const auto rows = make_rows(2, 10, "t");
  ASSERT_EQ(store->ingest("c", rows, {}, true).pending, 10);
  ASSERT_EQ(store->ingest("other", make_rows(2, 3, "o", 100), {}, true).pending, 3);

  std::vector<dial_task> all;
  std::vector<std::size_t> page_sizes;
  std::int64_t after = 0;
  for (;;) {
    auto page = fetch(*store, "c", after, 4);
    page_sizes.push_back(page.size());
    if (page.empty()) {
      break;
    }
    after = page.back().row_id;
    all.insert(all.end(), page.begin(), page.end());
  }
  EXPECT_EQ(page_sizes, (std::vector<std::size_t>{4, 4, 2, 0}));
  ASSERT_EQ(all.size(), rows.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].task_id, rows[i].task_id);
    EXPECT_EQ(all[i].phone_e164, rows[i].phone_e164);
    EXPECT_EQ(all[i].variables_json, rows[i].variables_json);
    EXPECT_EQ(all[i].attempts, 0);
    EXPECT_EQ(all[i].not_before_ms, 0);
    if (i > 0) {
      EXPECT_GT(all[i].row_id, all[i - 1].row_id);
    }
  }

  const auto tail = fetch(*store, "c", all[6].row_id, 100);
  ASSERT_EQ(tail.size(), 3u);
  EXPECT_EQ(tail[0].row_id, all[7].row_id);
  EXPECT_TRUE(fetch(*store, "c", 0, 0).empty());

  ASSERT_TRUE(mark(*store, all[0].row_id));
  const auto after_claim = fetch(*store, "c");
  ASSERT_EQ(after_claim.size(), 9u);
  EXPECT_EQ(after_claim[0].row_id, all[1].row_id);
}

TEST_F(sqlite_store_test, mark_dialing_only_from_pending) {
  auto store = open();
  ASSERT_EQ(store->ingest("c", make_rows(2, 2), {}, true).pending, 2);
  const auto tasks = fetch(*store, "c");
  clock_.advance(5s);
  EXPECT_TRUE(mark(*store, tasks[0].row_id, 1));
  EXPECT_FALSE(mark(*store, tasks[0].row_id, 2));
  EXPECT_FALSE(mark(*store, 999999, 1));

  raw_db raw(db_path());
  const auto t = raw.tasks().at(tasks[0].row_id);
  EXPECT_EQ(t.state, st(task_state::dialing));
  EXPECT_EQ(t.attempts, 1);
  EXPECT_EQ(t.dialing_ms, now_ms());
  EXPECT_EQ(raw.tasks().at(tasks[1].row_id).state, st(task_state::pending));
}

TEST_F(sqlite_store_test, record_moves_only_from_dialing) {
  auto store = open();
  ASSERT_EQ(store->ingest("c", make_rows(2, 5), {}, true).pending, 5);
  const auto tasks = fetch(*store, "c");
  for (const auto& t : tasks) {
    ASSERT_TRUE(mark(*store, t.row_id));
  }
  clock_.advance(3s);
  const std::int64_t started_at = now_ms();

  auto started = outcome(tasks[0].row_id, task_state::started);
  started.http_status = 201;
  started.session_id = "sess-1";
  EXPECT_TRUE(record(*store, started));

  auto retry = outcome(tasks[1].row_id, task_state::pending);
  retry.http_status = 429;
  retry.error_class = "rate_limited";
  retry.not_before_ms = started_at + 60000;
  EXPECT_TRUE(record(*store, retry));

  auto failed = outcome(tasks[2].row_id, task_state::failed);
  failed.http_status = 422;
  failed.error_class = "invalid_request";
  failed.detail = "phone number rejected";
  EXPECT_TRUE(record(*store, failed));

  auto unknown = outcome(tasks[3].row_id, task_state::unknown);
  unknown.error_class = "timeout_after_send";
  EXPECT_TRUE(record(*store, unknown));

  {
    raw_db raw(db_path());
    const auto rows = raw.tasks();
    const auto& s = rows.at(tasks[0].row_id);
    EXPECT_EQ(s.state, st(task_state::started));
    EXPECT_EQ(s.session_id, "sess-1");
    EXPECT_EQ(s.http_status, 201);
    EXPECT_EQ(s.started_ms, started_at);
    EXPECT_EQ(rows.at(tasks[1].row_id).state, st(task_state::pending));
    EXPECT_EQ(rows.at(tasks[1].row_id).not_before_ms, started_at + 60000);
    EXPECT_EQ(rows.at(tasks[2].row_id).detail, "phone number rejected");
    EXPECT_EQ(rows.at(tasks[3].row_id).state, st(task_state::unknown));
  }

  const auto act = active(*store, "c", started_at - 1000);
  ASSERT_EQ(act.size(), 1u);
  EXPECT_EQ(act[0].row_id, tasks[0].row_id);
  EXPECT_EQ(act[0].started_at_ms, started_at);
  // A STARTED call is returned whatever its age (its slot may have expired, its end still
  // needs settling); only UNKNOWN ones are bounded by `since`.
  EXPECT_EQ(active(*store, "c", started_at + 1).size(), 1u);
  // An UNKNOWN call may be ringing too: it counts from its claim (3 s before the start above).
  const auto with_unknown = active(*store, "c", started_at - 5000);
  ASSERT_EQ(with_unknown.size(), 2u);
  EXPECT_EQ(with_unknown[1].row_id, tasks[3].row_id);
  EXPECT_EQ(with_unknown[1].started_at_ms, started_at - 3000);

  const auto again = fetch(*store, "c");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].row_id, tasks[1].row_id);
  EXPECT_EQ(again[0].attempts, 1);
  EXPECT_EQ(again[0].not_before_ms, started_at + 60000);

  // Not DIALING any more: nothing changes.
  EXPECT_FALSE(record(*store, outcome(tasks[0].row_id, task_state::failed)));
  EXPECT_FALSE(record(*store, outcome(tasks[1].row_id, task_state::started)));
  EXPECT_FALSE(record(*store, outcome(tasks[3].row_id, task_state::pending)));

  // Targets that may not follow DIALING are refused even from DIALING, and counted.
  for (const auto target : {task_state::ended, task_state::suppressed, task_state::dialing,
                            task_state::ended_unconfirmed}) {
    EXPECT_FALSE(record(*store, outcome(tasks[4].row_id, target)));
  }
  EXPECT_EQ(store->stats().refused_records, 4u);

  // `done` may be empty.
  store->record(outcome(tasks[4].row_id, task_state::failed), {});
  flush(*store);
  raw_db raw(db_path());
  const auto rows = raw.tasks();
  EXPECT_EQ(rows.at(tasks[0].row_id).state, st(task_state::started));
  EXPECT_EQ(rows.at(tasks[1].row_id).state, st(task_state::pending));
  EXPECT_EQ(rows.at(tasks[3].row_id).state, st(task_state::unknown));
  EXPECT_EQ(rows.at(tasks[4].row_id).state, st(task_state::failed));
}

TEST_F(sqlite_store_test, restart_turns_dialing_into_unknown_never_pending) {
  std::vector<dial_task> tasks;
  {
    auto store = open();
    ASSERT_EQ(store->ingest("c", make_rows(2, 10), {}, true).pending, 10);
    tasks = fetch(*store, "c");
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(mark(*store, tasks[i].row_id, 2));
    }
    auto started = outcome(tasks[0].row_id, task_state::started, 2);
    started.session_id = "sess-0";
    ASSERT_TRUE(record(*store, started));
  }
  for (int round = 0; round < 2; ++round) {
    auto store = open();
    EXPECT_EQ(store->recovered_dialing(), round == 0 ? 3 : 0);
    raw_db raw(db_path());
    const auto rows = raw.tasks();
    EXPECT_EQ(rows.at(tasks[0].row_id).state, st(task_state::started));
    for (int i = 1; i < 4; ++i) {
      const auto& t = rows.at(tasks[i].row_id);
      EXPECT_EQ(t.state, st(task_state::unknown)) << i;
      EXPECT_EQ(t.error_class, "interrupted");
      EXPECT_EQ(t.detail, "dialer stopped while the request may have been in flight");
      EXPECT_EQ(t.attempts, 2);
    }
    const auto pending = fetch(*store, "c");
    ASSERT_EQ(pending.size(), 6u);
    for (const auto& t : pending) {
      EXPECT_GT(t.row_id, tasks[3].row_id);
    }
    const auto s = store->summary("c");
    EXPECT_EQ(s.by_state[st(task_state::unknown)], 3);
    EXPECT_EQ(s.by_state[st(task_state::dialing)], 0);
    EXPECT_EQ(s.unknown_by_class.at("interrupted"), 3);
    EXPECT_FALSE(mark(*store, tasks[1].row_id));
  }
}

TEST_F(sqlite_store_test, a_started_task_survives_reopen_and_is_never_pending_again) {
  std::int64_t row_id = 0;
  {
    auto store = open();
    ASSERT_EQ(store->ingest("c", make_rows(2, 2), {}, true).pending, 2);
    row_id = fetch(*store, "c").at(0).row_id;
    ASSERT_TRUE(mark(*store, row_id));
    auto started = outcome(row_id, task_state::started);
    started.session_id = "sess-42";
    ASSERT_TRUE(record(*store, started));
  }
  auto store = open();
  EXPECT_EQ(store->recovered_dialing(), 0);
  const auto pending = fetch(*store, "c");
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_NE(pending[0].row_id, row_id);
  const auto act = active(*store, "c", 0);
  ASSERT_EQ(act.size(), 1u);
  EXPECT_EQ(act[0].row_id, row_id);
  EXPECT_FALSE(mark(*store, row_id));
  raw_db raw(db_path());
  EXPECT_EQ(raw.tasks().at(row_id).session_id, "sess-42");
}

TEST_F(sqlite_store_test, back_to_back_jobs_share_commits) {
  auto store = open();
  constexpr int n = 10000;
  const auto rows = make_rows(2, n);
  ASSERT_EQ(store->ingest("c", rows, {}, false).pending, n);
  const auto tasks = fetch(*store, "c", 0, n);
  ASSERT_EQ(tasks.size(), static_cast<std::size_t>(n));

  const auto before = store->stats();
  int acked = 0;
  int answered = 0;
  for (const auto& t : tasks) {
    store->mark_dialing(t.row_id, 1, [&](claim_outcome o) {
      const bool ok = o.result == claim_result::claimed;
      ++answered;
      acked += ok ? 1 : 0;
    });
  }
  ASSERT_TRUE(exec_.run_until([&] { return answered == n; }));
  EXPECT_EQ(acked, n);
  const auto after = store->stats();
  const auto commits = after.commits - before.commits;
  std::printf("%d mark_dialing jobs took %llu commits\n", n,
              static_cast<unsigned long long>(commits));
  EXPECT_GE(commits, 1u);
  EXPECT_LT(commits, static_cast<std::uint64_t>(n / 10));
  EXPECT_EQ(after.jobs - before.jobs, static_cast<std::uint64_t>(n));
  EXPECT_EQ(store->summary("c").by_state[st(task_state::dialing)], n);
}

TEST_F(sqlite_store_test, completions_run_in_submission_order_and_flush_comes_last) {
  auto store = open();
  ASSERT_EQ(store->ingest("c", make_rows(2, 3), {}, true).pending, 3);
  const auto tasks = fetch(*store, "c");
  std::vector<std::string> order;
  store->mark_dialing(tasks[0].row_id, 1, [&](claim_outcome) { order.push_back("mark0"); });
  store->mark_dialing(tasks[1].row_id, 1, [&](claim_outcome) { order.push_back("mark1"); });
  store->record(outcome(tasks[0].row_id, task_state::failed), {});
  bool row_failed_at_flush = false;
  store->flush([&] {
    order.push_back("flush");
    raw_db raw(db_path());
    row_failed_at_flush = raw.tasks().at(tasks[0].row_id).state == st(task_state::failed);
  });
  ASSERT_TRUE(exec_.run_until([&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<std::string>{"mark0", "mark1", "flush"}));
  EXPECT_TRUE(row_failed_at_flush);
}

TEST_F(sqlite_store_test, the_destructor_runs_queued_jobs_and_posts_their_completions) {
  constexpr int n = 100;
  int acked = 0;
  {
    auto store = open();
    ASSERT_EQ(store->ingest("c", make_rows(2, n), {}, true).pending, n);
    const auto tasks = fetch(*store, "c");
    for (const auto& t : tasks) {
      store->mark_dialing(t.row_id, 1, [&](claim_outcome o) {
        const bool ok = o.result == claim_result::claimed;
        acked += ok ? 1 : 0;
      });
    }
  }
  ASSERT_TRUE(exec_.run_until([&] { return acked == n; }));
  auto store = open();
  EXPECT_EQ(store->recovered_dialing(), n);
}

TEST_F(sqlite_store_test, a_group_that_cannot_commit_answers_false_and_reads_still_work) {
  auto o = options();
  o.busy_timeout = 50ms;
  auto store = std::make_unique<sqlite_store>(o);
  ASSERT_EQ(store->ingest("c", make_rows(2, 3), {}, true).pending, 3);
  const auto tasks = fetch(*store, "c");

  raw_db blocker(db_path(), true);
  blocker.exec("BEGIN IMMEDIATE");  // holds the write lock: every write group times out

  std::optional<bool> marked;
  std::optional<std::vector<dial_task>> fetched;
  store->mark_dialing(tasks[0].row_id, 1,
                      [&](claim_outcome o) { marked = o.result == claim_result::claimed; });
  store->fetch_pending("c", 0, 10, [&](std::vector<dial_task> t) { fetched = std::move(t); });
  ASSERT_TRUE(exec_.run_until([&] { return marked.has_value() && fetched.has_value(); }));
  EXPECT_FALSE(*marked);
  EXPECT_EQ(fetched->size(), 3u);  // re-run after the rollback: the claim did not happen
  EXPECT_THROW(store->ingest("c", make_rows(20, 2, "t", 100), {}, true), std::runtime_error);
  EXPECT_THROW(store->finish_ingest("c", "fp", 5), std::runtime_error);
  EXPECT_EQ(store->summary("c").by_state[st(task_state::pending)], 3);
  EXPECT_GE(store->stats().failed_groups, 3u);

  blocker.exec("ROLLBACK");
  EXPECT_TRUE(mark(*store, tasks[0].row_id));
  EXPECT_EQ(store->ingest("c", make_rows(20, 2, "t", 100), {}, true).pending, 2);
}

// A statement that fails mid-group undoes the whole group: a claim that had already succeeded in
// it must be answered false, because it is not on disk.
TEST_F(sqlite_store_test, one_failing_job_makes_its_whole_group_answer_false) {
  {
    auto store = open();
    const std::vector<ingest_row> rows = {row(2, "good", "+971500000001"),
                                          row(3, "poison", "+971500000002")};
    ASSERT_EQ(store->ingest("c", rows, {}, true).pending, 2);
  }
  {
    raw_db raw(db_path(), true);
    raw.exec(
        "CREATE TRIGGER poison AFTER UPDATE OF state ON tasks WHEN NEW.task_id = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END");
  }
  // A gate in the executor stops the writer while it hands over a completion, after one group
  // and before it takes the next, so both claims are queued when it does: they share a group.
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool gate_closed = false;
  bool writer_at_gate = false;
  auto o = options();
  o.post = [&, inner = exec_.poster()](std::function<void()> fn) {
    {
      std::unique_lock lock(gate_mu);
      writer_at_gate = gate_closed;
      gate_cv.notify_all();
      gate_cv.wait(lock, [&] { return !gate_closed; });
    }
    inner(std::move(fn));
  };
  auto store = std::make_unique<sqlite_store>(o);
  const auto tasks = fetch(*store, "c");
  ASSERT_EQ(tasks.size(), 2u);

  {
    std::lock_guard lock(gate_mu);
    gate_closed = true;
  }
  bool flushed = false;
  store->flush([&] { flushed = true; });
  {
    std::unique_lock lock(gate_mu);
    ASSERT_TRUE(gate_cv.wait_for(lock, 30s, [&] { return writer_at_gate; }));
  }
  std::optional<bool> good;
  std::optional<bool> poison;
  store->mark_dialing(tasks[0].row_id, 1,
                      [&](claim_outcome o) { good = o.result == claim_result::claimed; });
  store->mark_dialing(tasks[1].row_id, 1,
                      [&](claim_outcome o) { poison = o.result == claim_result::claimed; });
  {
    std::lock_guard lock(gate_mu);
    gate_closed = false;
  }
  gate_cv.notify_all();
  ASSERT_TRUE(exec_.run_until([&] { return flushed && good && poison; }));
  EXPECT_FALSE(*good);
  EXPECT_FALSE(*poison);
  EXPECT_EQ(store->stats().failed_groups, 1u);
  {
    raw_db raw(db_path());
    EXPECT_EQ(raw.tasks().at(tasks[0].row_id).state, st(task_state::pending));
  }

  EXPECT_TRUE(mark(*store, tasks[0].row_id));
}

// With the writer held, a producer fills the bounded queue and then waits; once the writer moves
// on, the waiting producer is woken and every job completes.
TEST_F(sqlite_store_test, a_full_queue_holds_producers_back_until_the_writer_catches_up) {
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool gate_closed = false;
  bool writer_at_gate = false;
  auto o = options();
  o.max_queued_jobs = 4;
  o.post = [&, inner = exec_.poster()](std::function<void()> fn) {
    {
      std::unique_lock lock(gate_mu);
      writer_at_gate = gate_closed;
      gate_cv.notify_all();
      gate_cv.wait(lock, [&] { return !gate_closed; });
    }
    inner(std::move(fn));
  };
  auto store = std::make_unique<sqlite_store>(o);
  constexpr int n = 20;
  ASSERT_EQ(store->ingest("c", make_rows(2, n), {}, true).pending, n);
  const auto tasks = fetch(*store, "c");
  ASSERT_EQ(tasks.size(), static_cast<std::size_t>(n));

  {
    std::lock_guard lock(gate_mu);
    gate_closed = true;
  }
  store->flush([] {});
  {
    std::unique_lock lock(gate_mu);
    ASSERT_TRUE(gate_cv.wait_for(lock, 30s, [&] { return writer_at_gate; }));
  }
  std::atomic<int> enqueued{0};
  std::atomic<int> acked{0};
  std::thread producer([&] {
    for (const auto& t : tasks) {
      store->mark_dialing(t.row_id, 1, [&](claim_outcome o) {
        const bool ok = o.result == claim_result::claimed;
        acked += ok ? 1 : 0;
      });
      ++enqueued;
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (enqueued.load() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  // The writer cannot move while the gate is closed, so the fifth call must not return. Proving
  // a negative takes a bounded look: without the bound the producer would be done in microseconds.
  const auto look_until = std::chrono::steady_clock::now() + 100ms;
  while (enqueued.load() == 4 && std::chrono::steady_clock::now() < look_until) {
    std::this_thread::yield();
  }
  EXPECT_EQ(enqueued.load(), 4);
  {
    std::lock_guard lock(gate_mu);
    gate_closed = false;
  }
  gate_cv.notify_all();
  if (!exec_.run_until([&] { return acked.load() == n; })) {
    // The producer is stuck inside the store: neither it nor the store can be torn down.
    std::fprintf(stderr, "a producer stayed blocked on the full queue after the writer moved on\n");
    std::abort();
  }
  producer.join();
  EXPECT_EQ(enqueued.load(), n);
}

TEST_F(sqlite_store_test, ingest_complete_follows_the_fingerprint) {
  // Fingerprints are "<path>|<size>|<mtime>" (file_fingerprint).
  const std::string fp1 = "/crm/a|b.csv|100|1";  // a '|' in the path itself is fine
  const std::string fp2 = "/crm/a|b.csv|120|2";  // the same file, changed
  const std::string added = "/crm/more.csv|30|3";
  {
    auto store = open();
    EXPECT_FALSE(store->ingest_complete("c", fp1));
    store->finish_ingest("c", fp1, 10);
    EXPECT_TRUE(store->ingest_complete("c", fp1));
    EXPECT_FALSE(store->ingest_complete("c", fp2));
    EXPECT_FALSE(store->ingest_complete("other", fp1));
  }
  auto store = open();
  EXPECT_TRUE(store->ingest_complete("c", fp1));
  EXPECT_EQ(store->summary("c").rows_read, 10);
  store->finish_ingest("c", fp2, 12);
  EXPECT_FALSE(store->ingest_complete("c", fp1));
  EXPECT_TRUE(store->ingest_complete("c", fp2));
  EXPECT_EQ(store->summary("c").rows_read, 12);
  // A list added to the running campaign keeps its own record: the original stays complete (a
  // restart does not read it again) and the rows add up.
  store->finish_ingest("c", added, 30);
  EXPECT_TRUE(store->ingest_complete("c", fp2));
  EXPECT_TRUE(store->ingest_complete("c", added));
  EXPECT_EQ(store->summary("c").rows_read, 42);
  EXPECT_EQ(store->summary("nobody").rows_read, 0);
}

TEST_F(sqlite_store_test, summary_counts_every_state_and_reason) {
  auto store = open();
  const std::vector<ingest_row> rows = {row(2, "a", "+971500000001"), row(3, "b", "+971500000002"),
                                        row(4, "c", "+971500000003"), row(5, "d", "+971500000004"),
                                        row(6, "e", "+971500000001"), row(7, "a", "+971500000009")};
  const std::vector<ingest_reject> rejects = {
      {8, "", "", "ragged_row", "", false},
      {9, "x", "abc", "invalid_number", "", false},
      {10, "y", "+97142", "invalid_number", "", false},
      {11, "z", "+19005550000", "premium_rate", "", true},
  };
  const auto r = store->ingest("c", rows, rejects, true);
  EXPECT_EQ(r.pending, 4);
  EXPECT_EQ(r.duplicate_phone, 1);
  EXPECT_EQ(r.duplicate_task_id, 1);
  EXPECT_EQ(r.rejects, 4);
  EXPECT_EQ(total(r), 10);
  store->finish_ingest("c", "fp", 10);

  const auto tasks = fetch(*store, "c");
  ASSERT_EQ(tasks.size(), 4u);
  for (const auto& t : tasks) {
    ASSERT_TRUE(mark(*store, t.row_id));
  }
  auto f = outcome(tasks[0].row_id, task_state::failed);
  f.error_class = "invalid_request";
  ASSERT_TRUE(record(*store, f));
  auto u = outcome(tasks[1].row_id, task_state::unknown);
  u.error_class = "server_error";
  ASSERT_TRUE(record(*store, u));
  auto s = outcome(tasks[2].row_id, task_state::started);
  s.session_id = "s";
  ASSERT_TRUE(record(*store, s));

  const auto sum = store->summary("c");
  EXPECT_EQ(sum.rows_read, 10);
  state_counts expected{};
  expected[st(task_state::failed)] = 1;
  expected[st(task_state::unknown)] = 1;
  expected[st(task_state::started)] = 1;
  expected[st(task_state::dialing)] = 1;
  expected[st(task_state::suppressed)] = 1;
  EXPECT_EQ(sum.by_state, expected);
  using counts = std::map<std::string, std::int64_t>;
  EXPECT_EQ(sum.rejected_by_reason, (counts{{"invalid_number", 2}, {"ragged_row", 1}}));
  EXPECT_EQ(sum.suppressed_by_reason,
            (counts{{"duplicate_phone", 1}, {"duplicate_task_id", 1}, {"premium_rate", 1}}));
  EXPECT_EQ(sum.failed_by_class, (counts{{"invalid_request", 1}}));
  EXPECT_EQ(sum.unknown_by_class, (counts{{"server_error", 1}}));
  EXPECT_EQ(store->summary("other").by_state, state_counts{});
}

// The child acknowledges claims and starts, then dies by SIGKILL with no destructor: what it was
// told is on disk must be on disk, and every claim must come back UNKNOWN, never PENDING.
[[noreturn]] void crash_child(const sqlite_store_options& base, int out_fd) {
  test_executor exec;
  auto o = base;
  o.post = exec.poster();
  o.clock = &time_source::real();
  auto* store = new sqlite_store(o);  // never destroyed: the process dies with it open
  const auto rows = make_rows(2, 200);
  if (store->ingest("c", rows, {}, true).pending != 200) {
    ::_exit(2);
  }
  std::vector<dial_task> tasks;
  store->fetch_pending("c", 0, 1000, [&](std::vector<dial_task> t) { tasks = std::move(t); });
  if (!exec.run_until([&] { return tasks.size() == 200; })) {
    ::_exit(3);
  }
  std::ostringstream report;
  int answered = 0;
  for (int i = 0; i < 100; ++i) {
    const auto id = tasks[i].row_id;
    store->mark_dialing(id, 1, [&report, &answered, id](claim_outcome o) {
      const bool ok = o.result == claim_result::claimed;
      ++answered;
      if (ok) {
        report << "D " << id << "\n";
      }
    });
  }
  if (!exec.run_until([&] { return answered == 100; })) {
    ::_exit(4);
  }
  answered = 0;
  for (int i = 0; i < 20; ++i) {
    attempt_outcome started;
    started.row_id = tasks[i].row_id;
    started.state = task_state::started;
    started.attempts = 1;
    started.session_id = "sess-" + std::to_string(started.row_id);
    const auto id = started.row_id;
    store->record(std::move(started), [&report, &answered, id](bool ok) {
      ++answered;
      if (ok) {
        report << "S " << id << "\n";
      }
    });
  }
  if (!exec.run_until([&] { return answered == 20; })) {
    ::_exit(5);
  }
  // Claims still in flight when the process dies: each may or may not have reached the disk.
  for (int i = 100; i < 200; ++i) {
    store->mark_dialing(tasks[i].row_id, 1, [](claim_outcome) {});
  }
  const std::string text = report.str();
  if (::write(out_fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    ::_exit(6);
  }
  ::kill(::getpid(), SIGKILL);
  ::_exit(7);
}

TEST_F(sqlite_store_test, acknowledged_claims_survive_sigkill_as_unknown) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    crash_child(options(), fds[1]);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) {
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child exited with " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);

  std::set<std::int64_t> dialing;
  std::set<std::int64_t> started;
  std::istringstream in(text);
  std::string kind;
  std::int64_t id = 0;
  while (in >> kind >> id) {
    (kind == "D" ? dialing : started).insert(id);
  }
  ASSERT_EQ(dialing.size(), 100u);
  ASSERT_EQ(started.size(), 20u);

  auto store = open();
  raw_db raw(db_path());
  const auto rows = raw.tasks();
  ASSERT_EQ(rows.size(), 200u);
  std::int64_t unknown = 0;
  std::set<std::int64_t> pending;
  for (const auto& [row_id, t] : rows) {
    EXPECT_NE(t.state, st(task_state::dialing)) << row_id;
    if (started.count(row_id)) {
      EXPECT_EQ(t.state, st(task_state::started)) << row_id;
      EXPECT_EQ(t.session_id, "sess-" + std::to_string(row_id));
    } else if (dialing.count(row_id)) {
      EXPECT_EQ(t.state, st(task_state::unknown)) << row_id;
      EXPECT_EQ(t.error_class, "interrupted");
    } else if (t.state == st(task_state::pending)) {
      pending.insert(row_id);
    } else {
      // An unacknowledged claim that reached the disk before the kill.
      EXPECT_EQ(t.state, st(task_state::unknown)) << row_id;
      EXPECT_EQ(t.error_class, "interrupted");
    }
    unknown += t.state == st(task_state::unknown) ? 1 : 0;
  }
  EXPECT_EQ(store->recovered_dialing(), unknown);
  EXPECT_GE(unknown, 80);
  std::set<std::int64_t> fetched;
  for (const auto& t : fetch(*store, "c")) {
    fetched.insert(t.row_id);
  }
  EXPECT_EQ(fetched, pending);
}

// A cancel is durable: it survives a restart, and rows read into the campaign later (a list added
// while the cancel ran, or after) are stored SUPPRESSED, never PENDING. (Found by the operations
// integration test: a restart dialed a cancelled campaign.)
TEST_F(sqlite_store_test, a_cancel_is_durable_and_suppresses_rows_ingested_later) {
  {
    auto store = open();
    EXPECT_EQ(store->ingest("c", make_rows(1, 3), {}, true).pending, 3);
    EXPECT_FALSE(store->summary("c").cancelled);
    std::optional<std::int64_t> cancelled;
    store->cancel_pending("c", [&](std::int64_t n) { cancelled = n; });
    ASSERT_TRUE(exec_.run_until([&] { return cancelled.has_value(); }));
    EXPECT_EQ(*cancelled, 3);
    const auto later = store->ingest("c", make_rows(10, 2), {}, true);
    EXPECT_EQ(later.pending, 0);
    EXPECT_EQ(store->summary("c").by_state[static_cast<std::size_t>(task_state::pending)], 0);
  }
  auto store = open();
  const campaign_summary s = store->summary("c");
  EXPECT_TRUE(s.cancelled);
  EXPECT_EQ(s.by_state[static_cast<std::size_t>(task_state::suppressed)], 5);
  EXPECT_TRUE(fetch(*store, "c").empty());
  EXPECT_FALSE(store->summary("other").cancelled);
}

}  // namespace
}  // namespace dialer
