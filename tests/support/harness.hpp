#pragma once
// Integration-test harness: starts the real agentix-sim and the real dialerd on 127.0.0.1, stops
// every process it started (by its own pid), and reads what the simulator and the store saw.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dialer::test {

// A temporary folder removed (with its content) on destruction, unless the environment has
// DIALER_TEST_KEEP_DIRS=1 (then its path is printed on stderr, for a post-mortem).
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const {
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& path, const std::string& content);
[[nodiscard]] std::string read_file(const std::filesystem::path& path);

// A child process with stdout and stderr captured to files. The destructor kills (SIGKILL) and
// reaps it if it is still running, so no test leaves a process behind.
class child_process {
 public:
  child_process(const std::vector<std::string>& argv, const std::filesystem::path& stdout_path,
                const std::filesystem::path& stderr_path,
                const std::map<std::string, std::string>& extra_env = {});
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  void signal(int signo);
  // The exit code (or 128 + signal), or nullopt if still running after `timeout`.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  [[nodiscard]] bool running();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct sim_options {
  std::string api_key = "pk_test_0123456789abcdef";
  std::string call_duration = "20ms..200ms";
  std::vector<std::string> extra_args;  // faults, limits
};

struct sim_stats {
  long requests = 0;
  long placed = 0;
  long duplicates_by_task_id = 0;
  long duplicates_by_phone = 0;
  long max_active = 0;
  long max_starts_100ms = 0;
  long max_starts_1s = 0;
  long unauthorized = 0;
  std::map<std::string, long> faults;
  // The numeric fields of the "webhooks" object (events, delivered, lost, gave_up, pending_at_exit,
  // …); empty without --webhook-url.
  std::map<std::string, long> webhooks;
};

struct ledger_entry {
  std::string task_id;
  std::string campaign_id;
  std::string phone;
  std::string session_id;
  std::string idempotency_key;
  std::string outcome;
  std::int64_t ts_ms = 0;              // wall time of the placement
  std::int64_t mono_ns = 0;            // CLOCK_MONOTONIC of the placement
  std::int64_t duration_ms = 0;        // the call's drawn duration, truncated to ms
  std::string end_reason;              // how the call ends ("completed", "no_answer", …)
  std::int64_t duration_seconds = -1;  // as the session.ended payload says (rounded)
};

// agentix-sim on 127.0.0.1 with its own certificate, key file, ledger and stats file.
class simulator {
 public:
  simulator(const temp_dir& dir, sim_options options = {});
  ~simulator();
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::filesystem::path ca_file() const { return cert_dir_ / "cert.pem"; }
  [[nodiscard]] const std::string& api_key() const { return options_.api_key; }
  // SIGTERM, wait for exit, read stats and ledger.
  void stop();
  [[nodiscard]] const sim_stats& stats() const { return stats_; }
  [[nodiscard]] const std::vector<ledger_entry>& ledger() const { return ledger_; }
  // The ledger as written so far (while running).
  [[nodiscard]] std::size_t ledger_lines_now() const;
  // The ledger's complete lines as written so far (while running; the simulator writes its
  // buffer every 100 ms). Throws on a complete line that is not JSON.
  [[nodiscard]] std::vector<ledger_entry> ledger_now() const;

 private:
  sim_options options_;
  std::filesystem::path dir_;
  std::filesystem::path cert_dir_;
  std::unique_ptr<child_process> process_;
  int port_ = 0;
  sim_stats stats_;
  std::vector<ledger_entry> ledger_;
};

// The simulator timestamps a start when it processes the request, so a stall of the simulator
// (not of the dialer) can put one or two more starts into a window than the dialer sent in it.
// Release builds keep the exact bound; sanitizer builds, 3-10 times slower, get this slack. The
// sender's exactness is proven on a manual clock in dial_engine_test.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr long window_slack = 3;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr long window_slack = 3;
#else
inline constexpr long window_slack = 0;
#endif
#else
inline constexpr long window_slack = 0;
#endif

inline constexpr const char* default_phone_number_id = "6f1c2a9e-0000-4000-8000-000000000001";
inline constexpr const char* default_agent_id = "d796c919-7ef3-413a-8bf1-351b6442953a";

struct dialer_setup {
  int tasks = 100;
  std::string rate = "200/s";
  int burst = 10;
  int concurrency = 50;
  std::string max_duration = "1s";
  std::string slot_grace = "0s";
  int pool_connections = 16;
  int max_attempts = 8;
  std::string extra_campaign_yaml;  // appended to the campaign file
  std::string csv;                  // overrides the generated CSV when not empty
  // Inserted into the campaign's `retry:` flow mapping after backoff_max, e.g.
  // ", redial_on: [busy], redial_after: 1s".
  std::string extra_retry_yaml;
  std::string extra_daemon_yaml;  // appended to dialerd.yaml (listen:, webhooks:, settle:)
};

// Writes dialerd.yaml, campaign.yaml, tasks.csv and the key file into `dir`. The CSV has
// `setup.tasks` rows, task ids T-000001…, unique valid AE mobile numbers.
std::filesystem::path write_dialer_config(const temp_dir& dir, const simulator& sim,
                                          const dialer_setup& setup);
