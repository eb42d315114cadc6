// The only translation unit of dialer_net that includes Beast, and only its request parser: the
// read loop, the deadlines and the response serialisation are ours, so that every phase has its
// own deadline and a timeout can still be answered with a 408 (Beast's tcp_stream timeouts close
// the socket first). Everything runs on the io_context's one thread, so nothing needs a strand;
// handlers capture a shared_ptr to their connection, so it lives until its last handler has run
// and is never destroyed inside its own callback.
#include "net/http_server.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cassert>
#include <charconv>
#include <ctime>
#include <limits>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace dialer::net {

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using error_code = boost::system::error_code;
using clock_type = std::chrono::steady_clock;
// Concrete executor types rather than any_io_executor: no type erasure on the hot path.
using executor = asio::io_context::executor_type;
using tcp = asio::ip::tcp;
using socket_type = asio::basic_stream_socket<tcp, executor>;
using acceptor_type = asio::basic_socket_acceptor<tcp, executor>;
using timer_type = asio::basic_waitable_timer<clock_type, asio::wait_traits<clock_type>, executor>;
using request_parser = http::request_parser<http::string_body>;

// One read asks for at most this much; the buffer's ceiling is max_header_bytes plus this, since
// the parser consumes body bytes as they arrive and only a header (or a chunk-size line, or
// pipelined bytes) waits in the buffer.
constexpr std::size_t read_chunk = 16 * 1024;
// After the last response of a connection: how long, and how much, we keep reading and discarding
// before closing, so that unread request bytes do not turn our close into a reset that can destroy
// the response in flight (the 413 sent before a body, say).
constexpr std::chrono::milliseconds linger_timeout{1000};
constexpr std::size_t linger_discard_limit = 256 * 1024;
// An idle connection gives back buffers a large request made it grow.
constexpr std::size_t idle_buffer_capacity = 16 * 1024;
constexpr std::chrono::milliseconds accept_retry_delay{100};

constexpr std::string_view continue_text = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view busy_text =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
    "17\r\nConnection: close\r\n\r\n{\"error\":\"busy\"}\n";

std::string_view to_std(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') {
      x = static_cast<char>(x - 'A' + 'a');
    }
    if (y >= 'A' && y <= 'Z') {
      y = static_cast<char>(y - 'A' + 'a');
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_token_char);
}

bool is_field_value(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";  // the reason phrase is informational (RFC 9112 section 4)
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
  out.append(digits, end);
}

void append_2digits(std::string& out, int v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

// The Date field (an origin server with a clock must send it), formatted once per second. Built
// by hand: strftime's names follow the locale.
std::string_view http_date_now() {
  thread_local std::time_t cached_second = -1;
  thread_local std::string text;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    static constexpr std::string_view days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    gmtime_r(&now, &tm);
    text.clear();
    text.append(days[tm.tm_wday]);
    text.append(", ");
    append_2digits(text, tm.tm_mday);
    text.push_back(' ');
    text.append(months[tm.tm_mon]);
    text.push_back(' ');
    append_uint(text, static_cast<std::uint64_t>(tm.tm_year + 1900));
    text.push_back(' ');
    append_2digits(text, tm.tm_hour);
    text.push_back(':');
    append_2digits(text, tm.tm_min);
    text.push_back(':');
    append_2digits(text, tm.tm_sec);
    text.append(" GMT");
    cached_second = now;
  }
  return text;
}

std::string error_body(std::string_view message) {
  std::string body = "{\"error\":\"";
  body.append(message);
  body.append("\"}\n");
  return body;
}

response error_response(int status, std::string_view message) {
  response r;
  r.status = status;
  r.body = error_body(message);
  return r;
}

// Checks the handler's response; on a broken rule, false. Sets `close` for "Connection: close".
bool valid_response(const response& r, bool& close) {
  if (r.status < 200 || r.status > 599 || !is_field_value(r.content_type)) {
    return false;
  }
  for (const auto& [name, value] : r.headers) {
    if (!is_token(name) || !is_field_value(value)) {
      return false;
    }
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) {
      return false;
    }
    if (iequals(name, "connection") && iequals(value, "close")) {
      close = true;
    }
  }
  return true;
}

