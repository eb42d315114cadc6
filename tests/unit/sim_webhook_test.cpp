// Webhook delivery of agentix-sim without sockets: options, end reasons, fault draws, the retry
// schedule, the signature, the payloads (parsed back), and the queue's accounting on a manual
// clock. The loopback test (sim_webhook_loopback_test.cpp) sends them over real sockets.
// dialer_sim is compiled with simdjson's CMake definition SIMDJSON_THREADS_ENABLED=1, which
// changes dom::parser's layout; it links simdjson privately, so this test does not inherit the
// definition. Without it, the inline parser code of this file and of sim/request.cpp differ (an
// ODR violation that crashes).
#ifndef SIMDJSON_THREADS_ENABLED
#define SIMDJSON_THREADS_ENABLED 1
#endif
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "sim/end_reason.hpp"
#include "sim/prng.hpp"
#include "sim/sim_config.hpp"
#include "sim/simulator.hpp"
#include "sim/webhook.hpp"
#include "sim/webhook_queue.hpp"

namespace dialer::sim {
namespace {

constexpr std::string_view key = "pk_test_key";
constexpr std::string_view phone_id = "6f1c2a9e-0000-4000-8000-000000000001";
const std::string start_target = "/api/v1/phone-numbers/" + std::string(phone_id) + "/calls/start";

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

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "sim_webhook_test_" + std::to_string(::getpid()) + "_" + name;
}

std::string hmac_hex(std::string_view secret, std::string_view message) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), md, &len);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 0xf]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Options

std::optional<sim_config> parse(std::vector<std::string_view> extra) {
  std::vector<std::string_view> args = {"--cert-dir", "d", "--api-key", "k"};
  args.insert(args.end(), extra.begin(), extra.end());
  return parse_sim_args(args);
}

class sim_webhook_options_test : public ::testing::Test {
 protected:
  sim_webhook_options_test() {
    std::ofstream(secret_path_) << "shared-secret-value-0123\n";
    std::ofstream(signing_path_) << "signing-secret-value-0123\r\n";
  }
  ~sim_webhook_options_test() override {
    std::filesystem::remove(secret_path_);
    std::filesystem::remove(signing_path_);
  }
  std::string secret_path_ = temp_path("secret");
  std::string signing_path_ = temp_path("signing");
};

TEST_F(sim_webhook_options_test, defaults_mean_no_webhooks_and_completed_calls) {
  const auto cfg = parse({});
  ASSERT_TRUE(cfg.has_value());
  EXPECT_FALSE(cfg->webhooks.enabled());
  EXPECT_EQ(cfg->end_reasons, (end_reason_weights{{end_reason::completed, 1}}));
}

TEST_F(sim_webhook_options_test, every_option) {
  const auto cfg = parse({"--webhook-url",
                          "http://127.0.0.1:8080/hooks/agentix?x=1",
                          "--end-reasons",
                          "completed=0.6,no_answer=0.2,busy=0.1,voicemail=0.05,failed=0.05",
                          "--webhook-secret-file",
                          secret_path_,
                          "--webhook-secret-header",
                          "X-Hook-Secret",
                          "--webhook-signing-secret-file",
                          signing_path_,
                          "--webhook-signature-header=X-Sig",
                          "--webhook-lose",
                          "0.1",
                          "--webhook-duplicate",
                          "0.2",
                          "--webhook-delay",
                          "10ms..2s",
                          "--webhook-backoff",
                          "50ms..1s",
                          "--webhook-max-attempts",
                          "3",
                          "--webhook-connections",
                          "4",
                          "--webhook-queue-limit",
                          "500",
                          "--webhook-timeout",
                          "2s",
                          "--webhook-drain",
                          "0",
                          "--webhook-log",
                          "/tmp/wh.jsonl"});
  ASSERT_TRUE(cfg.has_value());
  const webhook_options& w = cfg->webhooks;
  EXPECT_TRUE(w.enabled());
  EXPECT_EQ(w.url.host, "127.0.0.1");
  EXPECT_EQ(w.url.port, 8080);
  EXPECT_EQ(w.url.target, "/hooks/agentix?x=1");
  EXPECT_EQ(w.url.host_header, "127.0.0.1:8080");
  EXPECT_EQ(w.secret_header, "X-Hook-Secret");
  EXPECT_EQ(w.secret, "shared-secret-value-0123");  // trailing newline dropped
  EXPECT_EQ(w.signature_header, "X-Sig");
  EXPECT_EQ(w.signing_secret, "signing-secret-value-0123");
  EXPECT_EQ(w.lose, 0.1);
  EXPECT_EQ(w.duplicate, 0.2);
  EXPECT_EQ(w.delay, (duration_range{milliseconds(10), seconds(2)}));
  EXPECT_EQ(w.backoff, (duration_range{milliseconds(50), seconds(1)}));
  EXPECT_EQ(w.max_attempts, 3);
  EXPECT_EQ(w.connections, 4);
  EXPECT_EQ(w.queue_limit, 500);
  EXPECT_EQ(w.timeout, seconds(2));
  EXPECT_EQ(w.drain, nanoseconds::zero());
  EXPECT_EQ(w.log_path, "/tmp/wh.jsonl");
  ASSERT_EQ(cfg->end_reasons.size(), 5u);
  EXPECT_EQ(cfg->end_reasons[1], (end_reason_weight{end_reason::no_answer, 0.2}));
  EXPECT_EQ(cfg->end_reasons[4], (end_reason_weight{end_reason::failed, 0.05}));
}

