// Webhooks handled per second with durable recording: the daemon's webhook_service and its
// sqlite_store on one core, a keep-alive load generator on the other. bench/webhooks.sh runs it;
// bench/README.md ("Webhooks") has the method and the figures.
//
//   webhook_bench --dir DIR [--tasks N] [--events N] [--seconds S] [--connections K]
//                 [--sync full|normal] [--auth none|hmac] [--daemon-core C] [--load-core C]
//                 [--session-ids random|sequential] [--json FILE]
//                 [--perf-control CTL_FIFO[,ACK_FIFO]]
//
// --session-ids sequential: ids that sort in task order, so the store's session index (tasks_live)
// loses neighbouring entries in each commit, as when few calls are live; the default, random
// UUIDs over N STARTED tasks, dirties about one index page per event.
//
// --perf-control: the fifos of `perf record -D -1 --control fifo:CTL,ACK`; "enable" is sent just
// before the first request and "disable" after the last answer, so the profile holds the timed
// window only (not the set-up).
//
// Threads, and where they run (the daemon's loop and its store writer share the daemon's core):
//   wh-loop   the io_context: webhook_service, http_server, the store's completions — daemon core
//   wh-store  sqlite_store's writer (it inherits the daemon core: the store is constructed while
//             the main thread is pinned there; named from the first completion it posts)
//   wh-load   the main thread: set-up client, then the load generator — load core
//
// Exit status: 0 when every event was answered 200 "applied" and the database, read back through
// a read-only SQLite connection after the store closed, holds exactly those tasks ENDED with the
// posted end reason and duration (and every other task still STARTED); 1 when that check fails;
// 2 on bad arguments or a failed set-up.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/log.hpp"
#include "core/sqlite_store.hpp"
#include "core/time.hpp"
#include "core/webhook_auth.hpp"
#include "webhooks/webhook_service.hpp"

namespace dialer {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

struct options {
  fs::path dir;
  int tasks = 200000;
  int events = 0;  // 0: one per task
  double seconds = 30;
  int connections = 64;
  bool sync_full = true;
  bool sign = false;
  int daemon_core = 1;  // -1: not pinned
  int load_core = 0;
  std::string json_path;
  std::string perf_control;
  bool sequential_session_ids = false;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "webhook_bench: %s\nusage: webhook_bench --dir DIR [--tasks N] [--events N] "
               "[--seconds S] [--connections K] [--sync full|normal] [--auth none|hmac] "
               "[--daemon-core C] [--load-core C] [--session-ids random|sequential] "
               "[--json FILE] [--perf-control CTL_FIFO[,ACK_FIFO]]\n",
               why.c_str());
  std::exit(2);
}

int to_int(std::string_view flag, std::string_view v, int lo, int hi) {
  int n = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < lo || n > hi) {
    usage(std::string(flag) + ": expected an integer in " + std::to_string(lo) + ".." +
          std::to_string(hi));
  }
  return n;
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) {
      usage(std::string(flag) + " needs a value");
    }
    const std::string_view v = argv[++i];
    if (flag == "--dir") {
      o.dir = std::string(v);
    } else if (flag == "--tasks") {
      o.tasks = to_int(flag, v, 1, 10000000);
    } else if (flag == "--events") {
      o.events = to_int(flag, v, 0, 10000000);
    } else if (flag == "--seconds") {
      o.seconds = to_int(flag, v, 1, 3600);
    } else if (flag == "--connections") {
      o.connections = to_int(flag, v, 1, 4096);
    } else if (flag == "--sync") {
      if (v != "full" && v != "normal") {
        usage("--sync: full or normal");
      }
      o.sync_full = v == "full";
    } else if (flag == "--auth") {
      if (v != "none" && v != "hmac") {
        usage("--auth: none or hmac");
      }
      o.sign = v == "hmac";
    } else if (flag == "--daemon-core") {
      o.daemon_core = to_int(flag, v, -1, CPU_SETSIZE - 1);
    } else if (flag == "--load-core") {
      o.load_core = to_int(flag, v, -1, CPU_SETSIZE - 1);
    } else if (flag == "--json") {
      o.json_path = std::string(v);
    } else if (flag == "--session-ids") {
      if (v != "random" && v != "sequential") {
        usage("--session-ids: random or sequential");
      }
      o.sequential_session_ids = v == "sequential";
    } else if (flag == "--perf-control") {
      o.perf_control = std::string(v);
    } else {
      usage("unknown option " + std::string(flag));
    }
  }
  if (o.dir.empty()) {
    usage("--dir is required");
  }
  if (o.events == 0 || o.events > o.tasks) {
    o.events = o.tasks;  // each event ends a distinct task
  }
  return o;
}

