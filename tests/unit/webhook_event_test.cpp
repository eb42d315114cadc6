#include "core/webhook_event.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace dialer {
namespace {

using namespace std::literals;

// agentix-api.md section 4, verbatim.
constexpr std::string_view doc_example = R"({
  "event": "session.ended",
  "sessionId": "0b5e…uuid",
  "timestamp": "2026-11-28T10:15:02Z",
  "metadata": {
    "agentId": "d796…953a", "phoneNumberId": "6f1c…", "toPhoneNumber": "+971501234567",
    "sessionVariables": {"taskId": "T-000123", "campaignId": "spring-renewals", "crmContactId": "C-88812"}
  },
  "durationSeconds": 73,
  "endReason": "completed",
  "analysis": {
    "intent": "renewal_interest", "resolution": "resolved", "sentiment": "positive",
    "data": {"preferred_time": "evenings", "callback_requested": "false"}
  }
})";

constexpr std::int64_t example_ms = 1795860902000;  // 2026-11-28T10:15:02Z

session_event parse_ok(std::string_view body) {
  auto r = parse_session_event(body);
  EXPECT_TRUE(r.ok()) << body << " -> " << (r.ok() ? "" : r.error());
  return r.ok() ? std::move(r).value() : session_event{};
}

bool has_whitespace_outside_strings(std::string_view json) {
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      return true;
    }
  }
  return false;
}

// The reason part of an error ("too_long" of "too_long: sessionId").
std::string reason_of(const result<session_event, std::string>& r) {
  if (r.ok()) {
    return "ok";
  }
  return r.error().substr(0, r.error().find(':'));
}

TEST(WebhookEvent, DocExampleEnded) {
  const session_event e = parse_ok(doc_example);
  EXPECT_EQ(e.kind, session_event_kind::ended);
  EXPECT_EQ(e.event_name, "session.ended");
  EXPECT_EQ(e.session_id, "0b5e…uuid");
  EXPECT_EQ(e.task_id, "T-000123");
  EXPECT_EQ(e.campaign_id, "spring-renewals");
  EXPECT_EQ(e.timestamp_ms, example_ms);
  EXPECT_EQ(e.duration_seconds, 73);
  EXPECT_EQ(e.end_reason, "completed");
  EXPECT_EQ(e.intent, "renewal_interest");
  EXPECT_EQ(e.resolution, "resolved");
  EXPECT_EQ(e.sentiment, "positive");
  EXPECT_EQ(e.analysis_data_json, R"({"preferred_time":"evenings","callback_requested":"false"})");
  EXPECT_EQ(e.status, "");
}

