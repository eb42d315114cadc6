#pragma once
// Typed, validated configuration. load_daemon_config() reads the daemon YAML and every campaign
// YAML it names; any unknown key, wrong type or out-of-range value throws config_error naming
// file:line:col and what was expected. Tests build these structs in code.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dialer::config {

class config_error : public std::runtime_error {
 public:
  // what() is "file:line:col: message"; line and col are 1-based (0 when unknown).
  config_error(std::string file, int line, int col, const std::string& message);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int col() const { return col_; }
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  int line_;
  int col_;
  std::string message_;
};

// A secret string: never printed. Use reveal() only where the value goes on the wire.
class secret {
 public:
  secret() = default;
  explicit secret(std::string v) : value_(std::move(v)) {}
  [[nodiscard]] const std::string& reveal() const { return value_; }
  [[nodiscard]] bool empty() const { return value_.empty(); }

 private:
  std::string value_;
};

// `count` events per `per`: "20/s" → {20, 1s}; "600/min" → {600, 60s}.
struct rate {
  std::int64_t count = 1;
  std::chrono::nanoseconds per{std::chrono::seconds(1)};
  friend bool operator==(const rate&, const rate&) = default;
};

struct pool_settings {
  int connections = 16;  // 1..4096
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  // Idle connections are closed after this long, before a server's keep-alive timeout would.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
};

struct api_settings {
  std::string base_url;        // https://host[:port][/base-path]
  std::string host;            // parsed from base_url, lower case; an IPv6 address without brackets
  std::string port;            // "443" unless given
  std::string base_path;       // "" or "/prefix" without a trailing slash
  secret api_key;              // from api_key_file or api_key_env; an inline key is refused
  std::string api_key_source;  // "file /path" or "env NAME": safe to print
  std::string ca_file;         // empty: the system's CA store
  pool_settings pool;
};

struct trunk_settings {
  std::string name;
  std::string phone_number_id;
  int max_concurrent_calls = 1;  // 1..100000
  rate calls_per_second;         // also accepts "N/min", "N/h"
  int burst = 1;                 // 1..100000
  // Slots kept free for other traffic on the number (inbound calls): dialerd itself uses at most
  // max_concurrent_calls - reserved_slots. 0..max_concurrent_calls - 1.
  int reserved_slots = 0;
};

struct csv_settings {
  std::filesystem::path path;  // relative paths resolve against the campaign file's folder
  std::string phone_column = "phone";
  std::string task_id_column = "task_id";
  char delimiter = ',';
  std::string default_region;  // ISO 3166 alpha-2, e.g. "AE"; required
  std::size_t max_field_bytes = 64 * 1024;
};

enum class ambiguous_policy { unknown, retry };

// Not-placed outcomes (429/503/409/connect failures) are retried with full-jitter exponential
// backoff, at most max_attempts requests per task in all.
//
// A call that ended with one of `redial_on` (no_answer, busy, voicemail, failed) is dialed again
// after `redial_after`, as a new attempt, while attempts < max_attempts.
struct retry_settings {
  int max_attempts = 5;  // 1..100: requests per task in all, redials included
  std::chrono::milliseconds backoff_base{std::chrono::seconds(1)};
  std::chrono::milliseconds backoff_max{std::chrono::minutes(5)};
  std::vector<std::string> redial_on;  // end reasons; empty: never redial
  std::chrono::milliseconds redial_after{std::chrono::hours(1)};  // 1s..30d
};

// Calls to one number, counted over every campaign of this state store; 0 = no cap. A task whose
// number has reached its daily cap waits for the next UTC day; the lifetime cap fails it.
struct number_caps {
  int lifetime = 0;
  int per_day = 0;
};

// Transcripts are pulled after a call ends only when `store` is set, and erased after `retention`.
struct transcript_settings {
  bool store = false;
  std::chrono::milliseconds retention{std::chrono::hours(24 * 30)};
};

