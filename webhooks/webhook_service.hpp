#pragma once
// The Agentix webhook endpoint. A POST to the configured path passes, in order: the IP allowlist
// (the client is the TCP peer, or the X-Forwarded-For hop a trusted proxy vouches for), the shared
// secret header and the HMAC signature when configured, and a tolerant parse. Then the store
// applies it, and only once that is durable does the sender get 2xx; a repeat gets 2xx and changes
// nothing. Every refusal has its status and leaves no trace in the state:
//   400 unparsable body or X-Forwarded-For · 401 missing/wrong secret or signature, stale
//   timestamp · 403 address not allowed · 404 other path · 405 not POST · 408/413/431 (net/) ·
//   503 the store could not record it (the sender retries).
//
// Threading: construct, stop and read stats on the io_context thread (the store's completions
// must be posted there too).
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "core/state_store.hpp"
#include "core/time.hpp"

namespace dialer {

struct webhook_stats {
  // "<event>/<result>" → count; results: applied, duplicate, stale, orphan, ignored (an event
  // type we do not handle), and the refusals: forbidden, unauthorized, bad_request, not_found,
  // method_not_allowed, store_failed.
  std::map<std::string, std::uint64_t> by_event_and_result;
  std::uint64_t refused_408 = 0;
  std::uint64_t refused_413 = 0;
  std::uint64_t refused_431 = 0;
  std::uint64_t refused_busy = 0;
  std::uint64_t open_connections = 0;
};

class webhook_service {
 public:
  // Binds at once. Throws config::config_error (at the entry's file:line:col) for a network the
  // matcher refuses, std::system_error when the address cannot be bound. `store` and `clock` must
  // outlive the service; `on_applied` runs on the io thread after each durable update.
  webhook_service(boost::asio::io_context& io, const config::webhook_settings& settings,
                  const std::string& config_file, state_store& store, const time_source& clock,
                  std::function<void(const update_outcome&)> on_applied);
  ~webhook_service();
  webhook_service(const webhook_service&) = delete;
  webhook_service& operator=(const webhook_service&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  // Stops accepting; requests already read are still answered.
  void stop();
  [[nodiscard]] webhook_stats stats() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace dialer
