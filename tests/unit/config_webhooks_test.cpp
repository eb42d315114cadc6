// The issue-3 settings: the webhook listener, settling, redials, number caps and transcripts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>

#include "config/config.hpp"

namespace dialer::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* agent = "d796c919-7ef3-413a-8bf1-351b6442953a";
constexpr const char* secret_a = "whsec_first_secret_0123456789";
constexpr const char* secret_b = "whsec_second_secret_abcdefghij";

std::optional<std::string> fake_env(const char* name) {
  if (std::string(name) == "AGENTIX_API_KEY") {
    return "pk_test_0123456789abcdef";
  }
  return std::nullopt;
}

class config_webhooks_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "dialer-config-wh-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    write("a.key", std::string(secret_a) + "\n");
    write("b.key", secret_b);
    write("short.key", "tooshort");
    trunks_["main"] = trunk_settings{.name = "main", .phone_number_id = "pn-1"};
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  static std::string daemon(const std::string& extra) {
    return "api:\n  base_url: https://api.example.com\n  api_key_env: AGENTIX_API_KEY\n"
           "state_path: state.db\ntrunks:\n  main: {phone_number_id: pn-1}\n" +
           extra;
  }
  daemon_settings load(const std::string& yaml) {
    return load_daemon_config(write("dialerd.yaml", yaml), fake_env);
  }
  std::optional<config_error> daemon_error(const std::string& yaml) {
    try {
      (void)load(yaml);
    } catch (const config_error& e) {
      return e;
    }
    return std::nullopt;
  }
  campaign_settings campaign(const std::string& extra) {
    return load_campaign_config(
        write("c.yaml", std::string("id: c\nagent_id: ") + agent +
                            "\ntrunk: main\ncsv: {path: c.csv, default_region: AE}\n" + extra),
        trunks_);
  }
  std::optional<config_error> campaign_error(const std::string& extra) {
    try {
      (void)campaign(extra);
    } catch (const config_error& e) {
      return e;
    }
    return std::nullopt;
  }

  fs::path dir_;
  std::map<std::string, trunk_settings> trunks_;
};

TEST_F(config_webhooks_test, no_listener_by_default) {
  const auto s = load(daemon(""));
  EXPECT_FALSE(s.webhooks.enabled);
  EXPECT_EQ(s.settle.attempts, 6);
}

TEST_F(config_webhooks_test, full_webhook_section_loads) {
  const auto s =
      load(daemon("listen: {webhooks: \"[::1]:8443\"}\n"
                  "webhooks:\n"
                  "  path: /hooks/agentix\n"
                  "  allow_from: [203.0.113.0/24, \"2001:db8::/32\", 192.0.2.7]\n"
                  "  trusted_proxies: [127.0.0.1/32]\n"
                  "  secret_header: X-Hook-Secret\n"
                  "  secret_files: a.key\n"
                  "  signing_secret_files: [a.key, b.key]\n"
                  "  signature_tolerance: 2m\n"
                  "  max_body_size: 64KiB\n"
                  "  max_header_size: 4KiB\n"
                  "  max_connections: 100\n"
                  "  header_timeout: 2s\n"
                  "  body_timeout: 3s\n"
                  "  idle_timeout: 20s\n"
                  "settle: {attempts: 3, first_delay: 1s, max_delay: 10s}\n"));
  const auto& w = s.webhooks;
  EXPECT_TRUE(w.enabled);
  EXPECT_EQ(w.address, "::1");
  EXPECT_EQ(w.port, 8443);
  EXPECT_EQ(w.path, "/hooks/agentix");
  ASSERT_EQ(w.allow_from.size(), 3u);
  EXPECT_EQ(w.allow_from[1].text, "2001:db8::/32");
  EXPECT_EQ(w.allow_from[1].line, 10);
  EXPECT_GT(w.allow_from[1].col, 1);
  ASSERT_EQ(w.shared_secrets.size(), 1u);
  EXPECT_EQ(w.shared_secrets[0].reveal(), secret_a);  // trailing newline dropped
  ASSERT_EQ(w.signing_secrets.size(), 2u);
  EXPECT_EQ(w.signing_secrets[1].reveal(), secret_b);
  EXPECT_EQ(w.secret_header, "X-Hook-Secret");
  EXPECT_EQ(w.signature_tolerance, 2min);
  EXPECT_EQ(w.max_body_bytes, 64u * 1024);
  EXPECT_EQ(w.max_header_bytes, 4u * 1024);
  EXPECT_EQ(w.max_connections, 100);
  EXPECT_EQ(w.header_timeout, 2s);
  EXPECT_EQ(w.body_timeout, 3s);
  EXPECT_EQ(w.idle_timeout, 20s);
  EXPECT_EQ(s.settle.attempts, 3);
  EXPECT_EQ(s.settle.first_delay, 1s);
  EXPECT_EQ(s.settle.max_delay, 10s);
}

