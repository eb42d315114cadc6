#include "core/webhook_event.hpp"

#include <simdjson.h>

#include <array>
#include <charconv>
#include <cstring>

#include "core/json.hpp"

namespace dialer {
namespace {

namespace od = simdjson::ondemand;

// Realistic payloads nest 4 deep; the cap bounds our recursion on untrusted input.
constexpr int max_depth = 32;
constexpr std::size_t max_session_id = 128;
constexpr std::size_t max_correlation_id = 256;
// Longer descriptive strings (end reason, analysis labels, status) are ignored, not an error:
// refusing the webhook would make the vendor redeliver it forever, and the raw body keeps them.
constexpr std::size_t max_text = 256;
// A thread's parser and buffer grow to the largest body seen; past this they are released.
constexpr std::size_t keep_buffers_below = 1 << 20;

struct outcome {
  std::string_view reason;  // empty: success
  std::string_view detail;
  [[nodiscard]] bool ok() const { return reason.empty(); }
};

constexpr outcome ok_outcome{};

outcome from_simdjson(simdjson::error_code e) {
  switch (e) {
    case simdjson::SUCCESS:
      return {};
    case simdjson::UTF8_ERROR:
      return {"invalid_utf8", {}};
    case simdjson::DEPTH_ERROR:
      return {"too_deep", {}};
    default:
      return {"invalid_json", {}};
  }
}

std::string to_error(outcome s) {
  std::string out(s.reason);
  if (!s.detail.empty()) {
    out.append(": ");
    out.append(s.detail);
  }
  return out;
}

#define DIALER_TRY_JSON(expr)   \
  do {                          \
    if (auto e_ = (expr); e_) { \
      return from_simdjson(e_); \
    }                           \
  } while (false)

#define DIALER_TRY_OUTCOME(expr)      \
  do {                                \
    if (auto s_ = (expr); !s_.ok()) { \
      return s_;                      \
    }                                 \
  } while (false)

std::string_view trim_right(std::string_view s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Reads `v` to its end, so every token in it is checked (on-demand would otherwise skip an unread
// value unchecked), and appends it compactly to `out` unless `out` is null. Strings are
// re-escaped by append_json_string; numbers keep their text as sent once simdjson accepts them.
outcome walk(od::value v, std::string* out, int depth) {
  if (depth > max_depth) {
    return {"too_deep", {}};
  }
  od::json_type type;
  DIALER_TRY_JSON(v.type().get(type));
  switch (type) {
    case od::json_type::object: {
      od::object object;
      DIALER_TRY_JSON(v.get_object().get(object));
      if (out != nullptr) {
        out->push_back('{');
      }
      bool first = true;
      for (auto field : object) {
        std::string_view key;
        DIALER_TRY_JSON(field.unescaped_key().get(key));
        od::value child;
        DIALER_TRY_JSON(field.value().get(child));
        if (out != nullptr) {
          if (!first) {
            out->push_back(',');
          }
          append_json_string(*out, key);
          out->push_back(':');
        }
        first = false;
        DIALER_TRY_OUTCOME(walk(child, out, depth + 1));
      }
      if (out != nullptr) {
        out->push_back('}');
      }
      return ok_outcome;
    }
    case od::json_type::array: {
      od::array array;
      DIALER_TRY_JSON(v.get_array().get(array));
      if (out != nullptr) {
        out->push_back('[');
      }
      bool first = true;
      for (auto element : array) {
        od::value child;
        DIALER_TRY_JSON(element.get(child));
        if (out != nullptr && !first) {
          out->push_back(',');
        }
        first = false;
        DIALER_TRY_OUTCOME(walk(child, out, depth + 1));
      }
      if (out != nullptr) {
        out->push_back(']');
      }
      return ok_outcome;
    }
    case od::json_type::string: {
      std::string_view text;
      DIALER_TRY_JSON(v.get_string().get(text));
      if (out != nullptr) {
        append_json_string(*out, text);
      }
      return ok_outcome;
    }
    case od::json_type::number: {
      const std::string_view token = v.raw_json_token();
      double ignored = 0;
      DIALER_TRY_JSON(v.get_double().get(ignored));
      if (out != nullptr) {
        out->append(trim_right(token));  // the raw token runs on to the next token
      }
      return ok_outcome;
    }
    case od::json_type::boolean: {
      bool flag = false;
      DIALER_TRY_JSON(v.get_bool().get(flag));
      if (out != nullptr) {
        out->append(flag ? "true" : "false");
      }
      return ok_outcome;
    }
    case od::json_type::null: {
      bool is_null = false;
      DIALER_TRY_JSON(v.is_null().get(is_null));
      if (!is_null) {
        return {"invalid_json", {}};
      }
      if (out != nullptr) {
        out->append("null");
      }
      return ok_outcome;
    }
  }
  return {"invalid_json", {}};
}

// What one object level contributed. Views point into the parser's string buffer and live until
// the thread's next parse.
struct fields {
  std::string_view event;
  std::string_view type;  // the event name when no `event` is present anywhere
  std::string_view session_id;
  std::string_view id;  // session documents only: a plain `id`, used when sessionId is absent
  std::string_view task_id;
  std::string_view campaign_id;
  std::string_view timestamp;
  std::string_view end_reason;
  std::string_view intent;
  std::string_view resolution;
  std::string_view sentiment;
  std::string_view status;
  std::optional<std::int64_t> duration_seconds;
  bool has_analysis_data = false;
  std::string analysis_data;
};

enum class doc_kind : std::uint8_t { webhook, session };
enum class scope : std::uint8_t { top, data, metadata, variables, analysis };

bool has_control_char(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return true;
    }
  }
  return false;
}

// Reads an identifier: a string of at most `max_len` bytes without control characters. Any
// other type is checked and ignored. The first non-empty value of a field wins.
outcome take_id(od::value v, std::string_view& slot, std::size_t max_len, std::string_view name,
                int depth) {
  od::json_type type;
  DIALER_TRY_JSON(v.type().get(type));
  if (type != od::json_type::string) {
    return walk(v, nullptr, depth);
  }
  std::string_view text;
  DIALER_TRY_JSON(v.get_string().get(text));
  if (text.size() > max_len) {
    return {"too_long", name};
  }
  if (has_control_char(text)) {
    return {"bad_id", name};
  }
  if (slot.empty()) {
    slot = text;
  }
  return ok_outcome;
}

// Reads a descriptive string; wrong types and over-long values are ignored.
outcome take_text(od::value v, std::string_view& slot, int depth) {
  od::json_type type;
  DIALER_TRY_JSON(v.type().get(type));
  if (type != od::json_type::string) {
    return walk(v, nullptr, depth);
  }
  std::string_view text;
  DIALER_TRY_JSON(v.get_string().get(text));
  if (slot.empty() && text.size() <= max_text) {
    slot = text;
  }
  return ok_outcome;
}

std::optional<std::int64_t> whole_seconds(double d) {
  // Also false for NaN. A call longer than ~31 years is not a duration we believe.
  if (!(d >= 0 && d < 1e9)) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(d);
}

// A number (73, 73.4) or a numeric string ("73"); anything else is ignored.
outcome take_duration(od::value v, std::optional<std::int64_t>& slot, int depth) {
  od::json_type type;
  DIALER_TRY_JSON(v.type().get(type));
  std::optional<std::int64_t> seconds;
  if (type == od::json_type::number) {
    double d = 0;
    DIALER_TRY_JSON(v.get_double().get(d));
    seconds = whole_seconds(d);
  } else if (type == od::json_type::string) {
    std::string_view text;
    DIALER_TRY_JSON(v.get_string().get(text));
    double d = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, d);
    if (ec == std::errc{} && ptr == end && !text.empty()) {
      seconds = whole_seconds(d);
    }
  } else {
    return walk(v, nullptr, depth);
  }
  if (!slot) {
    slot = seconds;
  }
  return ok_outcome;
}

outcome read_object(od::object object, scope where, doc_kind kind, fields& f, fields* data,
                    int depth);

// An object-valued field: read it as `where` when it is an object, else check and ignore it.
outcome take_object(od::value v, scope where, doc_kind kind, fields& f, int depth) {
  od::json_type type;
  DIALER_TRY_JSON(v.type().get(type));
  if (type != od::json_type::object) {
    return walk(v, nullptr, depth);
  }
  if (depth > max_depth) {
    return {"too_deep", {}};
  }
  od::object object;
  DIALER_TRY_JSON(v.get_object().get(object));
  return read_object(object, where, kind, f, nullptr, depth);
}

outcome take_analysis_data(od::value v, fields& f, int depth) {
  od::json_type type;
  DIALER_TRY_JSON(v.type().get(type));
  if (type != od::json_type::object || f.has_analysis_data) {
    return walk(v, nullptr, depth);
  }
  f.has_analysis_data = true;
  return walk(v, &f.analysis_data, depth);
}

// Every field name the vendor page does not pin down is chosen here (agentix-api.md, assumed
// shapes and "Tolerance"). `data` is non-null only at the top level: one level of `data` is read.
outcome read_object(od::object object, scope where, doc_kind kind, fields& f, fields* data,
                    int depth) {
  for (auto field : object) {
    std::string_view key;
    DIALER_TRY_JSON(field.unescaped_key().get(key));
    od::value v;
    DIALER_TRY_JSON(field.value().get(v));
    const int inner = depth + 1;
    outcome s = ok_outcome;
    switch (where) {
      case scope::top:
      case scope::data:
        if (key == "event" && kind == doc_kind::webhook) {
          s = take_text(v, f.event, inner);
        } else if (key == "type" && kind == doc_kind::webhook) {
          s = take_text(v, f.type, inner);
        } else if (key == "sessionId" || key == "session_id") {
          s = take_id(v, f.session_id, max_session_id, "sessionId", inner);
        } else if (key == "id" && kind == doc_kind::session) {
          s = take_id(v, f.id, max_session_id, "id", inner);
        } else if (key == "timestamp") {
          s = take_text(v, f.timestamp, inner);
        } else if (key == "durationSeconds" || key == "duration_seconds") {
          s = take_duration(v, f.duration_seconds, inner);
        } else if (key == "endReason" || key == "end_reason") {
          s = take_text(v, f.end_reason, inner);
        } else if (key == "status") {
          s = take_text(v, f.status, inner);
        } else if (key == "metadata") {
          s = take_object(v, scope::metadata, kind, f, inner);
        } else if (key == "sessionVariables" || key == "session_variables") {
          s = take_object(v, scope::variables, kind, f, inner);
        } else if (key == "analysis") {
          s = take_object(v, scope::analysis, kind, f, inner);
        } else if (key == "data" && data != nullptr) {
          od::json_type type;
          DIALER_TRY_JSON(v.type().get(type));
          if (type == od::json_type::object) {
            od::object inner_object;
            DIALER_TRY_JSON(v.get_object().get(inner_object));
            s = read_object(inner_object, scope::data, kind, *data, nullptr, inner);
          } else {
            s = walk(v, nullptr, inner);
          }
        } else {
          s = walk(v, nullptr, inner);
        }
        break;
      case scope::metadata:
        if (key == "sessionVariables" || key == "session_variables") {
          s = take_object(v, scope::variables, kind, f, inner);
        } else {
          s = walk(v, nullptr, inner);
        }
        break;
      case scope::variables:
        if (key == "taskId") {
          s = take_id(v, f.task_id, max_correlation_id, "taskId", inner);
        } else if (key == "campaignId") {
          s = take_id(v, f.campaign_id, max_correlation_id, "campaignId", inner);
        } else {
          s = walk(v, nullptr, inner);
        }
        break;
      case scope::analysis:
        if (key == "intent") {
          s = take_text(v, f.intent, inner);
        } else if (key == "resolution") {
          s = take_text(v, f.resolution, inner);
        } else if (key == "sentiment") {
          s = take_text(v, f.sentiment, inner);
        } else if (key == "data") {
          s = take_analysis_data(v, f, inner);
        } else {
          s = walk(v, nullptr, inner);
        }
        break;
    }
    DIALER_TRY_OUTCOME(s);
  }
  return ok_outcome;
}

// Fills what the top level left empty from the `data` object.
void merge_from(fields& top, fields& data) {
  for (auto member :
       {&fields::event, &fields::type, &fields::session_id, &fields::id, &fields::task_id,
        &fields::campaign_id, &fields::timestamp, &fields::end_reason, &fields::intent,
        &fields::resolution, &fields::sentiment, &fields::status}) {
    if ((top.*member).empty()) {
      top.*member = data.*member;
    }
  }
  if (!top.duration_seconds) {
    top.duration_seconds = data.duration_seconds;
  }
  if (!top.has_analysis_data && data.has_analysis_data) {
    top.has_analysis_data = true;
    top.analysis_data = std::move(data.analysis_data);
  }
}

// The thread's parser over a padded copy of `body`. The document refers to both, so it must be
// used before the thread's next call.
class thread_parse {
 public:
  explicit thread_parse(std::string_view body) : size_(body.size()) {
    if (buffer().size() < body.size() + simdjson::SIMDJSON_PADDING) {
      buffer().resize(body.size() + simdjson::SIMDJSON_PADDING);
    }
    char* data = buffer().data();
    if (!body.empty()) {
      std::memcpy(data, body.data(), body.size());
    }
    std::memset(data + body.size(), 0, simdjson::SIMDJSON_PADDING);
    error_ = parser().iterate(data, body.size(), buffer().size()).get(doc_);
  }
  ~thread_parse() {
    if (size_ >= keep_buffers_below) {
      doc_ = od::document{};
      parser() = od::parser{};
      buffer() = std::string{};
    }
  }
  thread_parse(const thread_parse&) = delete;
  thread_parse& operator=(const thread_parse&) = delete;

