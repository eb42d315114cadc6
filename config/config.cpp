#include "config/config.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <numeric>
#include <set>
#include <string_view>
#include <system_error>

namespace dialer::config {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

std::string what_text(const std::string& file, int line, int col, const std::string& message) {
  return file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + message;
}

}  // namespace

config_error::config_error(std::string file, int line, int col, const std::string& message)
    : std::runtime_error(what_text(file, line, col, message)),
      file_(std::move(file)),
      line_(line),
      col_(col),
      message_(message) {}

std::optional<std::string> process_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

namespace {

constexpr std::array<std::int64_t, 19> pow10 = [] {
  std::array<std::int64_t, 19> powers{1};
  for (std::size_t i = 1; i < powers.size(); ++i) {
    powers[i] = powers[i - 1] * 10;
  }
  return powers;
}();

// mantissa / 10^scale, kept exact so that "2.5/s" and "1.5s" need no floating point.
struct decimal {
  std::int64_t mantissa = 0;
  int scale = 0;
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) {
    return std::nullopt;
  }
  return out;
}

// Reads digits[.digits] from text at pos and advances pos past it.
std::optional<decimal> parse_decimal(std::string_view text, std::size_t& pos) {
  decimal d;
  std::size_t i = pos;
  auto push = [&d](char c) {
    auto scaled = checked_mul(d.mantissa, 10);
    if (!scaled || *scaled > INT64_MAX - (c - '0')) {
      return false;
    }
    d.mantissa = *scaled + (c - '0');
    return true;
  };
  const std::size_t int_start = i;
  while (i < text.size() && is_digit(text[i])) {
    if (!push(text[i++])) {
      return std::nullopt;
    }
  }
  if (i == int_start) {
    return std::nullopt;
  }
  if (i < text.size() && text[i] == '.') {
    const std::size_t frac_start = ++i;
    while (i < text.size() && is_digit(text[i])) {
      if (!push(text[i++]) || ++d.scale >= static_cast<int>(pow10.size())) {
        return std::nullopt;
      }
    }
    if (i == frac_start) {
      return std::nullopt;
    }
  }
  pos = i;
  return d;
}

bool is_bare_number(std::string_view text) {
  std::size_t pos = 0;
  return parse_decimal(text, pos).has_value() && pos == text.size();
}

constexpr std::array<std::pair<std::string_view, std::int64_t>, 6> duration_units_ms = {{
    {"ms", 1},
    {"s", 1'000},
    {"m", 60'000},
    {"min", 60'000},
    {"h", 3'600'000},
    {"d", 86'400'000},
}};

constexpr std::int64_t ns_per_s = 1'000'000'000;
constexpr std::array<std::pair<std::string_view, std::int64_t>, 5> rate_units_ns = {{
    {"s", ns_per_s},
    {"sec", ns_per_s},
    {"m", 60 * ns_per_s},
    {"min", 60 * ns_per_s},
    {"h", 3600 * ns_per_s},
}};

template <std::size_t N>
std::int64_t unit_size(const std::array<std::pair<std::string_view, std::int64_t>, N>& units,
                       std::string_view name) {
  for (const auto& [unit, size] : units) {
    if (unit == name) {
      return size;
    }
  }
  return 0;
}

std::string format_duration(milliseconds d) {
  std::int64_t ms = d.count();
  if (ms == 0) {
    return "0s";
  }
  std::string out;
  for (const auto& [unit, size] : {std::pair<const char*, std::int64_t>{"h", 3'600'000},
                                   {"m", 60'000},
                                   {"s", 1'000},
                                   {"ms", 1}}) {
    if (ms >= size) {
      out += std::to_string(ms / size) + unit;
      ms %= size;
    }
  }
  return out;
}

// "64KiB" → 65536. Integers only: a fractional byte count is never what someone meant.
std::optional<std::size_t> parse_size(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size() && is_digit(text[pos])) {
    ++pos;
  }
  std::uint64_t count = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + pos, count);
  if (pos == 0 || ec != std::errc() || end != text.data() + pos) {
    return std::nullopt;
  }
  const std::string_view unit = text.substr(pos);
  std::uint64_t size = 0;
  if (unit == "B") {
    size = 1;
  } else if (unit == "KiB") {
    size = 1024;
  } else if (unit == "MiB") {
    size = 1024 * 1024;
  } else {
    return std::nullopt;
  }
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    return std::nullopt;
  }
  return static_cast<std::size_t>(bytes);
}

// Values echoed in messages are escaped and cut short, so an error is always one readable line.
std::string shown(std::string_view s) {
  constexpr std::size_t max_shown = 80;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max_shown) {
    out += "...";
  }
  out += '"';
  return out;
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (const auto& item : items) {
    out += out.empty() ? "" : ", ";
    out += item;
  }
  return out;
}

bool is_name(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '-';
  });
}

bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !is_hex(s[i])) {
      return false;
    }
  }
  return true;
}

// Goes into a URL path segment, so anything that would need escaping is refused.
bool is_phone_number_id(std::string_view s) {
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '-';
  });
}

bool is_region(std::string_view s) {
  return s.size() == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

bool is_env_name(std::string_view s) {
  return !s.empty() && !is_digit(s[0]) && std::all_of(s.begin(), s.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '_';
  });
}

bool is_space_or_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

// Reads a whole file; returns the reason on failure. The cap keeps a mistaken /dev/zero from
// hanging start-up.
std::optional<std::string> read_file(const fs::path& path, std::string& out,
                                     std::size_t max_bytes) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    return errno_text(errno);
  }
  char buf[16 * 1024];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    out.append(buf, n);
    if (out.size() > max_bytes) {
      return "larger than " + std::to_string(max_bytes) + " bytes";
    }
  }
  if (std::ferror(f.get())) {
    return errno_text(errno);
  }
  return std::nullopt;
}

struct source {
  std::string file;  // as printed in errors
  fs::path folder;   // relative paths resolve against it
  env_lookup env = process_env;
  const std::map<std::string, trunk_settings>* trunks = nullptr;  // set for campaign files
};