// Serialised by hand into one buffer: one write, and far cheaper to compile than Beast's
// serializer.
void serialize(const response& r, bool close, bool head, std::string& out) {
  out.clear();
  out.append("HTTP/1.1 ");
  append_uint(out, static_cast<std::uint64_t>(r.status));
  out.push_back(' ');
  out.append(reason(r.status));
  out.append("\r\nDate: ");
  out.append(http_date_now());
  out.append("\r\n");
  const bool bodiless = r.status == 204 || r.status == 304;
  if (!r.content_type.empty() && !bodiless) {
    out.append("Content-Type: ");
    out.append(r.content_type);
    out.append("\r\n");
  }
  if (!bodiless) {
    out.append("Content-Length: ");
    append_uint(out, r.body.size());
    out.append("\r\n");
  }
  for (const auto& [name, value] : r.headers) {
    if (iequals(name, "connection")) {
      continue;  // ours to say
    }
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
  }
  if (close) {
    out.append("Connection: close\r\n");
  }
  out.append("\r\n");
  if (!bodiless && !head) {
    out.append(r.body);
  }
}

// Only limits and statuses of the parser: header_limit, body_limit, or a malformed message.
int status_for_parse_error(const error_code& ec) {
  if (ec == http::error::header_limit) {
    return 431;
  }
  if (ec == http::error::body_limit) {
    return 413;
  }
  return 400;
}

std::string peer_text(const tcp::endpoint& endpoint) {
  asio::ip::address address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  return address.to_string();
}

void validate(const server_limits& l) {
  if (l.max_header_bytes < 16 || l.max_header_bytes > std::numeric_limits<std::uint32_t>::max()) {
    throw std::invalid_argument("http_server: max_header_bytes must be in [16, 2^32)");
  }
  if (l.max_connections == 0 || l.max_requests_per_connection == 0) {
    throw std::invalid_argument(
        "http_server: max_connections and max_requests_per_connection must be positive");
  }
  for (auto t :
       {l.header_timeout, l.body_timeout, l.idle_timeout, l.write_timeout, l.handler_timeout}) {
    if (t <= std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("http_server: every timeout must be positive");
    }
  }
}

}  // namespace

namespace detail {

struct server_state : std::enable_shared_from_this<server_state> {
  server_state(asio::io_context& io_context, server_limits l, handler h)
      : io(io_context),
        limits(l),
        on_request(std::move(h)),
        acceptor(io_context.get_executor()),
        accept_retry(io_context.get_executor()) {}

  void listen(std::string_view address_text, std::uint16_t port_wanted);
  void do_accept();
  void on_accept(const error_code& ec, socket_type socket);
  void refuse_busy(socket_type& socket);
  void stop();

  asio::io_context& io;
  const server_limits limits;
  handler on_request;
  acceptor_type acceptor;
  timer_type accept_retry;
  server_stats stats;
  connection* connections = nullptr;  // intrusive list of every live connection
  std::uint16_t port = 0;
  bool stopping = false;
  bool handler_released = false;  // the server is gone: never call on_request again
  int handler_depth = 0;          // on_request calls running now (a handler may destroy us)
};

// One connection; see net/http_server.md for the phases. A single watchdog timer enforces every
// deadline: phases only move deadline_, and the timer re-arms itself when it wakes before it,
// which saves a cancel-and-rearm per phase on the fast path.
class connection : public std::enable_shared_from_this<connection> {
 public:
  enum class phase { idle, header, body, handler, write, linger, closed };

  connection(std::shared_ptr<server_state> server, socket_type socket, std::string peer)
      : server_(std::move(server)),
        limits_(server_->limits),
        socket_(std::move(socket)),
        watchdog_(socket_.get_executor()),
        buffer_(limits_.max_header_bytes + read_chunk),
        peer_(std::move(peer)) {
    next_ = server_->connections;
    if (next_ != nullptr) {
      next_->prev_ = this;
    }
    server_->connections = this;
    ++server_->stats.open;
  }

