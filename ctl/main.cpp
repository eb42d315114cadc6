// dialerctl: the command-line client of dialerd's control API (docs/operations.md). Everything
// but the process wiring lives in dialer_ctl (ctl/dialerctl.hpp), which the tests link.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "ctl/dialerctl.hpp"

namespace {

int interrupt_write_fd = -1;

// Async-signal-safe: one write to a non-blocking pipe; a full pipe already says "stop".
extern "C" void on_signal(int sig) {
  const int saved = errno;
  const auto byte = static_cast<unsigned char>(sig);
  (void)!::write(interrupt_write_fd, &byte, 1);
  errno = saved;
}

// SIGINT, SIGTERM and SIGHUP become readable bytes on the returned fd, so a blocking request or
// watch's wait ends at once and the terminal is restored before exit. -1 if that cannot be set up
// (the signals then keep their default action).
int install_interrupt_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return -1;
  }
  interrupt_write_fd = fds[1];
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // No SA_RESTART: a read of cancel's answer must end on Ctrl-C too. Every other blocking call
  // is a poll() on the pipe (never restarted anyway) or handles EINTR.
  sa.sa_flags = 0;
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    ::sigaction(sig, &sa, nullptr);
  }
  return fds[0];
}

std::string locale_value() {
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    if (const char* v = std::getenv(name); v != nullptr && *v != '\0') {
      return v;
    }
  }
  return {};
}

std::filesystem::path self_exe(const char* argv0) {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path(argv0) : p;
}

int exec_program(const std::string& program, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  ::execv(program.c_str(), argv.data());  // handled signals revert to their defaults
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const dialer::ctl::context ctx{
      .out = std::cout,
      .err = std::cerr,
      .in = std::cin,
      .stdin_is_tty = ::isatty(STDIN_FILENO) == 1,
      .stdout_is_tty = ::isatty(STDOUT_FILENO) == 1,
      .utf8 = dialer::ctl::locale_is_utf8(locale_value()),
      .getenv = [](const char* name) -> std::optional<std::string> {
        const char* v = std::getenv(name);
        return v == nullptr ? std::nullopt : std::optional<std::string>(v);
      },
      .self_exe = self_exe(argc > 0 ? argv[0] : "dialerctl"),
      .exec = exec_program,
      .interrupt_fd = install_interrupt_pipe(),
  };
  const int status = dialer::ctl::run(args, ctx);
  std::cout.flush();
  return status;
}