void pin_this_thread(int core, const char* name) {
  pthread_setname_np(pthread_self(), name);
  if (core < 0) {
    return;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  if (const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) {
    throw std::runtime_error("cannot pin " + std::string(name) + " to core " +
                             std::to_string(core) + ": " + std::strerror(rc));
  }
}

// ---- The campaign: task i, its session and the session.ended the generator posts for it. ----

constexpr std::string_view campaign_id = "bench";
constexpr std::array<std::string_view, 6> end_reasons = {"completed", "no_answer", "busy",
                                                         "voicemail", "failed",    "max_duration"};

std::string task_id(int i) {
  char b[24];
  std::snprintf(b, sizeof b, "T-%08d", i);
  return b;
}

// Unique valid UAE mobiles, scattered like bench/e2e.sh's.
std::string phone(int i) {
  char b[24];
  std::snprintf(
      b, sizeof b, "+97150%07lld",
      static_cast<long long>((static_cast<std::int64_t>(i) * 3141593 + 1234567) % 10000000));
  return b;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Set once from the options, before any thread starts.
bool sequential_session_ids = false;

// A random-looking UUID v4, as Agentix's are: the store's session index sees random keys.
std::string session_id(int i) {
  if (sequential_session_ids) {
    char s[40];
    std::snprintf(s, sizeof s, "00000000-0000-4000-8000-%012x", static_cast<unsigned>(i));
    return s;
  }
  const std::uint64_t a = splitmix64(2 * static_cast<std::uint64_t>(i) + 1);
  const std::uint64_t b = splitmix64(2 * static_cast<std::uint64_t>(i) + 2);
  char s[40];
  std::snprintf(s, sizeof s, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return s;
}

std::string_view end_reason(int i) {
  return end_reasons[static_cast<std::size_t>(i) % end_reasons.size()];
}
int duration_s(int i) {
  return 5 + i % 600;
}
std::string crm_contact(int i) {
  return "C-" + std::to_string(500000 + i);
}

// The payload of ../shared/agentix-api.md section 4, in its layout.
void append_body(std::string& out, int i, std::string_view timestamp) {
  out += "{\n  \"event\": \"session.ended\",\n  \"sessionId\": \"";
  out += session_id(i);
  out += "\",\n  \"timestamp\": \"";
  out += timestamp;
  out +=
      "\",\n  \"metadata\": {\n    \"agentId\": \"d796c919-7ef3-413a-8bf1-351b6442953a\", "
      "\"phoneNumberId\": \"6f1c2a9e-0000-4000-8000-000000000001\", \"toPhoneNumber\": \"";
  out += phone(i);
  out += "\",\n    \"sessionVariables\": {\"taskId\": \"";
  out += task_id(i);
  out += "\", \"campaignId\": \"";
  out += campaign_id;
  out += "\", \"crmContactId\": \"";
  out += crm_contact(i);
  out += "\"}\n  },\n  \"durationSeconds\": ";
  out += std::to_string(duration_s(i));
  out += ",\n  \"endReason\": \"";
  out += end_reason(i);
  out +=
      "\",\n  \"analysis\": {\n    \"intent\": \"renewal_interest\", \"resolution\": "
      "\"resolved\", \"sentiment\": \"positive\",\n    \"data\": {\"preferred_time\": "
      "\"evenings\", \"callback_requested\": \"false\"}\n  }\n}\n";
}

// Sends commands to `perf record --control fifo:CTL[,ACK]`, waiting for each ack when given.
class perf_control {
 public:
  explicit perf_control(const std::string& spec) {
    if (spec.empty()) {
      return;
    }
    const auto comma = spec.find(',');
    // O_RDWR: a fifo opens without waiting for the other side.
    ctl_ = ::open(spec.substr(0, comma).c_str(), O_RDWR | O_CLOEXEC);
    if (comma != std::string::npos) {
      ack_ = ::open(spec.substr(comma + 1).c_str(), O_RDWR | O_CLOEXEC);
    }
    if (ctl_ < 0 || (comma != std::string::npos && ack_ < 0)) {
      throw std::runtime_error("--perf-control " + spec + ": " + std::strerror(errno));
    }
  }
  ~perf_control() {
    for (const int fd : {ctl_, ack_}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }
  perf_control(const perf_control&) = delete;
  perf_control& operator=(const perf_control&) = delete;

  void send(std::string_view command) {
    if (ctl_ < 0) {
      return;
    }
    const std::string line = std::string(command) + "\n";
    if (::write(ctl_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::runtime_error("perf control: " + std::string(std::strerror(errno)));
    }
    if (ack_ >= 0) {
      char buf[16];
      if (::read(ack_, buf, sizeof buf) <= 0) {
        throw std::runtime_error("perf control: no ack");
      }
    }
  }

 private:
  int ctl_ = -1;
  int ack_ = -1;
};

// ---- CPU time of the daemon-side threads. ----

struct thread_cpu {
  double cpu_s = 0;   // clock_gettime of the thread's CPU clock
  double user_s = 0;  // /proc/self/task/TID/stat, in clock ticks
  double sys_s = 0;
  std::int64_t voluntary_switches = 0;
  std::int64_t involuntary_switches = 0;
};

thread_cpu operator-(const thread_cpu& a, const thread_cpu& b) {
  return {a.cpu_s - b.cpu_s, a.user_s - b.user_s, a.sys_s - b.sys_s,
          a.voluntary_switches - b.voluntary_switches,
          a.involuntary_switches - b.involuntary_switches};
}

// Identifies the thread that calls capture() (once); any thread may then sample it.
class thread_probe {
 public:
  void capture() {
    std::call_once(once_, [this] {
      tid_ = static_cast<pid_t>(::syscall(SYS_gettid));
      if (pthread_getcpuclockid(pthread_self(), &clock_) != 0) {
        clock_ = CLOCK_THREAD_CPUTIME_ID;  // unusable from elsewhere; sample() reports 0
      }
      ready_.store(true, std::memory_order_release);
    });
  }
  [[nodiscard]] bool ready() const { return ready_.load(std::memory_order_acquire); }

  [[nodiscard]] thread_cpu sample() const {
    thread_cpu t;
    if (!ready() || clock_ == CLOCK_THREAD_CPUTIME_ID) {
      return t;
    }
    timespec ts{};
    ::clock_gettime(clock_, &ts);
    t.cpu_s = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    const std::string task = "/proc/self/task/" + std::to_string(tid_);
    if (std::ifstream stat(task + "/stat"); stat) {
      std::string text((std::istreambuf_iterator<char>(stat)), {});
      const auto close = text.rfind(')');
      if (close != std::string::npos) {
        std::vector<std::string> fields;
        std::string field;
        for (char ch : text.substr(close + 2)) {
          if (ch == ' ') {
            fields.push_back(std::move(field));
            field.clear();
          } else {
            field += ch;
          }
        }
        const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
        if (fields.size() > 12) {
          t.user_s = std::stod(fields[11]) / tick;
          t.sys_s = std::stod(fields[12]) / tick;
        }
      }
    }
    if (std::ifstream status(task + "/status"); status) {
      std::string line;
      while (std::getline(status, line)) {
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
          t.voluntary_switches = std::stoll(line.substr(line.find(':') + 1));
        } else if (line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
          t.involuntary_switches = std::stoll(line.substr(line.find(':') + 1));
        }
      }
    }
    return t;
  }

 private:
  std::once_flag once_;
  std::atomic<bool> ready_{false};
  pid_t tid_ = 0;
  clockid_t clock_ = CLOCK_THREAD_CPUTIME_ID;
};

// ---- Set-up through the store's public API, as the daemon would have left it. ----

class countdown {
 public:
  explicit countdown(std::int64_t n) : left_(n) {}
  void done(bool ok) {
    std::lock_guard lock(mu_);
    failed_ += ok ? 0 : 1;
    if (--left_ == 0) {
      cv_.notify_all();
    }
  }
  // How many failed.
  std::int64_t wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return left_ <= 0; });
    return failed_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::int64_t left_;
  std::int64_t failed_ = 0;
};

void flush_and_wait(state_store& store) {
  std::promise<void> flushed;
  store.flush([&] { flushed.set_value(); });
  flushed.get_future().get();
}

// N tasks ingested, claimed (mark_dialing) and recorded STARTED with session_id(i): the state a
// campaign is in when its calls end. Blocking; throws when the store disagrees.
void populate(sqlite_store& store, int n) {
  const std::string campaign(campaign_id);
  constexpr int batch = 4096;  // sqlite_store.hpp: keep ingest batches to a few thousand rows
  std::int64_t pending = 0;
  std::vector<ingest_row> rows;
  for (int first = 0; first < n; first += batch) {
    rows.clear();
    for (int i = first; i < std::min(n, first + batch); ++i) {
      rows.push_back({.line = i + 2,
                      .task_id = task_id(i),
                      .phone_e164 = phone(i),
                      .variables_json = "{\"taskId\":\"" + task_id(i) + "\",\"campaignId\":\"" +
                                        campaign + "\",\"crmContactId\":\"" + crm_contact(i) +
                                        "\"}"});
    }
    pending += store.ingest(campaign, rows, {}, false).pending;
  }
  store.finish_ingest(campaign, "webhook_bench", n);
  if (pending != n) {
    throw std::runtime_error("ingest stored " + std::to_string(pending) + " new tasks, not " +
                             std::to_string(n) + " (is --dir fresh?)");
  }

  std::vector<std::int64_t> row_ids(static_cast<std::size_t>(n), 0);
  std::int64_t after = 0;
  int found = 0;
  for (;;) {
    std::promise<std::vector<dial_task>> page;
    store.fetch_pending(campaign, after, batch,
                        [&](std::vector<dial_task> tasks) { page.set_value(std::move(tasks)); });
    const std::vector<dial_task> tasks = page.get_future().get();
    if (tasks.empty()) {
      break;
    }
    for (const dial_task& t : tasks) {
      int i = -1;
      std::from_chars(t.task_id.data() + 2, t.task_id.data() + t.task_id.size(), i);
      if (i < 0 || i >= n || t.task_id != task_id(i) || row_ids[static_cast<std::size_t>(i)]) {
        throw std::runtime_error("fetch_pending returned an unexpected task " + t.task_id);
      }
      row_ids[static_cast<std::size_t>(i)] = t.row_id;
      ++found;
      after = t.row_id;
    }
  }
  if (found != n) {
    throw std::runtime_error("fetch_pending found " + std::to_string(found) + " tasks");
  }

  countdown claimed(n);
  for (const std::int64_t row_id : row_ids) {
    store.mark_dialing(row_id, 1,
                       [&](claim_outcome c) { claimed.done(c.result == claim_result::claimed); });
  }
  if (const auto failed = claimed.wait(); failed != 0) {
    throw std::runtime_error(std::to_string(failed) + " tasks were not claimed");
  }
  countdown started(n);
  for (int i = 0; i < n; ++i) {
    attempt_outcome o;
    o.row_id = row_ids[static_cast<std::size_t>(i)];
    o.state = task_state::started;
    o.attempts = 1;
    o.http_status = 201;
    o.session_id = session_id(i);
    store.record(std::move(o), [&](bool ok) { started.done(ok); });
  }
  if (const auto failed = started.wait(); failed != 0) {
    throw std::runtime_error(std::to_string(failed) + " tasks were not recorded STARTED");
  }
  flush_and_wait(store);
  const campaign_summary s = store.summary(campaign);
  if (s.by_state[static_cast<std::size_t>(task_state::started)] != n) {
    throw std::runtime_error(
        "the store holds " +
        std::to_string(s.by_state[static_cast<std::size_t>(task_state::started)]) +
        " STARTED tasks after set-up");
  }
}

// ---- The load generator: K keep-alive connections, one request at a time each. ----

struct load_result {
  std::int64_t sent = 0;
  std::int64_t applied = 0;                   // answered 200 {"result":"applied"}
  std::map<std::string, std::int64_t> other;  // "<status> <body>" of every other answer
  std::vector<std::int64_t> latency_ns;       // request written → response read, every answer
  std::vector<std::uint8_t> applied_by_task;  // 1 where task i was answered applied
  steady::time_point first_send;
  steady::time_point last_answer;
  std::int64_t body_bytes = 0;
  std::int64_t request_bytes = 0;
  int reconnects = 0;
  std::string failure;  // the first I/O error, or the stall
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The value of the first header field `name` in `head` (status line and fields, CRLF-separated).
std::string_view field(std::string_view head, std::string_view name) {
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    const std::size_t start = pos + 2;
    const std::size_t end = head.find("\r\n", start);
    const std::string_view line = head.substr(start, end - start);
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && iequals(line.substr(0, colon), name)) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
      }
      return v;
    }
    pos = end;
  }
  return {};
}

