// The HTTP server against real sockets on 127.0.0.1. The server's io_context runs on its own
// thread; the test drives plain blocking POSIX clients and reaches the server's state only through
// work posted to that thread. Every wait is bounded; timeouts under test are set to 200 ms.
#include "net/http_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace dialer::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto wait_limit = 5s;  // generous bound for anything that should happen "at once"
constexpr std::chrono::milliseconds tiny{200};

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

struct reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool has(const std::string& name) const { return headers.count(name) != 0; }
  std::string get(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// A blocking client with a read buffer, so that pipelined responses can be split.
class client {
 public:
  explicit client(std::uint16_t port, int rcvbuf = 0, bool v6 = false) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) {
      throw std::system_error(errno, std::system_category(), "socket");
    }
    if (rcvbuf > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = 0;
    if (v6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_port = htons(port);
      a.sin6_addr = in6addr_loopback;
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0) {
      const int e = errno;
      ::close(fd_);
      throw std::system_error(e, std::system_category(), "connect");
    }
  }
  ~client() { close(); }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  void send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        throw std::system_error(errno, std::system_category(), "send");
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Waits up to `limit` for bytes (or EOF); false on timeout.
  bool readable(std::chrono::milliseconds limit) {
    if (!buffer_.empty()) {
      return true;
    }
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(limit.count())) > 0;
  }

  // One complete response; std::nullopt on EOF, reset or timeout.
  std::optional<reply> read_reply(std::chrono::milliseconds limit = wait_limit) {
    const auto end = clock_type::now() + limit;
    std::size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(end)) {
        return std::nullopt;
      }
    }
    reply r;
    const std::string head = buffer_.substr(0, head_end);
    std::size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12 || status_line.rfind("HTTP/1.1 ", 0) != 0) {
      ADD_FAILURE() << "bad status line: " << status_line;
      return std::nullopt;
    }
    r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos && line_end < head.size()) {
      const std::size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end - start);
      const auto colon = line.find(':');
      if (colon == std::string::npos) {
        ADD_FAILURE() << "bad field line: " << line;
        return std::nullopt;
      }
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') {
        value.erase(0, 1);
      }
      r.headers[lower(line.substr(0, colon))] = value;
    }
    buffer_.erase(0, head_end + 4);
    if (r.status >= 200 && r.status != 204 && r.status != 304 && !head_only_) {
      const std::size_t length = std::stoul(r.get("content-length"));
      while (buffer_.size() < length) {
        if (!fill(end)) {
          return std::nullopt;
        }
      }
      r.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
    }
    return r;
  }

  // True when the peer closes (EOF or reset) within `limit` without sending anything more.
  bool closed_by_peer(std::chrono::milliseconds limit = wait_limit) {
    if (!buffer_.empty()) {
      return false;
    }
    const auto end = clock_type::now() + limit;
    char byte;
    while (clock_type::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(end - clock_type::now());
      if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) <= 0) {
        continue;
      }
      const ssize_t n = ::recv(fd_, &byte, 1, 0);
      return n == 0 || (n < 0 && errno == ECONNRESET);
    }
    return false;
  }

  // Reads and drops whatever arrives until EOF; the number of bytes.
  std::size_t drain(std::chrono::milliseconds limit = wait_limit) {
    const auto end = clock_type::now() + limit;
    std::size_t total = buffer_.size();
    buffer_.clear();
    char chunk[65536];
    while (clock_type::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) {
        continue;
      }
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        break;
      }
      total += static_cast<std::size_t>(n);
    }
    return total;
  }

  void expect_head_only(bool v) { head_only_ = v; }

 private:
  bool fill(clock_type::time_point end) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - clock_type::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return false;
    }
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
  bool head_only_ = false;
};

std::string post(std::string_view target, std::string_view body,
                 std::string_view extra_fields = "") {
  std::string r = "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n";
  r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra_fields;
  r += "\r\n";
  r += body;
  return r;
}

std::string get(std::string_view target, std::string_view extra_fields = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_fields) +
         "\r\n";
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = wait_limit) {
  const auto end = clock_type::now() + limit;
  while (clock_type::now() < end) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(2ms);  // polling a condition, not waiting out a time
  }
  return pred();
}

struct seen_request {
  std::string method, target, peer, body, content_type, custom;
  std::size_t header_count = 0;
};

