// The one translation unit of the pool that includes Asio-SSL and Beast. Handlers capture a
// shared_ptr to the connection, so it lives until its last handler has run; the pool runs on one
// io_context thread, so nothing here needs a strand.
#include "core/https_connection.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <utility>

namespace dialer::detail {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr std::uint32_t response_header_limit = 16 * 1024;
constexpr milliseconds tls_shutdown_timeout{1000};

template <class F>
F take(F& f) {
  F out = std::move(f);
  f = nullptr;
  return out;
}

std::string ms_text(milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

}  // namespace

class tls_client_context {
 public:
  explicit tls_client_context(const std::string& ca_file) : ctx_(ssl::context::tls_client) {
    if (SSL_CTX_set_min_proto_version(ctx_.native_handle(), TLS1_2_VERSION) != 1) {
      throw std::runtime_error("cannot require TLS 1.2 or later");
    }
    ctx_.set_verify_mode(ssl::verify_peer);
    error_code ec;
    if (ca_file.empty()) {
      ctx_.set_default_verify_paths(ec);
    } else {
      ctx_.load_verify_file(ca_file, ec);
    }
    if (ec) {
      throw std::runtime_error("cannot load CA certificates" +
                               (ca_file.empty() ? std::string() : " from " + ca_file) + ": " +
                               ec.message());
    }
  }

  ssl::context& get() { return ctx_; }

 private:
  ssl::context ctx_;
};

std::shared_ptr<tls_client_context> make_tls_client_context(const std::string& ca_file) {
  return std::make_shared<tls_client_context>(ca_file);
}

namespace {

class https_connection_impl final : public https_connection,
                                    public std::enable_shared_from_this<https_connection_impl> {
 public:
  https_connection_impl(net::io_context& io, std::shared_ptr<tls_client_context> tls,
                        std::shared_ptr<const https_endpoint> endpoint)
      : tls_(std::move(tls)),
        endpoint_(std::move(endpoint)),
        resolver_(io),
        stream_(io, tls_->get()),
        deadline_(io) {}

  void async_open(open_handler done) override {
    open_done_ = std::move(done);
    arm_deadline(endpoint_->connect_timeout);
    // No AI_ADDRCONFIG: on a host whose only interface is loopback it hides "localhost".
    auto flags = endpoint_->host_is_ip ? tcp::resolver::numeric_host : tcp::resolver::flags();
    resolver_.async_resolve(
        endpoint_->host, endpoint_->port, flags,
        [self = shared_from_this()](const error_code& ec, tcp::resolver::results_type results) {
          self->on_resolve(ec, std::move(results));
        });
  }

  bool peer_gone() override {
    auto& socket = stream_.next_layer();
    if (!socket.is_open() || buffer_.size() != 0) {
      return true;
    }
    // A few rounds: TLS 1.3 session tickets may sit in front of the FIN or close_notify.
    for (int round = 0; round < 4; ++round) {
      char byte = 0;
      const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0) {
        return true;
      }
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return errno != EAGAIN && errno != EWOULDBLOCK;
      }
      if (!only_tls_housekeeping_pending()) {
        return true;
      }
    }
    return true;
  }

  void async_exchange(std::string request, bool head, exchange_handler done) override {
    request_ = std::move(request);
    exchange_done_ = std::move(done);
    timed_out_ = false;
    bytes_written_ = 0;
    reset_parser(head);
    arm_deadline(endpoint_->request_timeout);
    started_ = std::chrono::steady_clock::now();
    net::async_write(stream_, net::buffer(request_),
                     [self = shared_from_this()](const error_code& ec, std::size_t n) {
                       self->on_write(ec, n);
                     });
  }

  void async_close(close_handler done) override {
    close_done_ = std::move(done);
    arm_deadline(tls_shutdown_timeout);
    stream_.async_shutdown(
        [self = shared_from_this()](const error_code& ec) { self->on_shutdown(ec); });
  }

  void abort() override {
    open_done_ = nullptr;
    exchange_done_ = nullptr;
    close_done_ = nullptr;
    resolver_.cancel();
    disarm_deadline();
    close_socket();
  }

 private:
  void on_resolve(const error_code& ec, tcp::resolver::results_type results) {
    if (!open_done_) {
      return;
    }
    if (ec) {
      fail_open(transport_error::connect_failed,
                "resolving " + endpoint_->host + " failed: " + ec.message());
      return;
    }
    net::async_connect(stream_.next_layer(), results,
                       [self = shared_from_this()](const error_code& ec, const tcp::endpoint&) {
                         self->on_connect(ec);
                       });
  }

