// dialerctl end to end against fake servers on 127.0.0.1: the requests each command sends, how
// answers and failures map to output and exit codes, watch mode, and the commands that run dialerd
// (with a recording exec). Every wait is bounded; the only timeout under test is 300 ms.
#include "ctl/dialerctl.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "ctl/http_client.hpp"
#include "net/http_server.hpp"

namespace dialer::ctl {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto io_limit = 5s;  // a fake server's bound on reading one request

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

struct seen_request {
  std::string method;
  std::string target;
  std::string version;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  [[nodiscard]] bool has(const std::string& name) const { return headers.count(name) != 0; }
  [[nodiscard]] std::string get(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct reply {
  std::string raw;    // written as is, in small pieces
  bool hang = false;  // never answer; hold the connection until the server stops
};

reply http(int status, std::string body, std::string extra_headers = {}) {
  return {"HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
          extra_headers + "Content-Length: " + std::to_string(body.size()) +
          "\r\nConnection: close\r\n\r\n" + body};
}

reply chunked(int status, const std::vector<std::string>& chunks) {
  std::string raw = "HTTP/1.1 " + std::to_string(status) +
                    " X\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n";
  for (const auto& c : chunks) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx", c.size());
    raw += std::string(size) + ";ext=1\r\n" + c + "\r\n";
  }
  raw += "0\r\nX-Trailer: t\r\n\r\n";
  return {raw};
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// One request per connection (dialerctl sends Connection: close). The script sees each request
// and its index, and says what to answer.
class fake_server {
 public:
  using script = std::function<reply(const seen_request&, int index)>;

  explicit fake_server(script s) : script_(std::move(s)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 16) != 0 || ::pipe2(stop_, O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::system_category(), "fake_server");
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~fake_server() {
    const char b = 1;
    (void)!::write(stop_[1], &b, 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }

  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::vector<seen_request> requests() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  // Waits for `fd` readable or the stop pipe; false on stop or after io_limit.
  bool wait_readable(int fd) const {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    const int n = ::poll(p, 2, static_cast<int>(std::chrono::milliseconds(io_limit).count()));
    return n > 0 && p[1].revents == 0;
  }

  std::optional<seen_request> read_request(int fd) const {
    std::string in;
    std::size_t head_end = std::string::npos;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      char buf[4096];
      if (!wait_readable(fd)) {
        return std::nullopt;
      }
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return std::nullopt;
      }
      in.append(buf, static_cast<std::size_t>(n));
    }
    seen_request r;
    std::istringstream head(in.substr(0, head_end));
    std::string line;
    std::getline(head, line);
    std::istringstream first(line);
    first >> r.method >> r.target >> r.version;
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      const auto colon = line.find(':');
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers[lower(line.substr(0, colon))] = value;
    }
    const std::size_t length = r.has("content-length") ? std::stoul(r.get("content-length")) : 0;
    std::string body = in.substr(head_end + 4);
    while (body.size() < length) {
      char buf[4096];
      if (!wait_readable(fd)) {
        return std::nullopt;
      }
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return std::nullopt;
      }
      body.append(buf, static_cast<std::size_t>(n));
    }
    r.body = body;
    return r;
  }

  void loop() {
    for (int index = 0;; ++index) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 && errno == EINTR) {
        --index;
        continue;
      }
      if (p[1].revents != 0) {
        return;
      }
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        --index;
        continue;
      }
      auto request = read_request(fd);
      if (request) {
        {
          std::lock_guard lock(mutex_);
          seen_.push_back(*request);
        }
        const reply r = script_(*request, index);
        if (r.hang) {
          pollfd s{stop_[0], POLLIN, 0};
          ::poll(&s, 1, -1);
        } else {
          // Small pieces, so the client meets answers split at awkward places.
          for (std::size_t at = 0; at < r.raw.size(); at += 7) {
            write_all(fd, std::string_view(r.raw).substr(at, 7));
          }
        }
      }
      ::close(fd);
    }
  }

  script script_;
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<seen_request> seen_;
};

// A port where nothing listens: bound, never listening, held for the test (so no one else takes
// it), which makes connect() fail with ECONNREFUSED at once.
class closed_port {
 public:
  closed_port() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::system_error(errno, std::system_category(), "closed_port");
    }
    port_ = ntohs(a.sin_port);
  }
  ~closed_port() { ::close(fd_); }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "dialerctl_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::system_category(), "mkdtemp");
    }
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& text,
                 fs::perms mode = fs::perms::owner_read | fs::perms::owner_write) {
    const fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    fs::permissions(p, mode);
    return p;
  }

 private:
  fs::path path_;
};

class self_pipe {
 public:
  self_pipe() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::system_error(errno, std::system_category(), "pipe2");
    }
  }
  ~self_pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  [[nodiscard]] int read_end() const { return fds_[0]; }
  void signal(int sig) const {
    const auto b = static_cast<unsigned char>(sig);
    (void)!::write(fds_[1], &b, 1);
  }

 private:
  int fds_[2] = {-1, -1};
};