// A server on its own io thread. Everything the handler touches lives on that thread; the test
// reaches it with on_io().
class server_harness {
 public:
  server_harness() : guard_(asio::make_work_guard(io_)) {}

  void start(server_limits limits, handler h, std::string_view address = "127.0.0.1") {
    server_ = std::make_unique<http_server>(io_, address, 0, limits, std::move(h));
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }

  // Echoes the target and body; records what it saw.
  void start_echo(server_limits limits = {}) {
    start(limits, [this](const request& req, responder respond) {
      record(req);
      response r;
      r.body = std::string(req.target) + "|" + std::string(req.body);
      respond(std::move(r));
    });
  }

  // Keeps each responder for the test to call later.
  void start_holding(server_limits limits = {}) {
    start(limits, [this](const request& req, responder respond) {
      record(req);
      held_.push_back(std::move(respond));
    });
  }

  ~server_harness() {
    if (thread_.joinable()) {
      on_io([this] {
        held_.clear();
        server_.reset();
        return 0;
      });
      guard_.reset();
      io_.stop();
      thread_.join();
    }
  }

  template <class F>
  auto on_io(F f) -> decltype(f()) {
    using result_type = decltype(f());
    auto task = std::make_shared<std::packaged_task<result_type()>>(std::move(f));
    auto done = task->get_future();
    asio::post(io_, [task] { (*task)(); });
    if (done.wait_for(wait_limit) != std::future_status::ready) {
      throw std::runtime_error("the io thread did not run the task in time");
    }
    return done.get();
  }

  server_stats stats() {
    return on_io([this] { return server_->stats(); });
  }

  // Answers the i-th held responder on the io thread.
  void answer(std::size_t i, int status, std::string body) {
    on_io([this, i, status, body] {
      response r;
      r.status = status;
      r.body = body;
      held_.at(i)(std::move(r));
      return 0;
    });
  }

  std::size_t held() {
    return on_io([this] { return held_.size(); });
  }

  std::vector<seen_request> seen() {
    return on_io([this] { return seen_; });
  }

  void record(const request& req) {
    seen_request s;
    s.method = req.method;
    s.target = req.target;
    s.peer = req.peer_address;
    s.body = req.body;
    s.content_type = req.header("CONTENT-type");
    s.custom = req.header("x-custom");
    s.header_count = req.headers.size();
    seen_.push_back(std::move(s));
  }

