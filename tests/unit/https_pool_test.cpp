// The HTTPS pool against a real TLS server on 127.0.0.1, with certificates made by the openssl CLI
// for this run. The server runs on its own threads with blocking I/O so that each test can script
// it plainly; the pool runs on the test's io_context, always for a bounded time.
#include "core/https_pool.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace dialer {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Certificates

struct test_pki {
  std::filesystem::path dir;
  std::string ca_cert;                          // the pool trusts this CA
  std::string server_cert, server_key;          // SAN IP:127.0.0.1, DNS:localhost
  std::string wrong_name_cert, wrong_name_key;  // same CA, SAN DNS:wrong.example, IP:10.255.0.1
  std::string rogue_cert, rogue_key;            // right names, signed by a CA nobody trusts
};

void run_command(const std::string& command) {
  if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) {
    throw std::runtime_error("command failed: " + command);
  }
}

test_pki make_pki() {
  char pattern[] = "/tmp/https_pool_test.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  test_pki pki;
  pki.dir = pattern;
  const std::string d = pki.dir.string() + "/";
  const std::string key_opts = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  auto make_ca = [&](const std::string& name) {
    run_command("openssl req -x509 " + key_opts + " -keyout " + d + name + ".key -out " + d + name +
                ".pem -days 2 -subj '/CN=" + name + "'");
  };
  auto make_leaf = [&](const std::string& name, const std::string& ca, const std::string& cn,
                       const std::string& san) {
    std::ofstream(d + name + ".ext") << "subjectAltName=" << san << "\n";
    run_command("openssl req " + key_opts + " -keyout " + d + name + ".key -out " + d + name +
                ".csr -subj '/CN=" + cn + "'");
    run_command("openssl x509 -req -in " + d + name + ".csr -CA " + d + ca + ".pem -CAkey " + d +
                ca + ".key -CAcreateserial -days 2 -out " + d + name + ".pem -extfile " + d + name +
                ".ext");
  };
  make_ca("test-ca");
  make_ca("rogue-ca");
  make_leaf("server", "test-ca", "localhost", "IP:127.0.0.1,DNS:localhost");
  make_leaf("wrong", "test-ca", "wrong.example", "DNS:wrong.example,IP:10.255.0.1");
  make_leaf("rogue", "rogue-ca", "localhost", "IP:127.0.0.1,DNS:localhost");
  pki.ca_cert = d + "test-ca.pem";
  pki.server_cert = d + "server.pem";
  pki.server_key = d + "server.key";
  pki.wrong_name_cert = d + "wrong.pem";
  pki.wrong_name_key = d + "wrong.key";
  pki.rogue_cert = d + "rogue.pem";
  pki.rogue_key = d + "rogue.key";
  return pki;
}

// ---------------------------------------------------------------------------------------------
// A scriptable TLS HTTP/1.1 server

struct received_request {
  std::string method;
  std::string target;
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::size_t connection = 0;  // 1-based, in accept order
  std::size_t index = 0;       // 1-based, over the server's lifetime

  std::string header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (strcasecmp(n.c_str(), name.c_str()) == 0) {
        return v;
      }
    }
    return "<absent>";
  }
  std::size_t count(const std::string& name) const {
    return std::count_if(headers.begin(), headers.end(), [&](const auto& h) {
      return strcasecmp(h.first.c_str(), name.c_str()) == 0;
    });
  }
};

struct scripted_reply {
  enum class action { respond, close_silently, never_answer, raw };
  action what = action::respond;
  int status = 200;
  std::string reason = "OK";
  std::string version = "HTTP/1.1";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string raw;                     // action::raw: written as is
  std::chrono::milliseconds delay{0};  // before answering
  bool close_after = false;            // close the connection after answering, unannounced
};

enum class close_style { fin, close_notify, reset };

class tls_test_server {
 public:
  using script = std::function<scripted_reply(const received_request&)>;
  struct options {
    std::string cert;
    std::string key;
    unsigned short port = 0;                  // 0: any free port
    std::chrono::milliseconds idle_close{0};  // close connections idle this long; 0: never
    close_style idle_close_style = close_style::fin;
  };

  tls_test_server(options o, script s)
      : options_(std::move(o)),
        script_(std::move(s)),
        context_(ssl::context::tls_server),
        acceptor_(io_) {
    context_.use_certificate_chain_file(options_.cert);
    context_.use_private_key_file(options_.key, ssl::context::pem);
    const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), options_.port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~tls_test_server() { stop(); }

