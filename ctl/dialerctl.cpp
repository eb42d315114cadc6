#include "ctl/dialerctl.hpp"

#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <fstream>
#include <istream>
#include <ostream>
#include <sstream>
#include <system_error>

#include "core/json.hpp"
#include "ctl/cli.hpp"
#include "ctl/http_client.hpp"
#include "ctl/status_view.hpp"

#ifndef DIALERCTL_VERSION
#define DIALERCTL_VERSION ""
#endif

namespace dialer::ctl {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view default_control = "http://127.0.0.1:9464";
constexpr std::size_t max_token_file = 64 * 1024;
constexpr std::size_t max_error_text = 300;
constexpr int exit_interrupted = 128 + SIGINT;
// The daemon asks Agentix for the list, which may take its own request timeout (10 s by default)
// and a connect: a shorter wait would call a slow API an unreachable daemon.
constexpr std::chrono::milliseconds phone_numbers_timeout{20000};

// ANSI: cursor home + clear screen; hide and show the cursor.
constexpr std::string_view clear_screen = "\x1b[H\x1b[2J";
constexpr std::string_view hide_cursor = "\x1b[?25l";
constexpr std::string_view show_cursor = "\x1b[?25h";

std::optional<std::string> json_text(std::string_view body, std::string_view key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body.data(), body.size(), true).get(doc) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  simdjson::dom::element value;
  if (doc.at_key(key).get(value) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  std::string_view s;
  if (value.get_string().get(s) == simdjson::SUCCESS) {
    return std::string(s);
  }
  std::int64_t i = 0;
  if (value.get_int64().get(i) == simdjson::SUCCESS) {
    return std::to_string(i);
  }
  return std::nullopt;
}

std::string format_interval(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) {
    return std::to_string(d.count() / 1000) + "s";
  }
  std::string s =
      std::to_string(d.count() / 1000) + "." + std::to_string(d.count() % 1000 + 1000).substr(1);
  while (s.back() == '0') {
    s.pop_back();
  }
  return s + "s";
}

// Reads the bearer token; never puts it in a message.
result<std::string, std::string> read_token(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return failure{"cannot read token file " + file + ": " + std::strerror(errno)};
  }
  std::string token(max_token_file + 1, '\0');
  in.read(token.data(), static_cast<std::streamsize>(token.size()));
  token.resize(static_cast<std::size_t>(in.gcount()));
  if (token.size() > max_token_file) {
    return failure{"token file " + file + " is over 64 KiB: is it the right file?"};
  }
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!token.empty() && is_space(token.back())) {
    token.pop_back();
  }
  const auto first = std::find_if_not(token.begin(), token.end(), is_space);
  token.erase(token.begin(), first);
  if (token.empty()) {
    return failure{"token file " + file + " is empty"};
  }
  if (std::any_of(token.begin(), token.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; })) {
    return failure{"token file " + file +
                   ": the token has spaces or control characters inside (one line expected)"};
  }
  return token;
}

enum class waited { elapsed, interrupted };

waited wait_or_interrupt(int fd, std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + interval;
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return waited::elapsed;
    }
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, fd >= 0 ? 1 : 0,
                         static_cast<int>(std::min<std::int64_t>(left.count(), INT_MAX)));
    if (n > 0) {
      return waited::interrupted;
    }
    if (n < 0 && errno != EINTR) {
      return waited::elapsed;
    }
  }
}

// The exit status for "the user asked us to stop": the signal number the handler wrote to the
// pipe (SIGINT when unknown). Ctrl-C ends `status --watch` normally, with 0.
int interrupt_status(int fd, bool watching) {
  unsigned char sig = SIGINT;
  if (fd >= 0) {
    (void)::read(fd, &sig, 1);
  }
  if (sig == SIGINT && watching) {
    return exit_ok;
  }
  return 128 + sig;
}

struct call_result {
  int code = exit_ok;
  std::string error;  // when code != 0: the message, without the "dialerctl: " prefix
  http_response response;
};

class session {
 public:
  session(const context& ctx, endpoint to, std::string token, std::string token_file,
          fetch_options options)
      : ctx_(ctx),
        to_(std::move(to)),
        token_(std::move(token)),
        token_file_(std::move(token_file)),
        options_(options) {}

