// agentix-sim's webhooks over real sockets on 127.0.0.1: the simulator, its TLS server and its
// webhook sender run in this process; calls are placed over TLS with a small blocking OpenSSL
// client; a small plain-HTTP receiver (a thread per connection) records every delivery and answers
// as each test scripts. No test sleeps: the sender's stop() returns as soon as nothing is
// pending (bounded by --webhook-drain), and that is the moment the tests read the outcome.
#ifndef SIMDJSON_THREADS_ENABLED
#define SIMDJSON_THREADS_ENABLED 1  // as dialer_sim is compiled; see sim_webhook_test.cpp
#endif
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "sim/server.hpp"
#include "sim/simulator.hpp"
#include "sim/tls_cert.hpp"
#include "sim/webhook_client.hpp"

namespace dialer::sim {
namespace {

constexpr std::string_view key = "pk_test_key";
constexpr std::string_view phone_id = "6f1c2a9e-0000-4000-8000-000000000001";
constexpr std::string_view secret = "shared-secret-value-0123";
constexpr std::string_view signing_secret = "signing-secret-value-0123";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

std::string hmac_hex(std::string_view k, std::string_view message) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), md, &len);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 0xf]);
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// The receiver: HTTP/1.1 keep-alive, requests framed by Content-Length.

struct received {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string session_id;
  std::string event;
  int status = 0;  // what the receiver answered
};

class receiver {
 public:
  // Answers each request with policy(request, n), n = how many requests with the same
  // (sessionId, event) arrived before this one, counting it (1 for the first).
  using policy = std::function<int(const received&, int)>;

  explicit receiver(policy p = [](const received&, int) { return 200; }) : policy_(std::move(p)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener_, 64), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~receiver() { stop(); }

  void stop() {
    if (stopped_.exchange(true)) {
      return;
    }
    ::shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
    ::close(listener_);
    std::vector<std::thread> threads;
    {
      const std::lock_guard lock(mutex_);
      for (const int fd : open_fds_) {
        ::shutdown(fd, SHUT_RDWR);
      }
      threads.swap(threads_);
    }
    for (auto& t : threads) {
      t.join();
    }
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::vector<received> requests() {
    const std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        return;
      }
      const std::lock_guard lock(mutex_);
      if (stopped_) {
        ::close(fd);
        return;
      }
      open_fds_.insert(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    std::string in;
    char buf[16384];
    for (;;) {
      const auto head_end = in.find("\r\n\r\n");
      std::size_t total = 0;
      if (head_end != std::string::npos) {
        received r = parse_head(in.substr(0, head_end));
        const std::size_t length =
            std::stoul(r.headers.count("content-length") != 0 ? r.headers["content-length"]
                                                              : std::string("0"));
        total = head_end + 4 + length;
        if (in.size() >= total) {
          r.body = in.substr(head_end + 4, length);
          in.erase(0, total);
          respond(fd, std::move(r));
          continue;
        }
      }
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        break;
      }
      in.append(buf, static_cast<std::size_t>(n));
    }
    const std::lock_guard lock(mutex_);
    open_fds_.erase(fd);
    ::close(fd);
  }

  static received parse_head(const std::string& head) {
    received r;
    std::istringstream lines(head);
    std::string line;
    std::getline(lines, line);
    std::istringstream request_line(line);
    request_line >> r.method >> r.target;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      const auto colon = line.find(':');
      if (colon == std::string::npos) {
        continue;
      }
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers[lower(line.substr(0, colon))] = value;
    }
    return r;
  }

  void respond(int fd, received r) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(r.body).get(doc) == simdjson::SUCCESS) {
      std::string_view v;
      if (doc["sessionId"].get_string().get(v) == simdjson::SUCCESS) {
        r.session_id = v;
      }
      if (doc["event"].get_string().get(v) == simdjson::SUCCESS) {
        r.event = v;
      }
    }
    int nth = 0;
    {
      const std::lock_guard lock(mutex_);
      nth = ++seen_[r.session_id + " " + r.event];
    }
    r.status = policy_(r, nth);
    const std::string body = R"({"ok":true})";
    const std::string response =
        "HTTP/1.1 " + std::to_string(r.status) +
        " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    {
      const std::lock_guard lock(mutex_);
      requests_.push_back(std::move(r));
    }
    (void)::send(fd, response.data(), response.size(), MSG_NOSIGNAL);
  }

  policy policy_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::set<int> open_fds_;
  std::vector<std::thread> threads_;
  std::vector<received> requests_;
  std::map<std::string, int> seen_;
};

// ---------------------------------------------------------------------------------------------
// A blocking TLS client: one connection per request.

struct response {
  int status = 0;  // 0: no response (the connection was reset)
  std::string body;
};

