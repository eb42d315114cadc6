#include "core/sqlite_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "core/log.hpp"

namespace dialer {
namespace {

constexpr int schema_version = 3;
constexpr std::int64_t dialer_application_id = 0x6469616c;  // "dial": refuse other SQLite files

constexpr std::string_view interrupted_detail =
    "dialer stopped while the request may have been in flight";

constexpr int state_int(task_state s) {
  return static_cast<int>(s);
}

// Statements that fail inside a job throw this; the writer turns it into a failed group.
class sqlite_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  message += " (code " + std::to_string(rc) + ")";
  throw sqlite_error(message);
}

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = std::string(sql) + ": " + (error != nullptr ? error : sqlite3_errstr(rc));
    sqlite3_free(error);
    throw sqlite_error(message + " (code " + std::to_string(rc) + ")");
  }
}

// A prepared statement kept for the life of the connection.
class statement {
 public:
  statement(sqlite3* db, std::string_view sql) : db_(db) {
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) {
      throw_sqlite(db, rc, "prepare " + std::string(sql));
    }
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  // One execution. Resetting on scope exit releases the statement's read cursor and drops the
  // pointers bound with SQLITE_STATIC before the strings they point into go away.
  class use {
   public:
    explicit use(statement& s) : s_(s) {}
    ~use() { sqlite3_reset(s_.stmt_); }
    use(const use&) = delete;
    use& operator=(const use&) = delete;

    use& bind(int i, std::int64_t v) {
      check(sqlite3_bind_int64(s_.stmt_, i, v));
      return *this;
    }
    use& bind(int i, std::string_view v) {
      check(sqlite3_bind_text64(s_.stmt_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8));
      return *this;
    }
    // Absent values are NULL, so an empty error class or session id costs no space in 1M rows.
    use& bind_or_null(int i, std::string_view v) {
      if (v.empty()) {
        check(sqlite3_bind_null(s_.stmt_, i));
        return *this;
      }
      return bind(i, v);
    }
    use& bind_or_null(int i, std::int64_t v) {
      if (v == 0) {
        check(sqlite3_bind_null(s_.stmt_, i));
        return *this;
      }
      return bind(i, v);
    }
    // True when a row is available, false when done.
    bool step() {
      const int rc = sqlite3_step(s_.stmt_);
      if (rc == SQLITE_ROW) {
        return true;
      }
      if (rc == SQLITE_DONE) {
        return false;
      }
      throw_sqlite(s_.db_, rc, sqlite3_sql(s_.stmt_));
    }
    void run() {
      while (step()) {
      }
    }
    [[nodiscard]] std::int64_t changes() const { return sqlite3_changes64(s_.db_); }
    [[nodiscard]] std::int64_t int64(int col) const { return sqlite3_column_int64(s_.stmt_, col); }
    [[nodiscard]] std::string text(int col) const {
      const auto* p = sqlite3_column_text(s_.stmt_, col);
      if (p == nullptr) {
        return {};
      }
      return std::string(reinterpret_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(s_.stmt_, col)));
    }

   private:
    void check(int rc) {
      if (rc != SQLITE_OK) {
        throw_sqlite(s_.db_, rc, "bind");
      }
    }
    statement& s_;
  };

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// The schema, version 1. Notes on the indexes:
// - tasks_pending holds PENDING tasks only and serves fetch_pending: the rowid is implicitly the
//   trailing key of every index, so "ORDER BY row_id" needs no sort. Being partial, it costs one
//   index deletion per dial instead of a move between states at every transition (a full
//   (campaign, state) index doubled the index pages each group commit writes). Counts and the
//   start-up fetch_active read the campaign's rows through the (campaign, task_id) key instead.
// - tasks_dialing is partial and tiny (tasks in flight), so the restart rule does not scan a
//   million rows at open.
// - There is deliberately no index on session_id: session ids are random, so each STARTED record
//   would dirty a random index page and every group commit would write one WAL page per call
//   (12 us of store CPU per call in bench/e2e.sh). Webhooks carry taskId and campaignId, the
//   UNIQUE key; a lookup by session id alone should get its own, measured, structure.
constexpr const char* schema_sql = R"sql(
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

// Version 2: call results (the session.ended analysis), redials, session pulls, transcripts, the
// events table (every event's raw payload, and the orphans nobody claimed), and per-number call
// counts. Notes on its indexes:
// - tasks_live holds only STARTED rows (at most one per trunk slot), keyed by session id: a
//   webhook is found by its sessionId without the cost of a full session index, whose random
//   keys dirtied one page per call (see above); here the few pages stay hot. (v3 dropped
//   ENDED_UNCONFIRMED from it: without webhooks every call ends there, and the index grew with
//   the campaign. A late event for such a call is found by its taskId and campaignId.)
// - tasks_redial holds only PENDING rows with a redial time, so fetch_due reads due tasks in due
//   order, and the ordinary pending scan skips them (redial_at_ms IS NULL).
// - events_orphans is partial (row_id IS NULL): repeated deliveries of an orphan are recognised
//   without indexing every event.
constexpr const char* migration_v2_sql = R"sql(
ALTER TABLE tasks ADD COLUMN redial_at_ms INTEGER;
ALTER TABLE tasks ADD COLUMN previous_sessions TEXT;
ALTER TABLE tasks ADD COLUMN end_reason TEXT;
ALTER TABLE tasks ADD COLUMN duration_s INTEGER;
ALTER TABLE tasks ADD COLUMN intent TEXT;
ALTER TABLE tasks ADD COLUMN resolution TEXT;
ALTER TABLE tasks ADD COLUMN sentiment TEXT;
ALTER TABLE tasks ADD COLUMN analysis_data TEXT;
ALTER TABLE tasks ADD COLUMN ended_ms INTEGER;
ALTER TABLE tasks ADD COLUMN result_source TEXT;
ALTER TABLE tasks ADD COLUMN pulls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN transcript TEXT;
ALTER TABLE tasks ADD COLUMN transcript_ms INTEGER;
CREATE INDEX IF NOT EXISTS tasks_live ON tasks (session_id) WHERE state = 2;
CREATE INDEX IF NOT EXISTS tasks_redial ON tasks (campaign, redial_at_ms)
  WHERE state = 0 AND redial_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY,
  received_ms INTEGER NOT NULL,
  source TEXT NOT NULL,
  event TEXT NOT NULL,
  session_id TEXT NOT NULL,
  campaign TEXT NOT NULL,
  task_id TEXT NOT NULL,
  row_id INTEGER,
  verdict TEXT NOT NULL,
  reason TEXT,
  raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_orphans ON events (session_id, event, campaign, task_id)
  WHERE row_id IS NULL;
CREATE TABLE IF NOT EXISTS number_calls (
  phone TEXT NOT NULL,
  day INTEGER NOT NULL,
  calls INTEGER NOT NULL,
  PRIMARY KEY (phone, day)
) WITHOUT ROWID;
)sql";

// Version 3: a cancel is durable (campaigns.cancelled: rows ingested later are stored SUPPRESSED,
// a restart keeps the campaign cancelled), and each CSV file read into a campaign has its own
// record, so a list added to a running campaign neither replaces the original's record (which
// would make a restart read the original again) nor its row count.
constexpr const char* migration_v3_sql = R"sql(
ALTER TABLE campaigns ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS tasks_live;
CREATE INDEX tasks_live ON tasks (session_id) WHERE state = 2;
CREATE TABLE IF NOT EXISTS ingested_files (
  campaign TEXT NOT NULL,
  path TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  rows_read INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (campaign, path)
) WITHOUT ROWID;
)sql";

// file_fingerprint() is "<path>|<size>|<mtime ns>" (or "<path>|missing"): the file is the part
// before the last two separators, whatever the path itself contains.
std::string fingerprint_path(std::string_view fingerprint) {
  const auto last = fingerprint.rfind('|');
  if (last == std::string_view::npos) {
    return std::string(fingerprint);
  }
  if (fingerprint.substr(last + 1) == "missing") {
    return std::string(fingerprint.substr(0, last));
  }
  const auto second = fingerprint.rfind('|', last == 0 ? 0 : last - 1);
  return std::string(fingerprint.substr(0, second == std::string_view::npos ? last : second));
}

static_assert(state_int(task_state::dialing) == 1, "tasks_dialing's WHERE clause says state = 1");
static_assert(state_int(task_state::pending) == 0, "tasks_pending's WHERE clause says state = 0");

