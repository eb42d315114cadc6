#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sim/tls_cert.hpp"

namespace dialer::sim {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class sim_tls_cert_test : public ::testing::Test {
 protected:
  sim_tls_cert_test()
      : dir_(::testing::TempDir() + "sim_tls_cert_test_" + std::to_string(::getpid())) {}
  ~sim_tls_cert_test() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(sim_tls_cert_test, generates_a_localhost_certificate_once) {
  const cert_paths paths = ensure_certificate(dir_);
  const std::string cert_pem = read_file(paths.cert);
  const std::string key_pem = read_file(paths.key);
  ASSERT_FALSE(cert_pem.empty());
  ASSERT_FALSE(key_pem.empty());

  struct stat st {};
  ASSERT_EQ(::stat(paths.key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  FILE* f = std::fopen(paths.cert.c_str(), "r");
  ASSERT_NE(f, nullptr);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(cert, nullptr);
  f = std::fopen(paths.key.c_str(), "r");
  ASSERT_NE(f, nullptr);
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(key, nullptr);

  EXPECT_EQ(X509_check_private_key(cert, key), 1);
  EXPECT_EQ(X509_check_host(cert, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "::1", 0), 1);
  EXPECT_NE(X509_check_host(cert, "example.com", 0, 0, nullptr), 1);
  // Self-signed, so it verifies against itself as the only trust anchor.
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, cert);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, nullptr);
  X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(ctx), X509_PURPOSE_SSL_SERVER);
  EXPECT_EQ(X509_verify_cert(ctx), 1)
      << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  int day_diff = 0;
  int sec_diff = 0;
  ASSERT_EQ(
      ASN1_TIME_diff(&day_diff, &sec_diff, X509_get0_notBefore(cert), X509_get0_notAfter(cert)), 1);
  EXPECT_GE(day_diff, 730);  // two years (and the hour of slack before now)
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  EVP_PKEY_free(key);
  X509_free(cert);

  // A second start reuses the pair.
  const cert_paths again = ensure_certificate(dir_);
  EXPECT_EQ(read_file(again.cert), cert_pem);
  EXPECT_EQ(read_file(again.key), key_pem);
}

TEST_F(sim_tls_cert_test, regenerates_when_the_key_is_missing) {
  const cert_paths paths = ensure_certificate(dir_);
  const std::string first = read_file(paths.cert);
  std::filesystem::remove(paths.key);
  (void)ensure_certificate(dir_);
  EXPECT_NE(read_file(paths.cert), first);
  EXPECT_FALSE(read_file(paths.key).empty());
}

}  // namespace
}  // namespace dialer::sim