  ~connection() {
    if (prev_ != nullptr) {
      prev_->next_ = next_;
    } else {
      server_->connections = next_;
    }
    if (next_ != nullptr) {
      next_->prev_ = prev_;
    }
    --server_->stats.open;
  }

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  void start() {
    error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    // The first request's header clock runs from the accept, so a silent connection costs at most
    // header_timeout.
    begin_request();
    set_deadline(limits_.header_timeout);
    do_read();
  }

  // From the server's stop(): a connection waiting for its next request is closed now; any other
  // finishes its request with Connection: close.
  void on_server_stop() {
    if (phase_ == phase::idle) {
      close();
    }
  }

  [[nodiscard]] bool awaits(std::uint64_t sequence) const {
    return phase_ == phase::handler && sequence == sequence_;
  }

  void respond(std::uint64_t sequence, response r) {
    if (!awaits(sequence)) {
      return;
    }
    bool close_after = !keep_alive_;
    if (!valid_response(r, close_after)) {
      ++server_->stats.bad_responses;
      r = error_response(500, "internal error");
      close_after = !keep_alive_;
    }
    send(r, close_after || server_->stopping);
  }

  void respond_500_later(std::uint64_t sequence) {
    asio::post(socket_.get_executor(), [self = shared_from_this(), sequence] {
      self->respond(sequence, error_response(500, "internal error"));
    });
  }

  connection* next() const { return next_; }

 private:
  void set_deadline(std::chrono::milliseconds d) {
    deadline_ = clock_type::now() + d;
    if (deadline_ < armed_at_) {
      arm_watchdog();
    }
  }

  void arm_watchdog() {
    armed_at_ = deadline_;
    watchdog_.expires_at(deadline_);  // cancels a pending wait; its handler sees operation_aborted
    watchdog_.async_wait(
        [self = shared_from_this()](const error_code& e) { self->on_watchdog(e); });
  }

  void on_watchdog(const error_code& ec) {
    if (ec || phase_ == phase::closed) {
      return;
    }
    armed_at_ = clock_type::time_point::max();
    if (clock_type::now() >= deadline_) {
      on_timeout();
      return;
    }
    arm_watchdog();
  }

  void on_timeout() {
    switch (phase_) {
      case phase::idle:
        if (requests_ == 0) {
          // Accepted but silent: the header clock ran out before the first byte.
          time_out_read();
        } else {
          close();  // an idle keep-alive connection: nothing to answer
        }
        return;
      case phase::header:
      case phase::body:
        time_out_read();
        return;
      case phase::handler:
        ++server_->stats.handler_timeouts;
        send(error_response(503, "handler timeout"), true);
        return;
      case phase::write:
        // The peer stopped reading: reset rather than close, or the kernel would keep the unsent
        // response (up to a send buffer per connection) and keep trying to deliver it.
        abort();
        return;
      case phase::linger:
        close();
        return;
      case phase::closed:
        return;
    }
  }

  // A read (or the 100 Continue write) is pending: cancel it, and its handler answers 408. The
  // 408 gets a fresh write deadline.
  void time_out_read() {
    timed_out_ = true;
    error_code ignored;
    socket_.cancel(ignored);
  }

  void begin_request() {
    phase_ = phase::idle;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    parser_->body_limit(limits_.max_body_bytes);
  }

  void do_read() {
    const std::size_t space = buffer_.max_size() - buffer_.size();
    if (space == 0) {
      // Only a header, a chunk-size line or pipelined requests wait in the buffer.
      reject(phase_ == phase::body ? 400 : 431);
      return;
    }
    socket_.async_read_some(
        buffer_.prepare(std::min(space, read_chunk)),
        [self = shared_from_this()](const error_code& e, std::size_t n) { self->on_read(e, n); });
  }

  void on_read(const error_code& ec, std::size_t n) {
    if (phase_ == phase::closed) {
      return;
    }
    buffer_.commit(n);
    if (timed_out_) {
      reject(408);
      return;
    }
    if (ec) {
      // End of stream, reset, or stop(): with no complete request there is nobody to answer.
      close();
      return;
    }
    if (phase_ == phase::idle) {
      begin_header();
    }
    parse();
  }