struct statements {
  explicit statements(sqlite3* db)
      : begin(db, "BEGIN IMMEDIATE"),
        begin_read(db, "BEGIN DEFERRED"),
        commit(db, "COMMIT"),
        find_task_line(db, "SELECT line FROM tasks WHERE campaign = ?1 AND task_id = ?2"),
        find_phone(db,
                   "SELECT task_id, line FROM tasks WHERE campaign = ?1 AND phone = ?2 "
                   "ORDER BY row_id LIMIT 1"),
        insert_task(db,
                    "INSERT INTO tasks (campaign, task_id, line, phone, variables, state, "
                    "error_class, detail, created_ms, updated_ms) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) "
                    "ON CONFLICT (campaign, task_id) DO NOTHING"),
        insert_reject(db,
                      "INSERT OR IGNORE INTO rejects (campaign, line, task_id, phone, reason, "
                      "detail, suppressed, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        campaign_complete(db,
                          "SELECT 1 FROM ingested_files WHERE campaign = ?1 AND path = ?3 "
                          "AND fingerprint = ?2"),
        finish_file(
            db,
            "INSERT INTO ingested_files (campaign, path, fingerprint, rows_read, "
            "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (campaign, path) DO "
            "UPDATE SET fingerprint = excluded.fingerprint, rows_read = excluded.rows_read, "
            "updated_ms = excluded.updated_ms"),
        finish_ingest(db,
                      "INSERT INTO campaigns (id, fingerprint, rows_read, ingest_complete, "
                      "updated_ms) VALUES (?1, ?2, (SELECT coalesce(sum(rows_read), 0) FROM "
                      "ingested_files WHERE campaign = ?1), 1, ?3) ON CONFLICT (id) DO UPDATE SET "
                      "fingerprint = excluded.fingerprint, rows_read = excluded.rows_read, "
                      "ingest_complete = 1, updated_ms = excluded.updated_ms"),
        campaign_cancelled(db, "SELECT cancelled FROM campaigns WHERE id = ?1"),
        mark_cancelled(db,
                       "INSERT INTO campaigns (id, fingerprint, rows_read, ingest_complete, "
                       "updated_ms, cancelled) VALUES (?1, '', 0, 0, ?2, 1) ON CONFLICT (id) DO "
                       "UPDATE SET cancelled = 1, updated_ms = excluded.updated_ms"),
        fetch_pending(db,
                      "SELECT row_id, task_id, phone, variables, attempts, not_before_ms "
                      "FROM tasks WHERE campaign = ?1 AND state = 0 AND row_id > ?2 "
                      "AND redial_at_ms IS NULL ORDER BY row_id LIMIT ?3"),
        fetch_active(db,
                     "SELECT row_id, CASE state WHEN 6 THEN dialing_ms ELSE started_ms END, state, "
                     "coalesce(session_id, ''), pulls FROM tasks NOT INDEXED WHERE campaign = ?1 "
                     "AND (state IN (2, 4) OR (state = 6 AND dialing_ms >= ?2)) ORDER BY row_id"),
        fetch_due(db,
                  "SELECT row_id, task_id, phone, variables, attempts, redial_at_ms FROM tasks "
                  "WHERE campaign = ?1 AND state = 0 AND redial_at_ms IS NOT NULL "
                  "AND (redial_at_ms > ?2 OR (redial_at_ms = ?2 AND row_id > ?3)) "
                  "AND redial_at_ms <= ?4 ORDER BY redial_at_ms, row_id LIMIT ?5"),
        next_due(db,
                 "SELECT min(redial_at_ms) FROM tasks WHERE campaign = ?1 AND state = 0 "
                 "AND redial_at_ms IS NOT NULL AND redial_at_ms > ?2"),
        // A new attempt starts clean: the last attempt's session and result move out of the row
        // (its raw events stay in `events`; its session id in previous_sessions).
        mark_dialing(db,
                     "UPDATE tasks SET state = 1, attempts = ?1, dialing_ms = ?2, "
                     "updated_ms = ?2, redial_at_ms = NULL, session_id = NULL, end_reason = NULL, "
                     "error_class = NULL, detail = NULL, "
                     "duration_s = NULL, intent = NULL, resolution = NULL, sentiment = NULL, "
                     "analysis_data = NULL, ended_ms = NULL, result_source = NULL, pulls = 0 "
                     "WHERE row_id = ?3 AND state = 0"),
        task_for_claim(db, "SELECT campaign, phone FROM tasks WHERE row_id = ?1 AND state = 0"),
        number_calls(db,
                     "SELECT coalesce(sum(calls), 0), coalesce(sum(CASE WHEN day = ?2 THEN calls "
                     "END), 0) FROM number_calls WHERE phone = ?1"),
        count_number_call(db,
                          "INSERT INTO number_calls (phone, day, calls) VALUES (?1, ?2, 1) "
                          "ON CONFLICT (phone, day) DO UPDATE SET calls = calls + 1"),
        cap_today(db,
                  "UPDATE tasks SET redial_at_ms = ?1, error_class = 'number_cap_day', "
                  "detail = ?2, updated_ms = ?3 WHERE row_id = ?4 AND state = 0"),
        cap_lifetime(db,
                     "UPDATE tasks SET state = 5, error_class = 'number_cap_lifetime', "
                     "detail = ?1, updated_ms = ?2 WHERE row_id = ?3 AND state = 0"),
        find_by_session(db,
                        "SELECT row_id, campaign, task_id, state, coalesce(session_id, ''), "
                        "attempts, coalesce(previous_sessions, ''), ended_ms IS NOT NULL "
                        "FROM tasks WHERE session_id = ?1 AND state = 2"),
        find_by_row(db,
                    "SELECT row_id, campaign, task_id, state, coalesce(session_id, ''), "
                    "attempts, coalesce(previous_sessions, ''), ended_ms IS NOT NULL "
                    "FROM tasks WHERE row_id = ?1"),
        find_by_task(db,
                     "SELECT row_id, campaign, task_id, state, coalesce(session_id, ''), "
                     "attempts, coalesce(previous_sessions, ''), ended_ms IS NOT NULL "
                     "FROM tasks WHERE campaign = ?1 AND task_id = ?2"),
        set_started(
            db,
            "UPDATE tasks SET state = 2, session_id = ?1, started_ms = ?2, updated_ms = ?2, "
            "redial_at_ms = NULL, detail = ?3 WHERE row_id = ?4"),
        set_ended(db,
                  "UPDATE tasks SET state = ?1, session_id = ?2, end_reason = ?3, duration_s = ?4, "
                  "intent = ?5, resolution = ?6, sentiment = ?7, analysis_data = ?8, "
                  "ended_ms = ?9, result_source = ?10, redial_at_ms = ?11, "
                  "previous_sessions = ?12, started_ms = coalesce(started_ms, ?13), "
                  "updated_ms = ?13, error_class = nullif(error_class, 'no_session_ended'), "
                  "detail = coalesce(?15, detail) WHERE row_id = ?14"),
        insert_event(db,
                     "INSERT INTO events (received_ms, source, event, session_id, campaign, "
                     "task_id, row_id, verdict, reason, raw) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        find_orphan(db,
                    "SELECT 1 FROM events WHERE session_id = ?1 AND event = ?2 AND campaign = ?3 "
                    "AND task_id = ?4 AND row_id IS NULL LIMIT 1"),
        mark_unconfirmed(db,
                         "UPDATE tasks SET state = 4, error_class = 'no_session_ended', "
                         "detail = ?1, updated_ms = ?2 WHERE row_id = ?3 AND state = 2 "
                         "AND session_id = ?4"),
        record_pull(db,
                    "UPDATE tasks SET pulls = ?1, detail = ?2, updated_ms = ?3 "
                    "WHERE row_id = ?4 AND state = 4"),
        save_transcript(db,
                        "UPDATE tasks SET transcript = ?1, transcript_ms = ?2 WHERE row_id = ?3"),
        cancel_pending(db,
                       "UPDATE tasks SET state = 7, error_class = 'cancelled', "
                       "detail = 'cancelled by an operator', redial_at_ms = NULL, updated_ms = ?2 "
                       "WHERE campaign = ?1 AND state = 0"),
        requeue(db,
                "UPDATE tasks SET state = 0, redial_at_ms = ?3, detail = ?4, updated_ms = ?3 "
                "WHERE campaign = ?1 AND state = ?2"),
        purge_transcripts(db,
                          "UPDATE tasks SET transcript = NULL, transcript_ms = NULL "
                          "WHERE campaign = ?1 AND transcript_ms < ?2"),
        record(db,
               "UPDATE tasks SET state = ?1, attempts = ?2, http_status = ?3, "
               "error_class = ?4, detail = ?5, session_id = ?6, not_before_ms = ?7, "
               "started_ms = CASE WHEN ?1 = 2 THEN ?8 ELSE started_ms END, updated_ms = ?8 "
               "WHERE row_id = ?9 AND state = 1 AND attempts = ?2"),
        rows_read(db, "SELECT rows_read, cancelled FROM campaigns WHERE id = ?1"),
        // Counts scan the table once in rowid order: ~7 times faster than probing rows through
        // a (campaign, …) index, which visits them in random order; and one pass of sums needs
        // no sorter, where GROUP BY built a temp B-tree of every row (+46 MiB at 1M tasks).
        count_states(db,
                     "SELECT coalesce(sum(state = 0), 0), coalesce(sum(state = 1), 0), "
                     "coalesce(sum(state = 2), 0), coalesce(sum(state = 3), 0), "
                     "coalesce(sum(state = 4), 0), coalesce(sum(state = 5), 0), "
                     "coalesce(sum(state = 6), 0), coalesce(sum(state = 7), 0), "
                     "coalesce(sum(state < 0 OR state > 7), 0) "
                     "FROM tasks NOT INDEXED WHERE campaign = ?1"),
        count_rejects(db,
                      "SELECT reason, suppressed, count(*) FROM rejects WHERE campaign = ?1 "
                      "GROUP BY reason, suppressed"),
        count_classes(db,
                      "SELECT state, coalesce(error_class, ''), count(*) FROM tasks NOT INDEXED "
                      "WHERE campaign = ?1 AND state IN (5, 6, 7) GROUP BY state, error_class") {}