TEST(WebhookEvent, CreatedHasNoAnalysis) {
  const session_event e =
      parse_ok(R"({"event":"session.created","sessionId":"s-1","timestamp":"2026-11-28T10:13:49Z",)"
               R"("metadata":{"sessionVariables":{"taskId":"T-1","campaignId":"c"}}})");
  EXPECT_EQ(e.kind, session_event_kind::created);
  EXPECT_EQ(e.session_id, "s-1");
  EXPECT_EQ(e.task_id, "T-1");
  EXPECT_EQ(e.timestamp_ms, example_ms - 73'000);
  EXPECT_FALSE(e.duration_seconds.has_value());
  EXPECT_EQ(e.end_reason, "");
  EXPECT_EQ(e.intent, "");
  EXPECT_EQ(e.analysis_data_json, "");
}

TEST(WebhookEvent, UnknownEventIsOtherAndKeepsItsName) {
  const session_event e = parse_ok(R"({"event":"session.transferred","sessionId":"s-1"})");
  EXPECT_EQ(e.kind, session_event_kind::other);
  EXPECT_EQ(e.event_name, "session.transferred");
}

TEST(WebhookEvent, TypeInsteadOfEvent) {
  const session_event e = parse_ok(R"({"type":"session.ended","sessionId":"s-1"})");
  EXPECT_EQ(e.kind, session_event_kind::ended);
  EXPECT_EQ(e.event_name, "session.ended");
}

TEST(WebhookEvent, EventWinsOverType) {
  const session_event e =
      parse_ok(R"({"type":"webhook","sessionId":"s-1","event":"session.created"})");
  EXPECT_EQ(e.kind, session_event_kind::created);
}

TEST(WebhookEvent, SnakeCaseSessionId) {
  EXPECT_EQ(parse_ok(R"({"event":"session.ended","session_id":"s-2"})").session_id, "s-2");
}

TEST(WebhookEvent, EverythingInsideData) {
  const session_event e =
      parse_ok(R"({"type":"session.ended","id":"evt_1","data":{"sessionId":"s-3",)"
               R"("metadata":{"sessionVariables":{"taskId":"T-3","campaignId":"c3"}},)"
               R"("durationSeconds":12,"endReason":"no_answer","timestamp":"2026-11-28T10:15:02Z",)"
               R"("analysis":{"intent":"none","data":{"k":1}}}})");
  EXPECT_EQ(e.kind, session_event_kind::ended);
  EXPECT_EQ(e.session_id, "s-3");  // a webhook's own `id` is not the session id
  EXPECT_EQ(e.task_id, "T-3");
  EXPECT_EQ(e.campaign_id, "c3");
  EXPECT_EQ(e.duration_seconds, 12);
  EXPECT_EQ(e.end_reason, "no_answer");
  EXPECT_EQ(e.timestamp_ms, example_ms);
  EXPECT_EQ(e.intent, "none");
  EXPECT_EQ(e.analysis_data_json, R"({"k":1})");
}

TEST(WebhookEvent, TopLevelWinsOverData) {
  const session_event e =
      parse_ok(R"({"data":{"event":"session.created","sessionId":"inner"},"event":"session.ended",)"
               R"("sessionId":"outer"})");
  EXPECT_EQ(e.session_id, "outer");
  EXPECT_EQ(e.kind, session_event_kind::ended);
}

TEST(WebhookEvent, EventNameInsideDataOnly) {
  const session_event e = parse_ok(R"({"data":{"event":"session.created","session_id":"s"}})");
  EXPECT_EQ(e.kind, session_event_kind::created);
  EXPECT_EQ(e.session_id, "s");
}

TEST(WebhookEvent, OnlyOneLevelOfData) {
  EXPECT_EQ(reason_of(parse_session_event(R"({"event":"e","data":{"data":{"sessionId":"s"}}})")),
            "no_session");
}

TEST(WebhookEvent, MissingMetadataIsFineWithSessionId) {
  const session_event e = parse_ok(R"({"event":"session.ended","sessionId":"s"})");
  EXPECT_EQ(e.task_id, "");
  EXPECT_EQ(e.campaign_id, "");
}

TEST(WebhookEvent, CorrelationKeysWithoutSessionId) {
  const session_event e =
      parse_ok(R"({"event":"session.ended",)"
               R"("metadata":{"sessionVariables":{"taskId":"T","campaignId":"C"}}})");
  EXPECT_EQ(e.session_id, "");
  EXPECT_EQ(e.task_id, "T");
  EXPECT_EQ(e.campaign_id, "C");
}

TEST(WebhookEvent, UnknownFieldsOfEveryTypeAreIgnored) {
  const session_event e = parse_ok(
      R"({"event":"session.ended","x":{"deep":[1,{"a":[true,false,null]},-2.5e3]},"sessionId":"s",)"
      R"("y":null,"z":[],"w":{},"v":"\u00e9\n","metadata":{"extra":{"q":1},)"
      R"("sessionVariables":{"taskId":"T","campaignId":"C","other":42}},"analysis":{"more":[1]}})");
  EXPECT_EQ(e.session_id, "s");
  EXPECT_EQ(e.task_id, "T");
}

struct bad_case {
  std::string_view name;
  std::string_view body;
  std::string_view reason;
};

void PrintTo(const bad_case& c, std::ostream* os) {
  *os << c.name;
}

class WebhookEventRejects : public ::testing::TestWithParam<bad_case> {};

TEST_P(WebhookEventRejects, WithStableReason) {
  const auto r = parse_session_event(GetParam().body);
  EXPECT_EQ(reason_of(r), GetParam().reason) << GetParam().body;
}

const std::string huge_session_id =
    R"({"event":"session.ended","sessionId":")" + std::string(129, 'a') + R"("})";
const std::string max_session_id =
    R"({"event":"session.ended","sessionId":")" + std::string(128, 'a') + R"("})";
const std::string huge_task_id =
    R"({"event":"e","sessionId":"s","metadata":{"sessionVariables":{"taskId":")" +
    std::string(257, 't') + R"(","campaignId":"c"}}})";
