#include "sim/webhook_client.hpp"

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include "sim/webhook.hpp"

namespace dialer::sim {

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using error_code = boost::system::error_code;
using executor = net::io_context::executor_type;
using tcp = net::ip::tcp;
using socket_type = net::basic_stream_socket<tcp, executor>;
using timer_type = net::basic_waitable_timer<std::chrono::steady_clock,
                                             net::wait_traits<std::chrono::steady_clock>, executor>;
using response_parser = http::response_parser<http::string_body>;

constexpr nanoseconds tick_interval = milliseconds(100);
// A keep-alive connection idle longer than this is checked for a close by the receiver before
// it is reused, so an idle timeout on the receiver's side does not cost a failed attempt.
constexpr nanoseconds stale_after = seconds(1);
constexpr std::uint32_t response_header_limit = 16 * 1024;
constexpr std::uint64_t response_body_limit = 1024 * 1024;

}  // namespace

struct webhook_sender::impl {
  // One keep-alive connection carrying one request at a time. Every handler runs on the
  // sender's thread. A send always ends in exactly one call of owner.on_done().
  class connection {
   public:
    explicit connection(impl& owner) : owner_(owner), socket_(owner.ioc.get_executor()) {}

    void send(const webhook_delivery& d) {
      job_ = d;
      timed_out_ = false;
      const steady_time now = owner_.clock.steady_now();
      deadline_ = now + owner_.options.timeout;
      out_.clear();
      owner_.queue.build_request(d, owner_.clock.system_now(),
                                 owner_.signer ? &*owner_.signer : nullptr, out_);
      if (socket_.is_open() && now - last_used_ > stale_after && closed_by_peer()) {
        close_socket();
      }
      if (socket_.is_open()) {
        do_write();
      } else {
        do_connect();
      }
    }

    // Called by the tick: a timed-out attempt is cut by closing its socket; the pending
    // operation then completes with an error and is reported as a timeout.
    void check_deadline(steady_time now) {
      if (now >= deadline_) {
        timed_out_ = true;
        deadline_ = steady_time::max();
        close_socket();
      }
    }

    void close_socket() {
      error_code ignored;
      socket_.close(ignored);
    }

   private:
    // A non-blocking peek: an orderly close (or anything unexpected) from the receiver while
    // the connection sat idle means it must not carry the next request.
    bool closed_by_peer() {
      char byte = 0;
      const ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }

    void do_connect() {
      error_code ec;
      socket_.open(owner_.endpoint.protocol(), ec);
      if (ec) {
        // Reported on the next turn of the loop, never from inside the caller's loop.
        net::post(owner_.ioc, [this] { fail(transport_error::connect); });
        return;
      }
      socket_.async_connect(owner_.endpoint, [this](const error_code& e) { on_connect(e); });
    }

    void on_connect(const error_code& ec) {
      if (ec) {
        fail(timed_out_ ? transport_error::timeout : transport_error::connect);
        return;
      }
      error_code ignored;
      socket_.set_option(tcp::no_delay(true), ignored);
      do_write();
    }

    void do_write() {
      net::async_write(socket_, net::buffer(out_),
                       [this](const error_code& e, std::size_t) { on_write(e); });
    }

    void on_write(const error_code& ec) {
      if (ec) {
        fail(timed_out_ ? transport_error::timeout : transport_error::io);
        return;
      }
      parser_.emplace();
      parser_->header_limit(response_header_limit);
      parser_->body_limit(response_body_limit);
      parser_->eager(true);
      buffer_.clear();
      do_read();
    }

    void do_read() {
      socket_.async_read_some(buffer_.prepare(4096),
                              [this](const error_code& e, std::size_t n) { on_read(e, n); });
    }

    void on_read(error_code ec, std::size_t n) {
      if (ec == net::error::eof) {
        // A response delimited by the close is complete now; anything else was cut short.
        parser_->put_eof(ec);
        if (!ec && parser_->is_done()) {
          done();
        } else {
          fail(transport_error::io);
        }
        return;
      }
      if (ec) {
        fail(timed_out_ ? transport_error::timeout : transport_error::io);
        return;
      }
      buffer_.commit(n);
      while (buffer_.size() > 0 && !parser_->is_done()) {
        const std::size_t used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec == http::error::need_more) {
          break;
        }
        if (ec) {
          fail(transport_error::io);
          return;
        }
      }
      if (parser_->is_done()) {
        done();
      } else {
        do_read();
      }
    }

    void done() {
      // Bytes after the response would be a response to nothing: do not reuse the connection.
      if (!parser_->keep_alive() || buffer_.size() > 0) {
        close_socket();
      }
      finish({static_cast<int>(parser_->get().result_int()), transport_error::none});
    }

    void fail(transport_error e) {
      close_socket();
      finish({0, e});
    }

