#include "scheduler/classify.hpp"

#include <array>
#include <charconv>
#include <ctime>
#include <vector>

namespace dialer {

std::string_view to_string(call_verdict v) {
  switch (v) {
    case call_verdict::started: return "started";
    case call_verdict::retry_later: return "retry_later";
    case call_verdict::hold_trunk: return "hold_trunk";
    case call_verdict::failed: return "failed";
    case call_verdict::pause_campaign: return "pause_campaign";
    case call_verdict::ambiguous: return "ambiguous";
  }
  return "?";
}

namespace {

std::string_view status_label(int status) {
  // Labels are string literals so classification can hand out string_views safely.
  switch (status) {
    case 300: return "http_300";
    case 301: return "http_301";
    case 302: return "http_302";
    case 303: return "http_303";
    case 307: return "http_307";
    case 308: return "http_308";
    case 400: return "http_400";
    case 401: return "http_401";
    case 403: return "http_403";
    case 404: return "http_404";
    case 405: return "http_405";
    case 408: return "http_408";
    case 409: return "http_409";
    case 413: return "http_413";
    case 415: return "http_415";
    case 422: return "http_422";
    case 429: return "http_429";
    case 500: return "http_500";
    case 501: return "http_501";
    case 502: return "http_502";
    case 503: return "http_503";
    case 504: return "http_504";
  }
  if (status >= 200 && status < 300) {
    return "http_2xx";
  }
  if (status >= 300 && status < 400) {
    return "http_3xx";
  }
  if (status >= 400 && status < 500) {
    return "http_4xx";
  }
  return "http_5xx";
}

}  // namespace

classification classify(const http_response& r, bool has_session_id) {
  switch (r.error) {
    case transport_error::none:
      break;
    case transport_error::connect_failed:
    case transport_error::tls_failed:
    case transport_error::reset_before_send:
    case transport_error::timeout_before_send:
    case transport_error::shutdown:
      return {call_verdict::retry_later, to_string(r.error)};
    case transport_error::reset_after_send:
    case transport_error::timeout_after_send:
    case transport_error::protocol_error:
      return {call_verdict::ambiguous, to_string(r.error)};
  }

  const int s = r.status;
  if (s >= 200 && s < 300) {
    if (has_session_id) {
      return {call_verdict::started, ""};
    }
    // The server accepted the call but we cannot correlate it: never redial blindly.
    return {call_verdict::ambiguous, "no_session_id"};
  }
  if (s == 401 || s == 403 || s == 404) {
    return {call_verdict::pause_campaign, status_label(s)};
  }
  if (s >= 300 && s < 400) {
    // Redirects are never followed. A redirect means the base URL is wrong: stop the campaign;
    // the task itself is unknowable in principle, so it is not retried.
    return {call_verdict::pause_campaign, status_label(s), true};
  }
  if (s == 429 || s == 503) {
    return {call_verdict::hold_trunk, status_label(s)};
  }
  if (s == 409) {
    return {call_verdict::retry_later, status_label(s)};
  }
  if (s == 408) {
    // Request Timeout from the server: it did not act on a request it never finished reading.
    return {call_verdict::retry_later, status_label(s)};
  }
  if (s >= 400 && s < 500) {
    return {call_verdict::failed, status_label(s)};
  }
  // 500, 502, 504 and any other 5xx: the call may have been placed.
  return {call_verdict::ambiguous, status_label(s)};
}

namespace {

bool parse_int(std::string_view s, int& out) {
  if (s.empty() || s.front() < '0' || s.front() > '9') {
    return false;  // from_chars takes a sign; no field of a date has one
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

int month_index(std::string_view m) {
  static constexpr std::array<std::string_view, 12> months = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (months[i] == m) {
      return i;
    }
  }
  return -1;
}

std::optional<std::int64_t> to_unix(int year, int month0, int day, int h, int m, int s) {
  if (month0 < 0 || day < 1 || day > 31 || h > 23 || m > 59 || s > 60 || year < 1970) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month0;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = s;
  return static_cast<std::int64_t>(timegm(&tm));
}

bool parse_hms(std::string_view t, int& h, int& m, int& s) {
  return t.size() == 8 && t[2] == ':' && t[5] == ':' && parse_int(t.substr(0, 2), h) &&
         parse_int(t.substr(3, 2), m) && parse_int(t.substr(6, 2), s);
}

std::vector<std::string_view> split_ws(std::string_view v) {
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && v[i] == ' ') {
      ++i;
    }
    std::size_t j = i;
    while (j < v.size() && v[j] != ' ') {
      ++j;
    }
    if (j > i) {
      parts.push_back(v.substr(i, j - i));
    }
    i = j;
  }
  return parts;
}

std::optional<std::int64_t> parse_http_date(std::string_view v) {
  auto parts = split_ws(v);
  int day = 0;
  int year = 0;
  int h = 0;
  int m = 0;
  int s = 0;
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  if (parts.size() == 6 && parts[0].size() == 4 && parts[0][3] == ',' && parts[5] == "GMT") {
    if (parse_int(parts[1], day) && parse_int(parts[3], year) && parse_hms(parts[4], h, m, s)) {
      return to_unix(year, month_index(parts[2]), day, h, m, s);
    }
    return std::nullopt;
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
  if (parts.size() == 4 && parts[3] == "GMT" && parts[1].size() == 9 && parts[1][2] == '-' &&
      parts[1][6] == '-') {
    if (parse_int(parts[1].substr(0, 2), day) && parse_int(parts[1].substr(7, 2), year) &&
        parse_hms(parts[2], h, m, s)) {
      year += year < 70 ? 2000 : 1900;
      return to_unix(year, month_index(parts[1].substr(3, 3)), day, h, m, s);
    }
    return std::nullopt;
  }
  // asctime: "Sun Nov  6 08:49:37 1994"
  if (parts.size() == 5) {
    if (parse_int(parts[2], day) && parse_hms(parts[3], h, m, s) && parse_int(parts[4], year)) {
      return to_unix(year, month_index(parts[1]), day, h, m, s);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<nanoseconds> parse_retry_after(std::string_view value, system_time now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  if (value.empty()) {
    return std::nullopt;
  }
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    if (value.size() > 9) {
      // More than 31 years: a broken header, not advice to follow.
      return std::nullopt;
    }
    int secs = 0;
    if (!parse_int(value, secs)) {
      return std::nullopt;
    }
    return std::chrono::seconds(secs);
  }
  auto when = parse_http_date(value);
  if (!when) {
    return std::nullopt;
  }
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
  const std::int64_t delta = *when - now_s.count();
  return delta > 0 ? nanoseconds(std::chrono::seconds(delta)) : nanoseconds(0);
}

}  // namespace dialer
