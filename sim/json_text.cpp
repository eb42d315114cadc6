#include "sim/json_text.hpp"

#include <charconv>

namespace dialer::sim {

namespace {

struct civil_time {
  std::int64_t year;
  int month;  // 1..12
  int day;    // 1..31
  int hour;
  int minute;
  int second;
  int weekday;  // 0 = Sunday
};

// Howard Hinnant's civil_from_days: exact for the proleptic Gregorian calendar and independent of
// the C library's locale and time zone state.
civil_time to_civil(system_time t) {
  const std::int64_t secs = std::chrono::duration_cast<seconds>(t.time_since_epoch()).count();
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  civil_time c{};
  c.hour = static_cast<int>(rem / 3600);
  c.minute = static_cast<int>(rem % 3600 / 60);
  c.second = static_cast<int>(rem % 60);
  c.weekday = static_cast<int>((days + 4) % 7);  // 1970-01-01 was a Thursday
  if (c.weekday < 0) {
    c.weekday += 7;
  }
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  c.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  c.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  c.year = yoe + era * 400 + (c.month <= 2 ? 1 : 0);
  return c;
}

void append_2(std::string& out, int v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

void append_year(std::string& out, std::int64_t year) {
  if (year >= 0 && year < 1000) {
    out.append(year < 10 ? "000" : year < 100 ? "00" : "0");
  }
  append_int(out, year);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') {
      continue;
    }
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.append("\\u00");
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 0xf]);
        break;
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_status_counts(std::string& out, std::span<const std::int64_t> by_status) {
  out.push_back('{');
  bool first = true;
  for (std::size_t status = 0; status < by_status.size(); ++status) {
    if (by_status[status] == 0) {
      continue;
    }
    if (!first) {
      out.push_back(',');
    }
    first = false;
    out.push_back('"');
    append_int(out, static_cast<std::int64_t>(status));
    out.append("\":");
    append_int(out, by_status[status]);
  }
  out.push_back('}');
}

void append_iso8601(std::string& out, system_time t) {
  const civil_time c = to_civil(t);
  append_year(out, c.year);
  out.push_back('-');
  append_2(out, c.month);
  out.push_back('-');
  append_2(out, c.day);
  out.push_back('T');
  append_2(out, c.hour);
  out.push_back(':');
  append_2(out, c.minute);
  out.push_back(':');
  append_2(out, c.second);
  out.push_back('Z');
}

void append_http_date(std::string& out, system_time t) {
  static constexpr std::string_view weekdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const civil_time c = to_civil(t);
  out.append(weekdays[c.weekday]);
  out.append(", ");
  append_2(out, c.day);
  out.push_back(' ');
  out.append(months[c.month - 1]);
  out.push_back(' ');
  append_year(out, c.year);
  out.push_back(' ');
  append_2(out, c.hour);
  out.push_back(':');
  append_2(out, c.minute);
  out.push_back(':');
  append_2(out, c.second);
  out.append(" GMT");
}

}  // namespace dialer::sim
