// agentix-sim: wiring only. The logic lives in dialer_sim (simulator.hpp, server.hpp).
#include <sys/resource.h>

#include <csignal>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "sim/atomic_file.hpp"
#include "sim/server.hpp"
#include "sim/sim_config.hpp"
#include "sim/simulator.hpp"
#include "sim/tls_cert.hpp"
#include "sim/webhook_client.hpp"

int main(int argc, char** argv) {
  using namespace dialer::sim;
  // Sends use MSG_NOSIGNAL already; this covers anything else writing to a closed pipe (stdout).
  std::signal(SIGPIPE, SIG_IGN);
  // A load test opens many connections; the default soft limit of 1024 descriptors is too low.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }
  try {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    const std::optional<sim_config> config = parse_sim_args(args);
    if (!config) {
      return 0;
    }
    std::uint64_t seed = 0;
    if (config->seed) {
      seed = *config->seed;
    } else {
      std::random_device device;
      seed = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    }
    const cert_paths tls = ensure_certificate(config->cert_dir);
    const real_clock clock;
    simulator sim(*config, clock, seed);
    sim_server server(sim, server_options{config->listen_host, config->listen_port, config->threads,
                                          tls, config->idle_timeout});
    std::optional<webhook_sender> webhooks;
    if (sim.webhooks() != nullptr) {
      webhooks.emplace(*sim.webhooks(), clock);
    }
    const std::string host = config->listen_host.find(':') != std::string::npos
                                 ? "[" + config->listen_host + "]"
                                 : config->listen_host;
    std::cerr << "agentix-sim: listening on https://" << host << ":" << server.port() << " (seed "
              << seed << ", " << config->threads << " thread" << (config->threads == 1 ? "" : "s")
              << ")";
    if (config->webhooks.enabled()) {
      std::cerr << ", webhooks to http://" << config->webhooks.url.host_header
                << config->webhooks.url.target;
    }
    std::cerr << std::endl;
    if (!config->port_file.empty()) {
      write_file_atomically(config->port_file, std::to_string(server.port()));
    }

    if (webhooks) {
      webhooks->start();
    }
    server.run();
    if (webhooks) {
      webhooks->stop();  // bounded by --webhook-drain
    }

    sim.flush_ledger();
    const std::string stats = sim.stats_json();
    if (!config->stats_path.empty()) {
      write_file_atomically(config->stats_path, stats + "\n");
    }
    std::cout << stats << std::endl;
    if (sim.ledger_errors() > 0) {
      std::cerr << "agentix-sim: the ledger is incomplete (write errors)\n";
      return 3;
    }
    if (sim.webhooks() != nullptr && sim.webhooks()->log_errors() > 0) {
      std::cerr << "agentix-sim: the webhook log is incomplete (write errors)\n";
      return 3;
    }
    return 0;
  } catch (const config_error& e) {
    std::cerr << "agentix-sim: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "agentix-sim: " << e.what() << "\n";
    return 1;
  }
}
