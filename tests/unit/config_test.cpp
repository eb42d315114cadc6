#include "config/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace dialer::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// A distinctive key: if it shows up in any message, some path leaks it.
constexpr const char* test_key = "pk_live_Zq7ZX81mUniqueTestKey0042";
constexpr const char* agent = "d796c919-7ef3-413a-8bf1-351b6442953a";

std::map<std::string, std::string>& env_vars() {
  static std::map<std::string, std::string> vars;
  return vars;
}

std::optional<std::string> fake_env(const char* name) {
  const auto it = env_vars().find(name);
  if (it == env_vars().end()) {
    return std::nullopt;
  }
  return it->second;
}

const std::string minimal_daemon =
    "api:\n"
    "  base_url: https://api.example.com\n"
    "  api_key_env: AGENTIX_API_KEY\n"
    "state_path: state.db\n"
    "trunks:\n"
    "  main: {phone_number_id: pn-1}\n";

std::string minimal_campaign(const std::string& id, const std::string& trunk = "main") {
  return "id: " + id + "\nagent_id: " + agent + "\ntrunk: " + trunk + "\ncsv: {path: " + id +
         ".csv, default_region: AE}\n";
}

template <class F>
std::optional<config_error> error_of(F&& f) {
  try {
    (void)f();
  } catch (const config_error& e) {
    return e;
  }
  return std::nullopt;
}

class config_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "dialer-config-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    env_vars().clear();
    env_vars()["AGENTIX_API_KEY"] = test_key;
    trunks_["main"] = trunk_settings{.name = "main", .phone_number_id = "pn-1"};
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::optional<config_error> daemon_error(const std::string& yaml) {
    const fs::path file = write("dialerd.yaml", yaml);
    return error_of([&] { return load_daemon_config(file, fake_env); });
  }

  std::optional<config_error> campaign_error(const std::string& yaml) {
    const fs::path file = write("campaign.yaml", yaml);
    return error_of([&] { return load_campaign_config(file, trunks_); });
  }

  fs::path dir_;
  std::map<std::string, trunk_settings> trunks_;
};

void expect_error(const std::optional<config_error>& e, const fs::path& file, int line, int col,
                  const std::string& fragment) {
  ASSERT_TRUE(e.has_value()) << "expected a config_error containing: " << fragment;
  EXPECT_EQ(e->file(), file.string());
  EXPECT_EQ(e->line(), line) << e->what();
  EXPECT_EQ(e->col(), col) << e->what();
  EXPECT_THAT(e->message(), HasSubstr(fragment));
  EXPECT_EQ(std::string(e->what()), file.string() + ":" + std::to_string(line) + ":" +
                                        std::to_string(col) + ": " + e->message());
  EXPECT_THAT(std::string(e->what()), Not(HasSubstr(test_key)));
}

TEST(parse_duration_test, accepts_units_decimals_and_compounds) {
  const std::pair<const char*, std::chrono::milliseconds> cases[] = {
      {"0s", 0ms},      {"30s", 30s},   {"1500ms", 1500ms}, {"10m", 10min},
      {"5min", 5min},   {"2h", 2h},     {"1h30m", 90min},   {"1m30s", 90s},
      {"1.5s", 1500ms}, {"0.5m", 30s},  {"0.25h", 15min},   {"1h0.5m1ms", 3'630'001ms},
      {"007s", 7s},     {"2.000s", 2s},
  };
  for (const auto& [text, expected] : cases) {
    const auto parsed = parse_duration(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, expected) << text;
  }
}

TEST(parse_duration_test, refuses_malformed_text) {
  for (const char* text : {"",
                           "30",
                           "1.5",
                           "s",
                           "30x",
                           "30 s",
                           " 30s",
                           "30s ",
                           "-5s",
                           "+5s",
                           ".5s",
                           "1.s",
                           "1e3s",
                           "1h 30m",
                           "0.0001s",
                           "30S",
                           "30sec",
                           "5mins",
                           "99999999999999999999h",
                           "9999999999999999h",
                           "1s-"}) {
    EXPECT_FALSE(parse_duration(text).has_value()) << '"' << text << '"';
  }
}

