#include "sim/webhook.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <stdexcept>

#include "sim/json_text.hpp"

namespace dialer::sim {

event_faults draw_event_faults(const webhook_options& options, prng& rng) {
  event_faults f;
  if (options.lose > 0) {
    f.lost = rng.uniform01() < options.lose;
  }
  if (options.duplicate > 0) {
    f.duplicate = rng.uniform01() < options.duplicate;
  }
  if (options.delay.max > nanoseconds::zero()) {
    f.delay = nanoseconds(rng.uniform(options.delay.min.count(), options.delay.max.count()));
  }
  if (f.duplicate) {
    const nanoseconds spread = std::max<nanoseconds>(milliseconds(200), options.delay.max);
    f.copy_delay = nanoseconds(rng.uniform(0, spread.count()));
  }
  return f;
}

nanoseconds retry_delay(const duration_range& backoff, int attempts_done) {
  nanoseconds d = backoff.min;
  for (int i = 1; i < attempts_done && d < backoff.max; ++i) {
    d *= 2;
  }
  return std::min(d, backoff.max);
}

hmac_sha256::hmac_sha256(std::string_view key) {
  mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  ctx_ = mac_ == nullptr ? nullptr : EVP_MAC_CTX_new(mac_);
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_END};
  if (ctx_ == nullptr || EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()),
                                      key.size(), params) != 1) {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
    throw std::runtime_error("cannot set up HMAC-SHA256 (OpenSSL)");
  }
}

hmac_sha256::~hmac_sha256() {
  EVP_MAC_CTX_free(ctx_);
  EVP_MAC_free(mac_);
}

void hmac_sha256::append_hex(std::string& out, std::string_view a, std::string_view b,
                             std::string_view c) {
  static constexpr char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  // A null key restarts the MAC under the key already set, without re-deriving the pads.
  const bool ok =
      EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1 &&
      EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(a.data()), a.size()) == 1 &&
      EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(b.data()), b.size()) == 1 &&
      EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(c.data()), c.size()) == 1 &&
      EVP_MAC_final(ctx_, md, &len, sizeof md) == 1;
  if (!ok) {
    // Cannot happen with a valid context; an unsigned-looking value makes it visible.
    out.append("hmac-failed");
    return;
  }
  for (std::size_t i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 0xf]);
  }
}

void append_webhook_signature(std::string& out, hmac_sha256& signer, std::int64_t unix_seconds,
                              std::string_view body) {
  std::string t;
  append_int(t, unix_seconds);
  out.append("t=");
  out.append(t);
  out.append(",v1=");
  signer.append_hex(out, t, ".", body);
}

void append_webhook_request(std::string& out, const webhook_options& options, std::string_view body,
                            std::int64_t unix_seconds, hmac_sha256* signer) {
  out.append("POST ");
  out.append(options.url.target);
  out.append(" HTTP/1.1\r\nHost: ");
  out.append(options.url.host_header);
  out.append("\r\nUser-Agent: agentix-sim\r\nContent-Type: application/json\r\nContent-Length: ");
  append_int(out, static_cast<std::int64_t>(body.size()));
  if (!options.secret_header.empty()) {
    out.append("\r\n");
    out.append(options.secret_header);
    out.append(": ");
    out.append(options.secret);
  }
  if (signer != nullptr) {
    out.append("\r\n");
    out.append(options.signature_header);
    out.append(": ");
    append_webhook_signature(out, *signer, unix_seconds, body);
  }
  out.append("\r\n\r\n");
  out.append(body);
}

}  // namespace dialer::sim
