#include "core/task_export.hpp"

#include <simdjson.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>

#include "core/json.hpp"

namespace dialer {
namespace {

namespace fs = std::filesystem;

// Must match core/sqlite_store.cpp: the export reads the columns that version added.
// Versions this export reads: v3 only added tables and columns it does not read.
constexpr std::int64_t oldest_schema = 2;
constexpr std::int64_t supported_schema = 3;
constexpr std::int64_t dialer_application_id = 0x6469616c;

// Output is handed to the stream in chunks of about this size.
constexpr std::size_t flush_bytes = 64 * 1024;

// Internal control flow only: export_tasks turns it into its result.
class export_failure : public std::runtime_error {
 public:
  export_failure(export_errc code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  [[nodiscard]] export_errc code() const { return code_; }
  std::vector<std::string> known_campaigns;

 private:
  export_errc code_;
};

class connection {
 public:
  explicit connection(const fs::path& path) : path_(path) {
    // Read-only and no lock file: the daemon may be running. NOMUTEX: one thread uses it.
    const int rc =
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      fail(rc, "cannot open");
    }
    sqlite3_extended_result_codes(db_, 1);
    // A reader waits only while the WAL index is being rebuilt or a checkpoint resets the log.
    sqlite3_busy_timeout(db_, 5000);
  }
  ~connection() { sqlite3_close(db_); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  [[noreturn]] void fail(int rc, std::string_view what) const {
    std::string message = "state store " + path_.string() + ": " + std::string(what) + ": ";
    message += db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    throw export_failure(export_errc::store_unreadable, message);
  }

  void exec(const char* sql) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      fail(rc, sql);
    }
  }

  [[nodiscard]] sqlite3* get() const { return db_; }

 private:
  fs::path path_;
  sqlite3* db_ = nullptr;
};

class query {
 public:
  query(connection& c, const std::string& sql) : c_(c) {
    const int rc =
        sqlite3_prepare_v2(c.get(), sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) {
      c.fail(rc, "prepare");
    }
  }
  ~query() { sqlite3_finalize(stmt_); }
  query(const query&) = delete;
  query& operator=(const query&) = delete;

  query& bind(int i, std::string_view v) {
    check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
  }
  query& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc != SQLITE_DONE) {
      c_.fail(rc, "read");
    }
    return false;
  }
  [[nodiscard]] bool is_null(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }
  [[nodiscard]] std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  // Valid until the next step().
  [[nodiscard]] std::string_view text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    if (p == nullptr) {
      return {};
    }
    return {reinterpret_cast<const char*>(p),
            static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
  }
  [[nodiscard]] std::optional<std::string_view> opt_text(int col) const {
    if (is_null(col)) {
      return std::nullopt;
    }
    return text(col);
  }
  [[nodiscard]] std::optional<std::int64_t> opt_int(int col) const {
    if (is_null(col)) {
      return std::nullopt;
    }
    return int64(col);
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) {
      c_.fail(rc, "bind");
    }
  }
  connection& c_;
  sqlite3_stmt* stmt_ = nullptr;
};

std::int64_t scalar(connection& c, const std::string& sql) {
  query q(c, sql);
  return q.step() ? q.int64(0) : 0;
}

void check_schema(connection& c, const fs::path& path) {
  const std::int64_t app_id = scalar(c, "PRAGMA application_id");
  const std::int64_t version = scalar(c, "PRAGMA user_version");
  const std::string where = "state store " + path.string() + ": ";
  if (app_id != dialer_application_id) {
    throw export_failure(
        export_errc::store_unreadable,
        where + "not a dialerd state store (application_id " + std::to_string(app_id) + ")");
  }
  if (version < oldest_schema) {
    throw export_failure(export_errc::schema_too_old,
                         where + "schema version " + std::to_string(version) +
                             " was written by an older dialerd: run dialerd once to migrate it "
                             "to version " +
                             std::to_string(supported_schema));
  }
  if (version > supported_schema) {
    throw export_failure(export_errc::schema_too_new,
                         where + "schema version " + std::to_string(version) +
                             " was written by a newer dialerd (this export reads version " +
                             std::to_string(supported_schema) + "): use that dialerd's export");
  }
}

