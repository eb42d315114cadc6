// The durable store's throughput on a real file system: set DIALER_BENCH_DIR to put the database
// on the disk the daemon will use (tmpfs makes synchronous=FULL meaningless). Every figure waits
// for the completions, i.e. for the commits.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/sqlite_store.hpp"

namespace dialer {
namespace {

namespace fs = std::filesystem;

// CPU seconds spent by the store's writer thread (the process minus this thread). The machine is
// shared, so wall-clock rates vary with the load; CPU per item shows the capacity of one core.
class store_cpu_meter {
 public:
  store_cpu_meter() : start_(now()) {}
  [[nodiscard]] double seconds() const { return total_ + (running_ ? now() - start_ : 0.0); }
  // Leaves out work done while the benchmark's timing is paused (refilling tasks).
  void pause() {
    total_ += now() - start_;
    running_ = false;
  }
  void resume() {
    start_ = now();
    running_ = true;
  }

 private:
  static double read(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
  static double now() { return read(CLOCK_PROCESS_CPUTIME_ID) - read(CLOCK_THREAD_CPUTIME_ID); }
  double start_;
  double total_ = 0;
  bool running_ = true;
};

void report_cpu(benchmark::State& state, const store_cpu_meter& meter, double items) {
  const double per_item = meter.seconds() / items;
  state.counters["store_cpu_us_per_item"] = per_item * 1e6;
  state.counters["items_per_store_cpu_s"] = 1.0 / per_item;
}

// Stands in for the event loop: completions are queued and run on the benchmark thread.
class bench_executor {
 public:
  std::function<void(std::function<void()>)> poster() {
    return [this](std::function<void()> fn) {
      {
        std::lock_guard lock(mu_);
        queue_.push_back(std::move(fn));
      }
      cv_.notify_one();
    };
  }
  bool run_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done()) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        if (!cv_.wait_until(lock, deadline, [&] { return !queue_.empty(); })) {
          return done();
        }
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

class bench_dir {
 public:
  bench_dir() {
    const char* base = std::getenv("DIALER_BENCH_DIR");
    std::string tmpl =
        ((base != nullptr ? fs::path(base) : fs::temp_directory_path()) / "store_bench.XXXXXX")
            .string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + " failed");
    }
    path_ = tmpl;
  }
  ~bench_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  bench_dir(const bench_dir&) = delete;
  bench_dir& operator=(const bench_dir&) = delete;
  [[nodiscard]] fs::path db() const { return path_ / "state.db"; }

 private:
  fs::path path_;
};

// CRM exports are not sorted by phone or id: scatter both so the indexes see random inserts.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

void fill_rows(std::vector<ingest_row>& rows, std::int64_t first) {
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto n = first + static_cast<std::int64_t>(i);
    const auto h = mix(static_cast<std::uint64_t>(n));
    auto& r = rows[i];
    r.line = n + 2;
    r.task_id = "crm-" + std::to_string(h % 100000000000ULL) + "-" + std::to_string(n);
    r.phone_e164 = "+9715" + std::to_string(10000000 + h % 90000000);
    r.variables_json = R"({"taskId":")" + r.task_id +
                       R"(","campaignId":"bench","first_name":"Fatima","offer":"gold"})";
  }
}

sqlite_store_options bench_options(const bench_dir& dir, bench_executor& exec, bool full) {
  sqlite_store_options o;
  o.path = dir.db();
  o.post = exec.poster();
  o.synchronous_full = full;
  return o;
}