struct campaign_settings {
  std::string id;        // [A-Za-z0-9._-]{1,64}
  std::string agent_id;  // a UUID
  std::string trunk;     // a key of daemon_settings::trunks
  csv_settings csv;
  std::vector<std::string> variable_columns;  // copied into session_variables
  std::vector<std::pair<std::string, std::string>> static_variables;  // in file order
  std::chrono::seconds max_duration{std::chrono::minutes(10)};        // whole seconds, 1s..24h
  std::optional<rate> calls_per_second;  // the campaign's own pace; none = the trunk's
  int burst = 1;
  int weight = 1;
  bool dedupe_phone = true;
  // Number types that may be dialed (libphonenumber names, lower case). Default: fixed_line,
  // mobile, fixed_line_or_mobile. Premium-rate, shared-cost, etc. are refused unless listed.
  std::vector<std::string> allowed_number_types = {"fixed_line", "mobile", "fixed_line_or_mobile"};
  ambiguous_policy on_ambiguous = ambiguous_policy::unknown;
  retry_settings retry;
  number_caps caps;
  transcript_settings transcripts;
  std::filesystem::path source_file;
};

// A network in CIDR notation as written, with where it was written (the daemon parses it again
// into its matcher and reports errors at this place).
struct located_text {
  std::string text;
  int line = 0;
  int col = 0;
};

// The webhook listener. Disabled unless `listen.webhooks` is given.
struct webhook_settings {
  bool enabled = false;
  std::string address = "127.0.0.1";  // IP literal, no brackets
  std::uint16_t port = 0;
  std::string path = "/webhooks/agentix";
  std::vector<located_text> allow_from;       // CIDRs; empty: any address
  std::vector<located_text> trusted_proxies;  // X-Forwarded-For is read only from these
  std::string secret_header = "X-Agentix-Webhook-Secret";
  std::vector<secret> shared_secrets;  // secret_files: 1 or 2 (rotation)
  std::string signature_header = "X-Agentix-Signature";
  std::vector<secret> signing_secrets;  // signing_secret_files: 1 or 2 (rotation)
  std::chrono::milliseconds signature_tolerance{std::chrono::minutes(5)};
  std::size_t max_body_bytes = 256 * 1024;
  std::size_t max_header_bytes = 8 * 1024;
  int max_connections = 1024;
  std::chrono::milliseconds header_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds body_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
};

// The control listener: /metrics, /healthz, /readyz and the control API (docs/operations.md).
struct control_settings {
  bool enabled = true;
  std::string address = "127.0.0.1";
  std::uint16_t port = 9464;
  secret token;              // control.token_file: Authorization: Bearer <token>; empty: none
  std::string token_source;  // safe to print
};

// Calls with no session.ended by max_duration + slot_grace are settled by pulling the session:
// at most `attempts` pulls, `first_delay` apart and doubling up to `max_delay`.
struct settle_settings {
  int attempts = 6;  // 0..100; 0: never pull (the calls stay ENDED_UNCONFIRMED)
  std::chrono::milliseconds first_delay{std::chrono::seconds(5)};
  std::chrono::milliseconds max_delay{std::chrono::minutes(5)};
};

struct daemon_settings {
  api_settings api;
  std::filesystem::path state_path;
  // CSV rejects as JSON lines; default: state_path + ".rejects.jsonl".
  std::filesystem::path reject_path;
  std::map<std::string, trunk_settings> trunks;
  std::vector<campaign_settings> campaigns;  // from `campaigns:` files and `campaigns_dir`
  std::filesystem::path campaigns_dir;
  // A STARTED call holds its trunk slot for max_duration + slot_grace (until webhooks free it).
  std::chrono::milliseconds slot_grace{std::chrono::seconds(30)};
  bool store_sync_full = true;  // store.synchronous: full | normal
  webhook_settings webhooks;
  control_settings control;
  settle_settings settle;
  std::filesystem::path source_file;
};

// Environment lookup, injectable for tests (api_key_env, ${VAR} in api_key_file).
using env_lookup = std::optional<std::string> (*)(const char* name);
std::optional<std::string> process_env(const char* name);

// Throws config_error. Relative paths resolve against the folder of the file that names them.
[[nodiscard]] daemon_settings load_daemon_config(const std::filesystem::path& file,
                                                 env_lookup env = process_env);
// Parses one campaign file against already-loaded trunks (exposed for tests and hot-add).
[[nodiscard]] campaign_settings load_campaign_config(
    const std::filesystem::path& file, const std::map<std::string, trunk_settings>& trunks);

// Parsers for the unit grammar, exposed for tests. Return nullopt on malformed input.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
[[nodiscard]] std::optional<rate> parse_rate(std::string_view text);

}  // namespace dialer::config
