#pragma once
// state_store on SQLite (WAL). One writer thread owns the connection and runs every job, reads
// included: reads then see exactly the committed order of writes, and no second connection has to
// be kept consistent with the first. The writer takes every job queued since its last turn and runs
// them in ONE transaction (group commit); only after COMMIT returns does it hand each completion to
// `post`. Lifecycle and transitions: core/task_lifecycle.md.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/prometheus.hpp"
#include "core/state_store.hpp"
#include "core/time.hpp"

namespace dialer {
namespace detail {
class sqlite_writer;  // the thread, its connection and its cached statements
}

struct sqlite_store_options {
  std::filesystem::path path;
  // PRAGMA synchronous=FULL: a commit is on stable storage when acknowledged. NORMAL (WAL): a
  // commit survives a crash of the process but may be lost on power failure or a kernel crash.
  bool synchronous_full = true;
  // Completion executor: every `done` of the async methods runs through it, from the writer thread.
  // It must not block and must not run the function inline (the writer would then run your
  // callback, and a blocking store call made from it would wait on itself). The daemon passes
  // [&io](auto fn) { boost::asio::post(io, std::move(fn)); }.
  std::function<void(std::function<void()>)> post;
  // Wall time for the *_ms timestamps; read on the writer thread once per group.
  const time_source* clock = &time_source::real();
  // Async jobs waiting for the writer. A caller blocks only when the writer is this far behind
  // (a stalled disk): the loop's producers are themselves bounded by the concurrency caps, so this
  // is a backstop for memory, not a pacing mechanism. Calls made on the writer thread never block.
  std::size_t max_queued_jobs = 65536;
  // How long a statement waits for a lock held by another connection (e.g. an operator's sqlite3
  // shell) before its group fails.
  std::chrono::milliseconds busy_timeout{5000};
};

// Counters for metrics; read from any thread.
struct sqlite_store_stats {
  std::uint64_t commits = 0;          // group transactions committed
  std::uint64_t jobs = 0;             // jobs run (async and blocking)
  std::uint64_t failed_groups = 0;    // groups rolled back: their writes were answered false/thrown
  std::uint64_t refused_records = 0;  // record() with a target state it may not set (a caller bug)
};

// Thread-safety: every method may be called from any thread, except that no call may overlap the
// destructor. The blocking methods (ingest_complete, ingest, finish_ingest, summary) must not be
// called from the event loop; called on the writer thread they throw std::logic_error.
//
// Failures: a write that cannot be committed makes every job of its group fail — async writes get
// done(false) (flush still gets done(): everything before it has been answered), blocking calls
// throw std::runtime_error. Reads of a failed group are re-run on their own after the rollback so
// they never return rows that were rolled back; if that fails too, they get an empty result and
// the error is printed on stderr.
class sqlite_store final : public state_store {
 public:
  // Opens or creates the database, applies the schema and the restart rule: every DIALING task
  // becomes UNKNOWN("interrupted"), in one transaction, before any job runs. Holds an exclusive
  // lock on `<path>.lock` for its lifetime, since the restart rule is only sound when no other
  // process is dialing from the same file. Throws std::runtime_error (naming the path and the
  // SQLite error) when it cannot open, create, lock or migrate; std::invalid_argument without
  // `post` or `clock`.
  explicit sqlite_store(sqlite_store_options options);
  // Runs every queued job, commits, and closes. Completions of those jobs still go through `post`:
  // the owner keeps the executor alive (or drains it) until the destructor has returned.
  ~sqlite_store() override;
  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;

  // How many DIALING tasks the restart rule turned UNKNOWN at open.
  [[nodiscard]] std::int64_t recovered_dialing() const { return recovered_dialing_; }
  [[nodiscard]] sqlite_store_stats stats() const;
  // Group commits, BEGIN to COMMIT (the fsync included), in seconds.
  [[nodiscard]] prom::histogram commit_latency() const;
  [[nodiscard]] std::uint64_t commits_for_test() const { return stats().commits; }

  [[nodiscard]] bool ingest_complete(const std::string& campaign,
                                     const std::string& fingerprint) override;
  // Counts, which always add up to rows.size() + rejects.size(): a row whose task id is known on
  // the same line, a duplicate task id whose reject line is already stored, and a reject already
  // stored for its line count as already_known (a re-run), so a resumed ingest does not count
  // twice. The batch runs inside the writer's group transaction, so dial-side commits wait for
  // it: keep batches to a few thousand rows (4096 rows took ~35 ms in a 100k-task campaign and
  // ~120 ms at 1M, where random index inserts no longer fit the page cache).
  ingest_result ingest(const std::string& campaign, std::span<const ingest_row> rows,
                       std::span<const ingest_reject> rejects, bool dedupe_phone) override;
  void finish_ingest(const std::string& campaign, const std::string& fingerprint,
                     std::int64_t rows_read) override;

  void fetch_pending(const std::string& campaign, std::int64_t after_row_id, std::size_t limit,
                     std::function<void(std::vector<dial_task>)> done) override;
  void fetch_active(const std::string& campaign, std::int64_t since_ms,
                    std::function<void(std::vector<active_call>)> done) override;
  void fetch_due(const std::string& campaign, std::int64_t after_ms, std::int64_t after_row_id,
                 std::int64_t up_to_ms, std::size_t limit,
                 std::function<void(due_page)> done) override;
  void mark_dialing(std::int64_t row_id, int attempt,
                    std::function<void(claim_outcome)> done) override;
  void apply_session(session_update update,
                     std::function<void(bool, update_outcome)> done) override;
  void mark_unconfirmed(std::int64_t row_id, const std::string& session_id,
                        std::function<void(bool)> done) override;
  void record_pull(std::int64_t row_id, int pulls, std::string detail,
                   std::function<void(bool)> done) override;
  // Only from DIALING, only to started, pending, failed or unknown. Any other target is a caller
  // bug: done(false), a line on stderr and stats().refused_records, never a silent write.
  void record(attempt_outcome outcome, std::function<void(bool)> done) override;
  void save_transcript(std::int64_t row_id, std::string transcript_json,
                       std::function<void(bool)> done) override;
  void purge_transcripts(const std::string& campaign, std::int64_t before_ms,
                         std::function<void(std::int64_t)> done) override;
  void set_campaign_policy(const std::string& campaign, campaign_policy policy) override;
  void fetch_summary(const std::string& campaign,
                     std::function<void(campaign_summary)> done) override;
  void cancel_pending(const std::string& campaign,
                      std::function<void(std::int64_t)> done) override;
  void requeue(const std::string& campaign, task_state from,
               std::function<void(std::int64_t)> done) override;
  void flush(std::function<void()> done) override;

  // Runs on the writer like every read (~130 ms for a 1M-task campaign, during which dial-side
  // commits wait): poll it for status pages, not per call.
  [[nodiscard]] campaign_summary summary(const std::string& campaign) override;

 private:
  std::unique_ptr<detail::sqlite_writer> writer_;
  std::int64_t recovered_dialing_ = 0;
};

}  // namespace dialer