  std::uint16_t port() const { return port_; }
  asio::io_context& io() { return io_; }
  std::unique_ptr<http_server>& server() { return server_; }
  std::vector<responder>& held_responders() { return held_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::unique_ptr<http_server> server_;
  std::vector<responder> held_;
  std::vector<seen_request> seen_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// The server serves a fresh connection at once: the check after every abuse.
void expect_serves(std::uint16_t port) {
  client c(port);
  c.send(get("/ok"));
  auto r = c.read_reply();
  ASSERT_TRUE(r) << "no answer to a valid request";
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "/ok|");
}

// The same for a server whose handler holds its responders.
void expect_serves_holding(server_harness& h) {
  const std::size_t before = h.held();
  client c(h.port());
  c.send(get("/ok"));
  ASSERT_TRUE(eventually([&] { return h.held() == before + 1; }));
  h.answer(before, 200, "ok");
  auto r = c.read_reply();
  ASSERT_TRUE(r) << "no answer to a valid request";
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
}

TEST(http_server, post_reaches_the_handler_with_method_target_body_headers_and_peer) {
  server_harness h;
  h.start_echo();
  client c(h.port());
  c.send(post("/webhooks/agentix?x=1", R"({"event":"session.ended"})", "X-Custom: yes\r\n"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"(/webhooks/agentix?x=1|{"event":"session.ended"})");
  EXPECT_EQ(r->get("content-length"), std::to_string(r->body.size()));
  EXPECT_EQ(r->get("content-type"), "application/json");
  EXPECT_TRUE(r->has("date"));
  EXPECT_FALSE(r->has("server"));
  EXPECT_FALSE(r->has("connection"));  // keep-alive is the HTTP/1.1 default

  const auto seen = h.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/webhooks/agentix?x=1");
  EXPECT_EQ(seen[0].peer, "127.0.0.1");
  EXPECT_EQ(seen[0].body, R"({"event":"session.ended"})");
  EXPECT_EQ(seen[0].content_type, "application/json");  // looked up case-insensitively
  EXPECT_EQ(seen[0].custom, "yes");
  EXPECT_EQ(seen[0].header_count, 4u);
}

TEST(http_server, keep_alive_serves_sequential_requests_on_one_connection) {
  server_harness h;
  h.start_echo();
  client c(h.port());
  for (int i = 0; i < 5; ++i) {
    c.send(post("/n" + std::to_string(i), std::string(600, 'a' + i)));
    auto r = c.read_reply();
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "/n" + std::to_string(i) + "|" + std::string(600, 'a' + i));
  }
  const auto s = h.stats();
  EXPECT_EQ(s.accepted, 1u);
  EXPECT_EQ(s.requests, 5u);
}

TEST(http_server, pipelined_requests_are_answered_in_order_one_at_a_time) {
  server_harness h;
  h.start_holding();
  client c(h.port());
  c.send(post("/a", "1") + get("/b") + post("/c", "333"));
  ASSERT_TRUE(eventually([&] { return h.held() == 1; }));
  // Back-pressure: the second request is not read while the first is unanswered.
  EXPECT_FALSE(c.readable(50ms));
  EXPECT_EQ(h.held(), 1u);
  h.answer(0, 200, "A");
  ASSERT_TRUE(eventually([&] { return h.held() == 2; }));
  h.answer(1, 201, "B");
  ASSERT_TRUE(eventually([&] { return h.held() == 3; }));
  h.answer(2, 202, "C");
  const std::pair<int, const char*> expected[] = {{200, "A"}, {201, "B"}, {202, "C"}};
  for (const auto& [status, body] : expected) {
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status);
    EXPECT_EQ(r->body, body);
  }
  const auto seen = h.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].target, "/a");
  EXPECT_EQ(seen[1].target, "/b");
  EXPECT_EQ(seen[1].method, "GET");
  EXPECT_EQ(seen[2].body, "333");
}

