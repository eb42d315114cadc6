#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "sim/fault_plan.hpp"
#include "sim/json_text.hpp"
#include "sim/prng.hpp"
#include "sim/request.hpp"
#include "sim/sim_config.hpp"

namespace dialer::sim {
namespace {

struct field_value {
  std::string name;
  std::string json;  // raw JSON; empty: leave the field out
};

// A valid body with some fields replaced (raw JSON) or removed (empty string).
std::string body_with(const std::vector<field_value>& changes = {}) {
  std::map<std::string, std::string> fields = {
      {"to_phone_number", R"("+971501234567")"},
      {"agent_id", R"("d796c919-7ef3-413a-8bf1-351b6442953a")"},
      {"max_duration_seconds", "600"},
      {"session_variables",
       R"({"taskId":"T-000123","campaignId":"spring-renewals","first_name":"Layla"})"},
  };
  for (const auto& c : changes) {
    if (c.json.empty()) {
      fields.erase(c.name);
    } else {
      fields[c.name] = c.json;
    }
  }
  std::string body = "{";
  for (const auto& [name, json] : fields) {
    body += (body.size() > 1 ? "," : "") + ("\"" + name + "\":") + json;
  }
  return body + "}";
}

request_error error_of(const std::string& body) {
  auto r = parse_call_start(body);
  EXPECT_FALSE(r.ok()) << body;
  return r.ok() ? request_error{} : r.error();
}

TEST(sim_request_test, valid_body) {
  auto r = parse_call_start(body_with());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const call_start_body& b = r.value();
  EXPECT_EQ(b.to_phone_number, "+971501234567");
  EXPECT_EQ(b.agent_id, "d796c919-7ef3-413a-8bf1-351b6442953a");
  EXPECT_EQ(b.max_duration_seconds, 600);
  EXPECT_EQ(b.task_id, "T-000123");
  EXPECT_EQ(b.campaign_id, "spring-renewals");
  EXPECT_EQ(b.session_variables_json,
            R"({"taskId":"T-000123","campaignId":"spring-renewals","first_name":"Layla"})");
}

TEST(sim_request_test, unknown_fields_are_ignored_and_strings_are_unescaped) {
  auto r = parse_call_start(body_with(
      {{"extra", R"({"deep":[1,2,{"x":null}]})"},
       {"session_variables", R"({"taskId":"T\"1\u00e9","campaignId":"c\\d","n":"a\nb"})"}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().task_id, "T\"1\xc3\xa9");
  EXPECT_EQ(r.value().campaign_id, "c\\d");
  EXPECT_EQ(r.value().session_variables_json,
            "{\"taskId\":\"T\\\"1\xc3\xa9\",\"campaignId\":\"c\\\\d\",\"n\":\"a\\nb\"}");
}

TEST(sim_request_test, each_invalid_field_is_a_422_naming_it) {
  struct bad_case {
    field_value change;
    std::string field;
  };
  const std::vector<bad_case> cases = {
      {{"to_phone_number", ""}, "to_phone_number"},
      {{"to_phone_number", R"("971501234567")"}, "to_phone_number"},
      {{"to_phone_number", R"("+0971501234")"}, "to_phone_number"},
      {{"to_phone_number", R"("+1234567")"}, "to_phone_number"},           // 7 digits
      {{"to_phone_number", R"("+1234567890123456")"}, "to_phone_number"},  // 16 digits
      {{"to_phone_number", R"("+97150 1234567")"}, "to_phone_number"},
      {{"to_phone_number", "971501234567"}, "to_phone_number"},
      {{"agent_id", ""}, "agent_id"},
      {{"agent_id", R"("agent-7")"}, "agent_id"},
      {{"agent_id", R"("d796c919-7ef3-413a-8bf1-351b6442953")"}, "agent_id"},
      {{"agent_id", R"("d796c919x7ef3-413a-8bf1-351b6442953a")"}, "agent_id"},
      {{"agent_id", R"("g796c919-7ef3-413a-8bf1-351b6442953a")"}, "agent_id"},
      {{"max_duration_seconds", ""}, "max_duration_seconds"},
      {{"max_duration_seconds", "0"}, "max_duration_seconds"},
      {{"max_duration_seconds", "-5"}, "max_duration_seconds"},
      {{"max_duration_seconds", "1.5"}, "max_duration_seconds"},
      {{"max_duration_seconds", "600.0"}, "max_duration_seconds"},
      {{"max_duration_seconds", R"("600")"}, "max_duration_seconds"},
      {{"max_duration_seconds", "18446744073709551615"}, "max_duration_seconds"},
      {{"session_variables", ""}, "session_variables"},
      {{"session_variables", R"(["taskId"])"}, "session_variables"},
      {{"session_variables", R"("taskId=1")"}, "session_variables"},
      {{"session_variables", R"({"campaignId":"c"})"}, "session_variables.taskId"},
      {{"session_variables", R"({"taskId":"t"})"}, "session_variables.campaignId"},
      {{"session_variables", R"({"taskId":1,"campaignId":"c"})"}, "session_variables.taskId"},
      {{"session_variables", R"({"taskId":"t","campaignId":"c","age":42})"},
       "session_variables.age"},
      {{"session_variables", R"({"taskId":"t","campaignId":"c","ok":true})"},
       "session_variables.ok"},
      {{"session_variables", R"({"taskId":"t","campaignId":"c","n":null})"}, "session_variables.n"},
      {{"session_variables", R"({"taskId":"t","campaignId":"c","o":{"a":"b"}})"},
       "session_variables.o"},
  };
  for (const auto& c : cases) {
    const request_error e = error_of(body_with({c.change}));
    EXPECT_EQ(e.status, 422) << c.change.name << "=" << c.change.json;
    EXPECT_EQ(e.field, c.field) << c.change.name << "=" << c.change.json;
    EXPECT_NE(e.message.find(c.field), std::string::npos) << e.message;
  }
}

TEST(sim_request_test, fields_are_reported_in_order) {
  const request_error e =
      error_of(body_with({{"agent_id", R"("x")"}, {"max_duration_seconds", "0"}}));
  EXPECT_EQ(e.field, "agent_id");
}

TEST(sim_request_test, malformed_json_or_not_an_object_is_400) {
  for (const std::string& body :
       {std::string(""), std::string("{"), std::string(R"({"to_phone_number": })"),
        std::string("[]"), std::string("\"text\""), std::string("42"), std::string("null"),
        body_with() + "}", body_with() + "x",
        body_with({{"extra", "[1,2,]"}}),  // a malformed value in a field we do not read
        std::string("{\"to_phone_number\":\"+97150\xff\"}")}) {
    const request_error e = error_of(body);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_TRUE(e.field.empty()) << body;
  }
}

TEST(sim_request_test, error_json_names_the_field) {
  std::string out;
  append_error_json(out, "agent_id must be a \"UUID\"", "agent_id");
  EXPECT_EQ(out, R"({"error":"agent_id must be a \"UUID\"","field":"agent_id"})");
  out.clear();
  append_error_json(out, "unauthorized");
  EXPECT_EQ(out, R"({"error":"unauthorized"})");
}

TEST(sim_request_test, content_type) {
  EXPECT_TRUE(is_json_content_type("application/json"));
  EXPECT_TRUE(is_json_content_type("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(is_json_content_type(" application/json ;charset=UTF-8"));
  EXPECT_FALSE(is_json_content_type(""));
  EXPECT_FALSE(is_json_content_type("text/plain"));
  EXPECT_FALSE(is_json_content_type("application/json-patch+json"));
}

TEST(sim_request_test, e164_and_uuid) {
  EXPECT_TRUE(is_e164("+12345678"));         // 8 digits
  EXPECT_TRUE(is_e164("+123456789012345"));  // 15 digits
  EXPECT_FALSE(is_e164("+1234567"));
  EXPECT_FALSE(is_e164("+1234567890123456"));
  EXPECT_FALSE(is_e164("+02345678"));
  EXPECT_FALSE(is_e164("12345678"));
  EXPECT_FALSE(is_e164("+1234a678"));
  EXPECT_TRUE(is_uuid("D796C919-7EF3-413A-8BF1-351B6442953A"));
  EXPECT_FALSE(is_uuid("d796c9197ef3413a8bf1351b6442953a"));
}

TEST(sim_request_test, routes) {
  const std::string pn = "/api/v1/phone-numbers/6f1c/calls/start";
  route_match m = match_route("POST", pn);
  EXPECT_EQ(m.kind, route_kind::start_call);
  EXPECT_EQ(m.id, "6f1c");
  EXPECT_FALSE(m.internal);

  m = match_route("GET", pn);
  EXPECT_EQ(m.kind, route_kind::method_not_allowed);
  EXPECT_EQ(m.allow, "POST");

  m = match_route("GET", "/api/v1/phone-numbers?size=50&page=2");
  EXPECT_EQ(m.kind, route_kind::list_phone_numbers);
  EXPECT_EQ(m.query, "size=50&page=2");
  EXPECT_EQ(query_param(m.query, "page"), std::optional<std::string_view>("2"));
  EXPECT_EQ(query_param(m.query, "size"), std::optional<std::string_view>("50"));
  EXPECT_EQ(query_param(m.query, "pag"), std::nullopt);
  EXPECT_EQ(match_route("DELETE", "/api/v1/phone-numbers").kind, route_kind::method_not_allowed);

  m = match_route("GET", "/api/v1/chat/sessions/abc-1");
  EXPECT_EQ(m.kind, route_kind::get_session);
  EXPECT_EQ(m.id, "abc-1");
  m = match_route("GET", "/api/v1/chat/sessions/abc-1/messages");
  EXPECT_EQ(m.kind, route_kind::get_session_messages);
  EXPECT_EQ(m.id, "abc-1");
  EXPECT_EQ(match_route("POST", "/api/v1/chat/sessions/abc-1").kind,
            route_kind::method_not_allowed);

  m = match_route("GET", "/_sim/stats");
  EXPECT_EQ(m.kind, route_kind::sim_stats);
  EXPECT_TRUE(m.internal);
  EXPECT_TRUE(match_route("GET", "/_sim/other").internal);
  EXPECT_EQ(match_route("GET", "/_sim/other").kind, route_kind::not_found);

  for (const char* target :
       {"/", "/api/v1", "/api/v1/", "/api/v2/phone-numbers", "/api/v1/phone-numbers/",
        "/api/v1/phone-numbers/x/calls/start/", "/api/v1/phone-numbers//calls/start",
        "/api/v1/phone-numbers/a/b/calls/start", "/api/v1/phone-numbers/x/calls",
        "/api/v1/chat/sessions/", "/api/v1/chat/sessions/a/b", "/api/v1/chat/sessions//messages",
        "/api/v1/chat/sessions/a/messages/x", "https://api.agntix.ai/api/v1/phone-numbers"}) {
    EXPECT_EQ(match_route("GET", target).kind, route_kind::not_found) << target;
    EXPECT_EQ(match_route("POST", target).kind, route_kind::not_found) << target;
  }
}

TEST(sim_request_test, fault_plan_is_deterministic_for_a_seed) {
  const fault_plan plan(0.1, 0.05, 0.02, 0.03);
  prng a(1234);
  prng b(1234);
  prng c(1235);
  std::vector<fault_decision> first;
  std::vector<fault_decision> second;
  std::vector<fault_decision> other;
  for (int i = 0; i < 1000; ++i) {
    first.push_back(plan.draw(a));
    second.push_back(plan.draw(b));
    other.push_back(plan.draw(c));
  }
  EXPECT_EQ(first, second);
  EXPECT_NE(first, other);
}

TEST(sim_request_test, fault_plan_frequencies_match_the_probabilities) {
  const fault_plan plan(0.1, 0.05, 0.02, 0.03);
  prng rng(99);
  std::map<fault_decision, int> counts;
  constexpr int n = 200'000;
  for (int i = 0; i < n; ++i) {
    ++counts[plan.draw(rng)];
  }
  // Fixed seed, so this is deterministic; the bounds are about 5 standard deviations wide.
  EXPECT_NEAR(counts[fault_decision::http_429], 0.10 * n, 700);
  EXPECT_NEAR(counts[fault_decision::http_503], 0.05 * n, 500);
  EXPECT_NEAR(counts[fault_decision::after_place_500], 0.02 * n, 320);
  EXPECT_NEAR(counts[fault_decision::drop_after_place], 0.03 * n, 390);
  EXPECT_NEAR(counts[fault_decision::none], 0.80 * n, 900);
}

TEST(sim_request_test, no_faults_and_all_faults) {
  prng rng(7);
  const fault_plan none;
  const fault_plan always_drop(0, 0, 0, 1);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(none.draw(rng), fault_decision::none);
    EXPECT_EQ(always_drop.draw(rng), fault_decision::drop_after_place);
  }
}

TEST(sim_request_test, prng_uniform_stays_in_range_and_reaches_both_ends) {
  prng rng(5);
  bool saw_lo = false;
  bool saw_hi = false;
  for (int i = 0; i < 10'000; ++i) {
    const std::int64_t v = rng.uniform(20, 25);
    ASSERT_GE(v, 20);
    ASSERT_LE(v, 25);
    saw_lo = saw_lo || v == 20;
    saw_hi = saw_hi || v == 25;
  }
  EXPECT_TRUE(saw_lo && saw_hi);
  EXPECT_EQ(rng.uniform(7, 7), 7);
}

TEST(sim_request_test, durations_and_ranges) {
  EXPECT_EQ(parse_duration("20ms"), milliseconds(20));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parse_duration("250us"), std::chrono::microseconds(250));
  EXPECT_EQ(parse_duration("2m"), seconds(120));
  EXPECT_EQ(parse_duration("0"), nanoseconds::zero());
  EXPECT_EQ(parse_duration_range("20ms..2s"), (duration_range{milliseconds(20), seconds(2)}));
  EXPECT_EQ(parse_duration_range("3s"), (duration_range{seconds(3), seconds(3)}));
  for (const char* bad : {"", "5", "ms", "1h", "-1s", "1.s.", "2s..1s", "1s..", "..1s"}) {
    EXPECT_THROW((void)parse_duration_range(bad), config_error) << bad;
  }
}

TEST(sim_request_test, command_line) {
  const auto parse = [](std::vector<std::string_view> args) { return parse_sim_args(args); };
  const auto cfg = parse({"--listen",
                          "[::1]:0",
                          "--cert-dir",
                          "/tmp/c",
                          "--api-key",
                          "k",
                          "--phone-number-id",
                          "a",
                          "--phone-number-id",
                          "b",
                          "--fault-429",
                          "0.25",
                          "--retry-after",
                          "http-date:2",
                          "--rate-limit",
                          "500/s",
                          "--max-active",
                          "40",
                          "--call-duration=20ms..2s",
                          "--seed",
                          "9",
                          "--threads",
                          "2",
                          "--latency",
                          "1ms..3ms"});
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(cfg->listen_host, "::1");
  EXPECT_EQ(cfg->listen_port, 0);
  EXPECT_EQ(cfg->phone_number_ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(cfg->fault_429, 0.25);
  EXPECT_EQ(cfg->retry_after.form, retry_after_spec::kind::http_date);
  EXPECT_EQ(cfg->retry_after.seconds, 2);
  EXPECT_EQ(cfg->rate_limit_per_s, 500);
  EXPECT_EQ(cfg->max_active, 40);
  EXPECT_EQ(cfg->call_duration, (duration_range{milliseconds(20), seconds(2)}));
  EXPECT_EQ(cfg->seed, std::optional<std::uint64_t>(9));
  EXPECT_EQ(cfg->threads, 2);

  const auto defaults = parse({"--cert-dir", "d", "--api-key", "k"});
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->phone_number_ids,
            (std::vector<std::string>{std::string(default_phone_number_id)}));
  EXPECT_EQ(defaults->call_duration, (duration_range{seconds(1), seconds(5)}));
  EXPECT_EQ(defaults->listen_host, "127.0.0.1");

  EXPECT_THROW((void)parse({"--cert-dir", "d"}), config_error);  // no key
  EXPECT_THROW((void)parse({"--api-key", "k"}), config_error);   // no cert dir
  EXPECT_THROW((void)parse({"--cert-dir", "d", "--api-key", "k", "--bogus"}), config_error);
  EXPECT_THROW((void)parse({"--cert-dir", "d", "--api-key", "k", "--fault-503", "1.5"}),
               config_error);
  EXPECT_THROW((void)parse({"--cert-dir", "d", "--api-key", "k", "--fault-429", "0.6",
                            "--fault-503", "0.6"}),
               config_error);
  EXPECT_THROW((void)parse({"--cert-dir", "d", "--api-key", "k", "--rate-limit", "5/m"}),
               config_error);
  EXPECT_THROW((void)parse({"--cert-dir", "d", "--api-key", "k", "--listen", "127.0.0.1"}),
               config_error);
  try {
    (void)parse({"--cert-dir", "d", "--api-key", "pk_secret_value", "--threads", "0"});
    FAIL();
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()).find("pk_secret_value"), std::string::npos);
  }
}

TEST(sim_request_test, dates) {
  std::string out;
  append_iso8601(out, system_time{seconds(1795860902)});
  EXPECT_EQ(out, "2026-11-28T10:15:02Z");
  out.clear();
  append_http_date(out, system_time{seconds(784111777)});
  EXPECT_EQ(out, "Sun, 06 Nov 1994 08:49:37 GMT");
  out.clear();
  append_http_date(out, system_time{seconds(951782400)});  // a leap day
  EXPECT_EQ(out, "Tue, 29 Feb 2000 00:00:00 GMT");
}

}  // namespace
}  // namespace dialer::sim