int one_based(int zero_based) {
  return zero_based < 0 ? 0 : zero_based + 1;
}

[[noreturn]] void fail_at(const source& src, const YAML::Mark& mark, const std::string& message) {
  throw config_error(src.file, one_based(mark.line), one_based(mark.column), message);
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return shown(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// One value being read: the key (or list element) that names it, the value, and its dotted path.
struct item {
  const source& src;
  YAML::Node key;
  YAML::Node value;
  std::string path;

  // yaml-cpp marks an empty value at the token after it, often the next line; the key is the
  // better place to point at.
  [[noreturn]] void fail(const std::string& message) const {
    fail_at(src, value.IsNull() ? key.Mark() : value.Mark(), path + ": " + message);
  }
  [[noreturn]] void fail_at_key(const std::string& message) const {
    fail_at(src, key.Mark(), path + ": " + message);
  }
  [[noreturn]] void expected(const std::string& what) const {
    fail("expected " + what + ", got " + describe(value));
  }
};

enum class presence { optional, required, refused };

// One setting: its key and how it is read into T. Defaults are T's member initializers.
template <class T>
struct field {
  std::string_view key;
  presence need = presence::optional;
  std::function<void(const item&, T&)> read;
};

template <class T>
using field_table = std::vector<field<T>>;

std::optional<YAML::Mark> mark_of(const YAML::Node& map, std::string_view key) {
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) {
      return kv.second.IsNull() ? kv.first.Mark() : kv.second.Mark();
    }
  }
  return std::nullopt;
}

// Reads it.value, a mapping, through `fields`; `name` is how messages call the mapping and
// `prefix` is prepended to each key to form its path.
template <class T>
void read_mapping(const item& it, std::string_view name, const std::string& prefix,
                  const field_table<T>& fields, T& out) {
  if (!it.value.IsMap()) {
    it.expected("a mapping");
  }
  std::map<std::string, int> seen_at_line;
  for (const auto& kv : it.value) {
    const YAML::Node& key = kv.first;
    if (!key.IsScalar()) {
      fail_at(it.src, key.Mark(),
              "expected a key name in " + std::string(name) + ", got " + describe(key));
    }
    const std::string& text = key.Scalar();
    const auto f = std::find_if(fields.begin(), fields.end(),
                                [&](const field<T>& candidate) { return candidate.key == text; });
    if (f == fields.end()) {
      std::vector<std::string_view> known;
      for (const auto& candidate : fields) {
        if (candidate.need != presence::refused) {
          known.push_back(candidate.key);
        }
      }
      fail_at(it.src, key.Mark(),
              "unknown key " + shown(text) + " in " + std::string(name) +
                  " (expected one of: " + join(known) + ")");
    }
    const auto [previous, inserted] = seen_at_line.emplace(text, one_based(key.Mark().line));
    if (!inserted) {
      fail_at(it.src, key.Mark(),
              "duplicate key " + shown(text) + " in " + std::string(name) + " (first at line " +
                  std::to_string(previous->second) + ")");
    }
    f->read(item{it.src, key, kv.second, prefix + text}, out);
  }
  for (const auto& f : fields) {
    if (f.need == presence::required && !seen_at_line.contains(std::string(f.key))) {
      fail_at(it.src, it.value.Mark(),
              "missing required key " + shown(f.key) + " in " + std::string(name));
    }
  }
}

template <class T>
void read_nested(const item& it, const field_table<T>& fields, T& out) {
  read_mapping(it, it.path, it.path + ".", fields, out);
}

const std::string& scalar(const item& it, const std::string& what) {
  if (!it.value.IsScalar()) {
    it.expected(what);
  }
  return it.value.Scalar();
}

std::string text_value(const item& it) {
  const std::string& s = scalar(it, "a string");
  if (s.empty()) {
    it.fail("expected a non-empty string");
  }
  return s;
}

int read_int(const item& it, int lo, int hi) {
  const std::string what = "an integer " + std::to_string(lo) + ".." + std::to_string(hi);
  const std::string& s = scalar(it, what);
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
    it.expected(what);
  }
  return static_cast<int>(v);
}

milliseconds read_duration(const item& it, milliseconds lo, milliseconds hi) {
  const std::string range = format_duration(lo) + ".." + format_duration(hi);
  const std::string& s = scalar(it, "a duration " + range);
  const auto d = parse_duration(s);
  if (!d) {
    if (is_bare_number(s)) {
      it.expected("a duration with a unit, like 30s");
    }
    it.expected("a duration " + range + " (units ms, s, m, min, h, d; like 30s or 1h30m)");
  }
  if (*d < lo || *d > hi) {
    it.expected("a duration " + range);
  }
  return *d;
}

auto integer(int lo, int hi) {
  return [lo, hi](const item& it) { return read_int(it, lo, hi); };
}

auto duration(milliseconds lo, milliseconds hi) {
  return [lo, hi](const item& it) { return read_duration(it, lo, hi); };
}

auto whole_seconds(seconds lo, seconds hi) {
  return [lo, hi](const item& it) {
    const std::string& s = scalar(it, "a duration in whole seconds");
    if (const auto d = parse_duration(s); d && d->count() % 1000 != 0) {
      it.expected("whole seconds, like 90s or 10m");
    }
    return std::chrono::duration_cast<seconds>(read_duration(it, lo, hi));
  };
}

rate rate_value(const item& it) {
  const std::string& s = scalar(it, "a rate like 20/s");
  const auto r = parse_rate(s);
  if (!r) {
    if (is_bare_number(s)) {
      it.expected("a rate with a unit, like 20/s");
    }
    it.expected("a rate above 0 and at most 1000000/s, like 20/s, 600/min or 0.5/s");
  }
  return *r;
}

bool bool_value(const item& it) {
  const std::string& s = scalar(it, "true or false");
  if (s != "true" && s != "false") {
    it.expected("true or false");
  }
  return s == "true";
}