  call_result call(std::string_view method, const std::string& path, std::string body = {}) {
    http_request req;
    req.method = std::string(method);
    req.target = path;
    req.headers.emplace_back("User-Agent", std::string_view(DIALERCTL_VERSION).empty()
                                               ? std::string("dialerctl")
                                               : std::string("dialerctl/") + DIALERCTL_VERSION);
    req.headers.emplace_back("Accept", "application/json");
    if (!token_.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + token_);
    }
    if (!body.empty()) {
      req.headers.emplace_back("Content-Type", "application/json");
    }
    req.body = std::move(body);
    call_result r;
    auto got = fetch(to_, req, options_);
    if (!got.ok()) {
      const fetch_error& e = got.error();
      switch (e.kind) {
        case fetch_failure::interrupted:
          r.code = exit_interrupted;
          r.error = "interrupted";
          return r;
        case fetch_failure::protocol:
        case fetch_failure::too_large:
          r.code = exit_failed;
          r.error = "bad answer from " + to_.url() + ": " + e.message;
          return r;
        default:
          r.code = exit_unreachable;
          r.error = "cannot reach dialerd at " + to_.url() + ": " + e.message;
          return r;
      }
    }
    r.response = std::move(got.value());
    const int status = r.response.status;
    if (status >= 200 && status < 300) {
      return r;
    }
    r.code = status == 404 ? exit_not_found : exit_failed;
    std::string text = json_text(r.response.body, "error").value_or("");
    if (text.empty()) {
      std::string_view body = r.response.body;
      body = body.substr(0, body.find('\n'));
      text = std::string(body.substr(0, max_error_text));
    }
    r.error = "the daemon answered " + std::to_string(status);
    if (!text.empty()) {
      r.error += ": " + text;
    }
    if (status == 401) {
      r.error += token_.empty() ? " (it wants a token: --token-file FILE)"
                                : " (the token in " + token_file_ + " was refused)";
    }
    return r;
  }

  // Prints a failed call's message and returns its exit status.
  int report(const call_result& r) const {
    if (r.code == exit_interrupted) {
      return interrupt_status(ctx_.interrupt_fd, false);
    }
    ctx_.err << "dialerctl: " << clean(r.error) << "\n";
    return r.code;
  }

  // Daemon-sent text made safe to print: no control characters, no token.
  [[nodiscard]] std::string clean(std::string_view text) const { return redact(printable(text)); }

  // The token, should the daemon ever echo it, replaced by "[token]". Applied to --json output
  // too: that stays valid JSON, since an echoed token sits inside a JSON string and
  // "[token]" needs no escaping.
  [[nodiscard]] std::string redact(std::string s) const {
    if (token_.empty()) {
      return s;
    }
    for (auto at = s.find(token_); at != std::string::npos; at = s.find(token_, at)) {
      s.replace(at, token_.size(), "[token]");
    }
    return s;
  }

  [[nodiscard]] const endpoint& where() const { return to_; }

 private:
  const context& ctx_;
  endpoint to_;
  std::string token_;
  std::string token_file_;
  fetch_options options_;
};

std::string campaign_path(const std::string& id, std::string_view action) {
  return "/api/v1/campaigns/" + escape_path_segment(id) + "/" + std::string(action);
}

std::string trunk_path(const std::string& name, std::string_view action) {
  return "/api/v1/trunks/" + escape_path_segment(name) + "/" + std::string(action);
}

std::string json_object(std::initializer_list<std::pair<std::string_view, std::string>> fields) {
  // Values are already JSON (a quoted string or a number).
  std::string out = "{";
  for (const auto& [key, value] : fields) {
    if (out.size() > 1) {
      out += ", ";
    }
    append_json_string(out, key);
    out += ": " + value;
  }
  out += "}";
  return out;
}

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

int run_dialerd(const context& ctx, std::vector<std::string> args) {
  std::string path_env;
  if (ctx.getenv) {
    path_env = ctx.getenv("PATH").value_or("");
  }
  const auto dialerd = find_dialerd(ctx.self_exe, path_env);
  if (!dialerd) {
    ctx.err << "dialerctl: cannot find dialerd next to dialerctl ("
            << ctx.self_exe.parent_path().string() << ") or in $PATH\n";
    return exit_failed;
  }
  args.insert(args.begin(), dialerd->string());
  ctx.out.flush();
  ctx.err.flush();
  const int rc = ctx.exec(dialerd->string(), args);
  if (rc == -1) {
    const int e = errno;
    ctx.err << "dialerctl: cannot run " << dialerd->string() << ": " << std::strerror(e) << "\n";
    return exit_failed;
  }
  return rc;
}

