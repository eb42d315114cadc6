#pragma once
// The pure parts of webhook delivery: the per-event fault draws, the retry schedule, the
// signature and the HTTP request text. No sockets and no clocks: times are arguments, so the
// tests check each piece directly.
#include <openssl/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "sim/prng.hpp"
#include "sim/sim_config.hpp"
#include "sim/sim_time.hpp"

namespace dialer::sim {

// What the seeded PRNG decided for one event at placement.
struct event_faults {
  bool lost = false;       // never delivered (logged "lost" when it falls due)
  bool duplicate = false;  // a copy is delivered too, copy_delay after the original's due time
  nanoseconds delay{0};    // before the first attempt
  nanoseconds copy_delay{0};
};

// Draws in a fixed order, and only for the faults configured (a probability of 0 or a zero
// delay range draws nothing), so a seed replays them: lost, then duplicate, then the delay, then
// the copy's extra delay, uniform in [0, max(200 ms, delay MAX)].
[[nodiscard]] event_faults draw_event_faults(const webhook_options& options, prng& rng);

// The wait before attempt number attempts_done + 1, after `attempts_done` failed attempts:
// backoff MIN, doubling each time, capped at backoff MAX (100 ms, 200 ms, … 5 s by default).
[[nodiscard]] nanoseconds retry_delay(const duration_range& backoff, int attempts_done);

// HMAC-SHA256 under one key, keeping OpenSSL's keyed context between messages. Not thread-safe:
// one per thread.
class hmac_sha256 {
 public:
  explicit hmac_sha256(std::string_view key);  // throws std::runtime_error
  ~hmac_sha256();
  hmac_sha256(const hmac_sha256&) = delete;
  hmac_sha256& operator=(const hmac_sha256&) = delete;

  // Appends the lowercase hex HMAC of the concatenation a || b || c.
  void append_hex(std::string& out, std::string_view a, std::string_view b, std::string_view c);

 private:
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
};

// "t=<unix_seconds>,v1=<lowercase hex HMAC-SHA256(secret, "<unix_seconds>.<body>")>"
void append_webhook_signature(std::string& out, hmac_sha256& signer, std::int64_t unix_seconds,
                              std::string_view body);

// The whole POST: request line, Host, Content-Type, Content-Length, the secret header when
// configured, the signature header when `signer` is given, then the body. Keep-alive (HTTP/1.1
// default).
void append_webhook_request(std::string& out, const webhook_options& options, std::string_view body,
                            std::int64_t unix_seconds, hmac_sha256* signer);

}  // namespace dialer::sim
