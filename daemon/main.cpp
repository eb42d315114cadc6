// dialerd: wiring only. Configuration, the store, the pool and the engine live in libraries that
// tests and benchmarks link too.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>

#include "config/config.hpp"
#include "control/control_service.hpp"
#include "core/campaign_loader.hpp"
#include "core/https_pool.hpp"
#include "core/log.hpp"
#include "core/phone.hpp"
#include "core/sqlite_store.hpp"
#include "core/systemd_notify.hpp"
#include "daemon/export_command.hpp"
#include "daemon/summary.hpp"
#include "scheduler/dial_engine.hpp"
#include "webhooks/webhook_service.hpp"

namespace {

using namespace dialer;

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_config = 2;
constexpr int exit_paused = 3;

struct arguments {
  std::string config_path;
  bool check_config = false;
  bool dry_run = false;
  bool service = false;
  bool quiet = false;
  bool json_logs = false;
};

void usage(std::FILE* out) {
  std::fputs(
      "usage: dialerd --config FILE [--check-config | --dry-run] [--service] [--quiet]\n"
      "               [--log-format text|json]\n"
      "       dialerd export --campaign ID [--format csv|jsonl] [--state S] [--output FILE]\n"
      "                      (--config FILE | --state-path FILE)   (dialerd export --help)\n"
      "\n"
      "  --config FILE    the daemon YAML (it names the campaign files)\n"
      "  --check-config   validate the configuration and the CSV headers, then exit\n"
      "                   (0 valid, 2 invalid, with file:line:col and what was expected)\n"
      "  --dry-run        touch no network and no state: print one JSON line per task that\n"
      "                   would be dialed and one per rejected row\n"
      "  --service        stay up when every campaign is done (systemd); without it dialerd\n"
      "                   exits once every campaign is complete or paused\n"
      "  --quiet          log warnings and errors only\n"
      "  --log-format F   text (default; journald priority prefixes under systemd) or json\n"
      "                   (one object per line: ts, level, priority, msg)\n"
      "  --version        print the version\n"
      "\n"
      "Signals: SIGTERM/SIGINT drain then exit (twice: exit at once); SIGHUP reloads the\n"
      "configuration (a broken one is refused and the running one stays).\n"
      "\n"
      "Exit status: 0 all campaigns complete, 1 failure, 2 bad configuration, 3 a campaign\n"
      "paused (401/403/404 from the API), 130 a second SIGTERM/SIGINT.\n",
      out);
}

bool parse_arguments(int argc, char** argv, arguments& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      args.config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      args.config_path = a.substr(9);
    } else if (a == "--check-config") {
      args.check_config = true;
    } else if (a == "--dry-run") {
      args.dry_run = true;
    } else if (a == "--service") {
      args.service = true;
    } else if (a == "--quiet") {
      args.quiet = true;
    } else if (a == "--log-format" && i + 1 < argc) {
      const std::string f = argv[++i];
      if (f != "text" && f != "json") {
        std::fprintf(stderr, "dialerd: --log-format takes text or json, not \"%s\"\n", f.c_str());
        return false;
      }
      args.json_logs = f == "json";
    } else if (a == "--version") {
      std::printf("dialerd %s\n", DIALERD_VERSION);
      std::exit(exit_ok);
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(exit_ok);
    } else {
      std::fprintf(stderr, "dialerd: unknown argument \"%s\"\n", a.c_str());
      return false;
    }
  }
  if (args.config_path.empty()) {
    std::fputs("dialerd: --config FILE is required\n", stderr);
    return false;
  }
  return true;
}

// Checks what the YAML layer cannot: regions and number types known to libphonenumber, CSV
// files that exist and have the mapped columns. Throws std::runtime_error.
void validate_inputs(const config::daemon_settings& settings) {
  for (const auto& c : settings.campaigns) {
    const std::string where = c.source_file.string() + ": campaign " + c.id + ": ";
    if (!phone_normaliser::is_known_region(c.csv.default_region)) {
      throw std::runtime_error(where + "csv.default_region \"" + c.csv.default_region +
                               "\" is not a region libphonenumber knows");
    }
    try {
      phone_normaliser check(c.allowed_number_types);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(where + e.what());
    }
    check_campaign_input(c);
  }
}