int run_status(const context& ctx, session& s, const invocation& inv) {
  const render_options look{ctx.stdout_is_tty && ctx.utf8};
  // One frame: the text to show, or a failure.
  const auto frame = [&](std::string& text) -> call_result {
    call_result r = s.call("GET", "/api/v1/status");
    if (r.code != exit_ok) {
      return r;
    }
    if (inv.json) {
      text = s.redact(r.response.body);
      if (text.empty() || text.back() != '\n') {
        text += "\n";
      }
      return r;
    }
    auto parsed = parse_status(r.response.body);
    if (!parsed.ok()) {
      r.code = exit_failed;
      r.error = "bad status answer from " + s.where().url() + ": " + parsed.error();
      return r;
    }
    text = s.redact(render_status(parsed.value(), look));
    return r;
  };

  std::string text;
  if (!inv.watch) {
    const call_result r = frame(text);
    if (r.code != exit_ok) {
      return s.report(r);
    }
    ctx.out << text;
    ctx.out.flush();
    return exit_ok;
  }

  const bool in_place = ctx.stdout_is_tty;
  if (in_place) {
    ctx.out << hide_cursor;
  }
  int status = exit_ok;
  for (int frames = 0;; ++frames) {
    text.clear();
    const call_result r = frame(text);
    if (r.code == exit_interrupted) {
      status = interrupt_status(ctx.interrupt_fd, true);
      break;
    }
    if (r.code != exit_ok) {
      if (frames == 0) {  // a wrong address or token: say so and stop, not retry forever
        if (in_place) {
          ctx.out << show_cursor;
          ctx.out.flush();
        }
        return s.report(r);
      }
      text = "dialerctl: " + s.clean(r.error) + "\n(retrying every " + format_interval(*inv.watch) +
             ")\n";
    }
    if (in_place) {
      ctx.out << clear_screen << "every " << format_interval(*inv.watch) << ", Ctrl-C to stop\n\n";
    } else if (frames > 0) {
      ctx.out << "\n";
    }
    ctx.out << text;
    ctx.out.flush();
    if (wait_or_interrupt(ctx.interrupt_fd, *inv.watch) == waited::interrupted) {
      status = interrupt_status(ctx.interrupt_fd, true);
      break;
    }
  }
  if (in_place) {
    ctx.out << show_cursor;
  }
  ctx.out.flush();
  return status;
}

bool confirmed(const context& ctx, const std::string& id) {
  ctx.err << "Cancel campaign " << printable(id)
          << "? Its queued tasks will never be dialed; this cannot be undone. [y/N] ";
  ctx.err.flush();
  std::string answer;
  if (!std::getline(ctx.in, answer)) {
    return false;
  }
  while (!answer.empty() && (answer.back() == '\r' || answer.back() == ' ')) {
    answer.pop_back();
  }
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES" || answer == "Yes";
}

int run_campaign_state(const context& ctx, session& s, const invocation& inv,
                       std::string_view action, std::string_view expected_state) {
  const call_result r = s.call("POST", campaign_path(inv.target, action));
  if (r.code != exit_ok) {
    return s.report(r);
  }
  const std::string state =
      json_text(r.response.body, "state").value_or(std::string(expected_state));
  ctx.out << "campaign " << printable(inv.target) << ": " << s.clean(state);
  if (const auto n = json_text(r.response.body, "cancelled_tasks")) {
    ctx.out << " (" << s.clean(*n) << " queued tasks cancelled)";
  }
  ctx.out << "\n";
  return exit_ok;
}

