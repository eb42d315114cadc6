#pragma once
// Minimal JSON writing for the request bodies we build on the hot path. Reading uses simdjson.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dialer {

// Appends `text` as a quoted JSON string. Quotes, backslashes and control characters are
// escaped; valid UTF-8 passes through unchanged; each byte of an invalid UTF-8 sequence becomes
// U+FFFD, so the output is valid JSON whatever the input.
void append_json_string(std::string& out, std::string_view text);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
[[nodiscard]] bool is_valid_utf8(std::string_view text);

using string_pairs = std::vector<std::pair<std::string, std::string>>;

// The session_variables object for one task: taskId and campaignId first (the correlation keys),
// then the mapped CSV columns and the static values, in the given order.
[[nodiscard]] std::string build_variables_json(std::string_view task_id,
                                               std::string_view campaign_id,
                                               const string_pairs& columns,
                                               const string_pairs& statics);

}  // namespace dialer