  statement begin;
  statement begin_read;
  statement commit;
  statement find_task_line;
  statement find_phone;
  statement insert_task;
  statement insert_reject;
  statement campaign_complete;
  statement finish_file;
  statement finish_ingest;
  statement campaign_cancelled;
  statement mark_cancelled;
  statement fetch_pending;
  statement fetch_active;
  statement fetch_due;
  statement next_due;
  statement mark_dialing;
  statement task_for_claim;
  statement number_calls;
  statement count_number_call;
  statement cap_today;
  statement cap_lifetime;
  statement find_by_session;
  statement find_by_row;
  statement find_by_task;
  statement set_started;
  statement set_ended;
  statement insert_event;
  statement find_orphan;
  statement mark_unconfirmed;
  statement record_pull;
  statement save_transcript;
  statement cancel_pending;
  statement requeue;
  statement purge_transcripts;
  statement record;
  statement rows_read;
  statement count_states;
  statement count_rejects;
  statement count_classes;
};

static_assert(state_int(task_state::pending) == 0 && state_int(task_state::started) == 2 &&
                  state_int(task_state::failed) == 5 && state_int(task_state::unknown) == 6 &&
                  state_int(task_state::suppressed) == 7,
              "the SQL above spells these states as numbers");

using post_fn = std::function<void(std::function<void()>)>;

// Campaign policies, set from any thread, read by jobs on the writer thread.
class policy_registry {
 public:
  void set(const std::string& campaign, campaign_policy p) {
    std::lock_guard lock(mu_);
    policies_[campaign] = std::move(p);
    any_caps_.store(std::any_of(policies_.begin(), policies_.end(), [](const auto& kv) {
      return kv.second.cap_lifetime > 0 || kv.second.cap_per_day > 0;
    }));
  }
  [[nodiscard]] std::optional<campaign_policy> get(const std::string& campaign) const {
    std::lock_guard lock(mu_);
    const auto it = policies_.find(campaign);
    if (it == policies_.end()) {
      return std::nullopt;
    }
    return it->second;
  }
  // Lets the claim path skip its extra reads when no campaign has caps (the common case).
  [[nodiscard]] bool any_caps() const { return any_caps_.load(); }

 private:
  mutable std::mutex mu_;
  std::map<std::string, campaign_policy> policies_;
  std::atomic<bool> any_caps_{false};
};

struct job_context {
  statements& st;
  std::int64_t now_ms;
  const policy_registry& policies;
};

}  // namespace

namespace detail {

// A unit of work for the writer. run() executes inside the group's transaction and may throw;
// finish() runs once, on the writer thread, after the group committed or was rolled back (then
// `error` is set): async jobs post their completion, blocking jobs fulfil their promise.
class store_job {
 public:
  virtual ~store_job() = default;
  virtual void run(job_context& c) = 0;
  // Read-only jobs are re-run alone when their group fails, so they never report rolled-back rows.
  [[nodiscard]] virtual bool read_only() const { return false; }
  virtual void finish(const post_fn& post) = 0;

  std::string error;
};

class sqlite_writer {
 public:
  explicit sqlite_writer(sqlite_store_options options) : options_(std::move(options)) {
    max_queued_ = std::max<std::size_t>(options_.max_queued_jobs, 1);
    std::promise<void> opened;
    auto opened_future = opened.get_future();
    thread_ = std::thread([this, p = std::move(opened)]() mutable { thread_main(std::move(p)); });
    try {
      opened_future.get();
    } catch (...) {
      thread_.join();
      throw;
    }
  }

  ~sqlite_writer() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_one();
    thread_.join();
  }

  sqlite_writer(const sqlite_writer&) = delete;
  sqlite_writer& operator=(const sqlite_writer&) = delete;

  void enqueue(std::unique_ptr<store_job> j) {
    std::unique_lock lock(mu_);
    if (std::this_thread::get_id() != writer_id_) {
      space_cv_.wait(lock, [&] { return queue_.size() < max_queued_; });
    }
    const bool was_empty = queue_.empty();
    queue_.push_back(std::move(j));
    lock.unlock();
    // The writer only sleeps on an empty queue, so only the first job of a turn needs to wake it.
    if (was_empty) {
      work_cv_.notify_one();
    }
  }

  [[nodiscard]] bool on_writer_thread() const { return std::this_thread::get_id() == writer_id_; }
  [[nodiscard]] std::int64_t recovered_dialing() const { return recovered_dialing_; }
  [[nodiscard]] const std::filesystem::path& path() const { return options_.path; }

  sqlite_store_stats stats() const {
    sqlite_store_stats s;
    s.commits = commits_.load(std::memory_order_relaxed);
    s.jobs = jobs_.load(std::memory_order_relaxed);
    s.failed_groups = failed_groups_.load(std::memory_order_relaxed);
    s.refused_records = refused_records_.load(std::memory_order_relaxed);
    return s;
  }
  void count_refused_record() { refused_records_.fetch_add(1, std::memory_order_relaxed); }
  policy_registry& policies() { return policies_; }
  prom::histogram commit_latency() const { return commit_latency_.snapshot(); }

 private:
  void thread_main(std::promise<void> opened) {
    writer_id_ = std::this_thread::get_id();
    try {
      open();
    } catch (...) {
      close();
      opened.set_exception(std::current_exception());
      return;
    }
    opened.set_value();
    loop();
    close();
  }

  [[nodiscard]] std::runtime_error open_error(std::string_view what) const {
    return std::runtime_error("state store " + options_.path.string() + ": " + std::string(what));
  }