  void on_connect(const error_code& ec) {
    if (!open_done_) {
      return;
    }
    if (ec) {
      fail_open(transport_error::connect_failed,
                "connecting to " + endpoint_->authority + " failed: " + ec.message());
      return;
    }
    // Each request is one write of a whole TLS record; nothing is gained by Nagle's delay.
    error_code ignored;
    stream_.next_layer().set_option(tcp::no_delay(true), ignored);
    if (!set_up_peer_verification()) {
      fail_open(transport_error::tls_failed,
                "TLS setup for " + endpoint_->authority + " failed: cannot set the peer name");
      return;
    }
    handshaking_ = true;
    stream_.async_handshake(
        ssl::stream_base::client,
        [self = shared_from_this()](const error_code& ec) { self->on_handshake(ec); });
  }

  // SNI only for names (RFC 6066 forbids IP literals in it); the certificate must name the host:
  // a DNS SAN for names, an IP SAN for literals.
  bool set_up_peer_verification() {
    SSL* handle = stream_.native_handle();
    const std::string& host = endpoint_->host;
    if (endpoint_->host_is_ip) {
      return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), host.c_str()) == 1;
    }
    if (SSL_set_tlsext_host_name(handle, host.c_str()) != 1) {
      return false;
    }
    stream_.set_verify_callback(
        [check = ssl::host_name_verification(host)](bool preverified, ssl::verify_context& ctx) {
          if (check(preverified, ctx)) {
            return true;
          }
          // On a trusted chain with the wrong name, host_name_verification sets no X509 error and
          // OpenSSL would report "unspecified"; name the real reason for last_error.
          X509_STORE_CTX* store = ctx.native_handle();
          if (X509_STORE_CTX_get_error(store) == X509_V_OK) {
            X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
          }
          return false;
        });
    return true;
  }

  void on_handshake(const error_code& ec) {
    if (!open_done_) {
      return;
    }
    if (ec) {
      fail_open(transport_error::tls_failed,
                "TLS handshake with " + endpoint_->authority + " failed: " + describe_tls(ec));
      return;
    }
    disarm_deadline();
    take(open_done_)(transport_error::none, std::string());
  }

  std::string describe_tls(const error_code& ec) {
    std::string text = ec.message();
    if (ec.category() != net::error::get_ssl_category() ||
        ERR_GET_REASON(ec.value()) != SSL_R_CERTIFICATE_VERIFY_FAILED) {
      return text;
    }
    const long result = SSL_get_verify_result(stream_.native_handle());
    return result == X509_V_OK ? text : text + " (" + X509_verify_cert_error_string(result) + ")";
  }

  void fail_open(transport_error error, std::string text) {
    resolver_.cancel();
    disarm_deadline();
    close_socket();
    take(open_done_)(error, std::move(text));
  }

  void reset_parser(bool head) {
    parser_.emplace();
    parser_->body_limit(endpoint_->max_response_bytes);
    parser_->header_limit(response_header_limit);
    parser_->skip(head);
    head_ = head;
  }

  void on_write(const error_code& ec, std::size_t n) {
    if (!exchange_done_) {
      return;
    }
    bytes_written_ = n;
    if (ec || timed_out_) {
      // Asio's SSL stream counts plaintext bytes only once the TLS record carrying them has
      // reached the socket whole. With 0 counted, the peer holds at most a truncated record it
      // cannot decrypt, so it cannot have acted on the request.
      const bool sent = n > 0;
      transport_error error =
          timed_out_
              ? (sent ? transport_error::timeout_after_send : transport_error::timeout_before_send)
              : (sent ? transport_error::reset_after_send : transport_error::reset_before_send);
      fail_exchange(error, timed_out_ ? "" : ec.message());
      return;
    }
    read_response();
  }

  // Header first, then the body. Beast 1.74 loses the body_limit error for a too-large
  // Content-Length when the parser is eager, which http::async_read makes it
  // (boostorg/beast#2183); async_read_header is not eager, and on_header checks the length again.
  void read_response() {
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_header(ec); });
  }

  // A deadline that fired in the same loop turn as the completion has closed the socket; a
  // response already complete is still returned rather than reported as an ambiguous timeout.
  void on_header(const error_code& ec) {
    if (!exchange_done_) {
      return;
    }
    if (ec) {
      fail_exchange(classify_read_error(ec), timed_out_ ? "" : ec.message());
      return;
    }
    const int status = parser_->get().result_int();
    // An interim 1xx (other than 101) precedes the real response; RFC 9110 says skip it.
    if (status / 100 == 1 && status != 101) {
      if (timed_out_) {
        fail_exchange(transport_error::timeout_after_send, "");
        return;
      }
      reset_parser(head_);
      read_response();
      return;
    }
    if (const auto length = parser_->content_length();
        length && *length > endpoint_->max_response_bytes) {
      fail_exchange(transport_error::protocol_error,
                    "response body of " + std::to_string(*length) + " bytes exceeds the limit");
      return;
    }
    if (parser_->is_done()) {
      on_body({});
      return;
    }
    if (timed_out_) {
      fail_exchange(transport_error::timeout_after_send, "");
      return;
    }
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_body(ec); });
  }

  void on_body(const error_code& ec) {
    if (!exchange_done_) {
      return;
    }
    if (ec) {
      fail_exchange(classify_read_error(ec), timed_out_ ? "" : ec.message());
      return;
    }
    disarm_deadline();
    auto& message = parser_->get();
    exchange_result result;
    result.status = message.result_int();
    result.body = std::move(message.body());
    if (auto it = message.find(http::field::retry_after); it != message.end()) {
      result.retry_after = std::string(it->value());
    }
    // Bytes after the response were never asked for: the next exchange would read them as its
    // answer, so such a connection is not reused.
    result.keep_alive = parser_->keep_alive() && buffer_.size() == 0 && !timed_out_;
    result.bytes_written = bytes_written_;
    result.latency = std::chrono::steady_clock::now() - started_;
    parser_.reset();
    request_.clear();
    take(exchange_done_)(std::move(result));
  }

  transport_error classify_read_error(const error_code& ec) const {
    if (timed_out_) {
      return transport_error::timeout_after_send;
    }
    const auto& http_category = http::make_error_code(http::error::end_of_stream).category();
    if (ec.category() == http_category && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      return transport_error::protocol_error;
    }
    return transport_error::reset_after_send;
  }

  void fail_exchange(transport_error error, const std::string& cause) {
    disarm_deadline();
    close_socket();
    exchange_result result;
    result.error = error;
    result.bytes_written = bytes_written_;
    result.latency = std::chrono::steady_clock::now() - started_;
    result.error_text =
        "request to " + endpoint_->authority + " failed after " + std::to_string(bytes_written_) +
        " bytes written: " +
        (cause.empty() ? "no response within " + ms_text(endpoint_->request_timeout) : cause);
    parser_.reset();
    request_.clear();
    take(exchange_done_)(std::move(result));
  }

  void on_shutdown(const error_code&) {
    if (!close_done_) {
      return;
    }
    // Any error here is benign, typically stream_truncated or eof: the peer closed TCP without
    // its own close_notify. The last exchange was already complete, so nothing is lost.
    disarm_deadline();
    close_socket();
    take(close_done_)();
  }

  // Reads through OpenSSL without blocking. True when the pending bytes were only TLS
  // housekeeping (TLS 1.3 session tickets, key updates); false on close_notify, EOF, errors or
  // application data, which nobody asked for on an idle connection.
  bool only_tls_housekeeping_pending() {
    auto& socket = stream_.next_layer();
    error_code ec;
    socket.non_blocking(true, ec);
    if (ec) {
      return false;
    }
    // Should OpenSSL have to answer (a TLS 1.3 KeyUpdate), the few bytes fit in the empty send
    // buffer of an idle socket, so the non-blocking write cannot stop half-way.
    char data[256];
    const std::size_t n = stream_.read_some(net::buffer(data), ec);
    error_code ignored;
    socket.non_blocking(false, ignored);
    return n == 0 && ec == net::error::would_block;
  }

  void arm_deadline(milliseconds d) {
    deadline_.expires_after(d);
    deadline_.async_wait(
        [self = shared_from_this(), generation = ++deadline_generation_](const error_code& ec) {
          if (ec || generation != self->deadline_generation_) {
            return;
          }
          self->on_deadline();
        });
  }

  void disarm_deadline() {
    ++deadline_generation_;
    deadline_.cancel();
  }

  // Closing the socket completes whatever is pending with operation_aborted; the handlers then
  // see timed_out_ and classify the failure.
  void on_deadline() {
    timed_out_ = true;
    if (open_done_) {
      const transport_error error =
          handshaking_ ? transport_error::tls_failed : transport_error::connect_failed;
      fail_open(error, std::string(handshaking_ ? "TLS handshake with " : "connecting to ") +
                           endpoint_->authority + " timed out after " +
                           ms_text(endpoint_->connect_timeout));
      return;
    }
    close_socket();
  }

  void close_socket() {
    error_code ignored;
    stream_.next_layer().close(ignored);
  }

  std::shared_ptr<tls_client_context> tls_;
  std::shared_ptr<const https_endpoint> endpoint_;
  tcp::resolver resolver_;
  ssl::stream<tcp::socket> stream_;
  net::steady_timer deadline_;
  std::uint64_t deadline_generation_ = 0;
  bool timed_out_ = false;
  bool handshaking_ = false;
  bool head_ = false;

  open_handler open_done_;
  exchange_handler exchange_done_;
  close_handler close_done_;

  std::string request_;
  std::size_t bytes_written_ = 0;
  std::chrono::steady_clock::time_point started_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

}  // namespace

std::shared_ptr<https_connection> https_connection::create(
    net::io_context& io, std::shared_ptr<tls_client_context> tls,
    std::shared_ptr<const https_endpoint> endpoint) {
  return std::make_shared<https_connection_impl>(io, std::move(tls), std::move(endpoint));
}

}  // namespace dialer::detail
