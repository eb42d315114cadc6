#include "core/agentix_client.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/http_client.hpp"
#include "core/json.hpp"

namespace dialer {
namespace {

using namespace std::literals;

// agentix-api.md section 2, compact.
constexpr std::string_view example_variables =
    R"({"taskId":"T-000123","campaignId":"spring-renewals",)"
    R"("crmContactId":"C-88812","first_name":"Layla"})";
constexpr std::string_view example_body =
    R"({"to_phone_number":"+971501234567",)"
    R"("agent_id":"d796c919-7ef3-413a-8bf1-351b6442953a",)"
    R"("max_duration_seconds":600,)"
    R"("session_variables":{"taskId":"T-000123","campaignId":"spring-renewals",)"
    R"("crmContactId":"C-88812","first_name":"Layla"}})";

start_call_spec example_spec() {
  start_call_spec spec;
  spec.phone_number_id = "6f1c2a44-0000-4000-8000-000000000001";
  spec.agent_id = "d796c919-7ef3-413a-8bf1-351b6442953a";
  spec.to_phone_number = "+971501234567";
  spec.max_duration_seconds = 600;
  spec.variables_json = example_variables;
  spec.idempotency_key = "spring-renewals:T-000123:1";
  return spec;
}

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

// Parses `"…"` as produced by append_json_string; fails the test when it is not valid JSON.
std::string decode_json_string(const std::string& encoded) {
  simdjson::dom::parser parser;
  const simdjson::padded_string doc("{\"v\":" + encoded + "}");
  std::string_view value;
  const auto error = parser.parse(doc)["v"].get_string().get(value);
  EXPECT_EQ(error, simdjson::SUCCESS) << encoded;
  return std::string(value);
}

std::vector<std::pair<std::string, std::string>> object_fields(std::string_view json) {
  simdjson::dom::parser parser;
  const simdjson::padded_string doc(json);
  simdjson::dom::object object;
  std::vector<std::pair<std::string, std::string>> fields;
  if (parser.parse(doc).get_object().get(object) != simdjson::SUCCESS) {
    ADD_FAILURE() << "not a JSON object: " << json;
    return fields;
  }
  for (auto [key, value] : object) {
    std::string_view text;
    EXPECT_EQ(value.get_string().get(text), simdjson::SUCCESS) << key;
    fields.emplace_back(std::string(key), std::string(text));
  }
  return fields;
}

TEST(build_start_call_body, is_exactly_the_api_doc_example) {
  EXPECT_EQ(build_start_call_body(example_spec()), example_body);
}

TEST(build_start_call_body, parses_back_to_the_same_values) {
  const std::string body = build_start_call_body(example_spec());
  simdjson::dom::parser parser;
  const simdjson::padded_string doc(body);
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(doc).get(root), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(root["to_phone_number"]), "+971501234567");
  EXPECT_EQ(std::string_view(root["agent_id"]), "d796c919-7ef3-413a-8bf1-351b6442953a");
  EXPECT_EQ(int64_t(root["max_duration_seconds"]), 600);
  simdjson::dom::object vars;
  ASSERT_EQ(root["session_variables"].get_object().get(vars), simdjson::SUCCESS);
  EXPECT_EQ(vars.size(), 4u);
  EXPECT_EQ(std::string_view(vars["taskId"]), "T-000123");
  EXPECT_EQ(std::string_view(vars["campaignId"]), "spring-renewals");
  EXPECT_EQ(std::string_view(vars["crmContactId"]), "C-88812");
  EXPECT_EQ(std::string_view(vars["first_name"]), "Layla");
}

TEST(build_start_call_body, escapes_string_fields) {
  start_call_spec spec = example_spec();
  spec.agent_id = "a\"b\\c";
  const std::string body = build_start_call_body(spec);
  simdjson::dom::parser parser;
  const simdjson::padded_string doc(body);
  std::string_view agent;
  ASSERT_EQ(parser.parse(doc)["agent_id"].get_string().get(agent), simdjson::SUCCESS);
  EXPECT_EQ(agent, "a\"b\\c");
}

TEST(append_json_string, plain_ascii_is_quoted_unchanged) {
  EXPECT_EQ(json_string(""), R"("")");
  EXPECT_EQ(json_string("Layla +971 /x?"), R"("Layla +971 /x?")");
}

TEST(append_json_string, appends_without_touching_what_is_there) {
  std::string out = "prefix:";
  append_json_string(out, "v");
  EXPECT_EQ(out, R"(prefix:"v")");
}

TEST(append_json_string, escapes_quote_and_backslash) {
  EXPECT_EQ(json_string(R"(say "hi")"), R"("say \"hi\"")");
  EXPECT_EQ(json_string(R"(C:\dir\)"), R"("C:\\dir\\")");
  EXPECT_EQ(decode_json_string(json_string(R"(\"\\")")), R"(\"\\")");
}

TEST(append_json_string, escapes_every_control_character) {
  const std::vector<std::string> expected = {
      R"(\u0000)", R"(\u0001)", R"(\u0002)", R"(\u0003)", R"(\u0004)", R"(\u0005)", R"(\u0006)",
      R"(\u0007)", R"(\b)",     R"(\t)",     R"(\n)",     R"(\u000b)", R"(\f)",     R"(\r)",
      R"(\u000e)", R"(\u000f)", R"(\u0010)", R"(\u0011)", R"(\u0012)", R"(\u0013)", R"(\u0014)",
      R"(\u0015)", R"(\u0016)", R"(\u0017)", R"(\u0018)", R"(\u0019)", R"(\u001a)", R"(\u001b)",
      R"(\u001c)", R"(\u001d)", R"(\u001e)", R"(\u001f)"};
  for (int c = 0; c < 0x20; ++c) {
    const std::string raw(1, static_cast<char>(c));
    const std::string encoded = json_string(raw);
    EXPECT_EQ(encoded, "\"" + expected[static_cast<std::size_t>(c)] + "\"") << c;
    EXPECT_EQ(decode_json_string(encoded), raw) << c;
  }
}

TEST(append_json_string, del_passes_through_and_round_trips) {
  EXPECT_EQ(json_string("a\x7fz"), "\"a\x7fz\"");
  EXPECT_EQ(decode_json_string(json_string("a\x7fz")), "a\x7fz");
}

TEST(append_json_string, multibyte_utf8_passes_through_unchanged) {
  const std::string arabic = "\xd9\x84\xd9\x8a\xd9\x84\xd9\x89";  // ليلى
  const std::string emoji = "\xf0\x9f\x98\x80";                   // U+1F600
  const std::string mixed = "Hi " + arabic + " " + emoji + " \xe2\x82\xac";
  EXPECT_EQ(json_string(arabic), "\"" + arabic + "\"");
  EXPECT_EQ(json_string(emoji), "\"" + emoji + "\"");
  EXPECT_EQ(decode_json_string(json_string(mixed)), mixed);
}

struct invalid_case {
  std::string_view name;
  std::string input;
  std::string expected;  // JSON text between the quotes
};

TEST(append_json_string, each_byte_of_invalid_utf8_becomes_a_replacement_character) {
  const std::string r = R"(\ufffd)";
  const std::vector<invalid_case> cases = {
      {"lone continuation", "a\x80z", "a" + r + "z"},
      {"two continuations", "\xbf\x80", r + r},
      {"overlong 2-byte slash", "\xc0\xaf", r + r},
      {"overlong C1", "\xc1\xbf", r + r},
      {"overlong 3-byte", "\xe0\x80\xaf", r + r + r},
      {"overlong 4-byte", "\xf0\x80\x80\xaf", r + r + r + r},
      {"high surrogate", "\xed\xa0\x80", r + r + r},
      {"low surrogate", "\xed\xbf\xbf", r + r + r},
      {"above U+10FFFF", "\xf4\x90\x80\x80", r + r + r + r},
      {"F5 lead", "\xf5\x80\x80\x80", r + r + r + r},
      {"FF byte", "x\xff", "x" + r},
      {"truncated at end", "ab\xe2\x82", "ab" + r + r},
      {"truncated before ascii", "\xe2\x82z", r + r + "z"},
      {"truncated 4-byte then emoji", "\xf0\x9f\x98\xf0\x9f\x98\x80",
       r + r + r + "\xf0\x9f\x98\x80"},
      {"lead then quote", "\xc3\"", r + R"(\")"},
  };
  for (const auto& c : cases) {
    const std::string encoded = json_string(c.input);
    EXPECT_EQ(encoded, "\"" + c.expected + "\"") << c.name;
    EXPECT_TRUE(is_valid_utf8(encoded)) << c.name;
    const std::string decoded = decode_json_string(encoded);
    EXPECT_TRUE(is_valid_utf8(decoded)) << c.name;
  }
}

TEST(append_json_string, random_bytes_always_give_valid_json) {
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 40);
  for (int i = 0; i < 20'000; ++i) {
    std::string input(static_cast<std::size_t>(length(rng)), '\0');
    for (char& ch : input) {
      // A third of the bytes are lead bytes (0xC0-0xFF), so malformed sequences are common.
      const int b = byte(rng);
      ch = static_cast<char>(b % 3 == 0 ? 0xC0 + b % 0x40 : b);
    }
    const std::string encoded = json_string(input);
    ASSERT_TRUE(is_valid_utf8(encoded)) << i;
    const std::string decoded = decode_json_string(encoded);
    if (is_valid_utf8(input)) {
      ASSERT_EQ(decoded, input) << i;
    }
  }
}

TEST(is_valid_utf8, accepts_well_formed_text) {
  for (std::string_view s : {""sv, "ascii"sv, "a\0b"sv}) {
    EXPECT_TRUE(is_valid_utf8(s));
  }
  for (const std::string& s :
       {"\xd9\x84\xd9\x8a\xd9\x84\xd9\x89"s, "\xf0\x9f\x98\x80"s, "\xc2\x80"s, "\xdf\xbf"s,
        "\xe0\xa0\x80"s, "\xed\x9f\xbf"s, "\xee\x80\x80"s, "\xef\xbf\xbf"s, "\xf0\x90\x80\x80"s,
        "\xf4\x8f\xbf\xbf"s, "\x7f"s}) {
    EXPECT_TRUE(is_valid_utf8(s)) << s;
  }
}

TEST(is_valid_utf8, rejects_malformed_text) {
  for (const std::string& s :
       {"\x80"s, "\xbf"s, "\xc0\x80"s, "\xc1\xbf"s, "\xc2"s, "\xc2\x41"s, "\xe0\x9f\xbf"s,
        "\xed\xa0\x80"s, "\xed\xbf\xbf"s, "\xe2\x82"s, "\xf0\x8f\xbf\xbf"s, "\xf4\x90\x80\x80"s,
        "\xf5\x80\x80\x80"s, "\xf8\x88\x80\x80\x80"s, "\xfe"s, "\xff"s, "ok\xf0\x9f\x98"s}) {
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(s);
  }
}

TEST(build_variables_json, correlation_keys_come_first_then_columns_then_statics_in_order) {
  const string_pairs columns = {{"zeta", "1"}, {"alpha", "2"}, {"mid", "3"}};
  const string_pairs statics = {{"offer", "gold"}, {"b", "x"}};
  const std::string json = build_variables_json("T-1", "camp", columns, statics);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"taskId", "T-1"}, {"campaignId", "camp"}, {"zeta", "1"}, {"alpha", "2"},
      {"mid", "3"},      {"offer", "gold"},      {"b", "x"}};
  EXPECT_EQ(object_fields(json), expected);
}