https_pool_options pool_options(const config::daemon_settings& s) {
  https_pool_options o;
  o.host = s.api.host;
  o.port = s.api.port;
  o.ca_file = s.api.ca_file;
  o.max_connections = static_cast<std::size_t>(s.api.pool.connections);
  o.connect_timeout = s.api.pool.connect_timeout;
  o.request_timeout = s.api.pool.request_timeout;
  o.idle_timeout = s.api.pool.idle_timeout;
  return o;
}

int run_dry(const config::daemon_settings& settings) {
  // Duplicate detection is the store's: run it on a throwaway database so the dry run reports
  // exactly what a real run would suppress, and leaves the real state untouched.
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "dialerd-dry-run-XXXXXX").string();
  const char* dir = ::mkdtemp(dir_template.data());
  if (dir == nullptr) {
    std::perror("dialerd: mkdtemp");
    return exit_failure;
  }
  {
    boost::asio::io_context io;
    sqlite_store store(
        {.path = std::filesystem::path(dir) / "dry-run.db",
         .synchronous_full = false,
         .post = [&io](std::function<void()> fn) { boost::asio::post(io, std::move(fn)); }});
    reject_log rejects;  // stdout
    for (const auto& c : settings.campaigns) {
      phone_normaliser phones(c.allowed_number_types);
      ingest_campaign(c, store, phones, rejects, {});
      rejects.flush();
      print_dry_run_tasks(c.id, store, io);
      print_summary(c.id, store.summary(c.id), stderr);
    }
  }
  std::filesystem::remove_all(dir);
  return exit_ok;
}

// Reads campaign CSVs on one thread, in the order asked: the campaigns at start, those a reload
// adds, and files added to a running campaign (add-csv). The store calls block; the loop hears of
// each batch through posts.
class ingest_worker {
 public:
  ingest_worker(boost::asio::io_context& io, dial_engine& engine, sqlite_store& store,
                reject_log& rejects)
      : io_(io), engine_(engine), store_(store), rejects_(rejects), thread_([this] { run(); }) {}
  ~ingest_worker() { stop(); }

  void add(config::campaign_settings campaign, bool added_file) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back({std::move(campaign), added_file});
    }
    cv_.notify_one();
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        return;
      }
      stopping_ = true;
    }
    stop_flag_ = true;
    cv_.notify_one();
    thread_.join();
  }
  [[nodiscard]] int errors() const { return errors_; }

 private:
  struct job {
    config::campaign_settings campaign;
    bool added_file;
  };

  void run() {
    for (;;) {
      job j;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) {
          return;
        }
        j = std::move(jobs_.front());
        jobs_.pop_front();
      }
      const config::campaign_settings& c = j.campaign;
      try {
        phone_normaliser phones(c.allowed_number_types);
        ingest_options options;
        options.stop = &stop_flag_;
        options.on_batch = [this, id = c.id](const ingest_result&) {
          boost::asio::post(io_, [this, id] { engine_.tasks_added(id); });
        };
        const ingest_totals totals = ingest_campaign(c, store_, phones, rejects_, options);
        if (totals.skipped) {
          DIALER_LOG_INFO("campaign %s: %s was ingested by an earlier run", c.id.c_str(),
                          c.csv.path.c_str());
        } else {
          DIALER_LOG_INFO("campaign %s: %s: %lld rows read, %lld new tasks", c.id.c_str(),
                          c.csv.path.c_str(), static_cast<long long>(totals.rows_read),
                          static_cast<long long>(totals.stored.pending));
        }
      } catch (const std::exception& e) {
        ++errors_;
        DIALER_LOG_ERROR("campaign %s: ingest of %s failed: %s", c.id.c_str(), c.csv.path.c_str(),
                         e.what());
      }
      boost::asio::post(io_, [this, id = c.id] { engine_.ingest_finished(id); });
    }
  }

  boost::asio::io_context& io_;
  dial_engine& engine_;
  sqlite_store& store_;
  reject_log& rejects_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> jobs_;
  bool stopping_ = false;
  std::atomic<bool> stop_flag_{false};
  std::atomic<int> errors_{0};
  std::thread thread_;  // last: starts once the rest is built
};