// One dialerctl invocation's world.
struct cli {
  std::ostringstream out;
  std::ostringstream err;
  std::istringstream in;
  bool stdin_tty = false;
  bool stdout_tty = false;
  bool utf8 = false;
  std::map<std::string, std::string> env;
  fs::path self_exe = "/nonexistent/dialerctl";
  std::vector<std::vector<std::string>> execs;
  std::vector<std::string> exec_programs;
  int exec_status = 0;
  int interrupt_fd = -1;

  int run(const std::vector<std::string>& args) {
    const context ctx{
        .out = out,
        .err = err,
        .in = in,
        .stdin_is_tty = stdin_tty,
        .stdout_is_tty = stdout_tty,
        .utf8 = utf8,
        .getenv = [this](const char* name) -> std::optional<std::string> {
          const auto it = env.find(name);
          return it == env.end() ? std::nullopt : std::optional(it->second);
        },
        .self_exe = self_exe,
        .exec =
            [this](const std::string& program, const std::vector<std::string>& a) {
              exec_programs.push_back(program);
              execs.push_back(a);
              return exec_status;
            },
        .interrupt_fd = interrupt_fd,
    };
    return ctl::run(args, ctx);
  }
};

constexpr std::string_view doc_status =
    R"({"version": "0.3.0", "ready": true, "draining": false, "state_path": "/var/lib/dialerd/state.db",
 "campaigns": [{"id": "spring", "trunk": "dubai-main", "state": "running", "pause_reason": "",
   "weight": 3, "rows_read": 10000, "tasks": {"pending": 4000, "dialing": 3, "started": 40,
   "ended": 5900, "ended_unconfirmed": 2, "failed": 10, "unknown": 1, "suppressed": 44},
   "rate_target": 10.0, "rate_achieved": 9.8, "in_flight": 3, "live": 40, "eta_seconds": 410}],
 "trunks": [{"name": "dubai-main", "active": 43, "capacity": 200, "reserved": 10,
   "rate_target": 20.0, "rate_achieved": 19.7, "held": false, "holds": 0}]})";

constexpr std::string_view doc_status_text =
    "dialerd 0.3.0  ready  state /var/lib/dialerd/state.db\n"
    "\n"
    "campaign spring: running  (trunk dubai-main, weight 3, 10000 rows read)\n"
    "  [###########.........]   59.9%  5997/10000 done  ETA 6m50s\n"
    "  rate 9.8/s (target 10/s)  in flight 3  live 40\n"
    "  pending 4000  dialing 3  started 40  ended 5900  ended_unconfirmed 2\n"
    "  failed 10  unknown 1  suppressed 44\n"
    "\n"
    "trunk dubai-main: active 43/200 (+10 reserved)  rate 19.7/s (target 20/s)\n";

TEST(Dialerctl, StatusRendersTheDaemonAnswer) {
  fake_server server([](const seen_request&, int) { return http(200, std::string(doc_status)); });
  cli c;
  EXPECT_EQ(c.run({"--control", server.url(), "status"}), exit_ok) << c.err.str();
  EXPECT_EQ(c.out.str(), doc_status_text);
  EXPECT_EQ(c.err.str(), "");
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, "/api/v1/status");
  EXPECT_EQ(seen[0].version, "HTTP/1.1");
  EXPECT_EQ(seen[0].get("host"), server.url().substr(7));
  EXPECT_EQ(seen[0].get("connection"), "close");
  EXPECT_EQ(seen[0].get("user-agent").rfind("dialerctl", 0), 0u);
  EXPECT_EQ(seen[0].get("accept"), "application/json");
  EXPECT_FALSE(seen[0].has("authorization"));
  EXPECT_FALSE(seen[0].has("content-type"));
  EXPECT_EQ(seen[0].body, "");
}

TEST(Dialerctl, StatusJsonIsTheBodyAsSentChunked) {
  const std::string body(doc_status);
  fake_server server([&](const seen_request&, int) {
    return chunked(200, {body.substr(0, 10), body.substr(10, 200), body.substr(210)});
  });
  cli c;
  EXPECT_EQ(c.run({"status", "--json", "--control=" + server.url()}), exit_ok) << c.err.str();
  EXPECT_EQ(c.out.str(), body + "\n");
}

TEST(Dialerctl, BodyWithoutLengthEndsAtClose) {
  fake_server server([](const seen_request&, int) {
    return reply{"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" +
                 std::string(doc_status)};
  });
  cli c;
  EXPECT_EQ(c.run({"--control", server.url(), "status"}), exit_ok) << c.err.str();
  EXPECT_EQ(c.out.str(), doc_status_text);
}

TEST(Dialerctl, ControlComesFromTheEnvironmentUnlessGiven) {
  fake_server server([](const seen_request&, int) { return http(200, std::string(doc_status)); });
  closed_port nowhere;
  cli from_env;
  from_env.env["DIALERCTL_CONTROL"] = server.url() + "/base/";
  EXPECT_EQ(from_env.run({"status"}), exit_ok) << from_env.err.str();
  cli flag_wins;
  flag_wins.env["DIALERCTL_CONTROL"] = nowhere.url();
  EXPECT_EQ(flag_wins.run({"status", "--control", server.url()}), exit_ok);
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].target, "/base/api/v1/status");
  EXPECT_EQ(seen[1].target, "/api/v1/status");

  cli bad_env;
  bad_env.env["DIALERCTL_CONTROL"] = "https://127.0.0.1:9464";
  EXPECT_EQ(bad_env.run({"status"}), exit_usage);
  EXPECT_NE(bad_env.err.str().find("$DIALERCTL_CONTROL: https is not supported"), std::string::npos)
      << bad_env.err.str();
}

