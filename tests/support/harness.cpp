#include "tests/support/harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

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
  // For post-mortems of a failed run: DIALER_TEST_KEEP_DIRS=1 keeps the folder and names it.
  if (const char* keep = std::getenv("DIALER_TEST_KEEP_DIRS"); keep != nullptr && *keep == '1') {
    std::fprintf(stderr, "kept %s\n", path_.c_str());
    return;
  }
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

// One line of the simulator's ledger (after the run, or while it runs).
ledger_entry parse_ledger_line(simdjson::dom::parser& parser, const std::string& line) {
  simdjson::dom::element e;
  if (parser.parse(line).get(e) != simdjson::SUCCESS) {
    throw std::runtime_error("bad ledger line: " + line);
  }
  ledger_entry entry;
  entry.task_id = get_string(e, "task_id");
  entry.campaign_id = get_string(e, "campaign_id");
  entry.phone = get_string(e, "phone");
  entry.session_id = get_string(e, "session_id");
  entry.idempotency_key = get_string(e, "idempotency_key");
  entry.outcome = get_string(e, "outcome");
  entry.ts_ms = get_long(e, "ts_ms");
  entry.mono_ns = get_long(e, "mono_ns");
  entry.duration_ms = get_long(e, "duration_ms");
  entry.end_reason = get_string(e, "endReason");
  entry.duration_seconds = get_long(e, "durationSeconds");
  return entry;
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
  simdjson::dom::object webhooks;
  if (stats["webhooks"].get_object().get(webhooks) == simdjson::SUCCESS) {
    for (auto [k, v] : webhooks) {
      int64_t n = 0;
      if (v.get_int64().get(n) == simdjson::SUCCESS) {
        stats_.webhooks[std::string(k)] = static_cast<long>(n);
      }
    }
  }
  std::ifstream ledger(dir_ / "ledger.jsonl");
  std::string line;
  while (std::getline(ledger, line)) {
    ledger_.push_back(parse_ledger_line(parser, line));
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
    << "campaigns: [campaign.yaml]\n"
    << s.extra_daemon_yaml;
  // The control listener defaults to 127.0.0.1:9464: tests running side by side take any free
  // port instead (a test that sets `listen:` itself names its own control address).
  if (s.extra_daemon_yaml.find("listen:") == std::string::npos) {
    d << "listen: {control: \"127.0.0.1:0\"}\n";
  }
  write_file(dir / "dialerd.yaml", d.str());
  std::ostringstream c;
  c << "id: it-campaign\n"
    << "agent_id: " << default_agent_id << "\n"
    << "trunk: main\n"
    << "csv: {path: tasks.csv, phone_column: phone, task_id_column: task_id, "
       "default_region: AE}\n"
    << "session_variables: {from_columns: [crmContactId, first_name], static: {offer: gold}}\n"
    << "max_duration: " << s.max_duration << "\n"
    << "retry: {max_attempts: " << s.max_attempts << ", backoff_base: 50ms, backoff_max: 1s"
    << s.extra_retry_yaml << "}\n"
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

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    throw std::runtime_error("socket failed");
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

namespace {

// A read-only connection to the state database; every query runs to completion at once.
class db_reader {
 public:
  explicit db_reader(const std::filesystem::path& db) {
    if (sqlite3_open_v2(db.c_str(), &conn_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      sqlite3_close(conn_);
      throw std::runtime_error("cannot open " + db.string());
    }
    // dialerd may be committing while a test reads.
    sqlite3_busy_timeout(conn_, 5000);
  }
  ~db_reader() { sqlite3_close(conn_); }
  db_reader(const db_reader&) = delete;
  db_reader& operator=(const db_reader&) = delete;

  // Calls `row` for each result row of `sql`.
  template <typename F>
  void query(const std::string& sql, F&& row) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(conn_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      throw std::runtime_error("cannot prepare \"" + sql + "\": " + sqlite3_errmsg(conn_));
    }
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      row(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
      throw std::runtime_error("cannot run \"" + sql + "\": " + sqlite3_errmsg(conn_));
    }
  }

 private:
  sqlite3* conn_ = nullptr;
};

std::string text_column(sqlite3_stmt* st, int i) {
  const unsigned char* t = sqlite3_column_text(st, i);
  return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));
}

std::optional<std::int64_t> int_column(sqlite3_stmt* st, int i) {
  if (sqlite3_column_type(st, i) == SQLITE_NULL) {
    return std::nullopt;
  }
  return sqlite3_column_int64(st, i);
}

}  // namespace