TEST(build_variables_json, is_exactly_the_api_doc_example) {
  const string_pairs columns = {{"crmContactId", "C-88812"}, {"first_name", "Layla"}};
  EXPECT_EQ(build_variables_json("T-000123", "spring-renewals", columns, {}), example_variables);
}

TEST(build_variables_json, with_nothing_mapped_holds_only_the_correlation_keys) {
  EXPECT_EQ(build_variables_json("T", "C", {}, {}), R"({"taskId":"T","campaignId":"C"})");
}

TEST(build_variables_json, escapes_keys_and_values) {
  const string_pairs columns = {{"na\"me", "La\nyla \xd9\x84"}, {"bad", "\xff"}};
  const std::string json = build_variables_json("T\\1", "c", columns, {});
  const std::vector<std::pair<std::string, std::string>> expected = {{"taskId", "T\\1"},
                                                                     {"campaignId", "c"},
                                                                     {"na\"me", "La\nyla \xd9\x84"},
                                                                     {"bad", "\xef\xbf\xbd"}};
  EXPECT_EQ(object_fields(json), expected);
}

TEST(build_start_call_request, posts_to_the_phone_number_calls_start_path) {
  const http_request req = build_start_call_request("", "pk_secret", example_spec());
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/api/v1/phone-numbers/6f1c2a44-0000-4000-8000-000000000001/calls/start");
  EXPECT_EQ(req.body, example_body);
}