  void stop() {
    if (stopping_.exchange(true)) {
      return;
    }
    // shutdown() wakes a thread blocked in accept() or read() on the same descriptor.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_fds_) {
        ::shutdown(fd, SHUT_RDWR);
      }
    }
    for (auto& t : connection_threads_) {
      t.join();
    }
  }

  unsigned short port() const { return port_; }
  std::size_t accepted() const { return accepted_; }
  std::size_t active() const { return active_; }
  std::size_t max_active() const { return max_active_; }
  std::size_t requests() const { return requests_; }
  std::vector<received_request> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }
  std::vector<std::string> server_names() const {
    std::lock_guard lock(mutex_);
    return server_names_;
  }
  std::vector<int> tls_versions() const {
    std::lock_guard lock(mutex_);
    return tls_versions_;
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      tcp::socket socket(io_);
      error_code ec;
      acceptor_.accept(socket, ec);
      if (ec) {
        if (stopping_) {
          return;
        }
        continue;
      }
      const std::size_t index = ++accepted_;
      const std::size_t now_active = ++active_;
      std::size_t seen = max_active_;
      while (now_active > seen && !max_active_.compare_exchange_weak(seen, now_active)) {
      }
      std::lock_guard lock(mutex_);
      open_fds_.insert(socket.native_handle());
      connection_threads_.emplace_back(
          [this, s = std::move(socket), index]() mutable { serve(std::move(s), index); });
    }
  }

  void serve(tcp::socket socket, std::size_t index) {
    const int fd = socket.native_handle();
    ssl::stream<tcp::socket> stream(std::move(socket), context_);
    error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (!ec) {
      {
        std::lock_guard lock(mutex_);
        const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
        server_names_.push_back(sni ? sni : "");
        tls_versions_.push_back(SSL_version(stream.native_handle()));
      }
      converse(stream, fd, index);
    }
    {
      // Forget the descriptor before it is closed, so stop() never touches a reused number.
      std::lock_guard lock(mutex_);
      open_fds_.erase(fd);
    }
    // An explicit close keeps SO_LINGER {on, 0} (close_style::reset) and so sends an RST; the
    // destructor's close would clear it and send a FIN.
    stream.next_layer().close(ec);
    --active_;
  }

  void converse(ssl::stream<tcp::socket>& stream, int fd, std::size_t connection) {
    std::string buffer;
    while (!stopping_) {
      received_request request;
      bool idle_expired = false;
      if (!read_request(stream, fd, buffer, request, idle_expired)) {
        if (idle_expired) {
          close_idle(stream);
        }
        return;
      }
      request.connection = connection;
      request.index = ++requests_;
      {
        std::lock_guard lock(mutex_);
        received_.push_back(request);
      }
      const scripted_reply reply = script_(request);
      std::this_thread::sleep_for(reply.delay);
      error_code ec;
      switch (reply.what) {
        case scripted_reply::action::close_silently:
          return;
        case scripted_reply::action::never_answer: {
          char sink[256];
          while (!ec) {
            stream.next_layer().read_some(net::buffer(sink), ec);
          }
          return;
        }
        case scripted_reply::action::raw:
          net::write(stream, net::buffer(reply.raw), ec);
          break;
        case scripted_reply::action::respond: {
          std::string out =
              reply.version + " " + std::to_string(reply.status) + " " + reply.reason + "\r\n";
          for (const auto& [n, v] : reply.headers) {
            out += n + ": " + v + "\r\n";
          }
          out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n";
          out += reply.body;
          net::write(stream, net::buffer(out), ec);
          break;
        }
      }
      if (ec || reply.close_after) {
        return;
      }
    }
  }

  void close_idle(ssl::stream<tcp::socket>& stream) {
    error_code ec;
    switch (options_.idle_close_style) {
      case close_style::fin:
        break;
      case close_style::close_notify:
        // Non-blocking: send close_notify without waiting for the client's answer.
        stream.next_layer().non_blocking(true, ec);
        stream.shutdown(ec);
        break;
      case close_style::reset:
        stream.next_layer().set_option(tcp::socket::linger(true, 0), ec);
        break;
    }
  }

  // Reads more bytes into `buffer`. While it is empty and idle_close is set, waits at most that
  // long. The wait goes through OpenSSL without blocking, then poll(): the request may already
  // sit in the SSL layer's input (it often arrives with the client's Finished), where poll()
  // on the descriptor cannot see it.
  bool fill(ssl::stream<tcp::socket>& stream, int fd, std::string& buffer, bool& idle_expired) {
    char chunk[8192];
    error_code ec;
    if (options_.idle_close.count() == 0 || !buffer.empty()) {
      const std::size_t n = stream.read_some(net::buffer(chunk), ec);
      buffer.append(chunk, n);
      return !ec;
    }
    stream.next_layer().non_blocking(true, ec);
    bool ok = false;
    for (;;) {
      const std::size_t n = stream.read_some(net::buffer(chunk), ec);
      if (!ec) {
        buffer.append(chunk, n);
        ok = true;
        break;
      }
      if (ec != net::error::would_block) {
        break;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(options_.idle_close.count())) == 0) {
        idle_expired = true;
        break;
      }
    }
    stream.next_layer().non_blocking(false, ec);
    return ok;
  }

  bool read_request(ssl::stream<tcp::socket>& stream, int fd, std::string& buffer,
                    received_request& out, bool& idle_expired) {
    std::size_t head_end = 0;
    while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(stream, fd, buffer, idle_expired)) {
        return false;
      }
    }
    const std::string head = buffer.substr(0, head_end + 4);
    buffer.erase(0, head_end + 4);
    std::size_t line_end = head.find("\r\n");
    const std::string request_line = head.substr(0, line_end);
    const auto first_space = request_line.find(' ');
    const auto second_space = request_line.find(' ', first_space + 1);
    out.method = request_line.substr(0, first_space);
    out.target = request_line.substr(first_space + 1, second_space - first_space - 1);
    out.version = request_line.substr(second_space + 1);
    std::size_t content_length = 0;
    for (std::size_t pos = line_end + 2; pos < head.size();) {
      const std::size_t end = head.find("\r\n", pos);
      if (end == pos) {
        break;
      }
      const std::string line = head.substr(pos, end - pos);
      const auto colon = line.find(':');
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      out.headers.emplace_back(line.substr(0, colon), value);
      if (strcasecmp(line.substr(0, colon).c_str(), "content-length") == 0) {
        content_length = std::stoul(value);
      }
      pos = end + 2;
    }
    while (buffer.size() < content_length) {
      if (!fill(stream, fd, buffer, idle_expired)) {
        return false;
      }
    }
    out.body = buffer.substr(0, content_length);
    buffer.erase(0, content_length);
    return true;
  }

  options options_;
  script script_;
  net::io_context io_;  // only for the sockets' sake: all I/O here is blocking
  ssl::context context_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> active_{0};
  std::atomic<std::size_t> max_active_{0};
  std::atomic<std::size_t> requests_{0};
  std::thread accept_thread_;
  mutable std::mutex mutex_;
  std::vector<std::thread> connection_threads_;
  std::set<int> open_fds_;
  std::vector<received_request> received_;
  std::vector<std::string> server_names_;
  std::vector<int> tls_versions_;
};