  void open() {
    const std::string lock_path = options_.path.string() + ".lock";
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) {
      throw open_error("cannot open " + lock_path + ": " + std::strerror(errno));
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      throw open_error(errno == EWOULDBLOCK
                           ? "another process (or store) has it open (" + lock_path + " is locked)"
                           : "cannot lock " + lock_path + ": " + std::strerror(errno));
    }
    try {
      open_database();
    } catch (const sqlite_error& e) {
      throw open_error(e.what());
    }
  }

  void open_database() {
    const int rc = sqlite3_open_v2(options_.path.c_str(), &db_,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX,  // one thread ever touches it
                                   nullptr);
    if (rc != SQLITE_OK) {
      throw_sqlite(db_, rc, "open");
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(options_.busy_timeout.count()));

    // journal_mode reads the header first, so a file that is not a database fails here.
    {
      statement journal(db_, "PRAGMA journal_mode = WAL");
      statement::use q(journal);
      if (!q.step() || q.text(0) != "wal") {
        throw sqlite_error("cannot switch to WAL journal mode");
      }
    }
    exec(db_,
         options_.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    // Bounded memory whatever the campaign size: 4 MiB of page cache, the rest is the OS's page
    // cache. With 16 MiB a 1M-task campaign peaked at 44 MiB RSS against 29 MiB for 10k tasks;
    // with 4 MiB it peaks at 30 MiB, and store CPU per dial stays ~18 us (bench/e2e.sh).
    // An ingest batch dirties thousands of random index pages; checkpointing every 1000 pages (the
    // default) wrote them back after every batch. At 16384 pages (64 MiB of WAL) a page rewritten
    // by several batches is copied once: ingest of a 100k-row campaign went from 60k to 130k
    // rows/s. Dial-side commits rewrite a few hot pages, so their checkpoints stay small.
    exec(db_,
         "PRAGMA foreign_keys = OFF; PRAGMA cache_size = -4096; PRAGMA temp_store = MEMORY; "
         "PRAGMA wal_autocheckpoint = 16384; PRAGMA journal_size_limit = 67108864");

    const std::int64_t app_id = pragma_int("PRAGMA application_id");
    const std::int64_t version = pragma_int("PRAGMA user_version");
    if (app_id != 0 && app_id != dialer_application_id) {
      throw sqlite_error("not a dialerd state store (application_id " + std::to_string(app_id) +
                         ")");
    }
    if (version > schema_version) {
      throw sqlite_error("schema version " + std::to_string(version) +
                         " was written by a newer dialerd (this one knows " +
                         std::to_string(schema_version) + ")");
    }
    if (version == 0 && pragma_int("SELECT count(*) FROM sqlite_schema") != 0) {
      throw sqlite_error("not a dialerd state store (it has tables but no schema version)");
    }
    if (version < schema_version) {
      exec(db_, "BEGIN IMMEDIATE");
      try {
        if (version < 1) {
          exec(db_, schema_sql);
        }
        if (version < 2) {
          exec(db_, migration_v2_sql);
        }
        if (version < 3) {
          exec(db_, migration_v3_sql);
          migrate_ingest_records();
        }
        exec(db_, ("PRAGMA user_version = " + std::to_string(schema_version) +
                   "; PRAGMA application_id = " + std::to_string(dialer_application_id))
                      .c_str());
        exec(db_, "COMMIT");
      } catch (...) {
        rollback_if_open();
        throw;
      }
    }

    st_ = std::make_unique<statements>(db_);
    apply_restart_rule();
  }

  // v2 kept one ingest record per campaign; v3 keeps one per file.
  void migrate_ingest_records() {
    statement read(db_,
                   "SELECT id, fingerprint, rows_read, updated_ms FROM campaigns "
                   "WHERE ingest_complete = 1");
    statement write(db_,
                    "INSERT OR REPLACE INTO ingested_files (campaign, path, fingerprint, "
                    "rows_read, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)");
    statement::use q(read);
    while (q.step()) {
      const std::string fingerprint = q.text(1);
      const std::string path = fingerprint_path(fingerprint);
      statement::use(write)
          .bind(1, q.text(0))
          .bind(2, path)
          .bind(3, fingerprint)
          .bind(4, q.int64(2))
          .bind(5, q.int64(3))
          .run();
    }
  }

  // A DIALING task may have had its request on the wire when we stopped: nobody knows whether
  // the call was placed, so it becomes UNKNOWN for reconciliation — never PENDING, which would
  // dial it a second time.
  void apply_restart_rule() {
    statement rule(db_,
                   "UPDATE tasks SET state = 6, error_class = 'interrupted', detail = ?1, "
                   "updated_ms = ?2 WHERE state = 1");
    exec(db_, "BEGIN IMMEDIATE");
    try {
      statement::use q(rule);
      q.bind(1, interrupted_detail).bind(2, to_unix_ms(options_.clock->system_now())).run();
      recovered_dialing_ = q.changes();
    } catch (...) {
      rollback_if_open();
      throw;
    }
    exec(db_, "COMMIT");
  }

  std::int64_t pragma_int(const char* sql) {
    statement s(db_, sql);
    statement::use q(s);
    return q.step() ? q.int64(0) : 0;
  }

  void rollback_if_open() {
    if (db_ != nullptr && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  void close() {
    st_.reset();
    if (db_ != nullptr) {
      const int rc = sqlite3_close(db_);
      if (rc != SQLITE_OK) {
        DIALER_LOG_ERROR("BUG: closing state store %s: %s", options_.path.c_str(),
                         sqlite3_errstr(rc));
      }
      db_ = nullptr;
    }
    if (lock_fd_ >= 0) {
      ::close(lock_fd_);
      lock_fd_ = -1;
    }
  }

  void loop() {
    std::deque<std::unique_ptr<store_job>> group;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) {
          return;  // stopping, and everything queued before has run
        }
        group.swap(queue_);
        if (group.size() >= max_queued_) {
          space_cv_.notify_all();
        }
      }
      run_group(group);
      group.clear();
    }
  }

  // Group commit: all jobs queued during the previous commit share one transaction and one fsync.
  void run_group(std::deque<std::unique_ptr<store_job>>& group) {
    job_context ctx{*st_, to_unix_ms(options_.clock->system_now()), policies_};
    const auto began = std::chrono::steady_clock::now();
    std::string error;
    try {
      statement::use(st_->begin).run();
      for (auto& j : group) {
        j->run(ctx);
      }
      statement::use(st_->commit).run();
      commits_.fetch_add(1, std::memory_order_relaxed);
      commit_latency_.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
    } catch (const std::exception& e) {
      error = e.what();
    }
    jobs_.fetch_add(group.size(), std::memory_order_relaxed);

    if (!error.empty()) {
      rollback_if_open();
      failed_groups_.fetch_add(1, std::memory_order_relaxed);
      DIALER_LOG_ERROR("state store %s: a group of %zu jobs was rolled back: %s",
                       options_.path.c_str(), group.size(), error.c_str());
      for (auto& j : group) {
        j->error = "state store " + options_.path.string() + ": " + error;
        if (j->read_only()) {
          rerun_read(*j, ctx);
        }
      }
    }

    // One post per group, not per job: each post may wake the loop, which on a shared core then
    // preempts the writer (bench/README.md, Webhooks profile). Order within the group is kept.
    std::vector<std::function<void()>> completions;
    completions.reserve(group.size());
    const post_fn collect = [&completions](std::function<void()> fn) {
      completions.push_back(std::move(fn));
    };
    for (auto& j : group) {
      try {
        j->finish(collect);
      } catch (const std::exception& e) {
        // A completion that cannot be handed over leaves its caller waiting: say so loudly.
        DIALER_LOG_ERROR("BUG: state store completion lost: %s", e.what());
      }
    }
    if (completions.size() == 1) {
      options_.post(std::move(completions.front()));
    } else if (!completions.empty()) {
      try {
        options_.post([batch = std::move(completions)]() mutable {
          for (auto& fn : batch) {
            fn();
          }
        });
      } catch (const std::exception& e) {
        DIALER_LOG_ERROR("BUG: state store completions lost: %s", e.what());
      }
    }
  }

  void rerun_read(store_job& j, job_context& ctx) {
    try {
      statement::use(st_->begin_read).run();
      j.run(ctx);
      statement::use(st_->commit).run();
      j.error.clear();
    } catch (const std::exception& e) {
      rollback_if_open();
      DIALER_LOG_ERROR("state store %s: a read failed on its own too: %s", options_.path.c_str(),
                       e.what());
    }
  }

  sqlite_store_options options_;
  std::size_t max_queued_ = 1;
  std::thread thread_;
  std::thread::id writer_id_;

  // Writer thread only.
  sqlite3* db_ = nullptr;
  int lock_fd_ = -1;
  std::unique_ptr<statements> st_;
  std::int64_t recovered_dialing_ = 0;  // written before the constructor returns
  policy_registry policies_;

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable space_cv_;
  std::deque<std::unique_ptr<store_job>> queue_;
  bool stopping_ = false;

  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> jobs_{0};
  std::atomic<std::uint64_t> failed_groups_{0};
  std::atomic<std::uint64_t> refused_records_{0};
  prom::atomic_histogram commit_latency_{prom::latency_buckets()};
};

}  // namespace detail

namespace {

using detail::store_job;

// The blocking calls' jobs: the caller waits on the future, so borrowed spans stay valid.
template <class T>
class blocking_job : public store_job {
 public:
  std::future<T> result() { return promise_.get_future(); }
  void finish(const post_fn&) override {
    if (!error.empty()) {
      promise_.set_exception(std::make_exception_ptr(std::runtime_error(error)));
    } else if constexpr (std::is_void_v<T>) {
      promise_.set_value();
    } else {
      promise_.set_value(std::move(value_));
    }
  }

 protected:
  std::promise<T> promise_;
  std::conditional_t<std::is_void_v<T>, bool, T> value_{};
};

class ingest_job final : public blocking_job<ingest_result> {
 public:
  ingest_job(const std::string& campaign, std::span<const ingest_row> rows,
             std::span<const ingest_reject> rejects, bool dedupe_phone)
      : campaign_(campaign), rows_(rows), rejects_(rejects), dedupe_phone_(dedupe_phone) {}

