#include "daemon/export_command.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/task_export.hpp"

namespace dialer {
namespace {

namespace fs = std::filesystem;

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

constexpr std::string_view usage_text =
    "usage: dialerd export --campaign ID (--config FILE | --state-path FILE)\n"
    "                      [--format csv|jsonl] [--state S[,S...]]... [--output FILE]\n"
    "\n"
    "Writes one campaign's tasks and call results (one record per task, in row order) for the\n"
    "CRM. Reads the state store only: safe while dialerd runs.\n"
    "\n"
    "  --campaign ID      the campaign id (required)\n"
    "  --config FILE      the daemon YAML; its state_path is read\n"
    "  --state-path FILE  the state store itself (instead of --config)\n"
    "  --format F         csv (default; RFC 4180 with a header row) or jsonl (one JSON object\n"
    "                     per line)\n"
    "  --state S          only tasks in these states (repeatable, or a comma list): pending,\n"
    "                     dialing, started, ended, ended_unconfirmed, failed, unknown, suppressed\n"
    "  --output FILE      write FILE (through FILE.tmp, renamed when complete) instead of\n"
    "                     standard output; '-' is standard output\n"
    "\n"
    "CSV cells from outside the dialer (taskId, the CRM variables, detail, intent, resolution,\n"
    "sentiment, endReason, sessionId, data) that start with = + - @ TAB or CR get a leading '\n"
    "so spreadsheet tools do not run them as formulas; phone is E.164 and left as it is.\n"
    "\n"
    "Exit status: 0 written, 1 the store is missing or unreadable, the campaign is unknown, or\n"
    "writing failed, 2 bad arguments or a configuration that does not load.\n";

struct arguments {
  std::string campaign;
  std::optional<export_format> format;
  std::vector<task_state> states;
  std::string output;
  std::string config_path;
  std::string state_path;
  bool help = false;
};

struct usage_error {
  std::string message;
};

std::string state_names() {
  std::string names;
  for (std::size_t i = 0; i < task_state_count; ++i) {
    names += (i == 0 ? "" : ", ") + std::string(to_string(static_cast<task_state>(i)));
  }
  return names;
}

void add_states(std::string_view list, std::vector<task_state>& states) {
  for (;;) {
    const auto comma = list.find(',');
    const auto name = list.substr(0, comma);
    const auto state = task_state_from_string(name);
    if (!state) {
      throw usage_error{"--state: unknown state \"" + std::string(name) +
                        "\" (states: " + state_names() + ")"};
    }
    states.push_back(*state);
    if (comma == std::string_view::npos) {
      return;
    }
    list.remove_prefix(comma + 1);
  }
}

void set_once(std::string& slot, std::string_view option, std::string value) {
  if (!slot.empty()) {
    throw usage_error{std::string(option) + " given twice"};
  }
  if (value.empty()) {
    throw usage_error{std::string(option) + " needs a non-empty value"};
  }
  slot = std::move(value);
}

arguments parse(int argc, char** argv) {
  arguments args;
  for (int i = 0; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      args.help = true;
      return args;
    }
    if (!a.starts_with("--")) {
      throw usage_error{"unexpected argument \"" + std::string(a) + "\""};
    }
    // --name VALUE or --name=VALUE.
    std::string_view name = a;
    std::optional<std::string> value;
    if (const auto eq = a.find('='); eq != std::string_view::npos) {
      name = a.substr(0, eq);
      value = std::string(a.substr(eq + 1));
    }
    const auto take = [&]() -> std::string {
      if (value) {
        return *value;
      }
      if (i + 1 >= argc) {
        throw usage_error{std::string(name) + " needs a value"};
      }
      return argv[++i];
    };
    if (name == "--campaign") {
      set_once(args.campaign, name, take());
    } else if (name == "--config") {
      set_once(args.config_path, name, take());
    } else if (name == "--state-path") {
      set_once(args.state_path, name, take());
    } else if (name == "--output") {
      set_once(args.output, name, take());
    } else if (name == "--format") {
      if (args.format) {
        throw usage_error{"--format given twice"};
      }
      const std::string f = take();
      if (f == "csv") {
        args.format = export_format::csv;
      } else if (f == "jsonl") {
        args.format = export_format::jsonl;
      } else {
        throw usage_error{"--format: expected csv or jsonl, got \"" + f + "\""};
      }
    } else if (name == "--state") {
      add_states(take(), args.states);
    } else {
      throw usage_error{"unknown option \"" + std::string(a) + "\""};
    }
  }
  if (args.campaign.empty()) {
    throw usage_error{"--campaign ID is required"};
  }
  if (args.config_path.empty() == args.state_path.empty()) {
    throw usage_error{args.config_path.empty() ? "give --config FILE or --state-path FILE"
                                               : "give --config or --state-path, not both"};
  }
  return args;
}

// The export never sends a request, so the API key the YAML names need not be at hand (an
// operator's shell rarely has the service's environment): an unset variable reads as a
// placeholder. Secret file paths expand variables too, but those files must be readable: an
// export run outside the service's credentials should use --state-path (the error says so).
std::optional<std::string> env_for_export(const char* name) {
  if (auto value = config::process_env(name); value && !value->empty()) {
    return value;
  }
  return std::string("unused-by-export");
}

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec1;
  std::error_code ec2;
  return fs::weakly_canonical(a, ec1) == fs::weakly_canonical(b, ec2) && !ec1 && !ec2;
}

