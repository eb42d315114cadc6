#include "ctl/http_client.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <memory>
#include <system_error>
#include <utility>

namespace dialer::ctl {
namespace {

using clock_type = std::chrono::steady_clock;

// The status line and fields; a body is bounded only by max_response_bytes.
constexpr std::size_t max_header_bytes = 64 * 1024;
constexpr std::size_t max_chunk_line = 4096;
constexpr std::size_t read_chunk = 64 * 1024;

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool has_line_break(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::string errno_text(int e) {
  return std::generic_category().message(e);
}

std::string format_timeout(std::chrono::milliseconds t) {
  if (t.count() % 1000 == 0) {
    return std::to_string(t.count() / 1000) + "s";
  }
  return std::to_string(t.count()) + "ms";
}

failure<fetch_error> fail(fetch_failure kind, std::string message) {
  return failure{fetch_error{kind, std::move(message)}};
}

class unique_fd {
 public:
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

enum class wait_outcome { ready, timeout, interrupted };

// Waits until `fd` has `events` (or an error/hangup, which the next call on it reports), the
// deadline passes, or cancel_fd becomes readable. A signal (EINTR) only restarts the wait: a
// signal that should stop us writes to cancel_fd.
wait_outcome wait_for(int fd, short events, clock_type::time_point deadline, int cancel_fd) {
  for (;;) {
    const auto now = clock_type::now();
    if (now >= deadline) {
      return wait_outcome::timeout;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    pollfd fds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    const int n = ::poll(fds, cancel_fd >= 0 ? 2 : 1,
                         static_cast<int>(std::min<std::int64_t>(left, INT_MAX)));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return wait_outcome::ready;  // let the socket call report the problem
    }
    if (cancel_fd >= 0 && fds[1].revents != 0) {
      return wait_outcome::interrupted;
    }
    if (n > 0 && fds[0].revents != 0) {
      return wait_outcome::ready;
    }
  }
}

std::string address_text(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (::getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  if (sa->sa_family == AF_INET6) {
    return "[" + std::string(host) + "]:" + serv;
  }
  return std::string(host) + ":" + serv;
}

class connection {
 public:
  connection(int fd, clock_type::time_point deadline, const fetch_options& options)
      : fd_(fd), deadline_(deadline), options_(options) {}

  result<bool, fetch_error> send_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return fail(fetch_failure::closed, "sending the request: " + errno_text(errno));
      }
      if (auto w = wait(POLLOUT, "sending the request"); !w.ok()) {
        return failure{w.error()};
      }
    }
    return true;
  }

  // Reads more into in_; false at EOF.
  result<bool, fetch_error> fill(std::string_view doing) {
    for (;;) {
      if (auto w = wait(POLLIN, doing); !w.ok()) {
        return failure{w.error()};
      }
      char buf[read_chunk];
      const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) {
        if (in_.size() + static_cast<std::size_t>(n) > options_.max_response_bytes) {
          return fail(
              fetch_failure::too_large,
              "the answer is over " + std::to_string(options_.max_response_bytes) + " bytes");
        }
        in_.append(buf, static_cast<std::size_t>(n));
        return true;
      }
      if (n == 0) {
        return false;
      }
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
        continue;
      }
      return fail(fetch_failure::closed, std::string(doing) + ": " + errno_text(errno));
    }
  }

  // Makes in_ hold at least `size` bytes; a premature EOF is an error.
  result<bool, fetch_error> need(std::size_t size, std::string_view doing) {
    while (in_.size() < size) {
      auto more = fill(doing);
      if (!more.ok()) {
        return failure{more.error()};
      }
      if (!more.value()) {
        return fail(fetch_failure::closed, "connection closed while " + std::string(doing));
      }
    }
    return true;
  }