scripted_reply ok(std::string body = "ok") {
  scripted_reply r;
  r.body = std::move(body);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Fixture

struct outcome {
  bool done = false;
  http_response response;
};

http_connection_pool::response_handler capture(outcome& o) {
  return [&o](http_response r) {
    o.done = true;
    o.response = std::move(r);
  };
}

http_request post(std::string target, std::string body = "{}") {
  http_request r;
  r.method = "POST";
  r.target = std::move(target);
  r.headers = {{"x-api-key", "pk_test"}, {"Content-Type", "application/json"}};
  r.body = std::move(body);
  return r;
}

class HttpsPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new test_pki(make_pki()); }
  static void TearDownTestSuite() {
    std::error_code ignored;
    std::filesystem::remove_all(pki_->dir, ignored);
    delete pki_;
    pki_ = nullptr;
  }

  static const test_pki& pki() { return *pki_; }

  std::unique_ptr<tls_test_server> start_server(tls_test_server::script script,
                                                tls_test_server::options o = {}) {
    if (o.cert.empty()) {
      o.cert = pki().server_cert;
      o.key = pki().server_key;
    }
    return std::make_unique<tls_test_server>(std::move(o), std::move(script));
  }

  static https_pool_options options_for(unsigned short port, std::string host = "127.0.0.1") {
    https_pool_options o;
    o.host = std::move(host);
    o.port = std::to_string(port);
    o.ca_file = pki().ca_cert;
    o.connect_timeout = 2s;
    o.request_timeout = 2s;
    return o;
  }

  // Runs the loop until `done()` or `limit`, whichever first; a bug fails a test, never hangs it.
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      io_.run_one_for(2ms);
    }
    return true;
  }

  void run_for(std::chrono::milliseconds d) {
    (void)run_until([] { return false; }, d);
  }

  static test_pki* pki_;
  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_{io_.get_executor()};
};

test_pki* HttpsPoolTest::pki_ = nullptr;

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// ---------------------------------------------------------------------------------------------
// Tests

TEST_F(HttpsPoolTest, HundredSequentialRequestsShareOneKeepAliveConnection) {
  auto server = start_server([](const received_request& r) { return ok(r.target + "|" + r.body); });
  auto pool = make_https_pool(io_, options_for(server->port()));
  const auto started = std::chrono::steady_clock::now();
  nanoseconds latency_sum{0};
  for (int i = 0; i < 100; ++i) {
    outcome o;
    pool->send(post("/calls/" + std::to_string(i), "body" + std::to_string(i)), capture(o));
    ASSERT_TRUE(run_until([&] { return o.done; })) << "request " << i;
    ASSERT_EQ(o.response.error, transport_error::none) << pool->stats().last_error;
    ASSERT_EQ(o.response.status, 200);
    ASSERT_EQ(o.response.body, "/calls/" + std::to_string(i) + "|body" + std::to_string(i));
    ASSERT_EQ(o.response.reused_connection, i > 0);
    ASSERT_GT(o.response.latency.count(), 0);
    latency_sum += o.response.latency;
  }
  const double elapsed = ms_since(started);
  std::printf(
      "[ measure  ] 100 sequential requests on one connection, handshake included: "
      "%.1f ms; mean write-to-response latency %.3f ms\n",
      elapsed, std::chrono::duration<double, std::milli>(latency_sum).count() / 100);
  EXPECT_EQ(server->accepted(), 1u);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.opened, 1u);
  EXPECT_EQ(stats.reused, 99u);
  EXPECT_EQ(stats.idle, 1u);
  EXPECT_TRUE(stats.failures.empty());

  const auto first = server->received().front();
  EXPECT_EQ(first.method, "POST");
  EXPECT_EQ(first.version, "HTTP/1.1");
  EXPECT_EQ(first.header("Host"), "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(first.header("Content-Length"), "5");
  EXPECT_EQ(first.header("x-api-key"), "pk_test");
  EXPECT_EQ(first.header("Content-Type"), "application/json");
  EXPECT_EQ(server->tls_versions().front(), TLS1_3_VERSION);
}