  // The root object, or why there is none: a valid non-object document is "not_object", anything
  // else "invalid_json".
  outcome root(od::object& object) {
    if (error_) {
      return from_simdjson(error_);
    }
    od::json_type type;
    DIALER_TRY_JSON(doc_.type().get(type));
    if (type == od::json_type::object) {
      DIALER_TRY_JSON(doc_.get_object().get(object));
      return ok_outcome;
    }
    DIALER_TRY_OUTCOME(check_non_object_root(type));
    DIALER_TRY_OUTCOME(finish());
    return {"not_object", {}};
  }
  // After the root object is read: anything but whitespace after it is an error.
  outcome finish() {
    if (doc_.current_location().error() != simdjson::OUT_OF_BOUNDS) {
      return {"invalid_json", "trailing content"};
    }
    return ok_outcome;
  }

 private:
  outcome check_non_object_root(od::json_type type) {
    switch (type) {
      case od::json_type::array: {
        od::value v;
        DIALER_TRY_JSON(doc_.get_value().get(v));
        return walk(v, nullptr, 1);
      }
      case od::json_type::string:
        return from_simdjson(doc_.get_string().error());
      case od::json_type::number:
        return from_simdjson(doc_.get_double().error());
      case od::json_type::boolean:
        return from_simdjson(doc_.get_bool().error());
      case od::json_type::null: {
        bool is_null = false;
        DIALER_TRY_JSON(doc_.is_null().get(is_null));
        return is_null ? ok_outcome : outcome{"invalid_json", {}};
      }
      case od::json_type::object:
        break;
    }
    return {"invalid_json", {}};
  }
  static od::parser& parser() {
    thread_local od::parser p;
    return p;
  }
  static std::string& buffer() {
    thread_local std::string b;
    return b;
  }