  void begin_header() {
    phase_ = phase::header;
    if (requests_ > 0) {
      set_deadline(limits_.header_timeout);  // the first request's clock started at the accept
    }
  }

  // Feeds the buffer to the parser until it needs more bytes or the request is complete. Without
  // eager mode the parser stops after the header, which is where the body limit and Expect are
  // checked before any body byte is taken.
  void parse() {
    for (;;) {
      if (buffer_.size() == 0) {
        do_read();
        return;
      }
      error_code ec;
      const std::size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) {
        do_read();
        return;
      }
      if (ec) {
        reject(status_for_parse_error(ec));
        return;
      }
      if (phase_ == phase::header && parser_->is_header_done() && !on_header_done()) {
        return;
      }
      if (parser_->is_done()) {
        dispatch();
        return;
      }
      if (used == 0) {
        do_read();
        return;
      }
    }
  }

  // False when it has taken over (rejected, or writing 100 Continue).
  bool on_header_done() {
    const auto& h = parser_->get();
    if (h.version() != 10 && h.version() != 11) {
      reject(400, "unsupported HTTP version");
      return false;
    }
    // Beast ignores a Transfer-Encoding whose last coding is not chunked; its length is unknown,
    // and reading on would let the rest be taken for the next request (RFC 9112 section 6.1).
    if (h.find(http::field::transfer_encoding) != h.end() && !parser_->chunked()) {
      reject(400, "unsupported transfer encoding");
      return false;
    }
    // The parser already refuses a Content-Length over body_limit; this keeps the rule visible.
    const auto length = parser_->content_length();
    if (length && *length > limits_.max_body_bytes) {
      reject(413);
      return false;
    }
    phase_ = phase::body;
    set_deadline(limits_.body_timeout);
    // Answer 100 Continue only to a client still waiting to send its body; one that sent some
    // already does not need it (RFC 9110 section 10.1.1).
    if (!parser_->is_done() && buffer_.size() == 0 && h.version() == 11 &&
        iequals(to_std(h[http::field::expect]), "100-continue")) {
      asio::async_write(socket_, asio::buffer(continue_text.data(), continue_text.size()),
                        [self = shared_from_this()](const error_code& e, std::size_t) {
                          self->on_continue_written(e);
                        });
      return false;
    }
    return true;
  }

  void on_continue_written(const error_code& ec) {
    if (phase_ == phase::closed) {
      return;
    }
    if (timed_out_) {
      reject(408);
      return;
    }
    if (ec) {
      close();
      return;
    }
    parse();
  }

  void dispatch() {
    phase_ = phase::handler;
    set_deadline(limits_.handler_timeout);
    ++requests_;
    ++sequence_;
    ++server_->stats.requests;
    keep_alive_ = parser_->keep_alive() && requests_ < limits_.max_requests_per_connection &&
                  !server_->stopping;
    const auto& message = parser_->get();
    head_ = message.method() == http::verb::head;
    if (server_->handler_released) {
      send(error_response(503, "shutting down"), true);
      return;
    }

    fields_.clear();
    for (const auto& field : message) {
      fields_.emplace_back(to_std(field.name_string()), to_std(field.value()));
    }
    request req;
    req.method = to_std(message.method_string());
    req.target = to_std(message.target());
    req.peer_address = peer_;
    req.body = message.body();
    req.headers = fields_;

    server_state& server = *server_;
    ++server.handler_depth;
    try {
      server.on_request(req, responder(weak_from_this(), sequence_));
    } catch (...) {
      // A bug in the handler, counted; the responder it dropped answers 500.
      ++server.stats.handler_exceptions;
    }
    --server.handler_depth;
    if (server.handler_released && server.handler_depth == 0) {
      server.on_request = nullptr;  // the server was destroyed during the call
    }
  }

  void reject(int status, std::string_view message = {}) {
    switch (status) {
      case 400:
        ++server_->stats.status_400;
        break;
      case 408:
        ++server_->stats.status_408;
        break;
      case 413:
        ++server_->stats.status_413;
        break;
      case 431:
        ++server_->stats.status_431;
        break;
      default:
        break;
    }
    if (message.empty()) {
      message = status == 408   ? "request timeout"
                : status == 413 ? "request body too large"
                : status == 431 ? "request header too large"
                                : "malformed request";
    }
    head_ = false;
    send(error_response(status, message), true);
  }