TEST_F(HttpsPoolTest, PoolOwnedHeadersAndLineBreaksCannotBeInjected) {
  auto server = start_server([](const received_request&) { return ok(); });
  auto pool = make_https_pool(io_, options_for(server->port()));
  http_request req = post("/x", "abc");
  req.headers.push_back({"Host", "evil.example"});
  req.headers.push_back({"Content-Length", "999"});
  req.headers.push_back({"Idempotency-Key", "c:t:1\r\nX-Injected: 1"});
  outcome o;
  pool->send(req, capture(o));
  ASSERT_TRUE(run_until([&] { return o.done; }));
  ASSERT_EQ(o.response.status, 200);
  const auto r = server->received().front();
  EXPECT_EQ(r.count("Host"), 1u);
  EXPECT_EQ(r.header("Host"), "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(r.header("Content-Length"), "3");
  EXPECT_EQ(r.count("X-Injected"), 0u);
  EXPECT_EQ(r.header("Idempotency-Key"), "c:t:1X-Injected: 1");
}

TEST_F(HttpsPoolTest, FiftyConcurrentSendsNeverExceedMaxConnections) {
  auto server = start_server([](const received_request& r) {
    scripted_reply reply = ok(r.body);
    reply.delay = 20ms;
    return reply;
  });
  auto options = options_for(server->port());
  options.max_connections = 4;
  auto pool = make_https_pool(io_, options);
  std::vector<outcome> outcomes(50);
  std::size_t max_total = 0;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    pool->send(post("/calls", std::to_string(i)), capture(outcomes[i]));
  }
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] {
    const auto s = pool->stats();
    max_total = std::max(max_total, s.connecting + s.idle + s.busy);
    return std::all_of(outcomes.begin(), outcomes.end(), [](const outcome& o) { return o.done; });
  }));
  std::printf("[ measure  ] 50 requests (20 ms server delay) over 4 connections: %.1f ms\n",
              ms_since(started));
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i].response.status, 200);
    EXPECT_EQ(outcomes[i].response.body, std::to_string(i));
  }
  EXPECT_LE(server->max_active(), 4u);
  EXPECT_EQ(server->accepted(), 4u);
  EXPECT_LE(max_total, 4u);
  EXPECT_EQ(pool->stats().opened, 4u);
  EXPECT_EQ(server->requests(), 50u);
}

TEST_F(HttpsPoolTest, UntrustedCertificateIsTlsFailedAndQueuedSendWaits) {
  tls_test_server::options o;
  o.cert = pki().rogue_cert;
  o.key = pki().rogue_key;
  auto server = start_server([](const received_request&) { return ok(); }, o);
  auto pool = make_https_pool(io_, options_for(server->port()));

  std::size_t warmed = 99;
  pool->warm_up(1, [&](std::size_t n) { warmed = n; });
  ASSERT_TRUE(run_until([&] { return warmed != 99; }));
  EXPECT_EQ(warmed, 0u);
  auto stats = pool->stats();
  EXPECT_EQ(stats.failures["tls_failed"], 1u);
  EXPECT_NE(stats.last_error.find("TLS handshake with 127.0.0.1:" + std::to_string(server->port()) +
                                  " failed"),
            std::string::npos)
      << stats.last_error;
  EXPECT_NE(stats.last_error.find("certificate verify failed (unable to get local issuer"),
            std::string::npos)
      << stats.last_error;

  // Nothing was sent, so a queued request is not failed: the pool keeps trying with backoff.
  outcome o1;
  pool->send(post("/calls"), capture(o1));
  run_for(400ms);
  EXPECT_FALSE(o1.done);
  EXPECT_GE(pool->stats().failures["tls_failed"], 3u);
  EXPECT_EQ(server->requests(), 0u);

  pool->shutdown();
  ASSERT_TRUE(run_until([&] { return o1.done; }));
  EXPECT_EQ(o1.response.error, transport_error::shutdown);
}

TEST_F(HttpsPoolTest, CertificateForAnotherIpIsTlsFailed) {
  tls_test_server::options o;
  o.cert = pki().wrong_name_cert;
  o.key = pki().wrong_name_key;
  auto server = start_server([](const received_request&) { return ok(); }, o);
  auto pool = make_https_pool(io_, options_for(server->port()));
  std::size_t warmed = 99;
  pool->warm_up(1, [&](std::size_t n) { warmed = n; });
  ASSERT_TRUE(run_until([&] { return warmed != 99; }));
  EXPECT_EQ(warmed, 0u);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.failures.at("tls_failed"), 1u);
  EXPECT_NE(stats.last_error.find("certificate verify failed (IP address mismatch)"),
            std::string::npos)
      << stats.last_error;
}

TEST_F(HttpsPoolTest, CertificateForAnotherNameIsTlsFailed) {
  tls_test_server::options o;
  o.cert = pki().wrong_name_cert;
  o.key = pki().wrong_name_key;
  auto server = start_server([](const received_request&) { return ok(); }, o);
  auto pool = make_https_pool(io_, options_for(server->port(), "localhost"));
  std::size_t warmed = 99;
  pool->warm_up(1, [&](std::size_t n) { warmed = n; });
  ASSERT_TRUE(run_until([&] { return warmed != 99; }));
  EXPECT_EQ(warmed, 0u);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.failures.at("tls_failed"), 1u);
  EXPECT_NE(stats.last_error.find("certificate verify failed (hostname mismatch)"),
            std::string::npos)
      << stats.last_error;
  EXPECT_EQ(server->server_names(), std::vector<std::string>{});  // the handshake never finished
}