TEST_F(sim_webhook_options_test, webhook_defaults) {
  const auto cfg =
      parse({"--webhook-url", "http://[::1]:9/", "--webhook-secret-file", secret_path_});
  ASSERT_TRUE(cfg.has_value());
  const webhook_options& w = cfg->webhooks;
  EXPECT_EQ(w.url.host, "::1");
  EXPECT_EQ(w.url.host_header, "[::1]:9");
  EXPECT_EQ(w.url.target, "/");
  EXPECT_EQ(w.secret_header, "X-Agentix-Webhook-Secret");  // dialerd's default
  EXPECT_EQ(w.signature_header, "X-Agentix-Signature");
  EXPECT_TRUE(w.signing_secret.empty());
  EXPECT_EQ(w.backoff, (duration_range{milliseconds(100), seconds(5)}));
  EXPECT_EQ(w.max_attempts, 8);
  EXPECT_EQ(w.connections, 8);
  EXPECT_EQ(w.queue_limit, 100'000);
  EXPECT_EQ(w.drain, seconds(1));
  EXPECT_EQ(parse({"--webhook-url", "http://127.0.0.1"})->webhooks.url.port, 80);
  EXPECT_EQ(parse({"--webhook-url", "http://127.0.0.1"})->webhooks.url.target, "/");
}

TEST_F(sim_webhook_options_test, bad_values_are_refused) {
  const std::vector<std::vector<std::string_view>> bad = {
      {"--webhook-url", "https://127.0.0.1:1/"},   // plain HTTP only
      {"--webhook-url", "http://localhost:1/"},    // IP literals only
      {"--webhook-url", "http://127.0.0.1:0/"},    // port 1..65535
      {"--webhook-url", "http://127.0.0.1:x/"},    //
      {"--webhook-url", "http://127.0.0.1:/"},     //
      {"--webhook-url", "http://[::1/"},           //
      {"--webhook-url", "http://::1:80/"},         // IPv6 needs brackets
      {"--webhook-url", "http://u@127.0.0.1:1/"},  // no user info
      {"--webhook-url", "http://127.0.0.1:1/a b"},
      {"--webhook-url", "http://127.0.0.1:1/#f"},
      {"--webhook-lose", "0.5"},  // needs --webhook-url
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-lose", "1.5"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-duplicate", "-0.1"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-delay", "2s..1s"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-backoff", "0..1s"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-max-attempts", "0"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-connections", "0"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-queue-limit", "0"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-timeout", "0"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-secret-header", "X-A"},  // no file
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-signature-header", "Bad Name"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-signature-header", "Content-Length"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-secret-file", "/nonexistent/x"},
      {"--webhook-url", "http://127.0.0.1:1/", "--webhook-bogus", "1"},
      {"--end-reasons", "completed=1,hangup=1"},
      {"--end-reasons", "completed=1,completed=2"},
      {"--end-reasons", "completed=-1,busy=2"},
      {"--end-reasons", "completed=0,busy=0"},
      {"--end-reasons", "max_duration=1"},  // not drawable: it follows from the duration
      {"--end-reasons", "completed"},
      {"--end-reasons", "completed=x"},
      {"--end-reasons", ""},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const auto a : args) {
      joined += std::string(a) + " ";
    }
    EXPECT_THROW((void)parse(args), config_error) << joined;
  }
}