const std::string deep_unknown =
    R"({"event":"e","sessionId":"s","x":)" + std::string(40, '[') + std::string(40, ']') + "}";

INSTANTIATE_TEST_SUITE_P(
    Bodies, WebhookEventRejects,
    ::testing::Values(
        bad_case{"empty", "", "invalid_json"}, bad_case{"whitespace", " \n\t", "invalid_json"},
        bad_case{"garbage", "hello", "invalid_json"},
        bad_case{"truncated", doc_example.substr(0, doc_example.size() / 2), "invalid_json"},
        bad_case{"truncated_after_value", R"({"event":"session.ended","sessionId":"s")",
                 "invalid_json"},
        bad_case{"unclosed_nested", R"({"event":"e","sessionId":"s","x":{"a":1})", "invalid_json"},
        bad_case{"trailing_document", R"({"event":"e","sessionId":"s"} {"x":1})", "invalid_json"},
        bad_case{"trailing_brace", R"({"event":"e","sessionId":"s"}})", "invalid_json"},
        bad_case{"bad_atom_in_ignored_field", R"({"event":"e","sessionId":"s","x":[1,tru]})",
                 "invalid_json"},
        bad_case{"bad_number_in_ignored_field", R"({"event":"e","sessionId":"s","x":12abc})",
                 "invalid_json"},
        bad_case{"bad_escape", R"({"event":"e","sessionId":"s","x":"\q"})", "invalid_json"},
        bad_case{"missing_colon", R"({"event" "e","sessionId":"s"})", "invalid_json"},
        bad_case{"invalid_utf8", "{\"event\":\"e\",\"sessionId\":\"s\xff\"}", "invalid_utf8"},
        bad_case{"invalid_utf8_in_key", "{\"ev\xc3\x28nt\":\"e\",\"sessionId\":\"s\"}",
                 "invalid_utf8"},
        bad_case{"array", R"([{"event":"e","sessionId":"s"}])", "not_object"},
        bad_case{"string", R"("session.ended")", "not_object"},
        bad_case{"number", "42", "not_object"}, bad_case{"null", "null", "not_object"},
        bad_case{"no_event", R"({"sessionId":"s"})", "no_event"},
        bad_case{"event_not_string", R"({"event":1,"sessionId":"s"})", "no_event"},
        bad_case{"empty_event", R"({"event":"","sessionId":"s"})", "no_event"},
        bad_case{"no_session", R"({"event":"session.ended"})", "no_session"},
        bad_case{"task_without_campaign",
                 R"({"event":"e","metadata":{"sessionVariables":{"taskId":"T"}}})", "no_session"},
        bad_case{"session_id_not_string", R"({"event":"e","sessionId":42})", "no_session"},
        bad_case{"empty_session_id", R"({"event":"e","sessionId":""})", "no_session"},
        bad_case{"huge_session_id", huge_session_id, "too_long"},
        bad_case{"huge_task_id", huge_task_id, "too_long"},
        bad_case{"control_char_in_id", R"({"event":"e","sessionId":"s\n1"})", "bad_id"},
        bad_case{"too_deep", deep_unknown, "too_deep"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(WebhookEvent, SessionIdOf128BytesIsAccepted) {
  EXPECT_EQ(parse_ok(max_session_id).session_id.size(), 128u);
}

TEST(WebhookEvent, ErrorsNameTheFieldNotTheValue) {
  const auto r = parse_session_event(huge_session_id);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "too_long: sessionId");
}

TEST(WebhookEvent, WrongTypedOptionalFieldsAreIgnored) {
  const session_event e = parse_ok(
      R"({"event":"session.ended","sessionId":"s","timestamp":1795860902,"metadata":"none",)"
      R"("durationSeconds":true,"endReason":{"code":1},"analysis":{"intent":7,)"
      R"("resolution":null,"sentiment":["p"],"data":"text"},"status":false})");
  EXPECT_EQ(e.timestamp_ms, 0);
  EXPECT_FALSE(e.duration_seconds.has_value());
  EXPECT_EQ(e.end_reason, "");
  EXPECT_EQ(e.intent, "");
  EXPECT_EQ(e.resolution, "");
  EXPECT_EQ(e.sentiment, "");
  EXPECT_EQ(e.analysis_data_json, "");
  EXPECT_EQ(e.status, "");
}

TEST(WebhookEvent, SessionVariablesOfWrongTypeAreIgnored) {
  const session_event e =
      parse_ok(R"({"event":"e","sessionId":"s","metadata":{"sessionVariables":["T","C"]}})");
  EXPECT_EQ(e.task_id, "");
  const session_event f =
      parse_ok(R"({"event":"e","sessionId":"s",)"
               R"("metadata":{"sessionVariables":{"taskId":123,"campaignId":"C"}}})");
  EXPECT_EQ(f.task_id, "");
  EXPECT_EQ(f.campaign_id, "C");
}

TEST(WebhookEvent, OverlongDescriptiveStringsAreIgnored) {
  const std::string body = R"({"event":"e","sessionId":"s","endReason":")" + std::string(300, 'r') +
                           R"(","analysis":{"intent":"ok"}})";
  const session_event e = parse_ok(body);
  EXPECT_EQ(e.end_reason, "");
  EXPECT_EQ(e.intent, "ok");
}

