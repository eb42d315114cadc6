#include "sim/sim_config.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

namespace dialer::sim {

namespace {

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

std::int64_t parse_int(std::string_view option, std::string_view text, std::int64_t lo,
                       std::int64_t hi) {
  std::int64_t v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || v < lo || v > hi) {
    throw config_error(std::string(option) + ": expected an integer in [" + std::to_string(lo) +
                       ", " + std::to_string(hi) + "], got " + quoted(text));
  }
  return v;
}

double parse_probability(std::string_view option, std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double p = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(p) || p < 0 || p > 1) {
    throw config_error(std::string(option) + ": expected a probability in [0, 1], got " +
                       quoted(text));
  }
  return p;
}

retry_after_spec parse_retry_after(std::string_view text) {
  retry_after_spec spec;
  constexpr std::string_view date_prefix = "http-date:";
  if (text.substr(0, date_prefix.size()) == date_prefix) {
    spec.form = retry_after_spec::kind::http_date;
    spec.seconds = parse_int("--retry-after", text.substr(date_prefix.size()), 0, 86400 * 365);
  } else {
    spec.form = retry_after_spec::kind::seconds;
    spec.seconds = parse_int("--retry-after", text, 0, 86400 * 365);
  }
  return spec;
}

std::int64_t parse_rate(std::string_view text) {
  std::string_view number = text;
  if (const auto slash = text.find('/'); slash != std::string_view::npos) {
    if (text.substr(slash) != "/s") {
      throw config_error("--rate-limit: expected N/s, got " + quoted(text));
    }
    number = text.substr(0, slash);
  }
  return parse_int("--rate-limit", number, 1, 100'000'000);
}

void parse_listen(std::string_view text, sim_config& cfg) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw config_error("--listen: expected [v6-address]:port, got " + quoted(text));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      throw config_error("--listen: expected host:port, got " + quoted(text));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) {
    throw config_error("--listen: empty host in " + quoted(text));
  }
  cfg.listen_host = std::string(host);
  cfg.listen_port = static_cast<std::uint16_t>(parse_int("--listen port", port, 0, 65535));
}

// The file's content without trailing whitespace (as dialerd reads its secrets). Never echoed.
std::string read_secret_file(std::string_view option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw config_error(std::string(option) + ": cannot read " + quoted(path));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string key = ss.str();
  while (!key.empty() &&
         (key.back() == '\n' || key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) {
    key.pop_back();
  }
  if (key.empty()) {
    throw config_error(std::string(option) + ": " + quoted(path) + " is empty");
  }
  return key;
}

// A header value cannot hold control characters (a CR or LF would split the request).
std::string read_header_secret(std::string_view option, const std::string& path) {
  std::string value = read_secret_file(option, path);
  for (const char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      throw config_error(std::string(option) + ": " + quoted(path) +
                         " holds a control character; the secret must fit in a header");
    }
  }
  return value;
}

std::string header_name(std::string_view option, std::string_view text) {
  static constexpr std::string_view reserved[] = {"host", "content-length", "content-type",
                                                  "connection", "transfer-encoding"};
  bool ok = !text.empty() && text.size() <= 64;
  std::string lowered;
  for (const char c : text) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_');
    lowered.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  if (!ok) {
    throw config_error(std::string(option) +
                       ": expected a header name like X-Agentix-Signature, got " + quoted(text));
  }
  for (const std::string_view r : reserved) {
    if (lowered == r) {
      throw config_error(std::string(option) + ": " + quoted(text) + " is set by the simulator");
    }
  }
  return std::string(text);
}

struct webhook_seen {
  bool any = false;  // any --webhook-* option other than --webhook-url
  bool secret_file = false;
  bool secret_header = false;
};

duration_range range_option(std::string_view option, std::string_view text) {
  try {
    return parse_duration_range(text);
  } catch (const config_error& e) {
    throw config_error(std::string(option) + ": " + e.what());
  }
}

nanoseconds positive_duration(std::string_view option, std::string_view text) {
  nanoseconds d{};
  try {
    d = parse_duration(text);
  } catch (const config_error& e) {
    throw config_error(std::string(option) + ": " + e.what());
  }
  if (d <= nanoseconds::zero()) {
    throw config_error(std::string(option) + ": must be positive");
  }
  return d;
}

