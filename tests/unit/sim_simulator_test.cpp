#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "sim/simulator.hpp"

namespace dialer::sim {
namespace {

constexpr std::string_view key = "pk_test_key";
constexpr std::string_view phone_id = "6f1c2a9e-0000-4000-8000-000000000001";
const std::string start_target = "/api/v1/phone-numbers/" + std::string(phone_id) + "/calls/start";

std::string call_body(std::string_view task, std::string_view phone = "+971501234567",
                      int max_duration = 600) {
  return R"({"to_phone_number":")" + std::string(phone) +
         R"(","agent_id":"d796c919-7ef3-413a-8bf1-351b6442953a","max_duration_seconds":)" +
         std::to_string(max_duration) + R"(,"session_variables":{"taskId":")" + std::string(task) +
         R"(","campaignId":"spring","first_name":"Layla"}})";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class sim_simulator_test : public ::testing::Test {
 protected:
  sim_simulator_test() {
    config_.api_key = key;
    config_.cert_dir = "unused";
    config_.phone_number_ids = {std::string(phone_id)};
    config_.call_duration = {seconds(2), seconds(4)};
    ledger_path_ =
        ::testing::TempDir() + "sim_simulator_test_" + std::to_string(::getpid()) + ".jsonl";
    config_.ledger_path = ledger_path_;
  }
  ~sim_simulator_test() override { std::remove(ledger_path_.c_str()); }

  simulator& sim() {
    if (!sim_) {
      sim_ = std::make_unique<simulator>(config_, clock_, 42);
    }
    return *sim_;
  }

  sim_response send(std::string_view method, std::string_view target, std::string_view body = {},
                    std::string_view api_key = key, std::string_view idempotency_key = {}) {
    sim_request req;
    req.method = method;
    req.target = target;
    req.content_type = "application/json";
    req.x_api_key = api_key;
    req.idempotency_key = idempotency_key;
    req.body = body;
    sim_response out;
    sim().handle(req, out);
    return out;
  }

  sim_response start(std::string_view task, std::string_view phone = "+971501234567",
                     int max_duration = 600) {
    return send("POST", start_target, call_body(task, phone, max_duration), key,
                "spring:" + std::string(task) + ":1");
  }

  static std::string session_id_of(const sim_response& r) {
    const std::string prefix = R"({"sessionId":")";
    EXPECT_EQ(r.body.substr(0, prefix.size()), prefix);
    return r.body.substr(prefix.size(), 36);
  }

  sim_config config_;
  manual_clock clock_;
  std::string ledger_path_;
  std::unique_ptr<simulator> sim_;
};

TEST_F(sim_simulator_test, authentication) {
  EXPECT_EQ(send("GET", "/api/v1/phone-numbers", {}, "").status, 401);
  EXPECT_EQ(send("GET", "/api/v1/phone-numbers", {}, "pk_test_ke").status, 401);
  EXPECT_EQ(send("GET", "/nowhere", {}, "").status, 401);
  EXPECT_EQ(send("GET", "/api/v1/phone-numbers").status, 200);

  sim_request bearer;
  bearer.method = "GET";
  bearer.target = "/api/v1/phone-numbers";
  const std::string auth = "Bearer " + std::string(key);
  bearer.authorization = auth;
  sim_response out;
  sim().handle(bearer, out);
  EXPECT_EQ(out.status, 200);
  bearer.authorization = "Basic cGs6";
  sim().handle(bearer, out);
  EXPECT_EQ(out.status, 401);
  EXPECT_EQ(out.body.find(key), std::string::npos);

  const std::string stats = sim().stats_json();
  EXPECT_NE(stats.find(R"("requests":6,)"), std::string::npos) << stats;
  EXPECT_NE(stats.find(R"("unauthorized":4,)"), std::string::npos) << stats;
  EXPECT_EQ(stats.find(key), std::string::npos);
}