struct duration_case {
  std::string_view json;
  std::optional<std::int64_t> expected;
};

TEST(WebhookEvent, DurationForms) {
  const std::vector<duration_case> cases = {
      {"73", 73},
      {"73.4", 73},
      {"73.9", 73},
      {"0", 0},
      {"\"73\"", 73},
      {"\"73.5\"", 73},
      {"1e2", 100},
      {"-5", std::nullopt},
      {"\"\"", std::nullopt},
      {"\"73s\"", std::nullopt},
      {"\" 73\"", std::nullopt},
      {"1e300", std::nullopt},
      {"null", std::nullopt},
      {"\"nan\"", std::nullopt},
  };
  for (const auto& c : cases) {
    const std::string body =
        R"({"event":"e","sessionId":"s","durationSeconds":)" + std::string(c.json) + "}";
    EXPECT_EQ(parse_ok(body).duration_seconds, c.expected) << c.json;
  }
}

TEST(WebhookEvent, DurationSnakeCase) {
  EXPECT_EQ(parse_ok(R"({"event":"e","sessionId":"s","duration_seconds":9})").duration_seconds, 9);
}

// analysis.data is re-emitted compactly; reading it back must give the same values.
TEST(WebhookEvent, AnalysisDataRoundTripsNestedValues) {
  const std::string_view data =
      R"({ "s" : "a \"quoted\" \\ line\nbreak \u00e9 \ud83d\ude00",
          "n": -12.5e-3, "i": 18446744073709551615,
          "t": true, "f": false, "z": null,
          "nested": {"list": [1, "two", [3], {"four": 4}], "empty": {}, "none": []} })";
  const std::string body =
      R"({"event":"session.ended","sessionId":"s","analysis":{"data":)" + std::string(data) + "}}";
  const session_event e = parse_ok(body);
  ASSERT_FALSE(e.analysis_data_json.empty());
  EXPECT_FALSE(has_whitespace_outside_strings(e.analysis_data_json)) << e.analysis_data_json;

  simdjson::dom::parser parser;
  const simdjson::padded_string emitted(e.analysis_data_json);
  simdjson::dom::object got;
  ASSERT_EQ(parser.parse(emitted).get_object().get(got), simdjson::SUCCESS) << e.analysis_data_json;
  std::string_view s;
  ASSERT_EQ(got["s"].get_string().get(s), simdjson::SUCCESS);
  EXPECT_EQ(s, "a \"quoted\" \\ line\nbreak \u00e9 \U0001F600");
  double n = 0;
  ASSERT_EQ(got["n"].get_double().get(n), simdjson::SUCCESS);
  EXPECT_DOUBLE_EQ(n, -12.5e-3);
  std::uint64_t i = 0;
  ASSERT_EQ(got["i"].get_uint64().get(i), simdjson::SUCCESS);
  EXPECT_EQ(i, 18446744073709551615ull);
  bool t = false;
  bool f = true;
  ASSERT_EQ(got["t"].get_bool().get(t), simdjson::SUCCESS);
  ASSERT_EQ(got["f"].get_bool().get(f), simdjson::SUCCESS);
  EXPECT_TRUE(t);
  EXPECT_FALSE(f);
  EXPECT_TRUE(got["z"].is_null());
  std::string_view two;
  ASSERT_EQ(got.at_pointer("/nested/list/1").get_string().get(two), simdjson::SUCCESS);
  EXPECT_EQ(two, "two");
  std::int64_t four = 0;
  ASSERT_EQ(got.at_pointer("/nested/list/3/four").get_int64().get(four), simdjson::SUCCESS);
  EXPECT_EQ(four, 4);
  EXPECT_NE(e.analysis_data_json.find(R"("nested":{"list":[1,"two",[3],{"four":4}],)"
                                      R"("empty":{},"none":[]})"),
            std::string::npos);
}

