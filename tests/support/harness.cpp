#include "tests/support/harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <simdjson.h>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/task.hpp"

namespace dialer::test {

temp_dir::temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dialerd-it-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

child_process::child_process(const std::vector<std::string>& argv,
                             const std::filesystem::path& stdout_path,
                             const std::filesystem::path& stderr_path,
                             const std::map<std::string, std::string>& extra_env) {
  pid_ = ::fork();
  if (pid_ < 0) {
    throw std::runtime_error("fork failed");
  }
  if (pid_ == 0) {
    const int out = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(out, 1);
    ::dup2(err, 2);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    for (const auto& [k, v] : extra_env) {
      ::setenv(k.c_str(), v.c_str(), 1);
    }
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::perror("execv");
    ::_exit(127);
  }
}

child_process::~child_process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

void child_process::signal(int signo) {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, signo);
  }
}

bool child_process::running() {
  if (status_) {
    return false;
  }
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

std::optional<int> child_process::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

namespace {

long get_long(simdjson::dom::element e, const char* key) {
  int64_t v = 0;
  if (e[key].get_int64().get(v) != simdjson::SUCCESS) {
    return -1;
  }
  return static_cast<long>(v);
}

std::string get_string(simdjson::dom::element e, const char* key) {
  std::string_view v;
  if (e[key].get_string().get(v) != simdjson::SUCCESS) {
    return {};
  }
  return std::string(v);
}

}  // namespace

simulator::simulator(const temp_dir& dir, sim_options options)
    : options_(std::move(options)), dir_(dir.path()), cert_dir_(dir.path() / "sim-cert") {
  std::filesystem::create_directories(cert_dir_);
  write_file(dir_ / "sim.key", options_.api_key + "\n");
  std::error_code ec;
  std::filesystem::remove(dir_ / "sim.port", ec);
  std::vector<std::string> argv = {AGENTIX_SIM_PATH,
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--port-file",
                                   (dir_ / "sim.port").string(),
                                   "--cert-dir",
                                   cert_dir_.string(),
                                   "--api-key-file",
                                   (dir_ / "sim.key").string(),
                                   "--ledger",
                                   (dir_ / "ledger.jsonl").string(),
                                   "--stats-file",
                                   (dir_ / "sim-stats.json").string(),
                                   "--call-duration",
                                   options_.call_duration,
                                   "--seed",
                                   "42"};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  process_ = std::make_unique<child_process>(argv, dir_ / "sim.out", dir_ / "sim.err");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->running()) {
      throw std::runtime_error("agentix-sim exited at start: " + read_file(dir_ / "sim.err"));
    }
    const std::string port = read_file(dir_ / "sim.port");
    if (!port.empty()) {
      port_ = std::stoi(port);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("agentix-sim did not start listening within 20 s");
}

simulator::~simulator() {
  if (process_) {
    process_->signal(SIGTERM);
    (void)process_->wait_for(std::chrono::seconds(5));
  }
}

std::size_t simulator::ledger_lines_now() const {
  const std::string text = read_file(dir_ / "ledger.jsonl");
  std::size_t n = 0;
  for (char c : text) {
    n += c == '\n';
  }
  return n;
}

void simulator::stop() {
  process_->signal(SIGTERM);
  const auto code = process_->wait_for(std::chrono::seconds(20));
  if (!code || *code != 0) {
    throw std::runtime_error("agentix-sim did not exit cleanly: " + read_file(dir_ / "sim.err"));
  }
  process_.reset();
  simdjson::dom::parser parser;
  simdjson::dom::element stats;
  const std::string text = read_file(dir_ / "sim-stats.json");
  if (parser.parse(text).get(stats) != simdjson::SUCCESS) {
    throw std::runtime_error("unreadable sim stats: " + text);
  }
  stats_.requests = get_long(stats, "requests");
  stats_.placed = get_long(stats, "placed");
  stats_.duplicates_by_task_id = get_long(stats, "duplicates_by_task_id");
  stats_.duplicates_by_phone = get_long(stats, "duplicates_by_phone");
  stats_.max_active = get_long(stats, "max_active");
  stats_.max_starts_100ms = get_long(stats, "max_starts_100ms");
  stats_.max_starts_1s = get_long(stats, "max_starts_1s");
  stats_.unauthorized = get_long(stats, "unauthorized");
  simdjson::dom::object faults;
  if (stats["faults"].get_object().get(faults) == simdjson::SUCCESS) {
    for (auto [k, v] : faults) {
      int64_t n = 0;
      if (v.get_int64().get(n) == simdjson::SUCCESS) {
        stats_.faults[std::string(k)] = static_cast<long>(n);
      }
    }
  }
  std::ifstream ledger(dir_ / "ledger.jsonl");
  std::string line;
  while (std::getline(ledger, line)) {
    simdjson::dom::element e;
    if (parser.parse(line).get(e) != simdjson::SUCCESS) {
      throw std::runtime_error("bad ledger line: " + line);
    }
    ledger_.push_back({get_string(e, "task_id"), get_string(e, "campaign_id"),
                       get_string(e, "phone"), get_string(e, "session_id"),
                       get_string(e, "idempotency_key"), get_string(e, "outcome")});
  }
}

std::string generated_phone(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "+97150%07d", i);
  return buf;
}

