// Real dialerd against real agentix-sim over TLS on 127.0.0.1. Each test checks outcomes the
// simulator observed (its ledger and counters) against what dialerd recorded in its store.
#include <gtest/gtest.h>
#include <signal.h>

#include <set>
#include <thread>

#include "tests/support/harness.hpp"

namespace dialer::test {
namespace {

// Every task STARTED with exactly the sessionId the simulator issued for it.
// A call that was placed: STARTED, or already ENDED / ENDED_UNCONFIRMED because its deadline
// (max_duration + slot_grace) passed while dialerd ran and a session pull settled it.
bool placed_state(const std::string& state) {
  return state == "started" || state == "ended" || state == "ended_unconfirmed";
}

void expect_all_started_as_ledger(const std::map<std::string, task_row>& tasks,
                                  const std::vector<ledger_entry>& ledger, int expected) {
  ASSERT_EQ(static_cast<int>(tasks.size()), expected);
  std::map<std::string, std::string> placed;
  for (const auto& e : ledger) {
    placed[e.task_id] = e.session_id;
  }
  for (const auto& [id, t] : tasks) {
    ASSERT_TRUE(placed_state(t.state)) << id << " " << t.state << " " << t.error_class;
    ASSERT_EQ(t.session_id, placed[id]) << id;
  }
}

TEST(dialing, every_task_started_once_within_rate_and_concurrency_caps) {
  temp_dir dir;
  simulator sim(dir, {.call_duration = "20ms..300ms"});
  dialer_setup setup{.tasks = 2000, .rate = "200/s", .burst = 10, .concurrency = 50};
  const auto config = write_dialer_config(dir, sim, setup);

  const run_result r = run_dialerd(dir, config);
  sim.stop();
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const sim_stats& s = sim.stats();
  EXPECT_EQ(s.placed, 2000);
  EXPECT_EQ(s.duplicates_by_task_id, 0);
  EXPECT_EQ(s.duplicates_by_phone, 0);
  EXPECT_LE(s.max_active, 50);
  EXPECT_LE(s.max_starts_100ms, setup.burst + 20 + window_slack);
  EXPECT_LE(s.max_starts_1s, setup.burst + 200 + window_slack);
  expect_all_started_as_ledger(read_tasks(dir / "state.db"), sim.ledger(), 2000);
  for (const auto& e : sim.ledger()) {
    EXPECT_EQ(e.campaign_id, "it-campaign");
    EXPECT_EQ(e.idempotency_key, "it-campaign:" + e.task_id + ":1");
  }
  EXPECT_NE(r.out.find("started          2000"), std::string::npos) << r.out;
}

TEST(dialing, rate_is_kept_from_the_first_100ms_when_concurrency_does_not_bind) {
  temp_dir dir;
  simulator sim(dir, {.call_duration = "10ms..50ms"});
  dialer_setup setup{
      .tasks = 2000, .rate = "200/s", .burst = 10, .concurrency = 2000, .pool_connections = 32};
  const auto config = write_dialer_config(dir, sim, setup);
  const run_result r = run_dialerd(dir, config);
  sim.stop();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(sim.stats().placed, 2000);
  EXPECT_LE(sim.stats().max_starts_100ms, setup.burst + 20 + window_slack);
  EXPECT_LE(sim.stats().max_starts_1s, setup.burst + 200 + window_slack);
  // The cap is reached, not just respected: the run is paced, not starved.
  EXPECT_GE(sim.stats().max_starts_1s, 190);
}

TEST(dialing, faults_keep_caps_and_leave_exactly_the_ambiguous_calls_unknown) {
  temp_dir dir;
  simulator sim(
      dir, {.call_duration = "20ms..200ms",
            .extra_args = {"--fault-429", "0.01", "--retry-after", "1", "--fault-503", "0.03",
                           "--fault-500-after-place", "0.03", "--fault-drop-after-place", "0.03"}});
  dialer_setup setup{
      .tasks = 1000, .rate = "200/s", .burst = 10, .concurrency = 50, .max_attempts = 10};
  const auto config = write_dialer_config(dir, sim, setup);
  const run_result r = run_dialerd(dir, config);
  sim.stop();
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const sim_stats& s = sim.stats();
  EXPECT_EQ(s.duplicates_by_task_id, 0);
  EXPECT_EQ(s.duplicates_by_phone, 0);
  EXPECT_LE(s.max_active, 50);
  EXPECT_LE(s.max_starts_100ms, setup.burst + 20 + window_slack);
  EXPECT_GT(s.faults.at("429"), 0);
  EXPECT_GT(s.faults.at("503"), 0);
  EXPECT_GT(s.faults.at("500_after_place"), 0);
  EXPECT_GT(s.faults.at("drop_after_place"), 0);

  const auto tasks = read_tasks(dir / "state.db");
  ASSERT_EQ(tasks.size(), 1000u);
  std::set<std::string> ambiguous_placed;
  std::map<std::string, std::string> placed_ok;
  for (const auto& e : sim.ledger()) {
    if (e.outcome == "ok") {
      placed_ok[e.task_id] = e.session_id;
    } else {
      ambiguous_placed.insert(e.task_id);
    }
  }
  std::set<std::string> unknown;
  for (const auto& [id, t] : tasks) {
    ASSERT_TRUE(placed_state(t.state) || t.state == "unknown" || t.state == "failed")
        << id << " is " << t.state;
    if (t.state == "unknown") {
      unknown.insert(id);
    }
    if (placed_state(t.state)) {
      EXPECT_EQ(t.session_id, placed_ok[id]) << id;
    }
    if (t.state == "failed") {
      // Only "not placed" failures may exhaust attempts; they must not be in the ledger.
      EXPECT_EQ(placed_ok.count(id) + ambiguous_placed.count(id), 0u) << id;
    }
  }
  EXPECT_EQ(unknown, ambiguous_placed);
}

TEST(dialing, sigkill_mid_campaign_then_restart_dials_nobody_twice_and_loses_nothing) {
  temp_dir dir;
  simulator sim(dir, {.call_duration = "20ms..200ms"});
  dialer_setup setup{.tasks = 1500, .rate = "300/s", .burst = 10, .concurrency = 100};
  const auto config = write_dialer_config(dir, sim, setup);
  {
    child_process first({DIALERD_PATH, "--config", config.string()}, dir / "first.out",
                        dir / "first.err");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (sim.ledger_lines_now() < 400 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(first.running()) << read_file(dir / "first.err");
    first.signal(SIGKILL);
    ASSERT_EQ(first.wait_for(std::chrono::seconds(10)), 128 + SIGKILL);
  }
  const run_result second = run_dialerd(dir, config);
  sim.stop();
  ASSERT_EQ(second.exit_code, 0) << second.err;

  const sim_stats& s = sim.stats();
  EXPECT_EQ(s.duplicates_by_task_id, 0);
  EXPECT_EQ(s.duplicates_by_phone, 0);
  EXPECT_LE(s.max_active, 100);

  const auto tasks = read_tasks(dir / "state.db");
  ASSERT_EQ(tasks.size(), 1500u);  // nothing lost
  std::map<std::string, std::string> placed;
  for (const auto& e : sim.ledger()) {
    placed[e.task_id] = e.session_id;
  }
  int unknown = 0;
  for (const auto& [id, t] : tasks) {
    if (placed_state(t.state)) {
      EXPECT_EQ(t.session_id, placed[id]) << id;
    } else {
      // The only other outcome: in flight when killed, so never redialed.
      ASSERT_EQ(t.state, "unknown") << id;
      EXPECT_EQ(t.error_class, "interrupted") << id;
      ++unknown;
    }
  }
  // Every call the simulator placed belongs to a task that is STARTED or UNKNOWN.
  for (const auto& [id, sid] : placed) {
    ASSERT_TRUE(tasks.count(id)) << id;
  }
  EXPECT_LE(unknown, setup.concurrency);
  EXPECT_EQ(static_cast<int>(placed.size()) + 0, s.placed);
}

TEST(dialing, sigterm_drains_in_flight_requests_and_loses_nothing) {
  temp_dir dir;
  simulator sim(dir, {.call_duration = "10ms..50ms", .extra_args = {"--latency", "200ms..300ms"}});
  dialer_setup setup{.tasks = 300, .rate = "50/s", .burst = 5, .concurrency = 100};
  const auto config = write_dialer_config(dir, sim, setup);
  {
    child_process first({DIALERD_PATH, "--config", config.string()}, dir / "first.out",
                        dir / "first.err");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (sim.ledger_lines_now() < 20 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    first.signal(SIGTERM);
    // Requests in flight take at most ~300 ms to answer; the drain waits for them, no longer.
    EXPECT_EQ(first.wait_for(std::chrono::seconds(10)), 0) << read_file(dir / "first.err");
  }
  {
    const auto tasks = read_tasks(dir / "state.db");
    ASSERT_EQ(tasks.size(), 300u);
    int started = 0;
    for (const auto& [id, t] : tasks) {
      ASSERT_TRUE(placed_state(t.state) || t.state == "pending") << id << " " << t.state;
      started += placed_state(t.state);
    }
    EXPECT_GT(started, 0);
    EXPECT_LT(started, 300);
  }
  const run_result rest = run_dialerd(dir, config);
  sim.stop();
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_EQ(sim.stats().placed, 300);
  EXPECT_EQ(sim.stats().duplicates_by_task_id, 0);
  expect_all_started_as_ledger(read_tasks(dir / "state.db"), sim.ledger(), 300);
}

TEST(dialing, a_second_sigterm_exits_at_once_and_the_restart_never_redials_in_flight_tasks) {
  temp_dir dir;
  simulator sim(dir, {.call_duration = "10ms..50ms", .extra_args = {"--latency", "2s..2s"}});
  dialer_setup setup{.tasks = 100, .rate = "100/s", .burst = 10, .concurrency = 20};
  const auto config = write_dialer_config(dir, sim, setup);
  {
    child_process first({DIALERD_PATH, "--config", config.string()}, dir / "first.out",
                        dir / "first.err");
    // Every request now waits 2 s at the simulator: some are certainly in flight after 1 s.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    first.signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    first.signal(SIGTERM);
    EXPECT_EQ(first.wait_for(std::chrono::seconds(1)), 130) << read_file(dir / "first.err");
  }
  const run_result rest = run_dialerd(dir, config);
  sim.stop();
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_EQ(sim.stats().duplicates_by_task_id, 0);
  int interrupted = 0;
  for (const auto& [id, t] : read_tasks(dir / "state.db")) {
    if (t.state == "unknown") {
      EXPECT_EQ(t.error_class, "interrupted");
      ++interrupted;
    } else {
      EXPECT_TRUE(placed_state(t.state)) << id << " " << t.state;
    }
  }
  EXPECT_GT(interrupted, 0);
  EXPECT_LE(interrupted, setup.concurrency);
}

TEST(dialing, a_second_run_of_a_finished_campaign_dials_nobody) {
  temp_dir dir;
  simulator sim(dir, {.call_duration = "10ms..50ms"});
  dialer_setup setup{.tasks = 200, .rate = "500/s", .burst = 20, .concurrency = 500};
  const auto config = write_dialer_config(dir, sim, setup);
  ASSERT_EQ(run_dialerd(dir, config).exit_code, 0);
  const run_result again = run_dialerd(dir, config);
  sim.stop();
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(sim.stats().placed, 200);
  EXPECT_EQ(sim.stats().duplicates_by_task_id, 0);
}

TEST(dialing, refused_key_pauses_the_campaign_with_one_clear_line_and_no_secret) {
  temp_dir dir;
  simulator sim(dir, {.api_key = "pk_the_right_key_42"});
  dialer_setup setup{.tasks = 50};
  const auto config = write_dialer_config(dir, sim, setup);
  const std::string wrong_key = "pk_WRONG_secret_value_9876";
  write_file(dir / "api.key", wrong_key + "\n");
  const run_result r = run_dialerd(dir, config);
  sim.stop();
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(sim.stats().placed, 0);
  EXPECT_NE(r.err.find("paused: calls/start answered 401"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(wrong_key), std::string::npos);
  EXPECT_EQ(r.out.find(wrong_key), std::string::npos);
  // Refused means not placed: the tasks wait, pending, for an operator.
  for (const auto& [id, t] : read_tasks(dir / "state.db")) {
    EXPECT_TRUE(t.state == "pending") << id << " " << t.state;
  }
}

TEST(dialing, unknown_phone_number_id_pauses_the_campaign) {
  temp_dir dir;
  simulator sim(dir);
  dialer_setup setup{.tasks = 20};
  auto config = write_dialer_config(dir, sim, setup);
  std::string yaml = read_file(config);
  yaml.replace(yaml.find(default_phone_number_id), std::string(default_phone_number_id).size(),
               "00000000-0000-4000-8000-00000000dead");
  write_file(config, yaml);
  const run_result r = run_dialerd(dir, config);
  sim.stop();
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("404"), std::string::npos) << r.err;
  EXPECT_EQ(sim.stats().placed, 0);
}

TEST(dialing, check_config_reports_file_line_col) {
  temp_dir dir;
  simulator sim(dir);
  auto config = write_dialer_config(dir, sim, {});
  write_file(dir / "campaign.yaml",
             read_file(dir / "campaign.yaml") + "pacing: {calls_per_second: fast}\n");
  const run_result r = run_dialerd(dir, config, {"--check-config"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find((dir / "campaign.yaml").string() + ":"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("calls_per_second"), std::string::npos) << r.err;
}

TEST(dialing, dry_run_prints_tasks_and_rejects_and_touches_no_network) {
  temp_dir dir;
  simulator sim(dir);
  dialer_setup setup;
  setup.csv =
      "task_id,phone,first_name,crmContactId\n"
      "T-1,050 123 4567,Layla,C-1\n"
      "T-2,not a number,Omar,C-2\n"
      "T-3,+971501234567,Dup,C-3\n"
      "T-4,0501112222,\"Quote \"\"Q\"\"\",C-4\n"
      "T-5,0501112223\n";
  const auto config = write_dialer_config(dir, sim, setup);
  const run_result r = run_dialerd(dir, config, {"--dry-run"});
  sim.stop();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(sim.stats().requests, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "state.db"));
  EXPECT_NE(r.out.find("\"task_id\":\"T-1\",\"to_phone_number\":\"+971501234567\""),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"first_name\":\"Quote \\\"Q\\\"\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"line\":3,\"task_id\":\"T-2\",\"reason\":\"invalid_number\""),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"line\":6,\"task_id\":\"\",\"reason\":\"ragged_row\""), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("\"task_id\":\"T-3\",\"to_phone"), std::string::npos)
      << "T-3 has T-1's number and must be suppressed: " << r.out;
}

}  // namespace
}  // namespace dialer::test