  void send(const response& r, bool close_after) {
    timed_out_ = false;
    close_after_ = close_after;
    phase_ = phase::write;
    set_deadline(limits_.write_timeout);
    serialize(r, close_after, head_, out_);
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this()](const error_code& e, std::size_t) { self->on_write(e); });
  }

  void on_write(const error_code& ec) {
    if (phase_ == phase::closed) {
      return;
    }
    if (ec) {
      close();
      return;
    }
    if (close_after_ || server_->stopping) {
      start_linger();
      return;
    }
    if (out_.capacity() > idle_buffer_capacity) {
      std::string().swap(out_);
    }
    begin_request();
    if (buffer_.size() > 0) {
      // A pipelined request is already here: its header clock starts now.
      begin_header();
      parse();
      return;
    }
    if (buffer_.capacity() > idle_buffer_capacity) {
      buffer_.shrink_to_fit();
    }
    set_deadline(limits_.idle_timeout);
    do_read();
  }

  // Half-close, then read and discard until the peer closes, for a bounded time and volume.
  void start_linger() {
    phase_ = phase::linger;
    set_deadline(std::min(linger_timeout, limits_.write_timeout));
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.clear();
    discarded_ = 0;
    do_discard();
  }

  void do_discard() {
    socket_.async_read_some(buffer_.prepare(read_chunk),
                            [self = shared_from_this()](const error_code& e, std::size_t n) {
                              self->on_discard(e, n);
                            });
  }

  void on_discard(const error_code& ec, std::size_t n) {
    if (phase_ == phase::closed) {
      return;
    }
    discarded_ += n;
    if (ec || discarded_ > linger_discard_limit) {
      close();
      return;
    }
    do_discard();
  }

  void abort() {
    error_code ignored;
    socket_.set_option(asio::socket_base::linger(true, 0), ignored);
    close();
  }

  void close() {
    if (phase_ == phase::closed) {
      return;
    }
    phase_ = phase::closed;
    error_code ignored;
    socket_.close(ignored);
    watchdog_.cancel();
  }

  std::shared_ptr<server_state> server_;
  const server_limits& limits_;
  socket_type socket_;
  timer_type watchdog_;
  clock_type::time_point deadline_{};
  clock_type::time_point armed_at_ = clock_type::time_point::max();
  boost::beast::flat_buffer buffer_;
  std::optional<request_parser> parser_;
  std::vector<header_field> fields_;
  std::string out_;
  const std::string peer_;
  phase phase_ = phase::idle;
  std::uint64_t requests_ = 0;  // requests dispatched on this connection
  std::uint64_t sequence_ = 0;  // identifies the request a responder answers
  std::size_t discarded_ = 0;
  bool keep_alive_ = true;
  bool close_after_ = false;
  bool head_ = false;
  bool timed_out_ = false;
  connection* prev_ = nullptr;
  connection* next_ = nullptr;
};

void server_state::listen(std::string_view address_text, std::uint16_t port_wanted) {
  const std::string text(address_text);
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(text, ec);
  const std::string where =
      (address.is_v6() ? "[" + text + "]" : text) + ":" + std::to_string(port_wanted);
  if (ec) {
    throw std::system_error(std::error_code(EINVAL, std::system_category()),
                            "cannot listen on " + where + ": not an IP address");
  }
  const tcp::endpoint endpoint(address, port_wanted);
  auto fail = [&](const char* step) {
    throw std::system_error(
        std::error_code(ec.value(), std::system_category()),
        "cannot listen on " + where + (step[0] ? std::string(" (") + step + ")" : std::string()));
  };
  acceptor.open(endpoint.protocol(), ec);
  if (ec) {
    fail("socket");
  }
  // A restart can bind while old connections sit in TIME_WAIT; on Linux it does not let two
  // listeners share the port.
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) {
    fail("SO_REUSEADDR");
  }
  acceptor.bind(endpoint, ec);
  if (ec) {
    fail("");
  }
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    fail("listen");
  }
  port = acceptor.local_endpoint().port();
}