TEST_F(HttpsPoolTest, NamesGetSniAndNameCheckIpLiteralsDoNot) {
  auto server = start_server([](const received_request& r) { return ok(r.header("Host")); });
  const std::string port = std::to_string(server->port());
  {
    auto pool = make_https_pool(io_, options_for(server->port(), "localhost"));
    outcome o;
    pool->send(post("/a"), capture(o));
    ASSERT_TRUE(run_until([&] { return o.done; }));
    ASSERT_EQ(o.response.error, transport_error::none) << pool->stats().last_error;
    EXPECT_EQ(o.response.body, "localhost:" + port);
  }
  {
    auto pool = make_https_pool(io_, options_for(server->port(), "127.0.0.1"));
    outcome o;
    pool->send(post("/b"), capture(o));
    ASSERT_TRUE(run_until([&] { return o.done; }));
    ASSERT_EQ(o.response.error, transport_error::none) << pool->stats().last_error;
  }
  EXPECT_EQ(server->server_names(), (std::vector<std::string>{"localhost", ""}));
}

TEST_F(HttpsPoolTest, UnansweredRequestTimesOutAfterSend) {
  auto server = start_server([](const received_request&) {
    scripted_reply r;
    r.what = scripted_reply::action::never_answer;
    return r;
  });
  auto options = options_for(server->port());
  options.request_timeout = 300ms;
  auto pool = make_https_pool(io_, options);
  outcome o;
  const auto started = std::chrono::steady_clock::now();
  pool->send(post("/calls"), capture(o));
  ASSERT_TRUE(run_until([&] { return o.done; }, 3s));
  const double elapsed = ms_since(started);
  EXPECT_EQ(o.response.error, transport_error::timeout_after_send);
  EXPECT_TRUE(maybe_delivered(o.response.error));
  EXPECT_GE(elapsed, 290.0);
  EXPECT_LT(elapsed, 1500.0);
  EXPECT_EQ(server->requests(), 1u);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.failures.at("timeout_after_send"), 1u);
  EXPECT_EQ(stats.busy + stats.idle + stats.connecting, 0u);
}

TEST_F(HttpsPoolTest, ServerClosingAfterReadingIsResetAfterSendAndNeverRetried) {
  auto server = start_server([](const received_request& r) {
    if (r.index == 1) {
      return ok();
    }
    scripted_reply reply;
    reply.what = scripted_reply::action::close_silently;
    return reply;
  });
  auto pool = make_https_pool(io_, options_for(server->port()));
  outcome first;
  pool->send(post("/1"), capture(first));
  ASSERT_TRUE(run_until([&] { return first.done; }));
  ASSERT_EQ(first.response.status, 200);

  // The second request goes out on the reused connection, where a before-send failure would be
  // retried: this one was written, so it must not be.
  outcome second;
  pool->send(post("/2"), capture(second));
  ASSERT_TRUE(run_until([&] { return second.done; }));
  EXPECT_EQ(second.response.error, transport_error::reset_after_send);
  EXPECT_TRUE(second.response.reused_connection);
  run_for(300ms);
  EXPECT_EQ(server->requests(), 2u);
  EXPECT_EQ(server->accepted(), 1u);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.retried, 0u);
  EXPECT_EQ(stats.failures.at("reset_after_send"), 1u);
}

class StaleConnectionTest : public HttpsPoolTest,
                            public ::testing::WithParamInterface<close_style> {};

TEST_P(StaleConnectionTest, ConnectionClosedByServerWhileIdleIsDiscardedBeforeSending) {
  tls_test_server::options o;
  o.idle_close = 250ms;
  o.idle_close_style = GetParam();
  auto server = start_server([](const received_request&) { return ok(); }, o);
  auto pool = make_https_pool(io_, options_for(server->port()));
  outcome first;
  pool->send(post("/1"), capture(first));
  ASSERT_TRUE(run_until([&] { return first.done; }));
  ASSERT_EQ(first.response.status, 200);
  ASSERT_TRUE(run_until([&] { return server->active() == 0; }, 2s));
  run_for(20ms);  // let the FIN, alert or RST reach the client's socket

  outcome second;
  pool->send(post("/2"), capture(second));
  ASSERT_TRUE(run_until([&] { return second.done; }));
  EXPECT_EQ(second.response.error, transport_error::none) << pool->stats().last_error;
  EXPECT_EQ(second.response.status, 200);
  EXPECT_FALSE(second.response.reused_connection);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.stale_discarded, 1u);
  EXPECT_TRUE(stats.failures.empty()) << stats.last_error;
  EXPECT_EQ(server->accepted(), 2u);
  const auto received = server->received();
  ASSERT_EQ(received.size(), 2u);  // the server saw each request exactly once
  EXPECT_EQ(received[1].connection, 2u);
}

TEST_P(StaleConnectionTest, WarmConnectionNeverUsedIsCheckedPastTls13Tickets) {
  tls_test_server::options o;
  o.idle_close = 250ms;
  o.idle_close_style = GetParam();
  auto server = start_server([](const received_request&) { return ok(); }, o);
  auto pool = make_https_pool(io_, options_for(server->port()));
  std::size_t warmed = 99;
  pool->warm_up(1, [&](std::size_t n) { warmed = n; });
  ASSERT_TRUE(run_until([&] { return warmed != 99; }));
  ASSERT_EQ(warmed, 1u);
  ASSERT_TRUE(run_until([&] { return server->active() == 0; }, 2s));
  run_for(20ms);
  ASSERT_EQ(server->tls_versions().front(), TLS1_3_VERSION);  // session tickets were sent

  outcome o1;
  ASSERT_FALSE(pool->try_send_now(post("/1"), capture(o1)));  // the only idle one is dead
  EXPECT_EQ(pool->stats().stale_discarded, 1u);
  pool->send(post("/1"), capture(o1));
  ASSERT_TRUE(run_until([&] { return o1.done; }));
  EXPECT_EQ(o1.response.status, 200) << pool->stats().last_error;
  EXPECT_TRUE(pool->stats().failures.empty()) << pool->stats().last_error;
  EXPECT_EQ(server->requests(), 1u);
  EXPECT_EQ(server->accepted(), 2u);
}