void parse_webhook_option(std::string_view name, std::string_view value, webhook_options& w,
                          webhook_seen& seen) {
  seen.any = seen.any || name != "--webhook-url";
  if (name == "--webhook-url") {
    w.url = parse_webhook_url(value);
  } else if (name == "--webhook-secret-file") {
    w.secret = read_header_secret(name, std::string(value));
    seen.secret_file = true;
  } else if (name == "--webhook-secret-header") {
    w.secret_header = header_name(name, value);
    seen.secret_header = true;
  } else if (name == "--webhook-signing-secret-file") {
    w.signing_secret = read_secret_file(name, std::string(value));
  } else if (name == "--webhook-signature-header") {
    w.signature_header = header_name(name, value);
  } else if (name == "--webhook-lose") {
    w.lose = parse_probability(name, value);
  } else if (name == "--webhook-duplicate") {
    w.duplicate = parse_probability(name, value);
  } else if (name == "--webhook-delay") {
    w.delay = range_option(name, value);
  } else if (name == "--webhook-backoff") {
    w.backoff = range_option(name, value);
    if (w.backoff.min <= nanoseconds::zero()) {
      throw config_error("--webhook-backoff: MIN must be positive");
    }
  } else if (name == "--webhook-max-attempts") {
    w.max_attempts = static_cast<int>(parse_int(name, value, 1, 100));
  } else if (name == "--webhook-connections") {
    w.connections = static_cast<int>(parse_int(name, value, 1, 1024));
  } else if (name == "--webhook-queue-limit") {
    w.queue_limit = parse_int(name, value, 1, 100'000'000);
  } else if (name == "--webhook-timeout") {
    w.timeout = positive_duration(name, value);
  } else if (name == "--webhook-drain") {
    try {
      w.drain = parse_duration(value);
    } catch (const config_error& e) {
      throw config_error(std::string(name) + ": " + e.what());
    }
  } else if (name == "--webhook-log") {
    w.log_path = std::string(value);
  } else {
    throw config_error("unknown option " + quoted(name) + " (see --help)");
  }
}

void finish_webhook_options(webhook_options& w, const webhook_seen& seen) {
  if (seen.any && !w.enabled()) {
    // A forgotten URL would otherwise silently turn every other webhook option off.
    throw config_error("--webhook-* options need --webhook-url");
  }
  if (seen.secret_header && !seen.secret_file) {
    throw config_error("--webhook-secret-header needs --webhook-secret-file");
  }
  if (seen.secret_file && !seen.secret_header) {
    w.secret_header = "X-Agentix-Webhook-Secret";  // dialerd's default
  }
}

}  // namespace

nanoseconds parse_duration(std::string_view text) {
  const auto fail = [&]() -> config_error {
    return config_error("expected a duration such as 20ms, 1.5s or 0, got " + quoted(text));
  };
  std::size_t i = 0;
  __int128 whole = 0;
  __int128 frac = 0;
  __int128 frac_scale = 1;
  std::size_t digits = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    whole = whole * 10 + (text[i++] - '0');
    ++digits;
    if (whole > 1'000'000'000'000LL) {
      throw fail();
    }
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (frac_scale < 1'000'000'000'000LL) {
        frac = frac * 10 + (text[i] - '0');
        frac_scale *= 10;
      }
      ++i;
      ++digits;
    }
  }
  if (digits == 0) {
    throw fail();
  }
  const std::string_view unit = text.substr(i);
  __int128 unit_ns = 0;
  if (unit == "ns") {
    unit_ns = 1;
  } else if (unit == "us") {
    unit_ns = 1'000;
  } else if (unit == "ms") {
    unit_ns = 1'000'000;
  } else if (unit == "s") {
    unit_ns = 1'000'000'000;
  } else if (unit == "m") {
    unit_ns = 60'000'000'000LL;
  } else if (unit.empty() && whole == 0 && frac == 0) {
    return nanoseconds::zero();
  } else {
    throw fail();
  }
  const __int128 ns = whole * unit_ns + frac * unit_ns / frac_scale;
  if (ns > static_cast<__int128>(86400) * 366 * 1'000'000'000LL) {
    throw fail();
  }
  return nanoseconds(static_cast<std::int64_t>(ns));
}

duration_range parse_duration_range(std::string_view text) {
  duration_range r;
  if (const auto dots = text.find(".."); dots != std::string_view::npos) {
    r.min = parse_duration(text.substr(0, dots));
    r.max = parse_duration(text.substr(dots + 2));
  } else {
    r.min = r.max = parse_duration(text);
  }
  if (r.min > r.max) {
    throw config_error("MIN exceeds MAX in " + quoted(text));
  }
  return r;
}