std::size_t choice(const item& it, std::initializer_list<std::string_view> names) {
  const std::string what = "one of: " + join(std::vector<std::string_view>(names));
  const std::string& s = scalar(it, what);
  const auto found = std::find(names.begin(), names.end(), s);
  if (found == names.end()) {
    it.expected(what);
  }
  return static_cast<std::size_t>(found - names.begin());
}

auto text_matching(bool (*valid)(std::string_view), std::string what) {
  return [valid, what](const item& it) {
    const std::string& s = scalar(it, what);
    if (!valid(s)) {
      it.expected(what);
    }
    return s;
  };
}

fs::path resolve(const source& src, const fs::path& p) {
  return p.is_relative() ? (src.folder / p).lexically_normal() : p;
}

fs::path path_value(const item& it) {
  const std::string& s = scalar(it, "a path");
  if (s.empty()) {
    it.expected("a non-empty path");
  }
  return resolve(it.src, s);
}

auto size_value(std::size_t lo, std::size_t hi) {
  return [lo, hi](const item& it) {
    const std::string what = "a size " + std::to_string(lo / 1024) + "KiB.." +
                             std::to_string(hi / (1024 * 1024)) + "MiB (units B, KiB, MiB)";
    const std::string& s = scalar(it, what);
    const auto size = parse_size(s);
    if (!size && is_bare_number(s)) {
      it.expected("a size with a unit, like 64KiB");
    }
    if (!size || *size < lo || *size > hi) {
      it.expected(what);
    }
    return *size;
  };
}

char delimiter_value(const item& it) {
  const std::string what = "one character, or \"\\t\" or \"tab\" for a tab";
  const std::string& s = scalar(it, what);
  if (s == "tab" || s == "\\t") {
    return '\t';
  }
  if (s.size() != 1 || s[0] == '"' || s[0] == '\n' || s[0] == '\r' ||
      static_cast<unsigned char>(s[0]) >= 0x80) {
    it.expected(what + " (not a quote or line break)");
  }
  return s[0];
}

bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  std::size_t start = 0;
  while (start <= host.size()) {
    const std::size_t dot = std::min(host.find('.', start), host.size());
    const std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
        !std::all_of(label.begin(), label.end(),
                     [](char c) { return is_alpha(c) || is_digit(c) || c == '-'; })) {
      return false;
    }
    start = dot + 1;
  }
  return true;
}

bool is_ip(int family, const std::string& text) {
  unsigned char buf[16];
  return ::inet_pton(family, text.c_str(), buf) == 1;
}

void read_base_url(const item& it, api_settings& api) {
  const std::string& url = scalar(it, "an https URL");
  auto bad = [&](const std::string& why) {
    it.fail("expected https://host[:port][/path] (" + why + "), got " + shown(url));
  };
  std::string lower = url;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  constexpr std::string_view scheme = "https://";
  if (lower.starts_with("http://")) {
    bad("plain http is refused: the API key would cross the network in clear");
  }
  if (!lower.starts_with(scheme)) {
    bad("the scheme must be https");
  }
  if (url.find_first_of("?#") != std::string::npos ||
      std::any_of(url.begin(), url.end(), is_space_or_control)) {
    bad("no query, fragment, spaces or control characters");
  }
  const std::string_view rest = std::string_view(url).substr(scheme.size());
  const std::size_t slash = std::min(rest.find('/'), rest.size());
  const std::string_view authority = rest.substr(0, slash);
  std::string_view path = rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) {
    bad("no user information");
  }
  std::string host;
  std::string_view port_text;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      bad("unterminated [IPv6] address");
    }
    host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      bad("expected :port after the [IPv6] address");
    }
    port_text = after.empty() ? after : after.substr(1);
    if (!is_ip(AF_INET6, host)) {
      bad("invalid IPv6 address");
    }
  } else {
    const std::size_t colon = std::min(authority.find(':'), authority.size());
    host = std::string(authority.substr(0, colon));
    port_text = colon < authority.size() ? authority.substr(colon + 1) : std::string_view();
    if (colon < authority.size() && port_text.empty()) {
      bad("empty port");
    }
    std::transform(host.begin(), host.end(), host.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const bool looks_numeric = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
      return is_digit(c) || c == '.';
    });
    if (host.empty()) {
      bad("missing host");
    }
    if (looks_numeric ? !is_ip(AF_INET, host) : !is_host_name(host)) {
      bad("invalid host");
    }
  }
  int port = 443;
  if (!port_text.empty()) {
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 ||
        port > 65535) {
      bad("port must be 1..65535");
    }
  }
  while (path.ends_with('/')) {
    path.remove_suffix(1);
  }
  api.base_url = url;
  api.host = host;
  api.port = std::to_string(port);
  api.base_path = std::string(path);
}

// Expands ${NAME} through the injected environment; a lone '$' stays as it is.
std::string expand_env(const item& it, const std::string& text) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t open = text.find("${", pos);
    if (open == std::string::npos) {
      out += text.substr(pos);
      break;
    }
    out += text.substr(pos, open - pos);
    const std::size_t close = text.find('}', open);
    if (close == std::string::npos) {
      it.fail("unterminated ${ in " + shown(text));
    }
    const std::string name = text.substr(open + 2, close - open - 2);
    if (!is_env_name(name)) {
      it.fail("expected ${NAME} with NAME an environment variable name, got " +
              shown(text.substr(open, close - open + 1)));
    }
    const auto value = it.src.env(name.c_str());
    if (!value || value->empty()) {
      it.fail("environment variable " + name + " is not set or empty");
    }
    out += *value;
    pos = close + 1;
  }
  return out;
}

// Nothing here may put the key's value into a message: only paths and variable names.
void check_key_text(const item& it, const std::string& key, const std::string& origin) {
  if (key.empty()) {
    it.fail(origin + " is empty");
  }
  if (std::any_of(key.begin(), key.end(), is_space_or_control)) {
    it.fail("the API key in " + origin + " contains spaces or control characters");
  }
}

