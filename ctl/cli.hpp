#pragma once
// dialerctl's command line: what the user asked for, checked, before anything touches the
// network. Pure: no I/O, no environment (the caller applies $DIALERCTL_CONTROL and the cwd).
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace dialer::ctl {

enum class command {
  none,  // no command word: only `dialerctl --help` is valid
  status,
  pause,
  resume,
  cancel,
  set_rate,
  set_concurrency,
  retry,
  add_csv,
  export_tasks,
  phone_numbers,
  check_config,
};

inline constexpr std::chrono::milliseconds default_timeout{10000};
inline constexpr std::chrono::milliseconds default_watch_interval{2000};
inline constexpr std::chrono::milliseconds min_watch_interval{100};

// Accepted before or after the command word.
struct global_options {
  std::optional<std::string> control;                // --control URL
  std::optional<std::string> token_file;             // --token-file FILE
  std::optional<std::chrono::milliseconds> timeout;  // --timeout D ("5s", "500ms", or seconds)
};

struct invocation {
  command cmd = command::none;
  bool help = false;  // --help / -h / `help [COMMAND]`: print usage(cmd) to stdout, exit 0
  global_options global;
  std::string target;  // the campaign ID, or the trunk NAME (set-rate --trunk, set-concurrency)
  bool trunk = false;  // set-rate --trunk NAME
  std::string rate;    // set-rate RATE as given (the daemon parses the same grammar)
  std::optional<int> burst;      // set-rate --burst N, 1..100000
  int max_concurrent_calls = 0;  // set-concurrency N, 1..100000
  std::string retry_state;       // retry --state: "unknown" or "failed"
  std::string path;   // add-csv PATH / check-config FILE, as given (not yet made absolute)
  bool json = false;  // status --json, phone-numbers --json
  std::optional<std::chrono::milliseconds> watch;  // status --watch [SECONDS]
  bool yes = false;                                // cancel --yes
  std::string format;                              // export --format csv|jsonl ("" = default)
  std::vector<std::string> states;                 // export --state S (repeatable), as given
  std::string output;                              // export --output FILE
};

struct usage_error {
  command cmd = command::none;  // whose usage to point at
  std::string message;          // e.g. "unknown option \"--frob\" for status"
};

// `args` are argv[1..]. `--opt=value` and `--opt value` are both accepted; `--` ends options.
[[nodiscard]] result<invocation, usage_error> parse_arguments(const std::vector<std::string>& args);

// The help text of one command (command::none: the global one). Ends with a newline.
[[nodiscard]] std::string usage(command cmd);

// "set-rate", "export", ...; "dialerctl" for command::none.
[[nodiscard]] std::string_view command_name(command cmd);

}  // namespace dialer::ctl