  void run(job_context& c) override {
    value_ = {};
    std::string detail;
    bool cancelled = false;
    {
      statement::use q(c.st.campaign_cancelled);
      cancelled = q.bind(1, campaign_).step() && q.int64(0) != 0;
    }
    for (const ingest_row& row : rows_) {
      task_state state = task_state::pending;
      detail.clear();
      if (cancelled) {
        state = task_state::suppressed;
        detail = "cancelled by an operator";
      } else if (dedupe_phone_) {
        statement::use q(c.st.find_phone);
        q.bind(1, campaign_).bind(2, row.phone_e164);
        if (q.step()) {
          state = task_state::suppressed;
          detail =
              "same number as task " + q.text(0) + " (line " + std::to_string(q.int64(1)) + ")";
        }
      }
      // Insert first and look the task id up only on conflict: new rows, the common case, cost
      // one statement (two with dedupe) instead of two (three).
      {
        statement::use q(c.st.insert_task);
        q.bind(1, campaign_)
            .bind(2, row.task_id)
            .bind(3, row.line)
            .bind(4, row.phone_e164)
            .bind(5, row.variables_json)
            .bind(6, state_int(state))
            .bind_or_null(7, state != task_state::suppressed ? ""
                             : cancelled                     ? "cancelled"
                                                             : "duplicate_phone")
            .bind_or_null(8, detail)
            .bind(9, c.now_ms)
            .run();
        if (q.changes() == 1) {
          ++(state == task_state::pending ? value_.pending : value_.duplicate_phone);
          continue;
        }
      }
      std::int64_t first_line = 0;
      {
        statement::use q(c.st.find_task_line);
        q.bind(1, campaign_).bind(2, row.task_id);
        if (!q.step()) {
          throw sqlite_error("task " + row.task_id + " conflicted on insert but is not there");
        }
        first_line = q.int64(0);
      }
      if (first_line == row.line) {
        ++value_.already_known;
        continue;
      }
      detail = "task id first seen on line " + std::to_string(first_line);
      if (insert_reject(c, row.line, row.task_id, row.phone_e164, "duplicate_task_id", detail,
                        true)) {
        ++value_.duplicate_task_id;
      } else {
        ++value_.already_known;
      }
    }
    for (const ingest_reject& r : rejects_) {
      if (insert_reject(c, r.line, r.task_id, r.phone, r.reason, r.detail, r.suppressed)) {
        ++value_.rejects;
      } else {
        ++value_.already_known;
      }
    }
  }

 private:
  bool insert_reject(job_context& c, std::int64_t line, std::string_view task_id,
                     std::string_view phone, std::string_view reason, std::string_view detail,
                     bool suppressed) {
    statement::use q(c.st.insert_reject);
    q.bind(1, campaign_)
        .bind(2, line)
        .bind(3, task_id)
        .bind(4, phone)
        .bind(5, reason)
        .bind(6, detail)
        .bind(7, suppressed ? 1 : 0)
        .bind(8, c.now_ms)
        .run();
    return q.changes() == 1;
  }

  const std::string& campaign_;
  std::span<const ingest_row> rows_;
  std::span<const ingest_reject> rejects_;
  bool dedupe_phone_;
};

class ingest_complete_job final : public blocking_job<bool> {
 public:
  ingest_complete_job(const std::string& campaign, const std::string& fingerprint)
      : campaign_(campaign), fingerprint_(fingerprint) {}
  [[nodiscard]] bool read_only() const override { return true; }
  void run(job_context& c) override {
    const std::string path = fingerprint_path(fingerprint_);
    statement::use q(c.st.campaign_complete);
    value_ = q.bind(1, campaign_).bind(2, fingerprint_).bind(3, path).step();
  }

 private:
  const std::string& campaign_;
  const std::string& fingerprint_;
};

class finish_ingest_job final : public blocking_job<void> {
 public:
  finish_ingest_job(const std::string& campaign, const std::string& fingerprint,
                    std::int64_t rows_read)
      : campaign_(campaign), fingerprint_(fingerprint), rows_read_(rows_read) {}
  void run(job_context& c) override {
    const std::string path = fingerprint_path(fingerprint_);
    statement::use(c.st.finish_file)
        .bind(1, campaign_)
        .bind(2, path)
        .bind(3, fingerprint_)
        .bind(4, rows_read_)
        .bind(5, c.now_ms)
        .run();
    statement::use(c.st.finish_ingest)
        .bind(1, campaign_)
        .bind(2, fingerprint_)
        .bind(3, c.now_ms)
        .run();
  }

 private:
  const std::string& campaign_;
  const std::string& fingerprint_;
  std::int64_t rows_read_;
};

campaign_summary read_summary(job_context& c, const std::string& campaign_) {
  campaign_summary value_;
  {
    statement::use q(c.st.rows_read);
    if (q.bind(1, campaign_).step()) {
      value_.rows_read = q.int64(0);
      value_.cancelled = q.int64(1) != 0;
    }
  }
  {
    statement::use q(c.st.count_states);
    q.bind(1, campaign_);
    static_assert(task_state_count == 8, "count_states sums states 0..7");
    if (q.step()) {
      for (std::size_t k = 0; k < task_state_count; ++k) {
        value_.by_state[k] = q.int64(static_cast<int>(k));
      }
      if (const std::int64_t stray = q.int64(static_cast<int>(task_state_count)); stray != 0) {
        DIALER_LOG_ERROR("BUG: %lld tasks of %s have a state outside 0..7",
                         static_cast<long long>(stray), campaign_.c_str());
      }
    }
  }
  {
    statement::use q(c.st.count_rejects);
    q.bind(1, campaign_);
    while (q.step()) {
      auto& by_reason = q.int64(1) != 0 ? value_.suppressed_by_reason : value_.rejected_by_reason;
      by_reason[q.text(0)] += q.int64(2);
    }
  }
  {
    statement::use q(c.st.count_classes);
    q.bind(1, campaign_);
    while (q.step()) {
      const auto state = static_cast<task_state>(q.int64(0));
      auto& by_class = state == task_state::failed    ? value_.failed_by_class
                       : state == task_state::unknown ? value_.unknown_by_class
                                                      : value_.suppressed_by_reason;
      by_class[q.text(1)] += q.int64(2);
    }
  }
  return value_;
}

class summary_job final : public blocking_job<campaign_summary> {
 public:
  explicit summary_job(const std::string& campaign) : campaign_(campaign) {}
  [[nodiscard]] bool read_only() const override { return true; }
  void run(job_context& c) override { value_ = read_summary(c, campaign_); }

 private:
  const std::string& campaign_;
};

class fetch_summary_job final : public store_job {
 public:
  fetch_summary_job(std::string campaign, std::function<void(campaign_summary)> done)
      : campaign_(std::move(campaign)), done_(std::move(done)) {}
  [[nodiscard]] bool read_only() const override { return true; }
  void run(job_context& c) override { value_ = read_summary(c, campaign_); }
  void finish(const post_fn& post) override {
    if (!error.empty()) {
      value_ = {};
    }
    if (done_) {
      post([done = std::move(done_), v = std::move(value_)]() mutable { done(std::move(v)); });
    }
  }

 private:
  std::string campaign_;
  std::function<void(campaign_summary)> done_;
  campaign_summary value_;
};

class fetch_pending_job final : public store_job {
 public:
  fetch_pending_job(std::string campaign, std::int64_t after_row_id, std::size_t limit,
                    std::function<void(std::vector<dial_task>)> done)
      : campaign_(std::move(campaign)),
        after_row_id_(after_row_id),
        limit_(static_cast<std::int64_t>(
            std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()))),
        done_(std::move(done)) {}
  [[nodiscard]] bool read_only() const override { return true; }
  void run(job_context& c) override {
    tasks_.clear();
    statement::use q(c.st.fetch_pending);
    q.bind(1, campaign_).bind(2, after_row_id_).bind(3, limit_);
    while (q.step()) {
      dial_task t;
      t.row_id = q.int64(0);
      t.task_id = q.text(1);
      t.phone_e164 = q.text(2);
      t.variables_json = q.text(3);
      t.attempts = static_cast<int>(q.int64(4));
      t.not_before_ms = q.int64(5);
      tasks_.push_back(std::move(t));
    }
  }
  void finish(const post_fn& post) override {
    if (!error.empty()) {
      tasks_.clear();
    }
    if (done_) {
      post([done = std::move(done_), tasks = std::move(tasks_)]() mutable {
        done(std::move(tasks));
      });
    }
  }