struct command_case {
  std::vector<std::string> args;
  std::string method;
  std::string target;
  std::string body;
  reply answer;
  std::string out;
};

TEST(Dialerctl, EachCommandSendsTheDocumentedRequestWithTheToken) {
  temp_dir dir;
  const fs::path token_file = dir.write("token", "  tok-123456789\n");
  const std::vector<command_case> cases = {
      {{"pause", "spring"},
       "POST",
       "/api/v1/campaigns/spring/pause",
       "",
       http(200, R"({"campaign": "spring", "state": "paused"})"),
       "campaign spring: paused\n"},
      {{"resume", "spring"},
       "POST",
       "/api/v1/campaigns/spring/resume",
       "",
       http(200, R"({"campaign": "spring", "state": "running"})"),
       "campaign spring: running\n"},
      {{"cancel", "spring", "--yes"},
       "POST",
       "/api/v1/campaigns/spring/cancel",
       "",
       http(200, R"({"campaign": "spring", "state": "cancelled", "cancelled_tasks": 4000})"),
       "campaign spring: cancelled (4000 queued tasks cancelled)\n"},
      {{"set-rate", "spring", "10/s", "--burst", "5"},
       "POST",
       "/api/v1/campaigns/spring/rate",
       R"({"calls_per_second": "10/s", "burst": 5})",
       http(200, "{}"),
       "campaign spring: rate 10/s, burst 5\n"},
      {{"set-rate", "--trunk", "dubai-main", "600/min"},
       "POST",
       "/api/v1/trunks/dubai-main/rate",
       R"({"calls_per_second": "600/min"})",
       http(200, "{}"),
       "trunk dubai-main: rate 600/min\n"},
      {{"set-concurrency", "dubai-main", "100"},
       "POST",
       "/api/v1/trunks/dubai-main/concurrency",
       R"({"max_concurrent_calls": 100})",
       http(200, "{}"),
       "trunk dubai-main: max_concurrent_calls 100\n"},
      {{"retry", "spring", "--state", "unknown"},
       "POST",
       "/api/v1/campaigns/spring/retry",
       R"({"state": "unknown"})",
       http(200, R"({"requeued": 12})"),
       "campaign spring: 12 unknown tasks requeued\n"},
      {{"add-csv", "spring", "/srv/crm/more.csv"},
       "POST",
       "/api/v1/campaigns/spring/csv",
       R"({"path": "/srv/crm/more.csv"})",
       http(202, R"({"accepted": true})"),
       "campaign spring: ingesting /srv/crm/more.csv (progress in `dialerctl status`)\n"},
      {{"phone-numbers"},
       "GET",
       "/api/v1/phone-numbers",
       "",
       http(200, R"({"items": [{"id": "6f1c", "phone_number": "+97145550000",
                  "label": "Dubai outbound"}], "page": 1, "size": 50, "total": 1})"),
       "ID    NUMBER        NAME\n6f1c  +97145550000  Dubai outbound\n"},
      {{"phone-numbers", "--json"},
       "GET",
       "/api/v1/phone-numbers",
       "",
       http(200, R"([{"id": "6f1c"}])"),
       "[{\"id\": \"6f1c\"}]\n"},
      {{"pause", "my camp/1"},
       "POST",
       "/api/v1/campaigns/my%20camp%2F1/pause",
       "",
       http(200, R"({"state": "paused"})"),
       "campaign my camp/1: paused\n"},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.args[0] + " " + k.args.back());
    fake_server server([&](const seen_request&, int) { return k.answer; });
    cli c;
    std::vector<std::string> args = {"--control", server.url(), "--token-file",
                                     token_file.string()};
    args.insert(args.end(), k.args.begin(), k.args.end());
    EXPECT_EQ(c.run(args), exit_ok) << c.err.str();
    EXPECT_EQ(c.out.str(), k.out);
    EXPECT_EQ(c.err.str(), "");
    const auto seen = server.requests();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].method, k.method);
    EXPECT_EQ(seen[0].target, k.target);
    EXPECT_EQ(seen[0].body, k.body);
    EXPECT_EQ(seen[0].get("authorization"), "Bearer tok-123456789");
    EXPECT_EQ(seen[0].get("content-type"), k.body.empty() ? "" : "application/json");
    if (k.method == "POST") {
      EXPECT_EQ(seen[0].get("content-length"), std::to_string(k.body.size()));
    }
    EXPECT_EQ(c.out.str().find("tok-123456789"), std::string::npos);
  }
}