webhook_url parse_webhook_url(std::string_view text) {
  const auto fail = [&](std::string_view why) {
    return config_error("--webhook-url: " + std::string(why) + ", got " + quoted(text));
  };
  constexpr std::string_view scheme = "http://";
  if (text.substr(0, scheme.size()) != scheme) {
    throw fail("expected http://HOST:PORT/PATH (plain HTTP)");
  }
  std::string_view rest = text.substr(scheme.size());
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  const std::string_view target = slash == std::string_view::npos ? "/" : rest.substr(slash);
  if (target.find('#') != std::string_view::npos) {
    throw fail("a fragment is not allowed");
  }
  for (const char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      throw fail("the path holds a space or control character");
    }
  }
  if (authority.find('@') != std::string_view::npos) {
    throw fail("user info is not allowed");
  }
  webhook_url url;
  std::string_view host;
  std::string_view port;
  bool v6 = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      throw fail("unterminated [IPv6] host");
    }
    host = authority.substr(1, close - 1);
    v6 = true;
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        throw fail("expected :PORT after the host");
      }
      port = after.substr(1);
      if (port.empty()) {
        throw fail("empty port");
      }
    }
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) {
        throw fail("empty port");
      }
    }
  }
  const std::string host_text(host);
  unsigned char address[16];
  if (host.empty() || ::inet_pton(v6 ? AF_INET6 : AF_INET, host_text.c_str(), address) != 1) {
    throw fail(v6 ? "the host is not an IPv6 address"
                  : "the host must be an IP literal such as 127.0.0.1 or [::1]");
  }
  url.host = host_text;
  if (!port.empty()) {
    url.port = static_cast<std::uint16_t>(parse_int("--webhook-url port", port, 1, 65535));
  }
  url.target = std::string(target);
  url.host_header = (v6 ? "[" + host_text + "]" : host_text) + ":" + std::to_string(url.port);
  return url;
}

std::string_view sim_usage() {
  return R"(agentix-sim: a simulator of the Agentix API over TLS, for tests and benchmarks.

  --listen HOST:PORT          address to listen on; port 0 picks one; [::1]:0 for IPv6
                              (default 127.0.0.1:0)
  --port-file PATH            written atomically with the port once listening
  --cert-dir DIR              DIR/cert.pem + DIR/key.pem, generated (self-signed) if absent
  --api-key KEY | --api-key-file PATH
                              required; requests must carry x-api-key: KEY or
                              Authorization: Bearer KEY
  --phone-number-id ID        repeatable (default 6f1c2a9e-0000-4000-8000-000000000001)
  --agent-id ID               if given, other agent ids get 404
  --ledger PATH               JSONL, one line per placed call
  --stats-file PATH           stats JSON, written atomically at exit
  --call-duration MIN..MAX    per-call duration, uniform (default 1s..5s)
  --seed N                    PRNG seed (default: random, printed on stderr)
  --threads N                 I/O threads (default 1)
  --latency MIN..MAX          added before answering calls/start
  --fault-429 P               probability of 429 (not placed)
  --fault-503 P               probability of 503 (not placed)
  --retry-after SPEC          Retry-After on injected 429/503: seconds ("2") or "http-date:2"
  --fault-500-after-place P   probability of placing the call and answering 500
  --fault-drop-after-place P  probability of placing the call and resetting the connection
  --rate-limit N/s            token bucket (burst N/10, at least 1); over it: 429 Retry-After: 1
  --max-active N              409 if placing would exceed N active calls
  --idle-timeout DURATION     close keep-alive connections idle this long (default 60s)
  --end-reasons R=W,...       weights of completed, no_answer, busy, voicemail, failed
                              (default completed=1); a capped call ends max_duration

Webhooks (none unless --webhook-url is given):
  --webhook-url URL           http://HOST[:PORT][/PATH], HOST an IP literal (127.0.0.1, [::1])
  --webhook-secret-file PATH  send its content (trailing whitespace dropped) in a header
  --webhook-secret-header N   that header (default X-Agentix-Webhook-Secret)
  --webhook-signing-secret-file PATH
                              sign: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
  --webhook-signature-header N  (default X-Agentix-Signature)
  --webhook-lose P            per event: never delivered (logged "lost")
  --webhook-duplicate P       per event: delivered twice, the copy after an extra delay
  --webhook-delay MIN..MAX    per delivery, before its first attempt (default 0)
  --webhook-backoff MIN..MAX  retry delays: MIN, doubling up to MAX (default 100ms..5s)
  --webhook-max-attempts N    attempts before giving up (default 8)
  --webhook-connections N     keep-alive connections, one request each (default 8)
  --webhook-queue-limit N     pending deliveries kept; beyond: dropped (default 100000)
  --webhook-timeout D         one attempt, connect to complete response (default 10s)
  --webhook-drain D           at exit, time given to pending deliveries (default 1s)
  --webhook-log PATH          JSONL: one line per delivered, duplicate, lost, dropped, gave-up
  --help
)";
}