 private:
  std::string campaign_;
  std::int64_t after_row_id_;
  std::int64_t limit_;
  std::function<void(std::vector<dial_task>)> done_;
  std::vector<dial_task> tasks_;
};

class fetch_active_job final : public store_job {
 public:
  fetch_active_job(std::string campaign, std::int64_t since_ms,
                   std::function<void(std::vector<active_call>)> done)
      : campaign_(std::move(campaign)), since_ms_(since_ms), done_(std::move(done)) {}
  [[nodiscard]] bool read_only() const override { return true; }
  void run(job_context& c) override {
    calls_.clear();
    statement::use q(c.st.fetch_active);
    q.bind(1, campaign_).bind(2, since_ms_);
    while (q.step()) {
      active_call a;
      a.row_id = q.int64(0);
      a.started_at_ms = q.int64(1);
      a.state = static_cast<task_state>(q.int64(2));
      a.session_id = q.text(3);
      a.pulls = static_cast<int>(q.int64(4));
      calls_.push_back(std::move(a));
    }
  }
  void finish(const post_fn& post) override {
    if (!error.empty()) {
      calls_.clear();
    }
    if (done_) {
      post([done = std::move(done_), calls = std::move(calls_)]() mutable {
        done(std::move(calls));
      });
    }
  }

 private:
  std::string campaign_;
  std::int64_t since_ms_;
  std::function<void(std::vector<active_call>)> done_;
  std::vector<active_call> calls_;
};

// A write answered with a bool: true only if its one row changed and the group committed.
class update_job : public store_job {
 public:
  explicit update_job(std::function<void(bool)> done) : done_(std::move(done)) {}
  void finish(const post_fn& post) override {
    if (done_) {
      post([done = std::move(done_), ok = changed_ && error.empty()] { done(ok); });
    }
  }

 protected:
  bool changed_ = false;

 private:
  std::function<void(bool)> done_;
};

constexpr std::int64_t ms_per_day = 86'400'000;

class mark_dialing_job final : public store_job {
 public:
  mark_dialing_job(std::int64_t row_id, int attempt, std::function<void(claim_outcome)> done)
      : row_id_(row_id), attempt_(attempt), done_(std::move(done)) {}
  void run(job_context& c) override {
    outcome_ = {};
    if (c.policies.any_caps() && capped(c)) {
      return;
    }
    statement::use q(c.st.mark_dialing);
    q.bind(1, attempt_).bind(2, c.now_ms).bind(3, row_id_).run();
    if (q.changes() == 1) {
      outcome_.result = claim_result::claimed;
    }
  }
  void finish(const post_fn& post) override {
    if (!error.empty()) {
      outcome_ = {};  // rolled back: not claimed, whatever run() decided
    }
    if (done_) {
      post([done = std::move(done_), o = outcome_] { done(o); });
    }
  }

 private:
  // Counts the call against its number, or refuses it when a cap is reached.
  bool capped(job_context& c) {
    std::string campaign;
    std::string phone;
    {
      statement::use q(c.st.task_for_claim);
      if (!q.bind(1, row_id_).step()) {
        return true;  // not PENDING: outcome_ stays not_pending
      }
      campaign = q.text(0);
      phone = q.text(1);
    }
    const auto policy = c.policies.get(campaign);
    if (!policy || (policy->cap_lifetime <= 0 && policy->cap_per_day <= 0)) {
      return false;
    }
    const std::int64_t day = c.now_ms / ms_per_day;
    std::int64_t lifetime = 0;
    std::int64_t today = 0;
    {
      statement::use q(c.st.number_calls);
      if (q.bind(1, phone).bind(2, day).step()) {
        lifetime = q.int64(0);
        today = q.int64(1);
      }
    }
    if (policy->cap_lifetime > 0 && lifetime >= policy->cap_lifetime) {
      statement::use q(c.st.cap_lifetime);
      q.bind(1, "the number was called " + std::to_string(lifetime) + " time(s), the cap")
          .bind(2, c.now_ms)
          .bind(3, row_id_)
          .run();
      outcome_.result = claim_result::capped;
      return true;
    }
    if (policy->cap_per_day > 0 && today >= policy->cap_per_day) {
      outcome_.result = claim_result::capped;
      outcome_.retry_at_ms = (day + 1) * ms_per_day;
      statement::use q(c.st.cap_today);
      q.bind(1, outcome_.retry_at_ms)
          .bind(2, "the number was called " + std::to_string(today) +
                       " time(s) today (UTC), the daily cap")
          .bind(3, c.now_ms)
          .bind(4, row_id_)
          .run();
      return true;
    }
    statement::use(c.st.count_number_call).bind(1, phone).bind(2, day).run();
    return false;
  }

  std::int64_t row_id_;
  int attempt_;
  std::function<void(claim_outcome)> done_;
  claim_outcome outcome_;
};

class record_job final : public update_job {
 public:
  record_job(attempt_outcome outcome, bool refused, std::function<void(bool)> done)
      : update_job(std::move(done)), outcome_(std::move(outcome)), refused_(refused) {}
  void run(job_context& c) override {
    changed_ = false;
    if (refused_) {
      return;
    }
    statement::use q(c.st.record);
    q.bind(1, state_int(outcome_.state))
        .bind(2, outcome_.attempts)
        .bind_or_null(3, outcome_.http_status)
        .bind_or_null(4, outcome_.error_class)
        .bind_or_null(5, outcome_.detail)
        .bind_or_null(6, outcome_.session_id)
        .bind(7, outcome_.not_before_ms)
        .bind(8, c.now_ms)
        .bind(9, outcome_.row_id)
        .run();
    changed_ = q.changes() == 1;
  }

 private:
  attempt_outcome outcome_;
  bool refused_;
};

class fetch_due_job final : public store_job {
 public:
  fetch_due_job(std::string campaign, std::int64_t after_ms, std::int64_t after_row_id,
                std::int64_t up_to_ms, std::size_t limit, std::function<void(due_page)> done)
      : campaign_(std::move(campaign)),
        after_ms_(after_ms),
        after_row_id_(after_row_id),
        up_to_ms_(up_to_ms),
        limit_(static_cast<std::int64_t>(std::min<std::size_t>(limit, 1 << 30))),
        done_(std::move(done)) {}
  [[nodiscard]] bool read_only() const override { return true; }
  void run(job_context& c) override {
    page_ = {};
    {
      statement::use q(c.st.fetch_due);
      q.bind(1, campaign_)
          .bind(2, after_ms_)
          .bind(3, after_row_id_)
          .bind(4, up_to_ms_)
          .bind(5, limit_);
      while (q.step()) {
        dial_task t;
        t.row_id = q.int64(0);
        t.task_id = q.text(1);
        t.phone_e164 = q.text(2);
        t.variables_json = q.text(3);
        t.attempts = static_cast<int>(q.int64(4));
        t.not_before_ms = q.int64(5);
        page_.tasks.push_back(std::move(t));
      }
    }
    statement::use q(c.st.next_due);
    if (q.bind(1, campaign_).bind(2, up_to_ms_).step()) {
      page_.next_due_ms = q.int64(0);
    }
  }
  void finish(const post_fn& post) override {
    if (!error.empty()) {
      page_ = {};
    }
    if (done_) {
      post([done = std::move(done_), page = std::move(page_)]() mutable { done(std::move(page)); });
    }
  }

 private:
  std::string campaign_;
  std::int64_t after_ms_;
  std::int64_t after_row_id_;
  std::int64_t up_to_ms_;
  std::int64_t limit_;
  std::function<void(due_page)> done_;
  due_page page_;
};

// The lifecycle rules for session events; the table is in core/task_lifecycle.md.
class apply_session_job final : public store_job {
 public:
  apply_session_job(session_update u, std::function<void(bool, update_outcome)> done)
      : u_(std::move(u)), done_(std::move(done)) {}