TEST(Dialerctl, AddCsvMakesThePathAbsolute) {
  fake_server server([](const seen_request&, int) { return http(202, R"({"accepted": true})"); });
  cli c;
  EXPECT_EQ(c.run({"--control", server.url(), "add-csv", "spring", "../x/./more \"q\".csv"}),
            exit_ok)
      << c.err.str();
  const std::string expected = (fs::current_path() / "../x/more \"q\".csv").lexically_normal();
  ASSERT_EQ(expected.front(), '/');
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  std::string escaped;
  for (const char ch : expected) {
    if (ch == '"' || ch == '\\') {
      escaped += '\\';
    }
    escaped += ch;
  }
  EXPECT_EQ(seen[0].body, "{\"path\": \"" + escaped + "\"}");
}

TEST(Dialerctl, NotFoundExits4WithTheDaemonsText) {
  fake_server server([](const seen_request&, int) {
    return http(404, R"({"error": "unknown campaign \"nope\""})");
  });
  cli c;
  EXPECT_EQ(c.run({"--control", server.url(), "pause", "nope"}), exit_not_found);
  EXPECT_EQ(c.err.str(), "dialerctl: the daemon answered 404: unknown campaign \"nope\"\n");
  EXPECT_EQ(c.out.str(), "");
  cli trunk;
  EXPECT_EQ(trunk.run({"--control", server.url(), "set-concurrency", "nope", "3"}), exit_not_found);
}

TEST(Dialerctl, ConflictExits1WithTheDaemonsText) {
  fake_server server([](const seen_request&, int) {
    return http(409, R"({"error": "campaign spring is cancelled"})");
  });
  cli c;
  EXPECT_EQ(c.run({"--control", server.url(), "resume", "spring"}), exit_failed);
  EXPECT_EQ(c.err.str(), "dialerctl: the daemon answered 409: campaign spring is cancelled\n");
  EXPECT_EQ(c.out.str(), "");
}

TEST(Dialerctl, OtherRefusalsExit1) {
  fake_server server([](const seen_request& r, int) {
    if (r.target.find("pause") != std::string::npos) {
      return reply{"HTTP/1.1 500 Oops\r\nContent-Length: 20\r\n\r\nboom\x1b[2J\nsecond line"};
    }
    if (r.target.find("resume") != std::string::npos) {
      return http(401, R"({"error": "missing or bad token"})");
    }
    return http(503, R"({"error": "draining"})");
  });
  cli c;
  EXPECT_EQ(c.run({"--control", server.url(), "pause", "s"}), exit_failed);
  EXPECT_EQ(c.err.str(), "dialerctl: the daemon answered 500: boom?[2J\n");
  cli unauthorized;
  EXPECT_EQ(unauthorized.run({"--control", server.url(), "resume", "s"}), exit_failed);
  EXPECT_EQ(unauthorized.err.str(),
            "dialerctl: the daemon answered 401: missing or bad token (it wants a token: "
            "--token-file FILE)\n");
  cli draining;
  EXPECT_EQ(draining.run({"--control", server.url(), "status"}), exit_failed);
  EXPECT_EQ(draining.err.str(), "dialerctl: the daemon answered 503: draining\n");
}

TEST(Dialerctl, ConnectionRefusedExits3NamingTheAddress) {
  closed_port nowhere;
  cli c;
  EXPECT_EQ(c.run({"--control", nowhere.url(), "pause", "spring"}), exit_unreachable);
  const std::string where = "127.0.0.1:" + std::to_string(nowhere.port());
  EXPECT_EQ(c.err.str(), "dialerctl: cannot reach dialerd at http://" + where + ": connect to " +
                             where + ": Connection refused\n");
}

TEST(Dialerctl, ServerThatNeverAnswersTimesOutWithExit3) {
  fake_server server([](const seen_request&, int) { return reply{{}, true}; });
  cli c;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.run({"--control", server.url(), "--timeout", "300ms", "status"}), exit_unreachable);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(c.err.str().find("cannot reach dialerd at " + server.url() +
                             ": no answer within 300ms (waiting for the answer)"),
            std::string::npos)
      << c.err.str();
  // The deadline cannot pass early; the upper bound only proves --timeout was used instead of
  // the 10 s default.
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s);
  EXPECT_EQ(server.requests().size(), 1u);  // the request was read in full
}

TEST(Dialerctl, ClosedWithoutAnswerExits3BadAnswerExits1) {
  fake_server server([](const seen_request& r, int) {
    if (r.target.find("pause") != std::string::npos) {
      return reply{};  // close without a byte
    }
    if (r.target.find("resume") != std::string::npos) {
      return reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"};
    }
    return reply{"SSH-2.0-OpenSSH\r\n\r\n"};
  });
  cli closed;
  EXPECT_EQ(closed.run({"--control", server.url(), "pause", "s"}), exit_unreachable);
  EXPECT_NE(closed.err.str().find("connection closed without an answer"), std::string::npos);
  cli cut;
  EXPECT_EQ(cut.run({"--control", server.url(), "resume", "s"}), exit_unreachable);
  EXPECT_NE(cut.err.str().find("connection closed while reading the body"), std::string::npos)
      << cut.err.str();
  cli garbage;
  EXPECT_EQ(garbage.run({"--control", server.url(), "status"}), exit_failed);
  EXPECT_EQ(garbage.err.str(),
            "dialerctl: bad answer from " + server.url() + ": not an HTTP/1.x answer\n");
}