void refuse_second_key_source(const item& it, const api_settings& api) {
  if (!api.api_key_source.empty()) {
    it.fail_at_key("give either api_key_file or api_key_env, not both");
  }
}

// A secret's file: ${VAR} is expanded as in api_key_file (systemd's ${CREDENTIALS_DIRECTORY}).
fs::path secret_path_value(const item& it) {
  return resolve(it.src, expand_env(it, text_value(it)));
}

void read_api_key_file(const item& it, api_settings& api) {
  refuse_second_key_source(it, api);
  const fs::path path = resolve(it.src, expand_env(it, text_value(it)));
  std::string key;
  if (const auto err = read_file(path, key, 64 * 1024)) {
    it.fail("cannot read " + path.string() + ": " + *err);
  }
  while (!key.empty() &&
         (key.back() == ' ' || key.back() == '\t' || key.back() == '\n' || key.back() == '\r')) {
    key.pop_back();
  }
  check_key_text(it, key, path.string());
  api.api_key = secret(std::move(key));
  api.api_key_source = "file " + path.string();
}

void read_api_key_env(const item& it, api_settings& api) {
  refuse_second_key_source(it, api);
  const std::string& name = scalar(it, "an environment variable name");
  if (!is_env_name(name)) {
    it.fail("expected an environment variable name like AGENTIX_API_KEY");
  }
  const auto key = it.src.env(name.c_str());
  if (!key) {
    it.fail("environment variable " + name + " is not set");
  }
  check_key_text(it, *key, "environment variable " + name);
  api.api_key = secret(*key);
  api.api_key_source = "env " + name;
}

void refuse_inline_key(const item& it, api_settings&) {
  it.fail_at_key(
      "an inline API key is refused: put the key in a file named by api_key_file, or in an "
      "environment variable named by api_key_env");
}

void read_ca_file(const item& it, api_settings& api) {
  const fs::path path = path_value(it);
  std::string pem;
  if (const auto err = read_file(path, pem, 16 * 1024 * 1024)) {
    it.fail("cannot read " + path.string() + ": " + *err);
  }
  if (pem.empty()) {
    it.fail(path.string() + " is empty");
  }
  api.ca_file = path.string();
}

template <class T, class M, class Read>
field<T> setting(std::string_view key, M T::*member, Read read,
                 presence need = presence::optional) {
  return {key, need, [member, read](const item& it, T& out) { out.*member = read(it); }};
}

template <class T, class M>
field<T> nested(std::string_view key, M T::*member, const field_table<M>& (*fields)(),
                presence need = presence::optional) {
  return {key, need,
          [member, fields](const item& it, T& out) { read_nested(it, fields(), out.*member); }};
}

const field_table<pool_settings>& pool_fields() {
  static const field_table<pool_settings> fields = {
      setting("connections", &pool_settings::connections, integer(1, 4096)),
      setting("connect_timeout", &pool_settings::connect_timeout, duration(100ms, 5min)),
      setting("request_timeout", &pool_settings::request_timeout, duration(100ms, 10min)),
      setting("idle_timeout", &pool_settings::idle_timeout, duration(1s, 1h)),
  };
  return fields;
}

const field_table<api_settings>& api_fields() {
  static const field_table<api_settings> fields = {
      {"base_url", presence::required, read_base_url},
      {"api_key_file", presence::optional, read_api_key_file},
      {"api_key_env", presence::optional, read_api_key_env},
      {"api_key", presence::refused, refuse_inline_key},
      {"ca_file", presence::optional, read_ca_file},
      nested("pool", &api_settings::pool, pool_fields),
  };
  return fields;
}

void read_api(const item& it, api_settings& api) {
  read_nested(it, api_fields(), api);
  if (api.api_key_source.empty()) {
    fail_at(it.src, it.value.Mark(),
            "api: missing api_key_file or api_key_env (the key is never written inline)");
  }
}

const field_table<trunk_settings>& trunk_fields() {
  static const field_table<trunk_settings> fields = {
      setting("phone_number_id", &trunk_settings::phone_number_id,
              text_matching(is_phone_number_id,
                            "a phone number id of letters, digits, '.', '_' or '-'"),
              presence::required),
      setting("max_concurrent_calls", &trunk_settings::max_concurrent_calls, integer(1, 100000)),
      setting("calls_per_second", &trunk_settings::calls_per_second, rate_value),
      setting("burst", &trunk_settings::burst, integer(1, 100000)),
      setting("reserved_slots", &trunk_settings::reserved_slots, integer(0, 99999)),
  };
  return fields;
}

void read_trunks(const item& it, std::map<std::string, trunk_settings>& trunks) {
  if (!it.value.IsMap()) {
    it.expected("a mapping of trunk names to trunks");
  }
  if (it.value.size() == 0) {
    it.fail("expected at least one trunk");
  }
  for (const auto& kv : it.value) {
    const item name_item{it.src, kv.first, kv.first, it.path};
    const std::string& name =
        scalar(name_item, "a trunk name of 1 to 64 letters, digits, '.', '_' or '-'");
    if (!is_name(name)) {
      name_item.expected("a trunk name of 1 to 64 letters, digits, '.', '_' or '-'");
    }
    if (trunks.contains(name)) {
      name_item.fail("trunk " + shown(name) + " is defined twice");
    }
    trunk_settings trunk;
    const item trunk_item{it.src, kv.first, kv.second, it.path + "." + name};
    read_nested(trunk_item, trunk_fields(), trunk);
    if (trunk.reserved_slots >= trunk.max_concurrent_calls) {
      const auto at = mark_of(kv.second, "reserved_slots");
      fail_at(it.src, at ? *at : kv.second.Mark(),
              trunk_item.path + ".reserved_slots: must be below max_concurrent_calls (" +
                  std::to_string(trunk.max_concurrent_calls) + "), got " +
                  std::to_string(trunk.reserved_slots));
    }
    trunk.name = name;
    trunks.emplace(name, std::move(trunk));
  }
}

