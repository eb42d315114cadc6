// The webhook loop end to end: the real dialerd with its webhook listener against the real
// agentix-sim delivering session.created / session.ended to it over 127.0.0.1. Each test checks
// what dialerd recorded (tasks, results, events) against what the simulator placed (its ledger),
// delivered (its webhook log) and holds (its session documents), and the abuse test talks to the
// listener with raw sockets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/harness.hpp"

namespace dialer::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* hook_path = "/webhooks/agentix";
constexpr const char* shared_secret = "itest-shared-secret-0123456789";
constexpr const char* signing_secret = "itest-signing-secret-abcdefghijkl";

enum class auth { none, shared_secret, signature, both };

bool uses_secret(auth a) {
  return a == auth::shared_secret || a == auth::both;
}
bool uses_signature(auth a) {
  return a == auth::signature || a == auth::both;
}

// The simulator's side of the loop: where to deliver, how to authenticate, where to log.
std::vector<std::string> webhook_sim_args(const temp_dir& dir, int hook_port, auth a,
                                          std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"--webhook-url",
                                   "http://127.0.0.1:" + std::to_string(hook_port) + hook_path,
                                   "--webhook-log", (dir / "webhooks.jsonl").string()};
  if (uses_secret(a)) {
    write_file(dir / "hook.secret", std::string(shared_secret) + "\n");
    args.insert(args.end(), {"--webhook-secret-file", (dir / "hook.secret").string()});
  }
  if (uses_signature(a)) {
    write_file(dir / "hook.signing", std::string(signing_secret) + "\n");
    args.insert(args.end(), {"--webhook-signing-secret-file", (dir / "hook.signing").string()});
  }
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// dialerd's side: the listener, the same secrets (files written by webhook_sim_args), `extra`
// more keys of `webhooks:`, and quick settling so lost session.ended events cost seconds.
std::string webhook_daemon_yaml(const temp_dir& dir, int hook_port, auth a,
                                const std::string& extra = "") {
  // The control listener takes any free port, so tests can run side by side.
  std::string y = "listen: {webhooks: \"127.0.0.1:" + std::to_string(hook_port) +
                  "\", control: \"127.0.0.1:0\"}\n" + "webhooks:\n  path: " + hook_path + "\n";
  if (uses_secret(a)) {
    y += "  secret_files: [" + (dir / "hook.secret").string() + "]\n";
  }
  if (uses_signature(a)) {
    y += "  signing_secret_files: [" + (dir / "hook.signing").string() + "]\n";
  }
  y += extra;
  y += "settle: {attempts: 5, first_delay: 200ms, max_delay: 1s}\n";
  return y;
}

std::vector<std::string> session_ids_of(const std::map<std::string, task_result>& results) {
  std::vector<std::string> ids;
  for (const auto& [id, t] : results) {
    if (!t.session_id.empty()) {
      ids.push_back(t.session_id);
    }
  }
  return ids;
}

// The result the simulator holds for a session, as the store should keep it.
struct sim_result {
  std::string end_reason;
  std::int64_t duration_s = -1;
  std::string intent;
  std::string resolution;
  std::string sentiment;
  std::string analysis_data;  // canonical JSON
};

std::optional<sim_result> parse_session_doc(const std::string& doc) {
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(doc).get(e) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  std::string_view status;
  if (e["status"].get_string().get(status) != simdjson::SUCCESS || status != "ended") {
    return std::nullopt;
  }
  sim_result r;
  std::string_view v;
  int64_t n = 0;
  if (e["endReason"].get_string().get(v) == simdjson::SUCCESS) {
    r.end_reason = v;
  }
  if (e["durationSeconds"].get_int64().get(n) == simdjson::SUCCESS) {
    r.duration_s = n;
  }
  simdjson::dom::element a;
  if (e["analysis"].get(a) == simdjson::SUCCESS) {
    if (a["intent"].get_string().get(v) == simdjson::SUCCESS) {
      r.intent = v;
    }
    if (a["resolution"].get_string().get(v) == simdjson::SUCCESS) {
      r.resolution = v;
    }
    if (a["sentiment"].get_string().get(v) == simdjson::SUCCESS) {
      r.sentiment = v;
    }
    simdjson::dom::element data;
    if (a["data"].get(data) == simdjson::SUCCESS) {
      r.analysis_data = canonical_json(simdjson::minify(data)).value_or("?");
    }
  }
  return r;
}

