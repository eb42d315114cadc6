// dialerctl's command line and control URL: every command, good and bad.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ctl/cli.hpp"
#include "ctl/http_client.hpp"

namespace dialer::ctl {
namespace {

using namespace std::chrono_literals;
using args = std::vector<std::string>;

invocation parse_ok(const args& a) {
  auto r = parse_arguments(a);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : invocation{};
}

// The error message, which must name what is wrong.
std::string parse_bad(const args& a, command expected_cmd = command::none) {
  auto r = parse_arguments(a);
  EXPECT_FALSE(r.ok());
  if (r.ok()) {
    return {};
  }
  EXPECT_EQ(r.error().cmd, expected_cmd) << r.error().message;
  return r.error().message;
}

TEST(DialerctlArgs, GlobalOptionsBeforeAndAfterTheCommand) {
  auto a = parse_ok(
      {"--control", "http://127.0.0.1:1", "--token-file=/t", "--timeout", "500ms", "status"});
  EXPECT_EQ(a.cmd, command::status);
  EXPECT_EQ(a.global.control, "http://127.0.0.1:1");
  EXPECT_EQ(a.global.token_file, "/t");
  EXPECT_EQ(a.global.timeout, 500ms);

  auto b = parse_ok({"pause", "spring", "--timeout=3", "--control=http://h:2"});
  EXPECT_EQ(b.cmd, command::pause);
  EXPECT_EQ(b.target, "spring");
  EXPECT_EQ(b.global.timeout, 3s);
  EXPECT_EQ(b.global.control, "http://h:2");
  EXPECT_FALSE(b.global.token_file);
}

TEST(DialerctlArgs, GlobalErrors) {
  EXPECT_EQ(parse_bad({}), "no command given");
  EXPECT_EQ(parse_bad({"frobnicate"}), "unknown command \"frobnicate\"");
  EXPECT_EQ(parse_bad({"--frob", "status"}), "unknown option \"--frob\"");
  EXPECT_EQ(parse_bad({"--control"}), "option --control needs a value");
  EXPECT_NE(parse_bad({"--timeout", "0s", "status"}).find("--timeout"), std::string::npos);
  EXPECT_NE(parse_bad({"--timeout", "soon", "status"}).find("\"soon\""), std::string::npos);
  EXPECT_NE(parse_bad({"--timeout", "2h", "status"}).find("--timeout"), std::string::npos);
  EXPECT_NE(parse_bad({"status", "--token-file="}, command::status).find("--token-file"),
            std::string::npos);
}

TEST(DialerctlArgs, Help) {
  EXPECT_TRUE(parse_ok({"--help"}).help);
  EXPECT_EQ(parse_ok({"-h"}).cmd, command::none);
  auto h = parse_ok({"help", "set-rate"});
  EXPECT_TRUE(h.help);
  EXPECT_EQ(h.cmd, command::set_rate);
  // --help after a command wins over anything else wrong on the line.
  for (const char* cmd : {"status", "pause", "resume", "cancel", "set-rate", "set-concurrency",
                          "retry", "add-csv", "export", "phone-numbers", "check-config"}) {
    auto r = parse_ok({cmd, "--bogus", "--help"});
    EXPECT_TRUE(r.help) << cmd;
    EXPECT_EQ(command_name(r.cmd), cmd);
    EXPECT_NE(usage(r.cmd).find(std::string("usage: dialerctl ") + cmd), std::string::npos) << cmd;
    EXPECT_NE(usage(r.cmd).find("Exit status"), std::string::npos);
  }
  EXPECT_NE(usage(command::none).find("usage: dialerctl [--control URL]"), std::string::npos);
  // After "--", --help is an argument, not the option.
  EXPECT_FALSE(parse_arguments({"pause", "--", "--help"}).value().help);
}

TEST(DialerctlArgs, Status) {
  auto a = parse_ok({"status"});
  EXPECT_FALSE(a.json);
  EXPECT_FALSE(a.watch);
  a = parse_ok({"status", "--json", "--watch"});
  EXPECT_TRUE(a.json);
  EXPECT_EQ(a.watch, default_watch_interval);
  EXPECT_EQ(parse_ok({"status", "--watch", "5"}).watch, 5s);
  EXPECT_EQ(parse_ok({"status", "--watch=0.5"}).watch, 500ms);
  EXPECT_EQ(parse_ok({"status", "--watch", "1m"}).watch, 60s);
  EXPECT_EQ(parse_ok({"status", "--watch", "--json"}).watch, default_watch_interval);
  EXPECT_NE(parse_bad({"status", "--watch", "0.01"}, command::status).find("\"0.01\""),
            std::string::npos);
  EXPECT_NE(parse_bad({"status", "--watch", "often"}, command::status).find("--watch"),
            std::string::npos);
  EXPECT_EQ(parse_bad({"status", "extra"}, command::status),
            "unexpected argument \"extra\": status takes no arguments");
  EXPECT_EQ(parse_bad({"status", "--yes"}, command::status), "unknown option \"--yes\" for status");
  EXPECT_EQ(parse_bad({"status", "--json=1"}, command::status),
            "unknown option \"--json=1\" for status");
}

TEST(DialerctlArgs, PauseResumeCancel) {
  for (const auto& [word, cmd] :
       {std::pair{"pause", command::pause}, std::pair{"resume", command::resume},
        std::pair{"cancel", command::cancel}}) {
    auto a = parse_ok({word, "spring"});
    EXPECT_EQ(a.cmd, cmd);
    EXPECT_EQ(a.target, "spring");
    EXPECT_EQ(parse_bad({word}, cmd), std::string("missing arguments: ") + word + " takes ID");
    EXPECT_EQ(parse_bad({word, "a", "b"}, cmd),
              std::string("unexpected argument \"b\": ") + word + " takes ID");
    EXPECT_EQ(parse_bad({word, ""}, cmd), "ID must not be empty");
  }
  EXPECT_TRUE(parse_ok({"cancel", "spring", "--yes"}).yes);
  EXPECT_FALSE(parse_ok({"cancel", "spring"}).yes);
  EXPECT_EQ(parse_bad({"pause", "spring", "--yes"}, command::pause),
            "unknown option \"--yes\" for pause");
  // "--" lets an id start with a dash.
  EXPECT_EQ(parse_ok({"pause", "--", "-odd"}).target, "-odd");
}

TEST(DialerctlArgs, SetRate) {
  auto a = parse_ok({"set-rate", "spring", "10/s"});
  EXPECT_FALSE(a.trunk);
  EXPECT_EQ(a.target, "spring");
  EXPECT_EQ(a.rate, "10/s");
  EXPECT_FALSE(a.burst);

  a = parse_ok({"set-rate", "spring", "600/min", "--burst", "5"});
  EXPECT_EQ(a.rate, "600/min");
  EXPECT_EQ(a.burst, 5);

  a = parse_ok({"set-rate", "--trunk", "dubai-main", "0.5/s", "--burst=2"});
  EXPECT_TRUE(a.trunk);
  EXPECT_EQ(a.target, "dubai-main");
  EXPECT_EQ(a.rate, "0.5/s");
  EXPECT_EQ(a.burst, 2);

  EXPECT_EQ(parse_bad({"set-rate", "spring", "10"}, command::set_rate),
            "RATE needs a unit, like 10/s or 600/min, got \"10\"");
  EXPECT_NE(parse_bad({"set-rate", "spring", "fast"}, command::set_rate).find("\"fast\""),
            std::string::npos);
  EXPECT_NE(parse_bad({"set-rate", "spring", "0/s"}, command::set_rate).find("RATE"),
            std::string::npos);
  EXPECT_NE(
      parse_bad({"set-rate", "spring", "10/s", "--burst", "0"}, command::set_rate).find("--burst"),
      std::string::npos);
  EXPECT_NE(
      parse_bad({"set-rate", "spring", "10/s", "--burst", "x"}, command::set_rate).find("\"x\""),
      std::string::npos);
  EXPECT_EQ(parse_bad({"set-rate", "spring"}, command::set_rate),
            "missing arguments: set-rate takes ID RATE (or --trunk NAME RATE)");
  EXPECT_EQ(parse_bad({"set-rate", "--trunk", "t", "x", "10/s"}, command::set_rate),
            "unexpected argument \"10/s\": set-rate takes ID RATE (or --trunk NAME RATE)");
  EXPECT_EQ(parse_bad({"set-rate", "spring", "10/s", "--trunk"}, command::set_rate),
            "option --trunk needs a value");
}

TEST(DialerctlArgs, SetConcurrency) {
  auto a = parse_ok({"set-concurrency", "dubai-main", "100"});
  EXPECT_EQ(a.target, "dubai-main");
  EXPECT_EQ(a.max_concurrent_calls, 100);
  EXPECT_NE(parse_bad({"set-concurrency", "t", "0"}, command::set_concurrency).find("\"0\""),
            std::string::npos);
  EXPECT_NE(parse_bad({"set-concurrency", "t", "100001"}, command::set_concurrency).find("N:"),
            std::string::npos);
  EXPECT_NE(parse_bad({"set-concurrency", "t", "1e3"}, command::set_concurrency).find("N:"),
            std::string::npos);
  EXPECT_EQ(parse_bad({"set-concurrency", "t"}, command::set_concurrency),
            "missing arguments: set-concurrency takes TRUNK N");
  EXPECT_EQ(parse_bad({"set-concurrency", "", "3"}, command::set_concurrency),
            "TRUNK must not be empty");
}

TEST(DialerctlArgs, Retry) {
  auto a = parse_ok({"retry", "spring", "--state", "unknown"});
  EXPECT_EQ(a.target, "spring");
  EXPECT_EQ(a.retry_state, "unknown");
  EXPECT_EQ(parse_ok({"retry", "--state=failed", "spring"}).retry_state, "failed");
  EXPECT_EQ(parse_bad({"retry", "spring"}, command::retry),
            "retry needs --state unknown or --state failed");
  EXPECT_EQ(parse_bad({"retry", "spring", "--state", "ended"}, command::retry),
            "--state: expected unknown or failed, got \"ended\"");
  EXPECT_EQ(parse_bad({"retry", "spring", "--state"}, command::retry),
            "option --state needs a value");
}

TEST(DialerctlArgs, AddCsv) {
  auto a = parse_ok({"add-csv", "spring", "more.csv"});
  EXPECT_EQ(a.target, "spring");
  EXPECT_EQ(a.path, "more.csv");  // made absolute by run(), against the cwd
  EXPECT_EQ(parse_bad({"add-csv", "spring"}, command::add_csv),
            "missing arguments: add-csv takes ID PATH");
  EXPECT_EQ(parse_bad({"add-csv", "spring", ""}, command::add_csv), "PATH must not be empty");
}

TEST(DialerctlArgs, Export) {
  auto a = parse_ok({"export", "spring", "--format", "jsonl", "--state", "ended", "--state=failed",
                     "--output", "out.jsonl"});
  EXPECT_EQ(a.target, "spring");
  EXPECT_EQ(a.format, "jsonl");
  EXPECT_EQ(a.states, (std::vector<std::string>{"ended", "failed"}));
  EXPECT_EQ(a.output, "out.jsonl");
  EXPECT_EQ(parse_ok({"export", "spring"}).format, "");
  EXPECT_EQ(parse_bad({"export", "spring", "--format", "xml"}, command::export_tasks),
            "--format: expected csv or jsonl, got \"xml\"");
  EXPECT_EQ(parse_bad({"export"}, command::export_tasks), "missing arguments: export takes ID");
  EXPECT_EQ(parse_bad({"export", "spring", "--json"}, command::export_tasks),
            "unknown option \"--json\" for export");
}

TEST(DialerctlArgs, PhoneNumbersAndCheckConfig) {
  EXPECT_FALSE(parse_ok({"phone-numbers"}).json);
  EXPECT_TRUE(parse_ok({"phone-numbers", "--json"}).json);
  EXPECT_EQ(parse_bad({"phone-numbers", "x"}, command::phone_numbers),
            "unexpected argument \"x\": phone-numbers takes no arguments");
  auto c = parse_ok({"check-config", "dialerd.yaml"});
  EXPECT_EQ(c.cmd, command::check_config);
  EXPECT_EQ(c.path, "dialerd.yaml");
  EXPECT_EQ(parse_bad({"check-config"}, command::check_config),
            "missing arguments: check-config takes FILE");
  EXPECT_EQ(parse_bad({"check-config", "a", "--watch"}, command::check_config),
            "unknown option \"--watch\" for check-config");
}

TEST(DialerctlUrl, Accepted) {
  auto e = parse_control_url("http://127.0.0.1:9464");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e.value().host, "127.0.0.1");
  EXPECT_EQ(e.value().port, 9464);
  EXPECT_EQ(e.value().base_path, "");
  EXPECT_EQ(e.value().url(), "http://127.0.0.1:9464");