TEST_F(sim_webhook_options_test, secrets_appear_in_no_message) {
  const std::string bad_secret = temp_path("bad_secret");
  std::ofstream(bad_secret) << "very-secret\x01value\n";
  try {
    (void)parse({"--webhook-url", "http://127.0.0.1:1/", "--webhook-secret-file", bad_secret});
    ADD_FAILURE() << "a control character in a header secret must be refused";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()).find("very-secret"), std::string::npos) << e.what();
  }
  std::filesystem::remove(bad_secret);
}

// ---------------------------------------------------------------------------------------------
// End reasons

TEST(sim_webhook_end_reason_test, weights_give_the_distribution) {
  const end_reason_weights weights =
      parse_end_reasons("completed=0.6,no_answer=0.2,busy=0.1,voicemail=0.05,failed=0.05");
  prng rng(42);
  std::array<int, end_reason_count> counts{};
  constexpr int n = 200'000;
  for (int i = 0; i < n; ++i) {
    ++counts[static_cast<std::size_t>(pick_end_reason(weights, rng.next()))];
  }
  const std::map<end_reason, double> expected = {{end_reason::completed, 0.6},
                                                 {end_reason::no_answer, 0.2},
                                                 {end_reason::busy, 0.1},
                                                 {end_reason::voicemail, 0.05},
                                                 {end_reason::failed, 0.05}};
  for (const auto& [reason, p] : expected) {
    const double got = counts[static_cast<std::size_t>(reason)] / static_cast<double>(n);
    // Five standard deviations of a binomial proportion: fails by chance about once in 3.5e6.
    EXPECT_NEAR(got, p, 5 * std::sqrt(p * (1 - p) / n)) << to_string(reason);
  }
  EXPECT_EQ(counts[static_cast<std::size_t>(end_reason::max_duration)], 0);
}

TEST(sim_webhook_end_reason_test, a_function_of_the_bits) {
  const end_reason_weights weights = parse_end_reasons("completed=1,busy=1");
  prng rng(7);
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t bits = rng.next();
    EXPECT_EQ(pick_end_reason(weights, bits), pick_end_reason(weights, bits));
  }
  EXPECT_EQ(pick_end_reason(parse_end_reasons("voicemail=3"), 12345), end_reason::voicemail);
  // A zero weight is never picked, whatever the bits.
  const end_reason_weights some_zero = parse_end_reasons("completed=0,failed=1,busy=0");
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(pick_end_reason(some_zero, rng.next()), end_reason::failed);
  }
  EXPECT_EQ(pick_end_reason(some_zero, ~std::uint64_t{0}), end_reason::failed);
  EXPECT_EQ(pick_end_reason(some_zero, 0), end_reason::failed);
}

// ---------------------------------------------------------------------------------------------
// Fault draws and the retry schedule

TEST(sim_webhook_plan_test, fault_draws_have_their_probabilities_and_ranges) {
  webhook_options o;
  o.lose = 0.3;
  o.duplicate = 0.2;
  o.delay = {milliseconds(10), milliseconds(500)};
  prng rng(99);
  constexpr int n = 100'000;
  int lost = 0;
  int duplicated = 0;
  for (int i = 0; i < n; ++i) {
    const event_faults f = draw_event_faults(o, rng);
    lost += f.lost;
    duplicated += f.duplicate;
    EXPECT_GE(f.delay, milliseconds(10));
    EXPECT_LE(f.delay, milliseconds(500));
    if (f.duplicate) {
      EXPECT_GE(f.copy_delay, nanoseconds::zero());
      EXPECT_LE(f.copy_delay, milliseconds(500));  // max(200 ms, delay MAX)
    } else {
      EXPECT_EQ(f.copy_delay, nanoseconds::zero());
    }
  }
  EXPECT_NEAR(lost / static_cast<double>(n), 0.3, 5 * std::sqrt(0.3 * 0.7 / n));
  EXPECT_NEAR(duplicated / static_cast<double>(n), 0.2, 5 * std::sqrt(0.2 * 0.8 / n));
}

