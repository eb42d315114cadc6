#pragma once
// What dialerctl prints: the daemon's GET /api/v1/status and the Agentix phone-number list, read
// tolerantly (unknown fields ignored, missing fields shown as "?", wrong types treated as
// missing) and rendered as plain text. Pure: no I/O.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace dialer::ctl {

struct campaign_status {
  std::string id;
  std::string trunk;
  std::string state;  // running | paused | cancelled | complete (others shown as sent)
  std::string pause_reason;
  std::optional<std::int64_t> weight;
  std::optional<std::int64_t> rows_read;
  std::vector<std::pair<std::string, std::int64_t>> tasks;  // by state, in the daemon's order
  std::optional<double> rate_target;
  std::optional<double> rate_achieved;
  std::optional<std::int64_t> in_flight;
  std::optional<std::int64_t> live;
  std::optional<std::int64_t> eta_seconds;  // none: null (rate 0) or absent
};

struct trunk_status {
  std::string name;
  std::optional<std::int64_t> active;
  std::optional<std::int64_t> capacity;
  std::optional<std::int64_t> reserved;
  std::optional<double> rate_target;
  std::optional<double> rate_achieved;
  bool held = false;
  std::optional<std::int64_t> holds;
};

struct daemon_status {
  std::string version;
  std::optional<bool> ready;
  bool draining = false;
  std::string state_path;
  std::vector<campaign_status> campaigns;
  std::vector<trunk_status> trunks;
};

// Fails only when `json` is not a JSON object.
[[nodiscard]] result<daemon_status, std::string> parse_status(std::string_view json);

struct render_options {
  // Unicode block characters and an em dash; otherwise the output is ASCII (for a pipe, a log,
  // or a terminal whose locale is not UTF-8). Text the daemon sent is printed as sent, minus
  // control characters.
  bool unicode = false;
};

// The human view of `status`, ending with a newline. ASCII mode, for the example in
// docs/operations.md:
//   dialerd 0.3.0  ready  state /var/lib/dialerd/state.db
//
//   campaign spring: running  (trunk dubai-main, weight 3, 10000 rows read)
//     [###########.........]  59.9%  5997/10000 done  ETA 6m50s
//     rate 9.8/s (target 10/s)  in flight 3  live 40
//     pending 4000  dialing 3  started 40  ended 5900  ended_unconfirmed 2  failed 10 ...
//
//   trunk dubai-main: active 43/200 (+10 reserved)  rate 19.7/s (target 20/s)
[[nodiscard]] std::string render_status(const daemon_status& status, render_options options);

// Pieces of the view, exposed for tests.
// Done = every task not pending or dialing. `width` cells between the brackets; never full
// before done == total.
[[nodiscard]] std::string progress_bar(std::int64_t done, std::int64_t total, int width,
                                       bool unicode);
// "45s", "6m50s", "1h01m40s"; none → "—" (unicode) or "-".
[[nodiscard]] std::string format_eta(std::optional<std::int64_t> seconds, bool unicode);
// "10", "9.8", "0.25", "0.004"; none → "?".
[[nodiscard]] std::string format_rate(std::optional<double> per_second);

struct phone_number {
  std::string id;      // id | phoneNumberId | phone_number_id
  std::string number;  // phoneNumber | phone_number | number
  std::string name;    // name | label | friendlyName
};

struct phone_number_list {
  std::vector<phone_number> numbers;
  std::optional<std::int64_t> total;  // the answer's total, when it says
};

// Reads the list from `items`, `data` (an array, or an object holding `items`), or a bare
// array. Entries that are not objects are skipped. Fails when no list is found.
[[nodiscard]] result<phone_number_list, std::string> parse_phone_numbers(std::string_view json);

// An aligned table with a header row (ID, NUMBER, NAME), ending with a newline.
[[nodiscard]] std::string render_phone_numbers(const phone_number_list& list);

// Replaces control characters (ESC, CR, ...) with '?', so text from the network cannot move the
// cursor or rewrite the screen.
[[nodiscard]] std::string printable(std::string_view text);

}  // namespace dialer::ctl