  e = parse_control_url("HTTP://[::1]:8080/dialer/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e.value().host, "::1");
  EXPECT_EQ(e.value().port, 8080);
  EXPECT_EQ(e.value().base_path, "/dialer");
  EXPECT_EQ(e.value().authority(), "[::1]:8080");

  e = parse_control_url("http://localhost");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e.value().port, 80);

  e = parse_control_url("127.0.0.1");  // no scheme: the control listener's default port
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e.value().port, 9464);
  EXPECT_EQ(parse_control_url("localhost:1234").value().port, 1234);
}

TEST(DialerctlUrl, Refused) {
  const auto error = [](std::string_view url) {
    auto e = parse_control_url(url);
    EXPECT_FALSE(e.ok()) << url;
    return e.ok() ? std::string() : e.error();
  };
  EXPECT_NE(error("https://127.0.0.1:9464").find("https is not supported"), std::string::npos);
  EXPECT_NE(error("ftp://h").find("unsupported scheme"), std::string::npos);
  EXPECT_NE(error("http://h:0").find("bad port"), std::string::npos);
  EXPECT_NE(error("http://h:65536").find("bad port"), std::string::npos);
  EXPECT_NE(error("http://h:").find("bad port"), std::string::npos);
  EXPECT_NE(error("http://h:9x").find("bad port"), std::string::npos);
  EXPECT_NE(error("http://:9464").find("no host"), std::string::npos);
  EXPECT_NE(error("http://::1:9464").find("brackets"), std::string::npos);
  EXPECT_NE(error("http://[::1").find("unterminated"), std::string::npos);
  EXPECT_NE(error("http://u:p@h:1").find("user info"), std::string::npos);
  EXPECT_NE(error("http://h:1/?x=1").find("query"), std::string::npos);
}

TEST(DialerctlUrl, EscapePathSegment) {
  EXPECT_EQ(escape_path_segment("spring-2026_v1.x~"), "spring-2026_v1.x~");
  EXPECT_EQ(escape_path_segment("a b/c?d%"), "a%20b%2Fc%3Fd%25");
  EXPECT_EQ(escape_path_segment("\xC3\xA9"), "%C3%A9");
}

}  // namespace
}  // namespace dialer::ctl