// Every campaign the store knows: ingested ones (campaigns table) and any with task rows, the
// latter found by skipping through the (campaign, …) index one campaign at a time, not by
// reading every row.
std::vector<std::string> known_campaigns(connection& c) {
  query q(c,
          "WITH RECURSIVE names(name) AS ("
          " SELECT (SELECT min(campaign) FROM tasks)"
          " UNION ALL"
          " SELECT (SELECT min(campaign) FROM tasks WHERE campaign > names.name) FROM names"
          " WHERE names.name IS NOT NULL)"
          " SELECT name FROM names WHERE name IS NOT NULL UNION SELECT id FROM campaigns"
          " ORDER BY 1");
  std::vector<std::string> out;
  while (q.step()) {
    out.emplace_back(q.text(0));
  }
  return out;
}

void check_campaign(connection& c, const std::string& campaign, const fs::path& path) {
  query q(c,
          "SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = ?1) "
          "OR EXISTS (SELECT 1 FROM tasks WHERE campaign = ?1)");
  q.bind(1, campaign);
  if (q.step() && q.int64(0) != 0) {
    return;
  }
  auto known = known_campaigns(c);
  std::string message = "unknown campaign \"" + campaign + "\" in " + path.string() + "; ";
  if (known.empty()) {
    message += "the store holds no campaign";
  } else {
    message += "known campaigns: ";
    for (std::size_t i = 0; i < known.size(); ++i) {
      message += (i == 0 ? "" : ", ") + known[i];
    }
  }
  export_failure f(export_errc::unknown_campaign, message);
  f.known_campaigns = std::move(known);
  throw f;
}

// The campaign's row_id range, read from a covering (campaign, …) index. Scanning the table by
// rowid between these bounds visits the campaign's rows in order with no sorter, and skips the
// other campaigns' rows before and after it (ingest writes a campaign's rows mostly contiguous).
std::optional<std::pair<std::int64_t, std::int64_t>> row_range(connection& c,
                                                               const std::string& campaign) {
  query q(c, "SELECT min(row_id), max(row_id) FROM tasks WHERE campaign = ?1");
  q.bind(1, campaign);
  if (!q.step() || q.is_null(0)) {
    return std::nullopt;
  }
  return std::pair{q.int64(0), q.int64(1)};
}

enum col : int {
  c_task_id,
  c_phone,
  c_variables,
  c_state,
  c_attempts,
  c_http_status,
  c_error_class,
  c_detail,
  c_session_id,
  c_created_ms,
  c_dialing_ms,
  c_started_ms,
  c_ended_ms,
  c_end_reason,
  c_duration_s,
  c_intent,
  c_resolution,
  c_sentiment,
  c_analysis_data,
  c_result_source,
};

// NOT INDEXED: with the (campaign, task_id) index the planner would visit rows in task-id order
// and sort them all by row_id.
std::string row_sql(const std::vector<task_state>& states) {
  std::string sql =
      "SELECT task_id, phone, variables, state, attempts, http_status, error_class, detail, "
      "session_id, created_ms, dialing_ms, started_ms, ended_ms, end_reason, duration_s, intent, "
      "resolution, sentiment, analysis_data, result_source FROM tasks NOT INDEXED "
      "WHERE campaign = ?1 AND row_id BETWEEN ?2 AND ?3";
  if (!states.empty()) {
    std::array<bool, task_state_count> wanted{};
    for (const auto s : states) {
      wanted.at(static_cast<std::size_t>(s)) = true;
    }
    sql += " AND state IN (";
    bool first = true;
    for (std::size_t i = 0; i < wanted.size(); ++i) {
      if (wanted[i]) {
        sql += (first ? "" : ", ") + std::to_string(i);
        first = false;
      }
    }
    sql += ")";
  }
  return sql + " ORDER BY row_id";
}

