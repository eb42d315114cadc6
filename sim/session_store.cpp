#include "sim/session_store.hpp"

#include <array>

#include "sim/json_text.hpp"

namespace dialer::sim {

namespace {

constexpr std::uint64_t index_bits = 62;
constexpr std::uint64_t index_mask = (std::uint64_t{1} << index_bits) - 1;
constexpr std::uint64_t variant = std::uint64_t{1} << 63;  // RFC 4122 variant: 10xx
constexpr std::uint64_t scramble = 0x9e3779b97f4a7c15ULL;  // odd, hence invertible mod 2^62;
// arithmetic wraps mod 2^64, a multiple of 2^62, so masking afterwards is exact.

constexpr std::uint64_t inverse_of(std::uint64_t a) {
  std::uint64_t x = a;  // Newton's iteration doubles the correct low bits each step.
  for (int i = 0; i < 6; ++i) {
    x *= 2 - a * x;
  }
  return x;
}
constexpr std::uint64_t unscramble = inverse_of(scramble);
static_assert(scramble * unscramble == 1);

void append_hex(std::string& out, std::uint64_t v, int from_nibble, int count) {
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = from_nibble; i < from_nibble + count; ++i) {
    out.push_back(hex[(v >> (60 - 4 * i)) & 0xf]);
  }
}

bool parse_hex(std::string_view s, std::uint64_t& v) {
  for (const char c : s) {
    std::uint64_t d = 0;
    if (c >= '0' && c <= '9') {
      d = static_cast<std::uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<std::uint64_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<std::uint64_t>(c - 'A' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  return true;
}

std::int64_t rounded_seconds(nanoseconds d) {
  return (d.count() + 500'000'000) / 1'000'000'000;
}

}  // namespace

const session_record& session_store::add(session_record record, std::string& id_out) {
  const std::uint64_t index = records_.size();
  record.random_half = (record.random_half & ~std::uint64_t{0xf000}) | 0x4000;
  record.agent_id = arena_.store(record.agent_id);
  record.to_phone_number = arena_.store(record.to_phone_number);
  record.session_variables_json = arena_.store(record.session_variables_json);
  record.task_id = arena_.store(record.task_id);
  record.campaign_id = arena_.store(record.campaign_id);
  records_.push_back(record);
  append_id(index, record.random_half, id_out);
  return records_.back();
}

void session_store::append_id(std::uint64_t index, std::uint64_t random_half,
                              std::string& id_out) const {
  const std::uint64_t hi = random_half;
  const std::uint64_t lo = variant | ((index * scramble + salt_) & index_mask);
  // 8-4-4-4-12
  append_hex(id_out, hi, 0, 8);
  id_out.push_back('-');
  append_hex(id_out, hi, 8, 4);
  id_out.push_back('-');
  append_hex(id_out, hi, 12, 4);
  id_out.push_back('-');
  append_hex(id_out, lo, 0, 4);
  id_out.push_back('-');
  append_hex(id_out, lo, 4, 12);
}

const session_record* session_store::find(std::string_view id) const {
  if (id.size() != id_length || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-') {
    return nullptr;
  }
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  if (!parse_hex(id.substr(0, 8), hi) || !parse_hex(id.substr(9, 4), hi) ||
      !parse_hex(id.substr(14, 4), hi) || !parse_hex(id.substr(19, 4), lo) ||
      !parse_hex(id.substr(24, 12), lo)) {
    return nullptr;
  }
  if ((lo & ~index_mask) != variant) {
    return nullptr;
  }
  const std::uint64_t index = (((lo & index_mask) - salt_) * unscramble) & index_mask;
  if (index >= records_.size() || records_[index].random_half != hi) {
    return nullptr;
  }
  return &records_[index];
}

std::string_view to_string(session_event e) {
  return e == session_event::created ? "session.created" : "session.ended";
}

session_analysis analysis_of(const session_record& s) {
  if (!has_conversation(s.reason)) {
    return {"", "unresolved", "neutral", false, false};
  }
  // The fake analysis varies with the session so consumers cannot hard-code one answer.
  static constexpr std::array<std::string_view, 4> intents = {
      "renewal_interest", "not_interested", "callback_requested", "information_request"};
  static constexpr std::array<std::string_view, 3> sentiments = {"positive", "neutral", "negative"};
  const std::uint64_t pick = s.random_half >> 16;
  const std::string_view intent = intents[pick % intents.size()];
  return {intent, "resolved", sentiments[(pick >> 8) % sentiments.size()], true,
          intent == "callback_requested"};
}

std::int64_t duration_seconds(const session_record& s) {
  return rounded_seconds(s.duration);
}

namespace {

// Everything after "sessionId": shared by the session document and both webhook payloads.
void append_session_fields(std::string& out, std::string_view phone_number_id,
                           const session_record& s, bool ended) {
  out.append(",\"timestamp\":\"");
  const auto end_wall =
      s.placed_wall + std::chrono::duration_cast<system_time::duration>(s.duration);
  append_iso8601(out, ended ? end_wall : s.placed_wall);
  out.append("\",\"metadata\":{\"agentId\":");
  append_json_string(out, s.agent_id);
  out.append(",\"phoneNumberId\":");
  append_json_string(out, phone_number_id);
  out.append(",\"toPhoneNumber\":");
  append_json_string(out, s.to_phone_number);
  out.append(",\"sessionVariables\":");
  out.append(s.session_variables_json);
  out.push_back('}');
  if (ended) {
    const session_analysis a = analysis_of(s);
    out.append(",\"durationSeconds\":");
    append_int(out, duration_seconds(s));
    out.append(",\"endReason\":\"");
    out.append(to_string(s.reason));
    out.append("\",\"analysis\":{\"intent\":\"");
    out.append(a.intent);
    out.append("\",\"resolution\":\"");
    out.append(a.resolution);
    out.append("\",\"sentiment\":\"");
    out.append(a.sentiment);
    out.append("\",\"data\":{");
    if (a.has_data) {
      out.append("\"callback_requested\":\"");
      out.append(a.callback_requested ? "true" : "false");
      out.push_back('"');
    }
    out.append("}}");
  }
  out.push_back('}');
}

}  // namespace

void append_session_json(std::string& out, std::string_view session_id,
                         std::string_view phone_number_id, const session_record& s,
                         steady_time now) {
  const bool ended = s.ended(now);
  out.append("{\"sessionId\":");
  append_json_string(out, session_id);
  out.append(",\"status\":");
  out.append(ended ? "\"ended\"" : "\"active\"");
  append_session_fields(out, phone_number_id, s, ended);
}

void append_event_json(std::string& out, session_event event, std::string_view session_id,
                       std::string_view phone_number_id, const session_record& s) {
  out.append("{\"event\":\"");
  out.append(to_string(event));
  out.append("\",\"sessionId\":");
  append_json_string(out, session_id);
  append_session_fields(out, phone_number_id, s, event == session_event::ended);
}

void append_messages_json(std::string& out, const session_record& s, steady_time now) {
  struct turn {
    std::string_view role;
    std::string_view text;
    int at_quarter;  // when it was said: 0..3 quarters into the call
  };
  static constexpr std::array<turn, 4> turns = {{
      {"agent", "Hello, this is the Agentix assistant calling. Is now a good time?", 0},
      {"user", "Yes, go ahead.", 1},
      {"agent", "Thank you. I am calling about your renewal.", 2},
      {"user", "Thanks, that is all for now.", 3},
  }};
  out.append("{\"items\":[");
  bool first = true;
  for (const turn& t : turns) {
    if (!has_conversation(s.reason)) {
      break;  // nobody answered: no transcript
    }
    const nanoseconds offset = s.duration * t.at_quarter / 4;
    if (t.at_quarter > 0 && now < s.placed + offset) {
      break;
    }
    if (!first) {
      out.push_back(',');
    }
    first = false;
    out.append("{\"role\":\"");
    out.append(t.role);
    out.append("\",\"text\":");
    append_json_string(out, t.text);
    out.append(",\"ts\":\"");
    append_iso8601(out, s.placed_wall + std::chrono::duration_cast<system_time::duration>(offset));
    out.append("\"}");
  }
  out.append("]}");
}

}  // namespace dialer::sim
