#pragma once
// dialerctl as a function: main() builds a context from the real process and calls run(); tests
// build one from string streams, a fake exec and a pipe they control.
//
// Threading: run() blocks on network requests (each bounded by --timeout) and, with
// `status --watch`, until interrupt_fd becomes readable. The context must outlive the call.
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dialer::ctl {

// Exit statuses (docs/operations.md).
inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;       // the daemon refused or failed; its error is printed
inline constexpr int exit_usage = 2;        // bad command line, bad --control, bad token file
inline constexpr int exit_unreachable = 3;  // refused, timed out, closed early: no answer
inline constexpr int exit_not_found = 4;    // 404: unknown campaign or trunk

struct context {
  std::ostream& out;
  std::ostream& err;
  std::istream& in;  // the answer to cancel's question
  bool stdin_is_tty = false;
  bool stdout_is_tty = false;  // watch refreshes in place; with `utf8`, block characters
  bool utf8 = false;           // the locale (LC_ALL, LC_CTYPE, LANG) names UTF-8
  // Reads an environment variable ($DIALERCTL_CONTROL, $PATH); nullopt when unset.
  std::function<std::optional<std::string>(const char* name)> getenv;
  std::filesystem::path self_exe;  // this program, to find dialerd beside it
  // Replaces the process with `program` (args[0] is its name); returns only on failure, with -1
  // and errno set. Test doubles return an exit status instead, which run() passes through.
  std::function<int(const std::string& program, const std::vector<std::string>& args)> exec;
  // Readable once the user wants to stop (a self-pipe that SIGINT/SIGTERM/SIGHUP handlers write
  // the signal number to); -1: no such pipe. Requests in progress and watch's waits end at once.
  int interrupt_fd = -1;
};

// Runs one command line (`args` = argv[1..]) and returns the exit status.
[[nodiscard]] int run(const std::vector<std::string>& args, const context& ctx);

// `dialerd` beside `self_exe` when it is an executable file there, else the first one found in
// the folders of `path_env` (a $PATH value); nullopt when neither exists.
[[nodiscard]] std::optional<std::filesystem::path> find_dialerd(
    const std::filesystem::path& self_exe, std::string_view path_env);

// True when a locale value ("en_US.UTF-8", "C.utf8") names UTF-8.
[[nodiscard]] bool locale_is_utf8(std::string_view locale);

}  // namespace dialer::ctl
