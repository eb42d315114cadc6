#include "ctl/status_view.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <initializer_list>

namespace dialer::ctl {
namespace {

namespace dom = simdjson::dom;

constexpr std::size_t max_line = 80;

std::optional<dom::element> field(dom::object o, std::string_view key) {
  dom::element e;
  if (o.at_key(key).get(e) != simdjson::SUCCESS || e.is_null()) {
    return std::nullopt;
  }
  return e;
}

std::optional<std::int64_t> as_int(dom::element e) {
  std::int64_t i = 0;
  if (e.get_int64().get(i) == simdjson::SUCCESS) {
    return i;
  }
  double d = 0;
  if (e.get_double().get(d) == simdjson::SUCCESS && std::isfinite(d) && std::fabs(d) < 9.0e18) {
    return static_cast<std::int64_t>(std::llround(d));
  }
  return std::nullopt;
}

std::optional<std::int64_t> get_int(dom::object o, std::string_view key) {
  const auto e = field(o, key);
  return e ? as_int(*e) : std::nullopt;
}

std::optional<double> get_double(dom::object o, std::string_view key) {
  const auto e = field(o, key);
  double d = 0;
  if (e && e->get_double().get(d) == simdjson::SUCCESS && std::isfinite(d)) {
    return d;
  }
  return std::nullopt;
}

std::optional<bool> get_bool(dom::object o, std::string_view key) {
  const auto e = field(o, key);
  bool b = false;
  if (e && e->get_bool().get(b) == simdjson::SUCCESS) {
    return b;
  }
  return std::nullopt;
}

// A string, or a number written as text (an id may be numeric); "" otherwise.
std::string get_text(dom::object o, std::string_view key) {
  const auto e = field(o, key);
  if (!e) {
    return {};
  }
  std::string_view s;
  if (e->get_string().get(s) == simdjson::SUCCESS) {
    return std::string(s);
  }
  if (const auto i = as_int(*e); i && (e->is_int64() || e->is_uint64())) {
    return std::to_string(*i);
  }
  return {};
}

std::string first_text(dom::object o, std::initializer_list<std::string_view> keys) {
  for (const auto key : keys) {
    if (std::string s = get_text(o, key); !s.empty()) {
      return s;
    }
  }
  return {};
}

campaign_status read_campaign(dom::object o) {
  campaign_status c;
  c.id = get_text(o, "id");
  c.trunk = get_text(o, "trunk");
  c.state = get_text(o, "state");
  c.pause_reason = get_text(o, "pause_reason");
  c.weight = get_int(o, "weight");
  c.rows_read = get_int(o, "rows_read");
  if (const auto t = field(o, "tasks"); t && t->is_object()) {
    for (const auto kv : dom::object(*t)) {
      if (const auto n = as_int(kv.value)) {
        c.tasks.emplace_back(std::string(kv.key), *n);
      }
    }
  }
  c.rate_target = get_double(o, "rate_target");
  c.rate_achieved = get_double(o, "rate_achieved");
  c.in_flight = get_int(o, "in_flight");
  c.live = get_int(o, "live");
  c.eta_seconds = get_int(o, "eta_seconds");
  return c;
}

trunk_status read_trunk(dom::object o) {
  trunk_status t;
  t.name = get_text(o, "name");
  t.active = get_int(o, "active");
  t.capacity = get_int(o, "capacity");
  t.reserved = get_int(o, "reserved");
  t.rate_target = get_double(o, "rate_target");
  t.rate_achieved = get_double(o, "rate_achieved");
  t.held = get_bool(o, "held").value_or(false);
  t.holds = get_int(o, "holds");
  return t;
}

template <class F>
void for_each_object(dom::object o, std::string_view key, F&& f) {
  const auto e = field(o, key);
  if (!e || !e->is_array()) {
    return;
  }
  for (const dom::element item : dom::array(*e)) {
    if (item.is_object()) {
      f(dom::object(item));
    }
  }
}

std::string count_text(std::optional<std::int64_t> n) {
  return n ? std::to_string(*n) : "?";
}

std::string percent(std::int64_t done, std::int64_t total) {
  // Truncated, not rounded: 99.96% must not read 100.0% while tasks remain.
  const std::int64_t permille = total > 0 ? done * 1000 / total : 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%3" PRId64 ".%" PRId64 "%%", permille / 10, permille % 10);
  return buf;
}

std::string state_text(const campaign_status& c) {
  std::string s = c.state.empty() ? "?" : printable(c.state);
  if (c.state == "paused" && !c.pause_reason.empty()) {
    s += " (" + printable(c.pause_reason) + ")";
  }
  return s;
}

std::int64_t count_of(const campaign_status& c, std::string_view state) {
  for (const auto& [name, n] : c.tasks) {
    if (name == state) {
      return n;
    }
  }
  return 0;
}

void render_campaign(std::string& out, const campaign_status& c, bool unicode) {
  out += "campaign " + (c.id.empty() ? std::string("?") : printable(c.id)) + ": " + state_text(c);
  std::vector<std::string> about;
  if (!c.trunk.empty()) {
    about.push_back("trunk " + printable(c.trunk));
  }
  if (c.weight) {
    about.push_back("weight " + std::to_string(*c.weight));
  }
  if (c.rows_read) {
    about.push_back(std::to_string(*c.rows_read) + " rows read");
  }
  for (std::size_t i = 0; i < about.size(); ++i) {
    out += (i == 0 ? "  (" : ", ") + about[i];
  }
  out += about.empty() ? "\n" : ")\n";

  std::int64_t total = 0;
  for (const auto& task : c.tasks) {
    total += std::max<std::int64_t>(task.second, 0);
  }
  const std::int64_t open = count_of(c, "pending") + count_of(c, "dialing");
  const std::int64_t done = std::clamp<std::int64_t>(total - open, 0, total);
  out += "  " + progress_bar(done, total, 20, unicode) + "  " + percent(done, total) + "  " +
         std::to_string(done) + "/" + std::to_string(total) + " done";
  if (c.state != "complete" && c.state != "cancelled") {
    out += "  ETA " + format_eta(c.eta_seconds, unicode);
  }
  out += "\n";

  out += "  rate " + format_rate(c.rate_achieved) + "/s (target " + format_rate(c.rate_target) +
         "/s)  in flight " + count_text(c.in_flight) + "  live " + count_text(c.live) + "\n";

  // Counts by state, non-zero ones only, wrapped to fit an 80-column terminal.
  std::string line;
  for (const auto& [name, n] : c.tasks) {
    if (n == 0) {
      continue;
    }
    const std::string item = "  " + printable(name) + " " + std::to_string(n);
    if (!line.empty() && line.size() + item.size() > max_line) {
      out += line + "\n";
      line.clear();
    }
    line += item;
  }
  out += line.empty() ? std::string("  no tasks yet\n") : line + "\n";
}

void render_trunk(std::string& out, const trunk_status& t) {
  out += "trunk " + (t.name.empty() ? std::string("?") : printable(t.name)) + ": active " +
         count_text(t.active) + "/" + count_text(t.capacity);
  if (t.reserved && *t.reserved > 0) {
    out += " (+" + std::to_string(*t.reserved) + " reserved)";
  }
  out +=
      "  rate " + format_rate(t.rate_achieved) + "/s (target " + format_rate(t.rate_target) + "/s)";
  if (t.held) {
    out += "  held (Retry-After)";
  }
  if (t.holds && *t.holds > 0) {
    out += "  holds " + std::to_string(*t.holds);
  }
  out += "\n";
}

result<dom::element, std::string> parse_json(dom::parser& parser, std::string_view json) {
  dom::element doc;
  if (const auto e = parser.parse(json.data(), json.size(), true).get(doc);
      e != simdjson::SUCCESS) {
    return failure{std::string("the answer is not JSON (") + simdjson::error_message(e) + ")"};
  }
  return doc;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      out.push_back('?');
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      out.push_back('?');  // a C1 control (U+0080..U+009F), e.g. a one-byte CSI
      ++i;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

result<daemon_status, std::string> parse_status(std::string_view json) {
  dom::parser parser;
  auto doc = parse_json(parser, json);
  if (!doc.ok()) {
    return failure{doc.error()};
  }
  if (!doc.value().is_object()) {
    return failure{std::string("the status answer is not a JSON object")};
  }
  const dom::object o(doc.value());
  daemon_status s;
  s.version = get_text(o, "version");
  s.ready = get_bool(o, "ready");
  s.draining = get_bool(o, "draining").value_or(false);
  s.state_path = get_text(o, "state_path");
  for_each_object(o, "campaigns", [&](dom::object c) { s.campaigns.push_back(read_campaign(c)); });
  for_each_object(o, "trunks", [&](dom::object t) { s.trunks.push_back(read_trunk(t)); });
  return s;
}

std::string progress_bar(std::int64_t done, std::int64_t total, int width, bool unicode) {
  done = std::clamp<std::int64_t>(done, 0, std::max<std::int64_t>(total, 0));
  const std::int64_t steps_per_cell = unicode ? 8 : 1;
  const std::int64_t all_steps = width * steps_per_cell;
  std::int64_t steps = total > 0 ? done * all_steps / total : 0;
  if (done < total && steps == all_steps) {
    steps = all_steps - 1;
  }
  static constexpr std::string_view eighths[8] = {"",       "\u258F", "\u258E", "\u258D",
                                                  "\u258C", "\u258B", "\u258A", "\u2589"};
  std::string bar = "[";
  const std::int64_t full = steps / steps_per_cell;
  const std::int64_t part = steps % steps_per_cell;
  for (std::int64_t i = 0; i < full; ++i) {
    bar += unicode ? "\u2588" : "#";
  }
  std::int64_t used = full;
  if (part > 0) {
    bar += eighths[part];
    ++used;
  }
  bar.append(static_cast<std::size_t>(width - used), unicode ? ' ' : '.');
  bar += "]";
  return bar;
}

std::string format_eta(std::optional<std::int64_t> seconds, bool unicode) {
  if (!seconds || *seconds < 0) {
    return unicode ? "\u2014" : "-";
  }
  const std::int64_t h = *seconds / 3600;
  const std::int64_t m = *seconds % 3600 / 60;
  const std::int64_t s = *seconds % 60;
  char buf[64];
  if (h > 0) {
    std::snprintf(buf, sizeof buf, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", h, m, s);
  } else if (m > 0) {
    std::snprintf(buf, sizeof buf, "%" PRId64 "m%02" PRId64 "s", m, s);
  } else {
    std::snprintf(buf, sizeof buf, "%" PRId64 "s", s);
  }
  return buf;
}

std::string format_rate(std::optional<double> per_second) {
  if (!per_second) {
    return "?";
  }
  const double r = *per_second;
  if (r <= 0) {
    return "0";
  }
  char buf[64];
  if (r < 0.005) {
    std::snprintf(buf, sizeof buf, "%.1g", r);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.2f", r);
  std::string s = buf;
  while (s.back() == '0') {
    s.pop_back();
  }
  if (s.back() == '.') {
    s.pop_back();
  }
  return s;
}

std::string render_status(const daemon_status& status, render_options options) {
  std::string out = "dialerd";
  if (!status.version.empty()) {
    out += " " + printable(status.version);
  }
  if (status.draining) {
    out += "  draining";
  } else if (status.ready) {
    out += *status.ready ? "  ready" : "  starting";
  }
  if (!status.state_path.empty()) {
    out += "  state " + printable(status.state_path);
  }
  out += "\n\n";
  if (status.campaigns.empty()) {
    out += "no campaigns\n";
  }
  for (std::size_t i = 0; i < status.campaigns.size(); ++i) {
    if (i > 0) {
      out += "\n";
    }
    render_campaign(out, status.campaigns[i], options.unicode);
  }
  if (!status.trunks.empty()) {
    out += "\n";
  }
  for (const auto& t : status.trunks) {
    render_trunk(out, t);
  }
  return out;
}

result<phone_number_list, std::string> parse_phone_numbers(std::string_view json) {
  dom::parser parser;
  auto doc = parse_json(parser, json);
  if (!doc.ok()) {
    return failure{doc.error()};
  }
  std::optional<dom::array> items;
  phone_number_list list;
  if (doc.value().is_array()) {
    items = dom::array(doc.value());
  } else if (doc.value().is_object()) {
    const dom::object o(doc.value());
    list.total = get_int(o, "total");
    if (const auto e = field(o, "items"); e && e->is_array()) {
      items = dom::array(*e);
    } else if (const auto d = field(o, "data"); d && d->is_array()) {
      items = dom::array(*d);
    } else if (d && d->is_object()) {
      const dom::object inner(*d);
      if (const auto e2 = field(inner, "items"); e2 && e2->is_array()) {
        items = dom::array(*e2);
        if (!list.total) {
          list.total = get_int(inner, "total");
        }
      }
    }
  }
  if (!items) {
    return failure{
        std::string("no phone number list in the answer (looked for items, data, "
                    "or an array)")};
  }
  for (const dom::element item : *items) {
    if (!item.is_object()) {
      continue;
    }
    const dom::object o(item);
    list.numbers.push_back({first_text(o, {"id", "phoneNumberId", "phone_number_id"}),
                            first_text(o, {"phoneNumber", "phone_number", "number"}),
                            first_text(o, {"name", "label", "friendlyName", "friendly_name"})});
  }
  return list;
}

std::string render_phone_numbers(const phone_number_list& list) {
  if (list.numbers.empty()) {
    return "no phone numbers\n";
  }
  std::vector<std::array<std::string, 3>> rows;
  rows.push_back({"ID", "NUMBER", "NAME"});
  for (const auto& n : list.numbers) {
    rows.push_back({printable(n.id), printable(n.number), printable(n.name)});
  }
  std::size_t w0 = 0;
  std::size_t w1 = 0;
  for (const auto& r : rows) {
    w0 = std::max(w0, r[0].size());
    w1 = std::max(w1, r[1].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line = r[0];
    line.append(w0 - r[0].size() + 2, ' ');
    line += r[1];
    line.append(w1 - r[1].size() + 2, ' ');
    line += r[2];
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    out += line + "\n";
  }
  if (list.total && *list.total > static_cast<std::int64_t>(list.numbers.size())) {
    out += "(" + std::to_string(list.numbers.size()) + " of " + std::to_string(*list.total) +
           " shown)\n";
  }
  return out;
}

}  // namespace dialer::ctl
