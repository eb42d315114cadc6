#include "scheduler/classify.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "core/http_client.hpp"
#include "core/time.hpp"

namespace dialer {
namespace {

http_response status(int code) {
  http_response r;
  r.status = code;
  return r;
}

http_response transport(transport_error e) {
  http_response r;
  r.error = e;
  return r;
}

struct status_row {
  int status;
  call_verdict verdict;
  std::string_view error_class;
  bool task_unknown;
};

std::string status_row_name(const ::testing::TestParamInfo<status_row>& info) {
  return "http_" + std::to_string(info.param.status);
}

// agentix-api.md, "Error statuses and what they mean for the dialer", row by row.
class classify_api_table : public ::testing::TestWithParam<status_row> {};

TEST_P(classify_api_table, status_gets_the_documented_reading) {
  const status_row row = GetParam();
  for (bool has_session_id : {false, true}) {
    const classification c = classify(status(row.status), has_session_id);
    EXPECT_EQ(c.verdict, row.verdict) << to_string(c.verdict) << " sid=" << has_session_id;
    EXPECT_EQ(c.error_class, row.error_class) << "sid=" << has_session_id;
    EXPECT_EQ(c.task_unknown, row.task_unknown) << "sid=" << has_session_id;
  }
}

INSTANTIATE_TEST_SUITE_P(
    rows, classify_api_table,
    ::testing::Values(status_row{400, call_verdict::failed, "http_400", false},
                      status_row{422, call_verdict::failed, "http_422", false},
                      status_row{401, call_verdict::pause_campaign, "http_401", false},
                      status_row{403, call_verdict::pause_campaign, "http_403", false},
                      status_row{404, call_verdict::pause_campaign, "http_404", false},
                      status_row{409, call_verdict::retry_later, "http_409", false},
                      status_row{429, call_verdict::hold_trunk, "http_429", false},
                      status_row{503, call_verdict::hold_trunk, "http_503", false},
                      status_row{500, call_verdict::ambiguous, "http_500", false},
                      status_row{502, call_verdict::ambiguous, "http_502", false},
                      status_row{504, call_verdict::ambiguous, "http_504", false}),
    status_row_name);

// Statuses the table does not name: other 4xx are permanent, other 5xx ambiguous, 3xx pause.
INSTANTIATE_TEST_SUITE_P(
    unlisted, classify_api_table,
    ::testing::Values(status_row{405, call_verdict::failed, "http_405", false},
                      status_row{410, call_verdict::failed, "http_4xx", false},
                      status_row{408, call_verdict::retry_later, "http_408", false},
                      status_row{501, call_verdict::ambiguous, "http_501", false},
                      status_row{599, call_verdict::ambiguous, "http_5xx", false},
                      status_row{300, call_verdict::pause_campaign, "http_300", true},
                      status_row{301, call_verdict::pause_campaign, "http_301", true},
                      status_row{302, call_verdict::pause_campaign, "http_302", true},
                      status_row{303, call_verdict::pause_campaign, "http_303", true},
                      status_row{307, call_verdict::pause_campaign, "http_307", true},
                      status_row{308, call_verdict::pause_campaign, "http_308", true},
                      status_row{399, call_verdict::pause_campaign, "http_3xx", true}),
    status_row_name);

TEST(classify, success_with_session_id_is_started) {
  for (int s : {200, 201, 202, 299}) {
    const classification c = classify(status(s), true);
    EXPECT_EQ(c.verdict, call_verdict::started) << s;
    EXPECT_FALSE(c.task_unknown) << s;
  }
}

TEST(classify, success_without_session_id_is_ambiguous_never_retried) {
  for (int s : {200, 201, 204}) {
    const classification c = classify(status(s), false);
    EXPECT_EQ(c.verdict, call_verdict::ambiguous) << s;
    EXPECT_EQ(c.error_class, "no_session_id") << s;
  }
}

TEST(classify, failures_before_the_request_was_sent_are_retried_later) {
  for (transport_error e : {transport_error::connect_failed, transport_error::tls_failed,
                            transport_error::reset_before_send,
                            transport_error::timeout_before_send, transport_error::shutdown}) {
    const classification c = classify(transport(e), false);
    EXPECT_EQ(c.verdict, call_verdict::retry_later) << to_string(e);
    EXPECT_EQ(c.error_class, to_string(e));
    EXPECT_FALSE(c.task_unknown) << to_string(e);
  }
}

TEST(classify, failures_after_the_request_was_sent_are_ambiguous) {
  for (transport_error e : {transport_error::reset_after_send, transport_error::timeout_after_send,
                            transport_error::protocol_error}) {
    const classification c = classify(transport(e), false);
    EXPECT_EQ(c.verdict, call_verdict::ambiguous) << to_string(e);
    EXPECT_EQ(c.error_class, to_string(e));
  }
}

TEST(classify, every_transport_error_is_ambiguous_exactly_when_maybe_delivered) {
  for (int i = 1; i <= static_cast<int>(transport_error::shutdown); ++i) {
    const auto e = static_cast<transport_error>(i);
    const call_verdict expected =
        maybe_delivered(e) ? call_verdict::ambiguous : call_verdict::retry_later;
    EXPECT_EQ(classify(transport(e), true).verdict, expected) << to_string(e);
  }
}

TEST(classify, transport_error_wins_over_a_leftover_status) {
  http_response r = status(200);
  r.error = transport_error::reset_after_send;
  EXPECT_EQ(classify(r, true).verdict, call_verdict::ambiguous);
}

TEST(classify, verdict_names_are_stable) {
  EXPECT_EQ(to_string(call_verdict::started), "started");
  EXPECT_EQ(to_string(call_verdict::retry_later), "retry_later");
  EXPECT_EQ(to_string(call_verdict::hold_trunk), "hold_trunk");
  EXPECT_EQ(to_string(call_verdict::failed), "failed");
  EXPECT_EQ(to_string(call_verdict::pause_campaign), "pause_campaign");
  EXPECT_EQ(to_string(call_verdict::ambiguous), "ambiguous");
}

// RFC 9110 section 5.6.7's example instant: Sun, 06 Nov 1994 08:49:37 GMT.
constexpr std::int64_t rfc_example_unix = 784111777;

system_time at_unix(std::int64_t s) {
  return system_time{} + seconds(s);
}

TEST(parse_retry_after, delta_seconds) {
  const system_time now = at_unix(rfc_example_unix);
  EXPECT_EQ(parse_retry_after("120", now), nanoseconds(seconds(120)));
  EXPECT_EQ(parse_retry_after("0", now), nanoseconds(0));
  EXPECT_EQ(parse_retry_after("1", now), nanoseconds(seconds(1)));
  EXPECT_EQ(parse_retry_after("007", now), nanoseconds(seconds(7)));
  EXPECT_EQ(parse_retry_after("86400", now), nanoseconds(seconds(86400)));
}

TEST(parse_retry_after, surrounding_whitespace_is_ignored) {
  const system_time now = at_unix(rfc_example_unix);
  EXPECT_EQ(parse_retry_after("  120", now), nanoseconds(seconds(120)));
  EXPECT_EQ(parse_retry_after("120 \t", now), nanoseconds(seconds(120)));
  EXPECT_EQ(parse_retry_after("\t 5 \t", now), nanoseconds(seconds(5)));
  EXPECT_EQ(parse_retry_after("  Sun, 06 Nov 1994 08:49:47 GMT\t", now), nanoseconds(seconds(10)));
}

TEST(parse_retry_after, imf_fixdate) {
  const system_time now = at_unix(rfc_example_unix - 37);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), nanoseconds(seconds(37)));
}

