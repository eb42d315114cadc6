#pragma once
// Sends the webhook queue's deliveries over plain HTTP/1.1 to --webhook-url: a pool of
// --webhook-connections keep-alive connections, each carrying one request at a time, driven by
// one thread of its own with one timer for the queue's next due time (not one per call). Asio
// stays inside webhook_client.cpp; this header is plain C++.
#include <memory>

#include "sim/sim_time.hpp"
#include "sim/webhook_queue.hpp"

namespace dialer::sim {

class webhook_sender {
 public:
  // `queue` and `clock` must outlive the sender; the clock must be a real one (the sender's
  // timers run on steady_clock). Throws std::runtime_error (signing key setup).
  webhook_sender(webhook_queue& queue, const sim_clock& clock);
  ~webhook_sender();  // stop() if still running
  webhook_sender(const webhook_sender&) = delete;
  webhook_sender& operator=(const webhook_sender&) = delete;

  // Starts the sender's thread. Call once.
  void start();
  // Gives what is still pending (scheduled, awaiting retry, in flight) up to --webhook-drain to
  // complete, then closes the connections, joins the thread, and calls queue.finish() (the rest
  // counts as pending_at_exit). Bounded even when the receiver is unreachable or silent. Call
  // from the thread that called start(), after the API has stopped placing calls.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace dialer::sim