std::map<std::string, task_result> read_results(const std::filesystem::path& db) {
  db_reader r(db);
  std::map<std::string, task_result> rows;
  r.query(
      "SELECT task_id, state, session_id, error_class, detail, attempts, end_reason, duration_s, "
      "intent, resolution, sentiment, analysis_data, ended_ms, result_source, previous_sessions, "
      "redial_at_ms FROM tasks",
      [&](sqlite3_stmt* st) {
        task_result t;
        t.task_id = text_column(st, 0);
        t.state = std::string(to_string(static_cast<task_state>(sqlite3_column_int(st, 1))));
        t.session_id = text_column(st, 2);
        t.error_class = text_column(st, 3);
        t.detail = text_column(st, 4);
        t.attempts = sqlite3_column_int(st, 5);
        t.end_reason = text_column(st, 6);
        t.duration_s = int_column(st, 7);
        t.intent = text_column(st, 8);
        t.resolution = text_column(st, 9);
        t.sentiment = text_column(st, 10);
        t.analysis_data = text_column(st, 11);
        t.ended_ms = int_column(st, 12);
        t.result_source = text_column(st, 13);
        t.previous_sessions = text_column(st, 14);
        t.redial_at_ms = int_column(st, 15);
        rows.emplace(t.task_id, std::move(t));
      });
  return rows;
}

std::vector<event_row> read_events(const std::filesystem::path& db) {
  db_reader r(db);
  std::vector<event_row> rows;
  r.query(
      "SELECT id, source, event, session_id, campaign, task_id, row_id, verdict, reason "
      "FROM events ORDER BY id",
      [&](sqlite3_stmt* st) {
        event_row e;
        e.id = sqlite3_column_int64(st, 0);
        e.source = text_column(st, 1);
        e.event = text_column(st, 2);
        e.session_id = text_column(st, 3);
        e.campaign = text_column(st, 4);
        e.task_id = text_column(st, 5);
        e.row_id = int_column(st, 6);
        e.verdict = text_column(st, 7);
        e.reason = text_column(st, 8);
        rows.push_back(std::move(e));
      });
  return rows;
}

std::int64_t count_rows(const std::filesystem::path& db, const std::string& table) {
  db_reader r(db);
  std::int64_t n = -1;
  r.query("SELECT count(*) FROM \"" + table + "\"",
          [&](sqlite3_stmt* st) { n = sqlite3_column_int64(st, 0); });
  return n;
}

std::vector<std::string> snapshot_table(const std::filesystem::path& db, const std::string& table) {
  db_reader r(db);
  std::vector<std::string> rows;
  r.query("SELECT * FROM \"" + table + "\" ORDER BY rowid", [&](sqlite3_stmt* st) {
    std::string line;
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      line += i == 0 ? "" : "|";
      line += sqlite3_column_name(st, i);
      line += '=';
      if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        line += "NULL";
      } else {
        line += '\'' + text_column(st, i) + '\'';
      }
    }
    rows.push_back(std::move(line));
  });
  return rows;
}