class load_generator {
 public:
  load_generator(const options& o, std::uint16_t port, std::string path, std::string secret)
      : o_(o),
        endpoint_(asio::ip::make_address("127.0.0.1"), port),
        host_("127.0.0.1:" + std::to_string(port)),
        path_(std::move(path)),
        secret_(std::move(secret)),
        watchdog_(io_) {}

  // Opens the connections (untimed).
  void connect() {
    for (int k = 0; k < o_.connections; ++k) {
      auto c = std::make_unique<conn>(io_);
      c->sock.connect(endpoint_);
      c->sock.set_option(tcp::no_delay(true));
      conns_.push_back(std::move(c));
    }
  }

  // Posts until o.events are answered or o.seconds have passed; blocks.
  load_result run() {
    r_.applied_by_task.assign(static_cast<std::size_t>(o_.tasks), 0);
    r_.latency_ns.reserve(static_cast<std::size_t>(o_.events));
    r_.first_send = r_.last_answer = steady::now();
    deadline_ = r_.first_send + std::chrono::milliseconds(static_cast<long>(o_.seconds * 1000));
    // Answers still missing 30 s after the deadline: the server stalled.
    watchdog_.expires_at(deadline_ + std::chrono::seconds(30));
    watchdog_.async_wait([this](boost::system::error_code ec) {
      if (!ec) {
        for (auto& c : conns_) {
          fail(*c, "no answer 30 s after the deadline");
        }
      }
    });
    active_ = static_cast<int>(conns_.size());
    for (auto& c : conns_) {
      send_next(*c);
    }
    io_.run();
    return std::move(r_);
  }