std::string generated_csv(int tasks) {
  std::string csv = "task_id,phone,first_name,crmContactId\n";
  csv.reserve(static_cast<std::size_t>(tasks) * 48);
  char buf[128];
  for (int i = 1; i <= tasks; ++i) {
    // National format for the AE region: 050 … → +97150…
    std::snprintf(buf, sizeof buf, "T-%06d,050%07d,Name %d,C-%d\n", i, i, i, 100000 + i);
    csv += buf;
  }
  return csv;
}

std::filesystem::path write_dialer_config(const temp_dir& dir, const simulator& sim,
                                          const dialer_setup& s) {
  write_file(dir / "api.key", sim.api_key() + "\n");
  write_file(dir / "tasks.csv", s.csv.empty() ? generated_csv(s.tasks) : s.csv);
  std::ostringstream d;
  d << "api:\n"
    << "  base_url: https://127.0.0.1:" << sim.port() << "\n"
    << "  api_key_file: " << (dir / "api.key").string() << "\n"
    << "  ca_file: " << sim.ca_file().string() << "\n"
    << "  pool: {connections: " << s.pool_connections
    << ", connect_timeout: 5s, request_timeout: 5s, idle_timeout: 30s}\n"
    << "state_path: " << (dir / "state.db").string() << "\n"
    << "slot_grace: " << s.slot_grace << "\n"
    << "trunks:\n"
    << "  main: {phone_number_id: " << default_phone_number_id
    << ", max_concurrent_calls: " << s.concurrency << ", calls_per_second: " << s.rate
    << ", burst: " << s.burst << "}\n"
    << "campaigns: [campaign.yaml]\n";
  write_file(dir / "dialerd.yaml", d.str());
  std::ostringstream c;
  c << "id: it-campaign\n"
    << "agent_id: " << default_agent_id << "\n"
    << "trunk: main\n"
    << "csv: {path: tasks.csv, phone_column: phone, task_id_column: task_id, "
       "default_region: AE}\n"
    << "session_variables: {from_columns: [crmContactId, first_name], static: {offer: gold}}\n"
    << "max_duration: " << s.max_duration << "\n"
    << "retry: {max_attempts: " << s.max_attempts << ", backoff_base: 50ms, backoff_max: 1s}\n"
    << s.extra_campaign_yaml;
  write_file(dir / "campaign.yaml", c.str());
  return dir / "dialerd.yaml";
}

run_result run_dialerd(const temp_dir& dir, const std::filesystem::path& config,
                       const std::vector<std::string>& args, std::chrono::seconds timeout) {
  std::vector<std::string> argv = {DIALERD_PATH, "--config", config.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  run_result r;
  {
    child_process p(argv, dir / "dialerd.out", dir / "dialerd.err");
    const auto code = p.wait_for(timeout);
    r.exit_code = code ? *code : -1;
  }
  r.out = read_file(dir / "dialerd.out");
  r.err = read_file(dir / "dialerd.err");
  return r;
}

std::map<std::string, task_row> read_tasks(const std::filesystem::path& db) {
  sqlite3* conn = nullptr;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(conn);
    throw std::runtime_error("cannot open " + db.string());
  }
  sqlite3_stmt* st = nullptr;
  const char* sql =
      "SELECT task_id, state, coalesce(session_id,''), coalesce(error_class,''), attempts, "
      "coalesce(http_status,0) FROM tasks";
  if (sqlite3_prepare_v2(conn, sql, -1, &st, nullptr) != SQLITE_OK) {
    std::string err = sqlite3_errmsg(conn);
    sqlite3_close(conn);
    throw std::runtime_error("cannot read tasks: " + err);
  }
  std::map<std::string, task_row> rows;
  while (sqlite3_step(st) == SQLITE_ROW) {
    task_row r;
    r.task_id = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    r.state = std::string(to_string(static_cast<task_state>(sqlite3_column_int(st, 1))));
    r.session_id = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
    r.error_class = reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
    r.attempts = sqlite3_column_int(st, 4);
    r.http_status = sqlite3_column_int(st, 5);
    rows.emplace(r.task_id, r);
  }
  sqlite3_finalize(st);
  sqlite3_close(conn);
  return rows;
}

}  // namespace dialer::test
