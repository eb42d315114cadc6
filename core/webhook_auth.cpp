#include "core/webhook_auth.hpp"

#include <arpa/inet.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <initializer_list>

namespace dialer {
namespace {

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix = {0, 0, 0, 0, 0,    0,
                                                           0, 0, 0, 0, 0xff, 0xff};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_mapped(const std::array<std::uint8_t, 16>& b) {
  return std::equal(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), b.begin());
}

struct raw_address {
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in mapped form
  bool written_v6 = false;
};

// inet_pton needs a NUL-terminated string; glibc's refuses IPv4 parts with leading zeros (which
// other parsers read as octal) and fewer than four parts.
std::optional<raw_address> parse_raw(std::string_view text) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) {
    return std::nullopt;
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  raw_address out;
  if (text.find(':') != std::string_view::npos) {
    if (inet_pton(AF_INET6, buf, out.bytes.data()) != 1) {
      return std::nullopt;
    }
    out.written_v6 = true;
    return out;
  }
  std::copy(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), out.bytes.begin());
  if (inet_pton(AF_INET, buf, out.bytes.data() + 12) != 1) {
    return std::nullopt;
  }
  return out;
}

// Compares the first `bits` bits.
bool same_prefix(const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b,
                 int bits) {
  const int whole = bits / 8;
  if (std::memcmp(a.data(), b.data(), static_cast<std::size_t>(whole)) != 0) {
    return false;
  }
  const int rest = bits % 8;
  if (rest == 0) {
    return true;
  }
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

// A hop of X-Forwarded-For: an address, optionally with a port.
std::optional<ip_address> parse_forwarded_hop(std::string_view entry) {
  if (auto a = parse_ip_address(entry)) {
    return a;
  }
  std::string_view host;
  std::string_view port;
  if (!entry.empty() && entry.front() == '[') {
    const std::size_t close = entry.find("]:");
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    host = entry.substr(1, close - 1);
    port = entry.substr(close + 2);
    if (host.find(':') == std::string_view::npos) {
      return std::nullopt;  // brackets are for IPv6 only
    }
  } else {
    const std::size_t colon = entry.find(':');
    if (colon == std::string_view::npos || entry.find(':', colon + 1) != std::string_view::npos) {
      return std::nullopt;
    }
    host = entry.substr(0, colon);
    port = entry.substr(colon + 1);
  }
  if (!all_digits(port) || port.size() > 5) {
    return std::nullopt;
  }
  int number = 0;
  for (const char c : port) {
    number = number * 10 + (c - '0');
  }
  if (number > 65535) {
    return std::nullopt;
  }
  return parse_ip_address(host);
}

// One SHA-256 / HMAC-SHA256 context per thread, set up once: fetching algorithms and allocating
// contexts per call would cost more than hashing a small body.
class digests {
 public:
  digests() {
    md_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    md_ctx_ = EVP_MD_CTX_new();
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    mac_ctx_ = mac_ != nullptr ? EVP_MAC_CTX_new(mac_) : nullptr;
    if (mac_ctx_ != nullptr) {
      char digest_name[] = "SHA256";
      const OSSL_PARAM params[] = {
          OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
          OSSL_PARAM_construct_end()};
      mac_ready_ = EVP_MAC_CTX_set_params(mac_ctx_, params) == 1;
    }
  }
  ~digests() {
    EVP_MAC_CTX_free(mac_ctx_);
    EVP_MAC_free(mac_);
    EVP_MD_CTX_free(md_ctx_);
    EVP_MD_free(md_);
  }
  digests(const digests&) = delete;
  digests& operator=(const digests&) = delete;

  static digests& local() {
    thread_local digests d;
    return d;
  }

  // False only if OpenSSL is broken (no SHA-256 provider, allocation failure): callers then
  // refuse, never accept.
  [[nodiscard]] bool sha256(std::string_view data, std::uint8_t (&out)[32]) {
    unsigned int len = 0;
    const bool ok = md_ != nullptr && md_ctx_ != nullptr &&
                    EVP_DigestInit_ex2(md_ctx_, md_, nullptr) == 1 &&
                    EVP_DigestUpdate(md_ctx_, data.data(), data.size()) == 1 &&
                    EVP_DigestFinal_ex(md_ctx_, out, &len) == 1 && len == 32;
    assert(ok);
    return ok;
  }

  // HMAC-SHA256 over the concatenation of `parts`, without building it.
  [[nodiscard]] bool hmac(std::string_view key, std::initializer_list<std::string_view> parts,
                          std::uint8_t (&out)[32]) {
    // A null key would mean "keep the previous key" to EVP_MAC_init.
    static constexpr unsigned char no_key[1] = {0};
    const auto* key_bytes =
        key.empty() ? no_key : reinterpret_cast<const unsigned char*>(key.data());
    if (!mac_ready_ || EVP_MAC_init(mac_ctx_, key_bytes, key.size(), nullptr) != 1) {
      assert(false);
      return false;
    }
    for (const std::string_view part : parts) {
      if (EVP_MAC_update(mac_ctx_, reinterpret_cast<const unsigned char*>(part.data()),
                         part.size()) != 1) {
        assert(false);
        return false;
      }
    }
    std::size_t len = 0;
    const bool ok = EVP_MAC_final(mac_ctx_, out, &len, sizeof out) == 1 && len == 32;
    assert(ok);
    return ok;
  }

 private:
  EVP_MD* md_ = nullptr;
  EVP_MD_CTX* md_ctx_ = nullptr;
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* mac_ctx_ = nullptr;
  bool mac_ready_ = false;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool decode_hex_32(std::string_view hex, std::array<std::uint8_t, 32>& out) {
  if (hex.size() != 64) {
    return false;
  }
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

constexpr std::size_t max_signatures = 8;
constexpr std::size_t max_signature_header = 2048;
constexpr std::size_t max_shared_secret_header = 1024;
// 18 digits cannot overflow int64 and cover every plausible time.
constexpr std::size_t max_t_digits = 18;

struct signature_header {
  std::string_view t_text;
  std::int64_t t = 0;
  std::array<std::array<std::uint8_t, 32>, max_signatures> v1{};
  std::size_t v1_count = 0;
};

std::optional<auth_failure> parse_signature_header(std::string_view header, signature_header& out) {
  header = trim(header);
  if (header.empty()) {
    return auth_failure::missing;
  }
  if (header.size() > max_signature_header) {
    return auth_failure::malformed;
  }
  bool has_t = false;
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    const std::string_view part = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    if (part.empty()) {
      continue;
    }
    const std::size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return auth_failure::malformed;
    }
    const std::string_view key = trim(part.substr(0, eq));
    const std::string_view value = trim(part.substr(eq + 1));
    if (key == "t") {
      if (has_t || !all_digits(value) || value.size() > max_t_digits) {
        return auth_failure::malformed;
      }
      has_t = true;
      out.t_text = value;
      out.t = 0;
      for (const char c : value) {
        out.t = out.t * 10 + (c - '0');
      }
    } else if (key == "v1") {
      if (out.v1_count == max_signatures || !decode_hex_32(value, out.v1[out.v1_count])) {
        return auth_failure::malformed;
      }
      ++out.v1_count;
    }
  }
  if (!has_t || out.v1_count == 0) {
    return auth_failure::malformed;
  }
  return std::nullopt;
}

}  // namespace

