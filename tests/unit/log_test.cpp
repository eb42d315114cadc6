// The log line formats: text with a level name, and --log-format json (one valid JSON object per
// line, whatever the message holds).
#include "core/log.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace dialer {
namespace {

// Captures what log_line writes to stderr while `fn` runs.
template <class F>
std::string capture_stderr(F&& fn) {
  std::fflush(stderr);
  const int saved = ::dup(2);
  std::FILE* tmp = std::tmpfile();
  ::dup2(::fileno(tmp), 2);
  fn();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string out;
  std::rewind(tmp);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, tmp)) > 0;) {
    out.append(buf, n);
  }
  std::fclose(tmp);
  return out;
}

class log_test : public ::testing::Test {
 protected:
  void TearDown() override {
    set_log_format(log_format::text);
    set_log_threshold(log_level::info);
  }
};

TEST_F(log_test, text_lines_name_their_level) {
  if (std::getenv("JOURNAL_STREAM") != nullptr) {
    GTEST_SKIP() << "under journald the text format uses <N> prefixes instead";
  }
  const std::string out = capture_stderr([] { DIALER_LOG_WARN("trunk %s held", "main"); });
  EXPECT_EQ(out, "dialerd: warning: trunk main held\n");
}

TEST_F(log_test, json_lines_are_one_valid_object_each_with_the_message_escaped) {
  set_log_format(log_format::json);
  const std::string out = capture_stderr([] {
    DIALER_LOG_INFO("campaign %s: \"quoted\" and\nnewline\tand \\ backslash", "spring");
    DIALER_LOG_ERROR("second");
  });
  const auto nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos) << out;
  ASSERT_EQ(out.back(), '\n');
  ASSERT_EQ(out.find('\n', nl + 1), out.size() - 1) << "exactly two lines: " << out;

  simdjson::dom::parser parser;
  simdjson::dom::element first;
  ASSERT_EQ(parser.parse(out.substr(0, nl)).get(first), simdjson::SUCCESS) << out;
  EXPECT_EQ(std::string_view(first["level"].get_string().value()), "info");
  EXPECT_EQ(first["priority"].get_int64().value(), 6);
  EXPECT_EQ(std::string_view(first["msg"].get_string().value()),
            "campaign spring: \"quoted\" and\nnewline\tand \\ backslash");
  const std::string_view ts = first["ts"].get_string().value();
  ASSERT_EQ(ts.size(), 24u) << ts;  // 2026-11-29T02:15:35.123Z
  EXPECT_EQ(ts[10], 'T');
  EXPECT_EQ(ts.back(), 'Z');

  simdjson::dom::element second;
  ASSERT_EQ(parser.parse(out.substr(nl + 1, out.size() - nl - 2)).get(second), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(second["level"].get_string().value()), "error");
  EXPECT_EQ(second["priority"].get_int64().value(), 3);
}

TEST_F(log_test, the_threshold_drops_info_but_never_errors) {
  set_log_threshold(log_level::warning);
  set_log_format(log_format::json);
  const std::string out = capture_stderr([] {
    DIALER_LOG_INFO("dropped");
    DIALER_LOG_ERROR("kept");
  });
  EXPECT_EQ(out.find("dropped"), std::string::npos) << out;
  EXPECT_NE(out.find("kept"), std::string::npos) << out;
}

}  // namespace
}  // namespace dialer