TEST(sim_webhook_plan_test, draws_replay_with_the_seed_and_cost_nothing_when_off) {
  webhook_options o;
  o.lose = 0.5;
  o.duplicate = 0.5;
  o.delay = {nanoseconds::zero(), seconds(1)};
  prng a(5);
  prng b(5);
  for (int i = 0; i < 100; ++i) {
    const event_faults x = draw_event_faults(o, a);
    const event_faults y = draw_event_faults(o, b);
    EXPECT_EQ(x.lost, y.lost);
    EXPECT_EQ(x.duplicate, y.duplicate);
    EXPECT_EQ(x.delay, y.delay);
    EXPECT_EQ(x.copy_delay, y.copy_delay);
  }
  // No faults configured: no draw, so the API's own sequence (ids, durations) is unchanged.
  prng c(5);
  prng d(5);
  const event_faults none = draw_event_faults(webhook_options{}, c);
  EXPECT_FALSE(none.lost);
  EXPECT_FALSE(none.duplicate);
  EXPECT_EQ(none.delay, nanoseconds::zero());
  EXPECT_EQ(c.next(), d.next());
  // lose = 1 and duplicate = 1 always happen.
  webhook_options always;
  always.lose = 1;
  always.duplicate = 1;
  for (int i = 0; i < 100; ++i) {
    const event_faults f = draw_event_faults(always, c);
    EXPECT_TRUE(f.lost);
    EXPECT_TRUE(f.duplicate);
  }
}

TEST(sim_webhook_plan_test, retry_backoff_doubles_up_to_the_cap) {
  const duration_range backoff{milliseconds(100), seconds(5)};
  const std::vector<nanoseconds> expected = {
      milliseconds(100),  milliseconds(200),  milliseconds(400), milliseconds(800),
      milliseconds(1600), milliseconds(3200), seconds(5),        seconds(5)};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(retry_delay(backoff, static_cast<int>(i) + 1), expected[i]) << i + 1;
  }
  EXPECT_EQ(retry_delay(backoff, 60), seconds(5));  // no overflow
  EXPECT_EQ(retry_delay({milliseconds(30), milliseconds(50)}, 2), milliseconds(50));
}

// ---------------------------------------------------------------------------------------------
// Signature and request text

TEST(sim_webhook_request_test, signature_matches_an_independent_hmac) {
  const std::string secret = "signing-secret-value-0123";
  hmac_sha256 signer(secret);
  const std::regex shape("t=([0-9]+),v1=([0-9a-f]{64})");
  // Twice with different bodies: the keyed context is reused between messages.
  for (const std::string body : {R"({"event":"session.created"})", R"({"a":"\u00e9"})", ""}) {
    std::string header;
    append_webhook_signature(header, signer, 1795860902, body);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(header, m, shape)) << header;
    EXPECT_EQ(m[1], "1795860902");
    EXPECT_EQ(m[2], hmac_hex(secret, "1795860902." + body)) << body;
  }
  // Another key gives another MAC.
  hmac_sha256 other("another-secret-0123456");
  std::string a;
  std::string b;
  append_webhook_signature(a, signer, 1, "x");
  append_webhook_signature(b, other, 1, "x");
  EXPECT_NE(a, b);
}

TEST(sim_webhook_request_test, request_text) {
  webhook_options o;
  o.url = parse_webhook_url("http://127.0.0.1:8080/hooks?x=1");
  const std::string body = R"({"event":"session.created"})";
  std::string plain;
  append_webhook_request(plain, o, body, 100, nullptr);
  EXPECT_EQ(plain,
            "POST /hooks?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: agentix-sim\r\n"
            "Content-Type: application/json\r\nContent-Length: 27\r\n\r\n" +
                body);

  o.secret_header = "X-Agentix-Webhook-Secret";
  o.secret = "shared-secret-value-0123";
  o.signing_secret = "signing-secret-value-0123";
  hmac_sha256 signer(o.signing_secret);
  std::string signed_request;
  append_webhook_request(signed_request, o, body, 1795860902, &signer);
  EXPECT_NE(signed_request.find("\r\nX-Agentix-Webhook-Secret: shared-secret-value-0123\r\n"),
            std::string::npos)
      << signed_request;
  EXPECT_NE(
      signed_request.find("\r\nX-Agentix-Signature: t=1795860902,v1=" +
                          hmac_hex(o.signing_secret, "1795860902." + body) + "\r\n\r\n" + body),
      std::string::npos)
      << signed_request;
}

// ---------------------------------------------------------------------------------------------
// The simulator's queue on a manual clock

std::string call_body(std::string_view task, int max_duration = 600) {
  return R"({"to_phone_number":"+971501234567","agent_id":"d796c919-7ef3-413a-8bf1-351b6442953a",)"
         R"("max_duration_seconds":)" +
         std::to_string(max_duration) + R"(,"session_variables":{"taskId":")" + std::string(task) +
         R"(","campaignId":"spring","first_name":"Layla"}})";
}