TEST(Dialerctl, StatusThatIsNotJsonExits1) {
  fake_server server([](const seen_request&, int) { return http(200, "<html>hi</html>"); });
  cli c;
  EXPECT_EQ(c.run({"--control", server.url(), "status"}), exit_failed);
  EXPECT_NE(c.err.str().find("bad status answer"), std::string::npos) << c.err.str();
}

TEST(Dialerctl, TokenNeverAppearsInAnyOutput) {
  constexpr std::string_view token = "s3cret-T0ken.value";
  temp_dir dir;
  const fs::path token_file = dir.write("token", std::string(token) + "\r\n");
  // A hostile daemon that echoes the Authorization field into every answer it can.
  fake_server server([](const seen_request& r, int) {
    const std::string echo = r.get("authorization");
    if (r.target == "/api/v1/status") {
      return http(200, R"({"version": ")" + echo + R"(", "campaigns": [{"id": ")" + echo +
                           R"(", "state": "paused", "pause_reason": ")" + echo + R"("}]})");
    }
    if (r.target == "/api/v1/phone-numbers") {
      return http(200, R"({"items": [{"id": ")" + echo + R"(", "label": ")" + echo + R"("}]})");
    }
    if (r.target.find("pause") != std::string::npos) {
      return http(401, R"({"error": "bad token )" + echo + R"("})");
    }
    if (r.target.find("retry") != std::string::npos) {
      return http(200, R"({"requeued": ")" + echo + R"("})");
    }
    return reply{"HTTP/1.1 409 X\r\nContent-Length: " + std::to_string(echo.size()) + "\r\n\r\n" +
                 echo};
  });
  const std::vector<std::vector<std::string>> commands = {
      {"status"},
      {"status", "--json"},
      {"phone-numbers"},
      {"phone-numbers", "--json"},
      {"pause", "s"},
      {"retry", "s", "--state", "failed"},
      {"set-rate", "s", "1/s"},
      {"cancel", "s", "--yes"},
  };
  for (const auto& command : commands) {
    cli c;
    std::vector<std::string> args = {"--token-file", token_file.string(), "--control",
                                     server.url()};
    args.insert(args.end(), command.begin(), command.end());
    (void)c.run(args);
    const std::string all = c.out.str() + c.err.str();
    EXPECT_EQ(all.find(token), std::string::npos) << command[0] << ": " << all;
    EXPECT_NE(all.find("[token]"), std::string::npos) << command[0] << ": " << all;
  }
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), commands.size());
  for (const auto& r : seen) {
    EXPECT_EQ(r.get("authorization"), "Bearer " + std::string(token));
  }

  // A token file the client refuses is not quoted back either.
  const fs::path two_words = dir.write("two", "s3cret one\n");
  cli refused;
  EXPECT_EQ(refused.run({"--token-file", two_words.string(), "--control", server.url(), "status"}),
            exit_usage);
  EXPECT_EQ(refused.err.str().find("s3cret"), std::string::npos) << refused.err.str();
  EXPECT_NE(refused.err.str().find("spaces or control characters"), std::string::npos);
  cli missing;
  EXPECT_EQ(missing.run({"--token-file", (dir.path() / "absent").string(), "status"}), exit_usage);
  EXPECT_NE(missing.err.str().find("cannot read token file"), std::string::npos);
  cli empty;
  EXPECT_EQ(empty.run({"--token-file", dir.write("empty", "\n\n").string(), "status"}), exit_usage);
  EXPECT_NE(empty.err.str().find("is empty"), std::string::npos);
  EXPECT_EQ(server.requests().size(), commands.size());  // none of these sent anything
}

TEST(Dialerctl, CancelIsConfirmed) {
  fake_server server([](const seen_request&, int) {
    return http(200, R"({"campaign": "spring", "state": "cancelled", "cancelled_tasks": 1})");
  });
  cli script;  // stdin is not a terminal and no --yes: refused before any request
  EXPECT_EQ(script.run({"--control", server.url(), "cancel", "spring"}), exit_usage);
  EXPECT_NE(script.err.str().find("add --yes"), std::string::npos);

  cli declined;
  declined.stdin_tty = true;
  declined.in.str("n\n");
  EXPECT_EQ(declined.run({"--control", server.url(), "cancel", "spring"}), exit_failed);
  EXPECT_NE(declined.err.str().find("Cancel campaign spring? "), std::string::npos);
  EXPECT_NE(declined.err.str().find("not cancelled"), std::string::npos);

  cli closed_stdin;
  closed_stdin.stdin_tty = true;
  EXPECT_EQ(closed_stdin.run({"--control", server.url(), "cancel", "spring"}), exit_failed);
  EXPECT_TRUE(server.requests().empty());

  cli accepted;
  accepted.stdin_tty = true;
  accepted.in.str("y\n");
  EXPECT_EQ(accepted.run({"--control", server.url(), "cancel", "spring"}), exit_ok);
  EXPECT_EQ(accepted.out.str(), "campaign spring: cancelled (1 queued tasks cancelled)\n");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].target, "/api/v1/campaigns/spring/cancel");
}