std::vector<webhook_log_entry> read_webhook_log(const std::filesystem::path& path) {
  std::vector<webhook_log_entry> out;
  std::ifstream in(path);
  std::string line;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    simdjson::dom::element e;
    if (parser.parse(line).get(e) != simdjson::SUCCESS) {
      throw std::runtime_error("bad webhook log line: " + line);
    }
    webhook_log_entry w;
    w.event = get_string(e, "event");
    w.session_id = get_string(e, "sessionId");
    w.task_id = get_string(e, "taskId");
    w.campaign_id = get_string(e, "campaignId");
    w.result = get_string(e, "result");
    w.attempts = static_cast<int>(get_long(e, "attempts"));
    w.status = static_cast<int>(get_long(e, "status"));
    w.end_reason = get_string(e, "endReason");
    w.duration_seconds = get_long(e, "durationSeconds");
    w.intent = get_string(e, "intent");
    w.resolution = get_string(e, "resolution");
    w.sentiment = get_string(e, "sentiment");
    w.ts_ms = get_long(e, "ts_ms");
    w.mono_ns = get_long(e, "mono_ns");
    out.push_back(std::move(w));
  }
  return out;
}

namespace {

void append_json_key(std::string_view key, std::string& out) {
  out += '"';
  for (const char ch : key) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(ch));
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
}

void append_canonical(simdjson::dom::element e, std::string& out) {
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: {
      out += '[';
      bool first = true;
      for (simdjson::dom::element x : e.get_array()) {
        out += first ? "" : ",";
        first = false;
        append_canonical(x, out);
      }
      out += ']';
      return;
    }
    case simdjson::dom::element_type::OBJECT: {
      std::vector<std::pair<std::string_view, simdjson::dom::element>> fields;
      for (auto [k, v] : e.get_object()) {
        fields.emplace_back(k, v);
      }
      std::sort(fields.begin(), fields.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      bool first = true;
      for (const auto& [k, v] : fields) {
        out += first ? "" : ",";
        first = false;
        append_json_key(k, out);
        out += ':';
        append_canonical(v, out);
      }
      out += '}';
      return;
    }
    default:
      out += simdjson::minify(e);
      return;
  }
}

}  // namespace

std::optional<std::string> canonical_json(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(simdjson::padded_string(text)).get(e) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  std::string out;
  append_canonical(e, out);
  return out;
}

namespace {

// A blocking HTTP/1.1 client over one TLS connection: enough to read the simulator's session
// documents after a run.
class tls_client {
 public:
  tls_client(int port, const std::filesystem::path& ca_file) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error("cannot connect to the simulator");
    }
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr || SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr) != 1) {
      throw std::runtime_error("cannot load " + ca_file.string());
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1");
    SSL_set_fd(ssl_, fd_);
    if (SSL_connect(ssl_) != 1) {
      throw std::runtime_error("TLS handshake with the simulator failed");
    }
  }
  ~tls_client() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
    }
    if (ctx_ != nullptr) {
      SSL_CTX_free(ctx_);
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  tls_client(const tls_client&) = delete;
  tls_client& operator=(const tls_client&) = delete;

  // Sends `request` and reads one response with a Content-Length body: (status, body).
  std::pair<int, std::string> exchange(const std::string& request) {
    if (SSL_write(ssl_, request.data(), static_cast<int>(request.size())) <= 0) {
      throw std::runtime_error("TLS write to the simulator failed");
    }
    std::size_t header_end = std::string::npos;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      read_more();
    }
    const std::string head = buffer_.substr(0, header_end);
    if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) {
      throw std::runtime_error("bad response from the simulator: " + head);
    }
    const int status = std::stoi(head.substr(9, 3));
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const std::size_t cl = lower.find("\r\ncontent-length:");
    if (cl == std::string::npos) {
      throw std::runtime_error("simulator response without Content-Length");
    }
    const std::size_t length = std::stoul(head.substr(cl + 17));
    const std::size_t total = header_end + 4 + length;
    while (buffer_.size() < total) {
      read_more();
    }
    std::string body = buffer_.substr(header_end + 4, length);
    buffer_.erase(0, total);
    return {status, std::move(body)};
  }

 private:
  void read_more() {
    char chunk[16384];
    const int n = SSL_read(ssl_, chunk, sizeof chunk);
    if (n <= 0) {
      throw std::runtime_error("TLS read from the simulator failed");
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
};

}  // namespace