class sim_webhook_queue_test : public ::testing::Test {
 protected:
  sim_webhook_queue_test() {
    config_.api_key = key;
    config_.cert_dir = "unused";
    config_.phone_number_ids = {std::string(phone_id)};
    config_.call_duration = {seconds(2), seconds(4)};
    config_.ledger_path = temp_path("ledger.jsonl");
    config_.webhooks.url = parse_webhook_url("http://127.0.0.1:9/hooks");
    config_.webhooks.log_path = temp_path("webhooks.jsonl");
  }
  ~sim_webhook_queue_test() override {
    sim_.reset();
    std::filesystem::remove(config_.ledger_path);
    std::filesystem::remove(config_.webhooks.log_path);
  }

  simulator& sim() {
    if (!sim_) {
      sim_ = std::make_unique<simulator>(config_, clock_, 42);
    }
    return *sim_;
  }
  webhook_queue& queue() { return *sim().webhooks(); }

  sim_response send(std::string_view method, std::string_view target, std::string_view body = {}) {
    sim_request req;
    req.method = method;
    req.target = target;
    req.content_type = "application/json";
    req.x_api_key = key;
    req.body = body;
    sim_response out;
    sim().handle(req, out);
    return out;
  }
  // The session id, or "" when the response carries none.
  std::string start(std::string_view task, int max_duration = 600) {
    const sim_response r = send("POST", start_target, call_body(task, max_duration));
    const std::string prefix = R"({"sessionId":")";
    return r.body.substr(0, prefix.size()) == prefix ? r.body.substr(prefix.size(), 36) : "";
  }
  std::vector<webhook_delivery> take(std::size_t max = 100) {
    std::vector<webhook_delivery> out;
    (void)queue().take_due(clock_.steady_now(), clock_.system_now(), max, out);
    return out;
  }
  std::string body_of(const webhook_delivery& d) {
    std::string request;
    queue().build_request(d, clock_.system_now(), nullptr, request);
    return request.substr(request.find("\r\n\r\n") + 4);
  }
  void deliver(const std::vector<webhook_delivery>& ds, int status = 200) {
    for (const webhook_delivery& d : ds) {
      queue().on_attempt(d, {status, transport_error::none}, clock_.steady_now(),
                         clock_.system_now());
    }
  }
  std::vector<std::string> log_lines() {
    queue().flush_log();
    return lines_of(read_file(config_.webhooks.log_path));
  }
  simdjson::dom::element webhook_stats() {
    stats_text_ = sim().stats_json();
    simdjson::dom::element root;
    EXPECT_EQ(parser_.parse(stats_text_).get(root), simdjson::SUCCESS) << stats_text_;
    return root["webhooks"].value_unsafe();
  }
  static std::int64_t count(simdjson::dom::element e, const char* name) {
    std::int64_t v = -1;
    EXPECT_EQ(e[name].get_int64().get(v), simdjson::SUCCESS) << name;
    return v;
  }

  sim_config config_;
  manual_clock clock_;
  std::unique_ptr<simulator> sim_;
  simdjson::dom::parser parser_;
  std::string stats_text_;
};

TEST_F(sim_webhook_queue_test, created_now_ended_after_the_duration) {
  const std::string id = start("T-1");
  ASSERT_FALSE(id.empty());
  std::vector<webhook_delivery> due = take();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].event, session_event::created);
  EXPECT_EQ(take().size(), 0u);  // in flight now; the ended event is not due
  deliver(due);
  const session_record& s = *due[0].session;

  clock_.advance(s.duration - nanoseconds(1));
  EXPECT_EQ(take().size(), 0u);
  clock_.advance(nanoseconds(1));
  due = take();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].event, session_event::ended);
  deliver(due);
  EXPECT_EQ(queue().pending(), 0);

  const std::vector<std::string> log = log_lines();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].substr(0, log[0].find(",\"ts_ms\"")),
            R"({"event":"session.created","sessionId":")" + id +
                R"(","taskId":"T-1","campaignId":"spring","result":"delivered","attempts":1,)"
                R"("status":200)");
  EXPECT_NE(log[1].find(R"({"event":"session.ended","sessionId":")" + id +
                        R"(","taskId":"T-1","campaignId":"spring","result":"delivered",)"
                        R"("attempts":1,"status":200,"endReason":"completed","durationSeconds":)"),
            std::string::npos)
      << log[1];
}