TEST_F(sim_simulator_test, place_then_read_the_session_as_it_ends) {
  const sim_response r = start("T-1");
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string id = session_id_of(r);
  EXPECT_TRUE(std::regex_match(
      id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << id;
  EXPECT_EQ(r.body, R"({"sessionId":")" + id + R"(","status":"queued"})");

  sim_response s = send("GET", "/api/v1/chat/sessions/" + id);
  ASSERT_EQ(s.status, 200);
  EXPECT_NE(s.body.find(R"("status":"active")"), std::string::npos) << s.body;
  EXPECT_NE(s.body.find(R"("sessionVariables":{"taskId":"T-1","campaignId":"spring",)"),
            std::string::npos)
      << s.body;
  EXPECT_EQ(s.body.find("endReason"), std::string::npos);

  clock_.advance(seconds(4));  // durations are 2..4 s
  s = send("GET", "/api/v1/chat/sessions/" + id);
  EXPECT_NE(s.body.find(R"("status":"ended")"), std::string::npos) << s.body;
  EXPECT_NE(s.body.find(R"("endReason":"completed")"), std::string::npos) << s.body;
  EXPECT_NE(s.body.find(R"("phoneNumberId":"6f1c2a9e-0000-4000-8000-000000000001")"),
            std::string::npos);
  EXPECT_NE(s.body.find(R"("toPhoneNumber":"+971501234567")"), std::string::npos);

  const sim_response m = send("GET", "/api/v1/chat/sessions/" + id + "/messages");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body.substr(0, 10), R"({"items":[)");
  EXPECT_NE(m.body.find(R"("role":"user")"), std::string::npos);

  // An id that was never issued, with a valid shape, and one with a wrong random half.
  EXPECT_EQ(send("GET", "/api/v1/chat/sessions/00000000-0000-4000-8000-000000000000").status, 404);
  std::string forged = id;
  forged[0] = forged[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(send("GET", "/api/v1/chat/sessions/" + forged).status, 404);
  EXPECT_EQ(send("GET", "/api/v1/chat/sessions/" + id.substr(0, 35)).status, 404);
}

TEST_F(sim_simulator_test, duration_is_capped_at_max_duration_seconds) {
  const std::string id = session_id_of(start("T-1", "+971501234567", 1));
  clock_.advance(seconds(1));
  const sim_response s = send("GET", "/api/v1/chat/sessions/" + id);
  EXPECT_NE(s.body.find(R"("status":"ended","timestamp")"), std::string::npos) << s.body;
  EXPECT_NE(s.body.find(R"("durationSeconds":1,"endReason":"max_duration")"), std::string::npos)
      << s.body;
  sim().flush_ledger();
  EXPECT_NE(read_file(ledger_path_).find(R"("duration_ms":1000,)"), std::string::npos);
}

TEST_F(sim_simulator_test, ledger_has_one_line_per_placed_call) {
  ASSERT_EQ(start("T-1").status, 201);
  ASSERT_EQ(send("POST", start_target, call_body("T-2", "12")).status, 422);
  clock_.advance(milliseconds(5));
  const sim_response second = start("T-1", "+971501234568");
  ASSERT_EQ(second.status, 201);
  sim().flush_ledger();
  const std::string ledger = read_file(ledger_path_);
  std::istringstream lines(ledger);
  std::string first_line;
  std::string second_line;
  std::string rest;
  std::getline(lines, first_line);
  std::getline(lines, second_line);
  EXPECT_FALSE(std::getline(lines, rest));
  EXPECT_TRUE(std::regex_match(
      first_line,
      std::regex(R"(\{"ts_ms":1767225600000,"mono_ns":1000000000000,"session_id":"[-0-9a-f]{36}",)"
                 R"("task_id":"T-1","campaign_id":"spring","phone":"\+971501234567",)"
                 R"("idempotency_key":"spring:T-1:1","duration_ms":[0-9]+,"outcome":"ok",)"
                 R"("endReason":"completed","durationSeconds":[0-9]+\})")))
      << first_line;
  EXPECT_NE(second_line.find(R"("ts_ms":1767225600005,"mono_ns":1000005000000,"session_id":")" +
                             session_id_of(second) + "\""),
            std::string::npos)
      << second_line;

  const std::string stats = sim().stats_json();
  EXPECT_NE(stats.find(R"("requests":3,"placed":2,"duplicates_by_task_id":1,)"
                       R"("duplicates_by_phone":0,"max_active":2,"active":2,)"
                       R"("max_starts_100ms":2,"max_starts_1s":2,)"
                       R"("responses_by_status":{"201":2,"422":1})"),
            std::string::npos)
      << stats;
  EXPECT_NE(stats.find(R"("bad_requests":1,"first_placed_ms":1767225600000,)"
                       R"("last_placed_ms":1767225600005})"),
            std::string::npos)
      << stats;
}

TEST_F(sim_simulator_test, rejections_before_placing) {
  config_.agent_id = "00000000-0000-4000-8000-00000000000a";
  EXPECT_EQ(start("T-1").status, 404);  // another agent
  EXPECT_EQ(send("POST", "/api/v1/phone-numbers/other/calls/start", call_body("T-1")).status, 404);
  EXPECT_EQ(send("GET", start_target).status, 405);
  EXPECT_EQ(send("GET", start_target).allow, "POST");
  EXPECT_EQ(send("POST", start_target, "{oops").status, 400);
  sim_request wrong_type;
  wrong_type.method = "POST";
  wrong_type.target = start_target;
  wrong_type.content_type = "text/plain";
  wrong_type.x_api_key = key;
  const std::string body = call_body("T-1");
  wrong_type.body = body;
  sim_response out;
  sim().handle(wrong_type, out);
  EXPECT_EQ(out.status, 400);
  const std::string stats = sim().stats_json();
  EXPECT_NE(stats.find(R"("placed":0,)"), std::string::npos) << stats;
  EXPECT_NE(stats.find(R"("bad_requests":2,)"), std::string::npos) << stats;
}

TEST_F(sim_simulator_test, injected_429_and_503_carry_retry_after) {
  config_.fault_429 = 1;
  config_.retry_after = {retry_after_spec::kind::seconds, 2};
  sim_response r = start("T-1");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.retry_after, "2");

  sim_.reset();
  config_.fault_429 = 0;
  config_.fault_503 = 1;
  config_.retry_after = {retry_after_spec::kind::http_date, 2};
  r = start("T-1");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.retry_after, "Thu, 01 Jan 2026 00:00:02 GMT");
  const std::string stats = sim().stats_json();
  EXPECT_NE(stats.find(R"("placed":0,)"), std::string::npos) << stats;
  EXPECT_NE(stats.find(R"("faults":{"429":0,"503":1,)"), std::string::npos) << stats;

  sim_.reset();
  config_.retry_after = {};
  EXPECT_TRUE(start("T-1").retry_after.empty());
}