// "host:port" or "[v6]:port"; host must be an IP literal (a listener binds an address).
std::pair<std::string, std::uint16_t> listen_address(const item& it) {
  const std::string what = "an address like 0.0.0.0:8080 or [::1]:8080";
  const std::string& s = scalar(it, what);
  std::string host;
  std::string port_text;
  if (s.starts_with('[')) {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      it.expected(what);
    }
    host = s.substr(1, close - 1);
    port_text = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon) {
      it.expected(what);
    }
    host = s.substr(0, colon);
    port_text = s.substr(colon + 1);
  }
  unsigned char buf[16];
  const bool v4 = inet_pton(AF_INET, host.c_str(), buf) == 1;
  const bool v6 = !v4 && inet_pton(AF_INET6, host.c_str(), buf) == 1;
  if (!v4 && !v6) {
    it.expected(what + " (the host must be an IP address)");
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    it.expected(what + " (port 0..65535)");
  }
  return {host, static_cast<std::uint16_t>(port)};
}

const field_table<daemon_settings>& listen_fields() {
  static const field_table<daemon_settings> fields = {
      {"webhooks", presence::optional,
       [](const item& it, daemon_settings& d) {
         auto [host, port] = listen_address(it);
         d.webhooks.enabled = true;
         d.webhooks.address = std::move(host);
         d.webhooks.port = port;
       }},
      {"control", presence::optional,
       [](const item& it, daemon_settings& d) {
         if (it.value.IsScalar() && it.value.Scalar() == "off") {
           d.control.enabled = false;
           return;
         }
         auto [host, port] = listen_address(it);
         d.control.enabled = true;
         d.control.address = std::move(host);
         d.control.port = port;
       }},
  };
  return fields;
}

void read_control_token(const item& it, control_settings& c) {
  const fs::path path = secret_path_value(it);
  std::string token;
  if (const auto err = read_file(path, token, 64 * 1024)) {
    it.fail("cannot read " + path.string() + ": " + *err);
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                            token.back() == '\t')) {
    token.pop_back();
  }
  if (token.size() < 16) {
    it.fail(path.string() + " holds a token shorter than 16 bytes");
  }
  if (std::any_of(token.begin(), token.end(), is_space_or_control)) {
    it.fail("the token in " + path.string() + " contains spaces or control characters");
  }
  c.token = secret(std::move(token));
  c.token_source = "file " + path.string();
}

const field_table<control_settings>& control_fields() {
  static const field_table<control_settings> fields = {
      {"token_file", presence::optional, read_control_token},
  };
  return fields;
}

bool is_cidr(std::string_view text) {
  const auto slash = text.find('/');
  const std::string host(text.substr(0, slash));
  unsigned char buf[16];
  int max_prefix = 0;
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    max_prefix = 128;
  } else {
    return false;
  }
  if (slash == std::string_view::npos) {
    return true;
  }
  const std::string_view p = text.substr(slash + 1);
  int prefix = -1;
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  return ec == std::errc() && end == p.data() + p.size() && !p.empty() && prefix >= 0 &&
         prefix <= max_prefix;
}

auto cidr_list(const item& it) {
  if (!it.value.IsSequence()) {
    it.expected("a list of networks like 203.0.113.0/24 or 2001:db8::/32");
  }
  std::vector<located_text> out;
  for (std::size_t i = 0; i < it.value.size(); ++i) {
    const YAML::Node entry = it.value[i];
    const item entry_item{it.src, entry, entry, it.path + "[" + std::to_string(i) + "]"};
    const std::string& text = scalar(entry_item, "a network like 203.0.113.0/24");
    if (!is_cidr(text)) {
      entry_item.expected("a network like 203.0.113.0/24, 2001:db8::/32 or a single address");
    }
    out.push_back({text, one_based(entry.Mark().line), one_based(entry.Mark().column)});
  }
  return out;
}

// One or two files (two while a secret is being rotated), each holding one secret.
std::vector<secret> secret_files(const item& it) {
  std::vector<fs::path> paths;
  if (it.value.IsScalar()) {
    paths.push_back(secret_path_value(it));
  } else if (it.value.IsSequence() && it.value.size() >= 1 && it.value.size() <= 2) {
    for (std::size_t i = 0; i < it.value.size(); ++i) {
      const YAML::Node entry = it.value[i];
      paths.push_back(
          secret_path_value(item{it.src, entry, entry, it.path + "[" + std::to_string(i) + "]"}));
    }
  } else {
    it.expected("a file path, or a list of two during rotation");
  }
  std::vector<secret> out;
  for (const auto& path : paths) {
    std::string value;
    if (const auto err = read_file(path, value, 64 * 1024)) {
      it.fail("cannot read " + path.string() + ": " + *err);
    }
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r' || value.back() == ' ' ||
                              value.back() == '\t')) {
      value.pop_back();
    }
    if (value.size() < 16) {
      it.fail(path.string() + " holds a secret shorter than 16 bytes");
    }
    out.emplace_back(std::move(value));
  }
  return out;
}

bool is_header_name(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
  });
}

bool is_url_path(std::string_view s) {
  return s.starts_with('/') && s.size() <= 256 && std::none_of(s.begin(), s.end(), [](char ch) {
           return static_cast<unsigned char>(ch) <= 0x20 || ch == '?' || ch == '#' ||
                  static_cast<unsigned char>(ch) >= 0x7f;
         });
}

const field_table<webhook_settings>& webhook_fields() {
  using w = webhook_settings;
  static const field_table<w> fields = {
      setting("path", &w::path, text_matching(is_url_path, "a URL path like /webhooks/agentix")),
      setting("allow_from", &w::allow_from, cidr_list),
      setting("trusted_proxies", &w::trusted_proxies, cidr_list),
      setting("secret_header", &w::secret_header,
              text_matching(is_header_name, "a header name like X-Agentix-Webhook-Secret")),
      setting("secret_files", &w::shared_secrets, secret_files),
      setting("signature_header", &w::signature_header,
              text_matching(is_header_name, "a header name like X-Agentix-Signature")),
      setting("signing_secret_files", &w::signing_secrets, secret_files),
      setting("signature_tolerance", &w::signature_tolerance, duration(1s, 1h)),
      setting("max_body_size", &w::max_body_bytes, size_value(1024, 16 * 1024 * 1024)),
      setting("max_header_size", &w::max_header_bytes, size_value(1024, 1024 * 1024)),
      setting("max_connections", &w::max_connections, integer(1, 100000)),
      setting("header_timeout", &w::header_timeout, duration(100ms, 5min)),
      setting("body_timeout", &w::body_timeout, duration(100ms, 5min)),
      setting("idle_timeout", &w::idle_timeout, duration(100ms, 1h)),
  };
  return fields;
}

