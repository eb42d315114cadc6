// dialerctl's human views, from canned JSON, compared to exact text.
#include <gtest/gtest.h>

#include <string>

#include "ctl/status_view.hpp"

namespace dialer::ctl {
namespace {

// The example of docs/operations.md, verbatim.
constexpr std::string_view doc_example =
    R"({"version": "0.3.0", "ready": true, "draining": false, "state_path": "/var/lib/dialerd/state.db",
 "campaigns": [{"id": "spring", "trunk": "dubai-main", "state": "running", "pause_reason": "",
   "weight": 3, "rows_read": 10000, "tasks": {"pending": 4000, "dialing": 3, "started": 40,
   "ended": 5900, "ended_unconfirmed": 2, "failed": 10, "unknown": 1, "suppressed": 44},
   "rate_target": 10.0, "rate_achieved": 9.8, "in_flight": 3, "live": 40, "eta_seconds": 410}],
 "trunks": [{"name": "dubai-main", "active": 43, "capacity": 200, "reserved": 10,
   "rate_target": 20.0, "rate_achieved": 19.7, "held": false, "holds": 0}]})";

std::string render(std::string_view json, bool unicode = false) {
  auto parsed = parse_status(json);
  EXPECT_TRUE(parsed.ok()) << (parsed.ok() ? "" : parsed.error());
  return parsed.ok() ? render_status(parsed.value(), render_options{unicode}) : "";
}

TEST(DialerctlRender, DocExample) {
  // 5997 of 10000 tasks are neither pending nor dialing: 59.97%, shown truncated as 59.9%, and
  // 11.99 of 20 cells → 11.
  EXPECT_EQ(render(doc_example),
            "dialerd 0.3.0  ready  state /var/lib/dialerd/state.db\n"
            "\n"
            "campaign spring: running  (trunk dubai-main, weight 3, 10000 rows read)\n"
            "  [###########.........]   59.9%  5997/10000 done  ETA 6m50s\n"
            "  rate 9.8/s (target 10/s)  in flight 3  live 40\n"
            "  pending 4000  dialing 3  started 40  ended 5900  ended_unconfirmed 2\n"
            "  failed 10  unknown 1  suppressed 44\n"
            "\n"
            "trunk dubai-main: active 43/200 (+10 reserved)  rate 19.7/s (target 20/s)\n");
}

TEST(DialerctlRender, DocExampleUnicode) {
  const std::string text = render(doc_example, true);
  // 5997 * 160 / 10000 = 95 eighths: 11 full cells and a 7/8 cell, then 8 blanks.
  std::string bar = "  [";
  for (int i = 0; i < 11; ++i) {
    bar += "\u2588";
  }
  bar += "\u2589" + std::string(8, ' ') + "]   59.9%";
  EXPECT_NE(text.find(bar), std::string::npos) << text;
  EXPECT_NE(text.find("ETA 6m50s"), std::string::npos);
}

TEST(DialerctlRender, ZeroRatePausedWithReason) {
  EXPECT_EQ(render(R"({"version": "0.3.0", "ready": true, "campaigns": [
      {"id": "c1", "trunk": "t", "state": "paused", "pause_reason": "401 from the API",
       "tasks": {"pending": 10, "dialing": 0, "ended": 10},
       "rate_target": 0.5, "rate_achieved": 0, "in_flight": 0, "live": 0, "eta_seconds": null}],
      "trunks": []})"),
            "dialerd 0.3.0  ready\n"
            "\n"
            "campaign c1: paused (401 from the API)  (trunk t)\n"
            "  [##########..........]   50.0%  10/20 done  ETA -\n"
            "  rate 0/s (target 0.5/s)  in flight 0  live 0\n"
            "  pending 10  ended 10\n");
  EXPECT_NE(
      render(R"({"campaigns": [{"id": "c1", "state": "running", "eta_seconds": null}]})", true)
          .find("ETA \u2014"),
      std::string::npos);
}

TEST(DialerctlRender, NoTasksNoCampaigns) {
  EXPECT_EQ(render(R"({"version": "0.3.0", "ready": false, "campaigns": [
      {"id": "new", "trunk": "t", "state": "running", "weight": 1, "rows_read": 0, "tasks": {},
       "rate_target": 10, "rate_achieved": 0, "in_flight": 0, "live": 0, "eta_seconds": null}]})"),
            "dialerd 0.3.0  starting\n"
            "\n"
            "campaign new: running  (trunk t, weight 1, 0 rows read)\n"
            "  [....................]    0.0%  0/0 done  ETA -\n"
            "  rate 0/s (target 10/s)  in flight 0  live 0\n"
            "  no tasks yet\n");
  EXPECT_EQ(render(R"({"version": "0.3.0", "ready": true, "draining": true, "campaigns": []})"),
            "dialerd 0.3.0  draining\n\nno campaigns\n");
}

TEST(DialerctlRender, UnknownFieldsIgnoredMissingFieldsTolerated) {
  // New fields (top level, in a campaign, a new task state) are ignored or shown as counts;
  // missing numbers print "?"; wrong types count as missing.
  EXPECT_EQ(render(R"({"future": {"x": [1, 2]}, "campaigns": [
      {"id": "c", "state": "complete", "shiny": true,
       "tasks": {"ended": 3, "archived": 2, "pending": "lots"}},
      "not an object"],
      "trunks": [{"name": "t", "held": true, "holds": 3, "active": 1}]})"),
            "dialerd\n"
            "\n"
            "campaign c: complete\n"
            "  [####################]  100.0%  5/5 done\n"
            "  rate ?/s (target ?/s)  in flight ?  live ?\n"
            "  ended 3  archived 2\n"
            "\n"
            "trunk t: active 1/?  rate ?/s (target ?/s)  held (Retry-After)  holds 3\n");
}