TEST(build_start_call_request, prefixes_the_base_path) {
  const http_request req = build_start_call_request("/agentix", "pk", example_spec());
  EXPECT_EQ(req.target,
            "/agentix/api/v1/phone-numbers/6f1c2a44-0000-4000-8000-000000000001/calls/start");
}

TEST(build_start_call_request, percent_encodes_the_phone_number_id) {
  start_call_spec spec = example_spec();
  spec.phone_number_id = "a/b c%d?e#f\xd9\x84";
  const http_request req = build_start_call_request("", "pk", spec);
  EXPECT_EQ(req.target, "/api/v1/phone-numbers/a%2Fb%20c%25d%3Fe%23f%D9%84/calls/start");
}

std::string header(const http_request& req, std::string_view name) {
  std::string value;
  int found = 0;
  for (const auto& h : req.headers) {
    if (h.name == name) {
      value = h.value;
      ++found;
    }
  }
  EXPECT_EQ(found, 1) << name;
  return value;
}

TEST(build_start_call_request, carries_key_content_type_and_idempotency_key_headers) {
  const http_request req = build_start_call_request("", "pk_live_123", example_spec());
  EXPECT_EQ(header(req, "x-api-key"), "pk_live_123");
  EXPECT_EQ(header(req, "Content-Type"), "application/json");
  EXPECT_EQ(header(req, "Idempotency-Key"), "spring-renewals:T-000123:1");
}