  // The offset of the "\r\n" ending the line that starts at `from`, reading as needed.
  result<std::size_t, fetch_error> line_end(std::size_t from, std::size_t limit,
                                            std::string_view doing) {
    std::size_t scanned = from;
    for (;;) {
      const auto at = in_.find("\r\n", scanned);
      if (at != std::string::npos) {
        return at;
      }
      if (in_.size() - from > limit) {
        return fail(fetch_failure::protocol, "line too long while " + std::string(doing));
      }
      scanned = in_.size() > from ? in_.size() - 1 : from;
      auto more = need(in_.size() + 1, doing);
      if (!more.ok()) {
        return failure{more.error()};
      }
    }
  }

  std::string& buffer() { return in_; }

 private:
  result<bool, fetch_error> wait(short events, std::string_view doing) {
    switch (wait_for(fd_.get(), events, deadline_, options_.cancel_fd)) {
      case wait_outcome::ready:
        return true;
      case wait_outcome::interrupted:
        return fail(fetch_failure::interrupted, "interrupted");
      case wait_outcome::timeout:
        break;
    }
    return fail(fetch_failure::timeout, "no answer within " + format_timeout(options_.timeout) +
                                            " (" + std::string(doing) + ")");
  }

  unique_fd fd_;
  clock_type::time_point deadline_;
  const fetch_options& options_;
  std::string in_;
};

result<int, fetch_error> connect_to(const endpoint& to, clock_type::time_point deadline,
                                    const fetch_options& options) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(to.port);
  if (const int rc = ::getaddrinfo(to.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return fail(fetch_failure::resolve_failed,
                "cannot resolve \"" + to.host + "\": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
  std::string last_error = "no address for \"" + to.host + "\"";
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    const std::string where = address_text(ai->ai_addr, ai->ai_addrlen);
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = "socket: " + errno_text(errno);
      continue;
    }
    unique_fd guard(fd);
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS || err == EINTR) {
        switch (wait_for(fd, POLLOUT, deadline, options.cancel_fd)) {
          case wait_outcome::interrupted:
            return fail(fetch_failure::interrupted, "interrupted");
          case wait_outcome::timeout:
            return fail(fetch_failure::timeout,
                        "no connection to " + where + " within " + format_timeout(options.timeout));
          case wait_outcome::ready:
            break;
        }
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
          err = errno;
        }
      }
    }
    if (err == 0) {
      return guard.release();
    }
    last_error = "connect to " + where + ": " + errno_text(err);
  }
  return fail(fetch_failure::connect_failed, last_error);
}

struct parsed_head {
  int status = 0;
  header_list headers;
  std::size_t body_start = 0;
};

// Parses the status line and fields ending at in[end] ("\r\n\r\n" at `end`).
result<parsed_head, fetch_error> parse_head(std::string_view in, std::size_t end) {
  parsed_head head;
  head.body_start = end + 4;
  std::string_view rest = in.substr(0, end + 2);
  const auto first = rest.find("\r\n");
  const std::string_view status_line = rest.substr(0, first);
  rest.remove_prefix(first + 2);
  // "HTTP/1.x SSS[ reason]"
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ' ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return fail(fetch_failure::protocol, "not an HTTP/1.x answer");
  }
  const std::string_view code = status_line.substr(9, 3);
  if (std::from_chars(code.data(), code.data() + 3, head.status).ptr != code.data() + 3 ||
      head.status < 100) {
    return fail(fetch_failure::protocol, "not an HTTP/1.x answer (bad status code)");
  }
  while (!rest.empty()) {
    const auto eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || line.front() == ' ' ||
        line.front() == '\t') {
      return fail(fetch_failure::protocol, "malformed header field in the answer");
    }
    head.headers.emplace_back(std::string(line.substr(0, colon)),
                              std::string(trim(line.substr(colon + 1))));
  }
  return head;
}

std::string_view find_header(const header_list& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) {
      return v;
    }
  }
  return {};
}