TEST(DialerctlRender, CancelledHasNoEtaAndAlmostDoneIsNotFull) {
  EXPECT_EQ(render(R"({"campaigns": [{"id": "c", "state": "cancelled",
      "tasks": {"pending": 1, "suppressed": 9999}, "eta_seconds": 5}]})"),
            "dialerd\n"
            "\n"
            "campaign c: cancelled\n"
            "  [###################.]   99.9%  9999/10000 done\n"
            "  rate ?/s (target ?/s)  in flight ?  live ?\n"
            "  pending 1  suppressed 9999\n");
}

TEST(DialerctlRender, ControlCharactersFromTheDaemonAreNeutralised) {
  const std::string text = render(R"({"campaigns": [{"id": "evil\u001b[2J", "state": "paused",
                 "pause_reason": "a\nb\u009b"}]})");
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(text.find("campaign evil?[2J: paused (a?b?)"), std::string::npos) << text;
}

TEST(DialerctlRender, NotJsonIsAnError) {
  EXPECT_FALSE(parse_status("<html>").ok());
  EXPECT_FALSE(parse_status("[1, 2]").ok());
  EXPECT_TRUE(parse_status("{}").ok());
}

TEST(DialerctlRender, ProgressBar) {
  EXPECT_EQ(progress_bar(0, 0, 10, false), "[..........]");
  EXPECT_EQ(progress_bar(0, 7, 10, false), "[..........]");
  EXPECT_EQ(progress_bar(5, 10, 10, false), "[#####.....]");
  EXPECT_EQ(progress_bar(999, 1000, 10, false), "[#########.]");
  EXPECT_EQ(progress_bar(1000, 1000, 10, false), "[##########]");
  EXPECT_EQ(progress_bar(20, 10, 4, false), "[####]");         // over-counting clamps
  EXPECT_EQ(progress_bar(1, 16, 2, true), "[\u258F ]");        // 1/8 of a cell
  EXPECT_EQ(progress_bar(12, 16, 2, true), "[\u2588\u258C]");  // 1.5 cells
  EXPECT_EQ(progress_bar(15, 16, 1, true), "[\u2589]");        // never full before the end
  EXPECT_EQ(progress_bar(16, 16, 2, true), "[\u2588\u2588]");
}

TEST(DialerctlRender, Eta) {
  EXPECT_EQ(format_eta(std::nullopt, false), "-");
  EXPECT_EQ(format_eta(std::nullopt, true), "\u2014");
  EXPECT_EQ(format_eta(-1, false), "-");
  EXPECT_EQ(format_eta(0, false), "0s");
  EXPECT_EQ(format_eta(59, false), "59s");
  EXPECT_EQ(format_eta(60, false), "1m00s");
  EXPECT_EQ(format_eta(410, false), "6m50s");
  EXPECT_EQ(format_eta(3700, false), "1h01m40s");
  EXPECT_EQ(format_eta(90061, false), "25h01m01s");
}

TEST(DialerctlRender, Rate) {
  EXPECT_EQ(format_rate(std::nullopt), "?");
  EXPECT_EQ(format_rate(0.0), "0");
  EXPECT_EQ(format_rate(10.0), "10");
  EXPECT_EQ(format_rate(9.8), "9.8");
  EXPECT_EQ(format_rate(0.25), "0.25");
  EXPECT_EQ(format_rate(1.0 / 60), "0.02");
  EXPECT_EQ(format_rate(0.001), "0.001");
}

TEST(DialerctlRender, PhoneNumbersFromEveryShape) {
  const std::string expected =
      "ID         NUMBER        NAME\n"
      "6f1c-uuid  +97145550000  Dubai outbound\n"
      "42         +97145550001  Second\n";
  for (const std::string_view json : {
           std::string_view(R"({"items": [{"id": "6f1c-uuid", "phone_number": "+97145550000",
              "label": "Dubai outbound"}, {"id": 42, "phone_number": "+97145550001",
              "label": "Second"}], "page": 1, "size": 50, "total": 2})"),
           std::string_view(R"({"data": [{"phoneNumberId": "6f1c-uuid",
              "phoneNumber": "+97145550000", "name": "Dubai outbound"},
              {"phoneNumberId": 42, "number": "+97145550001", "name": "Second"}]})"),
           std::string_view(R"([{"id": "6f1c-uuid", "phoneNumber": "+97145550000",
              "name": "Dubai outbound", "extra": {}}, 17,
              {"id": "42", "number": "+97145550001", "label": "Second"}])"),
           std::string_view(R"({"data": {"items": [{"id": "6f1c-uuid",
              "phone_number": "+97145550000", "label": "Dubai outbound"},
              {"id": "42", "phone_number": "+97145550001", "label": "Second"}]}})"),
       }) {
    auto list = parse_phone_numbers(json);
    ASSERT_TRUE(list.ok()) << json;
    EXPECT_EQ(render_phone_numbers(list.value()), expected) << json;
  }
}

TEST(DialerctlRender, PhoneNumbersEdgeCases) {
  auto empty = parse_phone_numbers(R"({"items": []})");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(render_phone_numbers(empty.value()), "no phone numbers\n");

  auto partial = parse_phone_numbers(R"({"items": [{"id": "a", "phone_number": "+1"}],
      "total": 120})");
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(render_phone_numbers(partial.value()),
            "ID  NUMBER  NAME\n"
            "a   +1\n"
            "(1 of 120 shown)\n");

  EXPECT_FALSE(parse_phone_numbers(R"({"numbers": []})").ok());
  EXPECT_FALSE(parse_phone_numbers("not json").ok());
}

}  // namespace
}  // namespace dialer::ctl
