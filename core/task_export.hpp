#pragma once
// Exports one campaign's tasks and call results from the state store, for the CRM.
//
// The store is opened READ-ONLY, without taking `<path>.lock`: the daemon may be running, and WAL
// lets this reader see a consistent snapshot while the writer goes on committing. Both passes of
// an export (CSV column discovery, then the rows) run inside one read transaction, so they see the
// same snapshot; while it is open the writer's WAL cannot be checkpointed past it and grows by
// whatever the daemon commits meanwhile. Rows stream in row_id order through a rowid-range scan
// (no sort, no index probes), one at a time: memory does not grow with the campaign.
//
// Record fields, in this order: taskId, the CRM correlation keys (every key of the task's
// `variables` but taskId and campaignId), phone, state, attempts, sessionId, lastHttpStatus,
// errorClass, detail, createdAt, dialedAt, startedAt, endedAt, endReason, durationSeconds,
// intent, resolution, sentiment, data (the analysis_data object), resultSource. Times are
// ISO-8601 UTC with milliseconds ("2026-11-28T10:15:02.123Z").
//
// CSV (RFC 4180, CRLF line ends, one header row): absent values are empty cells. The correlation
// keys are found by a first pass over the `variables` of every task of the campaign (whatever
// the state filter, so one campaign always gets the same header), in first-seen order, each one
// its own column after taskId; a key named like a fixed column is written "variables.<key>"
// (then ".2", ".3" … should even that be taken). A task lacking a key has an empty cell; a value
// that is not a JSON string is written as its compact JSON text. `data` is the stored JSON text
// in one cell.
// Formula injection: a cell whose text starts with = + - @ TAB or CR gets a leading single quote
// so spreadsheet tools show it as text, but only in text columns whose content comes from
// outside the dialer: taskId, the correlation values (and their header names), detail, intent,
// resolution, sentiment, data, and also endReason and sessionId (vendor text, like intent).
// phone is E.164 ("+9715…") and is never touched; the other columns are written by the dialer
// itself (states, numbers, times, classes).
//
// JSONL: one compact JSON object per line, absent values as null, attempts/lastHttpStatus/
// durationSeconds as numbers, the correlation keys nested as "variables": {…}. `variables` and
// `data` are embedded as JSON only when they parse as JSON objects; otherwise (a damaged row)
// their text is written as a JSON string, so every line stays valid JSON.
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/task.hpp"

namespace dialer {

enum class export_format : std::uint8_t { csv, jsonl };

struct export_options {
  std::filesystem::path state_path;
  std::string campaign;
  export_format format = export_format::csv;
  std::vector<task_state> states;  // only tasks in these states; empty = every state
};

struct export_stats {
  std::int64_t rows = 0;             // records written (the header not counted)
  std::size_t variable_columns = 0;  // CSV correlation-key columns (0 for JSONL)
  // Rows whose `variables` or `data` text was not a JSON object (written as a string in JSONL;
  // in CSV such a row's key cells are empty and `data` holds the text as stored).
  std::int64_t damaged_json = 0;
};

enum class export_errc : std::uint8_t {
  store_missing,     // no file at state_path
  store_unreadable,  // cannot open or read it, or it is not a dialerd store
  schema_too_old,    // user_version < 2: run dialerd once to migrate it
  schema_too_new,    // user_version > 2: written by a newer dialerd
  unknown_campaign,  // neither ingested nor holding tasks; known_campaigns lists the others
  too_many_keys,     // the campaign's variables hold more distinct keys than a CSV can take
  write_failed,      // the output stream failed
};

struct export_error {
  export_errc code = export_errc::store_unreadable;
  std::string message;                       // one line, names the path or campaign
  std::vector<std::string> known_campaigns;  // unknown_campaign only, sorted
};

// Correlation-key columns a CSV export takes at most (the CSV reader's own field limit).
inline constexpr std::size_t max_export_variable_keys = 1000;

// Writes the campaign's tasks to `out`. Blocking; call it from any thread but the daemon's event
// loop. `out` is only written to; on a write_failed (or any error after the first byte) it holds
// a partial export, so write to a temporary file and rename on success.
[[nodiscard]] result<export_stats, export_error> export_tasks(const export_options& options,
                                                              std::ostream& out);

// Building blocks, exposed for tests.
// Appends `ms` (unix milliseconds) as "YYYY-MM-DDTHH:MM:SS.mmmZ".
void append_iso8601_ms(std::string& out, std::int64_t ms);
// Appends one RFC 4180 field; `outside_text` applies the formula-injection rule above.
void append_csv_field(std::string& out, std::string_view text, bool outside_text);
// The query plan of the row pass, as EXPLAIN QUERY PLAN's detail lines: lets a test check that
// the export scans in rowid order without a sorter.
[[nodiscard]] std::string export_query_plan_for_test(const std::filesystem::path& state_path);

}  // namespace dialer