TEST(parse_rate_test, keeps_rates_exact) {
  using std::chrono::nanoseconds;
  const std::pair<const char*, rate> cases[] = {
      {"20/s", {20, 1s}},
      {"20/sec", {20, 1s}},
      {"600/min", {600, 60s}},
      {"600/m", {600, 60s}},
      {"3/h", {3, 1h}},
      {"0.5/s", {1, 2s}},
      {"2.5/s", {5, 2s}},  // 25 per 10 s with the decimal's common factor cancelled
      {"0.01/s", {1, 100s}},
      {"1.25/min", {5, 240s}},
      {"1000000/s", {1'000'000, 1s}},
      {"60000000/min", {60'000'000, 60s}},
  };
  for (const auto& [text, expected] : cases) {
    const auto parsed = parse_rate(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(parsed->count, expected.count) << text;
    EXPECT_EQ(parsed->per, expected.per) << text;
  }
}

TEST(parse_rate_test, refuses_malformed_zero_and_too_fast) {
  for (const char* text : {"",
                           "20",
                           "20/",
                           "/s",
                           "20/x",
                           "20/S",
                           "20 /s",
                           "20/ s",
                           "-1/s",
                           "+1/s",
                           "0/s",
                           "0.0/s",
                           "1000001/s",
                           "1000000.5/s",
                           "60000001/min",
                           "1e3/s",
                           "20/s/s",
                           ".5/s",
                           "20/ms",
                           "99999999999999999999/s",
                           "0.0000000000000000001/h"}) {
    EXPECT_FALSE(parse_rate(text).has_value()) << '"' << text << '"';
  }
}

TEST_F(config_test, full_daemon_and_campaigns_load_to_the_expected_values) {
  env_vars()["CREDS"] = (dir_ / "creds").string();
  write("creds/agentix-api-key", std::string(test_key) + " \n\n");
  write("certs/ca.pem", "-----BEGIN CERTIFICATE-----\n");
  write("campaigns/spring.yaml",
        "# the spring renewals\n"
        "id: spring-renewals\n"
        "agent_id: d796c919-7ef3-413a-8bf1-351b6442953a\n"
        "trunk: dubai-main\n"
        "csv: {path: ../data/spring.csv, phone_column: msisdn, task_id_column: row_id,\n"
        "      delimiter: \";\", default_region: AE, max_field_size: 1MiB}\n"
        "session_variables:\n"
        "  from_columns: [crmContactId, first_name]\n"
        "  static: {offer: gold, tier: 3, vip: true}\n"
        "max_duration: 5m\n"
        "pacing: {calls_per_second: 2.5/s, burst: 3, weight: 7}\n"
        "dedupe_phone: false\n"
        "allowed_number_types: [mobile, voip]\n"
        "on_ambiguous: retry\n"
        "retry: {max_attempts: 3, backoff_base: 500ms, backoff_max: 1h}\n");
  write("campaigns.d/b.yml", minimal_campaign("b", "dubai-main"));
  write("campaigns.d/a.yaml", minimal_campaign("a", "slow"));
  write("campaigns.d/notes.txt", "not yaml: [");
  write("campaigns.d/.a.yaml.swp.yaml", "not yaml: [");
  const fs::path file =
      write("dialerd.yaml",
            "api:\n"
            "  base_url: https://127.0.0.1:8443/optional/prefix/\n"
            "  api_key_file: ${CREDS}/agentix-api-key\n"
            "  ca_file: certs/ca.pem\n"
            "  pool: {connections: 32, connect_timeout: 2s, request_timeout: 1500ms, "
            "idle_timeout: 1m}\n"
            "state_path: var/state.db\n"
            "reject_path: /var/log/dialerd/rejects.jsonl\n"
            "slot_grace: 45s\n"
            "store: {synchronous: normal}\n"
            "trunks:\n"
            "  dubai-main:\n"
            "    phone_number_id: 6f1c2d3e-0000-4000-8000-000000000001\n"
            "    max_concurrent_calls: 200\n"
            "    calls_per_second: 20/s\n"
            "    burst: 5\n"
            "  slow: {phone_number_id: pn-slow, calls_per_second: 30/min}\n"
            "campaigns: [campaigns/spring.yaml]\n"
            "campaigns_dir: campaigns.d\n");

  const daemon_settings d = load_daemon_config(file, fake_env);

  EXPECT_EQ(d.source_file, file);
  EXPECT_EQ(d.api.base_url, "https://127.0.0.1:8443/optional/prefix/");
  EXPECT_EQ(d.api.host, "127.0.0.1");
  EXPECT_EQ(d.api.port, "8443");
  EXPECT_EQ(d.api.base_path, "/optional/prefix");
  EXPECT_EQ(d.api.api_key.reveal(), test_key);
  EXPECT_EQ(d.api.api_key_source, "file " + (dir_ / "creds/agentix-api-key").string());
  EXPECT_EQ(d.api.ca_file, (dir_ / "certs/ca.pem").string());
  EXPECT_EQ(d.api.pool.connections, 32);
  EXPECT_EQ(d.api.pool.connect_timeout, 2s);
  EXPECT_EQ(d.api.pool.request_timeout, 1500ms);
  EXPECT_EQ(d.api.pool.idle_timeout, 1min);
  EXPECT_EQ(d.state_path, dir_ / "var/state.db");
  EXPECT_EQ(d.reject_path, "/var/log/dialerd/rejects.jsonl");
  EXPECT_EQ(d.slot_grace, 45s);
  EXPECT_FALSE(d.store_sync_full);
  EXPECT_EQ(d.campaigns_dir, dir_ / "campaigns.d");

  ASSERT_EQ(d.trunks.size(), 2u);
  const trunk_settings& main = d.trunks.at("dubai-main");
  EXPECT_EQ(main.name, "dubai-main");
  EXPECT_EQ(main.phone_number_id, "6f1c2d3e-0000-4000-8000-000000000001");
  EXPECT_EQ(main.max_concurrent_calls, 200);
  EXPECT_EQ(main.calls_per_second, (rate{20, 1s}));
  EXPECT_EQ(main.burst, 5);
  const trunk_settings& slow = d.trunks.at("slow");
  EXPECT_EQ(slow.calls_per_second, (rate{30, 60s}));
  EXPECT_EQ(slow.max_concurrent_calls, 1);
  EXPECT_EQ(slow.burst, 1);

  // The listed files first, then the directory's in name order; other files are skipped.
  ASSERT_EQ(d.campaigns.size(), 3u);
  EXPECT_EQ(d.campaigns[0].id, "spring-renewals");
  EXPECT_EQ(d.campaigns[1].id, "a");
  EXPECT_EQ(d.campaigns[1].trunk, "slow");
  EXPECT_EQ(d.campaigns[1].source_file, dir_ / "campaigns.d/a.yaml");
  EXPECT_EQ(d.campaigns[2].id, "b");

  const campaign_settings& c = d.campaigns[0];
  EXPECT_EQ(c.source_file, dir_ / "campaigns/spring.yaml");
  EXPECT_EQ(c.agent_id, agent);
  EXPECT_EQ(c.trunk, "dubai-main");
  EXPECT_EQ(c.csv.path, dir_ / "data/spring.csv");
  EXPECT_EQ(c.csv.phone_column, "msisdn");
  EXPECT_EQ(c.csv.task_id_column, "row_id");
  EXPECT_EQ(c.csv.delimiter, ';');
  EXPECT_EQ(c.csv.default_region, "AE");
  EXPECT_EQ(c.csv.max_field_bytes, 1024u * 1024u);
  EXPECT_EQ(c.variable_columns, (std::vector<std::string>{"crmContactId", "first_name"}));
  EXPECT_EQ(c.static_variables, (std::vector<std::pair<std::string, std::string>>{
                                    {"offer", "gold"}, {"tier", "3"}, {"vip", "true"}}));
  EXPECT_EQ(c.max_duration, 5min);
  ASSERT_TRUE(c.calls_per_second.has_value());
  EXPECT_EQ(*c.calls_per_second, (rate{5, 2s}));
  EXPECT_EQ(c.burst, 3);
  EXPECT_EQ(c.weight, 7);
  EXPECT_FALSE(c.dedupe_phone);
  EXPECT_EQ(c.allowed_number_types, (std::vector<std::string>{"mobile", "voip"}));
  EXPECT_EQ(c.on_ambiguous, ambiguous_policy::retry);
  EXPECT_EQ(c.retry.max_attempts, 3);
  EXPECT_EQ(c.retry.backoff_base, 500ms);
  EXPECT_EQ(c.retry.backoff_max, 1h);
}

TEST_F(config_test, omitted_settings_take_their_defaults) {
  write("c.yaml", minimal_campaign("c"));
  const fs::path file = write("dialerd.yaml", minimal_daemon + "campaigns: [c.yaml]\n");
  const daemon_settings d = load_daemon_config(file, fake_env);
  const daemon_settings defaults;
  EXPECT_EQ(d.api.host, "api.example.com");
  EXPECT_EQ(d.api.port, "443");
  EXPECT_EQ(d.api.base_path, "");
  EXPECT_EQ(d.api.ca_file, "");
  EXPECT_EQ(d.api.api_key_source, "env AGENTIX_API_KEY");
  EXPECT_EQ(d.api.pool.connections, defaults.api.pool.connections);
  EXPECT_EQ(d.api.pool.connect_timeout, defaults.api.pool.connect_timeout);
  EXPECT_EQ(d.api.pool.request_timeout, defaults.api.pool.request_timeout);
  EXPECT_EQ(d.api.pool.idle_timeout, defaults.api.pool.idle_timeout);
  EXPECT_EQ(d.reject_path, (dir_ / "state.db.rejects.jsonl").string());
  EXPECT_EQ(d.slot_grace, 30s);
  EXPECT_TRUE(d.store_sync_full);
  EXPECT_EQ(d.trunks.at("main").calls_per_second, rate{});

  ASSERT_EQ(d.campaigns.size(), 1u);
  const campaign_settings& c = d.campaigns[0];
  const campaign_settings cd;
  EXPECT_EQ(c.csv.path, dir_ / "c.csv");
  EXPECT_EQ(c.csv.phone_column, "phone");
  EXPECT_EQ(c.csv.task_id_column, "task_id");
  EXPECT_EQ(c.csv.delimiter, ',');
  EXPECT_EQ(c.csv.max_field_bytes, 64u * 1024u);
  EXPECT_TRUE(c.variable_columns.empty());
  EXPECT_TRUE(c.static_variables.empty());
  EXPECT_EQ(c.max_duration, 10min);
  EXPECT_FALSE(c.calls_per_second.has_value());
  EXPECT_EQ(c.burst, 1);
  EXPECT_EQ(c.weight, 1);
  EXPECT_TRUE(c.dedupe_phone);
  EXPECT_EQ(c.allowed_number_types, cd.allowed_number_types);
  EXPECT_EQ(c.on_ambiguous, ambiguous_policy::unknown);
  EXPECT_EQ(c.retry.max_attempts, 5);
  EXPECT_EQ(c.retry.backoff_base, 1s);
  EXPECT_EQ(c.retry.backoff_max, 5min);
}

TEST_F(config_test, unknown_key_points_at_the_key_and_lists_the_known_ones) {
  const auto e = campaign_error(minimal_campaign("c") + "calling_hour: {from: \"09:00\"}\n");
  expect_error(e, dir_ / "campaign.yaml", 5, 1,
               "unknown key \"calling_hour\" in campaign (expected one of: id, agent_id, trunk, "
               "csv, number_caps, transcripts, session_variables, max_duration, pacing, dedupe_phone, "
               "allowed_number_types, on_ambiguous, retry)");

  const auto nested = daemon_error(
      "api:\n"
      "  base_url: https://api.example.com\n"
      "  api_key_env: AGENTIX_API_KEY\n"
      "  pool: {connections: 4, keepalive: 1s}\n");
  expect_error(nested, dir_ / "dialerd.yaml", 4, 26, "unknown key \"keepalive\" in api.pool");
}

TEST_F(config_test, wrong_type_points_at_the_value) {
  const auto e = daemon_error(
      "api:\n"
      "  base_url: https://api.example.com\n"
      "  api_key_env: AGENTIX_API_KEY\n"
      "  pool:\n"
      "    connections: lots\n");
  expect_error(e, dir_ / "dialerd.yaml", 5, 18,
               "api.pool.connections: expected an integer 1..4096, got \"lots\"");

  const auto listed = campaign_error(minimal_campaign("c") + "dedupe_phone: [yes]\n");
  expect_error(listed, dir_ / "campaign.yaml", 5, 15,
               "dedupe_phone: expected true or false, got a list");
  const auto yes = campaign_error(minimal_campaign("c") + "dedupe_phone: yes\n");
  expect_error(yes, dir_ / "campaign.yaml", 5, 15, "expected true or false, got \"yes\"");
  const auto bare = campaign_error(minimal_campaign("c") + "max_duration: 600\n");
  expect_error(bare, dir_ / "campaign.yaml", 5, 15,
               "max_duration: expected a duration with a unit, like 30s, got \"600\"");
  const auto bare_rate = campaign_error(minimal_campaign("c") + "pacing: {calls_per_second: 10}\n");
  expect_error(bare_rate, dir_ / "campaign.yaml", 5, 28,
               "pacing.calls_per_second: expected a rate with a unit, like 20/s, got \"10\"");
  const auto empty = campaign_error(minimal_campaign("c") + "retry:\n");
  expect_error(empty, dir_ / "campaign.yaml", 5, 1, "retry: expected a mapping, got nothing");
}

TEST_F(config_test, out_of_range_values_name_the_range) {
  const auto burst = daemon_error(
      "api: {base_url: \"https://api.example.com\", api_key_env: AGENTIX_API_KEY}\n"
      "state_path: s.db\n"
      "trunks:\n"
      "  main: {phone_number_id: pn-1, burst: 0}\n");
  expect_error(burst, dir_ / "dialerd.yaml", 4, 40,
               "trunks.main.burst: expected an integer 1..100000, got \"0\"");

  const auto fractional = campaign_error(minimal_campaign("c") + "pacing: {weight: 1.5}\n");
  expect_error(fractional, dir_ / "campaign.yaml", 5, 18,
               "pacing.weight: expected an integer 1..1000, got \"1.5\"");
  const auto grace = daemon_error(minimal_daemon + "slot_grace: 2h\n");
  expect_error(grace, dir_ / "dialerd.yaml", 7, 13,
               "slot_grace: expected a duration 0s..1h, got \"2h\"");
  const auto size = campaign_error(
      "id: c\nagent_id: d796c919-7ef3-413a-8bf1-351b6442953a\ntrunk: main\n"
      "csv:\n  path: c.csv\n  default_region: AE\n  max_field_size: 32MiB\n");
  expect_error(size, dir_ / "campaign.yaml", 7, 19,
               "csv.max_field_size: expected a size 1KiB..16MiB (units B, KiB, MiB), got "
               "\"32MiB\"");
  const auto too_fast = daemon_error(
      "api: {base_url: \"https://api.example.com\", api_key_env: AGENTIX_API_KEY}\n"
      "state_path: s.db\n"
      "trunks: {main: {phone_number_id: pn-1, calls_per_second: 2000000/s}}\n");
  expect_error(too_fast, dir_ / "dialerd.yaml", 3, 58, "at most 1000000/s");
  const auto backoff =
      campaign_error(minimal_campaign("c") + "retry: {backoff_max: 1s, backoff_base: 2s}\n");
  expect_error(backoff, dir_ / "campaign.yaml", 5, 40,
               "retry.backoff_base: must not exceed backoff_max (1s), got 2s");
}

TEST_F(config_test, missing_required_key_points_at_the_mapping) {
  const auto e =
      campaign_error("# spring\nid: c\ntrunk: main\ncsv: {path: c.csv, default_region: AE}\n");
  expect_error(e, dir_ / "campaign.yaml", 2, 1, "missing required key \"agent_id\" in campaign");

  const auto nested = campaign_error(
      "id: c\nagent_id: d796c919-7ef3-413a-8bf1-351b6442953a\ntrunk: main\ncsv: {path: c.csv}\n");
  expect_error(nested, dir_ / "campaign.yaml", 4, 6,
               "missing required key \"default_region\" in csv");

  const auto no_key = daemon_error(
      "api:\n"
      "  base_url: https://api.example.com\n"
      "state_path: s.db\n"
      "trunks: {main: {phone_number_id: pn-1}}\n");
  expect_error(no_key, dir_ / "dialerd.yaml", 2, 3, "api: missing api_key_file or api_key_env");
}

TEST_F(config_test, yaml_syntax_errors_become_config_errors_at_their_mark) {
  const auto e = campaign_error("id: c\ntrunk: a: b\n");
  expect_error(e, dir_ / "campaign.yaml", 2, 9, "invalid YAML: illegal map value");
  const auto second_doc = campaign_error(minimal_campaign("c") + "---\nid: d\n");
  expect_error(second_doc, dir_ / "campaign.yaml", 6, 1, "expected one YAML document");
  const auto dup = campaign_error(minimal_campaign("c") + "id: d\n");
  expect_error(dup, dir_ / "campaign.yaml", 5, 1,
               "duplicate key \"id\" in campaign (first at line 1)");
  expect_error(campaign_error("# nothing here\n"), dir_ / "campaign.yaml", 0, 0, "empty");
}

TEST_F(config_test, unreadable_files_are_reported_with_their_reason) {
  const fs::path missing = dir_ / "nope.yaml";
  expect_error(error_of([&] { return load_daemon_config(missing, fake_env); }), missing, 0, 0,
               "cannot read: No such file or directory");
  const auto campaign = daemon_error(minimal_daemon + "campaigns: [gone.yaml]\n");
  expect_error(campaign, dir_ / "gone.yaml", 0, 0, "cannot read: No such file or directory");
  const auto dir = daemon_error(minimal_daemon + "campaigns_dir: nowhere\n");
  expect_error(dir, dir_ / "dialerd.yaml", 7, 16, "campaigns_dir: cannot list");
  const auto ca = daemon_error(
      "api: {base_url: \"https://api.example.com\", api_key_env: AGENTIX_API_KEY, ca_file: "
      "ca.pem}\n"
      "state_path: s.db\n"
      "trunks: {main: {phone_number_id: pn-1}}\n");
  expect_error(
      ca, dir_ / "dialerd.yaml", 1, 83,
      "api.ca_file: cannot read " + (dir_ / "ca.pem").string() + ": No such file or directory");
}

TEST_F(config_test, inline_api_key_is_refused_without_echoing_it) {
  const auto e = daemon_error(
      "api:\n"
      "  base_url: https://api.example.com\n"
      "  api_key: " +
      std::string(test_key) +
      "\n"
      "state_path: s.db\n"
      "trunks: {main: {phone_number_id: pn-1}}\n");
  expect_error(e, dir_ / "dialerd.yaml", 3, 3, "api.api_key: an inline API key is refused");
  ASSERT_TRUE(e.has_value());
  EXPECT_THAT(e->message(), HasSubstr("api_key_file"));
  EXPECT_THAT(e->message(), HasSubstr("api_key_env"));
}

TEST_F(config_test, the_api_key_never_appears_in_an_error) {
  write("key", std::string(test_key) + "\n");
  write("spaced-key", std::string(test_key) + " extra\n");
  env_vars()["SPACED"] = std::string(test_key) + "\nX";
  const std::string tail = "state_path: s.db\ntrunks: {main: {phone_number_id: pn-1}}\n";
  const std::string api = "api:\n  base_url: https://api.example.com\n";
  const std::string documents[] = {
      api + "  api_key: " + test_key + "\n" + tail,
      api + "  api_key: {value: " + test_key + "}\n" + tail,
      "api_key: " + std::string(test_key) + "\n" + api + "  api_key_env: AGENTIX_API_KEY\n" + tail,
      api + "  api_key_file: key\n  api_key_env: AGENTIX_API_KEY\n" + tail,
      api + "  api_key_env: AGENTIX_API_KEY\n  api_key_file: key\n" + tail,
      api + "  api_key_file: spaced-key\n" + tail,
      api + "  api_key_env: SPACED\n" + tail,
      api + "  api_key_env: AGENTIX_API_KEY\n  api_key: " + test_key + "\n" + tail,
      api + "  api_key_env: AGENTIX_API_KEY\n" + tail + "slot_grace: lots\n",
      api + "  api_key_env: AGENTIX_API_KEY\n  api_key: \"" + test_key + "\n",
  };
  for (const auto& yaml : documents) {
    const auto e = daemon_error(yaml);
    ASSERT_TRUE(e.has_value()) << yaml;
    EXPECT_THAT(std::string(e->what()), Not(HasSubstr(test_key))) << e->what();
    EXPECT_THAT(e->message(), Not(HasSubstr("Zq7ZX81m"))) << e->what();
  }
}

TEST_F(config_test, api_key_file_expands_variables_and_trims_the_key) {
  env_vars()["CREDENTIALS_DIRECTORY"] = (dir_ / "creds").string();
  write("creds/agentix-api-key", std::string(test_key) + "\r\n\n");
  const fs::path file = write("etc/dialerd.yaml",
                              "api:\n"
                              "  base_url: https://api.example.com\n"
                              "  api_key_file: ${CREDENTIALS_DIRECTORY}/agentix-api-key\n"
                              "state_path: s.db\n"
                              "trunks: {main: {phone_number_id: pn-1}}\n");
  const daemon_settings d = load_daemon_config(file, fake_env);
  EXPECT_EQ(d.api.api_key.reveal(), test_key);
  EXPECT_EQ(d.api.api_key_source, "file " + (dir_ / "creds/agentix-api-key").string());
  EXPECT_EQ(d.state_path, dir_ / "etc/s.db");

  env_vars().erase("CREDENTIALS_DIRECTORY");
  expect_error(error_of([&] { return load_daemon_config(file, fake_env); }), file, 3, 17,
               "api.api_key_file: environment variable CREDENTIALS_DIRECTORY is not set");

  write("creds/empty-key", " \n");
  env_vars()["CREDENTIALS_DIRECTORY"] = (dir_ / "creds").string();
  const auto empty = daemon_error(
      "api:\n"
      "  base_url: https://api.example.com\n"
      "  api_key_file: ${CREDENTIALS_DIRECTORY}/empty-key\n"
      "state_path: s.db\n"
      "trunks: {main: {phone_number_id: pn-1}}\n");
  expect_error(empty, dir_ / "dialerd.yaml", 3, 17, "empty-key is empty");
  const auto unterminated = daemon_error(
      "api:\n"
      "  base_url: https://api.example.com\n"
      "  api_key_file: ${CREDENTIALS_DIRECTORY/key\n"
      "state_path: s.db\n"
      "trunks: {main: {phone_number_id: pn-1}}\n");
  expect_error(unterminated, dir_ / "dialerd.yaml", 3, 17, "unterminated ${");
}

TEST_F(config_test, api_key_env_reads_the_injected_environment) {
  const std::string yaml =
      "api:\n"
      "  base_url: https://api.example.com\n"
      "  api_key_env: DIALER_KEY\n"
      "state_path: s.db\n"
      "trunks: {main: {phone_number_id: pn-1}}\n";
  const fs::path file = write("dialerd.yaml", yaml);
  expect_error(error_of([&] { return load_daemon_config(file, fake_env); }), file, 3, 16,
               "api.api_key_env: environment variable DIALER_KEY is not set");
  env_vars()["DIALER_KEY"] = "";
  expect_error(error_of([&] { return load_daemon_config(file, fake_env); }), file, 3, 16,
               "environment variable DIALER_KEY is empty");
  env_vars()["DIALER_KEY"] = test_key;
  const daemon_settings d = load_daemon_config(file, fake_env);
  EXPECT_EQ(d.api.api_key.reveal(), test_key);
  EXPECT_EQ(d.api.api_key_source, "env DIALER_KEY");
}

TEST_F(config_test, base_url_is_split_and_checked) {
  struct parsed {
    const char* url;
    const char* host;
    const char* port;
    const char* base_path;
  };
  for (const parsed& p :
       {parsed{"https://127.0.0.1:8443/optional/prefix/", "127.0.0.1", "8443", "/optional/prefix"},
        parsed{"https://[::1]:9443/", "::1", "9443", ""},
        parsed{"https://[2001:db8::7]", "2001:db8::7", "443", ""},
        parsed{"HTTPS://API.Agntix.AI", "api.agntix.ai", "443", ""},
        parsed{"https://api-1.example.com/v1", "api-1.example.com", "443", "/v1"}}) {
    const fs::path file = write("dialerd.yaml", "api:\n  base_url: \"" + std::string(p.url) +
                                                    "\"\n  api_key_env: AGENTIX_API_KEY\n"
                                                    "state_path: s.db\n"
                                                    "trunks: {main: {phone_number_id: pn-1}}\n");
    const daemon_settings d = load_daemon_config(file, fake_env);
    EXPECT_EQ(d.api.base_url, p.url);
    EXPECT_EQ(d.api.host, p.host) << p.url;
    EXPECT_EQ(d.api.port, p.port) << p.url;
    EXPECT_EQ(d.api.base_path, p.base_path) << p.url;
  }
  for (const char* url : {"http://api.example.com",
                          "ftp://api.example.com",
                          "https://",
                          "https://:443",
                          "https://api.example.com:0",
                          "https://api.example.com:65536",
                          "https://api.example.com:",
                          "https://api.example.com:x1",
                          "https://user@api.example.com",
                          "https://host/?q=1",
                          "https://host/#frag",
                          "https://[::1",
                          "https://[::1]x",
                          "https://[nothex]",
                          "https://300.1.1.1",
                          "https://bad_host.example",
                          "https://-lead.example",
                          "https://a..b",
                          "api.example.com",
                          "https://ho st"}) {
    const auto e = daemon_error("api:\n  base_url: \"" + std::string(url) +
                                "\"\n  api_key_env: AGENTIX_API_KEY\nstate_path: s.db\n"
                                "trunks: {main: {phone_number_id: pn-1}}\n");
    expect_error(e, dir_ / "dialerd.yaml", 2, 13, "api.base_url: expected https://host[:port]");
  }
}

TEST_F(config_test, duplicate_campaign_id_points_at_the_second_id) {
  write("a.yaml", minimal_campaign("same"));
  write("b.yaml", "# copy of a\n" + minimal_campaign("same"));
  const auto e = daemon_error(minimal_daemon + "campaigns: [a.yaml, b.yaml]\n");
  expect_error(e, dir_ / "b.yaml", 2, 5,
               "id: campaign id \"same\" is already used by " + (dir_ / "a.yaml").string());
}

TEST_F(config_test, unknown_trunk_points_at_the_trunk_value) {
  const auto e = campaign_error(
      "id: c\nagent_id: d796c919-7ef3-413a-8bf1-351b6442953a\ntrunk:   dubai\n"
      "csv: {path: c.csv, default_region: AE}\n");
  expect_error(e, dir_ / "campaign.yaml", 3, 10,
               "trunk: unknown trunk \"dubai\" (defined trunks: main)");

  write("c.yaml",
        "id: c\nagent_id: d796c919-7ef3-413a-8bf1-351b6442953a\ntrunk: other\n"
        "csv: {path: c.csv, default_region: AE}\n");
  const auto through_daemon = daemon_error(minimal_daemon + "campaigns: [c.yaml]\n");
  expect_error(through_daemon, dir_ / "c.yaml", 3, 8, "unknown trunk \"other\"");
}

TEST_F(config_test, reserved_and_duplicate_variable_names_are_refused) {
  const auto column = campaign_error(minimal_campaign("c") +
                                     "session_variables: {from_columns: [first, taskId]}\n");
  expect_error(column, dir_ / "campaign.yaml", 5, 43,
               "session_variables.from_columns[1]: variable name \"taskId\" is reserved");
  const auto stat = campaign_error(minimal_campaign("c") +
                                   "session_variables:\n"
                                   "  static:\n"
                                   "    offer: gold\n"
                                   "    campaignId: x\n");
  expect_error(stat, dir_ / "campaign.yaml", 8, 5,
               "session_variables.static: variable name \"campaignId\" is reserved");
  const auto twice = campaign_error(
      minimal_campaign("c") + "session_variables: {from_columns: [offer], static: {offer: 1}}\n");
  expect_error(twice, dir_ / "campaign.yaml", 5, 53, "variable \"offer\" is given twice");
  const auto empty =
      campaign_error(minimal_campaign("c") + "session_variables: {from_columns: [\"\"]}\n");
  expect_error(empty, dir_ / "campaign.yaml", 5, 36, "expected a non-empty variable name");
  const auto nested =
      campaign_error(minimal_campaign("c") + "session_variables: {static: {offer: [gold]}}\n");
  expect_error(nested, dir_ / "campaign.yaml", 5, 37,
               "session_variables.static.offer: expected a string, number or boolean, got a list");
}

TEST_F(config_test, max_duration_must_be_whole_seconds) {
  const auto e = campaign_error(minimal_campaign("c") + "max_duration: 1500ms\n");
  expect_error(e, dir_ / "campaign.yaml", 5, 15,
               "max_duration: expected whole seconds, like 90s or 10m, got \"1500ms\"");
  const auto long_call = campaign_error(minimal_campaign("c") + "max_duration: 25h\n");
  expect_error(long_call, dir_ / "campaign.yaml", 5, 15, "expected a duration 1s..24h");
}

TEST_F(config_test, campaign_values_are_validated) {
  struct bad {
    std::string line;
    int col;
    std::string fragment;
  };
  const bad cases[] = {
      {"agent_id2: x", 1, "unknown key \"agent_id2\""},
      {"on_ambiguous: maybe", 15, "on_ambiguous: expected one of: unknown, retry, got \"maybe\""},
      {"allowed_number_types: [mobile, premium]", 32,
       "allowed_number_types[1]: expected one of: fixed_line, mobile"},
      {"allowed_number_types: [mobile, mobile]", 32, "\"mobile\" is listed twice"},
      {"allowed_number_types: []", 23, "expected a non-empty list of number types"},
      {"pacing: {burst: 100001}", 17, "pacing.burst: expected an integer 1..100000"},
      {"retry: {max_attempts: 101}", 23, "retry.max_attempts: expected an integer 1..100"},
  };
  for (const auto& c : cases) {
    expect_error(campaign_error(minimal_campaign("c") + c.line + "\n"), dir_ / "campaign.yaml", 5,
                 c.col, c.fragment);
  }
  const std::string head = "agent_id: d796c919-7ef3-413a-8bf1-351b6442953a\ntrunk: main\n";
  expect_error(
      campaign_error("id: has space\n" + head + "csv: {path: c.csv, default_region: AE}\n"),
      dir_ / "campaign.yaml", 1, 5, "id: expected an id of 1 to 64 letters");
  expect_error(campaign_error("id: " + std::string(65, 'a') + "\n" + head +
                              "csv: {path: c.csv, default_region: AE}\n"),
               dir_ / "campaign.yaml", 1, 5, "id: expected an id");
  expect_error(campaign_error("id: c\nagent_id: d796c919-7ef3-413a-8bf1-351b6442953\ntrunk: main\n"
                              "csv: {path: c.csv, default_region: AE}\n"),
               dir_ / "campaign.yaml", 2, 11, "agent_id: expected a UUID");
  const std::string csv_head = "id: c\n" + head + "csv:\n  path: c.csv\n";
  expect_error(campaign_error(csv_head + "  default_region: ae\n"), dir_ / "campaign.yaml", 6, 19,
               "csv.default_region: expected a region code of two upper-case letters");
  expect_error(campaign_error(csv_head + "  default_region: AE\n  delimiter: \";;\"\n"),
               dir_ / "campaign.yaml", 7, 14, "csv.delimiter: expected one character");
  expect_error(campaign_error(csv_head + "  default_region: AE\n  delimiter: '\"'\n"),
               dir_ / "campaign.yaml", 7, 14, "csv.delimiter: expected one character");
  expect_error(campaign_error(csv_head + "  default_region: AE\n  max_field_size: 65536\n"),
               dir_ / "campaign.yaml", 7, 19, "expected a size with a unit, like 64KiB");
  expect_error(campaign_error("id: c\n" + head + "csv: {path: \"\", default_region: AE}\n"),
               dir_ / "campaign.yaml", 4, 13, "csv.path: expected a non-empty path");
}

TEST_F(config_test, delimiter_accepts_one_character_or_a_tab) {
  const std::string head =
      "id: c\nagent_id: D796C919-7EF3-413A-8BF1-351B6442953A\ntrunk: main\n"
      "csv: {path: /srv/c.csv, default_region: AE, delimiter: ";
  for (const auto& [text, expected] : {std::pair<std::string, char>{"\"\\t\"", '\t'},
                                       {"'\\t'", '\t'},
                                       {"tab", '\t'},
                                       {"\";\"", ';'},
                                       {"\"|\"", '|'}}) {
    const fs::path file = write("campaign.yaml", head + text + "}\n");
    const campaign_settings c = load_campaign_config(file, trunks_);
    EXPECT_EQ(c.csv.delimiter, expected) << text;
    EXPECT_EQ(c.csv.path, "/srv/c.csv");
  }
}

TEST_F(config_test, daemon_level_checks) {
  expect_error(daemon_error("api: {base_url: \"https://api.example.com\", api_key_env: "
                            "AGENTIX_API_KEY}\nstate_path: s.db\ntrunks: {}\n"),
               dir_ / "dialerd.yaml", 3, 9, "trunks: expected at least one trunk");
  expect_error(daemon_error("api: {base_url: \"https://api.example.com\", api_key_env: "
                            "AGENTIX_API_KEY}\nstate_path: s.db\ntrunks:\n  bad name: {}\n"),
               dir_ / "dialerd.yaml", 4, 3, "trunks: expected a trunk name");
  expect_error(daemon_error("api: {base_url: \"https://api.example.com\", api_key_env: "
                            "AGENTIX_API_KEY}\nstate_path: s.db\ntrunks:\n  t: {phone_number_id: "
                            "\"a/b\"}\n"),
               dir_ / "dialerd.yaml", 4, 24,
               "trunks.t.phone_number_id: expected a phone number id");
  expect_error(daemon_error(minimal_daemon + "store: {synchronous: off}\n"), dir_ / "dialerd.yaml",
               7, 22, "store.synchronous: expected one of: full, normal, got \"off\"");
  expect_error(daemon_error(minimal_daemon + "reject_path: state.db\n"), dir_ / "dialerd.yaml", 7,
               14, "reject_path: must differ from state_path");
  expect_error(daemon_error("- a\n- b\n"), dir_ / "dialerd.yaml", 1, 1,
               "daemon config: expected a mapping, got a list");
  expect_error(daemon_error("state_path: s.db\ntrunks: {main: {phone_number_id: pn-1}}\n"),
               dir_ / "dialerd.yaml", 1, 1, "missing required key \"api\" in daemon config");
}

TEST_F(config_test, shipped_examples_load) {
  // Lexically: tests/data need not exist.
  const fs::path examples =
      fs::path(DIALER_TEST_DATA_DIR).parent_path().parent_path() / "deploy/examples";
  env_vars()["CREDENTIALS_DIRECTORY"] = dir_.string();
  write("agentix-api-key", std::string(test_key) + "\n");
  const daemon_settings d = load_daemon_config(examples / "dialerd.yaml", fake_env);
  EXPECT_EQ(d.api.api_key.reveal(), test_key);
  EXPECT_FALSE(d.trunks.empty());
  ASSERT_EQ(d.campaigns.size(), 1u);
  EXPECT_TRUE(d.trunks.contains(d.campaigns[0].trunk));
}

}  // namespace
}  // namespace dialer::config
