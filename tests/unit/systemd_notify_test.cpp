#include "core/systemd_notify.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dialer {
namespace {

using std::chrono::microseconds;

// A stand-in for systemd's notify socket: an AF_UNIX datagram socket bound to a path in a fresh
// temporary directory, or to an abstract name.
class fake_manager {
 public:
  static fake_manager at_path() {
    std::string dir_template = ::testing::TempDir() + "/sdnotifyXXXXXX";
    const char* dir = ::mkdtemp(dir_template.data());
    EXPECT_NE(dir, nullptr) << std::strerror(errno);
    fake_manager m;
    m.dir_ = dir_template;
    m.name_ = dir_template + "/notify";
    m.bind(m.name_);
    return m;
  }
  static fake_manager abstract() {
    static int serial = 0;
    fake_manager m;
    m.name_ = "@dialerd-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(++serial);
    std::string address = m.name_;
    address[0] = '\0';
    m.bind(address);
    return m;
  }

  fake_manager(fake_manager&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), name_(std::move(o.name_)), dir_(std::move(o.dir_)) {}
  ~fake_manager() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    if (!dir_.empty()) {
      ::unlink(name_.c_str());
      ::rmdir(dir_.c_str());
    }
  }

  // The value $NOTIFY_SOCKET would hold.
  [[nodiscard]] const std::string& name() const { return name_; }

  // Every datagram queued so far, oldest first.
  [[nodiscard]] std::vector<std::string> drain() const {
    std::vector<std::string> messages;
    char buffer[8192];
    while (true) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n < 0) {
        EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
        return messages;
      }
      messages.emplace_back(buffer, static_cast<std::size_t>(n));
    }
  }

 private:
  fake_manager() = default;
  void bind(const std::string& address) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    ASSERT_LT(address.size(), sizeof sa.sun_path);
    std::memcpy(sa.sun_path, address.data(), address.size());
    const bool abstract = address[0] == '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() +
                                               (abstract ? 0 : 1));
    ASSERT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&sa), length), 0)
        << address << ": " << std::strerror(errno);
  }

  int fd_ = -1;
  std::string name_;
  std::string dir_;
};

systemd_environment socket_only(const std::string& name) {
  systemd_environment e;
  e.notify_socket = name;
  return e;
}

steady_time at(std::chrono::nanoseconds since_epoch) {
  return steady_time(since_epoch);
}