// Numbers keep their text as sent, so precision beyond a double survives (simdjson's DOM parser
// refuses integers above 2^64, which is why this one is checked as text).
TEST(WebhookEvent, AnalysisDataNumbersKeepTheirText) {
  const session_event e = parse_ok(
      R"({"event":"e","sessionId":"s","analysis":{"data":{"big":123456789012345678901234567890,)"
      R"("e":1.50E+2 , "neg":-0}}})");
  EXPECT_EQ(e.analysis_data_json, R"({"big":123456789012345678901234567890,"e":1.50E+2,"neg":-0})");
}

TEST(WebhookEvent, AnalysisDataReadBeforeOtherAnalysisFields) {
  const session_event e = parse_ok(
      R"({"analysis":{"data":{"a":[1,2]},"intent":"i"},"event":"session.ended","sessionId":"s"})");
  EXPECT_EQ(e.analysis_data_json, R"({"a":[1,2]})");
  EXPECT_EQ(e.intent, "i");
}

TEST(WebhookEvent, EmptyAnalysisDataIsAnEmptyObject) {
  EXPECT_EQ(parse_ok(R"({"event":"e","sessionId":"s","analysis":{"data":{}}})").analysis_data_json,
            "{}");
}

TEST(WebhookEvent, BadTimestampGivesZero) {
  EXPECT_EQ(parse_ok(R"({"event":"e","sessionId":"s","timestamp":"yesterday"})").timestamp_ms, 0);
}

TEST(WebhookEvent, ParsesRepeatedlyOnOneThread) {
  // The thread's buffer is reused: a short body after a long one must not see stale bytes.
  const std::string long_body =
      R"({"event":"e","sessionId":"s","pad":")" + std::string(4000, 'x') + R"("})";
  ASSERT_TRUE(parse_session_event(long_body).ok());
  EXPECT_EQ(reason_of(parse_session_event(R"({"event":"e")")), "invalid_json");
  EXPECT_EQ(parse_ok(R"({"event":"e","sessionId":"t"})").session_id, "t");
}

