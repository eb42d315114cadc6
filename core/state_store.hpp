#pragma once
// The durable task store: the seam between the dialer and the disk. The implementation
// (sqlite_store) runs every statement on one writer thread and commits in groups; completions are
// handed to the `post` executor given at open (the daemon posts them onto its io_context).
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/task.hpp"

namespace dialer {

// One CSV row that passed validation, as ingest hands it to the store.
struct ingest_row {
  std::int64_t line = 0;  // physical line where the record starts (1-based)
  std::string task_id;
  std::string phone_e164;
  std::string variables_json;
};

// A row that did not become a dialable task. `suppressed` separates "not dialed by policy"
// (duplicate task id) from "malformed input"; both are kept and counted by reason.
struct ingest_reject {
  std::int64_t line = 0;
  std::string task_id;  // empty when the row had none
  std::string phone;    // as written in the file, may be empty
  std::string reason;   // a stable class: "ragged_row", "invalid_number", "duplicate_task_id", ...
  std::string detail;   // human text
  bool suppressed = false;
};

struct ingest_result {
  std::int64_t pending = 0;          // new dialable tasks
  std::int64_t duplicate_phone = 0;  // new tasks stored SUPPRESSED (same number as an earlier one)
  std::int64_t duplicate_task_id = 0;
  std::int64_t already_known = 0;    // rows stored by an earlier run (same task id, same line)
  std::int64_t rejects = 0;
};

// What the dialer learned about one attempt. `state` is started, pending (retry later, not
// placed), failed or unknown.
struct attempt_outcome {
  std::int64_t row_id = 0;
  task_state state = task_state::unknown;
  int attempts = 0;  // attempts made, including this one
  int http_status = 0;
  std::string error_class;  // empty on success
  std::string session_id;   // set when started
  std::string detail;
  std::int64_t not_before_ms = 0;  // for pending: earliest redial, unix ms
};

struct active_call {
  std::int64_t row_id = 0;
  std::int64_t started_at_ms = 0;
};

struct campaign_summary {
  std::int64_t rows_read = 0;  // data rows seen by the last complete ingest
  state_counts by_state{};
  std::map<std::string, std::int64_t> rejected_by_reason;    // malformed input
  std::map<std::string, std::int64_t> suppressed_by_reason;  // policy (duplicates, number type)
  std::map<std::string, std::int64_t> failed_by_class;
  std::map<std::string, std::int64_t> unknown_by_class;
};

class state_store {
 public:
  virtual ~state_store() = default;

  // ---- Ingest side: blocking calls from the ingest thread (never the event loop). ----
  // True when `fingerprint` (path, size, mtime) was already ingested to the end for `campaign`.
  [[nodiscard]] virtual bool ingest_complete(const std::string& campaign,
                                             const std::string& fingerprint) = 0;
  // Stores a batch durably. A task id seen before on the same line is "already known" (a re-run);
  // on another line it is a duplicate. With dedupe_phone, a number already held by another task of
  // the campaign makes the new task SUPPRESSED("duplicate_phone").
  virtual ingest_result ingest(const std::string& campaign, std::span<const ingest_row> rows,
                               std::span<const ingest_reject> rejects, bool dedupe_phone) = 0;
  virtual void finish_ingest(const std::string& campaign, const std::string& fingerprint,
                             std::int64_t rows_read) = 0;

  // ---- Dial side: asynchronous, called on the event loop; `done` runs through `post`. ----
  // Pending tasks of `campaign` with row_id > after_row_id, in row order, at most `limit`.
  virtual void fetch_pending(const std::string& campaign, std::int64_t after_row_id,
                             std::size_t limit,
                             std::function<void(std::vector<dial_task>)> done) = 0;
  // Tasks whose call may still be live: STARTED at or after `since_ms`, and UNKNOWN ones (the
  // request may have placed a call) claimed at or after it. started_at_ms is the claim instant
  // for the latter.
  virtual void fetch_active(const std::string& campaign, std::int64_t since_ms,
                            std::function<void(std::vector<active_call>)> done) = 0;
  // PENDING → DIALING with attempts = `attempt`; `done(true)` once it is on disk. `done(false)`
  // when the task was not PENDING any more or the write failed: the caller must not dial.
  virtual void mark_dialing(std::int64_t row_id, int attempt, std::function<void(bool)> done) = 0;
  // DIALING → outcome.state. `done` may be empty.
  virtual void record(attempt_outcome outcome, std::function<void(bool)> done) = 0;
  // Runs `done` once everything submitted before it is on disk.
  virtual void flush(std::function<void()> done) = 0;

  // ---- Anywhere but the loop: blocking reads for summaries and tests. ----
  [[nodiscard]] virtual campaign_summary summary(const std::string& campaign) = 0;
};

}  // namespace dialer
