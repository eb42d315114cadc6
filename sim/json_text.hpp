#pragma once
// Small appenders that write JSON and HTTP text into a reused std::string without temporaries:
// every response and ledger line is built with these.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sim/sim_time.hpp"

namespace dialer::sim {

// Appends `s` as a quoted JSON string, escaping quotes, backslashes and control characters.
// `s` is assumed to be UTF-8 (everything we echo came through a validating JSON parser).
void append_json_string(std::string& out, std::string_view s);
void append_int(std::string& out, std::int64_t v);
// {"<status>":count,…} for the non-zero counts of an array indexed by HTTP status.
void append_status_counts(std::string& out, std::span<const std::int64_t> by_status);
// "2026-11-28T10:15:02Z" (seconds precision, UTC).
void append_iso8601(std::string& out, system_time t);
// IMF-fixdate, RFC 9110 §5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT".
void append_http_date(std::string& out, system_time t);

}  // namespace dialer::sim
