#pragma once
// What a calls/start outcome means for the dialer: the error table of agentix-api.md, in one place.
// Pure logic; no clock, no I/O.
#include <optional>
#include <string_view>

#include "core/http_client.hpp"
#include "core/time.hpp"

namespace dialer {

enum class call_verdict {
  started,         // 2xx with a sessionId
  retry_later,     // certainly not placed (409, connect/TLS failure, nothing written): back off
  hold_trunk,      // 429/503: not placed; hold the whole trunk (Retry-After or backoff), then retry
  failed,          // permanent for this task (400, 422, other 4xx)
  pause_campaign,  // 401/403/404: configuration or credentials; stop dialing this campaign
  ambiguous,       // may have been placed: 5xx (not 503), timeout/reset after send, bad 2xx
};

struct classification {
  call_verdict verdict;
  std::string_view error_class;  // stable label: "http_429", "reset_after_send", "no_session_id"…
  // The task is also left UNKNOWN (pause_campaign on a 3xx: the server answered, but what it did
  // with the POST is not knowable).
  bool task_unknown = false;
};

// `has_session_id`: a 2xx body carried a sessionId.
[[nodiscard]] classification classify(const http_response& response, bool has_session_id);

[[nodiscard]] std::string_view to_string(call_verdict v);

// Retry-After: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850, asctime). Returns the delay
// from `now` (zero for a date in the past); nullopt when absent or unparseable.
[[nodiscard]] std::optional<nanoseconds> parse_retry_after(std::string_view value, system_time now);

}  // namespace dialer
