// dialerd: wiring only. Configuration, the store, the pool and the engine live in libraries that
// tests and benchmarks link too.
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "config/config.hpp"
#include "core/campaign_loader.hpp"
#include "core/https_pool.hpp"
#include "core/log.hpp"
#include "core/phone.hpp"
#include "core/sqlite_store.hpp"
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
};

void usage(std::FILE* out) {
  std::fputs(
      "usage: dialerd --config FILE [--check-config | --dry-run] [--service] [--quiet]\n"
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

int run(const config::daemon_settings& settings, const arguments& args) {
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
    store.set_campaign_policy(c.id, campaign_policy{.redial_on = c.retry.redial_on,
                                                    .max_attempts = c.retry.max_attempts,
                                                    .redial_after_ms = c.retry.redial_after.count(),
                                                    .cap_lifetime = c.caps.lifetime,
                                                    .cap_per_day = c.caps.per_day});
  }
  auto pool = make_https_pool(io, pool_options(settings));
  dial_engine engine(
      io, settings, store, *pool, time_source::real(),
      {.slot_grace = settings.slot_grace, .await_call_end = settings.webhooks.enabled});
  std::unique_ptr<webhook_service> webhooks;
  if (settings.webhooks.enabled) {
    webhooks = std::make_unique<webhook_service>(
        io, settings.webhooks, settings.source_file.string(), store, time_source::real(),
        [&engine](const update_outcome& o) { engine.on_session_update(o); });
    const bool authenticated =
        !settings.webhooks.shared_secrets.empty() || !settings.webhooks.signing_secrets.empty();
    DIALER_LOG_INFO("webhooks: listening on %s port %u, path %s%s",
                    settings.webhooks.address.c_str(), static_cast<unsigned>(webhooks->port()),
                    settings.webhooks.path.c_str(),
                    authenticated ? "" : " (no secret or signature configured)");
    if (!authenticated && settings.webhooks.allow_from.empty()) {
      DIALER_LOG_WARN(
          "webhooks: anyone who can reach the port may post events: configure "
          "webhooks.allow_from, secret_files or signing_secret_files");
    }
  }
  reject_log rejects(settings.reject_path);

  std::atomic<bool> stop_ingest{false};
  std::atomic<int> ingest_errors{0};
  std::thread ingest([&] {
    for (const auto& c : settings.campaigns) {
      try {
        phone_normaliser phones(c.allowed_number_types);
        ingest_options options;
        options.stop = &stop_ingest;
        options.on_batch = [&io, &engine, id = c.id](const ingest_result&) {
          boost::asio::post(io, [&engine, id] { engine.tasks_added(id); });
        };
        const ingest_totals totals = ingest_campaign(c, store, phones, rejects, options);
        if (totals.skipped) {
          DIALER_LOG_INFO("campaign %s: %s was ingested by an earlier run", c.id.c_str(),
                          c.csv.path.c_str());
        } else {
          DIALER_LOG_INFO("campaign %s: %lld rows read, %lld new tasks", c.id.c_str(),
                          static_cast<long long>(totals.rows_read),
                          static_cast<long long>(totals.stored.pending));
        }
      } catch (const std::exception& e) {
        ++ingest_errors;
        DIALER_LOG_ERROR("campaign %s: ingest failed: %s", c.id.c_str(), e.what());
      }
      boost::asio::post(io, [&engine, id = c.id] { engine.ingest_finished(id); });
      if (stop_ingest) {
        break;
      }
    }
  });

  int signals_seen = 0;
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
        stop_ingest = true;
        engine.drain();
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  // One progress line a second (every 10 s as a service): what an operator watches in the log.
  boost::asio::steady_timer progress_timer(io);
  const auto progress_period = args.service ? std::chrono::seconds(10) : std::chrono::seconds(1);
  std::map<std::string, std::int64_t> last_started;
  std::function<void(const boost::system::error_code&)> on_progress =
      [&](const boost::system::error_code& ec) {
        if (ec) {
          return;
        }
        std::string line;
        for (const auto& p : engine.campaigns()) {
          const std::int64_t rate = p.started - last_started[p.id];
          last_started[p.id] = p.started;
          line += "campaign " + p.id + ": " + std::to_string(p.started) + " started (" +
                  std::to_string(rate / progress_period.count()) + "/s), " +
                  std::to_string(p.ended) + " ended, " + std::to_string(p.live) + " live, " +
                  std::to_string(p.retried) + " retried, " + std::to_string(p.redials) +
                  " redials, " + std::to_string(p.failed) + " failed, " +
                  std::to_string(p.unknown) + " unknown, " + std::to_string(p.unconfirmed) +
                  " unconfirmed" + (p.paused ? ", PAUSED" : "") + "; ";
        }
        for (const auto& t : engine.trunks()) {
          line += "trunk " + t.name + ": " + std::to_string(t.active) + "/" +
                  std::to_string(t.capacity) + " active; ";
        }
        DIALER_LOG_INFO("%s", line.c_str());
        progress_timer.expires_after(progress_period);
        progress_timer.async_wait(on_progress);
      };
  progress_timer.expires_after(progress_period);
  progress_timer.async_wait(on_progress);

  const auto on_idle = [&] {
    if (args.service && signals_seen == 0) {
      return;  // a service waits for more work (or a signal)
    }
    if (webhooks) {
      webhooks->stop();
    }
    pool->shutdown();
    store.flush([&] {
      signals.cancel();
      progress_timer.cancel();
      io.stop();
    });
  };
  std::size_t total_capacity = 0;
  for (const auto& [name, t] : settings.trunks) {
    total_capacity += static_cast<std::size_t>(t.max_concurrent_calls);
  }
  // Open connections before the first token is spent, so the first requests are not queued
  // behind fresh TLS handshakes and then released together.
  const std::size_t warm = std::min<std::size_t>(settings.api.pool.connections, total_capacity);
  pool->warm_up(warm, [&](std::size_t ready) {
    if (ready == 0) {
      DIALER_LOG_WARN("no connection to %s:%s could be opened yet; dialing starts once one can",
                      settings.api.host.c_str(), settings.api.port.c_str());
    }
    engine.start(on_idle);
  });

  io.run();
  stop_ingest = true;
  ingest.join();

  int status = ingest_errors > 0 ? exit_failure : exit_ok;
  for (const auto& p : engine.campaigns()) {
    if (p.paused) {
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