TEST_F(sim_webhook_queue_test, payloads_parse_and_agree_with_the_session_document) {
  config_.end_reasons = parse_end_reasons("completed=1,no_answer=1,voicemail=1,busy=1,failed=1");
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(start("T-" + std::to_string(i)));
  }
  std::vector<webhook_delivery> created = take();
  ASSERT_EQ(created.size(), 20u);
  clock_.advance(seconds(4));
  std::vector<webhook_delivery> ended = take();
  ASSERT_EQ(ended.size(), 20u);

  for (std::size_t i = 0; i < created.size(); ++i) {
    const std::string c = body_of(created[i]);
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    ASSERT_EQ(p.parse(c).get(doc), simdjson::SUCCESS) << c;
    EXPECT_EQ(std::string_view(doc["event"]), "session.created");
    const std::string id{std::string_view(doc["sessionId"])};
    EXPECT_EQ(id, ids[i]);  // equal due times leave in placement order
    EXPECT_TRUE(std::regex_match(std::string(std::string_view(doc["timestamp"])),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
    EXPECT_EQ(std::string_view(doc["metadata"]["agentId"]), "d796c919-7ef3-413a-8bf1-351b6442953a");
    EXPECT_EQ(std::string_view(doc["metadata"]["phoneNumberId"]), phone_id);
    EXPECT_EQ(std::string_view(doc["metadata"]["toPhoneNumber"]), "+971501234567");
    EXPECT_EQ(std::string_view(doc["metadata"]["sessionVariables"]["taskId"]),
              "T-" + std::to_string(i));
    EXPECT_EQ(std::string_view(doc["metadata"]["sessionVariables"]["first_name"]), "Layla");
    EXPECT_EQ(doc["endReason"].error(), simdjson::NO_SUCH_FIELD);
    EXPECT_EQ(doc["analysis"].error(), simdjson::NO_SUCH_FIELD);
    EXPECT_EQ(doc["durationSeconds"].error(), simdjson::NO_SUCH_FIELD);
  }

  sim().flush_ledger();
  std::map<std::string, std::string> ledger_by_id;
  for (const std::string& line : lines_of(read_file(config_.ledger_path))) {
    const auto at = line.find(R"("session_id":")") + 14;
    ledger_by_id[line.substr(at, 36)] = line;
  }
  ASSERT_EQ(ledger_by_id.size(), 20u);

  std::map<std::string, int> reasons;
  for (const webhook_delivery& d : ended) {
    const std::string e = body_of(d);
    simdjson::dom::parser p;
    simdjson::dom::element end_doc;
    ASSERT_EQ(p.parse(e).get(end_doc), simdjson::SUCCESS) << e;
    EXPECT_EQ(std::string_view(end_doc["event"]), "session.ended");
    const std::string id{std::string_view(end_doc["sessionId"])};
    const std::string reason{std::string_view(end_doc["endReason"])};
    ++reasons[reason];
    std::int64_t duration = -1;
    EXPECT_EQ(end_doc["durationSeconds"].get_int64().get(duration), simdjson::SUCCESS);
    EXPECT_GE(duration, 2);
    EXPECT_LE(duration, 4);
    const std::string_view intent = end_doc["analysis"]["intent"];
    const std::string_view resolution = end_doc["analysis"]["resolution"];
    EXPECT_FALSE(std::string_view(end_doc["analysis"]["sentiment"]).empty());
    simdjson::dom::object data;
    EXPECT_EQ(end_doc["analysis"]["data"].get_object().get(data), simdjson::SUCCESS);
    if (reason == "no_answer" || reason == "busy" || reason == "failed") {
      EXPECT_EQ(intent, "");
      EXPECT_EQ(resolution, "unresolved");
      EXPECT_EQ(data.size(), 0u);
    } else {
      EXPECT_FALSE(intent.empty());
      EXPECT_EQ(resolution, "resolved");
      EXPECT_EQ(data.size(), 1u);
    }

    // The GET document is the ended payload with "status" in place of "event", byte for byte.
    const sim_response got = send("GET", "/api/v1/chat/sessions/" + id);
    ASSERT_EQ(got.status, 200);
    const std::string event_prefix = R"({"event":"session.ended","sessionId":")" + id + "\"";
    const std::string doc_prefix = R"({"sessionId":")" + id + R"(","status":"ended")";
    ASSERT_EQ(e.substr(0, event_prefix.size()), event_prefix);
    ASSERT_EQ(got.body.substr(0, doc_prefix.size()), doc_prefix);
    EXPECT_EQ(e.substr(event_prefix.size()), got.body.substr(doc_prefix.size()));

    // The ledger line carries the same endReason and durationSeconds.
    EXPECT_NE(ledger_by_id[id].find(R"(,"outcome":"ok","endReason":")" + reason +
                                    R"(","durationSeconds":)" + std::to_string(duration) + "}"),
              std::string::npos)
        << ledger_by_id[id];
  }
  EXPECT_GE(reasons.size(), 3u);  // 20 calls over five equal weights
}

