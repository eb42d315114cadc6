#include "sim/tls_cert.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>

#include "sim/atomic_file.hpp"

namespace dialer::sim {

namespace {

template <class T, void (*Free)(T*)>
struct openssl_deleter {
  void operator()(T* p) const { Free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO, BIO_free_all>>;
using bn_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BIGNUM, BN_free>>;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("--cert-dir: " + what);
}

void add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) {
    fail(std::string("cannot build the extension ") + value);
  }
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) {
    fail(std::string("cannot add the extension ") + value);
  }
}

std::string to_pem(const std::function<int(BIO*)>& write) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) {
    fail("cannot encode PEM");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

void generate(const std::string& cert_path, const std::string& key_path) {
  pkey_ptr key(EVP_EC_gen("P-256"));
  if (!key) {
    fail("cannot generate an EC P-256 key");
  }
  x509_ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    fail("cannot create the certificate");
  }
  // A random positive 127-bit serial, as RFC 5280 recommends for uniqueness.
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) {
    fail("no randomness for the serial number");
  }
  serial_bytes[0] &= 0x7f;
  serial_bytes[0] |= 0x40;
  bn_ptr serial(BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr));
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    fail("cannot set the serial number");
  }
  // Valid from an hour ago, so a client whose clock is slightly behind still accepts it.
  constexpr long two_years = 2L * 365 * 24 * 3600;
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), two_years) == nullptr ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    fail("cannot set validity or key");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1) {
    fail("cannot set the subject");
  }
  // Self-signed and used directly as the clients' trust anchor: a CA that may also serve.
  add_extension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign");
  add_extension(cert.get(), NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), NID_subject_key_identifier, "hash");
  add_extension(cert.get(), NID_authority_key_identifier, "keyid:always");
  add_extension(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    fail("cannot sign the certificate");
  }

  const std::string key_pem = to_pem([&](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  const std::string cert_pem =
      to_pem([&](BIO* bio) { return PEM_write_bio_X509(bio, cert.get()); });
  // The key first: a reader that finds cert.pem finds its key.
  write_file_atomically(key_path, key_pem, 0600);
  write_file_atomically(cert_path, cert_pem, 0644);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

cert_paths ensure_certificate(const std::string& dir) {
  cert_paths paths{dir + "/cert.pem", dir + "/key.pem"};
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    fail("cannot create '" + dir + "': " + std::strerror(errno));
  }
  const std::string lock_path = dir + "/.agentix-sim.lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    fail("cannot open '" + lock_path + "': " + std::strerror(errno));
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }  // also releases the flock
  } close_lock{lock_fd};
  while (::flock(lock_fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      fail("cannot lock '" + lock_path + "': " + std::strerror(errno));
    }
  }
  if (!exists(paths.cert) || !exists(paths.key)) {
    generate(paths.cert, paths.key);
  }
  return paths;
}

}  // namespace dialer::sim
