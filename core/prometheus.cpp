#include "core/prometheus.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <system_error>

#include "core/log.hpp"

namespace dialer::prom {
namespace {

// Logged in every build so a release daemon says why a family is missing from its page; the
// assert then stops debug builds (and death tests match the logged text).
void bug(const char* what, std::string_view name) {
  DIALER_LOG_ERROR("bug: prometheus page: %s: '%.*s'", what, static_cast<int>(name.size()),
                   name.data());
  assert(false && "prometheus page misuse (see the log line above)");
}

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool valid_metric_name(std::string_view name) {
  if (name.empty() || !(is_alpha(name[0]) || name[0] == ':')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_alpha(c) || is_digit(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || !is_alpha(name[0]) || name.starts_with("__")) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) { return is_alpha(c) || is_digit(c); });
}

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when it is not one.
std::size_t utf8_sequence_length(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) {
    return 1;
  }
  std::size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    lo = b0 == 0xE0 ? 0xA0 : 0x80;
    hi = b0 == 0xED ? 0x9F : 0xBF;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    lo = b0 == 0xF0 ? 0x90 : 0x80;
    hi = b0 == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (s.size() < n || byte(1) < lo || byte(1) > hi) {
    return 0;
  }
  for (std::size_t i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) {
      return 0;
    }
  }
  return n;
}

// Label values escape backslash, double quote and newline; HELP escapes only backslash and
// newline (the format's two escaping rules).
void append_escaped(std::string& out, std::string_view s, bool quote) {
  while (!s.empty()) {
    const std::size_t n = utf8_sequence_length(s);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      s.remove_prefix(1);
      continue;
    }
    const char c = s[0];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out.append(s.data(), n);
    }
    s.remove_prefix(n);
  }
}

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  // The shortest digits that parse back to the same double. Plain decimals from 1e-4 (where Go's
  // client also switches, so le="0.0005" reads the same from every exporter) up to 1e21, so
  // whole numbers print without an exponent; scientific notation outside that range.
  const double magnitude = std::fabs(v);
  const auto format = v == 0 || (magnitude >= 1e-4 && magnitude < 1e21)
                          ? std::chars_format::fixed
                          : std::chars_format::scientific;
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v, format);
  assert(ec == std::errc());
  out.append(buffer, end);
}

template <class Integer>
void append_integer(std::string& out, Integer v) {
  char buffer[24];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  assert(ec == std::errc());
  out.append(buffer, end);
}

// Constants in code make the bounds, so a bad one is a bug; release builds repair them rather
// than write buckets Prometheus would reject.
std::vector<double> checked_bounds(std::vector<double> bounds) {
  const bool finite =
      std::all_of(bounds.begin(), bounds.end(), [](double b) { return std::isfinite(b); });
  const bool increasing =
      std::adjacent_find(bounds.begin(), bounds.end(), std::greater_equal<>()) == bounds.end();
  assert(finite && increasing && "histogram bounds must be finite and strictly increasing");
  if (!finite || !increasing) {
    std::erase_if(bounds, [](double b) { return !std::isfinite(b); });
    std::sort(bounds.begin(), bounds.end());
    bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  }
  return bounds;
}

std::size_t bucket_index(const std::vector<double>& bounds, double v) {
  return static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) -
                                  bounds.begin());
}

}  // namespace

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(checked_bounds(std::move(upper_bounds))), counts_(bounds_.size() + 1, 0) {}

histogram::histogram(std::vector<double> bounds, std::vector<std::uint64_t> counts, double sum)
    : bounds_(std::move(bounds)), counts_(std::move(counts)), sum_(sum) {
  for (std::uint64_t c : counts_) {
    count_ += c;
  }
}

void histogram::observe(double seconds) {
  assert(!std::isnan(seconds) && "histogram::observe(NaN)");
  if (std::isnan(seconds)) {
    return;
  }
  ++counts_[bucket_index(bounds_, seconds)];
  ++count_;
  sum_ += seconds;
}