TEST(SystemdNotify, PathSocketReceivesExactlyTheMessagesInOrder) {
  fake_manager manager = fake_manager::at_path();
  const systemd_notifier n = systemd_notifier::from(socket_only(manager.name()), ::getpid());
  ASSERT_TRUE(n.enabled());
  EXPECT_EQ(n.problem(), "");
  EXPECT_FALSE(n.watchdog_interval());

  EXPECT_FALSE(n.ready());
  EXPECT_FALSE(n.status("dialing 3 campaigns"));
  EXPECT_FALSE(n.watchdog());
  EXPECT_FALSE(n.reloading(at(std::chrono::nanoseconds(123'456'789'999))));
  EXPECT_FALSE(n.ready());
  EXPECT_FALSE(n.stopping());
  EXPECT_FALSE(n.notify("STATUS=draining\nSTOPPING=1\n"));
  EXPECT_EQ(manager.drain(),
            (std::vector<std::string>{"READY=1", "STATUS=dialing 3 campaigns", "WATCHDOG=1",
                                      "RELOADING=1\nMONOTONIC_USEC=123456789", "READY=1",
                                      "STOPPING=1", "STATUS=draining\nSTOPPING=1\n"}));
}

TEST(SystemdNotify, AbstractSocketReceivesExactlyTheMessagesInOrder) {
  fake_manager manager = fake_manager::abstract();
  ASSERT_EQ(manager.name()[0], '@');
  const systemd_notifier n = systemd_notifier::from(socket_only(manager.name()), ::getpid());
  ASSERT_TRUE(n.enabled());
  EXPECT_FALSE(n.ready());
  EXPECT_FALSE(n.watchdog());
  EXPECT_FALSE(n.stopping());
  EXPECT_EQ(manager.drain(), (std::vector<std::string>{"READY=1", "WATCHDOG=1", "STOPPING=1"}));
}

// Restores the three variables when the test ends, whatever they were (ctest may itself run
// under a systemd unit).
class scoped_environment {
 public:
  scoped_environment() {
    for (const char* name : names_) {
      const char* v = std::getenv(name);
      saved_.push_back(v != nullptr ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
  }
  ~scoped_environment() {
    for (std::size_t i = 0; i < saved_.size(); ++i) {
      if (saved_[i]) {
        ::setenv(names_[i], saved_[i]->c_str(), 1);
      } else {
        ::unsetenv(names_[i]);
      }
    }
  }

 private:
  static constexpr const char* names_[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"};
  std::vector<std::optional<std::string>> saved_;
};

TEST(SystemdNotify, FromEnvironment) {
  const scoped_environment restore;
  fake_manager manager = fake_manager::at_path();
  ::setenv("NOTIFY_SOCKET", manager.name().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  const systemd_notifier n = systemd_notifier::from_environment();
  ASSERT_TRUE(n.enabled());
  EXPECT_EQ(n.watchdog_interval(), microseconds(2'000'000));
  EXPECT_FALSE(n.ready());
  EXPECT_EQ(manager.drain(), std::vector<std::string>{"READY=1"});
}

TEST(SystemdNotify, DisabledWithoutTheVariable) {
  const scoped_environment restore;
  const systemd_notifier n = systemd_notifier::from_environment();
  EXPECT_FALSE(n.enabled());
  EXPECT_EQ(n.problem(), "");
  EXPECT_FALSE(n.watchdog_interval());
  // Successful no-ops, even for a state that would be refused when enabled.
  EXPECT_FALSE(n.ready());
  EXPECT_FALSE(n.status("x\ny"));
  EXPECT_FALSE(n.notify("not an assignment"));

  const systemd_notifier d;
  EXPECT_FALSE(d.enabled());
  EXPECT_FALSE(d.watchdog());
}

TEST(SystemdNotify, WatchdogWithoutSocketIsUnusable) {
  systemd_environment e;
  e.watchdog_usec = "1000000";
  const systemd_notifier n = systemd_notifier::from(e, ::getpid());
  EXPECT_FALSE(n.enabled());
  EXPECT_FALSE(n.watchdog_interval());
  EXPECT_NE(n.problem().find("NOTIFY_SOCKET is not"), std::string::npos) << n.problem();
}

TEST(SystemdNotify, WatchdogUsecParsing) {
  const auto interval = [](const char* usec) {
    systemd_environment e = socket_only("/run/systemd/notify");  // never sent to
    e.watchdog_usec = usec;
    const systemd_notifier n = systemd_notifier::from(e, ::getpid());
    EXPECT_TRUE(n.enabled());
    EXPECT_EQ(n.problem().empty(), n.watchdog_interval().has_value()) << usec;
    return n.watchdog_interval();
  };
  EXPECT_EQ(interval("5000000"), microseconds(5'000'000));
  EXPECT_EQ(interval("1"), microseconds(1));
  EXPECT_EQ(interval("9223372036854775807"), microseconds(9'223'372'036'854'775'807));
  for (const char* bad : {"", "0", "-5", "+5", " 5", "5 ", "12x", "0x10", "1.5",
                          "9223372036854775808", "99999999999999999999999"}) {
    EXPECT_FALSE(interval(bad)) << '"' << bad << '"';
  }
}

TEST(SystemdNotify, WatchdogPidMustBeThisProcess) {
  const auto interval = [](std::optional<std::string> pid) {
    systemd_environment e = socket_only("/run/systemd/notify");
    e.watchdog_usec = "3000000";
    e.watchdog_pid = std::move(pid);
    return systemd_notifier::from(e, 4242).watchdog_interval();
  };
  EXPECT_EQ(interval(std::nullopt), microseconds(3'000'000));
  EXPECT_EQ(interval("4242"), microseconds(3'000'000));
  EXPECT_FALSE(interval("4243"));
  EXPECT_FALSE(interval("1"));
  EXPECT_FALSE(interval(""));
  EXPECT_FALSE(interval("4242x"));
  EXPECT_FALSE(interval("-4242"));

  systemd_environment e = socket_only("/run/systemd/notify");
  e.watchdog_usec = "3000000";
  e.watchdog_pid = "4243";
  const systemd_notifier n = systemd_notifier::from(e, 4242);
  EXPECT_TRUE(n.enabled());  // notifications still go; only the watchdog is someone else's
  EXPECT_NE(n.problem().find("WATCHDOG_PID"), std::string::npos) << n.problem();
}

TEST(SystemdNotify, UnusableSocketNamesDisable) {
  for (const std::string& bad :
       {std::string(""), std::string("@"), std::string("relative/notify"),
        std::string("vsock:2:1234"), "/" + std::string(200, 'a'), "@" + std::string(200, 'a')}) {
    const systemd_notifier n = systemd_notifier::from(socket_only(bad), ::getpid());
    EXPECT_FALSE(n.enabled()) << bad;
    EXPECT_NE(n.problem(), "") << bad;
    EXPECT_FALSE(n.ready()) << bad;
  }
}

TEST(SystemdNotify, StatusWithNewlineIsSanitized) {
  fake_manager manager = fake_manager::at_path();
  const systemd_notifier n = systemd_notifier::from(socket_only(manager.name()), ::getpid());
  EXPECT_FALSE(n.status("line one\nREADY=1\r\tend"));
  EXPECT_EQ(manager.drain(), std::vector<std::string>{"STATUS=line one READY=1  end"});
}

TEST(SystemdNotify, MalformedStatesAreRefusedAndNotSent) {
  fake_manager manager = fake_manager::at_path();
  const systemd_notifier n = systemd_notifier::from(socket_only(manager.name()), ::getpid());
  const auto invalid = std::make_error_code(std::errc::invalid_argument);
  EXPECT_EQ(n.notify("STATUS=a\nb"), invalid);
  EXPECT_EQ(n.notify(""), invalid);
  EXPECT_EQ(n.notify("\n"), invalid);
  EXPECT_EQ(n.notify("READY=1\n\n"), invalid);
  EXPECT_EQ(n.notify("READY=1\n\nSTATUS=x"), invalid);
  EXPECT_EQ(n.notify("=1"), invalid);
  EXPECT_EQ(n.notify("ready=1"), invalid);
  EXPECT_EQ(n.notify("STATUS x=1"), invalid);
  EXPECT_EQ(n.notify(std::string("STATUS=a\0b", 10)), invalid);
  const std::string huge = "STATUS=" + std::string(systemd_notifier::max_message_bytes, 'x');
  EXPECT_EQ(n.notify(huge), std::make_error_code(std::errc::message_size));
  EXPECT_EQ(manager.drain(), std::vector<std::string>{});

  // Values may hold '=' and spaces.
  EXPECT_FALSE(n.notify("STATUS=a=b c"));
  EXPECT_EQ(manager.drain(), std::vector<std::string>{"STATUS=a=b c"});
}

TEST(SystemdNotify, LongStatusIsCutAtACharacterBoundary) {
  fake_manager manager = fake_manager::at_path();
  const systemd_notifier n = systemd_notifier::from(socket_only(manager.name()), ::getpid());
  std::string text;
  for (int i = 0; i < 5000; ++i) {
    text += "\xC3\xA9";  // é, two bytes
  }
  EXPECT_FALSE(n.status(text));
  const std::vector<std::string> got = manager.drain();
  ASSERT_EQ(got.size(), 1u);
  // 4096 - 7 bytes of "STATUS=" leaves 4089: 2044 whole characters, not half of the 2045th.
  EXPECT_EQ(got[0], "STATUS=" + text.substr(0, 2 * 2044));
}

TEST(SystemdNotify, NeverBlocksOnAFullQueue) {
  fake_manager manager = fake_manager::at_path();
  const systemd_notifier n = systemd_notifier::from(socket_only(manager.name()), ::getpid());
  // The manager never reads: the kernel queues a few datagrams (net.unix.max_dgram_qlen, 10 by
  // default) and then a blocking send would wait. Ours must fail at once instead.
  std::error_code ec;
  int sent = 0;
  while (sent < 100000 && !(ec = n.watchdog())) {
    ++sent;
  }
  ASSERT_TRUE(ec) << "the queue never filled after " << sent << " datagrams";
  EXPECT_TRUE(ec == std::errc::resource_unavailable_try_again ||
              ec == std::errc::operation_would_block)
      << ec.message();
  EXPECT_GT(sent, 0);
  EXPECT_EQ(manager.drain().size(), static_cast<std::size_t>(sent));
  EXPECT_FALSE(n.watchdog());  // room again
}

TEST(SystemdNotify, NoManagerListeningIsAnError) {
  fake_manager manager = fake_manager::at_path();
  const std::string gone = manager.name() + "-gone";
  const systemd_notifier n = systemd_notifier::from(socket_only(gone), ::getpid());
  ASSERT_TRUE(n.enabled());
  EXPECT_EQ(n.ready(), std::error_code(ENOENT, std::system_category()));
}

TEST(SystemdNotify, MoveKeepsTheSocket) {
  fake_manager manager = fake_manager::abstract();
  systemd_notifier a = systemd_notifier::from(socket_only(manager.name()), ::getpid());
  systemd_notifier b = std::move(a);
  EXPECT_FALSE(a.enabled());  // NOLINT(bugprone-use-after-move): moved-from is disabled
  EXPECT_FALSE(a.ready());
  ASSERT_TRUE(b.enabled());
  systemd_notifier c;
  c = std::move(b);
  EXPECT_FALSE(c.ready());
  EXPECT_EQ(manager.drain(), std::vector<std::string>{"READY=1"});
}

}  // namespace
}  // namespace dialer