INSTANTIATE_TEST_SUITE_P(CloseStyles, StaleConnectionTest,
                         ::testing::Values(close_style::fin, close_style::close_notify,
                                           close_style::reset),
                         [](const auto& info) {
                           switch (info.param) {
                             case close_style::fin:
                               return std::string("fin");
                             case close_style::close_notify:
                               return std::string("close_notify");
                             case close_style::reset:
                               return std::string("reset");
                           }
                           return std::string("unknown");
                         });

TEST_F(HttpsPoolTest, WriteFailingOnDeadReusedConnectionIsRetriedOnceOnAFreshOne) {
  tls_test_server::options o;
  o.idle_close = 250ms;
  o.idle_close_style = close_style::reset;
  auto server = start_server([](const received_request&) { return ok(); }, o);
  auto pool = make_https_pool(io_, options_for(server->port()));
  pool->skip_stale_check_for_test(true);  // as if the RST arrived just after the check
  outcome first;
  pool->send(post("/1"), capture(first));
  ASSERT_TRUE(run_until([&] { return first.done; }));
  ASSERT_EQ(first.response.status, 200) << pool->stats().last_error;
  ASSERT_TRUE(run_until([&] { return server->active() == 0; }, 2s));
  run_for(20ms);

  outcome second;
  ASSERT_TRUE(pool->try_send_now(post("/2"), capture(second)));
  ASSERT_TRUE(run_until([&] { return second.done; }));
  EXPECT_EQ(second.response.error, transport_error::none) << pool->stats().last_error;
  EXPECT_EQ(second.response.status, 200);
  EXPECT_FALSE(second.response.reused_connection);
  const auto stats = pool->stats();
  EXPECT_EQ(stats.retried, 1u);
  EXPECT_EQ(stats.failures.at("reset_before_send"), 1u);
  EXPECT_EQ(server->requests(), 2u);
  EXPECT_EQ(server->accepted(), 2u);
}

TEST_F(HttpsPoolTest, RedirectIsReturnedNotFollowed) {
  auto server = start_server([](const received_request&) {
    scripted_reply r;
    r.status = 302;
    r.reason = "Found";
    r.headers = {{"Location", "https://127.0.0.1:1/elsewhere"}};
    return r;
  });
  auto pool = make_https_pool(io_, options_for(server->port()));
  outcome o;
  pool->send(post("/calls"), capture(o));
  ASSERT_TRUE(run_until([&] { return o.done; }));
  EXPECT_EQ(o.response.error, transport_error::none);
  EXPECT_EQ(o.response.status, 302);
  run_for(200ms);
  EXPECT_EQ(server->requests(), 1u);
  EXPECT_EQ(server->accepted(), 1u);
}

TEST_F(HttpsPoolTest, InterimResponseIsSkipped) {
  auto server = start_server([](const received_request&) {
    scripted_reply r;
    r.what = scripted_reply::action::raw;
    r.raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi";
    return r;
  });
  auto pool = make_https_pool(io_, options_for(server->port()));
  outcome o;
  pool->send(post("/calls"), capture(o));
  ASSERT_TRUE(run_until([&] { return o.done; }));
  EXPECT_EQ(o.response.error, transport_error::none) << pool->stats().last_error;
  EXPECT_EQ(o.response.status, 201);
  EXPECT_EQ(o.response.body, "hi");
  EXPECT_EQ(pool->stats().idle, 1u);
}

TEST_F(HttpsPoolTest, IdleTimeoutClosesIdleConnections) {
  auto server = start_server([](const received_request&) { return ok(); });
  auto options = options_for(server->port());
  options.idle_timeout = 200ms;
  auto pool = make_https_pool(io_, options);
  std::size_t warmed = 99;
  pool->warm_up(2, [&](std::size_t n) { warmed = n; });
  ASSERT_TRUE(run_until([&] { return warmed != 99; }));
  ASSERT_EQ(warmed, 2u);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until(
      [&] {
        const auto s = pool->stats();
        return s.idle == 0 && s.closing == 0;
      },
      3s));
  const double elapsed = ms_since(started);
  std::printf("[ measure  ] 2 idle connections closed %.1f ms after warm-up (idle_timeout 200)\n",
              elapsed);
  EXPECT_GE(elapsed, 150.0);
  EXPECT_LT(elapsed, 1500.0);
  EXPECT_EQ(pool->stats().closed_idle, 2u);
  EXPECT_TRUE(run_until([&] { return server->active() == 0; }, 2s));
}

