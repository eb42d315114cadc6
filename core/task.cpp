#include "core/task.hpp"

#include "core/state_store.hpp"

namespace dialer {
namespace {
constexpr std::array<std::string_view, task_state_count> names = {
    "pending",           "dialing", "started", "ended",
    "ended_unconfirmed", "failed",  "unknown", "suppressed"};
}

std::string_view to_string(task_state s) {
  return names.at(static_cast<std::size_t>(s));
}

std::optional<task_state> task_state_from_string(std::string_view s) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == s) {
      return static_cast<task_state>(i);
    }
  }
  return std::nullopt;
}

std::string_view to_string(update_verdict v) {
  switch (v) {
    case update_verdict::applied:
      return "applied";
    case update_verdict::duplicate:
      return "duplicate";
    case update_verdict::stale:
      return "stale";
    case update_verdict::orphan:
      return "orphan";
  }
  return "?";
}

}  // namespace dialer