 private:
  struct conn {
    explicit conn(asio::io_context& io) : sock(io) {}
    tcp::socket sock;
    std::string out;
    std::string in;
    std::array<char, 4096> chunk{};
    int task = -1;
    steady::time_point sent_at;
    bool open = true;
  };

  void send_next(conn& c) {
    const auto now = steady::now();
    if (next_ >= o_.events || now >= deadline_) {
      finish(c);
      return;
    }
    c.task = next_++;
    build_request(c.out, c.task);
    ++r_.sent;
    c.sent_at = steady::now();
    asio::async_write(c.sock, asio::buffer(c.out),
                      [this, &c](boost::system::error_code ec, std::size_t) {
                        if (ec) {
                          return fail(c, "write: " + ec.message());
                        }
                        read_more(c);
                      });
  }

  void read_more(conn& c) {
    c.sock.async_read_some(asio::buffer(c.chunk),
                           [this, &c](boost::system::error_code ec, std::size_t n) {
                             if (ec) {
                               return fail(c, "read: " + ec.message());
                             }
                             c.in.append(c.chunk.data(), n);
                             on_data(c);
                           });
  }

  void on_data(conn& c) {
    const std::size_t head_end = c.in.find("\r\n\r\n");
    if (head_end == std::string::npos) {
      return read_more(c);
    }
    const std::string_view head = std::string_view(c.in).substr(0, head_end + 2);
    const std::string_view length_text = field(head, "Content-Length");
    std::size_t length = 0;
    std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
    if (c.in.size() < head_end + 4 + length) {
      return read_more(c);
    }
    const auto now = steady::now();
    r_.latency_ns.push_back(std::chrono::nanoseconds(now - c.sent_at).count());
    r_.last_answer = now;
    int status = 0;
    if (head.size() > 12) {
      std::from_chars(head.data() + 9, head.data() + 12, status);
    }
    const std::string_view body = std::string_view(c.in).substr(head_end + 4, length);
    if (status == 200 && body == R"({"result":"applied"})") {
      ++r_.applied;
      r_.applied_by_task[static_cast<std::size_t>(c.task)] = 1;
    } else {
      ++r_.other[std::to_string(status) + " " + std::string(body)];
    }
    const bool close = iequals(field(head, "Connection"), "close");
    c.in.erase(0, head_end + 4 + length);
    if (close) {
      // http_server closes after max_requests_per_connection: reconnect inside the timed window,
      // as a real sender would.
      boost::system::error_code ec;
      c.sock.close(ec);
      c.sock = tcp::socket(io_);
      c.sock.connect(endpoint_, ec);
      if (ec) {
        return fail(c, "reconnect: " + ec.message());
      }
      c.sock.set_option(tcp::no_delay(true), ec);
      c.in.clear();
      ++r_.reconnects;
    }
    send_next(c);
  }

