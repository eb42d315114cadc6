#pragma once
// The simulator's TLS identity: DIR/cert.pem and DIR/key.pem, generated on first use as a
// self-signed EC P-256 certificate for CN=localhost with SAN DNS:localhost, IP:127.0.0.1 and
// IP:::1, valid for two years. Clients trust DIR/cert.pem as their CA file.
#include <string>

namespace dialer::sim {

struct cert_paths {
  std::string cert;
  std::string key;
};

// Creates DIR if needed and generates the pair unless both files exist. Safe against several
// simulators starting at once on the same DIR (an flock serialises the check and the write).
// Throws std::runtime_error on failure.
[[nodiscard]] cert_paths ensure_certificate(const std::string& dir);

}  // namespace dialer::sim