// Durability of the finished file before it takes the final name; a failure here only costs
// that, so it is not an error.
void sync_path(const fs::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void report(const export_error& e, std::ostream& err) {
  err << "dialerd export: " << e.message << "\n";
}

void warn_damaged(const export_stats& stats, std::ostream& err) {
  if (stats.damaged_json > 0) {
    err << "dialerd export: warning: " << stats.damaged_json
        << " row(s) had variables or analysis data that is not a JSON object; written as "
           "stored\n";
  }
}

// export_tasks reports its own failures as values; anything else it throws (out of memory) must
// still end in a message, an exit status and no temporary file left behind.
result<export_stats, export_error> export_guarded(const export_options& options,
                                                  std::ostream& out) {
  try {
    return export_tasks(options, out);
  } catch (const std::exception& e) {
    return failure{export_error{export_errc::write_failed, e.what(), {}}};
  }
}

int export_to_file(const export_options& options, const fs::path& output, std::ostream& err) {
  const fs::path tmp = output.string() + ".tmp";
  // Results hold phone numbers: readable by the owner only, from the first byte.
  if (const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); fd >= 0) {
    ::close(fd);
  }
  std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
  if (!file) {
    err << "dialerd export: cannot write " << tmp.string() << ": " << std::strerror(errno) << "\n";
    return exit_failure;
  }
  const auto written = export_guarded(options, file);
  file.close();
  std::error_code ec;
  if (!written || !file) {
    if (written) {
      err << "dialerd export: writing " << tmp.string() << " failed\n";
    } else {
      report(written.error(), err);
    }
    fs::remove(tmp, ec);
    return exit_failure;
  }
  sync_path(tmp, O_RDONLY);
  fs::rename(tmp, output, ec);
  if (ec) {
    err << "dialerd export: cannot rename " << tmp.string() << " to " << output.string() << ": "
        << ec.message() << "\n";
    fs::remove(tmp, ec);
    return exit_failure;
  }
  const fs::path dir = output.has_parent_path() ? output.parent_path() : fs::path(".");
  sync_path(dir, O_RDONLY | O_DIRECTORY);
  warn_damaged(written.value(), err);
  err << "dialerd export: " << written.value().rows << " task(s) of campaign " << options.campaign
      << " written to " << output.string() << "\n";
  return exit_ok;
}

}  // namespace

int run_export(int argc, char** argv, std::ostream& out, std::ostream& err) {
  arguments args;
  try {
    args = parse(argc, argv);
  } catch (const usage_error& e) {
    err << "dialerd export: " << e.message << "\n"
        << "run \"dialerd export --help\" for usage\n";
    return exit_usage;
  }
  if (args.help) {
    out << usage_text;
    return exit_ok;
  }

  export_options options;
  options.campaign = args.campaign;
  options.format = args.format.value_or(export_format::csv);
  options.states = args.states;
  if (!args.state_path.empty()) {
    options.state_path = args.state_path;
  } else {
    try {
      options.state_path = config::load_daemon_config(args.config_path, env_for_export).state_path;
    } catch (const std::exception& e) {
      err << "dialerd export: " << e.what() << "\n"
          << "dialerd export: the configuration must load to find state_path; or give "
             "--state-path FILE\n";
      return exit_usage;
    }
  }

  if (args.output.empty() || args.output == "-") {
    const auto written = export_guarded(options, out);
    if (!written) {
      report(written.error(), err);
      return exit_failure;
    }
    warn_damaged(written.value(), err);
    return exit_ok;
  }
  const fs::path output = args.output;
  const std::string store = options.state_path.string();
  for (const std::string& taken : {store, store + "-wal", store + "-shm", store + ".lock"}) {
    if (same_file(output, taken) || same_file(output.string() + ".tmp", taken)) {
      err << "dialerd export: --output " << output.string()
          << " would overwrite the state store's files\n";
      return exit_usage;
    }
  }
  return export_to_file(options, output, err);
}

}  // namespace dialer
