#include "core/webhook_auth.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dialer {
namespace {

using namespace std::literals;

ip_address addr(std::string_view text) {
  const auto a = parse_ip_address(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(ip_address{});
}

ip_network net(std::string_view text) {
  const auto n = parse_ip_network(text);
  EXPECT_TRUE(n.has_value()) << text;
  return n.value_or(ip_network{});
}

ip_allowlist list(std::initializer_list<std::string_view> cidrs) {
  std::vector<ip_network> networks;
  for (const auto cidr : cidrs) {
    networks.push_back(net(cidr));
  }
  return ip_allowlist(std::move(networks));
}

// Addresses.

TEST(IpAddress, ParsesAndPrintsBothFamilies) {
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {"192.0.2.7", "192.0.2.7"},
      {"0.0.0.0", "0.0.0.0"},
      {"255.255.255.255", "255.255.255.255"},
      {"2001:db8::1", "2001:db8::1"},
      {"2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
      {"::1", "::1"},
      {"::", "::"},
      {"[2001:db8::1]", "2001:db8::1"},
      {"::ffff:192.0.2.7", "192.0.2.7"},  // mapped: the IPv4 address
      {"::ffff:c000:0207", "192.0.2.7"},
  };
  for (const auto& [text, printed] : cases) {
    const auto a = parse_ip_address(text);
    ASSERT_TRUE(a.has_value()) << text;
    EXPECT_EQ(a->to_string(), printed) << text;
  }
  EXPECT_TRUE(addr("::ffff:192.0.2.7").is_v4());
  EXPECT_EQ(addr("::ffff:192.0.2.7"), addr("192.0.2.7"));
  EXPECT_FALSE(addr("2001:db8::1").is_v4());
  EXPECT_EQ(ip_address::from_v4({192, 0, 2, 7}), addr("192.0.2.7"));
}

TEST(IpAddress, RejectsGarbage) {
  for (const std::string_view text :
       {""sv,           "1.2.3"sv,      "1.2.3.4.5"sv,      "256.1.1.1"sv,
        "01.2.3.4"sv,   "1.2.3.4 "sv,   " 1.2.3.4"sv,       "1.2.3.4/32"sv,
        "[1.2.3.4]"sv,  "1.2.3.4:80"sv, "2001:db8::1::2"sv, "fe80::1%eth0"sv,
        "[::1"sv,       "::1]"sv,       "example.com"sv,    "unknown"sv,
        "0x7f.0.0.1"sv, "1.2.3.-4"sv,   "12345::"sv,        ":::"sv}) {
    EXPECT_FALSE(parse_ip_address(text).has_value()) << text;
  }
}

// Networks.

TEST(IpNetwork, Parses) {
  const ip_network n = net("10.0.0.0/8");
  EXPECT_TRUE(n.v4);
  EXPECT_EQ(n.prefix, 8);
  const ip_network host = net("192.0.2.7");
  EXPECT_TRUE(host.v4);
  EXPECT_EQ(host.prefix, 32);
  const ip_network v6 = net("2001:db8::/32");
  EXPECT_FALSE(v6.v4);
  EXPECT_EQ(v6.prefix, 32);
  EXPECT_EQ(net("::1").prefix, 128);
  EXPECT_EQ(net("0.0.0.0/0").prefix, 0);
  EXPECT_EQ(net("::/0").prefix, 0);
  // Compressed and uncompressed forms name the same network.
  EXPECT_EQ(net("2001:db8:0:0::/64"), net("2001:0db8:0000:0000:0000:0000:0000:0000/64"));
}

TEST(IpNetwork, HostBitsAreCleared) {
  EXPECT_EQ(net("10.1.2.3/8"), net("10.0.0.0/8"));
  EXPECT_EQ(net("192.0.2.255/25"), net("192.0.2.128/25"));
  EXPECT_EQ(net("2001:db8::ffff/112"), net("2001:db8::/112"));
  EXPECT_EQ(net("2001:db8:abcd::1/33"), net("2001:db8:8000::/33"));
}

TEST(IpNetwork, MappedIpv6NetworkIsIpv4) {
  const ip_network n = net("::ffff:10.0.0.0/104");
  EXPECT_TRUE(n.v4);
  EXPECT_EQ(n.prefix, 8);
  EXPECT_EQ(n, net("10.0.0.0/8"));
}

TEST(IpNetwork, RejectsBadInput) {
  for (const std::string_view text :
       {""sv, "/8"sv, "10.0.0.0/"sv, "10.0.0.0/33"sv, "::/129"sv, "10.0.0.0/-1"sv, "10.0.0.0/+8"sv,
        "10.0.0.0/08"sv, "10.0.0.0/ 8"sv, "10.0.0.0/8 "sv, "10.0.0.0/8/8"sv, "10.0.0.0/1000"sv,
        "10.0.0/8"sv, "garbage/8"sv, "[::1]/128"sv, "10.0.0.0/abc"sv, "::ffff:10.0.0.0/129"sv}) {
    EXPECT_FALSE(parse_ip_network(text).has_value()) << text;
  }
}

TEST(IpNetwork, ContainsAtBoundaries) {
  struct contains_case {
    std::string_view network;
    std::string_view address;
    bool expected;
  };
  const std::vector<contains_case> cases = {
      {"10.0.0.0/8", "10.0.0.0", true},
      {"10.0.0.0/8", "10.255.255.255", true},
      {"10.0.0.0/8", "9.255.255.255", false},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"192.0.2.128/25", "192.0.2.128", true},
      {"192.0.2.128/25", "192.0.2.127", false},
      {"192.0.2.128/25", "192.0.2.255", true},
      {"192.0.2.7/32", "192.0.2.7", true},
      {"192.0.2.7/32", "192.0.2.8", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"2001:db8::/32", "2001:db8::", true},
      {"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
      {"2001:db8::/32", "2001:db9::", false},
      {"2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false},
      {"2001:db8::/31", "2001:db9::1", true},
      {"2001:db8::/33", "2001:db8:8000::", false},
      {"::1/128", "::1", true},
      {"::1/128", "::2", false},
      // Families stay apart: an IPv6 network does not admit IPv4 clients, nor the reverse.
      {"::/0", "192.0.2.7", false},
      {"0.0.0.0/0", "2001:db8::1", false},
      // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
      {"10.0.0.0/8", "::ffff:10.1.2.3", true},
      {"10.0.0.0/8", "::ffff:11.1.2.3", false},
      {"::ffff:10.0.0.0/104", "10.9.9.9", true},
      // ::a.b.c.d (IPv4-compatible, deprecated) is not mapped.
      {"10.0.0.0/8", "::10.1.2.3", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(net(c.network).contains(addr(c.address)), c.expected)
        << c.network << " contains " << c.address;
  }
}

TEST(IpAllowlist, EmptyContainsNothing) {
  const ip_allowlist empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_FALSE(empty.contains(addr("127.0.0.1")));
  const ip_allowlist some = list({"10.0.0.0/8", "2001:db8::/32"});
  EXPECT_FALSE(some.empty());
  EXPECT_TRUE(some.contains(addr("10.1.1.1")));
  EXPECT_TRUE(some.contains(addr("2001:db8::5")));
  EXPECT_FALSE(some.contains(addr("192.0.2.1")));
}

// X-Forwarded-For.

std::string client(std::string_view peer, std::string_view xff, const ip_allowlist& trusted) {
  const auto r = effective_client(addr(peer), xff, trusted);
  return r.ok() ? r.value().to_string() : "error:" + r.error();
}

TEST(EffectiveClient, UntrustedPeerIgnoresXff) {
  const auto trusted = list({"10.0.0.0/8"});
  EXPECT_EQ(client("203.0.113.5", "1.2.3.4", trusted), "203.0.113.5");
  EXPECT_EQ(client("203.0.113.5", "garbage", trusted), "203.0.113.5");
  EXPECT_EQ(client("203.0.113.5", "1.2.3.4", ip_allowlist{}), "203.0.113.5");
}

TEST(EffectiveClient, WalksFromTheRightPastTrustedProxies) {
  const auto trusted = list({"10.0.0.0/8"});
  EXPECT_EQ(client("10.0.0.1", "1.2.3.4, 10.0.0.2", trusted), "1.2.3.4");
  EXPECT_EQ(client("10.0.0.1", "1.2.3.4", trusted), "1.2.3.4");
  // The client may prepend anything; only the hop our proxies appended counts.
  EXPECT_EQ(client("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", trusted), "1.2.3.4");
  EXPECT_EQ(client("10.0.0.1", "not-an-ip, 1.2.3.4", trusted), "1.2.3.4");
}

TEST(EffectiveClient, AllTrustedChainGivesLeftmost) {
  const auto trusted = list({"10.0.0.0/8"});
  EXPECT_EQ(client("10.0.0.1", "10.0.0.5, 10.0.0.4, 10.0.0.3", trusted), "10.0.0.5");
}

TEST(EffectiveClient, SpacesAndPorts) {
  const auto trusted = list({"10.0.0.0/8", "2001:db8::/32"});
  EXPECT_EQ(client("10.0.0.1", "  1.2.3.4 ,\t10.0.0.2  ", trusted), "1.2.3.4");
  EXPECT_EQ(client("10.0.0.1", "1.2.3.4,10.0.0.2", trusted), "1.2.3.4");
  EXPECT_EQ(client("10.0.0.1", "1.2.3.4:4711", trusted), "1.2.3.4");
  EXPECT_EQ(client("10.0.0.1", "[2001:db9::7]:4711, 2001:db8::1", trusted), "2001:db9::7");
  EXPECT_EQ(client("2001:db8::1", "2001:db9::7", trusted), "2001:db9::7");
  EXPECT_EQ(client("::ffff:10.0.0.1", "::ffff:1.2.3.4", trusted), "1.2.3.4");
}

TEST(EffectiveClient, EmptyXffFromTrustedProxyGivesPeer) {
  const auto trusted = list({"10.0.0.0/8"});
  EXPECT_EQ(client("10.0.0.1", "", trusted), "10.0.0.1");
  EXPECT_EQ(client("10.0.0.1", "   ", trusted), "10.0.0.1");
}

TEST(EffectiveClient, MalformedEntriesThatMustBeReadAreErrors) {
  const auto trusted = list({"10.0.0.0/8"});
  for (const std::string_view xff :
       {"garbage"sv, "1.2.3.4, garbage"sv, "1.2.3.4,"sv, "1.2.3.4,,10.0.0.2"sv, ","sv, "unknown"sv,
        "1.2.3.4:"sv, "1.2.3.4:99999"sv, "1.2.3.4:80x"sv, "[1.2.3.4]:80"sv, "1.2.3.4:80:80"sv,
        "[2001:db8::1]:"sv, "2001:db8::1:80]"sv}) {
    EXPECT_EQ(client("10.0.0.1", xff, trusted), "error:malformed_xff") << xff;
  }
}

// Shared secret.

const std::vector<std::string> rotation = {"s3cret-current-0123456789", "s3cret-next-9876543210"};

TEST(SharedSecret, AcceptsEitherRotationSecret) {
  EXPECT_EQ(check_shared_secret("s3cret-current-0123456789", rotation), std::nullopt);
  EXPECT_EQ(check_shared_secret("s3cret-next-9876543210", rotation), std::nullopt);
  EXPECT_EQ(check_shared_secret("  s3cret-next-9876543210 ", rotation), std::nullopt);
  EXPECT_EQ(check_shared_secret("s3cret-current-0123456789",
                                std::span<const std::string>(rotation.data(), 1)),
            std::nullopt);
}

TEST(SharedSecret, Refuses) {
  EXPECT_EQ(check_shared_secret("", rotation), auth_failure::missing);
  EXPECT_EQ(check_shared_secret("  ", rotation), auth_failure::missing);
  EXPECT_EQ(check_shared_secret("s3cret-current-012345678", rotation), auth_failure::mismatch);
  EXPECT_EQ(check_shared_secret("s3cret-current-01234567890", rotation), auth_failure::mismatch);
  EXPECT_EQ(check_shared_secret("S3cret-current-0123456789", rotation), auth_failure::mismatch);
  EXPECT_EQ(check_shared_secret("s3cret-current-0123456789", {}), auth_failure::mismatch);
  EXPECT_EQ(check_shared_secret(std::string(2000, 'x'), rotation), auth_failure::malformed);
}

TEST(SharedSecret, EmptyConfiguredSecretNeverMatches) {
  const std::vector<std::string> with_empty = {"", "real"};
  EXPECT_EQ(check_shared_secret("", with_empty), auth_failure::missing);
  EXPECT_EQ(check_shared_secret(" ", with_empty), auth_failure::missing);
  EXPECT_EQ(check_shared_secret("real", with_empty), std::nullopt);
}

// Signatures.

std::string hex(const unsigned char* data, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0xf]);
  }
  return out;
}

std::string upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'f') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return s;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += s;
  }
  return out;
}