TEST_F(HttpsPoolTest, WarmUpOpensConnectionsUpToTheBound) {
  auto server = start_server([](const received_request&) { return ok(); });
  auto options = options_for(server->port());
  options.max_connections = 6;
  auto pool = make_https_pool(io_, options);
  std::size_t warmed = 99;
  const auto started = std::chrono::steady_clock::now();
  pool->warm_up(4, [&](std::size_t n) { warmed = n; });
  EXPECT_EQ(warmed, 99u);  // posted, never called inline
  ASSERT_TRUE(run_until([&] { return warmed != 99; }));
  std::printf("[ measure  ] warm_up(4): %.1f ms\n", ms_since(started));
  EXPECT_EQ(warmed, 4u);
  EXPECT_EQ(pool->ready_count(), 4u);
  EXPECT_EQ(server->accepted(), 4u);

  warmed = 99;
  pool->warm_up(2, [&](std::size_t n) { warmed = n; });
  ASSERT_TRUE(run_until([&] { return warmed != 99; }));
  EXPECT_EQ(warmed, 4u);
  EXPECT_EQ(server->accepted(), 4u);

  warmed = 99;
  pool->warm_up(10, [&](std::size_t n) { warmed = n; });
  ASSERT_TRUE(run_until([&] { return warmed != 99; }));
  EXPECT_EQ(warmed, 6u);
  EXPECT_EQ(server->accepted(), 6u);
  EXPECT_EQ(pool->stats().opened, 6u);
}

TEST_F(HttpsPoolTest, RetryAfterIsPassedThrough) {
  auto server = start_server([](const received_request& r) {
    scripted_reply reply;
    if (r.index == 1) {
      reply.status = 429;
      reply.reason = "Too Many Requests";
      reply.headers = {{"Retry-After", "7"}};
    } else {
      reply.status = 503;
      reply.reason = "Service Unavailable";
      reply.headers = {{"Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT"}};
    }
    return reply;
  });
  auto pool = make_https_pool(io_, options_for(server->port()));
  outcome a;
  outcome b;
  pool->send(post("/1"), capture(a));
  ASSERT_TRUE(run_until([&] { return a.done; }));
  pool->send(post("/2"), capture(b));
  ASSERT_TRUE(run_until([&] { return b.done; }));
  EXPECT_EQ(a.response.status, 429);
  EXPECT_EQ(a.response.retry_after, "7");
  EXPECT_EQ(b.response.status, 503);
  EXPECT_EQ(b.response.retry_after, "Wed, 21 Oct 2026 07:28:00 GMT");
  EXPECT_EQ(server->accepted(), 1u);  // error statuses do not cost the connection
}

TEST_F(HttpsPoolTest, OversizedOrGarbledResponseIsProtocolError) {
  auto server = start_server([](const received_request& r) {
    if (r.target == "/big") {
      return ok(std::string(4096, 'x'));
    }
    scripted_reply reply;
    reply.what = scripted_reply::action::raw;
    if (r.target == "/big-chunked") {
      reply.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" +
                  std::string(4096, 'x') + "\r\n0\r\n\r\n";
    } else {
      reply.raw = "HELLO THERE\r\n\r\n";
    }
    return reply;
  });
  auto options = options_for(server->port());
  options.max_response_bytes = 1024;
  auto pool = make_https_pool(io_, options);
  outcome big;
  pool->send(post("/big"), capture(big));
  ASSERT_TRUE(run_until([&] { return big.done; }));
  EXPECT_EQ(big.response.error, transport_error::protocol_error);
  EXPECT_TRUE(maybe_delivered(big.response.error));
  outcome chunked;
  pool->send(post("/big-chunked"), capture(chunked));
  ASSERT_TRUE(run_until([&] { return chunked.done; }));
  EXPECT_EQ(chunked.response.error, transport_error::protocol_error);
  outcome garbled;
  pool->send(post("/garbled"), capture(garbled));
  ASSERT_TRUE(run_until([&] { return garbled.done; }));
  EXPECT_EQ(garbled.response.error, transport_error::protocol_error);
  EXPECT_EQ(pool->stats().failures.at("protocol_error"), 3u);
  EXPECT_EQ(server->requests(), 3u);
  EXPECT_EQ(server->accepted(), 3u);  // a connection with a broken response is never reused
}

TEST_F(HttpsPoolTest, ConnectionCloseOrHttp10EndsTheConnection) {
  auto server = start_server([](const received_request& r) {
    scripted_reply reply = ok();
    if (r.index == 1) {
      reply.headers = {{"Connection", "close"}};
    } else if (r.index == 2) {
      reply.version = "HTTP/1.0";
    }
    return reply;
  });
  auto pool = make_https_pool(io_, options_for(server->port()));
  for (int i = 0; i < 3; ++i) {
    outcome o;
    pool->send(post("/" + std::to_string(i)), capture(o));
    ASSERT_TRUE(run_until([&] { return o.done; }));
    ASSERT_EQ(o.response.status, 200);
    EXPECT_FALSE(o.response.reused_connection);
  }
  EXPECT_EQ(server->accepted(), 3u);
  EXPECT_EQ(pool->stats().closed_by_peer, 2u);
  EXPECT_EQ(pool->stats().stale_discarded, 0u);
}