    void finish(attempt_result r) {
      if (owner_.stopped) {
        return;  // cut off by the shutdown: still in flight, so counted as pending_at_exit
      }
      deadline_ = steady_time::max();
      last_used_ = owner_.clock.steady_now();
      owner_.on_done(this, job_, r);
    }

    impl& owner_;
    socket_type socket_;
    webhook_delivery job_;
    std::string out_;
    boost::beast::flat_buffer buffer_;
    std::optional<response_parser> parser_;
    steady_time deadline_ = steady_time::max();
    steady_time last_used_{};
    bool timed_out_ = false;
  };

  impl(webhook_queue& q, const sim_clock& c)
      : queue(q),
        options(q.options()),
        clock(c),
        ioc(1),
        endpoint(net::ip::make_address(options.url.host), options.url.port),
        due_timer(ioc.get_executor()),
        tick(ioc.get_executor()) {
    if (!options.signing_secret.empty()) {
      signer.emplace(options.signing_secret);
    }
    for (int i = 0; i < options.connections; ++i) {
      connections.push_back(std::make_unique<connection>(*this));
      idle.push_back(connections.back().get());
    }
  }

  void on_done(connection* c, const webhook_delivery& d, attempt_result r) {
    queue.on_attempt(d, r, clock.steady_now(), clock.system_now());
    idle.push_back(c);
    pump();
  }

  // Hands what is due to the idle connections and arms the timer for the next due time.
  void pump() {
    if (stopped) {
      return;
    }
    const steady_time now = clock.steady_now();
    batch.clear();
    const steady_time next = queue.take_due(now, clock.system_now(), idle.size(), batch);
    for (const webhook_delivery& d : batch) {
      connection* c = idle.back();  // the most recently used: warm and least likely stale
      idle.pop_back();
      c->send(d);
    }
    if (!idle.empty() && next != steady_time::max() && next < due_armed) {
      due_armed = next;
      due_timer.expires_at(next);
      due_timer.async_wait([this](const error_code& ec) {
        if (!ec) {
          due_armed = steady_time::max();
          pump();
        }
      });
    }
    if (draining) {
      check_drain(now);
    }
  }

  void arm_tick() {
    tick.expires_after(tick_interval);
    tick.async_wait([this](const error_code& ec) {
      if (ec || stopped) {
        return;
      }
      const steady_time now = clock.steady_now();
      for (auto& c : connections) {
        c->check_deadline(now);
      }
      queue.flush_log();
      if (draining) {
        check_drain(now);
      }
      if (!stopped) {
        arm_tick();
      }
    });
  }

  void check_drain(steady_time now) {
    if (queue.pending() == 0 || now >= drain_deadline) {
      shutdown();
    }
  }

  void shutdown() {
    stopped = true;
    queue.set_waker(nullptr);
    for (auto& c : connections) {
      c->close_socket();
    }
    due_timer.cancel();
    tick.cancel();
    ioc.stop();
  }

  void run() {
    try {
      ioc.run();
    } catch (const std::exception& e) {
      std::cerr << "agentix-sim: webhook sender failed: " << e.what() << "\n";
    }
  }

  webhook_queue& queue;
  const webhook_options& options;
  const sim_clock& clock;
  net::io_context ioc;  // before everything bound to it: destroyed last
  tcp::endpoint endpoint;
  timer_type due_timer;
  timer_type tick;
  steady_time due_armed = steady_time::max();
  std::optional<hmac_sha256> signer;
  std::vector<std::unique_ptr<connection>> connections;
  std::vector<connection*> idle;
  std::vector<webhook_delivery> batch;
  bool draining = false;
  bool stopped = false;
  steady_time drain_deadline = steady_time::max();
  std::thread thread;
};

webhook_sender::webhook_sender(webhook_queue& queue, const sim_clock& clock)
    : impl_(std::make_unique<impl>(queue, clock)) {}

webhook_sender::~webhook_sender() {
  stop();
}

void webhook_sender::start() {
  impl& s = *impl_;
  s.queue.set_waker([&s] { net::post(s.ioc, [&s] { s.pump(); }); });
  s.arm_tick();
  net::post(s.ioc, [&s] { s.pump(); });
  s.thread = std::thread([&s] { s.run(); });
}

void webhook_sender::stop() {
  impl& s = *impl_;
  if (s.thread.joinable()) {
    net::post(s.ioc, [&s] {
      s.draining = true;
      s.drain_deadline = s.clock.steady_now() + s.options.drain;
      s.check_drain(s.clock.steady_now());
    });
    s.thread.join();
    s.queue.finish();
  } else if (!s.stopped) {
    s.stopped = true;
    s.queue.set_waker(nullptr);
    s.queue.finish();
  }
}

}  // namespace dialer::sim