TEST_F(config_webhooks_test, bad_values_point_at_their_place) {
  struct bad {
    std::string yaml;
    int line;
    std::string fragment;
  };
  const bad cases[] = {
      {"listen: {webhooks: \"localhost:8080\"}\n", 7, "the host must be an IP address"},
      {"listen: {webhooks: \"127.0.0.1\"}\n", 7, "expected an address"},
      {"listen: {webhooks: \"127.0.0.1:70000\"}\n", 7, "port 0..65535"},
      {"listen: {webhooks: \"127.0.0.1:80\"}\nwebhooks: {allow_from: [10.0.0.0/33]}\n", 8,
       "expected a network"},
      {"listen: {webhooks: \"127.0.0.1:80\"}\nwebhooks: {path: no-slash}\n", 8, "URL path"},
      {"listen: {webhooks: \"127.0.0.1:80\"}\nwebhooks: {secret_files: short.key}\n", 8,
       "shorter than 16 bytes"},
      {"listen: {webhooks: \"127.0.0.1:80\"}\nwebhooks: {secret_files: [a.key, b.key, a.key]}\n", 8,
       "a list of two"},
      {"listen: {webhooks: \"127.0.0.1:80\"}\nwebhooks: {max_connections: 0}\n", 8, "1..100000"},
      {"webhooks: {path: /x}\n", 7, "listen.webhooks"},
      {"settle: {first_delay: 1m, max_delay: 1s}\n", 7, "must not exceed"},
  };
  for (const auto& c : cases) {
    const auto e = daemon_error(daemon(c.yaml));
    ASSERT_TRUE(e.has_value()) << c.yaml;
    EXPECT_EQ(e->line(), c.line) << e->what();
    EXPECT_THAT(e->message(), HasSubstr(c.fragment)) << c.yaml;
    // A secret file's content never shows in an error.
    EXPECT_THAT(std::string(e->what()), Not(HasSubstr("tooshort"))) << c.yaml;
  }
}

TEST_F(config_webhooks_test, redial_caps_and_transcripts) {
  const auto c = campaign(
      "retry: {max_attempts: 3, redial_on: [no_answer, busy], redial_after: 2h}\n"
      "number_caps: {lifetime: 5, per_day: 1}\n"
      "transcripts: {store: true, retention: 7d}\n");
  EXPECT_EQ(c.retry.max_attempts, 3);
  EXPECT_EQ(c.retry.redial_on, (std::vector<std::string>{"no_answer", "busy"}));
  EXPECT_EQ(c.retry.redial_after, 2h);
  EXPECT_EQ(c.caps.lifetime, 5);
  EXPECT_EQ(c.caps.per_day, 1);
  EXPECT_TRUE(c.transcripts.store);
  EXPECT_EQ(c.transcripts.retention, 7 * 24h);

  const auto defaults = campaign("");
  EXPECT_TRUE(defaults.retry.redial_on.empty());
  EXPECT_EQ(defaults.caps.lifetime, 0);
  EXPECT_FALSE(defaults.transcripts.store);
}

TEST_F(config_webhooks_test, bad_redial_rules_are_refused) {
  auto e = campaign_error("retry: {redial_on: [completed]}\n");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->line(), 5);
  EXPECT_THAT(e->message(), HasSubstr("no_answer, busy, voicemail, failed"));
  e = campaign_error("retry: {redial_on: [busy, busy]}\n");
  ASSERT_TRUE(e.has_value());
  EXPECT_THAT(e->message(), HasSubstr("listed twice"));
  e = campaign_error("retry: {redial_after: 0s}\n");
  ASSERT_TRUE(e.has_value());
  EXPECT_THAT(e->message(), HasSubstr("1s.."));
  e = campaign_error("number_caps: {per_day: -1}\n");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->line(), 5);
}

}  // namespace
}  // namespace dialer::config