TEST_F(sim_webhook_queue_test, capped_calls_end_max_duration_whatever_the_weights) {
  config_.end_reasons = parse_end_reasons("busy=1");
  const std::string capped = start("T-1", 1);  // durations 2..4 s, cut to 1 s
  const std::string busy = start("T-2");
  clock_.advance(seconds(4));
  EXPECT_NE(send("GET", "/api/v1/chat/sessions/" + capped)
                .body.find(R"("durationSeconds":1,"endReason":"max_duration")"),
            std::string::npos);
  const sim_response b = send("GET", "/api/v1/chat/sessions/" + busy);
  EXPECT_NE(b.body.find(R"("endReason":"busy","analysis":{"intent":"","resolution":"unresolved")"),
            std::string::npos)
      << b.body;
  // Nobody answered: no transcript.
  EXPECT_EQ(send("GET", "/api/v1/chat/sessions/" + busy + "/messages").body, R"({"items":[]})");
}

TEST_F(sim_webhook_queue_test, calls_placed_with_a_fault_get_their_webhooks) {
  config_.fault_500_after_place = 0.5;
  config_.fault_drop_after_place = 0.5;
  for (int i = 0; i < 10; ++i) {
    const sim_response r = send("POST", start_target, call_body("T-" + std::to_string(i)));
    EXPECT_TRUE(r.status == 500 || r.drop);
  }
  EXPECT_EQ(take().size(), 10u);
  clock_.advance(seconds(4));
  EXPECT_EQ(take().size(), 10u);
}

TEST_F(sim_webhook_queue_test, non_2xx_is_retried_on_schedule_then_given_up) {
  config_.webhooks.max_attempts = 4;
  config_.webhooks.backoff = {milliseconds(100), milliseconds(250)};
  start("T-1");
  std::vector<webhook_delivery> due = take();
  ASSERT_EQ(due.size(), 1u);
  // Attempt 1 fails (503), attempt 2 fails (transport), attempt 3 fails (500), attempt 4: 429.
  const std::vector<std::pair<nanoseconds, attempt_result>> plan = {
      {milliseconds(100), {503, transport_error::none}},
      {milliseconds(200), {0, transport_error::connect}},
      {milliseconds(250), {500, transport_error::none}},  // capped
  };
  for (const auto& [wait, result] : plan) {
    queue().on_attempt(due[0], result, clock_.steady_now(), clock_.system_now());
    clock_.advance(wait - nanoseconds(1));
    EXPECT_EQ(take().size(), 0u);
    clock_.advance(nanoseconds(1));
    due = take();
    ASSERT_EQ(due.size(), 1u);
  }
  EXPECT_EQ(due[0].attempts, 3);
  queue().on_attempt(due[0], {429, transport_error::none}, clock_.steady_now(),
                     clock_.system_now());
  clock_.advance(seconds(10));
  due = take();
  ASSERT_EQ(due.size(), 1u);  // only the ended event now
  EXPECT_EQ(due[0].event, session_event::ended);
  deliver(due);

  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "sent"), 5);
  EXPECT_EQ(count(w, "delivered"), 1);
  EXPECT_EQ(count(w, "retries"), 3);
  EXPECT_EQ(count(w, "gave_up"), 1);
  EXPECT_EQ(count(w["non2xx_by_status"], "503"), 1);
  EXPECT_EQ(count(w["non2xx_by_status"], "500"), 1);
  EXPECT_EQ(count(w["non2xx_by_status"], "429"), 1);
  EXPECT_EQ(count(w["transport_errors"], "connect"), 1);
  EXPECT_EQ(count(w, "pending"), 0);
  const std::vector<std::string> log = log_lines();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_NE(log[0].find(R"("event":"session.created")"), std::string::npos);
  EXPECT_NE(log[0].find(R"("result":"gave_up","attempts":4,"status":429)"), std::string::npos)
      << log[0];
}