TEST(Dialerctl, ExportRunsDialerdOnTheDaemonsStateFile) {
  temp_dir dir;
  const fs::path state = dir.write("state.db", "");
  const fs::path dialerd = dir.write("bin/dialerd", "#!/bin/sh\n", fs::perms::owner_all);
  fake_server server([&](const seen_request&, int) {
    return http(200, R"({"state_path": ")" + state.string() + R"(", "campaigns": []})");
  });
  cli c;
  c.self_exe = dir.path() / "bin" / "dialerctl";
  c.exec_status = 7;
  EXPECT_EQ(c.run({"--control", server.url(), "export", "spring", "--format", "jsonl", "--state",
                   "ended", "--state", "failed", "--output", "out.jsonl"}),
            7);
  ASSERT_EQ(c.execs.size(), 1u) << c.err.str();
  EXPECT_EQ(c.exec_programs[0], dialerd.string());
  EXPECT_EQ(c.execs[0],
            (std::vector<std::string>{dialerd.string(), "export", "--state-path", state.string(),
                                      "--campaign", "spring", "--format", "jsonl", "--state",
                                      "ended", "--state", "failed", "--output", "out.jsonl"}));
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].target, "/api/v1/status");

  cli plain;
  plain.self_exe = c.self_exe;
  EXPECT_EQ(plain.run({"--control", server.url(), "export", "spring"}), exit_ok);
  ASSERT_EQ(plain.execs.size(), 1u);
  EXPECT_EQ(plain.execs[0].size(), 6u);
}

TEST(Dialerctl, ExportRefusesAStateFileThatIsNotHere) {
  fake_server server([](const seen_request&, int) {
    return http(200, R"({"state_path": "/nonexistent/dialerd/state.db"})");
  });
  cli c;
  EXPECT_EQ(c.run({"--control", server.url(), "export", "spring"}), exit_failed);
  EXPECT_TRUE(c.execs.empty());
  EXPECT_NE(c.err.str().find("/nonexistent/dialerd/state.db"), std::string::npos);
  EXPECT_NE(c.err.str().find("run it where dialerd runs"), std::string::npos);

  fake_server old([](const seen_request&, int) { return http(200, "{}"); });
  cli no_path;
  EXPECT_EQ(no_path.run({"--control", old.url(), "export", "spring"}), exit_failed);
  EXPECT_NE(no_path.err.str().find("names no state_path"), std::string::npos);

  // Relative to a folder we cannot know: even when a file of that name exists here, it may not
  // be the daemon's.
  temp_dir dir;
  dir.write("state.db", "");
  fake_server relative(
      [](const seen_request&, int) { return http(200, R"({"state_path": "state.db"})"); });
  cli rel;
  const fs::path before = fs::current_path();
  fs::current_path(dir.path());
  EXPECT_EQ(rel.run({"--control", relative.url(), "export", "spring"}), exit_failed);
  fs::current_path(before);
  EXPECT_TRUE(rel.execs.empty());
  EXPECT_NE(rel.err.str().find("relative state_path (state.db)"), std::string::npos)
      << rel.err.str();
}

TEST(Dialerctl, CheckConfigRunsDialerdAndPassesItsStatusThrough) {
  temp_dir dir;
  const fs::path dialerd = dir.write("dialerd", "#!/bin/sh\n", fs::perms::owner_all);
  cli c;
  c.env["PATH"] = "/nonexistent:" + dir.path().string();
  c.exec_status = 2;
  EXPECT_EQ(c.run({"check-config", "conf/dialerd.yaml"}), 2);
  ASSERT_EQ(c.execs.size(), 1u);
  EXPECT_EQ(c.execs[0], (std::vector<std::string>{dialerd.string(), "--check-config", "--config",
                                                  "conf/dialerd.yaml"}));

  cli none;
  none.env["PATH"] = "/nonexistent";
  EXPECT_EQ(none.run({"check-config", "x.yaml"}), exit_failed);
  EXPECT_TRUE(none.execs.empty());
  EXPECT_NE(none.err.str().find("cannot find dialerd"), std::string::npos);
}

TEST(Dialerctl, FindDialerdBesideFirstThenPath) {
  temp_dir dir;
  const auto exe = fs::perms::owner_all;
  const fs::path beside = dir.write("a/dialerd", "", exe);
  const fs::path in_path = dir.write("b/dialerd", "", exe);
  dir.write("c/dialerd", "", fs::perms::owner_read);  // not executable: skipped
  fs::create_directories(dir.path() / "d/dialerd");   // a folder: skipped
  const std::string path_env = (dir.path() / "c").string() + ":" + (dir.path() / "d").string() +
                               ":" + (dir.path() / "b").string();
  EXPECT_EQ(find_dialerd(dir.path() / "a/dialerctl", path_env), beside);
  EXPECT_EQ(find_dialerd(dir.path() / "x/dialerctl", path_env), in_path);
  EXPECT_EQ(find_dialerd(dir.path() / "x/dialerctl", (dir.path() / "c").string()), std::nullopt);
  EXPECT_EQ(find_dialerd("", ""), std::nullopt);
}