TEST_F(sim_simulator_test, faults_after_placing_are_placed_and_in_the_ledger) {
  config_.fault_500_after_place = 1;
  EXPECT_EQ(start("T-1").status, 500);
  sim_.reset();
  config_.fault_500_after_place = 0;
  config_.fault_drop_after_place = 1;
  const sim_response dropped = start("T-2");
  EXPECT_TRUE(dropped.drop);
  sim().flush_ledger();
  EXPECT_NE(read_file(ledger_path_).find(R"("task_id":"T-2")"), std::string::npos);
  EXPECT_NE(read_file(ledger_path_).find(R"("outcome":"drop_after_place",)"), std::string::npos);
  const std::string stats = sim().stats_json();
  EXPECT_NE(stats.find(R"("requests":1,"placed":1,)"), std::string::npos) << stats;
  EXPECT_NE(stats.find(R"("responses_by_status":{},)"), std::string::npos) << stats;
  EXPECT_NE(stats.find(R"("drop_after_place":1,)"), std::string::npos) << stats;
}

TEST_F(sim_simulator_test, rate_limit_answers_429_retry_after_1) {
  config_.rate_limit_per_s = 20;  // burst 2, a token every 50 ms
  EXPECT_EQ(start("T-1").status, 201);
  EXPECT_EQ(start("T-2").status, 201);
  const sim_response limited = start("T-3");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.retry_after, "1");
  clock_.advance(milliseconds(50));
  EXPECT_EQ(start("T-3").status, 201);
  const std::string stats = sim().stats_json();
  EXPECT_NE(stats.find(R"("placed":3,)"), std::string::npos) << stats;
  EXPECT_NE(stats.find(R"("rate_limited":1,)"), std::string::npos) << stats;
}

TEST_F(sim_simulator_test, max_active_answers_409_until_calls_end) {
  config_.max_active = 2;
  config_.call_duration = {seconds(1), seconds(1)};
  EXPECT_EQ(start("T-1").status, 201);
  EXPECT_EQ(start("T-2").status, 201);
  EXPECT_EQ(start("T-3").status, 409);
  clock_.advance(seconds(1));
  EXPECT_EQ(start("T-3").status, 201);
  const std::string stats = sim().stats_json();
  EXPECT_NE(stats.find(R"("max_active":2,"active":1,)"), std::string::npos) << stats;
  EXPECT_NE(stats.find(R"("max_active":1},)"), std::string::npos) << stats;
}

TEST_F(sim_simulator_test, sim_stats_endpoint_needs_the_key_and_is_not_counted) {
  EXPECT_EQ(send("GET", "/_sim/stats", {}, "").status, 401);
  const sim_response r = send("GET", "/_sim/stats");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"({"requests":0,)"), std::string::npos) << r.body;
  EXPECT_EQ(send("POST", "/_sim/stats").status, 405);
}

TEST_F(sim_simulator_test, phone_numbers_pages) {
  config_.phone_number_ids = {"a", "b", "c"};
  sim_response r = send("GET", "/api/v1/phone-numbers?size=2&page=2");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"items":[{"id":"c","phone_number":"+97145550102","label":"Simulated line 3"}],)"
            R"("page":2,"size":2,"total":3})");
  r = send("GET", "/api/v1/phone-numbers");
  EXPECT_NE(r.body.find(R"("page":1,"size":50,"total":3})"), std::string::npos);
  EXPECT_EQ(send("GET", "/api/v1/phone-numbers?size=0").status, 422);
  EXPECT_EQ(send("GET", "/api/v1/phone-numbers?page=x").status, 422);
}

TEST_F(sim_simulator_test, a_seed_replays_the_same_sessions) {
  const std::string a1 = session_id_of(start("T-1"));
  const std::string a2 = session_id_of(start("T-2"));
  sim_.reset();
  const std::string b1 = session_id_of(start("T-1"));
  const std::string b2 = session_id_of(start("T-2"));
  EXPECT_EQ(a1, b1);
  EXPECT_EQ(a2, b2);
  EXPECT_NE(a1, a2);
}

TEST_F(sim_simulator_test, latency_applies_to_calls_start_only) {
  config_.latency = {milliseconds(5), milliseconds(10)};
  sim_request req;
  req.method = "POST";
  req.target = start_target;
  const nanoseconds d = sim().latency_for(req);
  EXPECT_GE(d, milliseconds(5));
  EXPECT_LE(d, milliseconds(10));
  req.method = "GET";
  req.target = "/api/v1/phone-numbers";
  EXPECT_EQ(sim().latency_for(req), nanoseconds::zero());
}

}  // namespace
}  // namespace dialer::sim