campaign_policy policy_of(const config::campaign_settings& c) {
  return campaign_policy{.redial_on = c.retry.redial_on,
                         .max_attempts = c.retry.max_attempts,
                         .redial_after_ms = c.retry.redial_after.count(),
                         .cap_lifetime = c.caps.lifetime,
                         .cap_per_day = c.caps.per_day};
}

// STATUS= for systemctl status: one line.
std::string status_line(const dial_engine& engine) {
  std::int64_t started = 0;
  std::int64_t ended = 0;
  std::int64_t live = 0;
  std::int64_t paused = 0;
  for (const auto& p : engine.campaigns()) {
    started += p.started;
    ended += p.ended;
    live += p.live;
    paused += p.paused ? 1 : 0;
  }
  double rate = 0;
  for (const auto& t : engine.trunks()) {
    rate += t.rate_achieved;
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "%lld started, %lld ended, %lld live, %.1f calls/s, %lld paused",
                static_cast<long long>(started), static_cast<long long>(ended),
                static_cast<long long>(live), rate, static_cast<long long>(paused));
  return buf;
}

int run(const config::daemon_settings& initial, const arguments& args) {
  // The configuration in force; a reload replaces it. The webhook listener and the pool keep
  // the settings they were built with (changing those needs a restart).
  config::daemon_settings settings = initial;
  const systemd_notifier notifier = systemd_notifier::from_environment();
  if (!notifier.problem().empty()) {
    DIALER_LOG_WARN("systemd notification: %s", notifier.problem().c_str());
  }

  boost::asio::io_context io;
  sqlite_store store(
      {.path = settings.state_path,
       .synchronous_full = settings.store_sync_full,
       .post = [&io](std::function<void()> fn) { boost::asio::post(io, std::move(fn)); }});
  if (store.recovered_dialing() > 0) {
    DIALER_LOG_WARN(
        "%lld task(s) were DIALING when dialerd last stopped: they are UNKNOWN now "
        "and are never redialed automatically",
        static_cast<long long>(store.recovered_dialing()));
  }
  for (const auto& c : settings.campaigns) {
    store.set_campaign_policy(c.id, policy_of(c));
  }
  auto pool = make_https_pool(io, pool_options(settings));
  dial_engine engine(
      io, settings, store, *pool, time_source::real(),
      {.slot_grace = settings.slot_grace, .await_call_end = settings.webhooks.enabled});
  const config::webhook_settings webhook_settings = settings.webhooks;
  std::unique_ptr<webhook_service> webhooks;
  if (webhook_settings.enabled) {
    webhooks = std::make_unique<webhook_service>(
        io, webhook_settings, settings.source_file.string(), store, time_source::real(),
        [&engine](const update_outcome& o) { engine.on_session_update(o); });
    const bool authenticated =
        !webhook_settings.shared_secrets.empty() || !webhook_settings.signing_secrets.empty();
    DIALER_LOG_INFO("webhooks: listening on %s port %u, path %s%s",
                    webhook_settings.address.c_str(), static_cast<unsigned>(webhooks->port()),
                    webhook_settings.path.c_str(),
                    authenticated ? "" : " (no secret or signature configured)");
    if (!authenticated && webhook_settings.allow_from.empty()) {
      DIALER_LOG_WARN(
          "webhooks: anyone who can reach the port may post events: configure "
          "webhooks.allow_from, secret_files or signing_secret_files");
    }
  }
  reject_log rejects(settings.reject_path);
  ingest_worker ingest(io, engine, store, rejects);

  bool ready = false;
  int signals_seen = 0;
  std::unique_ptr<control_service> control;
  if (settings.control.enabled) {
    control_context ctx;
    ctx.engine = &engine;
    ctx.store = &store;
    ctx.pool = pool.get();
    ctx.webhooks = webhooks.get();
    ctx.api = settings.api;
    ctx.state_path = std::filesystem::absolute(settings.state_path).string();
    ctx.version = DIALERD_VERSION;
    ctx.ready = [&ready] { return ready; };
    ctx.draining = [&signals_seen] { return signals_seen > 0; };
    ctx.add_csv = [&](const std::string& id, const std::string& path) -> std::string {
      const auto it = std::find_if(settings.campaigns.begin(), settings.campaigns.end(),
                                   [&](const auto& c) { return c.id == id; });
      if (it == settings.campaigns.end()) {
        return "unknown campaign";
      }
      for (const auto& p : engine.campaigns()) {
        if (p.id == id && p.cancelled) {
          return "the campaign is cancelled: its rows would never be dialed";
        }
      }
      config::campaign_settings added = *it;
      added.csv.path = path;
      try {
        check_campaign_input(added);
      } catch (const std::exception& e) {
        return e.what();
      }
      engine.ingest_started(id);
      ingest.add(std::move(added), true);
      DIALER_LOG_INFO("campaign %s: adding %s", id.c_str(), path.c_str());
      return "";
    };
    control = std::make_unique<control_service>(io, settings.control, std::move(ctx));
    DIALER_LOG_INFO("control: listening on %s port %u (/metrics, /healthz, /readyz, /api/v1)%s",
                    settings.control.address.c_str(), static_cast<unsigned>(control->port()),
                    settings.control.token.empty() ? "" : ", bearer token required");
  }

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) {
          return;
        }
        if (++signals_seen >= 2) {
          // The operator insists. DIALING tasks become UNKNOWN at the next start: never redialed.
          DIALER_LOG_WARN("second signal: exiting at once");
          std::fflush(stderr);
          ::_exit(130);
        }
        DIALER_LOG_INFO(
            "signal %d: draining (no new calls; in-flight requests finish); "
            "send it again to exit at once",
            signo);
        (void)notifier.stopping();
        engine.drain();
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  // SIGHUP: a new configuration, all or nothing. A broken one is refused with one log line and
  // the old one keeps running.
  boost::asio::signal_set hangup(io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) {
          return;
        }
        (void)notifier.reloading(std::chrono::steady_clock::now());
        try {
          config::daemon_settings next = config::load_daemon_config(args.config_path);
          validate_inputs(next);
          std::set<std::string> known;
          for (const auto& c : settings.campaigns) {
            known.insert(c.id);
          }
          int added = 0;
          for (const auto& c : next.campaigns) {
            store.set_campaign_policy(c.id, policy_of(c));
          }
          engine.reconfigure(next);
          for (const auto& c : next.campaigns) {
            if (!known.contains(c.id)) {
              ++added;
              ingest.add(c, false);
            }
          }
          const int removed = static_cast<int>(std::count_if(
              settings.campaigns.begin(), settings.campaigns.end(), [&](const auto& c) {
                return std::none_of(next.campaigns.begin(), next.campaigns.end(),
                                    [&](const auto& n) { return n.id == c.id; });
              }));
          settings.campaigns = next.campaigns;
          settings.trunks = next.trunks;
          DIALER_LOG_INFO("configuration reloaded from %s: %zu campaign(s), %d added, %d removed",
                          args.config_path.c_str(), settings.campaigns.size(), added, removed);
        } catch (const std::exception& e) {
          DIALER_LOG_ERROR("reload refused, the running configuration stays in force: %s",
                           e.what());
        }
        (void)notifier.ready();
        hangup.async_wait(on_hangup);
      };
  hangup.async_wait(on_hangup);

  // WATCHDOG=1 from the loop itself: a wedged loop stops the pings and systemd restarts us.
  boost::asio::steady_timer watchdog_timer(io);
  std::function<void(const boost::system::error_code&)> on_watchdog;
  if (const auto interval = notifier.watchdog_interval()) {
    on_watchdog = [&, period = *interval / 2](const boost::system::error_code& ec) {
      if (ec) {
        return;
      }
      (void)notifier.watchdog();
      watchdog_timer.expires_after(period);
      watchdog_timer.async_wait(on_watchdog);
    };
    watchdog_timer.expires_after(std::chrono::milliseconds(0));
    watchdog_timer.async_wait(on_watchdog);
  }

  // One progress line a second (every 10 s as a service): what an operator watches in the log.
  // Errors are reported as counts by class per minute, never one line per failed call.
  boost::asio::steady_timer progress_timer(io);
  const auto progress_period = args.service ? std::chrono::seconds(10) : std::chrono::seconds(1);
  std::map<std::string, std::int64_t> last_started;
  std::map<std::string, std::map<std::string, std::int64_t>> last_failed;
  auto last_error_report = std::chrono::steady_clock::now();
  std::function<void(const boost::system::error_code&)> on_progress =
      [&](const boost::system::error_code& ec) {
        if (ec) {
          return;
        }
        std::string line;
        const auto campaigns = engine.campaigns();
        for (const auto& p : campaigns) {
          const std::int64_t rate = p.started - last_started[p.id];
          last_started[p.id] = p.started;
          line += "campaign " + p.id + ": " + std::to_string(p.started) + " started (" +
                  std::to_string(rate / progress_period.count()) + "/s), " +
                  std::to_string(p.ended) + " ended, " + std::to_string(p.live) + " live, " +
                  std::to_string(p.retried) + " retried, " + std::to_string(p.redials) +
                  " redials, " + std::to_string(p.failed) + " failed, " +
                  std::to_string(p.unknown) + " unknown, " + std::to_string(p.unconfirmed) +
                  " unconfirmed" +
                  (p.cancelled ? ", CANCELLED"
                   : p.paused  ? ", PAUSED"
                               : "") +
                  "; ";
        }
        for (const auto& t : engine.trunks()) {
          line += "trunk " + t.name + ": " + std::to_string(t.active) + "/" +
                  std::to_string(t.capacity) + " active; ";
        }
        DIALER_LOG_INFO("%s", line.c_str());
        if (std::chrono::steady_clock::now() - last_error_report >= std::chrono::seconds(60)) {
          last_error_report = std::chrono::steady_clock::now();
          for (const auto& p : campaigns) {
            std::string counts;
            for (const auto& [cls, n] : p.failed_by_class) {
              const std::int64_t delta = n - last_failed[p.id][cls];
              if (delta > 0) {
                counts += (counts.empty() ? "" : ", ") + cls + " " + std::to_string(delta);
              }
            }
            last_failed[p.id] = p.failed_by_class;
            if (!counts.empty()) {
              DIALER_LOG_WARN("campaign %s: requests that started no call in the last minute: %s",
                              p.id.c_str(), counts.c_str());
            }
          }
        }
        (void)notifier.status(status_line(engine));
        progress_timer.expires_after(progress_period);
        progress_timer.async_wait(on_progress);
      };
  progress_timer.expires_after(progress_period);
  progress_timer.async_wait(on_progress);

  const auto on_idle = [&] {
    if (args.service && signals_seen == 0) {
      return;  // a service waits for more work (or a signal)
    }
    (void)notifier.stopping();
    if (webhooks) {
      webhooks->stop();
    }
    if (control) {
      control->stop();
    }
    pool->shutdown();
    store.flush([&] {
      signals.cancel();
      hangup.cancel();
      progress_timer.cancel();
      watchdog_timer.cancel();
      io.stop();
    });
  };
  std::size_t total_capacity = 0;
  for (const auto& [name, t] : settings.trunks) {
    total_capacity += static_cast<std::size_t>(t.max_concurrent_calls);
  }
  // A cancel is durable: the campaign stays cancelled across restarts.
  for (const auto& c : settings.campaigns) {
    if (store.summary(c.id).cancelled) {
      DIALER_LOG_INFO("campaign %s was cancelled by an operator: it is not dialed", c.id.c_str());
      (void)engine.cancel_campaign(c.id, nullptr);
    }
    ingest.add(c, false);
  }
  // Store open, listeners bound, configuration valid.
  ready = true;
  (void)notifier.ready();
  (void)notifier.status("ready; opening connections to the Agentix API");
  // Open connections before the first token is spent, so the first requests are not queued
  // behind fresh TLS handshakes and then released together.
  const std::size_t warm = std::min<std::size_t>(settings.api.pool.connections, total_capacity);
  pool->warm_up(warm, [&](std::size_t ready_connections) {
    if (ready_connections == 0) {
      DIALER_LOG_WARN("no connection to %s:%s could be opened yet; dialing starts once one can",
                      settings.api.host.c_str(), settings.api.port.c_str());
    }
    engine.start(on_idle);
  });

  io.run();
  ingest.stop();

  int status = ingest.errors() > 0 ? exit_failure : exit_ok;
  for (const auto& p : engine.campaigns()) {
    if (p.paused && !p.cancelled && !p.paused_by_operator) {
      status = std::max(status, exit_paused);
    }
  }
  for (const auto& c : settings.campaigns) {
    print_summary(c.id, store.summary(c.id), stdout);
  }
  const sqlite_store_stats store_stats = store.stats();
  DIALER_LOG_INFO("state store: %llu writes and reads in %llu group commits, %llu rolled back",
                  static_cast<unsigned long long>(store_stats.jobs),
                  static_cast<unsigned long long>(store_stats.commits),
                  static_cast<unsigned long long>(store_stats.failed_groups));
  for (const auto& t : engine.trunks()) {
    std::printf("trunk %s: peak %lld of %lld slots, %lld Retry-After hold(s)\n", t.name.c_str(),
                static_cast<long long>(t.peak_active), static_cast<long long>(t.capacity),
                static_cast<long long>(t.holds));
  }
  if (webhooks) {
    std::string line;
    for (const auto& [key, n] : webhooks->stats().by_event_and_result) {
      line += key + "=" + std::to_string(n) + " ";
    }
    DIALER_LOG_INFO("webhooks: %s", line.empty() ? "none received" : line.c_str());
  }
  std::fflush(stdout);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "export") {
    return dialer::run_export(argc - 2, argv + 2, std::cout, std::cerr);
  }
  arguments args;
  if (!parse_arguments(argc, argv, args)) {
    usage(stderr);
    return exit_config;
  }
  if (args.quiet) {
    set_log_threshold(log_level::warning);
  }
  if (args.json_logs) {
    set_log_format(log_format::json);
  }
  config::daemon_settings settings;
  try {
    settings = config::load_daemon_config(args.config_path);
    validate_inputs(settings);
  } catch (const config::config_error& e) {
    std::fprintf(stderr, "dialerd: %s\n", e.what());
    return exit_config;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dialerd: %s\n", e.what());
    return exit_config;
  }
  if (args.check_config) {
    std::printf("%s: configuration OK (%zu trunk(s), %zu campaign(s), API key from %s)\n",
                args.config_path.c_str(), settings.trunks.size(), settings.campaigns.size(),
                settings.api.api_key_source.c_str());
    return exit_ok;
  }
  try {
    if (args.dry_run) {
      return run_dry(settings);
    }
    return run(settings, args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dialerd: %s\n", e.what());
    return exit_failure;
  }
}
