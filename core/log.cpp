#include "core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "core/json.hpp"

namespace dialer {
namespace {

std::atomic<int> threshold{static_cast<int>(log_level::info)};
std::atomic<bool> json_format{false};

const char* level_name(log_level level) {
  return level == log_level::error     ? "error"
         : level == log_level::warning ? "warning"
         : level == log_level::info    ? "info"
                                       : "debug";
}

bool under_journald() {
  static const bool yes = std::getenv("JOURNAL_STREAM") != nullptr;
  return yes;
}

}  // namespace

void set_log_threshold(log_level level) {
  threshold = static_cast<int>(level);
}

void set_log_format(log_format format) {
  json_format = format == log_format::json;
}

void log_line(log_level level, const char* format, ...) {
  if (static_cast<int>(level) > threshold.load(std::memory_order_relaxed)) {
    return;
  }
  char message[2048];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof message, format, args);
  va_end(args);
  std::string line;
  line.reserve(std::strlen(message) + 96);
  if (json_format.load(std::memory_order_relaxed)) {
    const auto now = std::chrono::system_clock::now();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    gmtime_r(&secs, &utc);
    char ts[40];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(ms % 1000));
    line += "{\"ts\":\"";
    line += ts;
    line += "\",\"level\":\"";
    line += level_name(level);
    line += "\",\"priority\":" + std::to_string(static_cast<int>(level)) + ",\"msg\":";
    append_json_string(line, message);
    line += '}';
  } else if (under_journald()) {
    line += "<" + std::to_string(static_cast<int>(level)) + ">";
    line += message;
  } else {
    line += "dialerd: ";
    line += level_name(level);
    line += ": ";
    line += message;
  }
  line += '\n';
  // One write per line so that lines from several threads never interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace dialer
