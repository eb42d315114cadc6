#pragma once
// The task model shared by the store, the scheduler and the daemon. The lifecycle and its
// invariants are in core/task_lifecycle.md.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dialer {

enum class task_state : std::uint8_t {
  pending = 0,            // waiting to be dialed (possibly not before `not_before`)
  dialing = 1,            // durably claimed; the request may be on the wire
  started = 2,            // 2xx with a sessionId
  ended = 3,              // session.ended recorded (terminal)
  ended_unconfirmed = 4,  // no session.ended by max_duration + grace (slot freed)
  failed = 5,             // permanent error or attempts exhausted (terminal)
  unknown = 6,            // ambiguous: the call may have been placed
  suppressed = 7,         // never dialed: duplicate, invalid, DNC (terminal)
};
inline constexpr std::size_t task_state_count = 8;

[[nodiscard]] std::string_view to_string(task_state s);
[[nodiscard]] std::optional<task_state> task_state_from_string(std::string_view s);

// A task ready to dial, as the scheduler holds it in memory.
struct dial_task {
  std::int64_t row_id = 0;
  std::string task_id;
  std::string phone_e164;
  std::string variables_json;  // a complete JSON object, taskId and campaignId included
  int attempts = 0;            // requests already sent or tried for this task
  std::int64_t not_before_ms = 0;  // unix ms; 0 = now
};

using state_counts = std::array<std::int64_t, task_state_count>;

}  // namespace dialer