const field_table<settle_settings>& settle_fields() {
  static const field_table<settle_settings> fields = {
      setting("attempts", &settle_settings::attempts, integer(0, 100)),
      setting("first_delay", &settle_settings::first_delay, duration(10ms, 1h)),
      setting("max_delay", &settle_settings::max_delay, duration(10ms, 24h)),
  };
  return fields;
}

const field_table<daemon_settings>& store_fields() {
  static const field_table<daemon_settings> fields = {
      {"synchronous", presence::optional,
       [](const item& it, daemon_settings& d) {
         d.store_sync_full = choice(it, {"full", "normal"}) == 0;
       }},
  };
  return fields;
}

// The daemon file before its campaign files are read: those need every trunk, wherever
// `trunks:` appears in the file.
struct daemon_doc {
  daemon_settings settings;
  std::vector<fs::path> campaign_files;
  std::vector<fs::path> dir_files;
  bool reject_path_given = false;
};

std::vector<fs::path> list_campaign_dir(const item& it, const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator entry(dir, ec), end; !ec && entry != end; entry.increment(ec)) {
    const fs::path& p = entry->path();
    const std::string ext = p.extension().string();
    // Dotfiles are editors' and tools' leftovers, never campaigns.
    if ((ext == ".yaml" || ext == ".yml") && !p.filename().string().starts_with('.') &&
        fs::is_regular_file(p)) {
      files.push_back(p);
    }
  }
  if (ec) {
    it.fail("cannot list " + dir.string() + ": " + ec.message());
  }
  std::sort(files.begin(), files.end());
  return files;
}

const field_table<daemon_doc>& daemon_fields() {
  using doc = daemon_doc;
  static const field_table<doc> fields = {
      {"api", presence::required, [](const item& it, doc& d) { read_api(it, d.settings.api); }},
      {"state_path", presence::required,
       [](const item& it, doc& d) { d.settings.state_path = path_value(it); }},
      {"reject_path", presence::optional,
       [](const item& it, doc& d) {
         d.settings.reject_path = path_value(it);
         d.reject_path_given = true;
       }},
      {"slot_grace", presence::optional,
       [](const item& it, doc& d) { d.settings.slot_grace = read_duration(it, 0s, 1h); }},
      {"store", presence::optional,
       [](const item& it, doc& d) { read_nested(it, store_fields(), d.settings); }},
      {"trunks", presence::required,
       [](const item& it, doc& d) { read_trunks(it, d.settings.trunks); }},
      {"listen", presence::optional,
       [](const item& it, doc& d) { read_nested(it, listen_fields(), d.settings); }},
      {"control", presence::optional,
       [](const item& it, doc& d) { read_nested(it, control_fields(), d.settings.control); }},
      {"webhooks", presence::optional,
       [](const item& it, doc& d) { read_nested(it, webhook_fields(), d.settings.webhooks); }},
      {"settle", presence::optional,
       [](const item& it, doc& d) { read_nested(it, settle_fields(), d.settings.settle); }},
      {"campaigns", presence::optional,
       [](const item& it, doc& d) {
         if (!it.value.IsSequence()) {
           it.expected("a list of campaign files");
         }
         for (std::size_t i = 0; i < it.value.size(); ++i) {
           const YAML::Node entry = it.value[i];
           d.campaign_files.push_back(
               path_value(item{it.src, entry, entry, it.path + "[" + std::to_string(i) + "]"}));
         }
       }},
      {"campaigns_dir", presence::optional,
       [](const item& it, doc& d) {
         d.settings.campaigns_dir = path_value(it);
         d.dir_files = list_campaign_dir(it, d.settings.campaigns_dir);
       }},
  };
  return fields;
}

const field_table<csv_settings>& csv_fields() {
  static const field_table<csv_settings> fields = {
      setting("path", &csv_settings::path, path_value, presence::required),
      setting("phone_column", &csv_settings::phone_column, text_value),
      setting("task_id_column", &csv_settings::task_id_column, text_value),
      setting("delimiter", &csv_settings::delimiter, delimiter_value),
      setting("default_region", &csv_settings::default_region,
              text_matching(is_region, "a region code of two upper-case letters, like AE"),
              presence::required),
      setting("max_field_size", &csv_settings::max_field_bytes, size_value(1024, 16 * 1024 * 1024)),
  };
  return fields;
}

struct session_vars {
  std::vector<std::string> columns;
  std::vector<std::pair<std::string, std::string>> statics;
  std::set<std::string> names;
};

// it.value is the name's own node (a list entry or a mapping key).
std::string claim_variable_name(const item& it, std::set<std::string>& names) {
  const std::string& name = scalar(it, "a variable name");
  if (name.empty()) {
    it.fail("expected a non-empty variable name");
  }
  if (name == "taskId" || name == "campaignId") {
    it.fail("variable name " + shown(name) +
            " is reserved: the dialer always sets taskId and campaignId");
  }
  if (!names.insert(name).second) {
    it.fail("variable " + shown(name) + " is given twice");
  }
  return name;
}