TEST(build_start_call_request, api_key_appears_only_in_its_header) {
  const http_request req = build_start_call_request("", "pk_live_SECRET", example_spec());
  EXPECT_EQ(req.target.find("SECRET"), std::string::npos);
  EXPECT_EQ(req.body.find("SECRET"), std::string::npos);
  int mentions = 0;
  for (const auto& h : req.headers) {
    mentions += h.value.find("SECRET") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(mentions, 1);
}

TEST(encode_path_segment, keeps_unreserved_and_encodes_the_rest_in_uppercase_hex) {
  EXPECT_EQ(encode_path_segment("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(encode_path_segment(""), "");
  EXPECT_EQ(encode_path_segment("/:@+ "), "%2F%3A%40%2B%20");
  EXPECT_EQ(encode_path_segment("\xff"), "%FF");
}

TEST(make_idempotency_key, is_campaign_task_attempt) {
  EXPECT_EQ(make_idempotency_key("spring-renewals", "T-000123", 1), "spring-renewals:T-000123:1");
  EXPECT_EQ(make_idempotency_key("c", "t", 12), "c:t:12");
}

TEST(make_idempotency_key, encodes_cr_lf_space_percent_and_controls) {
  EXPECT_EQ(make_idempotency_key("c", "a\r\nX-Evil: 1", 2), "c:a%0D%0AX-Evil:%201:2");
  EXPECT_EQ(make_idempotency_key("c", "50% off", 1), "c:50%25%20off:1");
  EXPECT_EQ(make_idempotency_key("c", std::string("a\0b\tc\x7f", 6), 1), "c:a%00b%09c%7F:1");
}

TEST(make_idempotency_key, encodes_non_ascii_bytes) {
  EXPECT_EQ(make_idempotency_key("c", "\xd9\x84\xc3\xa9", 1), "c:%D9%84%C3%A9:1");
}

TEST(make_idempotency_key, output_is_visible_ascii_only) {
  std::string task;
  for (int c = 0; c < 256; ++c) {
    task.push_back(static_cast<char>(c));
  }
  const std::string key = make_idempotency_key("camp", task, 3);
  for (char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    EXPECT_TRUE(c > 0x20 && c < 0x7F) << static_cast<int>(c);
  }
}

TEST(parse_session_id, reads_session_id_camel_case) {
  EXPECT_EQ(parse_session_id(R"({"sessionId":"0b5e-1","status":"queued"})"), "0b5e-1");
}

TEST(parse_session_id, reads_session_id_snake_case) {
  EXPECT_EQ(parse_session_id(R"({"status":"queued","session_id":"s-2"})"), "s-2");
}

TEST(parse_session_id, reads_either_inside_a_data_object) {
  EXPECT_EQ(parse_session_id(R"({"data":{"sessionId":"d-1"}})"), "d-1");
  EXPECT_EQ(parse_session_id(R"({"ok":true,"data":{"x":1,"session_id":"d-2"}})"), "d-2");
}

TEST(parse_session_id, top_level_id_wins_over_data_in_either_order) {
  EXPECT_EQ(parse_session_id(R"({"sessionId":"top","data":{"sessionId":"in"}})"), "top");
  EXPECT_EQ(parse_session_id(R"({"data":{"sessionId":"in"},"sessionId":"top"})"), "top");
}

TEST(parse_session_id, unescapes_the_id) {
  EXPECT_EQ(parse_session_id(R"({"sessionId":"a\u0042c\/d"})"), "aBc/d");
}

TEST(parse_session_id, skips_unrelated_nested_values_before_the_id) {
  const std::string body =
      R"({"meta":{"sessionId":"not-this","deep":[{"session_id":"nor-this"},[1,2,{"a":null}]]},)"
      R"("list":[{"sessionId":"x"}],"n":1.5e3,"t":true,"s":"sessionId","sessionId":"yes"})";
  EXPECT_EQ(parse_session_id(body), "yes");
}

TEST(parse_session_id, missing_id_is_nullopt) {
  EXPECT_EQ(parse_session_id(R"({"status":"queued"})"), std::nullopt);
  EXPECT_EQ(parse_session_id(R"({})"), std::nullopt);
  EXPECT_EQ(parse_session_id(R"({"meta":{"sessionId":"nested-elsewhere"}})"), std::nullopt);
  EXPECT_EQ(parse_session_id(R"({"data":"sessionId"})"), std::nullopt);
}

TEST(parse_session_id, empty_or_non_string_id_is_nullopt) {
  EXPECT_EQ(parse_session_id(R"({"sessionId":""})"), std::nullopt);
  EXPECT_EQ(parse_session_id(R"({"sessionId":42})"), std::nullopt);
  EXPECT_EQ(parse_session_id(R"({"sessionId":null})"), std::nullopt);
  EXPECT_EQ(parse_session_id(R"({"sessionId":{"id":"x"}})"), std::nullopt);
}

TEST(parse_session_id, empty_id_falls_back_to_another_spelling) {
  EXPECT_EQ(parse_session_id(R"({"sessionId":"","session_id":"s-3"})"), "s-3");
}

TEST(parse_session_id, body_that_is_not_json_is_nullopt) {
  for (std::string_view body :
       {""sv, "   "sv, "<html>502 Bad Gateway</html>"sv, "sessionId"sv, R"({"sessionId":"abc")"sv,
        R"({"sessionId" "abc"})"sv, "\xff\xfe"sv}) {
    EXPECT_EQ(parse_session_id(body), std::nullopt) << body;
  }
}

TEST(parse_session_id, top_level_non_object_is_nullopt) {
  EXPECT_EQ(parse_session_id(R"([{"sessionId":"x"}])"), std::nullopt);
  EXPECT_EQ(parse_session_id(R"("sessionId")"), std::nullopt);
  EXPECT_EQ(parse_session_id("42"), std::nullopt);
  EXPECT_EQ(parse_session_id("null"), std::nullopt);
}

TEST(parse_session_id, finds_the_id_after_a_huge_unrelated_field) {
  std::string body = R"({"transcript":")" + std::string(4 << 20, 'x') + R"(","pad":[)";
  for (int i = 0; i < 100'000; ++i) {
    body += "1,";
  }
  body += R"(0],"sessionId":"big-1"})";
  EXPECT_EQ(parse_session_id(body), "big-1");
  // The parser is reused: a small body right after a huge one still parses.
  EXPECT_EQ(parse_session_id(R"({"sessionId":"small"})"), "small");
}

TEST(parse_session_id, deeply_nested_arrays_do_not_crash) {
  const int depth = 100'000;
  const std::string body =
      R"({"a":)" + std::string(depth, '[') + std::string(depth, ']') + R"(,"sessionId":"deep"})";
  const auto id = parse_session_id(body);
  EXPECT_TRUE(!id || *id == "deep");
}

TEST(parse_session_id, data_is_searched_one_level_deep_only) {
  EXPECT_EQ(parse_session_id(R"({"data":{"data":{"sessionId":"x"}}})"), std::nullopt);
}

// An 800 KB body of nested "data" objects must not overflow the stack of the thread that reads
// it. Run in a child process so that a crash fails this test, not the whole binary.
TEST(parse_session_id, deeply_nested_data_objects_do_not_overflow_the_stack) {
  const int depth = 100'000;
  std::string body;
  for (int i = 0; i < depth; ++i) {
    body += R"({"data":)";
  }
  body += R"({"sessionId":"x"})" + std::string(depth, '}');
  EXPECT_EXIT(
      {
        const auto id = parse_session_id(body);
        std::exit(id.has_value() ? 1 : 0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace dialer