void server_state::do_accept() {
  acceptor.async_accept([self = shared_from_this()](const error_code& ec, socket_type socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void server_state::on_accept(const error_code& ec, socket_type socket) {
  if (ec == asio::error::operation_aborted || stopping) {
    return;
  }
  if (ec) {
    if (ec == asio::error::connection_aborted) {
      do_accept();  // the peer gave up while queued; nothing is wrong here
      return;
    }
    // Out of descriptors or similar: retry shortly rather than spin.
    accept_retry.expires_after(accept_retry_delay);
    accept_retry.async_wait([self = shared_from_this()](const error_code& e) {
      if (!e && !self->stopping) {
        self->do_accept();
      }
    });
    return;
  }
  if (stats.open >= limits.max_connections) {
    ++stats.refused_busy;
    refuse_busy(socket);
    do_accept();
    return;
  }
  error_code peer_ec;
  const tcp::endpoint peer = socket.remote_endpoint(peer_ec);
  if (peer_ec) {
    do_accept();  // reset before we looked; the socket closes as it goes out of scope
    return;
  }
  ++stats.accepted;
  std::make_shared<connection>(shared_from_this(), std::move(socket), peer_text(peer))->start();
  do_accept();
}

// One non-blocking send of a fixed 503 into a fresh socket's empty send buffer, then close: no
// state and no timer per refusal, so a flood of connections costs no more than the accepts.
void server_state::refuse_busy(socket_type& socket) {
  error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(busy_text.data(), busy_text.size()), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

void server_state::stop() {
  if (stopping) {
    return;
  }
  stopping = true;
  error_code ignored;
  acceptor.close(ignored);
  accept_retry.cancel();
  // close() only cancels I/O; nothing is destroyed here, so the list stays intact while we walk it.
  for (connection* c = connections; c != nullptr; c = c->next()) {
    c->on_server_stop();
  }
}

}  // namespace detail

std::string_view request::header(std::string_view name) const {
  for (const auto& [field_name, value] : headers) {
    if (iequals(field_name, name)) {
      return value;
    }
  }
  return {};
}

responder::responder(std::weak_ptr<detail::connection> conn, std::uint64_t sequence)
    : conn_(std::move(conn)), sequence_(sequence), armed_(true) {}

responder::responder(responder&& other) noexcept
    : conn_(std::move(other.conn_)), sequence_(other.sequence_), armed_(other.armed_) {
  other.armed_ = false;
}

responder& responder::operator=(responder&& other) noexcept {
  if (this != &other) {
    if (armed_) {
      // The answer this one owed is now a forgotten path: same as destroying it.
      responder dropped(std::move(*this));
    }
    conn_ = std::move(other.conn_);
    sequence_ = other.sequence_;
    armed_ = other.armed_;
    other.armed_ = false;
  }
  return *this;
}

responder::~responder() {
  if (!armed_) {
    return;
  }
  // Posted, not written here: a destructor can run anywhere (unwinding, the middle of the
  // caller's own teardown), and the 500 must not re-enter the caller.
  if (auto c = conn_.lock(); c && c->awaits(sequence_)) {
    c->respond_500_later(sequence_);
  }
}

void responder::operator()(response r) {
  if (!armed_) {
    return;
  }
  armed_ = false;
  if (auto c = conn_.lock()) {
    c->respond(sequence_, std::move(r));
  }
}

http_server::http_server(boost::asio::io_context& io, std::string_view address, std::uint16_t port,
                         server_limits limits, handler on_request) {
  validate(limits);
  if (!on_request) {
    throw std::invalid_argument("http_server: the handler is empty");
  }
  state_ = std::make_shared<detail::server_state>(io, limits, std::move(on_request));
  state_->listen(address, port);
  state_->do_accept();
}

http_server::~http_server() {
  state_->stop();
  state_->handler_released = true;
  if (state_->handler_depth == 0) {
    state_->on_request = nullptr;
  }
}

std::uint16_t http_server::port() const {
  return state_->port;
}

void http_server::stop() {
  state_->stop();
}

server_stats http_server::stats() const {
  return state_->stats;
}

}  // namespace dialer::net
