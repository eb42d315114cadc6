#pragma once
// The Agentix API's routes and the calls/start body, as agentix-api.md pins them down. Plain
// functions of their inputs, so the tests check them without a socket. Thread-safe: the JSON
// parser is per thread.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace dialer::sim {

enum class route_kind : std::uint8_t {
  list_phone_numbers,    // GET  /api/v1/phone-numbers?size=&page=
  start_call,            // POST /api/v1/phone-numbers/{id}/calls/start
  get_session,           // GET  /api/v1/chat/sessions/{id}
  get_session_messages,  // GET  /api/v1/chat/sessions/{id}/messages
  sim_stats,             // GET  /_sim/stats (the simulator's own; not counted)
  not_found,
  method_not_allowed,
};

struct route_match {
  route_kind kind = route_kind::not_found;
  std::string_view id;     // the {id} segment, a view into the target
  std::string_view query;  // after '?', without it
  std::string_view allow;  // the Allow header of a 405
  bool internal = false;   // under /_sim/: the referee's own traffic, left out of the stats
};

[[nodiscard]] route_match match_route(std::string_view method, std::string_view target);

// The value of `name` in a query string ("size=50&page=2"), undecoded; nullopt if absent.
[[nodiscard]] std::optional<std::string_view> query_param(std::string_view query,
                                                          std::string_view name);

// True for "application/json", any case, with or without parameters ("; charset=utf-8").
[[nodiscard]] bool is_json_content_type(std::string_view content_type);
// ^\+[1-9][0-9]{7,14}$
[[nodiscard]] bool is_e164(std::string_view s);
// 8-4-4-4-12 hexadecimal digits, any case and version.
[[nodiscard]] bool is_uuid(std::string_view s);

struct call_start_body {
  std::string to_phone_number;
  std::string agent_id;
  std::int64_t max_duration_seconds = 0;
  std::string task_id;
  std::string campaign_id;
  std::string session_variables_json;  // re-serialised: {"taskId":"…",…}, in the sender's order
};

struct request_error {
  int status = 400;   // 400: not a JSON object; 422: a field is missing or invalid
  std::string field;  // the field at fault (422), e.g. "session_variables.taskId"
  std::string message;
};

// Validates a calls/start body: a JSON object with to_phone_number (E.164), agent_id (UUID),
// max_duration_seconds (positive integer) and session_variables (an object of strings holding
// taskId and campaignId). Fields are checked in that order; the first failure is reported.
// Unknown fields are ignored.
[[nodiscard]] result<call_start_body, request_error> parse_call_start(std::string_view body);

// {"error":"…"} or, when a field is named, {"error":"…","field":"…"}.
void append_error_json(std::string& out, std::string_view message, std::string_view field = {});

}  // namespace dialer::sim
