#pragma once
// The sd_notify(3) protocol, written by hand rather than linking libsystemd: a notification is
// one datagram of newline-separated VAR=value assignments sent to the AF_UNIX socket named by
// $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@'). Without $NOTIFY_SOCKET
// every call is a successful no-op, so the daemon runs the same way outside systemd.
//
// Sends never block (MSG_DONTWAIT): when the manager's queue is full the call fails with
// EAGAIN and the daemon goes on; a missed WATCHDOG=1 is repaired by the next one.
//
// Threading: from_environment() reads the environment, so call it at start-up before other
// threads exist. The notifier's socket never changes afterwards, so notify() and the helpers may
// be called from any thread. Move-only; it owns one socket.
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "core/time.hpp"

namespace dialer {

// The variables the manager sets; a missing variable is nullopt.
struct systemd_environment {
  std::optional<std::string> notify_socket;  // $NOTIFY_SOCKET
  std::optional<std::string> watchdog_usec;  // $WATCHDOG_USEC
  std::optional<std::string> watchdog_pid;   // $WATCHDOG_PID
};

class systemd_notifier {
 public:
  // Larger datagrams are cut by systemd's receive buffer (PIPE_BUF), so they are refused here.
  static constexpr std::size_t max_message_bytes = 4096;

  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID; `self` is getpid().
  static systemd_notifier from_environment();
  static systemd_notifier from(const systemd_environment& env, pid_t self);

  // A disabled notifier: every call is a successful no-op.
  systemd_notifier() = default;
  systemd_notifier(systemd_notifier&& other) noexcept;
  systemd_notifier& operator=(systemd_notifier&& other) noexcept;
  ~systemd_notifier();

  [[nodiscard]] bool enabled() const { return fd_ >= 0; }
  // Why $NOTIFY_SOCKET or $WATCHDOG_USEC was set but not used (e.g. a relative path, a vsock
  // address, a WATCHDOG_PID naming another process, no socket for the process); empty
  // otherwise. For one warning at start-up.
  [[nodiscard]] const std::string& problem() const { return problem_; }

  // The manager's watchdog timeout ($WATCHDOG_USEC), when it expects WATCHDOG=1 from this process
  // ($WATCHDOG_PID unset or equal to our pid) and there is a socket to send it to. Send
  // WATCHDOG=1 every half of it, as sd_watchdog_enabled(3) recommends.
  [[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval() const {
    return watchdog_;
  }

  // Sends `state` as it is: lines of NAME=value (NAME of A-Z, 0-9, _), one optional trailing
  // newline. A malformed state (a line without '=', an empty line, a NUL byte) is refused with
  // errc::invalid_argument and more than max_message_bytes with errc::message_size, so a value
  // with a newline cannot smuggle in another assignment. Otherwise the send's errno, or success.
  [[nodiscard]] std::error_code notify(std::string_view state) const;

  [[nodiscard]] std::error_code ready() const { return notify("READY=1"); }
  [[nodiscard]] std::error_code watchdog() const { return notify("WATCHDOG=1"); }
  [[nodiscard]] std::error_code stopping() const { return notify("STOPPING=1"); }
  // STATUS=<text> with control characters (newline included) turned into spaces and cut to fit
  // one datagram: free text from an error message must not break the line format.
  [[nodiscard]] std::error_code status(std::string_view text) const;
  // RELOADING=1 with MONOTONIC_USEC=<now> (CLOCK_MONOTONIC in microseconds, which steady_time is
  // on Linux). systemd >= 253 needs MONOTONIC_USEC to pair the reload with a Type=notify-reload
  // job; older managers (Debian 12 has 252) ignore the unknown field. Send ready() once the
  // reload is done.
  [[nodiscard]] std::error_code reloading(steady_time now) const;

 private:
  int fd_ = -1;
  std::string address_;  // sun_path bytes; a leading NUL for an abstract name
  std::optional<std::chrono::microseconds> watchdog_;
  std::string problem_;
};

}  // namespace dialer