std::optional<sim_config> parse_sim_args(const std::vector<std::string_view>& args) {
  sim_config cfg;
  bool have_key = false;
  bool have_key_file = false;
  bool custom_phone_ids = false;
  webhook_seen webhook_flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view name = args[i];
    std::string_view value;
    bool inline_value = false;
    if (name == "--help" || name == "-h") {
      std::cout << sim_usage();
      return std::nullopt;
    }
    if (const auto eq = name.find('='); name.substr(0, 2) == "--" && eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const auto take = [&]() -> std::string_view {
      if (inline_value) {
        return value;
      }
      if (i + 1 >= args.size()) {
        throw config_error(std::string(name) + ": missing value");
      }
      return args[++i];
    };
    if (name == "--listen") {
      parse_listen(take(), cfg);
    } else if (name == "--port-file") {
      cfg.port_file = std::string(take());
    } else if (name == "--cert-dir") {
      cfg.cert_dir = std::string(take());
    } else if (name == "--api-key") {
      cfg.api_key = std::string(take());
      have_key = true;
    } else if (name == "--api-key-file") {
      cfg.api_key = read_secret_file("--api-key-file", std::string(take()));
      have_key_file = true;
    } else if (name == "--phone-number-id") {
      const std::string_view id = take();
      if (id.empty() || id.find('/') != std::string_view::npos) {
        throw config_error("--phone-number-id: expected a non-empty id without '/'");
      }
      if (!custom_phone_ids) {
        cfg.phone_number_ids.clear();
        custom_phone_ids = true;
      }
      cfg.phone_number_ids.emplace_back(id);
    } else if (name == "--agent-id") {
      cfg.agent_id = std::string(take());
    } else if (name == "--ledger") {
      cfg.ledger_path = std::string(take());
    } else if (name == "--stats-file") {
      cfg.stats_path = std::string(take());
    } else if (name == "--call-duration") {
      try {
        cfg.call_duration = parse_duration_range(take());
      } catch (const config_error& e) {
        throw config_error(std::string("--call-duration: ") + e.what());
      }
    } else if (name == "--latency") {
      try {
        cfg.latency = parse_duration_range(take());
      } catch (const config_error& e) {
        throw config_error(std::string("--latency: ") + e.what());
      }
    } else if (name == "--seed") {
      const std::string_view text = take();
      std::uint64_t seed = 0;
      const auto r = std::from_chars(text.data(), text.data() + text.size(), seed);
      if (r.ec != std::errc() || r.ptr != text.data() + text.size()) {
        throw config_error("--seed: expected an unsigned integer, got " + quoted(text));
      }
      cfg.seed = seed;
    } else if (name == "--threads") {
      cfg.threads = static_cast<int>(parse_int("--threads", take(), 1, 256));
    } else if (name == "--fault-429") {
      cfg.fault_429 = parse_probability(name, take());
    } else if (name == "--fault-503") {
      cfg.fault_503 = parse_probability(name, take());
    } else if (name == "--fault-500-after-place") {
      cfg.fault_500_after_place = parse_probability(name, take());
    } else if (name == "--fault-drop-after-place") {
      cfg.fault_drop_after_place = parse_probability(name, take());
    } else if (name == "--retry-after") {
      cfg.retry_after = parse_retry_after(take());
    } else if (name == "--rate-limit") {
      cfg.rate_limit_per_s = parse_rate(take());
    } else if (name == "--idle-timeout") {
      try {
        cfg.idle_timeout = parse_duration(take());
      } catch (const config_error& e) {
        throw config_error(std::string("--idle-timeout: ") + e.what());
      }
      if (cfg.idle_timeout <= nanoseconds::zero()) {
        throw config_error("--idle-timeout: must be positive");
      }
    } else if (name == "--max-active") {
      cfg.max_active = parse_int("--max-active", take(), 1, 1'000'000'000);
    } else if (name == "--end-reasons") {
      cfg.end_reasons = parse_end_reasons(take());
    } else if (name.substr(0, 10) == "--webhook-") {
      parse_webhook_option(name, take(), cfg.webhooks, webhook_flags);
    } else {
      throw config_error("unknown option " + quoted(name) + " (see --help)");
    }
  }
  if (have_key && have_key_file) {
    throw config_error("give one of --api-key and --api-key-file, not both");
  }
  if (!have_key && !have_key_file) {
    throw config_error("--api-key or --api-key-file is required");
  }
  if (cfg.api_key.empty()) {
    throw config_error("--api-key: the key is empty");
  }
  if (cfg.cert_dir.empty()) {
    throw config_error("--cert-dir is required");
  }
  if (cfg.phone_number_ids.empty()) {
    cfg.phone_number_ids.emplace_back(default_phone_number_id);
  }
  const double sum =
      cfg.fault_429 + cfg.fault_503 + cfg.fault_500_after_place + cfg.fault_drop_after_place;
  if (sum > 1.0 + 1e-12) {
    throw config_error("the --fault-* probabilities add up to more than 1");
  }
  finish_webhook_options(cfg.webhooks, webhook_flags);
  return cfg;
}

}  // namespace dialer::sim
