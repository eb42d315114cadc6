#pragma once
// Who may post a webhook: the client's address behind trusted proxies, IP allowlists, and the two
// ways a sender proves it holds a secret (a shared-secret header, or an HMAC-SHA256 signature).
// Pure functions and immutable values: any thread may call them; the clock is an argument.
// Nothing here puts a secret, a signature or a header value into a returned string.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace dialer {

// An IPv4 or IPv6 address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address: it
// compares equal to it and matches IPv4 networks, as dual-stack sockets report IPv4 peers so.
class ip_address {
 public:
  // 0.0.0.0.
  ip_address() = default;
  [[nodiscard]] static ip_address from_v4(const std::array<std::uint8_t, 4>& bytes);
  [[nodiscard]] static ip_address from_v6(const std::array<std::uint8_t, 16>& bytes);

  [[nodiscard]] bool is_v4() const { return v4_; }
  // IPv4 addresses in their mapped form ::ffff:a.b.c.d.
  [[nodiscard]] const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
  // "192.0.2.7", "2001:db8::1" (RFC 5952 form, no brackets).
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const ip_address&, const ip_address&) = default;

 private:
  std::array<std::uint8_t, 16> bytes_ = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  bool v4_ = true;
};

// "192.0.2.7", "2001:db8::1", "::ffff:192.0.2.7" (read as IPv4), "[2001:db8::1]". No zone ids, no
// ports, no surrounding spaces; IPv4 only as four decimal parts without leading zeros.
[[nodiscard]] std::optional<ip_address> parse_ip_address(std::string_view text);

// An IPv4 or IPv6 network. An IPv4 network matches only IPv4 (and IPv4-mapped) addresses; an IPv6
// one only other IPv6 addresses, so "::/0" does not admit IPv4 clients.
struct ip_network {
  std::array<std::uint8_t, 16> bytes{};  // host bits zero; IPv4 in mapped form
  int prefix = 0;                        // 0–32 for IPv4, 0–128 for IPv6
  bool v4 = true;

  [[nodiscard]] bool contains(const ip_address& a) const;
  friend bool operator==(const ip_network&, const ip_network&) = default;
};

// "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" (= /32), "::1" (= /128). Host bits are allowed and
// cleared ("10.1.2.3/8" is 10.0.0.0/8). "::ffff:10.0.0.0/104" is the IPv4 network 10.0.0.0/8.
// nullopt on a bad address or prefix (/33 for IPv4, /129 for IPv6, sign, leading zero, empty).
[[nodiscard]] std::optional<ip_network> parse_ip_network(std::string_view cidr);

class ip_allowlist {
 public:
  ip_allowlist() = default;
  explicit ip_allowlist(std::vector<ip_network> networks) : networks_(std::move(networks)) {}
  [[nodiscard]] bool empty() const { return networks_.empty(); }
  // An empty list contains nothing; whether empty means "allow all" is the caller's policy.
  [[nodiscard]] bool contains(const ip_address& a) const;
  [[nodiscard]] const std::vector<ip_network>& networks() const { return networks_; }

 private:
  std::vector<ip_network> networks_;
};

// The client a request comes from: the TCP peer, unless the peer is a trusted proxy; then
// X-Forwarded-For is walked from the right, skipping trusted proxies, and the first untrusted hop
// is the client (all hops trusted: the leftmost). Entries left of that hop are the client's own
// claims and are not read. Entries may carry a port ("192.0.2.7:4711", "[2001:db8::1]:4711").
// Several X-Forwarded-For headers must be joined with ',' in order by the caller. An empty
// header from a trusted proxy gives the peer. Error "malformed_xff" when an entry that had to be
// read is not an address (the caller answers 400).
[[nodiscard]] result<ip_address, std::string> effective_client(const ip_address& peer,
                                                               std::string_view x_forwarded_for,
                                                               const ip_allowlist& trusted_proxies);

enum class auth_failure : std::uint8_t {
  missing,    // no header, or an empty one
  mismatch,   // well-formed, but no configured secret produced it
  malformed,  // a signature header that does not parse; a shared-secret header over 1 KiB
  stale,      // a genuine signature whose timestamp is outside the tolerance
};
[[nodiscard]] std::string_view to_string(auth_failure f);

// Accepts when the header (spaces around it trimmed) equals any configured secret: one, or two
// during a rotation. Empty configured secrets never match. Both sides are hashed with SHA-256
// and the digests compared with CRYPTO_memcmp, so the time taken reveals neither how much of a
// guess was right nor the secret's length (beyond its count of 64-byte blocks).
[[nodiscard]] std::optional<auth_failure> check_shared_secret(std::string_view header_value,
                                                              std::span<const std::string> secrets);

// An HMAC-SHA256 signature header: "t=<unix seconds>,v1=<64 hex digits>[,v1=…]". The MAC is over
// "<t>.<raw body>", with <t> exactly as it appears in the header. Spaces around ',' and '=' are
// tolerated, unknown keys (v0=…) ignored; over 8 v1 values is malformed. Accepts when any v1 equals
// the MAC under any non-empty secret (compared with CRYPTO_memcmp). The MAC is checked before
// the time, so `stale` means "genuine but |now - t| > tolerance": a replay or a skewed clock.
[[nodiscard]] std::optional<auth_failure> check_signature(std::string_view header_value,
                                                          std::string_view body,
                                                          std::span<const std::string> secrets,
                                                          std::int64_t now_unix_s,
                                                          std::int64_t tolerance_s);

// The header a sender would send, for tests and tools: "t=<t>,v1=<lowercase hex>".
[[nodiscard]] std::string make_signature_header(std::string_view body, std::string_view secret,
                                                std::int64_t t);

}  // namespace dialer
