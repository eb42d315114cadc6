#pragma once
// The Prometheus text exposition format 0.0.4, written by hand. There is no registry: at scrape
// time the daemon builds a `page` from the counters its modules own (STYLE.md, Metrics), so a
// scrape reads plain members on the loop thread and nothing is shared.
//
// Misuse is a bug in the caller, not an input error: an invalid metric or label name, a counter
// not named *_total, a sample outside a family of the right type, or a family started twice
// asserts in debug builds. In release builds that family (or sample) is left out of the page and
// the bug is logged, because Prometheus rejects a whole scrape that contains one bad line.
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace dialer::prom {

// What GET /metrics answers with.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

// Label name/value pairs in output order. Values may hold any bytes: they are escaped, and
// invalid UTF-8 is replaced by U+FFFD (Prometheus drops a scrape with invalid UTF-8).
using labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Fixed upper bounds in seconds (finite, strictly increasing; +Inf is implied). observe() is
// O(log buckets) and never allocates. Not thread-safe: one owning thread; copy it to read it
// elsewhere (the copy allocates). See atomic_histogram for a histogram written on one thread and
// read on another.
class histogram {
 public:
  explicit histogram(std::vector<double> upper_bounds);

  // A value equal to a bound counts in that bound's bucket (le = "less or equal"). NaN is not a
  // duration: it asserts in debug builds and is dropped in release builds.
  void observe(double seconds);

  [[nodiscard]] const std::vector<double>& upper_bounds() const { return bounds_; }
  // Per bucket, not cumulative: upper_bounds().size() + 1 entries, the last one for +Inf.
  [[nodiscard]] std::span<const std::uint64_t> bucket_counts() const { return counts_; }
  [[nodiscard]] std::uint64_t count() const { return count_; }
  [[nodiscard]] double sum() const { return sum_; }

 private:
  friend class atomic_histogram;
  histogram(std::vector<double> bounds, std::vector<std::uint64_t> counts, double sum);

  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

// The same buckets, observed from one thread (the store's writer records commit latency on its
// own thread) and read from another (the loop's scrape). observe() is lock-free, allocation-free
// and uses relaxed atomics; snapshot() may run concurrently with it. A snapshot's _count always
// equals its +Inf bucket; its _sum may include an observation whose bucket it has not seen yet,
// or miss one it has (harmless for rate(sum)/rate(count) over a scrape interval).
class atomic_histogram {
 public:
  explicit atomic_histogram(std::vector<double> upper_bounds);
  atomic_histogram(const atomic_histogram&) = delete;
  atomic_histogram& operator=(const atomic_histogram&) = delete;

  void observe(double seconds);
  [[nodiscard]] histogram snapshot() const;
  [[nodiscard]] const std::vector<double>& upper_bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Request-latency buckets, 0.5 ms .. 10 s (14 bounds, roughly 1-2.5-5 per decade).
[[nodiscard]] std::vector<double> latency_buckets();

// One scrape's page. Start a family, then give its samples; families appear in the order they
// were started. Use it on one thread; text() stays valid until the next call on the page.
class page {
 public:
  // Writes # HELP and # TYPE. `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in _total,
  // `help` is not empty (newlines and backslashes in it are escaped). Each name once per page.
  void counter(std::string_view name, std::string_view help);
  void gauge(std::string_view name, std::string_view help);
  void histogram(std::string_view name, std::string_view help);

  // A sample of the current counter or gauge family. Label names match [a-zA-Z_][a-zA-Z0-9_]*
  // and do not start with "__". Integers print as integers (bool as 0 or 1); doubles print in
  // the shortest form that reads back exactly (plain decimals from 1e-4 to 1e21, so whole
  // numbers have no exponent; scientific outside), and as +Inf, -Inf or NaN.
  void sample(labels l, double value);
  template <std::integral T>
  void sample(labels l, T value) {
    if constexpr (std::is_signed_v<T>) {
      sample_signed(l, static_cast<std::int64_t>(value));
    } else {
      sample_unsigned(l, static_cast<std::uint64_t>(value));
    }
  }

  // A sample of the current histogram family: name_bucket{...,le="b"} (cumulative, ending with
  // le="+Inf"), name_sum{...} and name_count{...}. `l` must not contain "le".
  void histogram_sample(labels l, const prom::histogram& h);

  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  enum class family_type { none, counter, gauge, histogram, dropped };

  void start(family_type type, std::string_view name, std::string_view help);
  void sample_signed(labels l, std::int64_t value);
  void sample_unsigned(labels l, std::uint64_t value);
  [[nodiscard]] bool sample_allowed(labels l, bool histogram_sample);
  void write_series(std::string_view suffix, labels l, std::string_view le);

  std::string text_;
  std::string name_;  // of the current family
  family_type type_ = family_type::none;
  std::vector<std::string> started_;
};

}  // namespace dialer::prom
