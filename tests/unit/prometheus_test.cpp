#include "core/prometheus.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace dialer::prom {
namespace {

TEST(PrometheusPage, CounterAndGaugeExactText) {
  page p;
  p.counter("dialerd_store_jobs_total", "store jobs run");
  p.sample({}, std::uint64_t{42});
  p.gauge("dialerd_calls_active", "slots held");
  p.sample({{"trunk", "dubai-main"}}, 3);
  p.sample({{"trunk", "b"}}, 0.25);
  EXPECT_EQ(p.text(),
            "# HELP dialerd_store_jobs_total store jobs run\n"
            "# TYPE dialerd_store_jobs_total counter\n"
            "dialerd_store_jobs_total 42\n"
            "# HELP dialerd_calls_active slots held\n"
            "# TYPE dialerd_calls_active gauge\n"
            "dialerd_calls_active{trunk=\"dubai-main\"} 3\n"
            "dialerd_calls_active{trunk=\"b\"} 0.25\n");
}

TEST(PrometheusPage, SeveralLabelsKeepTheirOrder) {
  page p;
  p.counter("x_total", "h");
  p.sample({{"campaign", "spring"}, {"trunk", "t1"}, {"class", "http_429"}}, 7);
  EXPECT_EQ(p.text(),
            "# HELP x_total h\n# TYPE x_total counter\n"
            "x_total{campaign=\"spring\",trunk=\"t1\",class=\"http_429\"} 7\n");
}

TEST(PrometheusPage, LabelValuesAreEscaped) {
  page p;
  p.gauge("g", "h");
  p.sample({{"v", "a\\b\"c\nd"}}, 1);
  EXPECT_EQ(p.text(), "# HELP g h\n# TYPE g gauge\ng{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(PrometheusPage, HelpEscapesBackslashAndNewlineButNotQuotes) {
  page p;
  p.gauge("g", "say \"hi\"\\\nbye");
  EXPECT_EQ(p.text(), "# HELP g say \"hi\"\\\\\\nbye\n# TYPE g gauge\n");
}

TEST(PrometheusPage, InvalidUtf8InALabelValueBecomesReplacementCharacter) {
  page p;
  p.gauge("g", "h");
  // Valid 2-, 3- and 4-byte characters pass; a stray continuation byte, an overlong '/', a
  // truncated sequence and a surrogate do not.
  p.sample({{"v", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x93\x9E|\x80|\xC0\xAF|\xE2\x82|\xED\xA0\x80"}}, 1);
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(p.text(), "# HELP g h\n# TYPE g gauge\ng{v=\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x93\x9E|" +
                          r + "|" + r + r + "|" + r + r + "|" + r + r + r + "\"} 1\n");
}

std::string value_text(double v) {
  page p;
  p.gauge("g", "h");
  p.sample({}, v);
  const std::string& t = p.text();
  const std::size_t line = t.rfind("\ng ");
  return t.substr(line + 3, t.size() - line - 4);
}

template <class T>
std::string integer_text(T v) {
  page p;
  p.gauge("g", "h");
  p.sample({}, v);
  const std::string& t = p.text();
  const std::size_t line = t.rfind("\ng ");
  return t.substr(line + 3, t.size() - line - 4);
}

TEST(PrometheusPage, ValueFormatting) {
  EXPECT_EQ(value_text(3.0), "3");
  EXPECT_EQ(value_text(0.1), "0.1");
  EXPECT_EQ(value_text(-2.5), "-2.5");
  EXPECT_EQ(value_text(0), "0");
  EXPECT_EQ(value_text(0.0005), "0.0005");  // not 5e-04: le values match Go's client
  EXPECT_EQ(value_text(0.0001), "0.0001");
  EXPECT_EQ(value_text(0.00001), "1e-05");
  EXPECT_EQ(value_text(1e-9), "1e-09");
  EXPECT_EQ(value_text(1e6), "1000000");  // whole numbers without an exponent
  EXPECT_EQ(value_text(-123456789012.0), "-123456789012");
  EXPECT_EQ(value_text(1e20), "100000000000000000000");
  EXPECT_EQ(value_text(1e21), "1e+21");
  EXPECT_EQ(value_text(1.7e308), "1.7e+308");
  EXPECT_EQ(value_text(std::numeric_limits<double>::denorm_min()), "5e-324");
  EXPECT_EQ(value_text(123456.78901234567), "123456.78901234567");
  EXPECT_EQ(value_text(0.1 + 0.2), "0.30000000000000004");  // round-trips exactly
  EXPECT_EQ(std::stod(value_text(1.0 / 3)), 1.0 / 3);
  EXPECT_EQ(value_text(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(value_text(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(value_text(std::nan("")), "NaN");
  EXPECT_EQ(integer_text(std::int64_t{-42}), "-42");
  EXPECT_EQ(integer_text(std::numeric_limits<std::int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(integer_text(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(integer_text(std::size_t{123456789012}), "123456789012");
  EXPECT_EQ(integer_text(true), "1");
  EXPECT_EQ(integer_text(false), "0");
}

TEST(PrometheusHistogram, BucketMathsAndExactText) {
  histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 100.0}) {
    h.observe(v);
  }
  // 0.1 and 1 sit exactly on bounds and count there (le is "less or equal").
  ASSERT_EQ(h.bucket_counts().size(), 4u);
  EXPECT_EQ(h.bucket_counts()[0], 2u);
  EXPECT_EQ(h.bucket_counts()[1], 2u);
  EXPECT_EQ(h.bucket_counts()[2], 1u);
  EXPECT_EQ(h.bucket_counts()[3], 1u);
  EXPECT_EQ(h.count(), 6u);
  EXPECT_DOUBLE_EQ(h.sum(), 106.65);

  page p;
  p.histogram("dialerd_request_duration_seconds", "latency");
  p.histogram_sample({{"trunk", "t1"}}, h);
  EXPECT_EQ(p.text(),
            "# HELP dialerd_request_duration_seconds latency\n"
            "# TYPE dialerd_request_duration_seconds histogram\n"
            "dialerd_request_duration_seconds_bucket{trunk=\"t1\",le=\"0.1\"} 2\n"
            "dialerd_request_duration_seconds_bucket{trunk=\"t1\",le=\"1\"} 4\n"
            "dialerd_request_duration_seconds_bucket{trunk=\"t1\",le=\"10\"} 5\n"
            "dialerd_request_duration_seconds_bucket{trunk=\"t1\",le=\"+Inf\"} 6\n"
            "dialerd_request_duration_seconds_sum{trunk=\"t1\"} 106.65\n"
            "dialerd_request_duration_seconds_count{trunk=\"t1\"} 6\n");
}

TEST(PrometheusHistogram, EmptyAndUnlabelled) {
  page p;
  p.histogram("h_seconds", "x");
  p.histogram_sample({}, histogram({0.5}));
  EXPECT_EQ(p.text(),
            "# HELP h_seconds x\n# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"0.5\"} 0\nh_seconds_bucket{le=\"+Inf\"} 0\n"
            "h_seconds_sum 0\nh_seconds_count 0\n");
}

TEST(PrometheusHistogram, ExtremesLandInTheEndBuckets) {
  histogram h({1, 2});
  h.observe(-1);  // a clock step backwards is still "at most 1 s"
  h.observe(0);
  h.observe(std::numeric_limits<double>::infinity());
  h.observe(2.0000001);
  EXPECT_EQ(h.bucket_counts()[0], 2u);
  EXPECT_EQ(h.bucket_counts()[1], 0u);
  EXPECT_EQ(h.bucket_counts()[2], 2u);
  EXPECT_EQ(h.count(), 4u);
}

TEST(PrometheusHistogram, CumulativeBucketsAreMonotoneAndEndAtCount) {
  histogram h(latency_buckets());
  std::uint64_t x = 12345;
  for (int i = 0; i < 5000; ++i) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    h.observe(static_cast<double>(x >> 11) / static_cast<double>(1ull << 53) * 20.0);
  }
  std::uint64_t cumulative = 0;
  std::uint64_t previous = 0;
  for (std::size_t i = 0; i < h.bucket_counts().size(); ++i) {
    cumulative += h.bucket_counts()[i];
    EXPECT_GE(cumulative, previous);
    previous = cumulative;
  }
  EXPECT_EQ(cumulative, 5000u);
  EXPECT_EQ(h.count(), 5000u);
  // About half of uniform [0, 20) lies above 10 s, the last finite bound.
  EXPECT_GT(h.bucket_counts().back(), 2000u);
  EXPECT_LT(h.bucket_counts().back(), 3000u);
}

TEST(PrometheusHistogram, LatencyBuckets) {
  const std::vector<double> b = latency_buckets();
  page p;
  p.histogram("h_seconds", "h");
  p.histogram_sample({}, histogram(b));
  EXPECT_NE(p.text().find("h_seconds_bucket{le=\"0.0005\"} 0\n"), std::string::npos) << p.text();
  ASSERT_EQ(b.size(), 14u);
  EXPECT_EQ(b.front(), 0.0005);
  EXPECT_EQ(b.back(), 10.0);
  for (std::size_t i = 1; i < b.size(); ++i) {
    EXPECT_LT(b[i - 1], b[i]);
  }
}

TEST(PrometheusHistogram, CopyIsIndependent) {
  histogram h({1});
  h.observe(0.5);
  histogram copy = h;
  h.observe(0.5);
  EXPECT_EQ(copy.count(), 1u);
  EXPECT_EQ(h.count(), 2u);
}

TEST(PrometheusAtomicHistogram, SnapshotMatchesThePlainHistogram) {
  atomic_histogram a({0.1, 1, 10});
  histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 100.0}) {
    a.observe(v);
    h.observe(v);
  }
  const histogram s = a.snapshot();
  EXPECT_EQ(s.upper_bounds(), h.upper_bounds());
  EXPECT_TRUE(std::equal(s.bucket_counts().begin(), s.bucket_counts().end(),
                         h.bucket_counts().begin(), h.bucket_counts().end()));
  EXPECT_EQ(s.count(), 6u);
  EXPECT_DOUBLE_EQ(s.sum(), h.sum());
}

TEST(PrometheusAtomicHistogram, ConcurrentObserversLoseNothing) {
  atomic_histogram a({0.5, 1.5});
  constexpr int per_thread = 200000;
  std::thread writer([&] {
    for (int i = 0; i < per_thread; ++i) {
      a.observe(1.0);
    }
  });
  std::uint64_t last_seen = 0;
  for (int i = 0; i < per_thread; ++i) {
    a.observe(0.25);
    if (i % 1000 == 0) {
      // Snapshots taken while the writer runs never go backwards and count what they bucket.
      const histogram s = a.snapshot();
      EXPECT_GE(s.count(), last_seen);
      last_seen = s.count();
    }
  }
  writer.join();
  const histogram s = a.snapshot();
  EXPECT_EQ(s.bucket_counts()[0], std::uint64_t{per_thread});
  EXPECT_EQ(s.bucket_counts()[1], std::uint64_t{per_thread});
  EXPECT_EQ(s.bucket_counts()[2], 0u);
  EXPECT_EQ(s.count(), 2u * per_thread);
  EXPECT_DOUBLE_EQ(s.sum(), per_thread * 1.25);  // sums of 0.25 and 1.0 are exact in binary
}

// Misuse asserts in debug builds; in release builds the family or sample is left out (and the
// bug logged), which the second half of each test checks.
TEST(PrometheusPageDeathTest, FamilyStartedTwice) {
  page p;
  p.gauge("g", "h");
  p.sample({}, 1);
  EXPECT_DEBUG_DEATH(p.gauge("g", "again"), "family started twice");
#ifdef NDEBUG
  p.sample({}, 2);
  EXPECT_EQ(p.text(), "# HELP g h\n# TYPE g gauge\ng 1\n");
#endif
}

TEST(PrometheusPageDeathTest, CounterWithoutTotal) {
  page p;
  EXPECT_DEBUG_DEATH(p.counter("dialerd_store_jobs", "h"), "does not end in _total");
#ifdef NDEBUG
  p.sample({}, 1);
  EXPECT_EQ(p.text(), "");
#endif
}

TEST(PrometheusPageDeathTest, InvalidNames) {
  page p;
  EXPECT_DEBUG_DEATH(p.gauge("9lives", "h"), "invalid metric name");
  EXPECT_DEBUG_DEATH(p.gauge("has-dash", "h"), "invalid metric name");
  EXPECT_DEBUG_DEATH(p.gauge("", "h"), "invalid metric name");
  p.gauge("ok:name_1", "h");
  EXPECT_DEBUG_DEATH(p.sample({{"bad-label", "v"}}, 1), "invalid label name");
  EXPECT_DEBUG_DEATH(p.sample({{"__reserved", "v"}}, 1), "invalid label name");
  EXPECT_DEBUG_DEATH(p.sample({{"a", "v"}, {"a", "w"}}, 1), "label given twice");
  p.sample({{"_fine9", "v"}}, 1);
  EXPECT_NE(p.text().find("ok:name_1{_fine9=\"v\"} 1\n"), std::string::npos);
}

TEST(PrometheusPageDeathTest, SamplesMustMatchTheirFamily) {
  page p;
  EXPECT_DEBUG_DEATH(p.sample({}, 1), "sample before any family");
  p.histogram("h_seconds", "h");
  EXPECT_DEBUG_DEATH(p.sample({}, 1), "does not match its family");
  EXPECT_DEBUG_DEATH(p.histogram_sample({{"le", "1"}}, histogram({1})), "own le label");
  p.counter("c_total", "h");
  EXPECT_DEBUG_DEATH(p.histogram_sample({}, histogram({1})), "does not match its family");
  EXPECT_DEBUG_DEATH(p.sample({}, -1), "counter sample is negative");
  EXPECT_DEBUG_DEATH(p.sample({}, -0.5), "counter sample is negative");
}

// --- promtool ---------------------------------------------------------------------------------

std::optional<std::string> find_in_path(const char* program) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!rest.empty()) {
    const std::size_t colon = rest.find(':');
    const std::string candidate = std::string(rest.substr(0, colon)) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
  }
  return std::nullopt;
}

struct run_result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `promtool check metrics` with `page_text` on its stdin (from a file, so neither side can
// block on a full pipe) and collects what it prints.
run_result promtool_check(const std::string& promtool, const std::string& page_text) {
  const std::string input =
      ::testing::TempDir() + "/prometheus_test_page_" + std::to_string(::getpid()) + ".txt";
  {
    std::ofstream out(input, std::ios::binary);
    out << page_text;
  }
  int pipe_fds[2];
  EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, input.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  char* argv[] = {const_cast<char*>(promtool.c_str()), const_cast<char*>("check"),
                  const_cast<char*>("metrics"), nullptr};
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, promtool.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  run_result r;
  if (spawned != 0) {
    ::close(pipe_fds[0]);
    ADD_FAILURE() << "posix_spawn(" << promtool << "): " << std::strerror(spawned);
    return r;
  }
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0) {
    r.output.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::remove(input.c_str());
  return r;
}

// Every family of docs/operations.md, with fake values and more than one series where the
// family has labels.
std::string every_documented_family() {
  page p;
  p.counter("dialerd_calls_started_total", "Calls started, by campaign and trunk.");
  p.sample({{"campaign", "spring"}, {"trunk", "dubai-main"}}, std::uint64_t{5900});
  p.sample({{"campaign", "autumn"}, {"trunk", "dubai-main"}}, std::uint64_t{0});
  p.counter("dialerd_calls_failed_total", "Requests that started no call, by error class.");
  p.sample({{"campaign", "spring"}, {"trunk", "dubai-main"}, {"class", "http_429"}}, 3);
  p.sample({{"campaign", "spring"}, {"trunk", "dubai-main"}, {"class", "timeout_after_send"}}, 1);
  p.counter("dialerd_calls_ended_total", "Calls ended, by end reason.");
  for (const char* reason :
       {"completed", "no_answer", "busy", "voicemail", "failed", "max_duration", "other"}) {
    p.sample({{"campaign", "spring"}, {"reason", reason}}, 10);
  }
  p.gauge("dialerd_calls_active", "Slots held: dialing, started and unknown.");
  p.sample({{"trunk", "dubai-main"}}, 43);
  p.gauge("dialerd_trunk_capacity", "max_concurrent_calls in force.");
  p.sample({{"trunk", "dubai-main"}}, 200);
  p.gauge("dialerd_trunk_reserved_slots", "Slots kept free for other traffic.");
  p.sample({{"trunk", "dubai-main"}}, 10);
  p.gauge("dialerd_rate_target_calls_per_second", "The configured pace in force.");
  p.sample({{"scope", "trunk"}, {"name", "dubai-main"}}, 20.0);
  p.sample({{"scope", "campaign"}, {"name", "spring"}}, 10.0);
  p.gauge("dialerd_rate_achieved_calls_per_second", "Starts per second over the last 10 s.");
  p.sample({{"scope", "trunk"}, {"name", "dubai-main"}}, 19.7);
  p.sample({{"scope", "campaign"}, {"name", "spring"}}, 1.0 / 3);
  p.gauge("dialerd_tasks", "Tasks by state (refreshed every 5 s).");
  for (const char* state : {"pending", "dialing", "started", "ended", "ended_unconfirmed", "failed",
                            "unknown", "suppressed"}) {
    p.sample({{"campaign", "spring"}, {"state", state}}, 4000);
  }
  p.gauge("dialerd_campaign_paused", "1 when paused or cancelled.");
  p.sample({{"campaign", "spring"}}, false);
  p.sample({{"campaign", "weird \"id\"\\\n"}}, true);
  p.histogram("dialerd_request_duration_seconds",
              "calls/start latency, first byte written to last byte read.");
  histogram request(latency_buckets());
  for (double v : {0.0004, 0.012, 0.2, 0.2, 3.0, 30.0}) {
    request.observe(v);
  }
  p.histogram_sample({{"trunk", "dubai-main"}}, request);
  p.histogram_sample({{"trunk", "idle"}}, histogram(latency_buckets()));
  p.counter("dialerd_webhooks_total", "Webhooks by event and result.");
  p.sample({{"event", "session.created"}, {"result", "applied"}}, 100);
  p.sample({{"event", "session.ended"}, {"result", "duplicate"}}, 2);
  p.sample({{"event", "unknown"}, {"result", "bad_request"}}, 1);
  p.counter("dialerd_webhook_refusals_total", "Refused by the HTTP layer, by status.");
  for (const char* status : {"408", "413", "431", "503"}) {
    p.sample({{"status", status}}, 0);
  }
  p.counter("dialerd_csv_rows_rejected_total", "CSV rows that became no task, by reason.");
  p.sample({{"campaign", "spring"}, {"reason", "invalid_phone"}}, 12);
  p.histogram("dialerd_store_commit_duration_seconds",
              "One group commit, BEGIN to COMMIT (fsync included).");
  atomic_histogram commits(latency_buckets());
  commits.observe(0.002);
  commits.observe(0.04);
  p.histogram_sample({}, commits.snapshot());
  p.counter("dialerd_store_jobs_total", "Store jobs run.");
  p.sample({}, std::uint64_t{123456789});
  p.gauge("dialerd_pool_connections", "Keep-alive HTTPS connections to the API, by state.");
  for (const char* state : {"connecting", "idle", "busy"}) {
    p.sample({{"state", state}}, 4);
  }
  p.counter("dialerd_retry_after_holds_total", "Times the trunk was held by 429/503.");
  p.sample({{"trunk", "dubai-main"}}, 2);
  p.gauge("dialerd_trunk_held", "1 while a Retry-After hold is in force.");
  p.sample({{"trunk", "dubai-main"}}, 0);
  p.counter("dialerd_session_pulls_total", "Settling pulls of calls with no session.ended.");
  for (const char* result : {"settled", "active", "not_found", "error"}) {
    p.sample({{"result", result}}, 1);
  }
  p.gauge("dialerd_build_info", "Always 1; the version is the label.");
  p.sample({{"version", "0.3.0"}}, 1);
  return p.text();
}

TEST(PrometheusPromtool, EveryDocumentedFamilyIsClean) {
  const auto promtool = find_in_path("promtool");
  if (!promtool) {
    GTEST_SKIP() << "promtool is not installed (Debian package `prometheus`; scripts/setup.sh "
                    "installs it): the page's syntax and lint are not checked";
  }
  const std::string text = every_documented_family();
  for (const char* family : {"dialerd_calls_started_total",
                             "dialerd_calls_failed_total",
                             "dialerd_calls_ended_total",
                             "dialerd_calls_active",
                             "dialerd_trunk_capacity",
                             "dialerd_trunk_reserved_slots",
                             "dialerd_rate_target_calls_per_second",
                             "dialerd_rate_achieved_calls_per_second",
                             "dialerd_tasks",
                             "dialerd_campaign_paused",
                             "dialerd_request_duration_seconds",
                             "dialerd_webhooks_total",
                             "dialerd_webhook_refusals_total",
                             "dialerd_csv_rows_rejected_total",
                             "dialerd_store_commit_duration_seconds",
                             "dialerd_store_jobs_total",
                             "dialerd_pool_connections",
                             "dialerd_retry_after_holds_total",
                             "dialerd_trunk_held",
                             "dialerd_session_pulls_total",
                             "dialerd_build_info"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  const run_result r = promtool_check(*promtool, text);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n--- page ---\n" << text;
  EXPECT_EQ(r.output, "") << "--- page ---\n" << text;
}

TEST(PrometheusPromtool, SpecialValuesAndEscapesAreClean) {
  const auto promtool = find_in_path("promtool");
  if (!promtool) {
    GTEST_SKIP() << "promtool is not installed: the page's syntax is not checked";
  }
  page p;
  p.gauge("odd_values", "Values promtool must parse.");
  p.sample({{"v", "inf"}}, std::numeric_limits<double>::infinity());
  p.sample({{"v", "-inf"}}, -std::numeric_limits<double>::infinity());
  p.sample({{"v", "nan"}}, std::nan(""));
  p.sample({{"v", "tiny"}}, 1e-300);
  p.sample({{"v", "huge"}}, 1.7e308);
  p.sample({{"v", "min"}}, std::numeric_limits<std::int64_t>::min());
  p.sample({{"v", "a\\b\"c\nd \xff"}}, 1);
  const run_result r = promtool_check(*promtool, p.text());
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n--- page ---\n" << p.text();
  EXPECT_EQ(r.output, "");
}

// The harness can fail: promtool's lint rejects a counter without _total, written by hand.
TEST(PrometheusPromtool, HarnessSeesARejection) {
  const auto promtool = find_in_path("promtool");
  if (!promtool) {
    GTEST_SKIP() << "promtool is not installed";
  }
  const run_result r = promtool_check(*promtool, "# HELP jobs h\n# TYPE jobs counter\njobs 1\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("_total"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace dialer::prom