  void build_request(std::string& out, int task) {
    const auto wall = std::chrono::system_clock::now();
    const std::int64_t unix_s =
        std::chrono::duration_cast<std::chrono::seconds>(wall.time_since_epoch()).count();
    if (unix_s != stamp_s_) {
      stamp_s_ = unix_s;
      const std::time_t t = static_cast<std::time_t>(unix_s);
      std::tm tm{};
      ::gmtime_r(&t, &tm);
      char b[32];
      std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
      stamp_ = b;
    }
    body_.clear();
    append_body(body_, task, stamp_);
    out.clear();
    out += "POST ";
    out += path_;
    out += " HTTP/1.1\r\nHost: ";
    out += host_;
    out += "\r\nUser-Agent: agentix-webhooks/1.0\r\nContent-Type: application/json\r\n";
    out += "Content-Length: ";
    out += std::to_string(body_.size());
    out += "\r\n";
    if (!secret_.empty()) {
      out += "X-Agentix-Signature: ";
      out += make_signature_header(body_, secret_, unix_s);
      out += "\r\n";
    }
    out += "\r\n";
    out += body_;
    r_.body_bytes += static_cast<std::int64_t>(body_.size());
    r_.request_bytes += static_cast<std::int64_t>(out.size());
  }

  void fail(conn& c, const std::string& why) {
    if (c.open && r_.failure.empty()) {
      r_.failure = why;
    }
    finish(c);
  }

  void finish(conn& c) {
    if (!c.open) {
      return;
    }
    c.open = false;
    boost::system::error_code ignored;
    c.sock.close(ignored);
    if (--active_ == 0) {
      watchdog_.cancel();
    }
  }

  const options& o_;
  asio::io_context io_{1};
  tcp::endpoint endpoint_;
  std::string host_;
  std::string path_;
  std::string secret_;
  asio::steady_timer watchdog_;
  std::vector<std::unique_ptr<conn>> conns_;
  steady::time_point deadline_;
  int next_ = 0;
  int active_ = 0;
  std::int64_t stamp_s_ = -1;
  std::string stamp_;
  std::string body_;
  load_result r_;
};