ip_address ip_address::from_v4(const std::array<std::uint8_t, 4>& bytes) {
  ip_address a;
  std::copy(bytes.begin(), bytes.end(), a.bytes_.begin() + 12);
  return a;
}

ip_address ip_address::from_v6(const std::array<std::uint8_t, 16>& bytes) {
  ip_address a;
  a.bytes_ = bytes;
  a.v4_ = is_mapped(bytes);
  return a;
}

std::string ip_address::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  const char* text = v4_ ? inet_ntop(AF_INET, bytes_.data() + 12, buf, sizeof buf)
                         : inet_ntop(AF_INET6, bytes_.data(), buf, sizeof buf);
  return text != nullptr ? std::string(text) : std::string();
}

std::optional<ip_address> parse_ip_address(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
    if (text.find(':') == std::string_view::npos) {
      return std::nullopt;  // brackets are for IPv6 only
    }
  }
  const auto raw = parse_raw(text);
  if (!raw) {
    return std::nullopt;
  }
  return ip_address::from_v6(raw->bytes);
}

bool ip_network::contains(const ip_address& a) const {
  if (a.is_v4() != v4) {
    return false;
  }
  return same_prefix(bytes, a.bytes(), v4 ? 96 + prefix : prefix);
}

std::optional<ip_network> parse_ip_network(std::string_view cidr) {
  const std::size_t slash = cidr.find('/');
  const auto raw = parse_raw(cidr.substr(0, slash));
  if (!raw) {
    return std::nullopt;
  }
  int prefix = raw->written_v6 ? 128 : 32;
  if (slash != std::string_view::npos) {
    const std::string_view digits = cidr.substr(slash + 1);
    if (!all_digits(digits) || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) {
      return std::nullopt;
    }
    prefix = 0;
    for (const char c : digits) {
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > (raw->written_v6 ? 128 : 32)) {
      return std::nullopt;
    }
  }
  ip_network n;
  n.bytes = raw->bytes;
  n.v4 = !raw->written_v6 || (is_mapped(raw->bytes) && prefix >= 96);
  n.prefix = raw->written_v6 && n.v4 ? prefix - 96 : prefix;
  const int bits = n.v4 ? 96 + n.prefix : n.prefix;
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(bits - 8 * i, 0, 8);
    n.bytes[i] &= static_cast<std::uint8_t>(0xff00 >> keep);
  }
  return n;
}