  void run(job_context& c) override {
    out_ = {};
    out_.session_id = u_.session_id;
    struct row {
      std::int64_t row_id = 0;
      std::string campaign, task_id;
      task_state state = task_state::pending;
      std::string session_id;
      int attempts = 0;
      std::string previous_sessions;
      bool ended = false;
    };
    std::optional<row> r;
    const auto read_row = [&](statement::use& q) {
      row x;
      x.row_id = q.int64(0);
      x.campaign = q.text(1);
      x.task_id = q.text(2);
      x.state = static_cast<task_state>(q.int64(3));
      x.session_id = q.text(4);
      x.attempts = static_cast<int>(q.int64(5));
      x.previous_sessions = q.text(6);
      x.ended = q.int64(7) != 0;
      return x;
    };
    if (u_.row_id > 0) {
      statement::use q(c.st.find_by_row);
      if (q.bind(1, u_.row_id).step()) {
        r = read_row(q);
      }
    }
    if (!r && !u_.session_id.empty()) {
      statement::use q(c.st.find_by_session);
      if (q.bind(1, u_.session_id).step()) {
        r = read_row(q);
      }
    }
    if (!r && !u_.campaign_id.empty() && !u_.task_id.empty()) {
      statement::use q(c.st.find_by_task);
      if (q.bind(1, u_.campaign_id).bind(2, u_.task_id).step()) {
        r = read_row(q);
      }
    }
    if (!r) {
      orphan(c, u_.campaign_id.empty() || u_.task_id.empty() ? "unknown_session" : "unknown_task");
      return;
    }
    out_.row_id = r->row_id;
    out_.campaign = r->campaign;
    out_.previous = out_.state = r->state;
    if (out_.session_id.empty()) {
      out_.session_id = r->session_id;
    }
    const std::string& sid = out_.session_id;
    // The end of the current session already recorded (a redial may even have listed it in
    // previous_sessions): a repeat, whatever else is true.
    if (r->ended && (u_.session_id.empty() || u_.session_id == r->session_id)) {
      out_.verdict = update_verdict::duplicate;
      return;
    }
    if (!u_.session_id.empty() && contains_session(r->previous_sessions, u_.session_id)) {
      // Kept once for review (under the orphans' index, so a retried delivery is recognised).
      unclaimed(c, update_verdict::stale, "earlier_attempt");
      out_.row_id = r->row_id;
      return;
    }
    if (!u_.session_id.empty() && !r->session_id.empty() && u_.session_id != r->session_id) {
      orphan(c, "session_mismatch");
      return;
    }
    if (r->ended || (!u_.ended && (r->state == task_state::started ||
                                   r->state == task_state::ended_unconfirmed))) {
      out_.verdict = update_verdict::duplicate;
      return;
    }
    const bool dialed = r->state == task_state::dialing || r->state == task_state::started ||
                        r->state == task_state::unknown ||
                        r->state == task_state::ended_unconfirmed ||
                        (r->state == task_state::pending && r->attempts > 0);
    if (!dialed) {
      orphan(c, r->state == task_state::failed ? "failed_task" : "not_dialed");
      return;
    }
    out_.verdict = update_verdict::applied;
    if (!u_.ended) {
      std::string detail;
      if (r->state == task_state::unknown) {
        detail = "ambiguous request reconciled by session.created";
      } else if (r->state == task_state::pending) {
        detail = "placed although the API answered that it was not";
      }
      statement::use q(c.st.set_started);
      q.bind_or_null(1, sid).bind(2, c.now_ms).bind_or_null(3, detail).bind(4, r->row_id).run();
      out_.state = task_state::started;
      log_event(c, r->row_id);
      return;
    }
    const auto policy = c.policies.get(r->campaign);
    const bool redial = policy && r->attempts < policy->max_attempts &&
                        std::find(policy->redial_on.begin(), policy->redial_on.end(),
                                  u_.end_reason) != policy->redial_on.end();
    std::string previous = r->previous_sessions;
    if (redial) {
      out_.redial_at_ms = c.now_ms + policy->redial_after_ms;
      if (!sid.empty()) {
        previous += previous.empty() ? sid : "," + sid;
      }
    }
    out_.state = redial ? task_state::pending : task_state::ended;
    static constexpr std::array<std::string_view, 6> known_reasons = {
        "completed", "no_answer", "busy", "voicemail", "failed", "max_duration"};
    out_.end_reason =
        std::find(known_reasons.begin(), known_reasons.end(), u_.end_reason) != known_reasons.end()
            ? u_.end_reason
            : "other";
    // Bound with SQLITE_STATIC: it must outlive q.run().
    const std::string settled_detail = r->state == task_state::ended_unconfirmed
                                           ? "no session.ended in time; settled by " + u_.source
                                           : std::string();
    statement::use q(c.st.set_ended);
    q.bind(1, state_int(out_.state))
        .bind_or_null(2, sid)
        .bind_or_null(3, u_.end_reason.empty() ? std::string_view("unknown") : u_.end_reason);
    if (u_.duration_seconds) {
      q.bind(4, *u_.duration_seconds);
    } else {
      q.bind_or_null(4, std::int64_t{0});
    }
    q.bind_or_null(5, u_.intent)
        .bind_or_null(6, u_.resolution)
        .bind_or_null(7, u_.sentiment)
        .bind_or_null(8, u_.analysis_data_json)
        .bind(9, u_.event_ms > 0 ? u_.event_ms : c.now_ms)
        .bind(10, u_.source)
        .bind_or_null(11, out_.redial_at_ms)
        .bind_or_null(12, previous)
        .bind(13, c.now_ms)
        .bind(14, r->row_id)
        .bind_or_null(15, settled_detail);
    q.run();
    log_event(c, r->row_id);
  }

  void finish(const post_fn& post) override {
    if (done_) {
      post([done = std::move(done_), ok = error.empty(), o = std::move(out_)]() mutable {
        done(ok, std::move(o));
      });
    }
  }

 private:
  static bool contains_session(std::string_view list, std::string_view id) {
    while (!list.empty()) {
      const auto comma = list.find(',');
      if (list.substr(0, comma) == id) {
        return true;
      }
      if (comma == std::string_view::npos) {
        break;
      }
      list.remove_prefix(comma + 1);
    }
    return false;
  }

  void orphan(job_context& c, std::string_view reason) {
    unclaimed(c, update_verdict::orphan, reason);
  }

  // An event that moves no task: stored once (events.row_id NULL), repeats are duplicates.
  void unclaimed(job_context& c, update_verdict verdict, std::string_view reason) {
    out_.verdict = verdict;
    out_.reason = std::string(reason);
    out_.row_id = 0;
    {
      statement::use q(c.st.find_orphan);
      if (q.bind(1, u_.session_id)
              .bind(2, u_.event_name)
              .bind(3, u_.campaign_id)
              .bind(4, u_.task_id)
              .step()) {
        out_.verdict = update_verdict::duplicate;  // the same orphan, delivered again
        return;
      }
    }
    log_event(c, 0);
  }

  void log_event(job_context& c, std::int64_t row_id) {
    statement::use q(c.st.insert_event);
    q.bind(1, c.now_ms)
        .bind(2, u_.source)
        .bind(3, u_.event_name)
        .bind(4, u_.session_id)
        .bind(5, u_.campaign_id)
        .bind(6, u_.task_id)
        .bind_or_null(7, row_id)
        .bind(8, to_string(out_.verdict))
        .bind_or_null(9, out_.reason)
        .bind(10, u_.raw)
        .run();
  }

  session_update u_;
  std::function<void(bool, update_outcome)> done_;
  update_outcome out_;
};

class mark_unconfirmed_job final : public update_job {
 public:
  mark_unconfirmed_job(std::int64_t row_id, std::string session_id, std::function<void(bool)> done)
      : update_job(std::move(done)), row_id_(row_id), session_id_(std::move(session_id)) {}
  void run(job_context& c) override {
    statement::use q(c.st.mark_unconfirmed);
    q.bind(1, "no session.ended by max_duration + slot_grace; settling through the session API")
        .bind(2, c.now_ms)
        .bind(3, row_id_)
        .bind(4, session_id_)
        .run();
    changed_ = q.changes() == 1;
  }

 private:
  std::int64_t row_id_;
  std::string session_id_;
};

class record_pull_job final : public update_job {
 public:
  record_pull_job(std::int64_t row_id, int pulls, std::string detail,
                  std::function<void(bool)> done)
      : update_job(std::move(done)), row_id_(row_id), pulls_(pulls), detail_(std::move(detail)) {}
  void run(job_context& c) override {
    statement::use q(c.st.record_pull);
    q.bind(1, pulls_).bind(2, detail_).bind(3, c.now_ms).bind(4, row_id_).run();
    changed_ = q.changes() == 1;
  }

 private:
  std::int64_t row_id_;
  int pulls_;
  std::string detail_;
};

class save_transcript_job final : public update_job {
 public:
  save_transcript_job(std::int64_t row_id, std::string json, std::function<void(bool)> done)
      : update_job(std::move(done)), row_id_(row_id), json_(std::move(json)) {}
  void run(job_context& c) override {
    statement::use q(c.st.save_transcript);
    q.bind(1, json_).bind(2, c.now_ms).bind(3, row_id_).run();
    changed_ = q.changes() == 1;
  }

