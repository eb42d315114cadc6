#pragma once
// How a simulated call ends: agentix-api.md's endReason values and the weighted choice behind
// --end-reasons. The choice is a pure function of a session's random bits, so the session
// document and the session.ended webhook of one session always agree.
#include <cstdint>
#include <string_view>
#include <vector>

namespace dialer::sim {

enum class end_reason : std::uint8_t {
  completed,
  no_answer,
  busy,
  voicemail,
  failed,
  max_duration,  // never drawn: the call's drawn duration was cut to max_duration_seconds
};
inline constexpr std::size_t end_reason_count = 6;

[[nodiscard]] std::string_view to_string(end_reason r);
// False for no_answer, busy and failed: nobody spoke, so the analysis is empty.
[[nodiscard]] bool has_conversation(end_reason r);

struct end_reason_weight {
  end_reason reason = end_reason::completed;
  double weight = 1;
  friend bool operator==(const end_reason_weight&, const end_reason_weight&) = default;
};
using end_reason_weights = std::vector<end_reason_weight>;

// "completed=0.6,no_answer=0.2,busy=0.1,voicemail=0.05,failed=0.05": weights (not necessarily
// adding up to 1) of the drawable reasons, each named at most once. Throws config_error.
[[nodiscard]] end_reason_weights parse_end_reasons(std::string_view text);

// Picks a reason with probability weight / sum, from `bits` (a session's random draw). The bits
// are mixed first, so the choice is independent of other uses of the same bits.
[[nodiscard]] end_reason pick_end_reason(const end_reason_weights& weights, std::uint64_t bits);

}  // namespace dialer::sim