// Collects mismatches instead of failing 2,000 times; the first few are printed.
class mismatches {
 public:
  void add(const std::string& what) {
    ++count_;
    if (shown_.size() < 15) {
      shown_.push_back(what);
    }
  }
  [[nodiscard]] int count() const { return count_; }
  [[nodiscard]] std::string text() const {
    std::string s;
    for (const auto& m : shown_) {
      s += "  " + m + "\n";
    }
    return s;
  }

 private:
  int count_ = 0;
  std::vector<std::string> shown_;
};

// Every task ENDED with the session the simulator placed for it and exactly the result the
// simulator holds for that session.
void expect_results_equal_sim(const std::map<std::string, task_result>& results,
                              const std::map<std::string, std::string>& docs,
                              const std::vector<ledger_entry>& ledger, std::size_t expected) {
  ASSERT_EQ(results.size(), expected);
  std::map<std::string, const ledger_entry*> last_call;
  for (const auto& e : ledger) {
    last_call[e.task_id] = &e;
  }
  mismatches m;
  for (const auto& [id, t] : results) {
    const std::string who = id + " (" + t.session_id + "): ";
    if (t.state != "ended") {
      m.add(who + "state " + t.state + " " + t.error_class + " " + t.detail);
      continue;
    }
    const auto placed = last_call.find(id);
    if (placed == last_call.end() || placed->second->session_id != t.session_id) {
      m.add(who + "not the session the simulator placed last for the task");
      continue;
    }
    const auto doc = docs.find(t.session_id);
    const auto sim = doc == docs.end() ? std::nullopt : parse_session_doc(doc->second);
    if (!sim) {
      m.add(who + "the simulator has no ended session document");
      continue;
    }
    if (t.end_reason != sim->end_reason || t.end_reason != placed->second->end_reason) {
      m.add(who + "end_reason " + t.end_reason + ", simulator " + sim->end_reason);
    }
    if (t.duration_s.value_or(-1) != sim->duration_s) {
      m.add(who + "duration_s " + std::to_string(t.duration_s.value_or(-1)) + ", simulator " +
            std::to_string(sim->duration_s));
    }
    if (t.intent != sim->intent || t.resolution != sim->resolution ||
        t.sentiment != sim->sentiment) {
      m.add(who + "analysis " + t.intent + "/" + t.resolution + "/" + t.sentiment + ", simulator " +
            sim->intent + "/" + sim->resolution + "/" + sim->sentiment);
    }
    if (canonical_json(t.analysis_data).value_or("<not JSON: " + t.analysis_data + ">") !=
        sim->analysis_data) {
      m.add(who + "analysis_data " + t.analysis_data + ", simulator " + sim->analysis_data);
    }
    if (!t.ended_ms) {
      m.add(who + "no ended_ms");
    }
  }
  EXPECT_EQ(m.count(), 0) << m.text();
}

std::map<std::string, int> ledger_count_by_task(const std::vector<ledger_entry>& ledger) {
  std::map<std::string, int> n;
  for (const auto& e : ledger) {
    ++n[e.task_id];
  }
  return n;
}

// ---- Raw HTTP for the abuse test. ----

// A blocking TCP connection from `from` (any 127/8 address) to 127.0.0.1:port.
int connect_from(const char* from, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    throw std::runtime_error("socket failed");
  }
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, from, &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  remote.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("cannot connect from ") + from);
  }
  return fd;
}

// Sends what it can (the server may close early, e.g. after a 413); never raises SIGPIPE.
void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Reads until EOF, a reset, or `timeout`.
std::string read_until_close(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[8192];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return out;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return out;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return out;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

int status_of(const std::string& response) {
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) {
    return 0;
  }
  return std::atoi(response.c_str() + 9);
}

struct reply {
  int status = 0;
  std::string text;
};

reply http_exchange(int port, std::string_view bytes, const char* from = "127.0.0.1") {
  const int fd = connect_from(from, port);
  send_all(fd, bytes);
  reply r;
  r.text = read_until_close(fd, 5s);
  r.status = status_of(r.text);
  ::close(fd);
  return r;
}

using header_list = std::vector<std::pair<std::string, std::string>>;

std::string post_request(const std::string& body, const header_list& headers) {
  std::string r = std::string("POST ") + hook_path +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Connection: close\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : headers) {
    r += name + ": " + value + "\r\n";
  }
  r += "\r\n";
  r += body;
  return r;
}

