#include "ctl/cli.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

#include "config/config.hpp"

namespace dialer::ctl {
namespace {

constexpr int max_count = 100000;  // burst and max_concurrent_calls, as in the daemon's config
constexpr std::chrono::milliseconds max_timeout{std::chrono::hours(1)};

struct command_entry {
  command cmd;
  std::string_view name;
};

constexpr std::array<command_entry, 11> commands = {{
    {command::status, "status"},
    {command::pause, "pause"},
    {command::resume, "resume"},
    {command::cancel, "cancel"},
    {command::set_rate, "set-rate"},
    {command::set_concurrency, "set-concurrency"},
    {command::retry, "retry"},
    {command::add_csv, "add-csv"},
    {command::export_tasks, "export"},
    {command::phone_numbers, "phone-numbers"},
    {command::check_config, "check-config"},
}};

std::optional<command> find_command(std::string_view name) {
  for (const auto& c : commands) {
    if (c.name == name) {
      return c.cmd;
    }
  }
  return std::nullopt;
}

failure<usage_error> fail(command cmd, std::string message) {
  return failure{usage_error{cmd, std::move(message)}};
}

std::string in_quotes(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

bool is_bare_number(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// A duration with a unit ("5s", "1m30s", "500ms"), or a bare number of seconds ("2", "0.5").
std::optional<std::chrono::milliseconds> parse_seconds_or_duration(std::string_view text) {
  if (is_bare_number(text)) {
    return config::parse_duration(std::string(text) + "s");
  }
  return config::parse_duration(text);
}

std::optional<int> parse_count(std::string_view text) {
  int value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value < 1 ||
      value > max_count) {
    return std::nullopt;
  }
  return value;
}

// One option as written: "--name" with its value, from "--name=value" or the next argument.
struct option_reader {
  const std::vector<std::string>& args;
  std::size_t& i;
  command cmd;
  std::string_view name;                     // before any '='
  std::optional<std::string_view> attached;  // after '='

  result<std::string, usage_error> value() {
    if (attached) {
      return std::string(*attached);
    }
    if (i + 1 >= args.size()) {
      return fail(cmd, "option " + std::string(name) + " needs a value");
    }
    return args[++i];
  }
};

// Applies a global option; false when `name` is not one.
result<bool, usage_error> apply_global(option_reader& opt, global_options& global) {
  if (opt.name == "--control") {
    auto v = opt.value();
    if (!v.ok()) {
      return failure{v.error()};
    }
    global.control = v.value();
    return true;
  }
  if (opt.name == "--token-file") {
    auto v = opt.value();
    if (!v.ok()) {
      return failure{v.error()};
    }
    if (v.value().empty()) {
      return fail(opt.cmd, "--token-file needs a file name");
    }
    global.token_file = v.value();
    return true;
  }
  if (opt.name == "--timeout") {
    auto v = opt.value();
    if (!v.ok()) {
      return failure{v.error()};
    }
    const auto d = parse_seconds_or_duration(v.value());
    if (!d || d->count() <= 0 || *d > max_timeout) {
      return fail(opt.cmd,
                  "--timeout: expected a duration above 0 and at most 1h, like 5s or "
                  "500ms, got " +
                      in_quotes(v.value()));
    }
    global.timeout = *d;
    return true;
  }
  return false;
}

bool is_help(std::string_view a) {
  return a == "--help" || a == "-h";
}

bool is_option(std::string_view a) {
  return a.size() > 1 && a.front() == '-';
}

std::string positional_names(command cmd) {
  switch (cmd) {
    case command::pause:
    case command::resume:
    case command::cancel:
    case command::export_tasks:
    case command::retry:
      return "ID";
    case command::set_rate:
      return "ID RATE (or --trunk NAME RATE)";
    case command::set_concurrency:
      return "TRUNK N";
    case command::add_csv:
      return "ID PATH";
    case command::check_config:
      return "FILE";
    default:
      return "no arguments";
  }
}

std::size_t positional_count(const invocation& inv) {
  switch (inv.cmd) {
    case command::pause:
    case command::resume:
    case command::cancel:
    case command::export_tasks:
    case command::retry:
    case command::check_config:
      return 1;
    case command::set_rate:
      return inv.trunk ? 1 : 2;
    case command::set_concurrency:
    case command::add_csv:
      return 2;
    default:
      return 0;
  }
}

// The options of one command (globals excluded). Returns false when `opt.name` is not one.
result<bool, usage_error> apply_command_option(option_reader& opt, invocation& inv) {
  const command c = inv.cmd;
  const auto take = [&](std::string& into) -> result<bool, usage_error> {
    auto v = opt.value();
    if (!v.ok()) {
      return failure{v.error()};
    }
    into = std::move(v.value());
    return true;
  };
  if (c == command::status && opt.name == "--watch") {
    std::string_view text;
    if (opt.attached) {
      text = *opt.attached;
    } else if (opt.i + 1 < opt.args.size() && !is_option(opt.args[opt.i + 1])) {
      // status takes no positional, so a word after --watch can only be its interval.
      text = opt.args[++opt.i];
    }
    if (text.empty()) {
      inv.watch = default_watch_interval;
      return true;
    }
    const auto d = parse_seconds_or_duration(text);
    if (!d || *d < min_watch_interval) {
      return fail(c,
                  "--watch: expected an interval of at least 0.1 seconds, like 2 or 0.5, "
                  "got " +
                      in_quotes(text));
    }
    inv.watch = *d;
    return true;
  }
  if ((c == command::status || c == command::phone_numbers) && opt.name == "--json" &&
      !opt.attached) {
    inv.json = true;
    return true;
  }
  if (c == command::cancel && opt.name == "--yes" && !opt.attached) {
    inv.yes = true;
    return true;
  }
  if (c == command::set_rate && opt.name == "--trunk") {
    inv.trunk = true;
    return take(inv.target);
  }
  if (c == command::set_rate && opt.name == "--burst") {
    std::string text;
    if (auto t = take(text); !t.ok()) {
      return t;
    }
    const auto n = parse_count(text);
    if (!n) {
      return fail(c, "--burst: expected a whole number from 1 to 100000, got " + in_quotes(text));
    }
    inv.burst = *n;
    return true;
  }
  if (c == command::retry && opt.name == "--state") {
    return take(inv.retry_state);
  }
  if (c == command::export_tasks && opt.name == "--format") {
    return take(inv.format);
  }
  if (c == command::export_tasks && opt.name == "--state") {
    std::string s;
    if (auto t = take(s); !t.ok()) {
      return t;
    }
    inv.states.push_back(std::move(s));
    return true;
  }
  if (c == command::export_tasks && opt.name == "--output") {
    return take(inv.output);
  }
  return false;
}

result<bool, usage_error> check_non_empty(command c, std::string_view what, std::string_view v) {
  if (v.empty()) {
    return fail(c, std::string(what) + " must not be empty");
  }
  return true;
}

// Checks the values once every argument has been read.
result<bool, usage_error> validate(invocation& inv, std::vector<std::string>& positionals) {
  const command c = inv.cmd;
  const std::size_t wanted = positional_count(inv);
  if (positionals.size() < wanted) {
    return fail(
        c, "missing arguments: " + std::string(command_name(c)) + " takes " + positional_names(c));
  }
  if (positionals.size() > wanted) {
    return fail(c, "unexpected argument " + in_quotes(positionals[wanted]) + ": " +
                       std::string(command_name(c)) + " takes " + positional_names(c));
  }
  switch (c) {
    case command::pause:
    case command::resume:
    case command::cancel:
    case command::export_tasks:
      inv.target = positionals[0];
      break;
    case command::retry:
      inv.target = positionals[0];
      if (inv.retry_state.empty()) {
        return fail(c, "retry needs --state unknown or --state failed");
      }
      if (inv.retry_state != "unknown" && inv.retry_state != "failed") {
        return fail(c, "--state: expected unknown or failed, got " + in_quotes(inv.retry_state));
      }
      break;
    case command::set_rate:
      if (!inv.trunk) {
        inv.target = positionals[0];
      }
      inv.rate = positionals.back();
      if (!config::parse_rate(inv.rate)) {
        return fail(c, is_bare_number(inv.rate)
                           ? "RATE needs a unit, like 10/s or 600/min, got " + in_quotes(inv.rate)
                           : "RATE: expected a rate above 0 like 10/s, 600/min or 0.5/s, got " +
                                 in_quotes(inv.rate));
      }
      break;
    case command::set_concurrency: {
      inv.target = positionals[0];
      const auto n = parse_count(positionals[1]);
      if (!n) {
        return fail(
            c, "N: expected a whole number from 1 to 100000, got " + in_quotes(positionals[1]));
      }
      inv.max_concurrent_calls = *n;
      break;
    }
    case command::add_csv:
      inv.target = positionals[0];
      inv.path = positionals[1];
      if (auto ok = check_non_empty(c, "PATH", inv.path); !ok.ok()) {
        return ok;
      }
      break;
    case command::check_config:
      inv.path = positionals[0];
      if (auto ok = check_non_empty(c, "FILE", inv.path); !ok.ok()) {
        return ok;
      }
      break;
    default:
      break;
  }
  if (c == command::export_tasks && !inv.format.empty() && inv.format != "csv" &&
      inv.format != "jsonl") {
    return fail(c, "--format: expected csv or jsonl, got " + in_quotes(inv.format));
  }
  const bool names_target = c != command::status && c != command::phone_numbers &&
                            c != command::check_config && c != command::none;
  if (names_target) {
    const bool is_trunk = inv.trunk || c == command::set_concurrency;
    return check_non_empty(c, is_trunk ? "TRUNK" : "ID", inv.target);
  }
  return true;
}

}  // namespace

std::string_view command_name(command cmd) {
  for (const auto& c : commands) {
    if (c.cmd == cmd) {
      return c.name;
    }
  }
  return "dialerctl";
}

result<invocation, usage_error> parse_arguments(const std::vector<std::string>& args) {
  invocation inv;
  std::size_t i = 0;
  // Global options before the command word.
  for (; i < args.size() && is_option(args[i]); ++i) {
    const std::string_view a = args[i];
    if (is_help(a)) {
      inv.help = true;
      return inv;
    }
    if (a == "--") {
      ++i;
      break;
    }
    const auto eq = a.find('=');
    option_reader opt{
        args, i, command::none, a.substr(0, eq),
        eq == std::string_view::npos ? std::nullopt : std::optional(a.substr(eq + 1))};
    auto applied = apply_global(opt, inv.global);
    if (!applied.ok()) {
      return failure{applied.error()};
    }
    if (!applied.value()) {
      return fail(command::none, "unknown option " + in_quotes(opt.name));
    }
  }
  if (i == args.size()) {
    return fail(command::none, "no command given");
  }
  const std::string_view word = args[i++];
  if (word == "help") {
    inv.help = true;
    if (i < args.size()) {
      const auto about = find_command(args[i]);
      if (!about) {
        return fail(command::none, "unknown command " + in_quotes(args[i]));
      }
      inv.cmd = *about;
    }
    return inv;
  }
  const auto cmd = find_command(word);
  if (!cmd) {
    return fail(command::none, "unknown command " + in_quotes(word));
  }
  inv.cmd = *cmd;
  // --help wins over everything else after the command word, so a half-typed line still helps.
  for (std::size_t k = i; k < args.size() && args[k] != "--"; ++k) {
    if (is_help(args[k])) {
      inv.help = true;
      return inv;
    }
  }
  std::vector<std::string> positionals;
  bool options_done = false;
  for (; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (options_done || !is_option(a)) {
      positionals.emplace_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    const auto eq = a.find('=');
    option_reader opt{
        args, i, inv.cmd, a.substr(0, eq),
        eq == std::string_view::npos ? std::nullopt : std::optional(a.substr(eq + 1))};
    auto applied = apply_command_option(opt, inv);
    if (!applied.ok()) {
      return failure{applied.error()};
    }
    if (applied.value()) {
      continue;
    }
    applied = apply_global(opt, inv.global);
    if (!applied.ok()) {
      return failure{applied.error()};
    }
    if (!applied.value()) {
      return fail(inv.cmd,
                  "unknown option " + in_quotes(a) + " for " + std::string(command_name(inv.cmd)));
    }
  }
  if (auto ok = validate(inv, positionals); !ok.ok()) {
    return failure{ok.error()};
  }
  return inv;
}

std::string usage(command cmd) {
  static constexpr std::string_view globals =
      "\n"
      "Global options (before or after the command):\n"
      "  --control URL      the control API: http://HOST:PORT (default $DIALERCTL_CONTROL,\n"
      "                     else http://127.0.0.1:9464); https is not supported\n"
      "  --token-file FILE  send the token in FILE as \"Authorization: Bearer\" (the daemon's\n"
      "                     control.token_file); the token is never printed\n"
      "  --timeout D        bound on each request, like 5s or 500ms (default 10s;\n"
      "                     phone-numbers 20s)\n"
      "  --help             help; COMMAND --help for one command\n"
      "\n"
      "Exit status: 0 done, 1 the daemon refused or failed (its error is printed), 2 usage,\n"
      "3 cannot reach the daemon, 4 unknown campaign or trunk.\n";
  std::string text;
  switch (cmd) {
    case command::none:
      text =
          "usage: dialerctl [--control URL] [--token-file FILE] [--timeout D] COMMAND [ARGS]\n"
          "\n"
          "Commands:\n"
          "  status [--watch [SECONDS]] [--json]     campaigns and trunks at a glance\n"
          "  pause ID                                start no new calls; live calls go on\n"
          "  resume ID                               start calls again\n"
          "  cancel ID [--yes]                       queued tasks become cancelled (for good)\n"
          "  set-rate ID RATE [--burst N]            a campaign's pace, like 10/s or 600/min\n"
          "  set-rate --trunk NAME RATE [--burst N]  a trunk's pace\n"
          "  set-concurrency TRUNK N                 a trunk's maximum of concurrent calls\n"
          "  retry ID --state unknown|failed         dial those tasks again\n"
          "  add-csv ID PATH                         ingest one more CSV into a campaign\n"
          "  export ID [--format csv|jsonl] [--state S] [--output FILE]\n"
          "                                          tasks and results, from the state file\n"
          "  phone-numbers [--json]                  the Agentix phone numbers and their ids\n"
          "  check-config FILE                       validate a daemon YAML (runs locally)\n";
      break;
    case command::status:
      text =
          "usage: dialerctl status [--watch [SECONDS]] [--json]\n"
          "\n"
          "Per campaign: state, progress (tasks no longer pending or dialing, of all tasks),\n"
          "counts by state, achieved and target rate, calls in flight and live, and the ETA.\n"
          "Per trunk: active calls of the capacity (+ slots reserved), rates, Retry-After holds.\n"
          "\n"
          "  --json             print the daemon's JSON answer as it is\n"
          "  --watch [SECONDS]  refresh every SECONDS (default 2, at least 0.1) until Ctrl-C;\n"
          "                     in place on a terminal, else snapshots separated by a blank line.\n"
          "                     If the daemon goes away meanwhile, the error is shown and the\n"
          "                     next refresh tries again; only the first request's failure "
          "exits.\n";
      break;
    case command::pause:
      text =
          "usage: dialerctl pause ID\n"
          "\n"
          "Pauses campaign ID: no new calls start; calls already live go on.\n";
      break;
    case command::resume:
      text =
          "usage: dialerctl resume ID\n"
          "\n"
          "Resumes campaign ID (also clears a pause the API caused by 401/403/404). A cancelled\n"
          "campaign cannot be resumed (exit 1).\n";
      break;
    case command::cancel:
      text =
          "usage: dialerctl cancel ID [--yes]\n"
          "\n"
          "Cancels campaign ID: its queued tasks become cancelled (suppressed) and are never\n"
          "dialed; live calls finish. This cannot be undone, so it is confirmed first: on a\n"
          "terminal dialerctl asks (answer y); when stdin is not a terminal (a script), --yes is\n"
          "required and its absence is a usage error (exit 2).\n"
          "\n"
          "  --yes  do not ask\n";
      break;
    case command::set_rate:
      text =
          "usage: dialerctl set-rate ID RATE [--burst N]\n"
          "       dialerctl set-rate --trunk NAME RATE [--burst N]\n"
          "\n"
          "Sets the pace of campaign ID (within its trunk's) or of trunk NAME; in force within\n"
          "a second. RATE is calls per unit, like 10/s, 600/min, 0.5/s or 3000/h.\n"
          "\n"
          "  --trunk NAME  set the trunk's pace instead of a campaign's\n"
          "  --burst N     calls that may start back to back (1 to 100000)\n";
      break;
    case command::set_concurrency:
      text =
          "usage: dialerctl set-concurrency TRUNK N\n"
          "\n"
          "Sets the trunk's max_concurrent_calls to N (1 to 100000). Lowering it hangs up no\n"
          "live call; it only stops new ones until the trunk is under the cap.\n";
      break;
    case command::retry:
      text =
          "usage: dialerctl retry ID --state unknown|failed\n"
          "\n"
          "Puts campaign ID's tasks in that state back to pending, to be dialed again as new\n"
          "attempts. `unknown` tasks may already have been called once (the API's answer was\n"
          "lost): retrying them can call a number twice.\n";
      break;
    case command::add_csv:
      text =
          "usage: dialerctl add-csv ID PATH\n"
          "\n"
          "Asks the daemon to ingest the CSV file PATH into campaign ID (same column mapping).\n"
          "PATH is made absolute here, since the daemon resolves nothing against your shell's\n"
          "folder; the daemon opens it, so it must be readable by the daemon on its machine.\n"
          "Progress shows in `dialerctl status`.\n";
      break;
    case command::export_tasks:
      text =
          "usage: dialerctl export ID [--format csv|jsonl] [--state S] [--output FILE]\n"
          "\n"
          "Writes campaign ID's tasks and call results: asks the daemon for its state file\n"
          "(status), then runs `dialerd export --state-path FILE --campaign ID ...`, which only\n"
          "reads it. So this works on the daemon's machine only. dialerd is looked for next to\n"
          "dialerctl, then in $PATH; its exit status is passed through.\n"
          "\n"
          "  --format csv|jsonl  default csv\n"
          "  --state S           only tasks in state S (repeatable, or a comma list)\n"
          "  --output FILE       write FILE (atomically) instead of stdout\n";
      break;
    case command::phone_numbers:
      text =
          "usage: dialerctl phone-numbers [--json]\n"
          "\n"
          "Lists the Agentix phone numbers (id, number, name), to find a trunk's\n"
          "phone_number_id. The daemon passes the Agentix answer through, so the request\n"
          "waits up to 20s unless --timeout says otherwise.\n"
          "\n"
          "  --json  print that answer as it is\n";
      break;
    case command::check_config:
      text =
          "usage: dialerctl check-config FILE\n"
          "\n"
          "Runs `dialerd --check-config --config FILE` (dialerd next to dialerctl, else in\n"
          "$PATH) and passes its exit status through: 0 valid, 2 invalid. No daemon needed.\n";
      break;
  }
  text.append(globals);
  return text;
}

}  // namespace dialer::ctl