  std::size_t size_;
  simdjson::error_code error_ = simdjson::SUCCESS;
  od::document doc_;
};

// Reads the whole document into `f`, whose views live as long as `parse`.
outcome parse_root(thread_parse& parse, doc_kind kind, fields& f) {
  od::object root;
  DIALER_TRY_OUTCOME(parse.root(root));
  fields data;
  DIALER_TRY_OUTCOME(read_object(root, scope::top, kind, f, &data, 1));
  DIALER_TRY_OUTCOME(parse.finish());
  merge_from(f, data);
  return ok_outcome;
}

session_event make_event(fields& f) {
  session_event e;
  e.event_name = f.event;
  e.session_id = f.session_id.empty() ? f.id : f.session_id;
  e.task_id = f.task_id;
  e.campaign_id = f.campaign_id;
  if (!f.timestamp.empty()) {
    e.timestamp_ms = parse_rfc3339_ms(f.timestamp).value_or(0);
  }
  e.duration_seconds = f.duration_seconds;
  e.end_reason = f.end_reason;
  e.intent = f.intent;
  e.resolution = f.resolution;
  e.sentiment = f.sentiment;
  e.analysis_data_json = std::move(f.analysis_data);
  e.status = f.status;
  return e;
}

bool correlates(const fields& f) {
  return !f.session_id.empty() || !f.id.empty() || (!f.task_id.empty() && !f.campaign_id.empty());
}

}  // namespace

