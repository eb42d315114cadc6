#pragma once
// The Agentix calls/start request and response, exactly as ../shared/agentix-api.md pins them.
// Every assumed name (max_duration_seconds, Idempotency-Key, the sessionId field) lives in
// agentix_client.cpp and nowhere else. No I/O here: the pool sends what this builds.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/http_client.hpp"

namespace dialer {

struct start_call_spec {
  std::string_view phone_number_id;
  std::string_view agent_id;
  std::string_view to_phone_number;  // E.164
  std::int64_t max_duration_seconds = 0;
  std::string_view variables_json;  // a complete JSON object (build_variables_json)
  std::string_view idempotency_key;
};

// The JSON body of POST …/calls/start.
[[nodiscard]] std::string build_start_call_body(const start_call_spec& spec);

// The whole request. `base_path` is the API base URL's path ("" or "/prefix"); `api_key` goes
// into the x-api-key header and nowhere else.
[[nodiscard]] http_request build_start_call_request(std::string_view base_path,
                                                    std::string_view api_key,
                                                    const start_call_spec& spec);

// GET …/chat/sessions/{id} (the summary and analysis) or, with `messages`, …/{id}/messages
// (the transcript): how a call with no session.ended is settled.
[[nodiscard]] http_request build_session_request(std::string_view base_path,
                                                 std::string_view api_key,
                                                 std::string_view session_id, bool messages);

// "<campaign>:<task>:<attempt>", with any byte outside visible ASCII (and '%') percent-encoded
// so that a task id from a CSV can never break the header.
[[nodiscard]] std::string make_idempotency_key(std::string_view campaign, std::string_view task_id,
                                               int attempt);

// The sessionId of a 2xx calls/start answer, read tolerantly: "sessionId", "session_id", or
// either inside a "data" object. nullopt when the body has none (or is not JSON).
[[nodiscard]] std::optional<std::string> parse_session_id(std::string_view body);

// Percent-encodes one path segment (RFC 3986 unreserved characters pass through).
[[nodiscard]] std::string encode_path_segment(std::string_view segment);

}  // namespace dialer