bool ip_allowlist::contains(const ip_address& a) const {
  return std::any_of(networks_.begin(), networks_.end(),
                     [&](const ip_network& n) { return n.contains(a); });
}

result<ip_address, std::string> effective_client(const ip_address& peer,
                                                 std::string_view x_forwarded_for,
                                                 const ip_allowlist& trusted_proxies) {
  if (!trusted_proxies.contains(peer)) {
    return peer;
  }
  std::string_view rest = trim(x_forwarded_for);
  if (rest.empty()) {
    return peer;
  }
  while (true) {
    const std::size_t comma = rest.rfind(',');
    const std::string_view entry =
        trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    const auto hop = parse_forwarded_hop(entry);
    if (!hop) {
      return failure{std::string("malformed_xff")};
    }
    if (!trusted_proxies.contains(*hop) || comma == std::string_view::npos) {
      return *hop;
    }
    rest = rest.substr(0, comma);
  }
}

std::string_view to_string(auth_failure f) {
  switch (f) {
    case auth_failure::missing:
      return "missing";
    case auth_failure::mismatch:
      return "mismatch";
    case auth_failure::malformed:
      return "malformed";
    case auth_failure::stale:
      return "stale";
  }
  return "unknown";
}

std::optional<auth_failure> check_shared_secret(std::string_view header_value,
                                                std::span<const std::string> secrets) {
  const std::string_view given = trim(header_value);
  if (given.empty()) {
    return auth_failure::missing;
  }
  if (given.size() > max_shared_secret_header) {
    return auth_failure::malformed;
  }
  digests& d = digests::local();
  std::uint8_t given_digest[32];
  if (!d.sha256(given, given_digest)) {
    return auth_failure::mismatch;
  }
  // No early exit: every configured secret costs the same whichever one matches.
  bool matched = false;
  for (const std::string& secret : secrets) {
    std::uint8_t secret_digest[32];
    if (secret.empty() || !d.sha256(secret, secret_digest)) {
      continue;
    }
    matched |= CRYPTO_memcmp(given_digest, secret_digest, sizeof given_digest) == 0;
  }
  return matched ? std::nullopt : std::optional<auth_failure>(auth_failure::mismatch);
}

std::optional<auth_failure> check_signature(std::string_view header_value, std::string_view body,
                                            std::span<const std::string> secrets,
                                            std::int64_t now_unix_s, std::int64_t tolerance_s) {
  signature_header header;
  if (auto failed = parse_signature_header(header_value, header)) {
    return failed;
  }
  digests& d = digests::local();
  bool matched = false;
  for (const std::string& secret : secrets) {
    std::uint8_t mac[32];
    if (secret.empty() || !d.hmac(secret, {header.t_text, ".", body}, mac)) {
      continue;
    }
    for (std::size_t i = 0; i < header.v1_count; ++i) {
      matched |= CRYPTO_memcmp(mac, header.v1[i].data(), sizeof mac) == 0;
    }
  }
  if (!matched) {
    return auth_failure::mismatch;
  }
  // t < 10^18 and the clamped tolerance keep t ± tolerance inside int64.
  const std::int64_t tolerance =
      std::clamp<std::int64_t>(tolerance_s, 0, 1'000'000'000'000'000'000);
  if (now_unix_s < header.t - tolerance || now_unix_s > header.t + tolerance) {
    return auth_failure::stale;
  }
  return std::nullopt;
}

std::string make_signature_header(std::string_view body, std::string_view secret, std::int64_t t) {
  static constexpr char hex[] = "0123456789abcdef";
  const std::string t_text = std::to_string(t);
  std::uint8_t mac[32];
  if (!digests::local().hmac(secret, {t_text, ".", body}, mac)) {
    return {};
  }
  std::string out = "t=" + t_text + ",v1=";
  for (const std::uint8_t byte : mac) {
    out.push_back(hex[byte >> 4]);
    out.push_back(hex[byte & 0xf]);
  }
  return out;
}

}  // namespace dialer