// ---- Verification: the database as another process would read it. ----

struct check {
  bool ok = false;
  std::int64_t rows = 0;
  std::int64_t ended_as_posted = 0;  // ENDED with the posted end reason, duration and source
  std::int64_t still_started = 0;    // not answered applied, still STARTED
  std::int64_t wrong = 0;            // anything else
  std::int64_t applied_events = 0;   // events table: session.ended, verdict applied
  std::string error;
};

check verify(const fs::path& db_path, const load_result& r, int tasks) {
  check c;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    c.error = std::string("cannot open read-only: ") + sqlite3_errmsg(db);
    sqlite3_close(db);
    return c;
  }
  const auto query = [&](const char* sql, const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
      c.error = sqlite3_errmsg(db);
      return;
    }
    sqlite3_bind_text(st, 1, campaign_id.data(), static_cast<int>(campaign_id.size()),
                      SQLITE_STATIC);
    int rc = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      row(st);
    }
    if (rc != SQLITE_DONE) {
      c.error = sqlite3_errmsg(db);
    }
    sqlite3_finalize(st);
  };
  const auto text = [](sqlite3_stmt* st, int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
    return p == nullptr ? std::string_view() : std::string_view(p);
  };
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(tasks), 0);
  query(
      "SELECT task_id, state, end_reason, duration_s, result_source FROM tasks "
      "WHERE campaign = ?1",
      [&](sqlite3_stmt* st) {
        ++c.rows;
        const std::string_view id = text(st, 0);
        int i = -1;
        if (id.size() > 2) {
          std::from_chars(id.data() + 2, id.data() + id.size(), i);
        }
        if (i < 0 || i >= tasks || id != task_id(i) || seen[static_cast<std::size_t>(i)]) {
          ++c.wrong;
          return;
        }
        seen[static_cast<std::size_t>(i)] = 1;
        const auto state = static_cast<task_state>(sqlite3_column_int(st, 1));
        if (r.applied_by_task[static_cast<std::size_t>(i)]) {
          const bool as_posted = state == task_state::ended && text(st, 2) == end_reason(i) &&
                                 sqlite3_column_type(st, 3) == SQLITE_INTEGER &&
                                 sqlite3_column_int(st, 3) == duration_s(i) &&
                                 text(st, 4) == "webhook";
          ++(as_posted ? c.ended_as_posted : c.wrong);
        } else {
          ++(state == task_state::started ? c.still_started : c.wrong);
        }
      });
  query(
      "SELECT count(*) FROM events WHERE campaign = ?1 AND event = 'session.ended' "
      "AND verdict = 'applied'",
      [&](sqlite3_stmt* st) { c.applied_events = sqlite3_column_int64(st, 0); });
  sqlite3_close(db);
  c.ok = c.error.empty() && c.rows == tasks && c.wrong == 0 && c.ended_as_posted == r.applied &&
         c.still_started == tasks - r.applied && c.applied_events == r.applied;
  return c;
}

// ---- Wiring and the report. ----

template <class F>
auto on_loop(asio::io_context& io, F f) {
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto result = task.get_future();
  asio::post(io, [&task] { task(); });
  return result.get();
}

std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out += ',';
    }
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

double percentile_ms(std::vector<std::int64_t>& sorted_ns, double p) {
  if (sorted_ns.empty()) {
    return 0;
  }
  const auto k = static_cast<std::size_t>(p * static_cast<double>(sorted_ns.size() - 1) + 0.5);
  return static_cast<double>(sorted_ns[std::min(k, sorted_ns.size() - 1)]) / 1e6;
}

double process_thread_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