const field_table<session_vars>& session_var_fields() {
  static const field_table<session_vars> fields = {
      {"from_columns", presence::optional,
       [](const item& it, session_vars& v) {
         if (!it.value.IsSequence()) {
           it.expected("a list of CSV column names");
         }
         for (std::size_t i = 0; i < it.value.size(); ++i) {
           const YAML::Node entry = it.value[i];
           const item name_item{it.src, entry, entry, it.path + "[" + std::to_string(i) + "]"};
           v.columns.push_back(claim_variable_name(name_item, v.names));
         }
       }},
      {"static", presence::optional,
       [](const item& it, session_vars& v) {
         if (!it.value.IsMap()) {
           it.expected("a mapping of variable names to values");
         }
         for (const auto& kv : it.value) {
           std::string name =
               claim_variable_name(item{it.src, kv.first, kv.first, it.path}, v.names);
           const item value_item{it.src, kv.first, kv.second, it.path + "." + name};
           // Numbers and booleans go on the wire as the text the operator wrote.
           std::string value = scalar(value_item, "a string, number or boolean");
           v.statics.emplace_back(std::move(name), std::move(value));
         }
       }},
  };
  return fields;
}

const field_table<campaign_settings>& pacing_fields() {
  static const field_table<campaign_settings> fields = {
      setting("calls_per_second", &campaign_settings::calls_per_second, rate_value),
      setting("burst", &campaign_settings::burst, integer(1, 100000)),
      setting("weight", &campaign_settings::weight, integer(1, 1000)),
  };
  return fields;
}

constexpr std::array<std::string_view, 4> redialable_end_reasons = {"no_answer", "busy",
                                                                    "voicemail", "failed"};

std::vector<std::string> end_reason_list(const item& it) {
  const std::string what =
      "one of: " + join(std::vector<std::string_view>(redialable_end_reasons.begin(),
                                                      redialable_end_reasons.end()));
  if (!it.value.IsSequence()) {
    it.expected("a list of end reasons, " + what);
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < it.value.size(); ++i) {
    const YAML::Node entry = it.value[i];
    const item reason_item{it.src, entry, entry, it.path + "[" + std::to_string(i) + "]"};
    const std::string& name = scalar(reason_item, what);
    if (std::find(redialable_end_reasons.begin(), redialable_end_reasons.end(), name) ==
        redialable_end_reasons.end()) {
      reason_item.expected(what);
    }
    if (std::find(out.begin(), out.end(), name) != out.end()) {
      reason_item.fail(shown(name) + " is listed twice");
    }
    out.push_back(name);
  }
  return out;
}

const field_table<retry_settings>& retry_fields() {
  static const field_table<retry_settings> fields = {
      setting("max_attempts", &retry_settings::max_attempts, integer(1, 100)),
      setting("backoff_base", &retry_settings::backoff_base, duration(10ms, 1h)),
      setting("backoff_max", &retry_settings::backoff_max, duration(10ms, 24h)),
      setting("redial_on", &retry_settings::redial_on, end_reason_list),
      setting("redial_after", &retry_settings::redial_after, duration(1s, 24h * 30)),
  };
  return fields;
}

const field_table<number_caps>& caps_fields() {
  static const field_table<number_caps> fields = {
      setting("lifetime", &number_caps::lifetime, integer(0, 1000)),
      setting("per_day", &number_caps::per_day, integer(0, 1000)),
  };
  return fields;
}

const field_table<transcript_settings>& transcript_fields() {
  static const field_table<transcript_settings> fields = {
      setting("store", &transcript_settings::store, bool_value),
      setting("retention", &transcript_settings::retention, duration(1min, 24h * 3650)),
  };
  return fields;
}

constexpr std::array<std::string_view, 12> number_types = {
    "fixed_line",  "mobile", "fixed_line_or_mobile", "toll_free", "premium_rate",
    "shared_cost", "voip",   "personal_number",      "pager",     "uan",
    "voicemail",   "unknown"};

std::vector<std::string> number_types_value(const item& it) {
  if (!it.value.IsSequence() || it.value.size() == 0) {
    it.expected("a non-empty list of number types");
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < it.value.size(); ++i) {
    const YAML::Node entry = it.value[i];
    const item type_item{it.src, entry, entry, it.path + "[" + std::to_string(i) + "]"};
    const std::string what =
        "one of: " + join(std::vector<std::string_view>(number_types.begin(), number_types.end()));
    const std::string& name = scalar(type_item, what);
    if (std::find(number_types.begin(), number_types.end(), name) == number_types.end()) {
      type_item.expected(what);
    }
    if (std::find(out.begin(), out.end(), name) != out.end()) {
      type_item.fail(shown(name) + " is listed twice");
    }
    out.push_back(name);
  }
  return out;
}

const field_table<campaign_settings>& campaign_fields() {
  using c = campaign_settings;
  static const field_table<c> fields = {
      setting("id", &c::id,
              text_matching(is_name, "an id of 1 to 64 letters, digits, '.', '_' or '-'"),
              presence::required),
      setting("agent_id", &c::agent_id,
              text_matching(is_uuid, "a UUID like d796c919-7ef3-413a-8bf1-351b6442953a"),
              presence::required),
      {"trunk", presence::required,
       [](const item& it, c& out) {
         out.trunk = text_value(it);
         if (!it.src.trunks->contains(out.trunk)) {
           std::vector<std::string_view> known;
           for (const auto& [name, trunk] : *it.src.trunks) {
             known.push_back(name);
           }
           it.fail("unknown trunk " + shown(out.trunk) +
                   " (defined trunks: " + (known.empty() ? "none" : join(known)) + ")");
         }
       }},
      nested("csv", &c::csv, csv_fields, presence::required),
      nested("number_caps", &c::caps, caps_fields),
      nested("transcripts", &c::transcripts, transcript_fields),
      {"session_variables", presence::optional,
       [](const item& it, c& out) {
         session_vars vars;
         read_nested(it, session_var_fields(), vars);
         out.variable_columns = std::move(vars.columns);
         out.static_variables = std::move(vars.statics);
       }},
      setting("max_duration", &c::max_duration, whole_seconds(1s, 24h)),
      {"pacing", presence::optional,
       [](const item& it, c& out) { read_nested(it, pacing_fields(), out); }},
      setting("dedupe_phone", &c::dedupe_phone, bool_value),
      setting("allowed_number_types", &c::allowed_number_types, number_types_value),
      {"on_ambiguous", presence::optional,
       [](const item& it, c& out) {
         out.on_ambiguous = choice(it, {"unknown", "retry"}) == 0 ? ambiguous_policy::unknown
                                                                  : ambiguous_policy::retry;
       }},
      {"retry", presence::optional,
       [](const item& it, c& out) {
         read_nested(it, retry_fields(), out.retry);
         if (out.retry.backoff_base > out.retry.backoff_max) {
           const auto at = mark_of(it.value, "backoff_base");
           fail_at(it.src, at ? *at : it.value.Mark(),
                   it.path + ".backoff_base: must not exceed backoff_max (" +
                       format_duration(out.retry.backoff_max) + "), got " +
                       format_duration(out.retry.backoff_base));
         }
       }},
  };
  return fields;
}

