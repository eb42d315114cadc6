#pragma once
// One-line logs on stderr, with a syslog priority prefix ("<4>") that journald understands when
// running under systemd. Never pass a secret to these functions.
#include <cstdarg>

namespace dialer {

enum class log_level { error = 3, warning = 4, info = 6, debug = 7 };

void log_line(log_level level, const char* format, ...) __attribute__((format(printf, 2, 3)));
// Drops info/debug lines (tests and benchmarks keep stderr quiet); errors always print.
void set_log_threshold(log_level level);
// text: "dialerd: info: …" (or "<6>…" under journald). json: one object per line for log
// shippers: {"ts":"2026-11-28T10:15:02.123Z","level":"info","priority":6,"msg":"…"}.
enum class log_format { text, json };
void set_log_format(log_format format);

#define DIALER_LOG_INFO(...) ::dialer::log_line(::dialer::log_level::info, __VA_ARGS__)
#define DIALER_LOG_WARN(...) ::dialer::log_line(::dialer::log_level::warning, __VA_ARGS__)
#define DIALER_LOG_ERROR(...) ::dialer::log_line(::dialer::log_level::error, __VA_ARGS__)

}  // namespace dialer