TEST(WebhookEvent, LargeBodyReleasesAndStillParses) {
  const std::string big =
      R"({"event":"e","sessionId":"s","pad":")" + std::string(2 << 20, 'x') + R"("})";
  EXPECT_EQ(parse_ok(big).session_id, "s");
  EXPECT_EQ(parse_ok(doc_example).session_id, "0b5e…uuid");
}

// Session documents (agentix-api.md section 3).

TEST(SessionDocument, Active) {
  const auto r = parse_session_document(
      R"({"sessionId":"s-9","status":"active","timestamp":"2026-11-28T10:13:49Z",)"
      R"("metadata":{"agentId":"a","sessionVariables":{"taskId":"T-9","campaignId":"c"}}})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().kind, session_event_kind::created);
  EXPECT_EQ(r.value().status, "active");
  EXPECT_EQ(r.value().event_name, "");
  EXPECT_EQ(r.value().session_id, "s-9");
  EXPECT_EQ(r.value().task_id, "T-9");
  EXPECT_FALSE(r.value().duration_seconds.has_value());
}

TEST(SessionDocument, EndedByStatus) {
  const auto r = parse_session_document(
      R"({"sessionId":"s","status":"ended","durationSeconds":73,"endReason":"max_duration",)"
      R"("analysis":{"intent":"x","resolution":"resolved","sentiment":"neutral",)"
      R"("data":{"callback_requested":"true"}}})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().kind, session_event_kind::ended);
  EXPECT_EQ(r.value().end_reason, "max_duration");
  EXPECT_EQ(r.value().duration_seconds, 73);
  EXPECT_EQ(r.value().analysis_data_json, R"({"callback_requested":"true"})");
}

TEST(SessionDocument, EndedByEndReasonWithoutStatus) {
  const auto r = parse_session_document(R"({"sessionId":"s","endReason":"busy"})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().kind, session_event_kind::ended);
}

TEST(SessionDocument, PlainIdIsTheSessionId) {
  const auto r = parse_session_document(R"({"id":"s-7","status":"active"})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().session_id, "s-7");
  const auto both = parse_session_document(R"({"id":"other","sessionId":"s-8"})");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both.value().session_id, "s-8");
}

TEST(SessionDocument, NeedsNoEventButASession) {
  EXPECT_EQ(reason_of(parse_session_document(R"({"status":"active"})")), "no_session");
  EXPECT_EQ(reason_of(parse_session_document("[]")), "not_object");
  EXPECT_EQ(reason_of(parse_session_document(R"({"sessionId":"s",})")), "invalid_json");
}

// Transcripts.

TEST(Transcript, ItemsAreReEmittedCompactly) {
  const auto r = parse_transcript(
      R"({ "items" : [ {"role": "agent", "text": "Hello, \"Layla\"",)"
      R"( "ts": "2026-11-28T10:13:50Z"},)"
      R"( {"role":"user","text":"Yes","ts":"2026-11-28T10:13:55Z","confidence":0.9} ],)"
      R"( "page": 1, "total": 2 })");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value(),
            R"([{"role":"agent","text":"Hello, \"Layla\"","ts":"2026-11-28T10:13:50Z"},)"
            R"({"role":"user","text":"Yes","ts":"2026-11-28T10:13:55Z","confidence":0.9}])");
}