int run_export(const context& ctx, session& s, const invocation& inv) {
  const call_result r = s.call("GET", "/api/v1/status");
  if (r.code != exit_ok) {
    return s.report(r);
  }
  auto parsed = parse_status(r.response.body);
  if (!parsed.ok() || parsed.value().state_path.empty()) {
    ctx.err << "dialerctl: the status answer of " << s.where().url()
            << " names no state_path, so there is nothing to export from\n";
    return exit_failed;
  }
  const std::string state_path = parsed.value().state_path;
  if (state_path.front() != '/') {
    // Relative to the daemon's working folder, which we cannot know: guessing could export from
    // another state file.
    ctx.err << "dialerctl: the daemon reports a relative state_path (" << s.clean(state_path)
            << "), so its folder is unknown; run `dialerd export --state-path FILE --campaign "
            << printable(inv.target) << "` in the daemon's folder instead\n";
    return exit_failed;
  }
  std::error_code ec;
  if (!fs::exists(state_path, ec)) {
    ctx.err << "dialerctl: the daemon's state file " << s.clean(state_path)
            << " is not on this machine: export reads it directly, so run it where dialerd runs\n";
    return exit_failed;
  }
  std::vector<std::string> args = {"export", "--state-path", state_path, "--campaign", inv.target};
  if (!inv.format.empty()) {
    args.insert(args.end(), {"--format", inv.format});
  }
  for (const auto& state : inv.states) {
    args.insert(args.end(), {"--state", state});
  }
  if (!inv.output.empty()) {
    args.insert(args.end(), {"--output", inv.output});
  }
  return run_dialerd(ctx, std::move(args));
}

int dispatch(const context& ctx, session& s, const invocation& inv) {
  switch (inv.cmd) {
    case command::status:
      return run_status(ctx, s, inv);
    case command::pause:
      return run_campaign_state(ctx, s, inv, "pause", "paused");
    case command::resume:
      return run_campaign_state(ctx, s, inv, "resume", "running");
    case command::cancel:
      if (!inv.yes) {
        if (!ctx.stdin_is_tty) {
          ctx.err << "dialerctl: cancel cannot be undone: add --yes to confirm (stdin is not a "
                     "terminal, so dialerctl cannot ask)\n";
          return exit_usage;
        }
        if (!confirmed(ctx, inv.target)) {
          if (pollfd p{ctx.interrupt_fd, POLLIN, 0};
              ctx.interrupt_fd >= 0 && ::poll(&p, 1, 0) == 1) {
            ctx.err << "\n";  // Ctrl-C at the question: stop, as it would without us
            return interrupt_status(ctx.interrupt_fd, false);
          }
          ctx.err << "dialerctl: not confirmed; campaign " << printable(inv.target)
                  << " was not cancelled\n";
          return exit_failed;
        }
      }
      return run_campaign_state(ctx, s, inv, "cancel", "cancelled");
    case command::set_rate: {
      std::string body;
      if (inv.burst) {
        body = json_object(
            {{"calls_per_second", json_string(inv.rate)}, {"burst", std::to_string(*inv.burst)}});
      } else {
        body = json_object({{"calls_per_second", json_string(inv.rate)}});
      }
      const std::string path =
          inv.trunk ? trunk_path(inv.target, "rate") : campaign_path(inv.target, "rate");
      const call_result r = s.call("POST", path, std::move(body));
      if (r.code != exit_ok) {
        return s.report(r);
      }
      ctx.out << (inv.trunk ? "trunk " : "campaign ") << printable(inv.target) << ": rate "
              << inv.rate;
      if (inv.burst) {
        ctx.out << ", burst " << *inv.burst;
      }
      ctx.out << "\n";
      return exit_ok;
    }
    case command::set_concurrency: {
      const call_result r =
          s.call("POST", trunk_path(inv.target, "concurrency"),
                 json_object({{"max_concurrent_calls", std::to_string(inv.max_concurrent_calls)}}));
      if (r.code != exit_ok) {
        return s.report(r);
      }
      ctx.out << "trunk " << printable(inv.target) << ": max_concurrent_calls "
              << inv.max_concurrent_calls << "\n";
      return exit_ok;
    }
    case command::retry: {
      const call_result r = s.call("POST", campaign_path(inv.target, "retry"),
                                   json_object({{"state", json_string(inv.retry_state)}}));
      if (r.code != exit_ok) {
        return s.report(r);
      }
      ctx.out << "campaign " << printable(inv.target) << ": "
              << s.clean(json_text(r.response.body, "requeued").value_or("?")) << " "
              << inv.retry_state << " tasks requeued\n";
      return exit_ok;
    }
    case command::add_csv: {
      std::error_code ec;
      fs::path path = fs::absolute(inv.path, ec);
      if (ec) {
        ctx.err << "dialerctl: cannot make " << inv.path << " absolute: " << ec.message() << "\n";
        return exit_usage;
      }
      path = path.lexically_normal();
      const call_result r = s.call("POST", campaign_path(inv.target, "csv"),
                                   json_object({{"path", json_string(path.string())}}));
      if (r.code != exit_ok) {
        return s.report(r);
      }
      ctx.out << "campaign " << printable(inv.target) << ": ingesting " << printable(path.string())
              << " (progress in `dialerctl status`)\n";
      return exit_ok;
    }
    case command::phone_numbers: {
      const call_result r = s.call("GET", "/api/v1/phone-numbers");
      if (r.code != exit_ok) {
        return s.report(r);
      }
      if (inv.json) {
        ctx.out << s.redact(r.response.body);
        if (r.response.body.empty() || r.response.body.back() != '\n') {
          ctx.out << "\n";
        }
        return exit_ok;
      }
      auto list = parse_phone_numbers(r.response.body);
      if (!list.ok()) {
        ctx.err << "dialerctl: bad phone-numbers answer from " << s.where().url() << ": "
                << list.error() << " (--json shows it as it is)\n";
        return exit_failed;
      }
      ctx.out << s.redact(render_phone_numbers(list.value()));
      return exit_ok;
    }
    case command::export_tasks:
      return run_export(ctx, s, inv);
    case command::check_config:
    case command::none:
      break;
  }
  return exit_usage;  // unreachable: run() handles these before a session exists
}

}  // namespace