result<std::size_t, fetch_error> parse_size(std::string_view text, int base,
                                            std::string_view what) {
  std::size_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return fail(fetch_failure::protocol, "malformed " + std::string(what) + " in the answer");
  }
  return value;
}

result<std::string, fetch_error> read_chunked(connection& c, std::size_t pos,
                                              std::size_t max_bytes) {
  std::string body;
  const std::string_view doing = "reading a chunked body";
  for (;;) {
    auto eol = c.line_end(pos, max_chunk_line, doing);
    if (!eol.ok()) {
      return failure{eol.error()};
    }
    std::string_view line = std::string_view(c.buffer()).substr(pos, eol.value() - pos);
    line = trim(line.substr(0, line.find(';')));
    auto size = parse_size(line, 16, "chunk size");
    if (!size.ok()) {
      return failure{size.error()};
    }
    pos = eol.value() + 2;
    if (size.value() == 0) {
      break;
    }
    if (size.value() > max_bytes - body.size()) {
      return fail(fetch_failure::too_large,
                  "the answer is over " + std::to_string(max_bytes) + " bytes");
    }
    if (auto got = c.need(pos + size.value() + 2, doing); !got.ok()) {
      return failure{got.error()};
    }
    body.append(c.buffer(), pos, size.value());
    pos += size.value();
    if (c.buffer().compare(pos, 2, "\r\n") != 0) {
      return fail(fetch_failure::protocol, "malformed chunk in the answer");
    }
    pos += 2;
  }
  // Trailer fields, up to the empty line.
  for (;;) {
    auto eol = c.line_end(pos, max_chunk_line, doing);
    if (!eol.ok()) {
      return failure{eol.error()};
    }
    const bool empty = eol.value() == pos;
    pos = eol.value() + 2;
    if (empty) {
      return body;
    }
  }
}

}  // namespace

std::string endpoint::authority() const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string endpoint::url() const {
  return "http://" + authority() + base_path;
}

result<endpoint, std::string> parse_control_url(std::string_view url) {
  endpoint e;
  std::string_view rest = url;
  if (const auto sep = url.find("://"); sep != std::string_view::npos) {
    const std::string_view scheme = url.substr(0, sep);
    if (iequals(scheme, "https")) {
      return failure{std::string(
          "https is not supported: the control listener is plain HTTP on loopback (for a remote "
          "daemon, use an SSH tunnel: ssh -L 9464:127.0.0.1:9464 HOST, then --control "
          "http://127.0.0.1:9464)")};
    }
    if (!iequals(scheme, "http")) {
      return failure{"unsupported scheme \"" + std::string(scheme) + "\" (use http://HOST:PORT)"};
    }
    rest.remove_prefix(sep + 3);
    e.port = 80;
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return failure{std::string("a control URL takes no query or fragment")};
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) {
    return failure{std::string("a control URL takes no user info (use --token-file)")};
  }
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return failure{std::string("unterminated [IPv6 address] in the control URL")};
    }
    e.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return failure{std::string("unexpected text after ] in the control URL")};
      }
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    if (colon != std::string_view::npos &&
        authority.find(':', colon + 1) != std::string_view::npos) {
      return failure{std::string("put an IPv6 address in brackets: http://[::1]:9464")};
    }
    e.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
  }
  if (e.host.empty()) {
    return failure{"no host in the control URL \"" + std::string(url) + "\""};
  }
  if (has_port) {
    unsigned port = 0;
    const auto [ptr, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
        port == 0 || port > 65535) {
      return failure{"bad port \"" + std::string(port_text) + "\" in the control URL"};
    }
    e.port = static_cast<std::uint16_t>(port);
  }
  while (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  e.base_path = std::string(path);
  return e;
}

std::string escape_path_segment(std::string_view segment) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : segment) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    }
  }
  return out;
}

std::string_view http_response::header(std::string_view name) const {
  return find_header(headers, name);
}

