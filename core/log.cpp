#include "core/log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dialer {
namespace {

std::atomic<int> threshold{static_cast<int>(log_level::info)};

bool under_journald() {
  static const bool yes = std::getenv("JOURNAL_STREAM") != nullptr;
  return yes;
}

}  // namespace

void set_log_threshold(log_level level) { threshold = static_cast<int>(level); }

void log_line(log_level level, const char* format, ...) {
  if (static_cast<int>(level) > threshold.load(std::memory_order_relaxed)) {
    return;
  }
  char buffer[2048];
  int n = 0;
  if (under_journald()) {
    n = std::snprintf(buffer, sizeof buffer, "<%d>", static_cast<int>(level));
  } else {
    const char* name = level == log_level::error     ? "error"
                       : level == log_level::warning ? "warning"
                       : level == log_level::info    ? "info"
                                                     : "debug";
    n = std::snprintf(buffer, sizeof buffer, "dialerd: %s: ", name);
  }
  va_list args;
  va_start(args, format);
  const int m = std::vsnprintf(buffer + n, sizeof buffer - n - 1, format, args);
  va_end(args);
  std::size_t len = std::strlen(buffer);
  (void)m;
  buffer[len++] = '\n';
  // One write per line so that lines from several threads never interleave.
  std::fwrite(buffer, 1, len, stderr);
}

}  // namespace dialer