// Computed here with OpenSSL, independently of the dialer's verifier.
std::string signature_header(std::string_view secret, std::int64_t t, std::string_view body) {
  const std::string message = std::to_string(t) + "." + std::string(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  std::string hex = "t=" + std::to_string(t) + ",v1=";
  static constexpr char digits[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    hex += digits[mac[i] >> 4];
    hex += digits[mac[i] & 15];
  }
  return hex;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ended_body(const std::string& session_id, const std::string& task_id,
                       const std::string& intent) {
  return R"({"event":"session.ended","sessionId":")" + session_id +
         R"(","timestamp":"2026-11-28T10:15:02Z","metadata":{"agentId":")" + default_agent_id +
         R"(","phoneNumberId":")" + default_phone_number_id +
         R"(","sessionVariables":{"taskId":")" + task_id +
         R"(","campaignId":"it-campaign"}},"durationSeconds":73,"endReason":"completed",)" +
         R"("analysis":{"intent":")" + intent +
         R"(","resolution":"resolved","sentiment":"positive",)" +
         R"("data":{"preferred_time":"evenings"}}})";
}

// Both credentials dialerd wants, for `body`, signed at `t`.
header_list good_auth(const std::string& body, std::int64_t t = unix_now()) {
  return {{"X-Agentix-Webhook-Secret", shared_secret},
          {"X-Agentix-Signature", signature_header(signing_secret, t, body)}};
}

// The store as a whole: every task row and the events table.
struct store_snapshot {
  std::vector<std::string> tasks;
  std::int64_t events = 0;
  friend bool operator==(const store_snapshot&, const store_snapshot&) = default;
};

store_snapshot snapshot(const temp_dir& dir) {
  return {snapshot_table(dir / "state.db", "tasks"), count_rows(dir / "state.db", "events")};
}

// ---------------------------------------------------------------------------------------------