YAML::Node load_yaml(const source& src, const fs::path& file) {
  std::string text;
  if (const auto err = read_file(file, text, 16 * 1024 * 1024)) {
    throw config_error(src.file, 0, 0, "cannot read: " + *err);
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    fail_at(src, e.mark, "invalid YAML: " + e.msg);
  }
  if (docs.empty()) {
    throw config_error(src.file, 0, 0, "the file is empty: expected a mapping of settings");
  }
  if (docs.size() > 1) {
    fail_at(src, docs[1].Mark(), "expected one YAML document, found a second one");
  }
  return docs.front();
}

struct parsed_campaign {
  campaign_settings settings;
  YAML::Mark id_mark;
};

parsed_campaign parse_campaign(const fs::path& file,
                               const std::map<std::string, trunk_settings>& trunks) {
  const source src{file.string(), file.parent_path(), process_env, &trunks};
  const YAML::Node root = load_yaml(src, file);
  parsed_campaign out;
  read_mapping(item{src, root, root, "campaign"}, "campaign", "", campaign_fields(), out.settings);
  out.settings.source_file = file;
  out.id_mark = mark_of(root, "id").value_or(root.Mark());
  return out;
}

}  // namespace

std::optional<milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  std::int64_t total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto number = parse_decimal(text, pos);
    if (!number) {
      return std::nullopt;
    }
    const std::size_t unit_start = pos;
    while (pos < text.size() && is_alpha(text[pos])) {
      ++pos;
    }
    const std::int64_t unit_ms =
        unit_size(duration_units_ms, text.substr(unit_start, pos - unit_start));
    const auto scaled = checked_mul(number->mantissa, unit_ms);
    if (unit_ms == 0 || !scaled || *scaled % pow10[number->scale] != 0 ||
        __builtin_add_overflow(total, *scaled / pow10[number->scale], &total)) {
      return std::nullopt;
    }
  }
  return milliseconds(total);
}

std::optional<rate> parse_rate(std::string_view text) {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  std::size_t pos = 0;
  const auto number = parse_decimal(text.substr(0, slash), pos);
  const std::int64_t unit_ns = unit_size(rate_units_ns, text.substr(slash + 1));
  if (!number || pos != slash || unit_ns == 0 || number->mantissa <= 0) {
    return std::nullopt;
  }
  const auto per = checked_mul(unit_ns, pow10[number->scale]);
  if (!per) {
    return std::nullopt;
  }
  // Only the factor the decimal point introduced is cancelled ("0.5/s" → 1 per 2 s); a rate
  // written as an integer keeps its own unit ("600/min" stays 600 per minute).
  const std::int64_t common = std::gcd(number->mantissa, pow10[number->scale]);
  const rate r{number->mantissa / common, nanoseconds(*per / common)};
  // At most 1,000,000 per second: count / per_ns <= 1e6 / 1e9.
  const auto scaled = checked_mul(r.count, 1000);
  if (!scaled || *scaled > r.per.count()) {
    return std::nullopt;
  }
  return r;
}

campaign_settings load_campaign_config(const std::filesystem::path& file,
                                       const std::map<std::string, trunk_settings>& trunks) {
  return parse_campaign(file, trunks).settings;
}

daemon_settings load_daemon_config(const std::filesystem::path& file, env_lookup env) {
  const source src{file.string(), file.parent_path(), env != nullptr ? env : process_env, nullptr};
  const YAML::Node root = load_yaml(src, file);
  daemon_doc doc;
  read_mapping(item{src, root, root, "daemon config"}, "daemon config", "", daemon_fields(), doc);
  daemon_settings& settings = doc.settings;
  settings.source_file = file;
  if (!doc.reject_path_given) {
    settings.reject_path = settings.state_path.string() + ".rejects.jsonl";
  }
  if (const auto at = mark_of(root, "webhooks"); at && !settings.webhooks.enabled) {
    fail_at(src, *at, "webhooks: given, but listen.webhooks (the address to listen on) is not");
  }
  if (settings.settle.first_delay > settings.settle.max_delay) {
    fail_at(src, mark_of(root, "settle").value_or(root.Mark()),
            "settle.first_delay: must not exceed settle.max_delay");
  }
  if (settings.reject_path == settings.state_path) {
    fail_at(src, mark_of(root, "reject_path").value_or(root.Mark()),
            "reject_path: must differ from state_path");
  }
  std::map<std::string, fs::path> first_file_of_id;
  auto add = [&](const fs::path& campaign_file) {
    parsed_campaign parsed = parse_campaign(campaign_file, settings.trunks);
    const auto [first, inserted] =
        first_file_of_id.emplace(parsed.settings.id, parsed.settings.source_file);
    if (!inserted) {
      throw config_error(campaign_file.string(), one_based(parsed.id_mark.line),
                         one_based(parsed.id_mark.column),
                         "id: campaign id " + shown(parsed.settings.id) + " is already used by " +
                             first->second.string());
    }
    settings.campaigns.push_back(std::move(parsed.settings));
  };
  for (const auto& f : doc.campaign_files) {
    add(f);
  }
  for (const auto& f : doc.dir_files) {
    add(f);
  }
  return settings;
}

}  // namespace dialer::config