response https(int port, const std::string& ca, const std::string& method,
               const std::string& target, const std::string& body = {}) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  response out;
  SSL* ssl = nullptr;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) == 1) {
      const std::string request =
          method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nx-api-key: " + std::string(key) +
          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\nConnection: close\r\n\r\n" + body;
      if (SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0) {
        std::string in;
        char buf[16384];
        for (;;) {
          const int n = SSL_read(ssl, buf, sizeof buf);
          if (n <= 0) {
            break;
          }
          in.append(buf, static_cast<std::size_t>(n));
        }
        const auto head_end = in.find("\r\n\r\n");
        if (in.size() > 12 && head_end != std::string::npos) {
          out.status = std::stoi(in.substr(9, 3));
          out.body = in.substr(head_end + 4);
        }
      }
    }
    ERR_clear_error();
  }
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
  return out;
}

std::string call_body(const std::string& task) {
  return R"({"to_phone_number":"+971501234567","agent_id":"d796c919-7ef3-413a-8bf1-351b6442953a",)"
         R"("max_duration_seconds":600,"session_variables":{"taskId":")" +
         task + R"(","campaignId":"loop"}})";
}

// ---------------------------------------------------------------------------------------------
// The simulator in this process.

class sim_webhook_loopback_test : public ::testing::Test {
 protected:
  sim_webhook_loopback_test()
      : dir_(::testing::TempDir() + "sim_webhook_loopback_" + std::to_string(::getpid())) {
    std::filesystem::create_directories(dir_);
    config_.api_key = key;
    config_.cert_dir = dir_ + "/cert";
    config_.phone_number_ids = {std::string(phone_id)};
    config_.call_duration = {milliseconds(0), milliseconds(20)};
    config_.ledger_path = dir_ + "/ledger.jsonl";
    config_.webhooks.log_path = dir_ + "/webhooks.jsonl";
    config_.webhooks.drain = seconds(20);  // stop() returns earlier, once nothing is pending
    config_.webhooks.backoff = {milliseconds(10), milliseconds(40)};
  }
  ~sim_webhook_loopback_test() override {
    finish();
    std::filesystem::remove_all(dir_);
  }

  void start(int receiver_port, int threads = 1) {
    config_.webhooks.url =
        parse_webhook_url("http://127.0.0.1:" + std::to_string(receiver_port) + "/hooks");
    config_.threads = threads;
    const cert_paths tls = ensure_certificate(config_.cert_dir);
    ca_ = tls.cert;
    sim_ = std::make_unique<simulator>(config_, clock_, 42);
    server_ = std::make_unique<sim_server>(
        *sim_, server_options{"127.0.0.1", 0, threads, tls, seconds(60)});
    sender_ = std::make_unique<webhook_sender>(*sim_->webhooks(), clock_);
    sender_->start();
    server_thread_ = std::thread([this] { server_->run(); });
  }

  response place(const std::string& task) {
    return https(server_->port(), ca_, "POST",
                 "/api/v1/phone-numbers/" + std::string(phone_id) + "/calls/start",
                 call_body(task));
  }
  response get(const std::string& target) { return https(server_->port(), ca_, "GET", target); }

  // Stops the API, then the sender: returns once every webhook reached its outcome (or the drain
  // ran out), so what the receiver holds then is final.
  void finish() {
    if (server_thread_.joinable()) {
      server_->stop();
      server_thread_.join();
    }
    if (sender_) {
      sender_->stop();
    }
  }

  simdjson::dom::element webhook_stats() {
    stats_text_ = sim_->stats_json();
    simdjson::dom::element root;
    EXPECT_EQ(parser_.parse(stats_text_).get(root), simdjson::SUCCESS) << stats_text_;
    return root["webhooks"].value_unsafe();
  }
  static std::int64_t count(simdjson::dom::element e, const char* name) {
    std::int64_t v = -1;
    EXPECT_EQ(e[name].get_int64().get(v), simdjson::SUCCESS) << name;
    return v;
  }
  std::vector<std::string> log_lines() { return lines_of(read_file(config_.webhooks.log_path)); }
  static int count_matching(const std::vector<std::string>& lines, const std::string& needle) {
    int n = 0;
    for (const std::string& l : lines) {
      n += l.find(needle) != std::string::npos;
    }
    return n;
  }

  std::string dir_;
  sim_config config_;
  real_clock clock_;
  std::string ca_;
  std::unique_ptr<simulator> sim_;
  std::unique_ptr<sim_server> server_;
  std::unique_ptr<webhook_sender> sender_;
  std::thread server_thread_;
  simdjson::dom::parser parser_;
  std::string stats_text_;
};