result<http_response, fetch_error> fetch(const endpoint& to, const http_request& request,
                                         const fetch_options& options) {
  const std::string target = to.base_path + request.target;
  if (has_line_break(request.method) || has_line_break(target) ||
      std::any_of(request.headers.begin(), request.headers.end(), [](const auto& h) {
        return has_line_break(h.first) || has_line_break(h.second);
      })) {
    // A refusal here stops header injection; the text names no value (it may be a secret).
    return fail(fetch_failure::protocol, "refusing to send a request with a line break in it");
  }
  const auto deadline = clock_type::now() + options.timeout;
  auto fd = connect_to(to, deadline, options);
  if (!fd.ok()) {
    return failure{fd.error()};
  }
  connection c(fd.value(), deadline, options);

  std::string out;
  out.reserve(256 + request.body.size());
  out.append(request.method).append(" ").append(target.empty() ? "/" : target);
  out.append(" HTTP/1.1\r\nHost: ").append(to.authority()).append("\r\n");
  out.append("Connection: close\r\n");
  for (const auto& [name, value] : request.headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (!request.body.empty() || (request.method != "GET" && request.method != "HEAD")) {
    out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  }
  out.append("\r\n").append(request.body);
  if (auto sent = c.send_all(out); !sent.ok()) {
    return failure{sent.error()};
  }

  std::string& in = c.buffer();
  std::size_t start = 0;  // where the current answer begins (after skipped 1xx answers)
  for (;;) {
    std::size_t scanned = start;
    std::size_t end = std::string::npos;
    while ((end = in.find("\r\n\r\n", scanned)) == std::string::npos) {
      if (in.size() - start > max_header_bytes) {
        return fail(fetch_failure::protocol,
                    "the answer's header is over " + std::to_string(max_header_bytes) + " bytes");
      }
      scanned = in.size() >= start + 3 ? in.size() - 3 : start;
      auto more = c.fill("waiting for the answer");
      if (!more.ok()) {
        return failure{more.error()};
      }
      if (!more.value()) {
        return fail(fetch_failure::closed, in.size() == start
                                               ? "connection closed without an answer"
                                               : "connection closed in the answer's header");
      }
    }
    auto head = parse_head(std::string_view(in).substr(start), end - start);
    if (!head.ok()) {
      return failure{head.error()};
    }
    const std::size_t body_start = start + head.value().body_start;
    if (head.value().status < 200) {
      start = body_start;
      continue;
    }
    http_response response;
    response.status = head.value().status;
    response.headers = std::move(head.value().headers);
    if (response.status == 204 || response.status == 304 || request.method == "HEAD") {
      return response;
    }
    const std::string_view coding = response.header("Transfer-Encoding");
    if (!coding.empty()) {
      if (!iequals(trim(coding), "chunked")) {
        return fail(fetch_failure::protocol,
                    "unsupported Transfer-Encoding \"" + std::string(coding) + "\"");
      }
      auto body = read_chunked(c, body_start, options.max_response_bytes);
      if (!body.ok()) {
        return failure{body.error()};
      }
      response.body = std::move(body.value());
      return response;
    }
    if (const std::string_view length = response.header("Content-Length"); !length.empty()) {
      auto size = parse_size(trim(length), 10, "Content-Length");
      if (!size.ok()) {
        return failure{size.error()};
      }
      if (size.value() > options.max_response_bytes) {
        return fail(fetch_failure::too_large,
                    "the answer is over " + std::to_string(options.max_response_bytes) + " bytes");
      }
      if (auto got = c.need(body_start + size.value(), "reading the body"); !got.ok()) {
        return failure{got.error()};
      }
      response.body = in.substr(body_start, size.value());
      return response;
    }
    for (;;) {  // no length: the body ends when the server closes
      auto more = c.fill("reading the body");
      if (!more.ok()) {
        return failure{more.error()};
      }
      if (!more.value()) {
        break;
      }
    }
    response.body = in.substr(body_start);
    return response;
  }
}

}  // namespace dialer::ctl
