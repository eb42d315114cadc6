#pragma once
// Agentix webhook bodies and session documents (../shared/agentix-api.md sections 3 and 4), read
// tolerantly. Pure functions: no I/O, no clock. Each thread parses with its own thread_local
// simdjson parser and padded buffer, so any thread may call them concurrently; results own their
// strings and hold no reference to the input. A thread keeps its parser's memory between calls
// (it grows with the largest body parsed; after a body of 1 MiB or more it is released).
//
// Every assumed field name lives in webhook_event.cpp and nowhere else.
//
// Errors are short stable reasons usable as metric labels, optionally followed by ": detail"
// (the detail names a field, never echoes a value):
//   invalid_json   not JSON, truncated, trailing bytes, or an unparsable token anywhere
//   invalid_utf8   a string is not valid UTF-8
//   too_deep       nesting deeper than 32 levels
//   not_object     the document is not a JSON object
//   no_event       webhook without a string `event` / `type`
//   no_session     neither a session id nor both taskId and campaignId
//   too_long       a session id over 128 bytes, a task or campaign id over 256 (other strings
//                  over 256 bytes are ignored as if absent: the raw body still has them)
//   bad_id         a session, task or campaign id with an ASCII control character
//   bad_transcript transcript not shaped {"items":[{"role":"…","text":"…"},…]}
//
// The whole document is validated, including fields that are ignored: the caller keeps the raw
// body, and it must be JSON.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace dialer {

enum class session_event_kind : std::uint8_t { created, ended, other };

struct session_event {
  session_event_kind kind = session_event_kind::other;
  std::string event_name;         // as sent ("session.ended"); "" for session documents
  std::string session_id;         // empty only when task_id and campaign_id are both present
  std::string task_id;            // metadata.sessionVariables.taskId; "" if absent
  std::string campaign_id;        // metadata.sessionVariables.campaignId; "" if absent
  std::int64_t timestamp_ms = 0;  // `timestamp` (RFC 3339) as unix ms; 0 if absent or unparsable
  std::optional<std::int64_t> duration_seconds;  // whole seconds, fractions truncated
  std::string end_reason;                        // as sent: "completed", "no_answer", …
  std::string intent;                            // analysis.intent; "" if absent
  std::string resolution;                        // analysis.resolution
  std::string sentiment;                         // analysis.sentiment
  std::string analysis_data_json;  // analysis.data as compact JSON object text; "" if absent
  std::string status;              // `status` as sent ("active"/"ended" in session documents)
};

// A webhook POST body. The event name comes from `event` or `type`; the session id from
// `sessionId` or `session_id`; any of the fields may instead sit in a top-level `data` object
// (one level deep; a top-level value wins). Unknown fields, and known optional fields of the
// wrong type, are ignored. durationSeconds may be a number (73.4 → 73) or a numeric string.
// kind: created for "session.created", ended for "session.ended", other for anything else.
[[nodiscard]] result<session_event, std::string> parse_session_event(std::string_view body);

// The answer to GET /api/v1/chat/sessions/{id}: the same fields without `event`; the session id
// may also be called `id`. kind = ended when status is "ended" or endReason is present, else
// created (the session is still active).
[[nodiscard]] result<session_event, std::string> parse_session_document(std::string_view body);

// The answer to GET /api/v1/chat/sessions/{id}/messages: {"items":[{"role","text","ts"},…]}.
// Every item must be an object with string `role` and `text` (other item fields are kept).
// Returns the items array as compact JSON text, which is what the store keeps.
[[nodiscard]] result<std::string, std::string> parse_transcript(std::string_view body);

// "2026-11-28T10:15:02Z", "2026-11-28T14:15:02.250+04:00" (RFC 3339: 'T', 't' or ' ' between
// date and time; any number of fraction digits, truncated to milliseconds; leap second 60 is
// read as the next second) → milliseconds since the Unix epoch. nullopt if malformed or out of
// range (years 0000–9999).
[[nodiscard]] std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);

}  // namespace dialer