TEST_F(sim_webhook_loopback_test, created_then_ended_with_matching_fields_secret_and_signature) {
  receiver hooks;
  config_.call_duration = {milliseconds(150), milliseconds(250)};
  config_.webhooks.secret_header = "X-Agentix-Webhook-Secret";
  config_.webhooks.secret = secret;
  config_.webhooks.signing_secret = signing_secret;
  config_.end_reasons = parse_end_reasons("completed=2,no_answer=1,voicemail=1");
  start(hooks.port(), 2);
  const std::int64_t t_start =
      std::chrono::duration_cast<seconds>(clock_.system_now().time_since_epoch()).count();

  // Four clients at once on a two-thread server.
  std::vector<std::string> ids(20);
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 5; ++i) {
        const response r = place("T-" + std::to_string(c * 5 + i));
        if (r.status == 201) {
          ids[static_cast<std::size_t>(c * 5 + i)] = r.body.substr(14, 36);
        }
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  for (const std::string& id : ids) {
    ASSERT_EQ(id.size(), 36u);
  }
  // The session documents, read once every call has ended (before the API stops).
  sender_->stop();  // waits for every delivery, so every call has ended
  std::map<std::string, std::string> documents;
  for (const std::string& id : ids) {
    const response r = get("/api/v1/chat/sessions/" + id);
    ASSERT_EQ(r.status, 200);
    documents[id] = r.body;
  }
  finish();
  const std::int64_t t_end =
      std::chrono::duration_cast<seconds>(clock_.system_now().time_since_epoch()).count();

  const std::vector<received> got = hooks.requests();
  ASSERT_EQ(got.size(), 40u);
  std::map<std::string, std::vector<const received*>> by_session;
  for (const received& r : got) {
    by_session[r.session_id].push_back(&r);
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/hooks");
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_EQ(r.headers.at("x-agentix-webhook-secret"), secret);
    const std::string& sig = r.headers.at("x-agentix-signature");
    ASSERT_EQ(sig.substr(0, 2), "t=") << sig;
    const auto comma = sig.find(",v1=");
    ASSERT_NE(comma, std::string::npos) << sig;
    const std::string t = sig.substr(2, comma - 2);
    EXPECT_GE(std::stoll(t), t_start);
    EXPECT_LE(std::stoll(t), t_end);
    EXPECT_EQ(sig.substr(comma + 4), hmac_hex(signing_secret, t + "." + r.body)) << sig;
  }
  ASSERT_EQ(by_session.size(), 20u);
  for (const std::string& id : ids) {
    const auto& events = by_session[id];
    ASSERT_EQ(events.size(), 2u) << id;
    // 150 ms apart at least: created arrives first.
    EXPECT_EQ(events[0]->event, "session.created");
    EXPECT_EQ(events[1]->event, "session.ended");
    const std::string& doc = documents[id];
    const std::string doc_prefix = R"({"sessionId":")" + id + R"(","status":"ended")";
    const std::string event_prefix = R"({"event":"session.ended","sessionId":")" + id + "\"";
    ASSERT_EQ(doc.substr(0, doc_prefix.size()), doc_prefix);
    ASSERT_EQ(events[1]->body.substr(0, event_prefix.size()), event_prefix);
    EXPECT_EQ(events[1]->body.substr(event_prefix.size()), doc.substr(doc_prefix.size()));
    EXPECT_EQ(events[0]->body.find("endReason"), std::string::npos);
    EXPECT_NE(events[0]->body.find(R"("sessionVariables":{"taskId":"T-)"), std::string::npos);
  }

  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "events"), 40);
  EXPECT_EQ(count(w, "sent"), 40);
  EXPECT_EQ(count(w, "delivered"), 40);
  EXPECT_EQ(count(w, "retries"), 0);
  EXPECT_EQ(count(w, "pending_at_exit"), 0);
  const std::vector<std::string> log = log_lines();
  EXPECT_EQ(log.size(), 40u);
  EXPECT_EQ(count_matching(log, R"("result":"delivered","attempts":1,"status":200)"), 40);
}

TEST_F(sim_webhook_loopback_test, answered_500_twice_then_200_takes_three_attempts) {
  receiver hooks([](const received&, int nth) { return nth <= 2 ? 500 : 200; });
  start(hooks.port());
  ASSERT_EQ(place("T-1").status, 201);
  ASSERT_EQ(place("T-2").status, 201);
  finish();

  const std::vector<received> got = hooks.requests();
  EXPECT_EQ(got.size(), 12u);  // 2 calls x 2 events x 3 attempts
  std::map<std::string, int> attempts;
  for (const received& r : got) {
    ++attempts[r.session_id + " " + r.event];
  }
  EXPECT_EQ(attempts.size(), 4u);
  for (const auto& [k, n] : attempts) {
    EXPECT_EQ(n, 3) << k;
  }
  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "sent"), 12);
  EXPECT_EQ(count(w, "delivered"), 4);
  EXPECT_EQ(count(w, "retries"), 8);
  EXPECT_EQ(count(w["non2xx_by_status"], "500"), 8);
  EXPECT_EQ(count(w, "gave_up"), 0);
  const std::vector<std::string> log = log_lines();
  EXPECT_EQ(log.size(), 4u);
  EXPECT_EQ(count_matching(log, R"("result":"delivered","attempts":3,"status":200)"), 4);
}