atomic_histogram::atomic_histogram(std::vector<double> upper_bounds)
    : bounds_(checked_bounds(std::move(upper_bounds))),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void atomic_histogram::observe(double seconds) {
  assert(!std::isnan(seconds) && "atomic_histogram::observe(NaN)");
  if (std::isnan(seconds)) {
    return;
  }
  counts_[bucket_index(bounds_, seconds)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(seconds, std::memory_order_relaxed);
}

histogram atomic_histogram::snapshot() const {
  std::vector<std::uint64_t> counts(bounds_.size() + 1);
  for (std::size_t i = 0; i < counts.size(); ++i) {
    counts[i] = counts_[i].load(std::memory_order_relaxed);
  }
  return histogram(bounds_, std::move(counts), sum_.load(std::memory_order_relaxed));
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void page::counter(std::string_view name, std::string_view help) {
  start(family_type::counter, name, help);
}

void page::gauge(std::string_view name, std::string_view help) {
  start(family_type::gauge, name, help);
}

void page::histogram(std::string_view name, std::string_view help) {
  start(family_type::histogram, name, help);
}

void page::start(family_type type, std::string_view name, std::string_view help) {
  name_.assign(name);
  type_ = family_type::dropped;
  if (!valid_metric_name(name)) {
    bug("invalid metric name", name);
    return;
  }
  if (type == family_type::counter && !name.ends_with("_total")) {
    bug("counter name does not end in _total", name);
    return;
  }
  if (help.empty()) {
    bug("family without help text", name);
    return;
  }
  if (std::find(started_.begin(), started_.end(), name) != started_.end()) {
    bug("family started twice", name);
    return;
  }
  started_.emplace_back(name);
  type_ = type;
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  append_escaped(text_, help, false);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += type == family_type::counter ? " counter\n"
           : type == family_type::gauge ? " gauge\n"
                                        : " histogram\n";
}

bool page::sample_allowed(labels l, bool histogram_sample) {
  if (type_ == family_type::dropped) {
    return false;  // already reported when the family started
  }
  const bool fits = histogram_sample ? type_ == family_type::histogram
                                     : type_ == family_type::counter || type_ == family_type::gauge;
  if (!fits) {
    bug(type_ == family_type::none ? "sample before any family"
                                   : "sample does not match its family's type",
        name_);
    return false;
  }
  for (auto i = l.begin(); i != l.end(); ++i) {
    if (!valid_label_name(i->first)) {
      bug("invalid label name", i->first);
      return false;
    }
    if (histogram_sample && i->first == "le") {
      bug("histogram sample with its own le label", name_);
      return false;
    }
    for (auto j = l.begin(); j != i; ++j) {
      if (j->first == i->first) {
        bug("label given twice", i->first);
        return false;
      }
    }
  }
  return true;
}

void page::write_series(std::string_view suffix, labels l, std::string_view le) {
  text_ += name_;
  text_ += suffix;
  if (l.size() == 0 && le.empty()) {
    return;
  }
  char separator = '{';
  for (const auto& [label, value] : l) {
    text_ += separator;
    text_ += label;
    text_ += "=\"";
    append_escaped(text_, value, true);
    text_ += '"';
    separator = ',';
  }
  if (!le.empty()) {
    text_ += separator;
    text_ += "le=\"";
    text_ += le;
    text_ += '"';
  }
  text_ += '}';
}

void page::sample(labels l, double value) {
  if (!sample_allowed(l, false)) {
    return;
  }
  if (type_ == family_type::counter && !(value >= 0)) {
    bug("counter sample is negative or NaN", name_);
    return;
  }
  write_series({}, l, {});
  text_ += ' ';
  append_double(text_, value);
  text_ += '\n';
}

void page::sample_signed(labels l, std::int64_t value) {
  if (!sample_allowed(l, false)) {
    return;
  }
  if (type_ == family_type::counter && value < 0) {
    bug("counter sample is negative", name_);
    return;
  }
  write_series({}, l, {});
  text_ += ' ';
  append_integer(text_, value);
  text_ += '\n';
}

void page::sample_unsigned(labels l, std::uint64_t value) {
  if (!sample_allowed(l, false)) {
    return;
  }
  write_series({}, l, {});
  text_ += ' ';
  append_integer(text_, value);
  text_ += '\n';
}

void page::histogram_sample(labels l, const prom::histogram& h) {
  if (!sample_allowed(l, true)) {
    return;
  }
  const std::vector<double>& bounds = h.upper_bounds();
  const std::span<const std::uint64_t> counts = h.bucket_counts();
  std::string le;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    le.clear();
    append_double(le, i < bounds.size() ? bounds[i] : INFINITY);
    write_series("_bucket", l, le);
    text_ += ' ';
    append_integer(text_, cumulative);
    text_ += '\n';
  }
  write_series("_sum", l, {});
  text_ += ' ';
  append_double(text_, h.sum());
  text_ += '\n';
  write_series("_count", l, {});
  text_ += ' ';
  append_integer(text_, h.count());
  text_ += '\n';
}

}  // namespace dialer::prom