result<session_event, std::string> parse_session_event(std::string_view body) {
  thread_parse parse(body);
  fields f;
  if (outcome s = parse_root(parse, doc_kind::webhook, f); !s.ok()) {
    return failure{to_error(s)};
  }
  if (f.event.empty()) {
    f.event = f.type;
  }
  if (f.event.empty()) {
    return failure{std::string("no_event")};
  }
  if (!correlates(f)) {
    return failure{std::string("no_session")};
  }
  session_event e = make_event(f);
  if (e.event_name == "session.created") {
    e.kind = session_event_kind::created;
  } else if (e.event_name == "session.ended") {
    e.kind = session_event_kind::ended;
  }
  return e;
}

result<session_event, std::string> parse_session_document(std::string_view body) {
  thread_parse parse(body);
  fields f;
  if (outcome s = parse_root(parse, doc_kind::session, f); !s.ok()) {
    return failure{to_error(s)};
  }
  if (!correlates(f)) {
    return failure{std::string("no_session")};
  }
  session_event e = make_event(f);
  e.kind = e.status == "ended" || !e.end_reason.empty() ? session_event_kind::ended
                                                        : session_event_kind::created;
  return e;
}

namespace {

// One transcript item, copied compactly to `out`.
outcome copy_item(od::value v, std::string& out) {
  od::json_type type;
  DIALER_TRY_JSON(v.type().get(type));
  if (type != od::json_type::object) {
    return {"bad_transcript", "item not an object"};
  }
  od::object object;
  DIALER_TRY_JSON(v.get_object().get(object));
  out.push_back('{');
  bool first = true;
  bool has_role = false;
  bool has_text = false;
  for (auto field : object) {
    std::string_view key;
    DIALER_TRY_JSON(field.unescaped_key().get(key));
    od::value child;
    DIALER_TRY_JSON(field.value().get(child));
    const bool is_role = key == "role";
    const bool is_text = key == "text";
    if (is_role || is_text) {
      DIALER_TRY_JSON(child.type().get(type));
      if (type != od::json_type::string) {
        return {"bad_transcript", is_role ? "role not a string" : "text not a string"};
      }
      (is_role ? has_role : has_text) = true;
    }
    if (!first) {
      out.push_back(',');
    }
    first = false;
    append_json_string(out, key);
    out.push_back(':');
    DIALER_TRY_OUTCOME(walk(child, &out, 3));
  }
  out.push_back('}');
  if (!has_role || !has_text) {
    return {"bad_transcript", has_role ? "item without text" : "item without role"};
  }
  return ok_outcome;
}

outcome read_transcript(std::string_view body, std::string& out) {
  thread_parse parse(body);
  od::object root;
  DIALER_TRY_OUTCOME(parse.root(root));
  bool has_items = false;
  for (auto field : root) {
    std::string_view key;
    DIALER_TRY_JSON(field.unescaped_key().get(key));
    od::value v;
    DIALER_TRY_JSON(field.value().get(v));
    od::json_type type;
    DIALER_TRY_JSON(v.type().get(type));
    if (key != "items" || has_items) {
      DIALER_TRY_OUTCOME(walk(v, nullptr, 2));
      continue;
    }
    if (type != od::json_type::array) {
      return {"bad_transcript", "items not an array"};
    }
    has_items = true;
    od::array items;
    DIALER_TRY_JSON(v.get_array().get(items));
    out.push_back('[');
    bool first = true;
    for (auto element : items) {
      od::value item;
      DIALER_TRY_JSON(element.get(item));
      if (!first) {
        out.push_back(',');
      }
      first = false;
      DIALER_TRY_OUTCOME(copy_item(item, out));
    }
    out.push_back(']');
  }
  DIALER_TRY_OUTCOME(parse.finish());
  if (!has_items) {
    return {"bad_transcript", "no items"};
  }
  return ok_outcome;
}

}  // namespace