int run(const options& o) {
  set_log_threshold(log_level::warning);
  sequential_session_ids = o.sequential_session_ids;
  fs::create_directories(o.dir);
  const fs::path db_path = o.dir / "state.db";

  // Pinned to the daemon's core while the store and the loop thread are created: both inherit it.
  pin_this_thread(o.daemon_core, "wh-daemon");
  asio::io_context io(1);
  auto work = asio::make_work_guard(io);
  thread_probe loop_probe;
  thread_probe writer_probe;
  auto store = std::make_unique<sqlite_store>(sqlite_store_options{
      .path = db_path,
      .synchronous_full = o.sync_full,
      .post =
          [&io, &writer_probe](std::function<void()> fn) {
            if (!writer_probe.ready()) {
              writer_probe.capture();
              pthread_setname_np(pthread_self(), "wh-store");
            }
            asio::post(io, std::move(fn));
          },
  });
  std::thread loop([&] {
    pthread_setname_np(pthread_self(), "wh-loop");
    loop_probe.capture();
    io.run();
  });
  // From here a failure must not unwind through the running loop thread: report and leave.
  try {
    pin_this_thread(o.load_core, "wh-load");

    std::printf(
        "== webhooks: %s STARTED tasks (%s session ids), %s events or %.0f s, %d connections, "
        "synchronous %s, auth %s\n   wh-loop + wh-store on core %d, load generator on core %d; "
        "database %s\n",
        grouped(o.tasks).c_str(), o.sequential_session_ids ? "sequential" : "random",
        grouped(o.events).c_str(), o.seconds, o.connections, o.sync_full ? "full" : "normal",
        o.sign ? "hmac" : "none", o.daemon_core, o.load_core, db_path.c_str());
    std::fflush(stdout);

    const auto setup_start = steady::now();
    populate(*store, o.tasks);
    const double setup_s = std::chrono::duration<double>(steady::now() - setup_start).count();

    config::webhook_settings settings;
    settings.enabled = true;
    settings.address = "127.0.0.1";
    settings.port = 0;
    settings.max_connections = std::max(1024, o.connections + 16);
    std::string secret;
    if (o.sign) {
      secret = "whsec_bench_0123456789abcdef0123456789abcdef";
      settings.signing_secrets.emplace_back(secret);
    }
    std::unique_ptr<webhook_service> service;
    const std::uint16_t port = on_loop(io, [&] {
      service = std::make_unique<webhook_service>(io, settings, "webhook_bench", *store,
                                                  time_source::real(), nullptr);
      return service->port();
    });

    load_generator gen(o, port, settings.path, secret);
    gen.connect();
    perf_control perf(o.perf_control);
    perf.send("enable");
    const sqlite_store_stats store0 = store->stats();
    const thread_cpu loop0 = loop_probe.sample();
    const thread_cpu writer0 = writer_probe.sample();
    const double load0 = process_thread_cpu_s();
    load_result r = gen.run();
    const double load1 = process_thread_cpu_s();
    const thread_cpu loop_cpu = loop_probe.sample() - loop0;
    const thread_cpu writer_cpu = writer_probe.sample() - writer0;
    const sqlite_store_stats store1 = store->stats();
    perf.send("disable");

    const webhook_stats hooks = on_loop(io, [&] {
      webhook_stats s = service->stats();
      service.reset();
      return s;
    });
    flush_and_wait(*store);
    store.reset();  // closes the database; the loop still runs the last completions
    work.reset();
    loop.join();

    const check c = verify(db_path, r, o.tasks);

    const double wall_s = std::chrono::duration<double>(r.last_answer - r.first_send).count();
    const double rate = wall_s > 0 ? static_cast<double>(r.applied) / wall_s : 0;
    std::sort(r.latency_ns.begin(), r.latency_ns.end());
    const double p50 = percentile_ms(r.latency_ns, 0.50);
    const double p99 = percentile_ms(r.latency_ns, 0.99);
    const double p999 = percentile_ms(r.latency_ns, 0.999);
    const double max_ms = r.latency_ns.empty() ? 0 : static_cast<double>(r.latency_ns.back()) / 1e6;
    const auto commits = static_cast<std::int64_t>(store1.commits - store0.commits);
    const auto jobs = static_cast<std::int64_t>(store1.jobs - store0.jobs);
    const double daemon_cpu = loop_cpu.cpu_s + writer_cpu.cpu_s;
    const double events = static_cast<double>(std::max<std::int64_t>(r.applied, 1));
    const double us_per = daemon_cpu / events * 1e6;
    std::string others;
    for (const auto& [what, n] : r.other) {
      others += " [" + what + "] x" + grouped(n);
    }
    std::string hook_counts;
    for (const auto& [what, n] : hooks.by_event_and_result) {
      hook_counts += " " + what + "=" + grouped(static_cast<std::int64_t>(n));
    }

    std::printf("  set-up (ingest, mark_dialing, record; untimed)  %.2f s\n", setup_s);
    std::printf(
        "  request                    %.0f B mean (body %.0f B)\n",
        static_cast<double>(r.request_bytes) /
            static_cast<double>(std::max<std::int64_t>(r.sent, 1)),
        static_cast<double>(r.body_bytes) / static_cast<double>(std::max<std::int64_t>(r.sent, 1)));
    std::printf("  answered 200 applied       %s of %s sent%s%s\n", grouped(r.applied).c_str(),
                grouped(r.sent).c_str(), others.empty() ? "" : "; other:", others.c_str());
    std::printf("  first request..last answer %.3f s  -> %.0f events/s\n", wall_s, rate);
    std::printf(
        "  latency                    p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n", p50,
        p99, p999, max_ms);
    std::printf("  store                      %s commits, %s jobs, %.1f jobs/commit\n",
                grouped(commits).c_str(), grouped(jobs).c_str(),
                commits > 0 ? static_cast<double>(jobs) / static_cast<double>(commits) : 0.0);
    std::printf(
        "  daemon CPU                 %.3f s = %.1f us/event (%.4f s per 1,000); core %d busy "
        "%.0f %%\n",
        daemon_cpu, us_per, us_per / 1000, o.daemon_core,
        wall_s > 0 ? 100 * daemon_cpu / wall_s : 0.0);
    std::printf(
        "    wh-loop                  %.3f s = %.1f us/event (user %.2f, sys %.2f; switches %s "
        "voluntary, %s involuntary)\n",
        loop_cpu.cpu_s, loop_cpu.cpu_s / events * 1e6, loop_cpu.user_s, loop_cpu.sys_s,
        grouped(loop_cpu.voluntary_switches).c_str(),
        grouped(loop_cpu.involuntary_switches).c_str());
    std::printf(
        "    wh-store                 %.3f s = %.1f us/event (user %.2f, sys %.2f; switches %s "
        "voluntary, %s involuntary)\n",
        writer_cpu.cpu_s, writer_cpu.cpu_s / events * 1e6, writer_cpu.user_s, writer_cpu.sys_s,
        grouped(writer_cpu.voluntary_switches).c_str(),
        grouped(writer_cpu.involuntary_switches).c_str());
    std::printf("  load generator CPU         %.3f s = %.1f us/event (core %d)\n", load1 - load0,
                (load1 - load0) / events * 1e6, o.load_core);
    std::printf("  webhook_service counts    %s; reconnects %d\n", hook_counts.c_str(),
                r.reconnects);
    if (!r.failure.empty()) {
      std::printf("  load generator failure     %s\n", r.failure.c_str());
    }
    std::printf(
        "  check (read-only SQLite)   %s tasks: %s ENDED with the posted end reason and duration, "
        "%s still STARTED, %s wrong; %s applied session.ended events -> %s%s%s\n",
        grouped(c.rows).c_str(), grouped(c.ended_as_posted).c_str(),
        grouped(c.still_started).c_str(), grouped(c.wrong).c_str(),
        grouped(c.applied_events).c_str(), c.ok ? "OK" : "FAILED", c.error.empty() ? "" : ": ",
        c.error.c_str());

    const std::uint64_t hooks_applied = [&] {
      const auto it = hooks.by_event_and_result.find("session.ended/applied");
      return it == hooks.by_event_and_result.end() ? 0 : it->second;
    }();
    const bool ok = c.ok && r.failure.empty() && r.other.empty() && r.applied == r.sent &&
                    r.applied > 0 && hooks_applied == static_cast<std::uint64_t>(r.applied);

    if (!o.json_path.empty()) {
      std::ofstream j(o.json_path);
      char buf[2048];
      std::snprintf(
          buf, sizeof buf,
          "{\"tasks\":%d,\"session_ids\":\"%s\",\"connections\":%d,\"synchronous\":\"%s\",\"auth\":"
          "\"%s\","
          "\"sent\":%lld,\"applied\":%lld,\"seconds\":%.4f,\"events_per_s\":%.1f,"
          "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
          "\"commits\":%lld,\"jobs\":%lld,\"daemon_cpu_s\":%.4f,\"loop_cpu_s\":%.4f,"
          "\"writer_cpu_s\":%.4f,\"cpu_us_per_event\":%.2f,\"loop_us_per_event\":%.2f,"
          "\"writer_us_per_event\":%.2f,\"loop_sys_s\":%.2f,\"writer_sys_s\":%.2f,"
          "\"load_cpu_s\":%.4f,\"setup_s\":%.2f,\"body_bytes\":%.1f,\"verified\":%s,\"ok\":%s}\n",
          o.tasks, o.sequential_session_ids ? "sequential" : "random", o.connections,
          o.sync_full ? "full" : "normal", o.sign ? "hmac" : "none", static_cast<long long>(r.sent),
          static_cast<long long>(r.applied), wall_s, rate, p50, p99, p999, max_ms,
          static_cast<long long>(commits), static_cast<long long>(jobs), daemon_cpu, loop_cpu.cpu_s,
          writer_cpu.cpu_s, us_per, loop_cpu.cpu_s / events * 1e6, writer_cpu.cpu_s / events * 1e6,
          loop_cpu.sys_s, writer_cpu.sys_s, load1 - load0, setup_s,
          static_cast<double>(r.body_bytes) /
              static_cast<double>(std::max<std::int64_t>(r.sent, 1)),
          c.ok ? "true" : "false", ok ? "true" : "false");
      j << buf;
    }
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "webhook_bench: %s\n", e.what());
    std::fflush(nullptr);
    std::_Exit(2);
  }
}

}  // namespace
}  // namespace dialer

int main(int argc, char** argv) {
  const dialer::options o = dialer::parse_options(argc, argv);
  try {
    return dialer::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "webhook_bench: %s\n", e.what());
    return 2;
  }
}