// Rows per second for batches of range(0) rows, dedupe on or off (range(1)), synchronous FULL or
// NORMAL (range(2)), into a campaign that grows with the iterations.
void BM_store_ingest(benchmark::State& state) {
  bench_dir dir;
  bench_executor exec;
  sqlite_store store(bench_options(dir, exec, state.range(2) != 0));
  std::vector<ingest_row> rows(static_cast<std::size_t>(state.range(0)));
  const bool dedupe = state.range(1) != 0;
  std::int64_t next = 0;
  const store_cpu_meter cpu;
  for (auto _ : state) {
    state.PauseTiming();
    fill_rows(rows, next);
    next += static_cast<std::int64_t>(rows.size());
    state.ResumeTiming();
    const auto r = store.ingest("bench", rows, {}, dedupe);
    if (r.pending + r.duplicate_phone != static_cast<std::int64_t>(rows.size())) {
      state.SkipWithError("rows were not stored");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["campaign_rows"] = static_cast<double>(next);
  report_cpu(state, cpu, static_cast<double>(next));
}
BENCHMARK(BM_store_ingest)
    ->ArgNames({"batch", "dedupe", "sync_full"})
    ->Args({4096, 1, 1})
    ->Args({4096, 0, 1})
    ->Args({4096, 1, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A whole campaign of range(0) rows in batches of 4096 with dedupe, then one summary(): shows
// whether ingest slows as the indexes outgrow the page cache, and what memory it takes.
void BM_store_ingest_campaign(benchmark::State& state) {
  const auto total = state.range(0);
  for (auto _ : state) {
    state.PauseTiming();
    bench_dir dir;
    bench_executor exec;
    sqlite_store store(bench_options(dir, exec, true));
    std::vector<ingest_row> rows(4096);
    const store_cpu_meter cpu;
    state.ResumeTiming();
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t next = 0; next < total; next += 4096) {
      rows.resize(static_cast<std::size_t>(std::min<std::int64_t>(4096, total - next)));
      state.PauseTiming();
      fill_rows(rows, next);
      state.ResumeTiming();
      (void)store.ingest("bench", rows, {}, true);
    }
    const auto ingested = std::chrono::steady_clock::now();
    const auto s = store.summary("bench");
    const auto summarised = std::chrono::steady_clock::now();
    state.PauseTiming();
    state.counters["summary_ms"] =
        std::chrono::duration<double, std::milli>(summarised - ingested).count();
    state.counters["ingest_rows_per_s"] =
        static_cast<double>(total) / std::chrono::duration<double>(ingested - start).count();
    state.counters["tasks"] = static_cast<double>(s.by_state[0] + s.by_state[7]);
    report_cpu(state, cpu, static_cast<double>(total));
    state.ResumeTiming();
  }
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  state.counters["peak_rss_mib"] = static_cast<double>(usage.ru_maxrss) / 1024.0;
}
BENCHMARK(BM_store_ingest_campaign)
    ->Arg(100000)
    ->Arg(1000000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Dial cycles per second: mark_dialing, then record(started) once the claim is durable, with
// range(1) cycles in flight (the daemon's concurrency) and synchronous FULL (range(0) = 1) or
// NORMAL. Each cycle is two commits' worth of waiting; group commit is what makes it scale.
void BM_store_dial_cycle(benchmark::State& state) {
  bench_dir dir;
  bench_executor exec;
  sqlite_store store(bench_options(dir, exec, state.range(0) != 0));
  const auto window = static_cast<std::size_t>(state.range(1));
  constexpr std::size_t per_iteration = 4096;
  std::vector<ingest_row> rows(per_iteration);
  std::int64_t next_row = 0;
  std::int64_t failures = 0;
  store_cpu_meter cpu;

  for (auto _ : state) {
    state.PauseTiming();
    cpu.pause();
    fill_rows(rows, next_row);
    next_row += static_cast<std::int64_t>(rows.size());
    (void)store.ingest("bench", rows, {}, false);
    std::vector<dial_task> tasks;
    bool fetched = false;
    store.fetch_pending("bench", 0, per_iteration, [&](std::vector<dial_task> t) {
      tasks = std::move(t);
      fetched = true;
    });
    exec.run_until([&] { return fetched; });
    const auto commits_at_start = store.commits_for_test();
    cpu.resume();
    state.ResumeTiming();

    std::size_t next = 0;
    std::size_t completed = 0;
    std::function<void()> start_one = [&] {
      const auto& t = tasks[next++];
      store.mark_dialing(t.row_id, 1, [&, row_id = t.row_id](claim_outcome claim) {
        if (claim.result != claim_result::claimed) {
          ++failures;
        }
        attempt_outcome o;
        o.row_id = row_id;
        o.state = task_state::started;
        o.attempts = 1;
        o.http_status = 201;
        o.session_id = "sess-" + std::to_string(row_id);
        store.record(std::move(o), [&](bool recorded) {
          failures += recorded ? 0 : 1;
          ++completed;
          if (next < tasks.size()) {
            start_one();
          }
        });
      });
    };
    for (std::size_t i = 0; i < window && next < tasks.size(); ++i) {
      start_one();
    }
    if (!exec.run_until([&] { return completed == tasks.size(); })) {
      state.SkipWithError("completions did not arrive");
      break;
    }
    state.PauseTiming();
    state.counters["cycles_per_commit"] =
        static_cast<double>(tasks.size()) /
        static_cast<double>(store.commits_for_test() - commits_at_start);
    state.ResumeTiming();
  }
  if (failures != 0) {
    state.SkipWithError("a claim or a record was refused");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(per_iteration));
  report_cpu(state, cpu, static_cast<double>(next_row));
}
BENCHMARK(BM_store_dial_cycle)
    ->ArgNames({"sync_full", "in_flight"})
    ->Args({1, 64})
    ->Args({1, 512})
    ->Args({0, 64})
    ->Args({0, 512})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace dialer