result<std::string, std::string> parse_transcript(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  if (outcome s = read_transcript(body, out); !s.ok()) {
    return failure{to_error(s)};
  }
  return out;
}

namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
// days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool is_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
  static constexpr std::array<int, 12> days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

// Reads exactly `n` digits at s[pos].
bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) {
    return false;
  }
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view s) {
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  // "YYYY-MM-DDTHH:MM:SS" is 19 characters.
  if (s.size() < 20 || !digits(s, 0, 4, year) || s[4] != '-' || !digits(s, 5, 2, month) ||
      s[7] != '-' || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' ||
      !digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  int millis = 0;
  if (s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (pos - start < 3) {
        millis = millis * 10 + (s[pos] - '0');
      }
      ++pos;
    }
    const std::size_t n = pos - start;
    if (n == 0) {
      return std::nullopt;
    }
    for (std::size_t i = n; i < 3; ++i) {
      millis *= 10;
    }
  }
  if (pos >= s.size()) {
    return std::nullopt;
  }
  int offset_minutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh = 0;
    int om = 0;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (s[pos] == '-' ? -1 : 1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) {
    return std::nullopt;
  }
  const std::int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t local_s = days * 86400 + hour * 3600 + minute * 60 + second;
  return (local_s - std::int64_t{offset_minutes} * 60) * 1000 + millis;
}

#undef DIALER_TRY_JSON
#undef DIALER_TRY_OUTCOME

}  // namespace dialer