TEST(parse_retry_after, obsolete_rfc850_date) {
  const system_time now = at_unix(rfc_example_unix - 37);
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), nanoseconds(seconds(37)));
}

TEST(parse_retry_after, asctime_date) {
  const system_time now = at_unix(rfc_example_unix - 37);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), nanoseconds(seconds(37)));
}

TEST(parse_retry_after, the_three_date_forms_agree) {
  const system_time now = at_unix(rfc_example_unix - 3600);
  const auto imf = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now);
  ASSERT_TRUE(imf.has_value());
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), imf);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), imf);
}

TEST(parse_retry_after, date_in_this_century_from_the_test_clock) {
  manual_time_source clock;  // 2026-01-01T00:00:00Z
  EXPECT_EQ(parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", clock.system_now()),
            nanoseconds(seconds(120)));
  EXPECT_EQ(parse_retry_after("Thursday, 01-Jan-26 00:00:30 GMT", clock.system_now()),
            nanoseconds(seconds(30)));
}

TEST(parse_retry_after, past_or_present_date_means_no_wait) {
  const system_time now = at_unix(rfc_example_unix + 3600);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), nanoseconds(0));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at_unix(rfc_example_unix)),
            nanoseconds(0));
}

TEST(parse_retry_after, garbage_is_rejected) {
  const system_time now = at_unix(rfc_example_unix);
  for (std::string_view v : {"",
                             "   ",
                             "\t",
                             "soon",
                             "12s",
                             "-5",
                             "+5",
                             "1.5",
                             "0x10",
                             "5 5",
                             "1e3",
                             "Sun, 06 Nov 1994 08:49:37 PST",
                             "Sun, 06 Nov 1994 08:49:37",
                             "Sun, 06 Foo 1994 08:49:37 GMT",
                             "Sun, 32 Nov 1994 08:49:37 GMT",
                             "Sun, 00 Nov 1994 08:49:37 GMT",
                             "Sun, 06 Nov 1994 24:00:00 GMT",
                             "Sun, 06 Nov 1994 08:60:00 GMT",
                             "Sun, 06 Nov 1994 8:49:37 GMT",
                             "Sun, 06 Nov 1994 08-49-37 GMT",
                             "Sunday, 06-Nov-94 08:49:37 UTC",
                             "Sunday, 6-Nov-94 08:49:37 GMT",
                             "Sun Nov  6 08:49:37",
                             "Sun Nov 6 08:49:37 abcd",
                             "Sun Xyz  6 08:49:37 1994"}) {
    EXPECT_EQ(parse_retry_after(v, now), std::nullopt) << '"' << v << '"';
  }
}

// A date field with a sign is garbage, not a date that timegm() may normalise.
TEST(parse_retry_after, negative_date_fields_are_rejected) {
  const system_time now = at_unix(rfc_example_unix - 86400);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 -1:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:-9:37 GMT", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:-7 1994", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov--1 08:49:37 GMT", now), std::nullopt);
}

TEST(parse_retry_after, huge_numbers_are_rejected) {
  const system_time now = at_unix(rfc_example_unix);
  EXPECT_EQ(parse_retry_after("9999999999", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("2147483648", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("99999999999999999999999999", now), std::nullopt);
  EXPECT_EQ(parse_retry_after(std::string(1000, '9'), now), std::nullopt);
}

}  // namespace
}  // namespace dialer