TEST_F(sim_webhook_queue_test, lose_and_duplicate) {
  config_.webhooks.lose = 1;
  config_.webhooks.duplicate = 1;  // lost events have no copy
  start("T-1");
  clock_.advance(seconds(10));
  EXPECT_EQ(take().size(), 0u);
  simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "events"), 2);
  EXPECT_EQ(count(w, "lost"), 2);
  EXPECT_EQ(count(w, "duplicated"), 0);
  EXPECT_EQ(count(w, "sent"), 0);
  std::vector<std::string> log = log_lines();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_NE(log[0].find(R"("result":"lost","attempts":0,"status":0)"), std::string::npos);

  sim_.reset();
  config_.webhooks.lose = 0;
  config_.webhooks.delay = {milliseconds(50), milliseconds(50)};
  start("T-1");
  clock_.advance(milliseconds(49));
  EXPECT_EQ(take().size(), 0u);  // the delay holds the first attempt back
  clock_.advance(milliseconds(1));
  std::vector<webhook_delivery> first = take();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_FALSE(first[0].copy);
  clock_.advance(seconds(10));
  std::vector<webhook_delivery> rest = take();
  ASSERT_EQ(rest.size(), 3u);  // the created copy, the ended event and its copy
  EXPECT_EQ(rest[0].event, session_event::created);
  EXPECT_TRUE(rest[0].copy);
  EXPECT_GE(rest[0].due, first[0].due);
  deliver(first);
  deliver(rest);
  w = webhook_stats();
  EXPECT_EQ(count(w, "duplicated"), 2);
  EXPECT_EQ(count(w, "delivered"), 2);
  EXPECT_EQ(count(w, "duplicates_delivered"), 2);
  log = log_lines();
  ASSERT_EQ(log.size(), 4u);
  int copies = 0;
  for (const std::string& line : log) {
    copies += line.find(R"("result":"duplicate_delivered")") != std::string::npos;
  }
  EXPECT_EQ(copies, 2);
}

TEST_F(sim_webhook_queue_test, the_bound_drops_and_counts) {
  config_.webhooks.queue_limit = 3;
  start("T-1");
  start("T-2");  // its ended event does not fit
  EXPECT_EQ(queue().pending(), 3);
  std::vector<webhook_delivery> due = take();
  EXPECT_EQ(due.size(), 2u);
  EXPECT_EQ(queue().pending(), 3);  // in flight still counts
  deliver(due);
  EXPECT_EQ(queue().pending(), 1);
  start("T-3");  // room for both again
  EXPECT_EQ(queue().pending(), 3);
  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "queue_dropped"), 1);
  const std::vector<std::string> log = log_lines();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_NE(log[0].find(R"("event":"session.ended")"), std::string::npos);
  EXPECT_NE(log[0].find(R"("taskId":"T-2")"), std::string::npos);
  EXPECT_NE(log[0].find(R"("result":"dropped")"), std::string::npos);
}

TEST_F(sim_webhook_queue_test, the_sender_is_woken_only_when_it_must_look_earlier) {
  int wakes = 0;
  queue().set_waker([&wakes] { ++wakes; });
  start("T-1");
  EXPECT_EQ(wakes, 1);  // created is due now, and the sender has not said when it looks next
  start("T-2");
  EXPECT_EQ(wakes, 1);                          // a wake-up is already on its way
  std::vector<webhook_delivery> due = take(1);  // one idle connection: it takes one, busy now
  ASSERT_EQ(due.size(), 1u);
  start("T-3");
  EXPECT_EQ(wakes, 1);  // every connection busy: the next completion looks anyway
  due = take(5);        // takes two created events, has idle connections left
  EXPECT_EQ(due.size(), 2u);
  clock_.advance(milliseconds(1));
  start("T-4");  // created is due before the sender's next look (an ended event, seconds away)
  EXPECT_EQ(wakes, 2);
  due = take(5);
  EXPECT_EQ(due.size(), 1u);
  // finish() counts what is left and forgets it.
  queue().finish();
  const simdjson::dom::element w = webhook_stats();
  EXPECT_EQ(count(w, "pending"), 0);
  EXPECT_EQ(count(w, "pending_at_exit"), 8);  // 4 in flight, 4 ended events scheduled
  EXPECT_EQ(count(w, "events"), 8);
}

TEST_F(sim_webhook_queue_test, stats_without_webhooks_are_unchanged) {
  config_.webhooks = webhook_options{};
  EXPECT_EQ(sim().webhooks(), nullptr);
  EXPECT_EQ(sim().stats_json().find("webhooks"), std::string::npos);
}

}  // namespace
}  // namespace dialer::sim
