#pragma once
// The control listener (docs/operations.md): health, Prometheus metrics and the JSON control API
// that dialerctl speaks. Loopback by default; with a token configured every request but the
// health checks needs `Authorization: Bearer <token>`.
//
// Threading: construct, stop and destroy on the io_context thread (or before it runs); every
// handler runs there and calls the engine directly.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "core/https_pool.hpp"
#include "core/sqlite_store.hpp"
#include "scheduler/dial_engine.hpp"
#include "webhooks/webhook_service.hpp"

namespace dialer {

struct control_context {
  dial_engine* engine = nullptr;
  sqlite_store* store = nullptr;
  https_pool* pool = nullptr;
  const webhook_service* webhooks = nullptr;  // null without a webhook listener
  config::api_settings api;                   // for GET /api/v1/phone-numbers
  std::string state_path;
  std::string version;
  std::function<bool()> ready;     // store open, listeners bound, configuration valid
  std::function<bool()> draining;  // SIGTERM received
  // Starts reading `path` into the running campaign `id`; "" or why it cannot.
  std::function<std::string(const std::string& id, const std::string& path)> add_csv;
};

// Builds the /metrics page from the modules' own counters (control/metrics_page.cpp).
[[nodiscard]] std::string render_metrics(const control_context& ctx,
                                         const std::map<std::string, campaign_summary>& summaries);

class control_service {
 public:
  // Binds at once; throws std::system_error when the address cannot be bound.
  control_service(boost::asio::io_context& io, const config::control_settings& settings,
                  control_context context);
  ~control_service();
  control_service(const control_service&) = delete;
  control_service& operator=(const control_service&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace dialer