[[nodiscard]] std::string generated_csv(int tasks);
// The E.164 number generated_csv() gives task i (1-based).
[[nodiscard]] std::string generated_phone(int i);

struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs dialerd with `args` (plus --config) to completion, bounded by `timeout`.
run_result run_dialerd(const temp_dir& dir, const std::filesystem::path& config,
                       const std::vector<std::string>& args = {},
                       std::chrono::seconds timeout = std::chrono::seconds(180));

struct task_row {
  std::string task_id;
  std::string state;
  std::string session_id;
  std::string error_class;
  int attempts = 0;
  int http_status = 0;
};

// Every task of the state database, keyed by task id (read-only open).
[[nodiscard]] std::map<std::string, task_row> read_tasks(const std::filesystem::path& db);

// ---- The webhook loop (schema v2 results, the events table, the simulator's webhook log). ----

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close). Another
// process may take it before it is used; on loopback in a test that race is accepted.
[[nodiscard]] int pick_free_port();

// A task with its call result. Text columns that are NULL read as "".
struct task_result {
  std::string task_id;
  std::string state;
  std::string session_id;
  std::string error_class;
  std::string detail;
  int attempts = 0;
  std::string end_reason;
  std::optional<std::int64_t> duration_s;
  std::string intent;
  std::string resolution;
  std::string sentiment;
  std::string analysis_data;  // raw JSON text as stored
  std::optional<std::int64_t> ended_ms;
  std::string result_source;      // "webhook", "pull" or ""
  std::string previous_sessions;  // comma-separated session ids of earlier attempts
  std::optional<std::int64_t> redial_at_ms;
};
[[nodiscard]] std::map<std::string, task_result> read_results(const std::filesystem::path& db);

struct event_row {
  std::int64_t id = 0;
  std::string source;  // "webhook" or "pull"
  std::string event;
  std::string session_id;
  std::string campaign;
  std::string task_id;
  std::optional<std::int64_t> row_id;  // empty for orphans
  std::string verdict;
  std::string reason;
};
[[nodiscard]] std::vector<event_row> read_events(const std::filesystem::path& db);

// SELECT count(*) FROM `table`.
[[nodiscard]] std::int64_t count_rows(const std::filesystem::path& db, const std::string& table);
// Every row of `table` in rowid order, each rendered as one string of all its columns (NULL and
// '' distinguished): two equal snapshots mean nothing in the table changed.
[[nodiscard]] std::vector<std::string> snapshot_table(const std::filesystem::path& db,
                                                      const std::string& table);

// One line of agentix-sim's --webhook-log.
struct webhook_log_entry {
  std::string event;  // "session.created" | "session.ended"
  std::string session_id;
  std::string task_id;
  std::string campaign_id;
  std::string result;  // delivered | duplicate_delivered | lost | gave_up | dropped
  int attempts = 0;
  int status = 0;          // the last HTTP status (0: none)
  std::string end_reason;  // session.ended only
  std::int64_t duration_seconds = -1;
  std::string intent;
  std::string resolution;
  std::string sentiment;
  std::int64_t ts_ms = 0;
  std::int64_t mono_ns = 0;
};
// Throws on a line that is not JSON.
[[nodiscard]] std::vector<webhook_log_entry> read_webhook_log(const std::filesystem::path& path);

// `text` as JSON with object keys sorted and no insignificant whitespace, so two documents that
// parse to the same value compare equal; nullopt when `text` is not JSON.
[[nodiscard]] std::optional<std::string> canonical_json(std::string_view text);

// GET /api/v1/chat/sessions/{id} for each id, over one keep-alive TLS connection to the running
// simulator (verified against its certificate). Returns id → response body for 200s; throws on a
// connection or protocol failure. The simulator counts these in its `requests`.
[[nodiscard]] std::map<std::string, std::string> fetch_sessions(
    const simulator& sim, const std::vector<std::string>& session_ids);

// VmRSS of a running process in KiB, from /proc/<pid>/status; -1 when unreadable.
[[nodiscard]] long vm_rss_kib(pid_t pid);

// ---- Operating dialerd: its control listener and dialerctl. ----

struct http_reply {
  int status = 0;  // 0: no complete answer (refused, reset, timed out)
  std::string body;
};

// One plain HTTP/1.1 request to 127.0.0.1:`port` with `Connection: close`, read to the end,
// bounded by `timeout` in all. Never throws for a failed connection: status 0.
[[nodiscard]] http_reply http_request_to(
    int port, const std::string& method, const std::string& target, const std::string& body = "",
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

// Polls GET /readyz on 127.0.0.1:`port` until it answers 200; false after `timeout` or as soon
// as `process` exits.
[[nodiscard]] bool wait_ready(int port, child_process& process,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(20000));

// Runs the real dialerctl with `args` to completion, stdin /dev/null (not a terminal, so it
// never asks), bounded by `timeout` (exit_code -1 when it did not exit in time). Its output goes
// to `dir`/dialerctl.out and .err, overwritten by each call.
run_result run_dialerctl(const temp_dir& dir, const std::vector<std::string>& args,
                         std::chrono::seconds timeout = std::chrono::seconds(20));

}  // namespace dialer::test