TEST(Transcript, EmptyItems) {
  const auto r = parse_transcript(R"({"items":[]})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value(), "[]");
}

TEST(Transcript, BadShapes) {
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {R"({})", "bad_transcript: no items"},
      {R"({"items":{}})", "bad_transcript: items not an array"},
      {R"({"items":["hi"]})", "bad_transcript: item not an object"},
      {R"({"items":[{"role":"agent"}]})", "bad_transcript: item without text"},
      {R"({"items":[{"text":"hi"}]})", "bad_transcript: item without role"},
      {R"({"items":[{"role":1,"text":"hi"}]})", "bad_transcript: role not a string"},
      {R"({"items":[{"role":"agent","text":null}]})", "bad_transcript: text not a string"},
      {R"({"items":[{"role":"agent","text":"a"})", "invalid_json"},
      {R"({"items":[]} {"x":1})", "invalid_json: trailing content"},
      {R"([])", "not_object"},
      {"", "invalid_json"},
  };
  for (const auto& [body, error] : cases) {
    const auto r = parse_transcript(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error(), error) << body;
  }
}

// RFC 3339 timestamps.

TEST(Rfc3339, ValidForms) {
  const std::vector<std::pair<std::string_view, std::int64_t>> cases = {
      {"2026-11-28T10:15:02Z", example_ms},
      {"2026-11-28t10:15:02z", example_ms},
      {"2026-11-28 10:15:02Z", example_ms},
      {"2026-11-28T14:15:02+04:00", example_ms},
      {"2026-11-28T06:45:02-03:30", example_ms},
      {"2026-11-28T10:15:02-00:00", example_ms},
      {"2026-11-28T14:15:02.250+04:00", example_ms + 250},
      {"2026-11-28T10:15:02.5Z", example_ms + 500},
      {"2026-11-28T10:15:02.123456789Z", example_ms + 123},
      {"1970-01-01T00:00:00Z", 0},
      {"1969-12-31T23:59:59Z", -1000},
      {"2024-02-29T23:59:59.999Z", 1709251199999},  // leap year
      {"2024-12-31T00:00:00Z", 1735603200000},      // day 366
      {"2023-12-31T23:59:59Z", 1704067199000},
      {"2028-02-29T12:00:00Z", 1835438400000},
      {"2000-02-29T00:00:00Z", 951782400000},  // divisible by 400: leap
      {"2000-03-01T00:00:00-05:30", 951888600000},
      {"2100-03-01T00:00:00Z", 4107542400000},
      {"2016-12-31T23:59:60Z", 1483228800000},  // leap second reads as the next second
  };
  for (const auto& [text, ms] : cases) {
    EXPECT_EQ(parse_rfc3339_ms(text), std::optional<std::int64_t>(ms)) << text;
  }
}

TEST(Rfc3339, Garbage) {
  for (const std::string_view text : {
           ""sv,
           "2026-11-28"sv,
           "2026-11-28T10:15:02"sv,    // no offset
           "2026-11-28T10:15Z"sv,      // no seconds
           "2026-11-28T10:15:02.Z"sv,  // empty fraction
           "2026-13-01T00:00:00Z"sv,   // month
           "2026-00-01T00:00:00Z"sv,
           "2026-04-31T00:00:00Z"sv,  // April has 30 days
           "2023-02-29T00:00:00Z"sv,  // not a leap year
           "2100-02-29T00:00:00Z"sv,  // divisible by 100, not 400
           "2026-11-28T24:00:00Z"sv,
           "2026-11-28T10:60:00Z"sv,
           "2026-11-28T10:15:61Z"sv,
           "2026-11-28T10:15:02+24:00"sv,
           "2026-11-28T10:15:02+04:60"sv,
           "2026-11-28T10:15:02+0400"sv,
           "2026-11-28T10:15:02+04"sv,
           "2026-11-28T10:15:02Z "sv,  // trailing space
           " 2026-11-28T10:15:02Z"sv,
           "2026-11-28X10:15:02Z"sv,
           "2026/11/28T10:15:02Z"sv,
           "+2026-11-28T10:15:02Z"sv,
           "2026-1-28T10:15:02Z"sv,
           "2026-11-28T10:15:02ZZ"sv,
           "20a6-11-28T10:15:02Z"sv,
           "1795860902"sv,
       }) {
    EXPECT_EQ(parse_rfc3339_ms(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace dialer
