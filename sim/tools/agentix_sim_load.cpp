// agentix-sim-load: a closed-loop load check for agentix-sim. N keep-alive TLS connections, each
// with one calls/start in flight, driven by one thread on epoll with non-blocking OpenSSL; reports
// requests/s, statuses and latency percentiles. Not a dialer: it measures the simulator.
//
//   agentix-sim-load --port P --ca DIR/cert.pem --api-key KEY [--connections 64] [--seconds 10]
//                    [--host 127.0.0.1] [--phone-number-id ID] [--requests N]
//
// --requests N sends N requests in all and stops once they are answered (or --seconds pass):
// a fixed batch of calls, e.g. to measure how fast their webhooks are delivered.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string ca;
  std::string api_key;
  std::string phone_number_id = "6f1c2a9e-0000-4000-8000-000000000001";
  int connections = 64;
  double seconds = 10;
  std::uint64_t requests = 0;  // 0: unlimited
};

struct conn {
  int fd = -1;
  SSL* ssl = nullptr;
  std::string out;
  std::size_t out_done = 0;
  std::string in;
  clock_type::time_point sent{};
  bool want_write = false;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "agentix-sim-load: %s\n", what.c_str());
  ERR_print_errors_fp(stderr);
  std::exit(1);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        die(std::string(a) + ": missing value");
      }
      return argv[++i];
    };
    if (a == "--host") {
      o.host = next();
    } else if (a == "--port") {
      o.port = std::stoi(next());
    } else if (a == "--ca") {
      o.ca = next();
    } else if (a == "--api-key") {
      o.api_key = next();
    } else if (a == "--phone-number-id") {
      o.phone_number_id = next();
    } else if (a == "--connections") {
      o.connections = std::stoi(next());
    } else if (a == "--seconds") {
      o.seconds = std::stod(next());
    } else if (a == "--requests") {
      o.requests = std::stoull(next());
    } else {
      die("unknown option " + std::string(a));
    }
  }
  if (o.port <= 0 || o.ca.empty() || o.api_key.empty()) {
    die("--port, --ca and --api-key are required");
  }
  return o;
}