TEST_F(sim_webhook_loopback_test, persistent_failure_is_given_up_after_max_attempts) {
  receiver hooks([](const received&, int) { return 503; });
  config_.webhooks.max_attempts = 3;
  start(hooks.port());
  ASSERT_EQ(place("T-1").status, 201);
  finish();
  EXPECT_EQ(hooks.requests().size(), 6u);
  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "gave_up"), 2);
  EXPECT_EQ(count(w, "delivered"), 0);
  EXPECT_EQ(count_matching(log_lines(), R"("result":"gave_up","attempts":3,"status":503)"), 2);
}

TEST_F(sim_webhook_loopback_test, lose_one_delivers_nothing_and_logs_lost) {
  receiver hooks;
  config_.webhooks.lose = 1;
  start(hooks.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(place("T-" + std::to_string(i)).status, 201);
  }
  finish();
  EXPECT_EQ(hooks.requests().size(), 0u);
  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "lost"), 6);
  EXPECT_EQ(count(w, "sent"), 0);
  const std::vector<std::string> log = log_lines();
  EXPECT_EQ(log.size(), 6u);
  EXPECT_EQ(count_matching(log, R"("result":"lost")"), 6);
}

TEST_F(sim_webhook_loopback_test, duplicate_one_delivers_every_event_twice) {
  receiver hooks;
  config_.webhooks.duplicate = 1;
  start(hooks.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(place("T-" + std::to_string(i)).status, 201);
  }
  finish();
  std::map<std::string, int> deliveries;
  for (const received& r : hooks.requests()) {
    ++deliveries[r.session_id + " " + r.event];
  }
  EXPECT_EQ(deliveries.size(), 6u);
  for (const auto& [k, n] : deliveries) {
    EXPECT_EQ(n, 2) << k;
  }
  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "duplicated"), 6);
  EXPECT_EQ(count(w, "delivered"), 6);
  EXPECT_EQ(count(w, "duplicates_delivered"), 6);
  const std::vector<std::string> log = log_lines();
  EXPECT_EQ(count_matching(log, R"("result":"delivered")"), 6);
  EXPECT_EQ(count_matching(log, R"("result":"duplicate_delivered")"), 6);
}

TEST_F(sim_webhook_loopback_test, calls_answered_500_or_dropped_still_get_their_webhooks) {
  receiver hooks;
  config_.fault_500_after_place = 0.5;
  config_.fault_drop_after_place = 0.5;
  start(hooks.port());
  std::set<std::string> tasks;
  for (int i = 0; i < 4; ++i) {
    const response r = place("T-" + std::to_string(i));
    EXPECT_TRUE(r.status == 500 || r.status == 0) << r.status;  // 0: reset, no response
    tasks.insert("T-" + std::to_string(i));
  }
  finish();
  std::map<std::string, std::set<std::string>> events_by_task;
  for (const received& r : hooks.requests()) {
    const auto at = r.body.find(R"("taskId":")") + 10;
    events_by_task[r.body.substr(at, r.body.find('"', at) - at)].insert(r.event);
  }
  ASSERT_EQ(events_by_task.size(), 4u);
  for (const std::string& t : tasks) {
    EXPECT_EQ(events_by_task[t], (std::set<std::string>{"session.created", "session.ended"})) << t;
  }
}

TEST_F(sim_webhook_loopback_test, an_unreachable_receiver_does_not_hold_up_the_exit) {
  // A port nobody listens on: bound, then closed.
  int port = 0;
  {
    receiver gone;
    port = gone.port();
  }
  config_.webhooks.drain = milliseconds(300);
  config_.webhooks.backoff = {milliseconds(100), seconds(5)};
  start(port);
  ASSERT_EQ(place("T-1").status, 201);
  ASSERT_EQ(place("T-2").status, 201);
  finish();  // returns after the drain: the deliveries are still waiting for a retry
  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "delivered"), 0);
  EXPECT_EQ(count(w, "gave_up"), 0);
  EXPECT_EQ(count(w, "pending"), 0);
  EXPECT_EQ(count(w, "pending_at_exit"), 4);
  EXPECT_GE(count(w["transport_errors"], "connect"), 4);
}

}  // namespace
}  // namespace dialer::sim