// OpenSSL's one-shot HMAC(), independent of the code under test.
std::string reference_hmac_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return hex(mac, len);
}

TEST(Signature, ReferenceHmacMatchesRfc4231) {
  // RFC 4231 test cases 1 and 2, HMAC-SHA-256.
  EXPECT_EQ(reference_hmac_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(reference_hmac_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

constexpr std::string_view secret = "whsec_test_secret";
constexpr std::string_view body = R"({"event":"session.ended","sessionId":"0b5e"})";
constexpr std::int64_t t0 = 1795860902;
// HMAC-SHA256("whsec_test_secret", "1795860902." + body), computed with Python's hmac module.
constexpr std::string_view known_v1 =
    "415dd32832c909a7458e4ae07c40e82c84b00646058f6a1a335c99848d1e63e7";

TEST(Signature, KnownAnswer) {
  const std::string header = make_signature_header(body, secret, t0);
  EXPECT_EQ(header, "t=1795860902,v1=" + std::string(known_v1));
  EXPECT_EQ(reference_hmac_hex(secret, "1795860902." + std::string(body)), known_v1);
  const std::vector<std::string> secrets = {std::string(secret)};
  EXPECT_EQ(check_signature(header, body, secrets, t0, 300), std::nullopt);
}

TEST(Signature, MatchesReferenceOverManyBodies) {
  const std::vector<std::string> secrets = {"k"};
  std::string b;
  for (int i = 0; i < 200; ++i) {
    b.push_back(static_cast<char>(i * 7));
    const std::string header = make_signature_header(b, "k", t0 + i);
    EXPECT_EQ(header, "t=" + std::to_string(t0 + i) +
                          ",v1=" + reference_hmac_hex("k", std::to_string(t0 + i) + "." + b));
    EXPECT_EQ(check_signature(header, b, secrets, t0 + i, 0), std::nullopt);
  }
}

TEST(Signature, ToleranceEdges) {
  const std::vector<std::string> secrets = {std::string(secret)};
  const std::string header = make_signature_header(body, secret, t0);
  EXPECT_EQ(check_signature(header, body, secrets, t0 + 300, 300), std::nullopt);
  EXPECT_EQ(check_signature(header, body, secrets, t0 - 300, 300), std::nullopt);
  EXPECT_EQ(check_signature(header, body, secrets, t0 + 301, 300), auth_failure::stale);
  EXPECT_EQ(check_signature(header, body, secrets, t0 - 301, 300), auth_failure::stale);
  EXPECT_EQ(check_signature(header, body, secrets, t0, 0), std::nullopt);
  EXPECT_EQ(check_signature(header, body, secrets, t0 + 1, 0), auth_failure::stale);
  // Extremes neither overflow nor wrap into acceptance.
  EXPECT_EQ(check_signature(header, body, secrets, INT64_MAX, 300), auth_failure::stale);
  EXPECT_EQ(check_signature(header, body, secrets, INT64_MIN, 300), auth_failure::stale);
  EXPECT_EQ(check_signature(header, body, secrets, t0 + 1'000'000'000'000, INT64_MAX),
            std::nullopt);
  EXPECT_EQ(check_signature(header, body, secrets, t0, -5), std::nullopt);
  EXPECT_EQ(check_signature(header, body, secrets, t0 + 1, -5), auth_failure::stale);
}

TEST(Signature, StaleOnlyWhenGenuine) {
  const std::vector<std::string> secrets = {std::string(secret)};
  const std::string forged = make_signature_header(body, "other", t0);
  EXPECT_EQ(check_signature(forged, body, secrets, t0 + 10'000, 300), auth_failure::mismatch);
}

TEST(Signature, SecondRotationSecret) {
  const std::vector<std::string> secrets = {"old-secret", std::string(secret)};
  EXPECT_EQ(check_signature(make_signature_header(body, secret, t0), body, secrets, t0, 300),
            std::nullopt);
  EXPECT_EQ(check_signature(make_signature_header(body, "old-secret", t0), body, secrets, t0, 300),
            std::nullopt);
  EXPECT_EQ(check_signature(make_signature_header(body, "third", t0), body, secrets, t0, 300),
            auth_failure::mismatch);
}

TEST(Signature, SeveralV1ValuesAnyMayMatch) {
  const std::vector<std::string> secrets = {std::string(secret)};
  const std::string good = "v1=" + std::string(known_v1);
  const std::string other = "v1=" + std::string(64, 'a');
  EXPECT_EQ(check_signature("t=1795860902," + other + "," + good, body, secrets, t0, 300),
            std::nullopt);
  EXPECT_EQ(check_signature("t=1795860902," + good + "," + other, body, secrets, t0, 300),
            std::nullopt);
  EXPECT_EQ(check_signature("t=1795860902," + other, body, secrets, t0, 300),
            auth_failure::mismatch);
}

TEST(Signature, TamperedBodyOrTimestamp) {
  const std::vector<std::string> secrets = {std::string(secret)};
  const std::string header = make_signature_header(body, secret, t0);
  std::string tampered(body);
  tampered[tampered.size() - 3] ^= 1;
  EXPECT_EQ(check_signature(header, tampered, secrets, t0, 300), auth_failure::mismatch);
  EXPECT_EQ(check_signature(header, std::string(body) + " ", secrets, t0, 300),
            auth_failure::mismatch);
  const std::string moved_t = "t=1795860903,v1=" + std::string(known_v1);
  EXPECT_EQ(check_signature(moved_t, body, secrets, t0, 300), auth_failure::mismatch);
  // Same number, different text: the MAC covers t as sent.
  const std::string padded_t = "t=01795860902,v1=" + std::string(known_v1);
  EXPECT_EQ(check_signature(padded_t, body, secrets, t0, 300), auth_failure::mismatch);
  std::string flipped_mac = header;
  flipped_mac.back() = flipped_mac.back() == '0' ? '1' : '0';
  EXPECT_EQ(check_signature(flipped_mac, body, secrets, t0, 300), auth_failure::mismatch);
}

TEST(Signature, HeaderSyntaxTolerance) {
  const std::vector<std::string> secrets = {std::string(secret)};
  const std::string v1(known_v1);
  for (const std::string& header : {
           " t = 1795860902 , v1 = " + v1 + " ",
           "v1=" + v1 + ",t=1795860902",
           "t=1795860902,v0=deadbeef,v1=" + v1 + ",scheme=x",
           "t=1795860902,,v1=" + v1,
           "t=1795860902,v1=" + upper(v1),
       }) {
    EXPECT_EQ(check_signature(header, body, secrets, t0, 300), std::nullopt) << header;
  }
}

TEST(Signature, MalformedHeaders) {
  const std::vector<std::string> secrets = {std::string(secret)};
  const std::string v1(known_v1);
  EXPECT_EQ(check_signature("", body, secrets, t0, 300), auth_failure::missing);
  EXPECT_EQ(check_signature("  ", body, secrets, t0, 300), auth_failure::missing);
  for (const std::string& header : {
           "v1=" + v1,                                    // no t
           "t=1795860902"s,                               // no v1
           "t=1795860902,v1="s,                           // empty v1
           "t=1795860902,v1=" + v1.substr(0, 63),         // short
           "t=1795860902,v1=" + v1 + "0",                 // long
           "t=1795860902,v1=" + v1.substr(0, 62) + "zz",  // not hex
           "t=1795860902,v1=" + v1.substr(0, 62) + " 0",  // space inside
           "t=abc,v1=" + v1,
           "t=-1795860902,v1=" + v1,
           "t=+1795860902,v1=" + v1,
           "t=,v1=" + v1,
           "t=1795860902.5,v1=" + v1,
           "t=1234567890123456789,v1=" + v1,  // 19 digits
           "t=1795860902,t=1795860902,v1=" + v1,
           "t=1795860902,v1" + v1,  // no '='
           "garbage"s,
           "t=1795860902" + repeat(",v1=" + v1, 9),  // more than 8 signatures
           "t=1795860902,v1=" + v1 + std::string(3000, ' ') + ",x=y",
       }) {
    EXPECT_EQ(check_signature(header, body, secrets, t0, 300), auth_failure::malformed) << header;
  }
}

TEST(Signature, EightSignaturesAreRead) {
  const std::vector<std::string> secrets = {std::string(secret)};
  const std::string header =
      "t=1795860902" + repeat(",v1=" + std::string(64, 'b'), 7) + ",v1=" + std::string(known_v1);
  EXPECT_EQ(check_signature(header, body, secrets, t0, 300), std::nullopt);
}

TEST(Signature, EmptySecretsNeverMatch) {
  // Anyone can compute a MAC under the empty key.
  const std::string header = make_signature_header(body, "", t0);
  const std::vector<std::string> empty_secret = {""};
  EXPECT_EQ(check_signature(header, body, empty_secret, t0, 300), auth_failure::mismatch);
  EXPECT_EQ(check_signature(header, body, {}, t0, 300), auth_failure::mismatch);
  // And an empty key really is a different key from the previous one used on this thread.
  EXPECT_NE(make_signature_header(body, "", t0), make_signature_header(body, secret, t0));
  EXPECT_EQ(make_signature_header(body, "", t0),
            "t=1795860902,v1=" + reference_hmac_hex("", "1795860902." + std::string(body)));
}

TEST(AuthFailure, Names) {
  EXPECT_EQ(to_string(auth_failure::missing), "missing");
  EXPECT_EQ(to_string(auth_failure::mismatch), "mismatch");
  EXPECT_EQ(to_string(auth_failure::malformed), "malformed");
  EXPECT_EQ(to_string(auth_failure::stale), "stale");
}

}  // namespace
}  // namespace dialer