TEST_F(HttpsPoolTest, ShutdownFailsQueuedSendsAndLetsInFlightFinish) {
  auto server = start_server([](const received_request&) {
    scripted_reply r = ok("slow");
    r.delay = 300ms;
    return r;
  });
  auto options = options_for(server->port());
  options.max_connections = 1;
  auto pool = make_https_pool(io_, options);
  outcome a;
  outcome b;
  outcome c;
  pool->send(post("/a"), capture(a));
  pool->send(post("/b"), capture(b));
  pool->send(post("/c"), capture(c));
  ASSERT_TRUE(run_until([&] { return server->requests() == 1; }));
  pool->shutdown();
  EXPECT_FALSE(b.done);  // posted, never called inline
  ASSERT_TRUE(run_until([&] { return a.done && b.done && c.done; }));
  EXPECT_EQ(a.response.error, transport_error::none);
  EXPECT_EQ(a.response.body, "slow");
  EXPECT_EQ(b.response.error, transport_error::shutdown);
  EXPECT_EQ(c.response.error, transport_error::shutdown);
  EXPECT_FALSE(maybe_delivered(b.response.error));

  outcome d;
  pool->send(post("/d"), capture(d));
  EXPECT_FALSE(pool->try_send_now(post("/e"), capture(d)));
  ASSERT_TRUE(run_until([&] { return d.done; }));
  EXPECT_EQ(d.response.error, transport_error::shutdown);
  ASSERT_TRUE(run_until([&] {
    const auto s = pool->stats();
    return s.idle + s.busy + s.connecting + s.closing == 0 && server->active() == 0;
  }));
  EXPECT_EQ(server->requests(), 1u);
}

TEST_F(HttpsPoolTest, ConnectFailuresBackOffThenRecover) {
  unsigned short port = 0;
  {
    net::io_context scratch;
    tcp::acceptor probe(scratch, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }  // closed: connecting to it is refused
  auto pool = make_https_pool(io_, options_for(port));
  outcome o;
  pool->send(post("/calls"), capture(o));
  run_for(1000ms);  // attempts at about 0, 100, 300 and 700 ms
  EXPECT_FALSE(o.done);
  const auto failed = pool->stats().failures["connect_failed"];
  EXPECT_GE(failed, 3u);
  EXPECT_LE(failed, 5u);
  EXPECT_NE(pool->stats().last_error.find("connecting to 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << pool->stats().last_error;

  tls_test_server::options server_options;
  server_options.port = port;
  auto server = start_server([](const received_request&) { return ok(); }, server_options);
  ASSERT_TRUE(run_until([&] { return o.done; }, 3s));
  EXPECT_EQ(o.response.error, transport_error::none);
  EXPECT_EQ(o.response.status, 200);
  EXPECT_EQ(pool->stats().opened, 1u);
  EXPECT_EQ(server->requests(), 1u);
}

TEST_F(HttpsPoolTest, TrySendNowAndWhenReady) {
  auto server = start_server([](const received_request&) { return ok(); });
  auto pool = make_https_pool(io_, options_for(server->port()));
  outcome o;
  EXPECT_FALSE(pool->try_send_now(post("/1"), capture(o)));
  run_for(100ms);
  EXPECT_EQ(server->accepted(), 0u);  // no side effects
  EXPECT_FALSE(o.done);

  int ready_calls = 0;
  pool->when_ready([&] { ++ready_calls; });
  pool->when_ready([&] { ++ready_calls; });
  ASSERT_TRUE(run_until([&] { return ready_calls == 2; }));
  EXPECT_GE(pool->ready_count(), 1u);
  EXPECT_LE(server->accepted(), 2u);  // at most one attempt per waiter

  int immediate = 0;
  pool->when_ready([&] { ++immediate; });
  EXPECT_EQ(immediate, 0);  // posted even when a connection is ready
  ASSERT_TRUE(run_until([&] { return immediate == 1; }));

  const std::size_t ready_before = pool->ready_count();
  ASSERT_TRUE(pool->try_send_now(post("/1"), capture(o)));
  EXPECT_EQ(pool->ready_count(), ready_before - 1);
  ASSERT_TRUE(run_until([&] { return o.done; }));
  EXPECT_EQ(o.response.status, 200);
}

TEST_F(HttpsPoolTest, QueuedSendsAreServedBeforeWhenReadyWaiters) {
  auto server = start_server([](const received_request&) {
    scripted_reply r = ok();
    r.delay = 50ms;
    return r;
  });
  auto options = options_for(server->port());
  options.max_connections = 1;
  auto pool = make_https_pool(io_, options);
  outcome a;
  outcome b;
  pool->send(post("/a"), capture(a));
  ASSERT_TRUE(run_until([&] { return server->requests() == 1; }));
  bool waiter_called = false;
  bool b_done_when_called = false;
  pool->when_ready([&] {
    waiter_called = true;
    b_done_when_called = b.done;
  });
  pool->send(post("/b"), capture(b));
  ASSERT_TRUE(run_until([&] { return waiter_called; }));
  EXPECT_TRUE(a.done);
  EXPECT_TRUE(b_done_when_called);
  EXPECT_EQ(server->accepted(), 1u);
}

TEST_F(HttpsPoolTest, DestroyingThePoolMidFlightDropsCallbacksAndClosesSockets) {
  auto server = start_server([](const received_request&) {
    scripted_reply r = ok();
    r.delay = 200ms;
    return r;
  });
  auto options = options_for(server->port());
  options.max_connections = 3;
  auto pool = make_https_pool(io_, options);
  int called = 0;
  auto count = [&called](http_response) { ++called; };
  pool->send(post("/1"), count);
  pool->send(post("/2"), count);
  ASSERT_TRUE(run_until([&] { return server->requests() == 2; }));
  pool->send(post("/3"), count);  // opens the third connection
  pool->send(post("/4"), count);  // queued
  pool->when_ready([&called] { ++called; });
  pool.reset();
  run_for(400ms);
  EXPECT_EQ(called, 0);
  EXPECT_TRUE(run_until([&] { return server->active() == 0; }, 2s));
}

}  // namespace
}  // namespace dialer
