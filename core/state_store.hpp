#pragma once
// The durable task store: the seam between the dialer and the disk. The implementation
// (sqlite_store) runs every statement on one writer thread and commits in groups; completions are
// handed to the `post` executor given at open (the daemon posts them onto its io_context).
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
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
  std::int64_t already_known = 0;  // rows stored by an earlier run (same task id, same line)
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

// A call that may still hold a trunk slot (or await settlement) when the dialer starts.
struct active_call {
  std::int64_t row_id = 0;
  std::int64_t started_at_ms = 0;  // STARTED/ENDED_UNCONFIRMED: started; UNKNOWN: the claim
  task_state state = task_state::started;
  std::string session_id;  // empty for UNKNOWN
  int pulls = 0;           // session pulls already made (ENDED_UNCONFIRMED)
};

enum class claim_result : std::uint8_t {
  claimed,      // PENDING → DIALING is on disk: dial it
  not_pending,  // the task moved meanwhile (or the write failed): never dial it
  capped,       // the number's call cap: not dialed; the task waits (retry_at_ms) or FAILED
};
struct claim_outcome {
  claim_result result = claim_result::not_pending;
  std::int64_t retry_at_ms = 0;  // capped for the day: when the task becomes due again
};

// Per campaign rules the store applies inside its transactions.
struct campaign_policy {
  std::vector<std::string> redial_on;  // end reasons that schedule a redial
  int max_attempts = 1;                // requests per task in all
  std::int64_t redial_after_ms = 0;
  int cap_lifetime = 0;  // calls per number over every campaign; 0 = none
  int cap_per_day = 0;   // calls per number per UTC day; 0 = none
};

// What a session.created / session.ended says, from a webhook or from a session pull.
struct session_update {
  bool ended = false;  // false: session.created
  std::string session_id;
  std::string campaign_id;  // from metadata.sessionVariables; may be empty
  std::string task_id;
  std::int64_t event_ms = 0;  // the event's own timestamp; 0 unknown
  std::string end_reason;
  std::optional<std::int64_t> duration_seconds;
  std::string intent;
  std::string resolution;
  std::string sentiment;
  std::string analysis_data_json;
  std::string event_name;  // as sent
  std::string source;      // "webhook" or "pull"
  std::int64_t row_id = 0;  // a pull knows its task: looked up by row first (0: unknown)
  std::string raw;         // the payload as received, kept in the events table
};

enum class update_verdict : std::uint8_t {
  applied,    // the task moved (or learned its session)
  duplicate,  // already recorded: nothing changed
  stale,      // an earlier attempt's session: nothing changed
  orphan,     // no task of ours matches: kept in the events table for review
};
[[nodiscard]] std::string_view to_string(update_verdict v);

struct update_outcome {
  update_verdict verdict = update_verdict::orphan;
  std::string reason;  // orphan/stale: "unknown_session", "not_dialed", "earlier_attempt", …
  std::int64_t row_id = 0;
  std::string campaign;
  task_state previous = task_state::pending;
  task_state state = task_state::pending;
  std::string session_id;
  std::int64_t redial_at_ms = 0;  // set when the end scheduled a redial (state PENDING)
  // applied session.ended: one of completed, no_answer, busy, voicemail, failed, max_duration,
  // other (a bounded set: it is a metric label).
  std::string end_reason;
};

// Page of tasks whose redial (or capped-day wait) is due.
struct due_page {
  std::vector<dial_task> tasks;
  std::int64_t next_due_ms = 0;  // earliest redial still in the future; 0 none
};

struct campaign_summary {
  std::int64_t rows_read = 0;  // data rows of every CSV file read to the end into the campaign
  bool cancelled = false;      // cancelled by an operator: durable, never dialed again
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
  // Tasks whose call may still be live or unsettled: every STARTED and ENDED_UNCONFIRMED task,
  // and UNKNOWN ones (the request may have placed a call) claimed at or after `since_ms`.
  virtual void fetch_active(const std::string& campaign, std::int64_t since_ms,
                            std::function<void(std::vector<active_call>)> done) = 0;
  // PENDING tasks of `campaign` waiting for a redial (or a capped day) that is due by `up_to_ms`,
  // ordered by (due, row_id) strictly after (after_ms, after_row_id), at most `limit`.
  virtual void fetch_due(const std::string& campaign, std::int64_t after_ms,
                         std::int64_t after_row_id, std::int64_t up_to_ms, std::size_t limit,
                         std::function<void(due_page)> done) = 0;
  // PENDING → DIALING with attempts = `attempt`, once the campaign's number caps allow it; `done`
  // runs once it is on disk. Anything but `claimed` means: do not dial.
  virtual void mark_dialing(std::int64_t row_id, int attempt,
                            std::function<void(claim_outcome)> done) = 0;
  // DIALING (attempt outcome.attempts) → outcome.state. `done` may be empty. A task a webhook
  // moved first, or a later attempt of it, is left alone (`done(false)`).
  virtual void record(attempt_outcome outcome, std::function<void(bool)> done) = 0;
  // Applies a session event with the lifecycle rules of core/task_lifecycle.md and keeps its raw
  // payload; `done(true, …)` once durable, `done(false, …)` when the write failed (the sender
  // must be answered non-2xx so it retries).
  virtual void apply_session(session_update update,
                             std::function<void(bool, update_outcome)> done) = 0;
  // STARTED → ENDED_UNCONFIRMED for a call with no session.ended in time (same session only).
  virtual void mark_unconfirmed(std::int64_t row_id, const std::string& session_id,
                                std::function<void(bool)> done) = 0;
  // Counts a session pull of an ENDED_UNCONFIRMED task and why it did not settle it.
  virtual void record_pull(std::int64_t row_id, int pulls, std::string detail,
                           std::function<void(bool)> done) = 0;
  // Keeps a call's transcript (the items array as JSON).
  virtual void save_transcript(std::int64_t row_id, std::string transcript_json,
                               std::function<void(bool)> done) = 0;
  // Erases transcripts of `campaign` saved before `before_ms`; `done` gets how many.
  virtual void purge_transcripts(const std::string& campaign, std::int64_t before_ms,
                                 std::function<void(std::int64_t)> done) = 0;
  // The summary, read on the writer's turn and posted: for status pages on the loop. It scans the
  // campaign's rows (about 0.1 s per million): callers cache it.
  virtual void fetch_summary(const std::string& campaign,
                             std::function<void(campaign_summary)> done) = 0;
  // PENDING tasks of `campaign` → SUPPRESSED("cancelled"), and the campaign stays cancelled:
  // rows ingested later are stored SUPPRESSED, a restart sees it in the summary. `done` gets how
  // many tasks were cancelled.
  virtual void cancel_pending(const std::string& campaign,
                              std::function<void(std::int64_t)> done) = 0;
  // UNKNOWN or FAILED tasks of `campaign` → PENDING, due at once through fetch_due, attempts
  // kept (the next request is a new attempt with its own Idempotency-Key).
  virtual void requeue(const std::string& campaign, task_state from,
                       std::function<void(std::int64_t)> done) = 0;
  // Rules used by mark_dialing and apply_session for `campaign`; thread-safe, replaces any
  // earlier policy. Campaigns without one never redial and have no caps.
  virtual void set_campaign_policy(const std::string& campaign, campaign_policy policy) = 0;
  // Runs `done` once everything submitted before it is on disk.
  virtual void flush(std::function<void()> done) = 0;

  // ---- Anywhere but the loop: blocking reads for summaries and tests. ----
  [[nodiscard]] virtual campaign_summary summary(const std::string& campaign) = 0;
};

}  // namespace dialer