TEST(webhooks, signed_webhooks_end_every_call_with_exactly_the_results_the_simulator_sent) {
  temp_dir dir;
  const int hook_port = pick_free_port();
  simulator sim(
      dir,
      {.call_duration = "20ms..400ms",
       .extra_args = webhook_sim_args(
           dir, hook_port, auth::signature,
           {"--end-reasons", "completed=0.6,no_answer=0.2,busy=0.1,voicemail=0.05,failed=0.05"})});
  dialer_setup setup{.tasks = 2000,
                     .rate = "1000/s",
                     .burst = 50,
                     .concurrency = 50,
                     .max_duration = "3s",
                     .slot_grace = "1s",
                     .extra_daemon_yaml = webhook_daemon_yaml(dir, hook_port, auth::signature)};
  const auto config = write_dialer_config(dir, sim, setup);

  const run_result r = run_dialerd(dir, config, {}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto results = read_results(dir / "state.db");
  const auto docs = fetch_sessions(sim, session_ids_of(results));
  sim.stop();

  const sim_stats& s = sim.stats();
  EXPECT_EQ(s.placed, 2000);
  EXPECT_EQ(s.duplicates_by_task_id, 0);
  EXPECT_LE(s.max_active, 50);
  // Slots are freed by session.ended, not by max_duration: the cap binds, the rate does not.
  EXPECT_GE(s.max_active, 45);
  expect_results_equal_sim(results, docs, sim.ledger(), 2000);

  int not_by_webhook = 0;
  for (const auto& [id, t] : results) {
    not_by_webhook += t.result_source != "webhook";
  }
  EXPECT_EQ(not_by_webhook, 0);

  // Each session.ended the simulator delivered was answered 200 and is what the store holds.
  const auto log = read_webhook_log(dir / "webhooks.jsonl");
  std::map<std::string, const task_result*> by_session;
  for (const auto& [id, t] : results) {
    by_session[t.session_id] = &t;
  }
  mismatches m;
  int ended_delivered = 0;
  for (const auto& w : log) {
    if (w.result != "delivered" || w.status != 200) {
      m.add(w.event + " " + w.session_id + ": " + w.result + " status " + std::to_string(w.status));
      continue;
    }
    if (w.event != "session.ended") {
      continue;
    }
    ++ended_delivered;
    const auto it = by_session.find(w.session_id);
    if (it == by_session.end()) {
      m.add("delivered session.ended " + w.session_id + " matches no task");
      continue;
    }
    const task_result& t = *it->second;
    if (t.end_reason != w.end_reason || t.duration_s.value_or(-1) != w.duration_seconds ||
        t.intent != w.intent || t.resolution != w.resolution || t.sentiment != w.sentiment) {
      m.add(t.task_id + ": store " + t.end_reason + "/" + t.intent + "/" + t.sentiment +
            ", webhook " + w.end_reason + "/" + w.intent + "/" + w.sentiment);
    }
  }
  EXPECT_EQ(m.count(), 0) << m.text();
  EXPECT_EQ(ended_delivered, 2000);

  int applied_ended = 0;
  for (const auto& e : read_events(dir / "state.db")) {
    applied_ended += e.event == "session.ended" && e.source == "webhook" && e.verdict == "applied";
  }
  EXPECT_EQ(applied_ended, 2000);
  EXPECT_NE(r.out.find("ended            2000"), std::string::npos) << r.out;
}

TEST(webhooks, lost_duplicated_and_reordered_webhooks_still_end_every_task_once) {
  temp_dir dir;
  const int hook_port = pick_free_port();
  simulator sim(
      dir, {.call_duration = "20ms..400ms",
            .extra_args = webhook_sim_args(
                dir, hook_port, auth::shared_secret,
                {"--webhook-lose", "0.1", "--webhook-duplicate", "0.1", "--webhook-delay",
                 "0ms..300ms", "--end-reasons", "completed=0.7,no_answer=0.2,voicemail=0.1"})});
  dialer_setup setup{.tasks = 1000,
                     .rate = "1000/s",
                     .burst = 50,
                     .concurrency = 50,
                     .max_duration = "3s",
                     .slot_grace = "1s",
                     .extra_daemon_yaml = webhook_daemon_yaml(dir, hook_port, auth::shared_secret)};
  const auto config = write_dialer_config(dir, sim, setup);

  const run_result r = run_dialerd(dir, config, {}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto results = read_results(dir / "state.db");
  const auto docs = fetch_sessions(sim, session_ids_of(results));
  sim.stop();

  const sim_stats& s = sim.stats();
  EXPECT_EQ(s.placed, 1000);
  EXPECT_EQ(s.duplicates_by_task_id, 0);
  EXPECT_LE(s.max_active, 50);
  for (const auto& [task, n] : ledger_count_by_task(sim.ledger())) {
    ASSERT_EQ(n, 1) << task << " was placed " << n << " times";
  }
  expect_results_equal_sim(results, docs, sim.ledger(), 1000);

  // The faults happened: some session.ended lost, some duplicated, some overtaken by the
  // session.ended of the same call.
  const auto log = read_webhook_log(dir / "webhooks.jsonl");
  std::set<std::string> ended_lost;
  std::set<std::string> ended_delivered;
  std::map<std::string, std::int64_t> created_at;
  std::map<std::string, std::int64_t> ended_at;
  int duplicates = 0;
  for (const auto& w : log) {
    const bool ok =
        (w.result == "delivered" || w.result == "duplicate_delivered") && w.status == 200;
    duplicates += w.result == "duplicate_delivered";
    if (w.event == "session.ended") {
      if (w.result == "lost") {
        ended_lost.insert(w.task_id);
      } else if (ok) {
        ended_delivered.insert(w.task_id);
        if (w.result == "delivered") {
          ended_at[w.session_id] = w.mono_ns;
        }
      }
    } else if (ok && w.result == "delivered") {
      created_at[w.session_id] = w.mono_ns;
    }
  }
  int reordered = 0;
  for (const auto& [sid, at] : ended_at) {
    reordered += created_at.count(sid) && created_at[sid] > at;
  }
  EXPECT_GT(ended_lost.size(), 40u);
  EXPECT_GT(duplicates, 40);
  EXPECT_GT(reordered, 0);

  // Lost session.ended ⇔ settled by the session API; everything else by its webhook.
  mismatches m;
  std::set<std::string> pulled;
  for (const auto& [id, t] : results) {
    if (t.result_source == "pull") {
      pulled.insert(id);
    } else if (t.result_source != "webhook") {
      m.add(id + ": result_source '" + t.result_source + "'");
    } else if (!ended_delivered.count(id)) {
      m.add(id + ": result_source webhook, but the simulator delivered no session.ended");
    }
  }
  EXPECT_EQ(m.count(), 0) << m.text();
  EXPECT_EQ(pulled, ended_lost);

  // dialerd's own accounting agrees with the simulator's.
  int webhook_ended = 0;
  int pull_ended = 0;
  for (const auto& e : read_events(dir / "state.db")) {
    if (e.event == "session.ended" && e.verdict == "applied") {
      webhook_ended += e.source == "webhook";
      pull_ended += e.source == "pull";
    }
  }
  EXPECT_EQ(pull_ended, static_cast<int>(ended_lost.size()));
  EXPECT_EQ(webhook_ended + pull_ended, s.placed);
  EXPECT_NE(r.out.find("ended            1000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unconfirmed         0"), std::string::npos) << r.out;
  const long lost_lines =
      std::count_if(log.begin(), log.end(), [](const auto& w) { return w.result == "lost"; });
  EXPECT_EQ(s.webhooks.at("lost"), lost_lines);
}

TEST(webhooks, ambiguous_requests_are_reconciled_by_session_created_and_end_without_redial) {
  temp_dir dir;
  const int hook_port = pick_free_port();
  simulator sim(dir, {.call_duration = "20ms..300ms",
                      .extra_args = webhook_sim_args(
                          dir, hook_port, auth::signature,
                          {"--fault-500-after-place", "0.1", "--fault-drop-after-place", "0.1",
                           "--webhook-delay", "0ms..50ms"})});
  dialer_setup setup{.tasks = 1000,
                     .rate = "1000/s",
                     .burst = 50,
                     .concurrency = 50,
                     .max_duration = "3s",
                     .slot_grace = "1s",
                     .extra_daemon_yaml = webhook_daemon_yaml(dir, hook_port, auth::signature,
                                                              "  allow_from: [127.0.0.1/32]\n")};
  const auto config = write_dialer_config(dir, sim, setup);

  const run_result r = run_dialerd(dir, config, {}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto results = read_results(dir / "state.db");
  const auto docs = fetch_sessions(sim, session_ids_of(results));
  sim.stop();

  const sim_stats& s = sim.stats();
  EXPECT_GT(s.faults.at("500_after_place"), 0);
  EXPECT_GT(s.faults.at("drop_after_place"), 0);
  EXPECT_EQ(s.duplicates_by_task_id, 0);
  EXPECT_LE(s.max_active, 50);
  for (const auto& [task, n] : ledger_count_by_task(sim.ledger())) {
    ASSERT_EQ(n, 1) << task << " was placed " << n << " times";
  }
  // Every fault here places the call first, so every task was placed, and every one must end
  // ENDED with the session the simulator gave it: none left UNKNOWN.
  EXPECT_EQ(s.placed, 1000);
  expect_results_equal_sim(results, docs, sim.ledger(), 1000);

  int reconciled = 0;
  for (const auto& [id, t] : results) {
    reconciled += t.detail == "ambiguous request reconciled by session.created";
  }
  // The UNKNOWN → STARTED path was taken (the rest of the ambiguous ones were learned from a
  // session.created that overtook the failed response).
  EXPECT_GT(reconciled, 0);
  EXPECT_LE(reconciled, s.faults.at("500_after_place") + s.faults.at("drop_after_place"));
}

TEST(webhooks, refused_requests_change_nothing_while_valid_ones_get_through) {
  temp_dir dir;
  const int hook_port = pick_free_port();
  // Four 30 s calls: all STARTED while the listener is abused, then SIGTERM.
  simulator sim(
      dir, {.call_duration = "30s", .extra_args = webhook_sim_args(dir, hook_port, auth::both)});
  dialer_setup setup{.tasks = 4,
                     .rate = "100/s",
                     .burst = 4,
                     .concurrency = 4,
                     .max_duration = "60s",
                     .slot_grace = "1s",
                     .extra_daemon_yaml = webhook_daemon_yaml(dir, hook_port, auth::both,
                                                              "  allow_from: [127.0.0.1/32]\n"
                                                              "  signature_tolerance: 60s\n"
                                                              "  max_body_size: 4KiB\n"
                                                              "  max_header_size: 2KiB\n"
                                                              "  header_timeout: 500ms\n"
                                                              "  body_timeout: 500ms\n")};
  const auto config = write_dialer_config(dir, sim, setup);
  child_process dialerd({DIALERD_PATH, "--config", config.string()}, dir / "dialerd.out",
                        dir / "dialerd.err");

  // Wait for four STARTED tasks and a store that has stopped moving (session.created arrived).
  std::map<std::string, task_result> started;
  const auto start_deadline = std::chrono::steady_clock::now() + 20s;
  store_snapshot before;
  while (true) {
    ASSERT_TRUE(dialerd.running()) << read_file(dir / "dialerd.err");
    ASSERT_LT(std::chrono::steady_clock::now(), start_deadline) << read_file(dir / "dialerd.err");
    std::this_thread::sleep_for(300ms);
    try {
      started = read_results(dir / "state.db");
    } catch (const std::exception&) {
      continue;  // not created yet
    }
    const bool all_started = started.size() == 4 &&
                             std::all_of(started.begin(), started.end(),
                                         [](const auto& t) { return t.second.state == "started"; });
    if (!all_started) {
      continue;
    }
    const store_snapshot current = snapshot(dir);
    if (current == before) {
      break;
    }
    before = current;
  }
  const std::string sid1 = started.at("T-000001").session_id;
  const std::string sid2 = started.at("T-000002").session_id;
  const std::string sid3 = started.at("T-000003").session_id;

  // A complete, valid-looking session.ended for T-000002: each refusal below would end it.
  const std::string body2 = ended_body(sid2, "T-000002", "itest_after_abuse");
  const std::int64_t now = unix_now();
  const auto with = [&](header_list h) { return post_request(body2, h); };
  struct refusal {
    const char* what;
    std::string request;
    const char* from;
    int status;
  };
  std::string big_body = body2;
  big_body.insert(big_body.size() - 1, ",\"pad\":\"" + std::string(8192, 'x') + "\"");
  header_list big_header = good_auth(body2);
  big_header.emplace_back("X-Pad", std::string(3000, 'p'));
  const std::vector<refusal> refusals = {
      {"address not allowed", with(good_auth(body2)), "127.0.0.2", 403},
      {"no shared secret", with({good_auth(body2)[1]}), "127.0.0.1", 401},
      {"wrong shared secret",
       with({{"X-Agentix-Webhook-Secret", "itest-shared-secret-0123456780"}, good_auth(body2)[1]}),
       "127.0.0.1", 401},
      {"no signature", with({good_auth(body2)[0]}), "127.0.0.1", 401},
      {"signed with another key",
       with({good_auth(body2)[0],
             {"X-Agentix-Signature", signature_header("another-signing-secret-xyz", now, body2)}}),
       "127.0.0.1", 401},
      {"signature of another body",
       with({good_auth(body2)[0],
             {"X-Agentix-Signature", signature_header(signing_secret, now, body2 + " ")}}),
       "127.0.0.1", 401},
      {"stale timestamp (now - 600 s)", with(good_auth(body2, now - 600)), "127.0.0.1", 401},
      {"future timestamp (now + 600 s)", with(good_auth(body2, now + 600)), "127.0.0.1", 401},
      {"body over max_body_size", post_request(big_body, good_auth(big_body)), "127.0.0.1", 413},
      {"header over max_header_size", post_request(body2, big_header), "127.0.0.1", 431},
  };
  for (const auto& f : refusals) {
    const reply rep = http_exchange(hook_port, f.request, f.from);
    EXPECT_EQ(rep.status, f.status) << f.what << ":\n" << rep.text;
    if (std::string_view(f.what).starts_with("stale")) {
      EXPECT_NE(rep.text.find("stale_signature"), std::string::npos) << rep.text;
    }
  }
  EXPECT_TRUE(snapshot(dir) == before) << "a refused request changed the store";

  // Slowloris: 20 connections trickle a valid request for T-000003 a byte every 50 ms. Each
  // must get 408 once header_timeout (500 ms) has passed, not be served; meanwhile a valid
  // session.ended for T-000001 is applied.
  const std::string trickled =
      post_request(ended_body(sid3, "T-000003", "itest_slowloris"),
                   good_auth(ended_body(sid3, "T-000003", "itest_slowloris")));
  struct slow {
    int fd = -1;
    std::chrono::steady_clock::time_point opened;
    std::size_t sent = 0;
    std::string answer;
    std::chrono::milliseconds answered_after{0};
    bool done = false;
  };
  std::vector<slow> slows;
  for (int i = 0; i < 20; ++i) {
    slow c;
    c.fd = connect_from("127.0.0.1", hook_port);
    c.opened = std::chrono::steady_clock::now();
    slows.push_back(std::move(c));
  }
  reply valid;
  const auto slow_deadline = std::chrono::steady_clock::now() + 5s;
  for (int tick = 0; std::chrono::steady_clock::now() < slow_deadline; ++tick) {
    bool all_done = true;
    for (auto& c : slows) {
      if (c.done) {
        continue;
      }
      pollfd p{c.fd, POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) {
        c.answer = read_until_close(c.fd, 2s);
        c.answered_after = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - c.opened);
        c.done = true;
        ::close(c.fd);
        continue;
      }
      all_done = false;
      if (c.sent < trickled.size()) {
        send_all(c.fd, std::string_view(trickled).substr(c.sent++, 1));
      }
    }
    if (tick == 4) {
      const std::string body1 = ended_body(sid1, "T-000001", "itest_during_slowloris");
      valid = http_exchange(hook_port, post_request(body1, good_auth(body1)));
    }
    if (all_done) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(valid.status, 200) << valid.text;
  EXPECT_NE(valid.text.find("applied"), std::string::npos) << valid.text;
  for (auto& c : slows) {
    if (!c.done) {
      ::close(c.fd);
    }
    EXPECT_TRUE(c.done) << "a trickling connection was neither answered nor closed in 5 s";
    EXPECT_EQ(status_of(c.answer), 408) << c.answer;
    EXPECT_GE(c.answered_after, 450ms);
    EXPECT_LE(c.answered_after, 2000ms);
  }
  {
    const auto now_results = read_results(dir / "state.db");
    const task_result& t1 = now_results.at("T-000001");
    EXPECT_EQ(t1.state, "ended");
    EXPECT_EQ(t1.intent, "itest_during_slowloris");
    EXPECT_EQ(t1.result_source, "webhook");
    EXPECT_EQ(now_results.at("T-000002").state, "started");
    EXPECT_EQ(now_results.at("T-000003").state, "started");
  }
  const store_snapshot after_slowloris = snapshot(dir);
  EXPECT_EQ(after_slowloris.events, before.events + 1);
  {
    // Only T-000001's row moved.
    std::size_t changed = 0;
    ASSERT_EQ(after_slowloris.tasks.size(), before.tasks.size());
    for (std::size_t i = 0; i < before.tasks.size(); ++i) {
      changed += after_slowloris.tasks[i] != before.tasks[i];
    }
    EXPECT_EQ(changed, 1u);
  }

  // 200 oversized or garbage requests: the daemon's memory stays where it was.
  const long rss_before = vm_rss_kib(dialerd.pid());
  ASSERT_GT(rss_before, 0);
  std::string huge_header = "POST " + std::string(hook_path) +
                            " HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(20000, 'h') +
                            "\r\n\r\n";
  std::string huge_body = post_request(std::string(64 * 1024, '{'), good_auth(body2));
  std::string garbage;
  for (int i = 0; i < 4096; ++i) {
    garbage += static_cast<char>((i * 7919 + 13) % 256);
  }
  std::map<int, int> statuses;
  for (int i = 0; i < 200; ++i) {
    const std::string& req = i % 4 == 0   ? huge_header
                             : i % 4 == 1 ? huge_body
                             : i % 4 == 2 ? garbage
                                          : with({{"X-Agentix-Webhook-Secret", "nope"}});
    ++statuses[http_exchange(hook_port, req).status];
  }
  std::this_thread::sleep_for(1500ms);  // lingering connections are gone
  const long rss_after = vm_rss_kib(dialerd.pid());
  EXPECT_EQ(statuses[431], 50);
  EXPECT_EQ(statuses[413], 50);
  EXPECT_EQ(statuses[400], 50);
  EXPECT_EQ(statuses[401], 50);
  EXPECT_LE(rss_after - rss_before, 4 * 1024)
      << "VmRSS " << rss_before << " kB → " << rss_after << " kB";
  EXPECT_TRUE(snapshot(dir) == after_slowloris) << "an abusive request changed the store";

  // The listener still works, and the body every refusal carried is accepted when it is
  // authenticated: the refusals were about who sent it.
  const reply last = http_exchange(hook_port, with(good_auth(body2)));
  EXPECT_EQ(last.status, 200) << last.text;
  EXPECT_EQ(read_results(dir / "state.db").at("T-000002").intent, "itest_after_abuse");

  dialerd.signal(SIGTERM);
  EXPECT_EQ(dialerd.wait_for(15s), 0) << read_file(dir / "dialerd.err");
  sim.stop();
  EXPECT_EQ(sim.stats().placed, 4);
}

TEST(webhooks, no_answer_and_busy_are_redialed_after_redial_after_up_to_max_attempts) {
  temp_dir dir;
  const int hook_port = pick_free_port();
  simulator sim(dir, {.call_duration = "20ms..200ms",
                      .extra_args = webhook_sim_args(
                          dir, hook_port, auth::shared_secret,
                          {"--end-reasons", "no_answer=0.5,busy=0.2,completed=0.3"})});
  dialer_setup setup{.tasks = 300,
                     .rate = "1000/s",
                     .burst = 50,
                     .concurrency = 50,
                     .max_duration = "3s",
                     .slot_grace = "1s",
                     .max_attempts = 3,
                     .extra_retry_yaml = ", redial_on: [no_answer, busy], redial_after: 1s",
                     .extra_daemon_yaml = webhook_daemon_yaml(dir, hook_port, auth::shared_secret)};
  const auto config = write_dialer_config(dir, sim, setup);

  const run_result r = run_dialerd(dir, config, {}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto results = read_results(dir / "state.db");
  const auto docs = fetch_sessions(sim, session_ids_of(results));
  sim.stop();
  EXPECT_LE(sim.stats().max_active, 50);
  expect_results_equal_sim(results, docs, sim.ledger(), 300);

  std::map<std::string, std::vector<const ledger_entry*>> calls;
  for (const auto& e : sim.ledger()) {
    calls[e.task_id].push_back(&e);
  }
  ASSERT_EQ(calls.size(), 300u);
  mismatches m;
  std::map<std::size_t, int> tasks_by_calls;
  for (auto& [id, list] : calls) {
    std::sort(list.begin(), list.end(),
              [](const auto* a, const auto* b) { return a->mono_ns < b->mono_ns; });
    ++tasks_by_calls[list.size()];
    const task_result& t = results.at(id);
    if (list.size() > 3) {
      m.add(id + ": " + std::to_string(list.size()) + " calls");
    }
    std::set<std::string> keys;
    std::string previous;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const ledger_entry& c = *list[i];
      keys.insert(c.idempotency_key);
      if (c.idempotency_key != "it-campaign:" + id + ":" + std::to_string(i + 1)) {
        m.add(id + ": call " + std::to_string(i + 1) + " has Idempotency-Key " + c.idempotency_key);
      }
      if (i + 1 < list.size()) {
        if (c.end_reason != "no_answer" && c.end_reason != "busy") {
          m.add(id + ": redialed after " + c.end_reason);
        }
        // The redial is due redial_after after the store recorded the end, which is after the
        // call ended at the simulator (placement + duration). 2 ms of slack: the ledger's
        // duration is truncated to ms and the store keeps due times in wall-clock ms.
        const ledger_entry& next = *list[i + 1];
        const std::int64_t ended_ns = c.mono_ns + c.duration_ms * 1'000'000;
        const std::int64_t gap_ms = (next.mono_ns - ended_ns) / 1'000'000;
        if (next.mono_ns < ended_ns + 1'000'000'000 - 2'000'000) {
          m.add(id + ": call " + std::to_string(i + 2) + " placed " + std::to_string(gap_ms) +
                " ms after call " + std::to_string(i + 1) + " ended");
        }
        previous += (previous.empty() ? "" : ",") + c.session_id;
      }
    }
    if (keys.size() != list.size()) {
      m.add(id + ": repeated Idempotency-Key");
    }
    const ledger_entry& last = *list.back();
    if ((last.end_reason == "no_answer" || last.end_reason == "busy") && list.size() != 3) {
      m.add(id + ": last call " + last.end_reason + " after only " + std::to_string(list.size()) +
            " call(s)");
    }
    if (t.attempts != static_cast<int>(list.size())) {
      m.add(id + ": store attempts " + std::to_string(t.attempts) + ", simulator calls " +
            std::to_string(list.size()));
    }
    if (t.previous_sessions != previous) {
      m.add(id + ": previous_sessions '" + t.previous_sessions + "', expected '" + previous + "'");
    }
  }
  EXPECT_EQ(m.count(), 0) << m.text();
  // With these weights every count of calls occurs (P(1 call) = 0.3, P(3 calls) = 0.49).
  EXPECT_GT(tasks_by_calls[1], 0);
  EXPECT_GT(tasks_by_calls[2], 0);
  EXPECT_GT(tasks_by_calls[3], 0);
  EXPECT_EQ(sim.stats().duplicates_by_task_id,
            static_cast<long>(sim.ledger().size()) - 300);  // each redial, and nothing else
}

}  // namespace
}  // namespace dialer::test