bool locale_is_utf8(std::string_view locale) {
  std::string lower;
  for (const char c : locale) {
    if (c != '-' && c != '_') {
      lower.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    }
  }
  return lower.find("utf8") != std::string::npos;
}

std::optional<fs::path> find_dialerd(const fs::path& self_exe, std::string_view path_env) {
  const auto usable = [](const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (!self_exe.empty()) {
    if (fs::path beside = self_exe.parent_path() / "dialerd"; usable(beside)) {
      return beside;
    }
  }
  while (true) {
    const auto colon = path_env.find(':');
    const std::string_view dir = path_env.substr(0, colon);
    if (fs::path candidate = fs::path(dir.empty() ? "." : std::string(dir)) / "dialerd";
        !path_env.empty() && usable(candidate)) {
      return candidate;
    }
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    path_env.remove_prefix(colon + 1);
  }
}

int run(const std::vector<std::string>& args, const context& ctx) {
  auto parsed = parse_arguments(args);
  if (!parsed.ok()) {
    const usage_error& e = parsed.error();
    if (args.empty()) {
      ctx.err << usage(command::none);
      return exit_usage;
    }
    ctx.err << "dialerctl: " << e.message << "\n";
    if (e.cmd == command::none) {
      ctx.err << "run \"dialerctl --help\" for usage\n";
    } else {
      ctx.err << "run \"dialerctl " << command_name(e.cmd) << " --help\" for usage\n";
    }
    return exit_usage;
  }
  const invocation& inv = parsed.value();
  if (inv.help) {
    ctx.out << usage(inv.cmd);
    return exit_ok;
  }
  if (inv.cmd == command::check_config) {
    return run_dialerd(ctx, {"--check-config", "--config", inv.path});
  }

  std::string control;
  std::string control_source = "--control";
  if (inv.global.control) {
    control = *inv.global.control;
  } else if (auto env = ctx.getenv ? ctx.getenv("DIALERCTL_CONTROL") : std::nullopt;
             env && !env->empty()) {
    control = *env;
    control_source = "$DIALERCTL_CONTROL";
  } else {
    control = default_control;
  }
  auto to = parse_control_url(control);
  if (!to.ok()) {
    ctx.err << "dialerctl: " << control_source << ": " << to.error() << "\n";
    return exit_usage;
  }
  std::string token;
  if (inv.global.token_file) {
    auto t = read_token(*inv.global.token_file);
    if (!t.ok()) {
      ctx.err << "dialerctl: " << t.error() << "\n";
      return exit_usage;
    }
    token = std::move(t.value());
  }
  fetch_options options;
  options.timeout = inv.global.timeout.value_or(
      inv.cmd == command::phone_numbers ? phone_numbers_timeout : default_timeout);
  options.cancel_fd = ctx.interrupt_fd;
  session s(ctx, std::move(to.value()), std::move(token), inv.global.token_file.value_or(""),
            options);
  return dispatch(ctx, s, inv);
}

}  // namespace dialer::ctl