 private:
  std::int64_t row_id_;
  std::string json_;
};

// A bulk UPDATE answered with how many rows it changed.
class bulk_update_job final : public store_job {
 public:
  using run_fn = std::function<std::int64_t(job_context&)>;
  bulk_update_job(run_fn fn, std::function<void(std::int64_t)> done)
      : fn_(std::move(fn)), done_(std::move(done)) {}
  void run(job_context& c) override { changed_ = fn_(c); }
  void finish(const post_fn& post) override {
    if (done_) {
      post([done = std::move(done_), n = error.empty() ? changed_ : 0] { done(n); });
    }
  }

 private:
  run_fn fn_;
  std::function<void(std::int64_t)> done_;
  std::int64_t changed_ = 0;
};

class purge_transcripts_job final : public store_job {
 public:
  purge_transcripts_job(std::string campaign, std::int64_t before_ms,
                        std::function<void(std::int64_t)> done)
      : campaign_(std::move(campaign)), before_ms_(before_ms), done_(std::move(done)) {}
  void run(job_context& c) override {
    statement::use q(c.st.purge_transcripts);
    q.bind(1, campaign_).bind(2, before_ms_).run();
    purged_ = q.changes();
  }
  void finish(const post_fn& post) override {
    if (done_) {
      post([done = std::move(done_), n = error.empty() ? purged_ : 0] { done(n); });
    }
  }

 private:
  std::string campaign_;
  std::int64_t before_ms_;
  std::function<void(std::int64_t)> done_;
  std::int64_t purged_ = 0;
};

class flush_job final : public store_job {
 public:
  explicit flush_job(std::function<void()> done) : done_(std::move(done)) {}
  void run(job_context&) override {}
  void finish(const post_fn& post) override {
    if (done_) {
      post(std::move(done_));
    }
  }

 private:
  std::function<void()> done_;
};

bool may_follow_dialing(task_state s) {
  return s == task_state::started || s == task_state::pending || s == task_state::failed ||
         s == task_state::unknown;
}

}  // namespace

sqlite_store::sqlite_store(sqlite_store_options options) {
  if (!options.post) {
    throw std::invalid_argument("sqlite_store: a completion executor (post) is required");
  }
  if (options.clock == nullptr) {
    throw std::invalid_argument("sqlite_store: a clock is required");
  }
  writer_ = std::make_unique<detail::sqlite_writer>(std::move(options));
  recovered_dialing_ = writer_->recovered_dialing();
}

sqlite_store::~sqlite_store() = default;

sqlite_store_stats sqlite_store::stats() const {
  return writer_->stats();
}

prom::histogram sqlite_store::commit_latency() const {
  return writer_->commit_latency();
}

namespace {
template <class Job, class... Args>
auto run_blocking(detail::sqlite_writer& w, Args&&... args) {
  if (w.on_writer_thread()) {
    throw std::logic_error(
        "sqlite_store: a blocking call from the writer thread would wait forever");
  }
  auto j = std::make_unique<Job>(std::forward<Args>(args)...);
  auto result = j->result();
  w.enqueue(std::move(j));
  return result.get();
}
}  // namespace

bool sqlite_store::ingest_complete(const std::string& campaign, const std::string& fingerprint) {
  return run_blocking<ingest_complete_job>(*writer_, campaign, fingerprint);
}

ingest_result sqlite_store::ingest(const std::string& campaign, std::span<const ingest_row> rows,
                                   std::span<const ingest_reject> rejects, bool dedupe_phone) {
  return run_blocking<ingest_job>(*writer_, campaign, rows, rejects, dedupe_phone);
}

void sqlite_store::finish_ingest(const std::string& campaign, const std::string& fingerprint,
                                 std::int64_t rows_read) {
  run_blocking<finish_ingest_job>(*writer_, campaign, fingerprint, rows_read);
}

campaign_summary sqlite_store::summary(const std::string& campaign) {
  return run_blocking<summary_job>(*writer_, campaign);
}

void sqlite_store::fetch_pending(const std::string& campaign, std::int64_t after_row_id,
                                 std::size_t limit,
                                 std::function<void(std::vector<dial_task>)> done) {
  writer_->enqueue(
      std::make_unique<fetch_pending_job>(campaign, after_row_id, limit, std::move(done)));
}

void sqlite_store::fetch_active(const std::string& campaign, std::int64_t since_ms,
                                std::function<void(std::vector<active_call>)> done) {
  writer_->enqueue(std::make_unique<fetch_active_job>(campaign, since_ms, std::move(done)));
}

void sqlite_store::fetch_due(const std::string& campaign, std::int64_t after_ms,
                             std::int64_t after_row_id, std::int64_t up_to_ms, std::size_t limit,
                             std::function<void(due_page)> done) {
  writer_->enqueue(std::make_unique<fetch_due_job>(campaign, after_ms, after_row_id, up_to_ms,
                                                   limit, std::move(done)));
}

void sqlite_store::mark_dialing(std::int64_t row_id, int attempt,
                                std::function<void(claim_outcome)> done) {
  writer_->enqueue(std::make_unique<mark_dialing_job>(row_id, attempt, std::move(done)));
}

void sqlite_store::apply_session(session_update update,
                                 std::function<void(bool, update_outcome)> done) {
  writer_->enqueue(std::make_unique<apply_session_job>(std::move(update), std::move(done)));
}

void sqlite_store::mark_unconfirmed(std::int64_t row_id, const std::string& session_id,
                                    std::function<void(bool)> done) {
  writer_->enqueue(std::make_unique<mark_unconfirmed_job>(row_id, session_id, std::move(done)));
}

void sqlite_store::record_pull(std::int64_t row_id, int pulls, std::string detail,
                               std::function<void(bool)> done) {
  writer_->enqueue(
      std::make_unique<record_pull_job>(row_id, pulls, std::move(detail), std::move(done)));
}

void sqlite_store::save_transcript(std::int64_t row_id, std::string transcript_json,
                                   std::function<void(bool)> done) {
  writer_->enqueue(
      std::make_unique<save_transcript_job>(row_id, std::move(transcript_json), std::move(done)));
}

void sqlite_store::purge_transcripts(const std::string& campaign, std::int64_t before_ms,
                                     std::function<void(std::int64_t)> done) {
  writer_->enqueue(std::make_unique<purge_transcripts_job>(campaign, before_ms, std::move(done)));
}

void sqlite_store::fetch_summary(const std::string& campaign,
                                 std::function<void(campaign_summary)> done) {
  writer_->enqueue(std::make_unique<fetch_summary_job>(campaign, std::move(done)));
}

void sqlite_store::cancel_pending(const std::string& campaign,
                                  std::function<void(std::int64_t)> done) {
  writer_->enqueue(std::make_unique<bulk_update_job>(
      [campaign](job_context& c) {
        statement::use(c.st.mark_cancelled).bind(1, campaign).bind(2, c.now_ms).run();
        statement::use q(c.st.cancel_pending);
        q.bind(1, campaign).bind(2, c.now_ms).run();
        return q.changes();
      },
      std::move(done)));
}

void sqlite_store::requeue(const std::string& campaign, task_state from,
                           std::function<void(std::int64_t)> done) {
  if (from != task_state::unknown && from != task_state::failed) {
    throw std::invalid_argument("requeue: only unknown or failed tasks can be requeued");
  }
  writer_->enqueue(std::make_unique<bulk_update_job>(
      [campaign, from](job_context& c) {
        const std::string detail = "requeued by an operator from " + std::string(to_string(from));
        statement::use q(c.st.requeue);
        q.bind(1, campaign).bind(2, state_int(from)).bind(3, c.now_ms).bind(4, detail).run();
        return q.changes();
      },
      std::move(done)));
}

void sqlite_store::set_campaign_policy(const std::string& campaign, campaign_policy policy) {
  writer_->policies().set(campaign, std::move(policy));
}

void sqlite_store::record(attempt_outcome outcome, std::function<void(bool)> done) {
  // Refused in order with the caller's other jobs, so its done(false) does not overtake them.
  const bool refused = !may_follow_dialing(outcome.state);
  if (refused) {
    writer_->count_refused_record();
    DIALER_LOG_ERROR(
        "BUG: state store asked to record row %lld as state %d; only started, "
        "pending, failed or unknown may follow dialing",
        static_cast<long long>(outcome.row_id), state_int(outcome.state));
  }
  writer_->enqueue(std::make_unique<record_job>(std::move(outcome), refused, std::move(done)));
}

void sqlite_store::flush(std::function<void()> done) {
  writer_->enqueue(std::make_unique<flush_job>(std::move(done)));
}

}  // namespace dialer
