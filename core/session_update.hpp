#pragma once
// Turns a parsed webhook or session document into what the store applies.
#include <string>
#include <string_view>

#include "core/state_store.hpp"
#include "core/webhook_event.hpp"

namespace dialer {

// `raw` is the body exactly as received; `source` is "webhook" or "pull".
[[nodiscard]] session_update to_session_update(session_event event, std::string raw,
                                               std::string_view source);

}  // namespace dialer