class load {
 public:
  explicit load(const options& o) : o_(o) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr || SSL_CTX_load_verify_locations(ctx_, o.ca.c_str(), nullptr) != 1) {
      die("cannot load the CA file");
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    conns_.resize(static_cast<std::size_t>(o.connections));
  }

  void run() {
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      open(i);
    }
    const auto start = clock_type::now();
    const auto end = start + std::chrono::duration_cast<clock_type::duration>(
                                 std::chrono::duration<double>(o_.seconds));
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      send(i);
    }
    std::vector<epoll_event> events(conns_.size());
    while (clock_type::now() < end && (o_.requests == 0 || answered_ < o_.requests)) {
      const int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 100);
      for (int k = 0; k < n; ++k) {
        const auto i = static_cast<std::size_t>(events[k].data.u64);
        if ((events[k].events & EPOLLOUT) != 0 && conns_[i].want_write) {
          flush(i);
        }
        if ((events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
          receive(i);
        }
      }
    }
    const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    report(elapsed);
  }

 private:
  void open(std::size_t i) {
    conn& c = conns_[i];
    c = conn{};
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    inet_pton(AF_INET, o_.host.c_str(), &addr.sin_addr);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      die("connect: " + std::string(std::strerror(errno)));
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.ssl = SSL_new(ctx_);
    SSL_set_fd(c.ssl, c.fd);
    SSL_set_tlsext_host_name(c.ssl, "localhost");
    SSL_set1_host(c.ssl, "localhost");
    if (SSL_connect(c.ssl) != 1) {
      die("TLS handshake failed");
    }
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    ++connects_;
  }

  void close_and_reopen(std::size_t i) {
    conn& c = conns_[i];
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    SSL_free(c.ssl);
    ::close(c.fd);
    ++errors_;
    open(i);
    send(i);
  }

  void send(std::size_t i) {
    conn& c = conns_[i];
    if (o_.requests != 0 && seq_ >= o_.requests) {
      return;  // the batch is out; this connection stays idle
    }
    const std::uint64_t n = seq_++;
    char body[512];
    const int len = std::snprintf(
        body, sizeof body,
        R"({"to_phone_number":"+1555%07llu","agent_id":"d796c919-7ef3-413a-8bf1-351b6442953a",)"
        R"("max_duration_seconds":600,"session_variables":{"taskId":"L-%llu",)"
        R"("campaignId":"load","first_name":"Layla"}})",
        static_cast<unsigned long long>(n % 10'000'000), static_cast<unsigned long long>(n));
    c.out.clear();
    c.out += "POST /api/v1/phone-numbers/" + o_.phone_number_id +
             "/calls/start HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
             "x-api-key: " +
             o_.api_key + "\r\nIdempotency-Key: load:L-" + std::to_string(n) +
             ":1\r\nContent-Length: " + std::to_string(len) + "\r\n\r\n";
    c.out.append(body, static_cast<std::size_t>(len));
    c.out_done = 0;
    c.sent = clock_type::now();
    flush(i);
  }

  void flush(std::size_t i) {
    conn& c = conns_[i];
    while (c.out_done < c.out.size()) {
      const int n =
          SSL_write(c.ssl, c.out.data() + c.out_done, static_cast<int>(c.out.size() - c.out_done));
      if (n > 0) {
        c.out_done += static_cast<std::size_t>(n);
        continue;
      }
      const int err = SSL_get_error(c.ssl, n);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        set_want_write(i, err == SSL_ERROR_WANT_WRITE);
        return;
      }
      close_and_reopen(i);
      return;
    }
    set_want_write(i, false);
  }

  void set_want_write(std::size_t i, bool want) {
    conn& c = conns_[i];
    if (c.want_write == want) {
      return;
    }
    c.want_write = want;
    epoll_event ev{};
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
    ev.data.u64 = i;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void receive(std::size_t i) {
    conn& c = conns_[i];
    char buf[16384];
    for (;;) {
      const int n = SSL_read(c.ssl, buf, sizeof buf);
      if (n > 0) {
        c.in.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      const int err = SSL_get_error(c.ssl, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        break;
      }
      close_and_reopen(i);
      return;
    }
    // One request in flight per connection, so at most one complete response is buffered.
    const auto header_end = c.in.find("\r\n\r\n");
    if (header_end == std::string::npos) {
      return;
    }
    const auto cl = c.in.find("Content-Length: ");
    if (cl == std::string::npos || cl > header_end) {
      die("response without Content-Length");
    }
    const std::size_t length = std::strtoul(c.in.c_str() + cl + 16, nullptr, 10);
    if (c.in.size() < header_end + 4 + length) {
      return;
    }
    const int status = std::atoi(c.in.c_str() + 9);
    ++statuses_[status];
    ++answered_;
    latencies_us_.push_back(static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - c.sent).count()));
    c.in.erase(0, header_end + 4 + length);
    send(i);
  }

  void report(double elapsed) {
    std::uint64_t total = 0;
    for (const auto& [status, count] : statuses_) {
      total += count;
    }
    std::sort(latencies_us_.begin(), latencies_us_.end());
    const auto pct = [&](double p) -> std::uint32_t {
      if (latencies_us_.empty()) {
        return 0;
      }
      return latencies_us_[static_cast<std::size_t>(p *
                                                    static_cast<double>(latencies_us_.size() - 1))];
    };
    std::printf("{\"responses\":%llu,\"seconds\":%.3f,\"requests_per_s\":%.0f,",
                static_cast<unsigned long long>(total), elapsed,
                static_cast<double>(total) / elapsed);
    std::printf(
        "\"connections\":%zu,\"reconnects\":%llu,\"latency_us\":{\"p50\":%u,\"p99\":%u,"
        "\"max\":%u},\"statuses\":{",
        conns_.size(), static_cast<unsigned long long>(errors_), pct(0.5), pct(0.99), pct(1.0));
    bool first = true;
    for (const auto& [status, count] : statuses_) {
      std::printf("%s\"%d\":%llu", first ? "" : ",", status,
                  static_cast<unsigned long long>(count));
      first = false;
    }
    std::printf("}}\n");
  }

  options o_;
  SSL_CTX* ctx_ = nullptr;
  int ep_ = -1;
  std::vector<conn> conns_;
  std::uint64_t seq_ = 0;
  std::uint64_t answered_ = 0;
  std::uint64_t connects_ = 0;
  std::uint64_t errors_ = 0;
  std::map<int, std::uint64_t> statuses_;
  std::vector<std::uint32_t> latencies_us_;
};

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  load l(o);
  l.run();
  return 0;
}