TEST(Dialerctl, LocaleDetection) {
  EXPECT_TRUE(locale_is_utf8("en_US.UTF-8"));
  EXPECT_TRUE(locale_is_utf8("C.utf8"));
  EXPECT_FALSE(locale_is_utf8("C"));
  EXPECT_FALSE(locale_is_utf8(""));
  EXPECT_FALSE(locale_is_utf8("en_US.ISO-8859-1"));
}

TEST(Dialerctl, UnicodeOnlyOnAUtf8Terminal) {
  fake_server server([](const seen_request&, int) { return http(200, std::string(doc_status)); });
  cli pipe;  // UTF-8 locale but not a terminal
  pipe.utf8 = true;
  EXPECT_EQ(pipe.run({"--control", server.url(), "status"}), exit_ok);
  EXPECT_EQ(pipe.out.str(), doc_status_text);
  cli term;
  term.utf8 = true;
  term.stdout_tty = true;
  EXPECT_EQ(term.run({"--control", server.url(), "status"}), exit_ok);
  EXPECT_NE(term.out.str().find("\u2588"), std::string::npos);
  EXPECT_EQ(term.out.str().find('#'), std::string::npos);
}

// Watch: the server answers twice, then on the third request plays Ctrl-C (writes SIGINT to the
// interrupt pipe) and never answers. The request in progress ends at once and dialerctl exits 0.
TEST(Dialerctl, WatchPrintsSnapshotsUntilInterrupted) {
  self_pipe interrupt;
  fake_server server([&](const seen_request&, int index) {
    if (index == 2) {
      interrupt.signal(SIGINT);
      return reply{{}, true};
    }
    return http(200, std::string(doc_status));
  });
  cli c;
  c.interrupt_fd = interrupt.read_end();
  EXPECT_EQ(c.run({"--control", server.url(), "status", "--watch", "0.1"}), exit_ok);
  EXPECT_EQ(c.out.str(), std::string(doc_status_text) + "\n" + std::string(doc_status_text));
  EXPECT_EQ(c.err.str(), "");
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(Dialerctl, WatchOnATerminalRefreshesInPlaceAndRestoresTheCursor) {
  self_pipe interrupt;
  fake_server server([&](const seen_request&, int index) {
    if (index == 1) {
      interrupt.signal(SIGINT);
      return reply{{}, true};
    }
    return http(200, std::string(doc_status));
  });
  cli c;
  c.stdout_tty = true;
  c.interrupt_fd = interrupt.read_end();
  EXPECT_EQ(c.run({"--control", server.url(), "status", "--watch", "0.1"}), exit_ok);
  EXPECT_EQ(c.out.str(), "\x1b[?25l\x1b[H\x1b[2Jevery 0.1s, Ctrl-C to stop\n\n" +
                             std::string(doc_status_text) + "\x1b[?25h");
}

TEST(Dialerctl, WatchShowsALaterFailureAndKeepsGoing) {
  self_pipe interrupt;
  fake_server server([&](const seen_request&, int index) {
    if (index == 1) {
      return http(503, R"({"error": "draining"})");
    }
    if (index == 3) {
      interrupt.signal(SIGTERM);
      return reply{{}, true};
    }
    return http(200, R"({"version": "1", "campaigns": []})");
  });
  cli c;
  c.interrupt_fd = interrupt.read_end();
  // SIGTERM is not the user's Ctrl-C: the conventional 128 + signal.
  EXPECT_EQ(c.run({"--control", server.url(), "status", "--watch=0.1"}), 128 + SIGTERM);
  EXPECT_EQ(c.out.str(),
            "dialerd 1\n\nno campaigns\n"
            "\n"
            "dialerctl: the daemon answered 503: draining\n(retrying every 0.1s)\n"
            "\n"
            "dialerd 1\n\nno campaigns\n");
}

TEST(Dialerctl, WatchStopsWhenTheFirstRequestFails) {
  closed_port nowhere;
  cli c;
  c.stdout_tty = true;
  EXPECT_EQ(c.run({"--control", nowhere.url(), "status", "--watch"}), exit_unreachable);
  EXPECT_EQ(c.out.str(), "\x1b[?25l\x1b[?25h");
  EXPECT_NE(c.err.str().find("Connection refused"), std::string::npos);
}

TEST(Dialerctl, InterruptEndsARequestAt130) {
  self_pipe interrupt;
  fake_server server([](const seen_request&, int) { return reply{{}, true}; });
  interrupt.signal(SIGINT);
  cli c;
  c.interrupt_fd = interrupt.read_end();
  EXPECT_EQ(c.run({"--control", server.url(), "pause", "spring"}), 130);
  EXPECT_EQ(c.out.str(), "");
}

TEST(Dialerctl, HelpAndUsageErrors) {
  cli help;
  EXPECT_EQ(help.run({"set-rate", "--help"}), exit_ok);
  EXPECT_EQ(help.out.str().rfind("usage: dialerctl set-rate ID RATE [--burst N]\n", 0), 0u);
  cli global;
  EXPECT_EQ(global.run({"--help"}), exit_ok);
  EXPECT_EQ(global.out.str().rfind("usage: dialerctl [--control URL]", 0), 0u);
  cli nothing;
  EXPECT_EQ(nothing.run({}), exit_usage);
  EXPECT_EQ(nothing.err.str().rfind("usage: dialerctl", 0), 0u);
  cli bad;
  EXPECT_EQ(bad.run({"pause", "spring", "--force"}), exit_usage);
  EXPECT_EQ(bad.err.str(),
            "dialerctl: unknown option \"--force\" for pause\n"
            "run \"dialerctl pause --help\" for usage\n");
  EXPECT_EQ(bad.out.str(), "");
}

// The daemon's own HTTP server (net/http_server, Beast underneath) accepts dialerctl's requests
// as they are framed: the contract the real control listener will hold us to.
TEST(Dialerctl, TheProjectsHttpServerAcceptsOurRequests) {
  boost::asio::io_context io;
  std::mutex mutex;
  std::vector<std::string> seen;
  net::http_server server(
      io, "127.0.0.1", 0, net::server_limits{}, [&](const net::request& r, net::responder respond) {
        {
          std::lock_guard lock(mutex);
          seen.push_back(std::string(r.method) + " " + std::string(r.target) + " " +
                         std::string(r.header("authorization")) + " " + std::string(r.body));
        }
        net::response answer;
        if (r.target.find("resume") != std::string_view::npos) {
          answer.status = 409;
          answer.body = R"({"error": "campaign c is cancelled"})";
        } else {
          answer.body = R"({"campaign": "c", "state": "paused"})";
        }
        respond(std::move(answer));
      });
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  auto work = boost::asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });

  temp_dir dir;
  const fs::path token_file = dir.write("token", "abc\n");
  cli pause;
  EXPECT_EQ(pause.run({"--control", url, "--token-file", token_file.string(), "pause", "c"}),
            exit_ok)
      << pause.err.str();
  EXPECT_EQ(pause.out.str(), "campaign c: paused\n");
  cli resume;
  EXPECT_EQ(resume.run({"--control", url, "resume", "c"}), exit_failed);
  EXPECT_EQ(resume.err.str(), "dialerctl: the daemon answered 409: campaign c is cancelled\n");
  cli rate;
  EXPECT_EQ(rate.run({"--control", url, "set-rate", "c", "2/s", "--burst", "3"}), exit_ok);

  boost::asio::post(io, [&] { server.stop(); });
  work.reset();
  io.stop();
  runner.join();
  std::lock_guard lock(mutex);
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "POST /api/v1/campaigns/c/pause Bearer abc ",
                      "POST /api/v1/campaigns/c/resume  ",
                      R"(POST /api/v1/campaigns/c/rate  {"calls_per_second": "2/s", "burst": 3})",
                  }));
}