std::map<std::string, std::string> fetch_sessions(const simulator& sim,
                                                  const std::vector<std::string>& session_ids) {
  tls_client client(sim.port(), sim.ca_file());
  std::map<std::string, std::string> docs;
  for (const auto& id : session_ids) {
    auto [status, body] =
        client.exchange("GET /api/v1/chat/sessions/" + id +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: " + sim.api_key() + "\r\n\r\n");
    if (status == 200) {
      docs.emplace(id, std::move(body));
    }
  }
  return docs;
}

long vm_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10);
    }
  }
  return -1;
}

std::vector<ledger_entry> simulator::ledger_now() const {
  const std::string text = read_file(dir_ / "ledger.jsonl");
  std::vector<ledger_entry> out;
  simdjson::dom::parser parser;
  std::size_t at = 0;
  // A line without its newline is still being written: left for the next call.
  for (std::size_t nl = text.find('\n'); nl != std::string::npos;
       at = nl + 1, nl = text.find('\n', at)) {
    const std::string line = text.substr(at, nl - at);
    out.push_back(parse_ledger_line(parser, line));
  }
  return out;
}

namespace {

// The body of a chunked message; what it cannot decode it returns as it is.
std::string dechunk(const std::string& raw) {
  std::string out;
  std::size_t at = 0;
  while (at < raw.size()) {
    const std::size_t eol = raw.find("\r\n", at);
    if (eol == std::string::npos) {
      return raw;
    }
    const std::size_t size = std::strtoul(raw.c_str() + at, nullptr, 16);
    if (size == 0) {
      return out;
    }
    if (eol + 2 + size > raw.size()) {
      return raw;
    }
    out.append(raw, eol + 2, size);
    at = eol + 2 + size + 2;
  }
  return out;
}

}  // namespace

http_reply http_request_to(int port, const std::string& method, const std::string& target,
                           const std::string& body, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  http_reply reply;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return reply;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return reply;
  }
  std::string request = method + " " + target +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAccept: */*\r\n";
  if (!body.empty() || method == "POST") {
    request +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  std::string_view left = request;
  while (!left.empty()) {
    const ssize_t n = ::send(fd, left.data(), left.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      ::close(fd);
      return reply;
    }
    left.remove_prefix(static_cast<std::size_t>(n));
  }
  std::string raw;
  char buf[16384];
  for (;;) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
    if (ms <= 0) {
      ::close(fd);
      return reply;  // no complete answer in time
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(ms)) <= 0) {
      continue;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      ::close(fd);
      return reply;
    }
    if (n == 0) {
      break;
    }
    raw.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const std::size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || raw.compare(0, 5, "HTTP/") != 0 || raw.size() < 12) {
    return reply;
  }
  std::string head = raw.substr(0, header_end);
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string content = raw.substr(header_end + 4);
  if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
    content = dechunk(content);
  } else if (const std::size_t cl = head.find("\r\ncontent-length:"); cl != std::string::npos) {
    const std::size_t length = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
    if (content.size() < length) {
      return reply;  // cut short
    }
    content.resize(length);
  }
  reply.status = std::atoi(raw.c_str() + 9);
  reply.body = std::move(content);
  return reply;
}

bool wait_ready(int port, child_process& process, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process.running()) {
      return false;
    }
    if (http_request_to(port, "GET", "/readyz", "", std::chrono::milliseconds(1000)).status ==
        200) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

run_result run_dialerctl(const temp_dir& dir, const std::vector<std::string>& args,
                         std::chrono::seconds timeout) {
  std::vector<std::string> argv = {DIALERCTL_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  run_result r;
  {
    child_process p(argv, dir / "dialerctl.out", dir / "dialerctl.err");
    const auto code = p.wait_for(timeout);
    r.exit_code = code ? *code : -1;
  }
  r.out = read_file(dir / "dialerctl.out");
  r.err = read_file(dir / "dialerctl.err");
  return r;
}

}  // namespace dialer::test
