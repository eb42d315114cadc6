#pragma once
// A blocking HTTP/1.1 client for dialerctl: one request per connection (Connection: close) over a
// plain POSIX TCP socket. The control listener is loopback HTTP, so there is no TLS here; an
// https:// URL is refused by parse_control_url. Every exchange is bounded in time (one deadline
// for connect + send + receive) and in size.
//
// Threading: no shared state; call from any thread. Blocking; not for an event loop.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace dialer::ctl {

// Where the control API is: http://host[:port][/base-path].
struct endpoint {
  std::string host;  // a name or an IP literal; an IPv6 literal without brackets
  std::uint16_t port = 9464;
  std::string base_path;  // "" or "/prefix" without a trailing slash

  // host[:port] as it goes in the Host field and in messages ("[::1]:9464").
  [[nodiscard]] std::string authority() const;
  // "http://" + authority() + base_path.
  [[nodiscard]] std::string url() const;
};

// Accepts "http://host[:port][/path]" and, for convenience, "host[:port]" (http assumed). The
// port defaults to 80 with a scheme, 9464 without one. https:// and every other scheme, user
// info, queries, fragments and malformed ports are refused with a message that says why.
[[nodiscard]] result<endpoint, std::string> parse_control_url(std::string_view url);

// "%XX"-escapes everything but RFC 3986 unreserved characters, for one path segment.
[[nodiscard]] std::string escape_path_segment(std::string_view segment);

using header_list = std::vector<std::pair<std::string, std::string>>;

struct http_request {
  std::string method = "GET";
  std::string target;   // path + query, appended to the endpoint's base_path
  header_list headers;  // extra fields; Host, Connection and Content-Length are set by fetch()
  std::string body;     // sent with Content-Length (also 0 for a bodiless POST)
};

struct http_response {
  int status = 0;
  header_list headers;  // as received, in order
  std::string body;     // de-chunked

  // The first field with this name (case-insensitive); "" when absent.
  [[nodiscard]] std::string_view header(std::string_view name) const;
};

enum class fetch_failure {
  resolve_failed,  // the host name did not resolve
  connect_failed,  // refused, unreachable, ...: no address accepted the connection
  timeout,         // the deadline passed (connecting, sending or waiting for the answer)
  closed,          // the peer closed or reset before the answer was complete
  protocol,        // the answer is not HTTP/1.x as we read it
  too_large,       // the answer is over max_response_bytes
  interrupted,     // cancel_fd became readable
};

struct fetch_error {
  fetch_failure kind;
  std::string message;  // says what and where, e.g. "connection refused by 127.0.0.1:9464"
};

struct fetch_options {
  // One deadline for the whole exchange. Name resolution (getaddrinfo) is not covered: use an IP
  // literal where that matters (the control listener is loopback).
  std::chrono::milliseconds timeout{10000};
  std::size_t max_response_bytes = std::size_t{64} << 20;  // status line + fields + body
  // When >= 0 and readable (a self-pipe written by a signal handler), fetch stops at once and
  // fails with `interrupted`. Not read from: the caller drains it.
  int cancel_fd = -1;
};

// Sends `request` to `to` and reads the whole answer (Content-Length, chunked, or until close;
// 1xx answers are skipped). Any status is a success here: the caller reads it.
[[nodiscard]] result<http_response, fetch_error> fetch(const endpoint& to,
                                                       const http_request& request,
                                                       const fetch_options& options);

}  // namespace dialer::ctl