TEST(http_server, responder_may_answer_later_from_a_timer) {
  server_harness h;
  h.start({}, [&h](const request& req, responder respond) {
    auto timer = std::make_shared<asio::steady_timer>(h.io(), 50ms);
    timer->async_wait(
        [timer, respond = std::move(respond)](const boost::system::error_code&) mutable {
          response r;
          r.status = 202;
          r.body = "later";
          respond(std::move(r));
        });
  });
  client c(h.port());
  c.send(post("/x", "{}"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "later");
  c.send(post("/y", "{}"));  // and the connection is still good
  r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
}

TEST(http_server, responder_after_the_client_left_is_a_harmless_no_op) {
  server_harness h;
  h.start_holding();
  {
    client c(h.port());
    c.send(post("/x", "{}"));
    ASSERT_TRUE(eventually([&] { return h.held() == 1; }));
  }
  h.answer(0, 200, std::string(100000, 'z'));  // into a closed socket
  // The connection goes away (write error, or EOF on the next read) and nothing leaks.
  EXPECT_TRUE(eventually([&] { return h.stats().open == 0; }));
  expect_serves_holding(h);
}

TEST(http_server, responder_after_the_connection_is_destroyed_is_a_no_op) {
  server_harness h;
  server_limits limits;
  limits.handler_timeout = tiny;
  h.start_holding(limits);
  client c(h.port());
  c.send(post("/x", "{}"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);  // the handler timeout answered
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  ASSERT_TRUE(eventually([&] { return h.stats().open == 0; }));
  EXPECT_TRUE(h.on_io([&] { return h.held_responders().at(0).pending(); }));
  h.answer(0, 200, "too late");
  EXPECT_FALSE(h.on_io([&] { return h.held_responders().at(0).pending(); }));
  EXPECT_EQ(h.stats().handler_timeouts, 1u);
  expect_serves_holding(h);
}

TEST(http_server, responder_answers_exactly_once) {
  server_harness h;
  h.start({}, [](const request&, responder respond) {
    response first;
    first.body = "first";
    respond(std::move(first));
    response second;
    second.body = "second";
    respond(std::move(second));
  });
  client c(h.port());
  c.send(get("/") + get("/"));
  for (int i = 0; i < 2; ++i) {
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "first");
  }
  EXPECT_FALSE(c.readable(50ms));  // no stray second answer
}

TEST(http_server, a_dropped_responder_answers_500) {
  server_harness h;
  h.start({}, [](const request&, responder) {});
  client c(h.port());
  c.send(get("/forgotten"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
}

TEST(http_server, a_throwing_handler_is_answered_500_and_counted) {
  server_harness h;
  h.start({}, [](const request&, responder) { throw std::runtime_error("bug"); });
  client c(h.port());
  c.send(get("/boom"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(h.stats().handler_exceptions, 1u);
}

TEST(http_server, a_response_that_could_split_is_answered_500) {
  server_harness h;
  h.start({}, [](const request&, responder respond) {
    response r;
    r.headers.emplace_back("X-Echo", "a\r\nSet-Cookie: evil=1");
    respond(std::move(r));
  });
  client c(h.port());
  c.send(get("/"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_FALSE(r->has("set-cookie"));
  EXPECT_EQ(h.stats().bad_responses, 1u);
}

TEST(http_server, handler_fields_are_sent_and_connection_close_is_honoured) {
  server_harness h;
  h.start({}, [](const request&, responder respond) {
    response r;
    r.status = 429;
    r.headers.emplace_back("Retry-After", "3");
    r.headers.emplace_back("Connection", "close");
    respond(std::move(r));
  });
  client c(h.port());
  c.send(get("/"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->get("retry-after"), "3");
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(http_server, head_gets_the_length_but_no_body) {
  server_harness h;
  h.start_echo();
  client c(h.port());
  c.expect_head_only(true);
  c.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get("content-length"), "3");  // "/h|"
  c.expect_head_only(false);
  c.send(get("/next"));  // framing intact: the next response follows directly
  r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "/next|");
}

TEST(http_server, client_connection_close_gets_connection_close_and_a_close) {
  server_harness h;
  h.start_echo();
  client c(h.port());
  c.send(get("/", "Connection: close\r\n"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(http_server, headers_over_the_limit_get_431) {
  server_harness h;
  server_limits limits;
  limits.max_header_bytes = 1024;
  h.start_echo(limits);
  client c(h.port());
  c.send(get("/", "X-Big: " + std::string(2000, 'b') + "\r\n"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(h.stats().status_431, 1u);
  EXPECT_EQ(h.stats().requests, 0u);
  expect_serves(h.port());
}

TEST(http_server, content_length_over_the_limit_gets_413_before_the_body_is_sent) {
  server_harness h;
  server_limits limits;
  limits.max_body_bytes = 1024;
  h.start_echo(limits);
  client c(h.port());
  // Only the header goes out: the 413 must come without the body.
  c.send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(h.stats().status_413, 1u);
  expect_serves(h.port());
}

TEST(http_server, a_chunked_body_growing_past_the_limit_gets_413) {
  server_harness h;
  server_limits limits;
  limits.max_body_bytes = 1024;
  h.start_echo(limits);
  client c(h.port());
  c.send("POST /chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
  const std::string chunk = "200\r\n" + std::string(512, 'c') + "\r\n";
  c.send(chunk + chunk);  // exactly the limit: still fine
  EXPECT_FALSE(c.readable(50ms));
  c.send(chunk);
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(h.stats().status_413, 1u);
  EXPECT_EQ(h.stats().requests, 0u);
  expect_serves(h.port());
}

TEST(http_server, a_chunked_body_within_the_limit_reaches_the_handler_decoded) {
  server_harness h;
  h.start_echo();
  client c(h.port());
  c.send(
      "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "/c|hello world");
}

TEST(http_server, a_garbage_request_line_gets_400) {
  server_harness h;
  h.start_echo();
  client c(h.port());
  c.send("\x16\x03\x01 not http at all\r\n\r\n");
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(h.stats().status_400, 1u);
  expect_serves(h.port());
}

TEST(http_server, ambiguous_body_framing_gets_400) {
  server_harness h;
  h.start_echo();
  const std::string smuggles[] = {
      // Both lengths: the classic request-smuggling header pair.
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      // A coding other than chunked last: the length cannot be known.
      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      "GET / HTTP/2.0\r\nHost: t\r\n\r\n",
  };
  for (const auto& text : smuggles) {
    client c(h.port());
    c.send(text);
    auto r = c.read_reply();
    ASSERT_TRUE(r) << text;
    EXPECT_EQ(r->status, 400) << text;
    EXPECT_TRUE(c.closed_by_peer()) << text;
  }
  EXPECT_EQ(h.stats().requests, 0u);
  expect_serves(h.port());
}

// Sends `text` one byte at a time, each followed by a wait of up to `pace` for the server's answer;
// returns how many bytes went out before the answer came (or text.size() if none came).
std::size_t trickle(client& c, std::string_view text, std::chrono::milliseconds pace,
                    const std::function<void(std::size_t)>& after_byte = {}) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    c.send(text.substr(i, 1));
    if (after_byte) {
      after_byte(i + 1);
    }
    if (c.readable(pace)) {
      return i + 1;
    }
  }
  return text.size();
}

TEST(http_server, a_trickled_header_gets_408_within_the_total_header_timeout) {
  server_harness h;
  server_limits limits;
  limits.header_timeout = tiny;
  h.start_echo(limits);
  client slow(h.port());
  // 20 ms between bytes, well inside any per-read timeout; 600 bytes would take 12 s.
  const std::string header = "POST / HTTP/1.1\r\nHost: t\r\nX-Pad: " + std::string(560, 'p');
  bool served_meanwhile = false;
  const std::size_t sent = trickle(slow, header, 20ms, [&](std::size_t n) {
    if (n == 3) {
      expect_serves(h.port());  // while the slowloris connection is open
      served_meanwhile = !::testing::Test::HasFailure();
    }
  });
  EXPECT_TRUE(served_meanwhile);
  EXPECT_LT(sent, header.size()) << "no answer: the header timeout was extended by each byte";
  auto r = slow.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(slow.closed_by_peer());
  EXPECT_EQ(h.stats().status_408, 1u);
  expect_serves(h.port());
}

TEST(http_server, a_silent_connection_gets_408_after_the_header_timeout) {
  server_harness h;
  server_limits limits;
  limits.header_timeout = tiny;
  h.start_echo(limits);
  client silent(h.port());
  auto r = silent.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(silent.closed_by_peer());
  expect_serves(h.port());
}

TEST(http_server, a_trickled_body_gets_408_within_the_body_timeout) {
  server_harness h;
  server_limits limits;
  limits.body_timeout = tiny;
  h.start_echo(limits);
  client slow(h.port());
  slow.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 600\r\n\r\n");
  const std::size_t sent = trickle(slow, std::string(600, 'b'), 20ms);
  EXPECT_LT(sent, 600u);
  auto r = slow.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(slow.closed_by_peer());
  EXPECT_EQ(h.stats().status_408, 1u);
  EXPECT_EQ(h.stats().requests, 0u);
  expect_serves(h.port());
}

TEST(http_server, an_idle_keep_alive_connection_is_closed_silently) {
  server_harness h;
  server_limits limits;
  limits.idle_timeout = tiny;
  h.start_echo(limits);
  client c(h.port());
  c.send(get("/"));
  ASSERT_TRUE(c.read_reply());
  EXPECT_TRUE(c.closed_by_peer());  // no 408: nothing was asked
  EXPECT_EQ(h.stats().status_408, 0u);
}

TEST(http_server, connections_over_the_cap_are_refused_with_503) {
  server_harness h;
  server_limits limits;
  limits.max_connections = 4;
  h.start_echo(limits);
  std::vector<std::unique_ptr<client>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<client>(h.port()));
  }
  ASSERT_TRUE(eventually([&] { return h.stats().open == 4; }));
  client fifth(h.port());
  auto r = fifth.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "{\"error\":\"busy\"}\n");
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(fifth.closed_by_peer());
  EXPECT_EQ(h.stats().refused_busy, 1u);
  EXPECT_EQ(h.stats().open, 4u);

  idle[0]->close();
  ASSERT_TRUE(eventually([&] { return h.stats().open == 3; }));
  expect_serves(h.port());
  // The other idle connections are still served.
  idle[1]->send(get("/still"));
  r = idle[1]->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(http_server, a_handler_that_does_not_answer_times_out_with_503) {
  server_harness h;
  server_limits limits;
  limits.handler_timeout = tiny;
  h.start_holding(limits);  // keeps the responder: neither answered nor dropped
  client c(h.port());
  c.send(post("/slow", "{}"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(h.stats().handler_timeouts, 1u);
}

TEST(http_server, expect_100_continue_is_answered_before_the_body) {
  server_harness h;
  h.start_echo();
  client c(h.port());
  c.send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  auto interim = c.read_reply();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  c.send("body");
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "/e|body");
}

TEST(http_server, expect_100_continue_over_the_limit_gets_413_instead) {
  server_harness h;
  server_limits limits;
  limits.max_body_bytes = 10;
  h.start_echo(limits);
  client c(h.port());
  c.send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n");
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
}

TEST(http_server, the_last_allowed_request_gets_connection_close) {
  server_harness h;
  server_limits limits;
  limits.max_requests_per_connection = 2;
  h.start_echo(limits);
  client c(h.port());
  c.send(get("/1"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has("connection"));
  c.send(get("/2"));
  r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(http_server, a_client_that_stops_reading_is_dropped_after_the_write_timeout) {
  server_harness h;
  server_limits limits;
  limits.write_timeout = tiny;
  h.start(limits, [](const request&, responder respond) {
    response r;
    r.body.assign(16 * 1024 * 1024, 'x');  // far more than the socket buffers hold
    respond(std::move(r));
  });
  client c(h.port(), 4096);
  c.send(get("/huge"));
  ASSERT_TRUE(eventually([&] { return h.stats().requests == 1; }));
  // Without the write timeout the connection would stay, blocked in the write, for 10 s.
  EXPECT_TRUE(eventually([&] { return h.stats().open == 0; }, 3s));
  // Aborted with a reset: the kernel does not keep feeding the rest of the response.
  EXPECT_LT(c.drain(), 16u * 1024 * 1024);
}

TEST(http_server, stop_closes_idle_connections_and_lets_in_flight_requests_finish) {
  server_harness h;
  h.start_holding();
  client idle(h.port());
  client busy(h.port());
  busy.send(post("/inflight", "{}"));
  ASSERT_TRUE(eventually([&] { return h.held() == 1 && h.stats().open == 2; }));
  h.on_io([&] {
    h.server()->stop();
    return 0;
  });
  EXPECT_TRUE(idle.closed_by_peer());
  h.answer(0, 200, "done");
  auto r = busy.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(r->get("connection"), "close");
  EXPECT_TRUE(busy.closed_by_peer());
  EXPECT_THROW(client{h.port()}, std::system_error);  // no longer listening
  EXPECT_TRUE(eventually([&] { return h.stats().open == 0; }));
}

TEST(http_server, after_destruction_the_handler_is_not_called_but_responders_still_answer) {
  server_harness h;
  h.start_holding();
  client busy(h.port());
  busy.send(post("/inflight", "{}"));
  client half(h.port());
  half.send("POST /late HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab");
  ASSERT_TRUE(eventually([&] { return h.held() == 1 && h.stats().open == 2; }));
  h.on_io([&] {
    h.server().reset();
    return 0;
  });
  half.send("cd");  // completes a request the destroyed server's handler must not see
  auto r = half.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  h.answer(0, 200, "done");
  r = busy.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(h.held(), 1u);
}

TEST(http_server, listening_on_a_taken_port_throws_a_clear_error) {
  asio::io_context io;
  http_server first(io, "127.0.0.1", 0, {}, [](const request&, responder) {});
  try {
    http_server second(io, "127.0.0.1", first.port(), {}, [](const request&, responder) {});
    FAIL() << "the second server bound a taken port";
  } catch (const std::system_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                                         ": Address already in use");
    EXPECT_EQ(e.code().value(), EADDRINUSE);
  }
  EXPECT_THROW(http_server(io, "localhost", 0, {}, [](const request&, responder) {}),
               std::system_error);
}

TEST(http_server, an_ipv6_peer_is_reported_without_port_or_brackets) {
  server_harness h;
  try {
    h.start(
        {},
        [&h](const request& req, responder respond) {
          h.record(req);
          respond(response{});
        },
        "::1");
  } catch (const std::system_error&) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  client c(h.port(), 0, true);
  c.send(get("/"));
  ASSERT_TRUE(c.read_reply());
  const auto seen = h.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].peer, "::1");
}

}  // namespace
}  // namespace dialer::net
