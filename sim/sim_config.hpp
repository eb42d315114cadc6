#pragma once
// The simulator's command line, declared once with its defaults. parse_sim_args throws
// config_error naming the option; a value given to --api-key is never echoed.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sim/end_reason.hpp"
#include "sim/sim_time.hpp"

namespace dialer::sim {

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct duration_range {
  nanoseconds min{0};
  nanoseconds max{0};
  friend bool operator==(const duration_range&, const duration_range&) = default;
};

struct retry_after_spec {
  enum class kind : std::uint8_t { none, seconds, http_date };
  kind form = kind::none;
  std::int64_t seconds = 0;
};

// --webhook-url http://HOST[:PORT][/PATH]: plain HTTP to an IP literal.
struct webhook_url {
  std::string host;  // "127.0.0.1" or "::1" (no brackets); empty: no webhooks
  std::uint16_t port = 80;
  std::string target = "/";  // the request target: path and any query
  std::string host_header;   // "127.0.0.1:8080" or "[::1]:8080"
  friend bool operator==(const webhook_url&, const webhook_url&) = default;
};

// Webhook delivery (docs/agentix-sim.md, "Webhooks"). Secrets are read from files at parse time;
// like the API key they appear in no message or output.
struct webhook_options {
  webhook_url url;
  std::string secret_header;  // empty: no shared-secret header
  std::string secret;
  std::string signature_header = "X-Agentix-Signature";
  std::string signing_secret;                             // empty: requests are not signed
  double lose = 0;                                        // per event: never delivered
  double duplicate = 0;                                   // per event: delivered twice
  duration_range delay{};                                 // per delivery, before its first attempt
  duration_range backoff{milliseconds(100), seconds(5)};  // first retry delay, doubling to MAX
  int max_attempts = 8;
  int connections = 8;
  std::int64_t queue_limit = 100'000;  // scheduled + in flight; beyond it a delivery is dropped
  nanoseconds timeout = seconds(10);   // one attempt: connect, write, complete response
  nanoseconds drain = seconds(1);      // at exit, for what is still pending
  std::string log_path;                // empty: no webhook log

  [[nodiscard]] bool enabled() const { return !url.host.empty(); }
};

inline constexpr std::string_view default_phone_number_id = "6f1c2a9e-0000-4000-8000-000000000001";

struct sim_config {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;              // 0: the kernel picks one
  std::string port_file;                      // empty: none
  std::string cert_dir;                       // required
  std::string api_key;                        // required (from --api-key or --api-key-file)
  std::vector<std::string> phone_number_ids;  // default: {default_phone_number_id}
  std::string agent_id;                       // empty: any agent id is known
  std::string ledger_path;                    // empty: no ledger
  std::string stats_path;                     // empty: stats only on stdout
  duration_range call_duration{seconds(1), seconds(5)};
  std::optional<std::uint64_t> seed;  // empty: from std::random_device
  int threads = 1;
  duration_range latency{};  // added before answering calls/start
  double fault_429 = 0;
  double fault_503 = 0;
  double fault_500_after_place = 0;
  double fault_drop_after_place = 0;
  retry_after_spec retry_after;
  std::int64_t rate_limit_per_s = 0;       // 0: unlimited
  std::int64_t max_active = 0;             // 0: unlimited
  nanoseconds idle_timeout = seconds(60);  // a keep-alive connection idle this long is closed
  end_reason_weights end_reasons{{end_reason::completed, 1}};
  webhook_options webhooks;
};

// argv without the program name. Throws config_error; returns nullopt for --help (after printing
// the usage to stdout).
[[nodiscard]] std::optional<sim_config> parse_sim_args(const std::vector<std::string_view>& args);
[[nodiscard]] std::string_view sim_usage();

// "20ms", "1.5s", "0" → nanoseconds; units ns, us, ms, s, m.
[[nodiscard]] nanoseconds parse_duration(std::string_view text);
// "MIN..MAX" or a single duration (MIN = MAX).
[[nodiscard]] duration_range parse_duration_range(std::string_view text);
// "http://127.0.0.1:8080/hooks" or "http://[::1]:8080/": an IP literal host, no user info or
// fragment; port 80 and target "/" when absent.
[[nodiscard]] webhook_url parse_webhook_url(std::string_view text);

}  // namespace dialer::sim
