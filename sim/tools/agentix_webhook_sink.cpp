// agentix-webhook-sink: a plain-HTTP webhook receiver that answers every POST at once, for
// measuring how fast agentix-sim delivers webhooks. One thread on epoll, keep-alive, requests
// framed by Content-Length. Not a dialer: it checks nothing and stores nothing (except with
// --bodies, which appends every body as one line).
//
//   agentix-webhook-sink [--listen 127.0.0.1:0] [--port-file PATH] [--status 200]
//                        [--bodies PATH] [--expect N]
//
// Runs until SIGTERM/SIGINT or until --expect requests have arrived, then prints
// {"requests","created","ended","first_ms","last_ms","span_s","requests_per_s"} on stdout:
// first/last are the arrival times (Unix ms) of the first and last request.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

std::atomic<bool> stop_requested{false};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "agentix-webhook-sink: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

struct conn {
  std::string in;
  std::string out;
};

// Content-Length of a header block (case-insensitive); -1 if absent or malformed.
long content_length(std::string_view head) {
  constexpr std::string_view name = "\r\ncontent-length:";
  for (std::size_t i = 0; i + name.size() <= head.size(); ++i) {
    bool match = true;
    for (std::size_t j = 0; j < name.size() && match; ++j) {
      match = std::tolower(static_cast<unsigned char>(head[i + j])) == name[j];
    }
    if (match) {
      return std::strtol(head.data() + i + name.size(), nullptr, 10);
    }
  }
  return -1;
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string port_file;
  std::string bodies_path;
  int status = 200;
  long expect = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "agentix-webhook-sink: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--listen") {
      const std::string v = value();
      const auto colon = v.rfind(':');
      host = v.substr(0, colon);
      port = std::atoi(v.c_str() + colon + 1);
    } else if (a == "--port-file") {
      port_file = value();
    } else if (a == "--status") {
      status = std::atoi(value().c_str());
    } else if (a == "--bodies") {
      bodies_path = value();
    } else if (a == "--expect") {
      expect = std::atol(value().c_str());
    } else {
      std::fprintf(stderr,
                   "usage: agentix-webhook-sink [--listen H:P] [--port-file PATH] "
                   "[--status N] [--bodies PATH] [--expect N]\n");
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGTERM, [](int) { stop_requested = true; });
  std::signal(SIGINT, [](int) { stop_requested = true; });

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "agentix-webhook-sink: --listen needs an IPv4 address\n");
    return 2;
  }
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 1024) != 0) {
    die("bind/listen");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      die("port file");
    }
    std::fprintf(f, "%d", ntohs(addr.sin_port));
    std::fclose(f);
    std::rename(tmp.c_str(), port_file.c_str());
  }
  FILE* bodies = bodies_path.empty() ? nullptr : std::fopen(bodies_path.c_str(), "w");

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listener;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);

  std::string response = "HTTP/1.1 " + std::to_string(status) +
                         " X\r\nContent-Length: 0\r\nContent-Type: application/json\r\n\r\n";
  std::unordered_map<int, conn> conns;
  long requests = 0;
  long created = 0;
  long ended = 0;
  std::int64_t first_ms = 0;
  std::int64_t last_ms = 0;
  char buf[65536];
  epoll_event events[256];
  while (!stop_requested && (expect == 0 || requests < expect)) {
    const int n = ::epoll_wait(ep, events, 256, 100);
    for (int k = 0; k < n; ++k) {
      const int fd = events[k].data.fd;
      if (fd == listener) {
        for (;;) {
          const int c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) {
            break;
          }
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          conns[c];
        }
        continue;
      }
      conn& c = conns[fd];
      bool closed = false;
      for (;;) {
        const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
          c.in.append(buf, static_cast<std::size_t>(r));
          continue;
        }
        closed = r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
      }
      std::size_t at = 0;
      for (;;) {
        const std::string_view rest = std::string_view(c.in).substr(at);
        const auto end = rest.find("\r\n\r\n");
        if (end == std::string_view::npos) {
          break;
        }
        const long body = content_length(rest.substr(0, end + 2));
        const std::size_t total = end + 4 + static_cast<std::size_t>(body < 0 ? 0 : body);
        if (rest.size() < total) {
          break;
        }
        const std::string_view payload = rest.substr(end + 4, total - end - 4);
        ++requests;
        last_ms = unix_ms();
        if (requests == 1) {
          first_ms = last_ms;
        }
        if (payload.find("\"event\":\"session.created\"") != std::string_view::npos) {
          ++created;
        } else if (payload.find("\"event\":\"session.ended\"") != std::string_view::npos) {
          ++ended;
        }
        if (bodies != nullptr) {
          std::fwrite(payload.data(), 1, payload.size(), bodies);
          std::fputc('\n', bodies);
        }
        c.out.append(response);
        at += total;
      }
      c.in.erase(0, at);
      while (!c.out.empty() && !closed) {
        const ssize_t w = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (w <= 0) {
          // A receiver this simple blocks on nothing: a full send buffer drops the connection.
          closed = true;
          break;
        }
        c.out.erase(0, static_cast<std::size_t>(w));
      }
      if (closed) {
        ::close(fd);
        conns.erase(fd);
      }
    }
  }
  if (bodies != nullptr) {
    std::fclose(bodies);
  }
  const double span = static_cast<double>(last_ms - first_ms) / 1000.0;
  std::printf(
      "{\"requests\":%ld,\"created\":%ld,\"ended\":%ld,\"first_ms\":%lld,\"last_ms\":%lld,"
      "\"span_s\":%.3f,\"requests_per_s\":%.0f}\n",
      requests, created, ended, static_cast<long long>(first_ms), static_cast<long long>(last_ms),
      span, span > 0 ? static_cast<double>(requests - 1) / span : 0.0);
  return 0;
}