// The CSV columns the export always writes; the correlation keys go between the first and the
// second.
constexpr std::array<std::string_view, 19> fixed_columns = {
    "taskId",         "phone",      "state",     "attempts",        "sessionId",
    "lastHttpStatus", "errorClass", "detail",    "createdAt",       "dialedAt",
    "startedAt",      "endedAt",    "endReason", "durationSeconds", "intent",
    "resolution",     "sentiment",  "data",      "resultSource"};

bool is_identity_key(std::string_view key) {
  return key == "taskId" || key == "campaignId";
}

// Parses a stored JSON text as an object. The parser keeps (and reuses) a padded copy.
std::optional<simdjson::dom::object> parse_object(simdjson::dom::parser& parser,
                                                  std::string_view text) {
  simdjson::dom::object obj;
  if (text.empty() ||
      parser.parse(text.data(), text.size(), true).get_object().get(obj) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return obj;
}

// The CSV correlation-key columns: every key of the campaign's variables but the identity keys,
// in first-seen order.
struct key_columns {
  std::vector<std::string> keys;
  std::map<std::string, std::size_t, std::less<>> index;

  void add(std::string_view key) {
    if (is_identity_key(key) || index.find(key) != index.end()) {
      return;
    }
    if (keys.size() >= max_export_variable_keys) {
      throw export_failure(export_errc::too_many_keys,
                           "the campaign's variables hold more than " +
                               std::to_string(max_export_variable_keys) +
                               " distinct keys; export it as JSONL");
    }
    index.emplace(std::string(key), keys.size());
    keys.emplace_back(key);
  }

  // Column of `key`, trying `hint` first: rows of one campaign list their keys in one order.
  [[nodiscard]] std::optional<std::size_t> find(std::string_view key, std::size_t hint) const {
    if (hint < keys.size() && keys[hint] == key) {
      return hint;
    }
    const auto it = index.find(key);
    if (it == index.end()) {
      return std::nullopt;
    }
    return it->second;
  }
};

key_columns discover_keys(connection& c, const std::string& campaign, std::int64_t first,
                          std::int64_t last, simdjson::dom::parser& parser) {
  key_columns out;
  query q(c,
          "SELECT variables FROM tasks NOT INDEXED WHERE campaign = ?1 "
          "AND row_id BETWEEN ?2 AND ?3");
  q.bind(1, campaign).bind(2, first).bind(3, last);
  while (q.step()) {
    const auto obj = parse_object(parser, q.text(0));
    if (!obj) {
      continue;  // counted as damaged by the row pass
    }
    for (const auto field : *obj) {
      out.add(field.key);
    }
  }
  return out;
}

std::string_view state_name(std::int64_t state, std::string& scratch) {
  if (state >= 0 && state < static_cast<std::int64_t>(task_state_count)) {
    return to_string(static_cast<task_state>(state));
  }
  scratch = std::to_string(state);  // not a state this dialerd knows: show what is stored
  return scratch;
}

class writer {
 public:
  explicit writer(std::ostream& out) : out_(out) { buf_.reserve(flush_bytes * 2); }
  std::string& buf() { return buf_; }
  void end_record() {
    if (buf_.size() >= flush_bytes) {
      flush();
    }
  }
  void flush() {
    out_.write(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    buf_.clear();
    if (!out_) {
      throw export_failure(export_errc::write_failed, "writing the export failed");
    }
  }

 private:
  std::ostream& out_;
  std::string buf_;
};

class csv_exporter {
 public:
  csv_exporter(writer& w, key_columns keys, export_stats& stats)
      : w_(w),
        keys_(std::move(keys)),
        stats_(stats),
        cells_(keys_.keys.size()),
        owned_(keys_.keys.size()) {}

  void header() {
    std::string& o = w_.buf();
    append_csv_field(o, fixed_columns[0], false);
    for (const auto& name : column_names(keys_.keys)) {
      o.push_back(',');
      append_csv_field(o, name, true);
    }
    for (std::size_t i = 1; i < fixed_columns.size(); ++i) {
      o.push_back(',');
      append_csv_field(o, fixed_columns[i], false);
    }
    o.append("\r\n");
    w_.end_record();
  }

  // Header names of the key columns: the key itself, or "variables.<key>" when that is taken by
  // a fixed column (a CSV reader refuses duplicate names), with a number after it if even that is
  // taken.
  static std::vector<std::string> column_names(const std::vector<std::string>& keys) {
    std::set<std::string, std::less<>> taken(fixed_columns.begin(), fixed_columns.end());
    taken.insert(keys.begin(), keys.end());
    std::vector<std::string> names;
    names.reserve(keys.size());
    for (const auto& key : keys) {
      if (std::find(fixed_columns.begin(), fixed_columns.end(), key) == fixed_columns.end()) {
        names.push_back(key);
        continue;
      }
      std::string name = "variables." + key;
      for (int n = 2; taken.count(name) != 0; ++n) {
        name = "variables." + key + "." + std::to_string(n);
      }
      taken.insert(name);
      names.push_back(std::move(name));
    }
    return names;
  }

  void row(const query& q) {
    std::string& o = w_.buf();
    append_csv_field(o, q.text(c_task_id), true);
    fill_variables(q.text(c_variables));
    for (const auto cell : cells_) {
      o.push_back(',');
      append_csv_field(o, cell, true);
    }
    text(o, q, c_phone, false);
    o.push_back(',');
    o.append(state_name(q.int64(c_state), scratch_));
    integer(o, q, c_attempts);
    text(o, q, c_session_id, true);
    integer(o, q, c_http_status);
    text(o, q, c_error_class, false);
    text(o, q, c_detail, true);
    time(o, q, c_created_ms);
    time(o, q, c_dialing_ms);
    time(o, q, c_started_ms);
    time(o, q, c_ended_ms);
    text(o, q, c_end_reason, true);
    integer(o, q, c_duration_s);
    text(o, q, c_intent, true);
    text(o, q, c_resolution, true);
    text(o, q, c_sentiment, true);
    const auto data = q.opt_text(c_analysis_data);
    if (data && !parse_object(data_parser_, *data)) {
      ++stats_.damaged_json;
    }
    text(o, q, c_analysis_data, true);
    text(o, q, c_result_source, false);
    o.append("\r\n");
    ++stats_.rows;
    w_.end_record();
  }

 private:
  void fill_variables(std::string_view text) {
    std::fill(cells_.begin(), cells_.end(), std::string_view{});
    const auto obj = parse_object(parser_, text);
    if (!obj) {
      ++stats_.damaged_json;
      return;
    }
    std::size_t hint = 0;
    for (const auto field : *obj) {
      const auto column = keys_.find(field.key, hint);
      if (!column) {
        continue;  // taskId, campaignId
      }
      hint = *column + 1;
      if (!cells_[*column].empty()) {
        continue;  // a repeated key: the first one wins, as in the JSON the API was sent
      }
      std::string_view value;
      if (field.value.get_string().get(value) == simdjson::SUCCESS) {
        cells_[*column] = value;
      } else if (!field.value.is_null()) {
        owned_[*column] = simdjson::minify(field.value);
        cells_[*column] = owned_[*column];
      }
    }
  }

  static void text(std::string& o, const query& q, int col, bool outside) {
    o.push_back(',');
    append_csv_field(o, q.text(col), outside);
  }
  static void integer(std::string& o, const query& q, int col) {
    o.push_back(',');
    if (!q.is_null(col)) {
      o.append(std::to_string(q.int64(col)));
    }
  }
  static void time(std::string& o, const query& q, int col) {
    o.push_back(',');
    if (!q.is_null(col)) {
      append_iso8601_ms(o, q.int64(col));
    }
  }

  writer& w_;
  key_columns keys_;
  export_stats& stats_;
  std::vector<std::string_view> cells_;  // into parser_'s strings or owned_
  std::vector<std::string> owned_;
  simdjson::dom::parser parser_;
  simdjson::dom::parser data_parser_;
  std::string scratch_;
};

class jsonl_exporter {
 public:
  jsonl_exporter(writer& w, export_stats& stats) : w_(w), stats_(stats) {}

  void row(const query& q) {
    std::string& o = w_.buf();
    o.append("{\"taskId\":");
    append_json_string(o, q.text(c_task_id));
    o.append(",\"variables\":");
    variables(o, q.text(c_variables));
    text(o, "phone", q, c_phone);
    o.append(",\"state\":");
    append_json_string(o, state_name(q.int64(c_state), scratch_));
    integer(o, "attempts", q, c_attempts);
    text(o, "sessionId", q, c_session_id);
    integer(o, "lastHttpStatus", q, c_http_status);
    text(o, "errorClass", q, c_error_class);
    text(o, "detail", q, c_detail);
    time(o, "createdAt", q, c_created_ms);
    time(o, "dialedAt", q, c_dialing_ms);
    time(o, "startedAt", q, c_started_ms);
    time(o, "endedAt", q, c_ended_ms);
    text(o, "endReason", q, c_end_reason);
    integer(o, "durationSeconds", q, c_duration_s);
    text(o, "intent", q, c_intent);
    text(o, "resolution", q, c_resolution);
    text(o, "sentiment", q, c_sentiment);
    o.append(",\"data\":");
    data(o, q.opt_text(c_analysis_data));
    text(o, "resultSource", q, c_result_source);
    o.append("}\n");
    ++stats_.rows;
    w_.end_record();
  }

 private:
  void variables(std::string& o, std::string_view text) {
    const auto obj = parse_object(parser_, text);
    if (!obj) {
      ++stats_.damaged_json;
      append_json_string(o, text);
      return;
    }
    o.push_back('{');
    bool first = true;
    for (const auto field : *obj) {
      if (is_identity_key(field.key)) {
        continue;
      }
      if (!first) {
        o.push_back(',');
      }
      first = false;
      append_json_string(o, field.key);
      o.push_back(':');
      std::string_view value;
      if (field.value.get_string().get(value) == simdjson::SUCCESS) {
        append_json_string(o, value);
      } else {
        o.append(simdjson::minify(field.value));
      }
    }
    o.push_back('}');
  }

  void data(std::string& o, std::optional<std::string_view> text) {
    if (!text) {
      o.append("null");
      return;
    }
    if (!parse_object(parser_, *text)) {
      ++stats_.damaged_json;
      append_json_string(o, *text);
      return;
    }
    // The stored text, without whitespace between tokens (a stored newline would end the line).
    const std::size_t at = o.size();
    o.resize(at + text->size());
    std::size_t length = 0;
    if (simdjson::minify(text->data(), text->size(), o.data() + at, length) != simdjson::SUCCESS) {
      o.resize(at);
      append_json_string(o, *text);
      return;
    }
    o.resize(at + length);
  }

  static void key(std::string& o, std::string_view name) {
    o.append(",\"");
    o.append(name);
    o.append("\":");
  }
  static void text(std::string& o, std::string_view name, const query& q, int col) {
    key(o, name);
    if (q.is_null(col)) {
      o.append("null");
    } else {
      append_json_string(o, q.text(col));
    }
  }
  static void integer(std::string& o, std::string_view name, const query& q, int col) {
    key(o, name);
    o.append(q.is_null(col) ? std::string("null") : std::to_string(q.int64(col)));
  }
  static void time(std::string& o, std::string_view name, const query& q, int col) {
    key(o, name);
    if (q.is_null(col)) {
      o.append("null");
      return;
    }
    o.push_back('"');
    append_iso8601_ms(o, q.int64(col));
    o.push_back('"');
  }

  writer& w_;
  export_stats& stats_;
  simdjson::dom::parser parser_;
  std::string scratch_;
};

export_stats run(const export_options& options, std::ostream& out) {
  std::error_code ec;
  if (!fs::exists(options.state_path, ec)) {
    throw export_failure(export_errc::store_missing,
                         "state store " + options.state_path.string() + " does not exist" +
                             (ec ? ": " + ec.message() : std::string()));
  }
  connection c(options.state_path);
  // One snapshot for every statement below (WAL keeps it while the daemon commits).
  c.exec("BEGIN DEFERRED");
  check_schema(c, options.state_path);
  check_campaign(c, options.campaign, options.state_path);
  const auto range = row_range(c, options.campaign);

  export_stats stats;
  writer w(out);
  if (options.format == export_format::csv) {
    simdjson::dom::parser parser;
    key_columns keys;
    if (range) {
      keys = discover_keys(c, options.campaign, range->first, range->second, parser);
    }
    stats.variable_columns = keys.keys.size();
    csv_exporter csv(w, std::move(keys), stats);
    csv.header();
    if (range) {
      query q(c, row_sql(options.states));
      q.bind(1, options.campaign).bind(2, range->first).bind(3, range->second);
      while (q.step()) {
        csv.row(q);
      }
    }
  } else if (range) {
    jsonl_exporter jsonl(w, stats);
    query q(c, row_sql(options.states));
    q.bind(1, options.campaign).bind(2, range->first).bind(3, range->second);
    while (q.step()) {
      jsonl.row(q);
    }
  }
  w.flush();
  out.flush();
  if (!out) {
    throw export_failure(export_errc::write_failed, "writing the export failed");
  }
  c.exec("COMMIT");
  return stats;
}

}  // namespace

result<export_stats, export_error> export_tasks(const export_options& options, std::ostream& out) {
  try {
    return run(options, out);
  } catch (const export_failure& e) {
    return failure{export_error{e.code(), e.what(), e.known_campaigns}};
  }
}

void append_iso8601_ms(std::string& out, std::int64_t ms) {
  // Floor division, so times before 1970 land on the right day and second.
  std::int64_t days = ms / 86'400'000;
  std::int64_t rest = ms % 86'400'000;
  if (rest < 0) {
    rest += 86'400'000;
    --days;
  }
  // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date
  // Algorithms"): integer-only, exact over the whole range.
  const std::int64_t z = days + 719'468;
  const std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const std::int64_t doe = z - era * 146'097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);

  const auto digits = [&out](std::int64_t v, int width) {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v > 0);
    for (int i = n; i < width; ++i) {
      out.push_back('0');
    }
    while (n > 0) {
      out.push_back(tmp[--n]);
    }
  };
  if (year < 0) {
    out.push_back('-');
  }
  digits(year < 0 ? -year : year, 4);
  out.push_back('-');
  digits(month, 2);
  out.push_back('-');
  digits(day, 2);
  out.push_back('T');
  digits(rest / 3'600'000, 2);
  out.push_back(':');
  digits(rest / 60'000 % 60, 2);
  out.push_back(':');
  digits(rest / 1000 % 60, 2);
  out.push_back('.');
  digits(rest % 1000, 3);
  out.push_back('Z');
}

void append_csv_field(std::string& out, std::string_view text, bool outside_text) {
  const bool formula = outside_text && !text.empty() &&
                       (text[0] == '=' || text[0] == '+' || text[0] == '-' || text[0] == '@' ||
                        text[0] == '\t' || text[0] == '\r');
  const bool quote = text.find_first_of(",\"\r\n") != std::string_view::npos;
  if (quote) {
    out.push_back('"');
  }
  if (formula) {
    out.push_back('\'');
  }
  if (quote) {
    for (const char ch : text) {
      if (ch == '"') {
        out.push_back('"');
      }
      out.push_back(ch);
    }
    out.push_back('"');
  } else {
    out.append(text);
  }
}

std::string export_query_plan_for_test(const std::filesystem::path& state_path) {
  connection c(state_path);
  query q(c, "EXPLAIN QUERY PLAN " + row_sql({task_state::ended, task_state::failed}));
  std::string plan;
  while (q.step()) {
    plan.append(q.text(3));
    plan.push_back('\n');
  }
  return plan;
}

}  // namespace dialer
