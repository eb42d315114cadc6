#include "core/systemd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

namespace dialer {
namespace {

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

// A positive decimal integer that is the whole string (no sign, no spaces), as sd-daemon reads it.
std::optional<std::uint64_t> parse_positive(std::string_view s, std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value == 0 || value > max) {
    return std::nullopt;
  }
  return value;
}

void add_problem(std::string& problems, std::string_view what) {
  if (!problems.empty()) {
    problems += "; ";
  }
  problems += what;
}

bool valid_state(std::string_view state) {
  if (state.empty() || state.find('\0') != std::string_view::npos) {
    return false;
  }
  if (state.back() == '\n') {
    state.remove_suffix(1);
  }
  while (true) {
    const std::size_t end = state.find('\n');
    const std::string_view line = state.substr(0, end);
    const std::size_t equals = line.find('=');
    if (equals == 0 || equals == std::string_view::npos) {
      return false;
    }
    for (char c : line.substr(0, equals)) {
      if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
        return false;
      }
    }
    if (end == std::string_view::npos) {
      return true;
    }
    state.remove_prefix(end + 1);
  }
}

}  // namespace

systemd_notifier systemd_notifier::from_environment() {
  return from({env("NOTIFY_SOCKET"), env("WATCHDOG_USEC"), env("WATCHDOG_PID")}, getpid());
}

systemd_notifier systemd_notifier::from(const systemd_environment& e, pid_t self) {
  systemd_notifier n;
  if (!e.notify_socket) {
    if (e.watchdog_usec) {
      add_problem(n.problem_, "WATCHDOG_USEC is set but NOTIFY_SOCKET is not");
    }
    return n;
  }
  const std::string& socket_name = *e.notify_socket;
  constexpr std::size_t path_capacity = sizeof(sockaddr_un{}.sun_path);
  if (socket_name.size() >= 2 && socket_name[0] == '@') {
    n.address_ = socket_name;
    n.address_[0] = '\0';  // Linux abstract namespace: no NUL terminator, the length says it all
    if (n.address_.size() > path_capacity) {
      add_problem(n.problem_, "NOTIFY_SOCKET is too long");
      return n;
    }
  } else if (!socket_name.empty() && socket_name[0] == '/') {
    n.address_ = socket_name;
    if (n.address_.size() >= path_capacity) {
      add_problem(n.problem_, "NOTIFY_SOCKET is too long");
      return n;
    }
  } else {
    // systemd >= 254 may also pass "vsock:CID:PORT" (to VMs); this daemon runs on the host.
    add_problem(n.problem_, "NOTIFY_SOCKET is neither an absolute path nor an @abstract name");
    return n;
  }
  n.fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (n.fd_ < 0) {
    add_problem(n.problem_,
                std::string("cannot create the notify socket: ") + std::strerror(errno));
    n.address_.clear();
    return n;
  }

  if (!e.watchdog_usec) {
    return n;
  }
  const auto usec = parse_positive(
      *e.watchdog_usec, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  if (!usec) {
    add_problem(n.problem_, "WATCHDOG_USEC is not a positive integer");
    return n;
  }
  if (e.watchdog_pid) {
    const auto pid = parse_positive(*e.watchdog_pid,
                                    static_cast<std::uint64_t>(std::numeric_limits<pid_t>::max()));
    if (!pid || static_cast<pid_t>(*pid) != self) {
      // The watchdog belongs to another process of the unit (e.g. a wrapper that exec'd us
      // under a different pid): pinging it from here would hide that process's hang.
      add_problem(n.problem_, "WATCHDOG_PID does not name this process");
      return n;
    }
  }
  n.watchdog_ = std::chrono::microseconds(static_cast<std::int64_t>(*usec));
  return n;
}

systemd_notifier::systemd_notifier(systemd_notifier&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      address_(std::move(other.address_)),
      watchdog_(std::exchange(other.watchdog_, std::nullopt)),
      problem_(std::move(other.problem_)) {}

systemd_notifier& systemd_notifier::operator=(systemd_notifier&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
    address_ = std::move(other.address_);
    watchdog_ = std::exchange(other.watchdog_, std::nullopt);
    problem_ = std::move(other.problem_);
  }
  return *this;
}

systemd_notifier::~systemd_notifier() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::error_code systemd_notifier::notify(std::string_view state) const {
  if (fd_ < 0) {
    return {};
  }
  if (state.size() > max_message_bytes) {
    return std::make_error_code(std::errc::message_size);
  }
  if (!valid_state(state)) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, address_.data(), address_.size());
  // A path carries its terminating NUL (unix(7)); an abstract name is exactly its bytes.
  const std::size_t path_bytes = address_.size() + (address_[0] == '\0' ? 0 : 1);
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_bytes);
  // Sent afresh to the address each time (not connect()ed), so a manager that re-created its
  // socket (systemctl daemon-reexec) still hears us.
  const ssize_t sent = ::sendto(fd_, state.data(), state.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address), length);
  if (sent < 0) {
    return {errno, std::system_category()};
  }
  return {};
}

std::error_code systemd_notifier::status(std::string_view text) const {
  std::string message = "STATUS=";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    message += (u < 0x20 || u == 0x7F) ? ' ' : c;
  }
  if (message.size() > max_message_bytes) {
    std::size_t cut = max_message_bytes;
    // Not inside a UTF-8 sequence: back up over continuation bytes to the start of a character.
    while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    message.resize(cut);
  }
  return notify(message);
}

std::error_code systemd_notifier::reloading(steady_time now) const {
  const auto usec =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

}  // namespace dialer