// The client alone: framings and limits the commands above do not reach.
TEST(DialerctlHttp, FramingsAndLimits) {
  fake_server server([](const seen_request& r, int) {
    if (r.target == "/continue") {
      return reply{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
    }
    if (r.target == "/big") {
      return http(200, std::string(1000, 'x'));
    }
    if (r.target == "/bigchunks") {
      return chunked(200, {std::string(600, 'x'), std::string(600, 'y')});
    }
    if (r.target == "/gzip") {
      return reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"};
    }
    if (r.target == "/badchunk") {
      return reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"};
    }
    if (r.target == "/nocontent") {
      return reply{"HTTP/1.1 204 No Content\r\n\r\n"};
    }
    return chunked(200, {"a", "", "bc"});  // an empty chunk is only valid at the end
  });
  auto to = parse_control_url(server.url());
  ASSERT_TRUE(to.ok());
  fetch_options options;
  options.timeout = 5s;
  const auto get = [&](std::string target) {
    http_request req;
    req.target = std::move(target);
    return fetch(to.value(), req, options);
  };
  auto r = get("/continue");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().status, 200);
  EXPECT_EQ(r.value().body, "ok");

  r = get("/nocontent");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().status, 204);
  EXPECT_EQ(r.value().body, "");

  options.max_response_bytes = 900;
  r = get("/big");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, fetch_failure::too_large);
  r = get("/bigchunks");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, fetch_failure::too_large);
  options.max_response_bytes = 64 << 20;

  r = get("/gzip");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, fetch_failure::protocol);
  r = get("/badchunk");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, fetch_failure::protocol);

  http_request injected;
  injected.target = "/x";
  injected.headers.emplace_back("Authorization", "Bearer a\r\nX-Evil: 1");
  r = fetch(to.value(), injected, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, fetch_failure::protocol);
  EXPECT_EQ(r.error().message.find("Evil"), std::string::npos);
  EXPECT_EQ(server.requests().size(), 6u);  // the injected one was never sent
}

}  // namespace
}  // namespace dialer::ctl
