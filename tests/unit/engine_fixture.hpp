#pragma once
// The fixture the dial_engine tests share: a dial_engine over fake_store and fake_pool (see
// engine_fakes.hpp) on a manual clock, driven by hand from the test thread (settle, run_until,
// run_to_quiet, poke), so no test waits for real time. engine_fixture is the engine and its
// world; one_campaign_fixture adds the single campaign "spring" most tests dial. Header-only:
// every *_test.cpp is its own executable.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/http_client.hpp"
#include "core/state_store.hpp"
#include "core/time.hpp"
#include "scheduler/dial_engine.hpp"
#include "tests/unit/engine_fakes.hpp"

namespace dialer {

// Readable failure messages for states (gtest finds it by ADL).
inline void PrintTo(task_state s, std::ostream* os) {
  *os << to_string(s);
}

namespace test {

inline constexpr char agent_id[] = "d796c919-7ef3-413a-8bf1-351b6442953a";
inline constexpr char phone_number_id[] = "6f1c0c2e-5a4b-4c3d-8e2f-1a2b3c4d5e6f";

struct parsed_key {
  std::string campaign;
  std::string task;
  int attempt = 0;
};
// "campaign:task:N" → its parts; all empty for a key without two colons.
inline parsed_key parse_key(const std::string& key) {
  const auto last = key.rfind(':');
  const auto first = key.find(':');
  if (last == std::string::npos || first == last) {
    return {};
  }
  return {key.substr(0, first), key.substr(first + 1, last - first - 1),
          std::stoi(key.substr(last + 1))};
}

// A 201 with session "sess-<index>".
inline http_response started(std::size_t index) {
  http_response r;
  r.status = 201;
  r.body = R"({"sessionId":"sess-)" + std::to_string(index) + R"(","status":"queued"})";
  return r;
}
inline http_response status(int code, std::string retry_after = "", std::string body = "") {
  http_response r;
  r.status = code;
  r.retry_after = std::move(retry_after);
  r.body = std::move(body);
  return r;
}
inline http_response transport(transport_error e) {
  http_response r;
  r.error = e;
  return r;
}

// Trunk "main" (1000 slots, 200/s, burst 10) and the API settings; every request answered
// started(i) until a test scripts otherwise. Campaigns and tasks are the derived fixture's.
class engine_fixture : public ::testing::Test {
 protected:
  engine_fixture() {
    // Manual steady time far beyond the real steady clock: the engine's real asio timer never
    // fires during a test. Only pump_for_test() at next_wake_for_test() moves it, and whether a
    // timer is armed at all shows as outstanding work on the io_context. The instant is a whole
    // second, which the 1 s buckets of rate_achieved rely on.
    clock_.advance(std::chrono::hours(24 * 365 * 20));
    clock_.set_system(system_time{} + seconds(1767225600));  // 2026-01-01T00:00:00Z

    settings_.api.base_url = "https://api.agntix.ai";
    settings_.api.host = "api.agntix.ai";
    settings_.api.port = "443";
    settings_.api.base_path = "";
    settings_.api.api_key = config::secret("pk_test");
    settings_.api.api_key_source = "env AGENTIX_API_KEY";

    trunk_.name = "main";
    trunk_.phone_number_id = phone_number_id;
    trunk_.max_concurrent_calls = 1000;
    trunk_.calls_per_second = {200, seconds(1)};
    trunk_.burst = 10;

    pool_.set_ready(16);
    pool_.set_responder([](const fake_pool::written&, std::size_t i) { return started(i); });
    // Invariant 1 on every write: the task is durably DIALING, in the key's campaign, with this
    // attempt number.
    pool_.on_write([this](const fake_pool::written& w) {
      const parsed_key k = parse_key(w.idempotency_key);
      const fake_store::row& r = store_.by_task(k.task);
      EXPECT_EQ(r.state, task_state::dialing) << w.idempotency_key << " written before its claim";
      EXPECT_EQ(r.attempts, k.attempt) << w.idempotency_key;
      EXPECT_EQ(r.campaign, k.campaign) << w.idempotency_key;
    });
  }

  // Builds the engine on `settings` (slot_grace_, await_call_end_, seed 42), starts it and runs
  // what it posted. t0_ is the instant it started.
  void start_engine(const config::daemon_settings& settings, std::size_t page_size = 1024) {
    dial_engine::options opts;
    opts.slot_grace = slot_grace_;
    opts.page_size = page_size;
    opts.seed = 42;
    opts.await_call_end = await_call_end_;
    engine_ = std::make_unique<dial_engine>(io_, settings, store_, pool_, clock_, opts);
    t0_ = now();
    engine_->start([this] { ++idle_calls_; });
    settle();
  }

  [[nodiscard]] steady_time now() const { return clock_.steady_now(); }
  [[nodiscard]] std::int64_t now_ms() const { return to_unix_ms(clock_.system_now()); }

  // Runs every ready handler. A loop that never goes quiet is a busy loop: fail, do not hang.
  void settle() {
    for (int n = 0;; ++n) {
      io_.restart();
      if (io_.poll_one() == 0) {
        return;
      }
      if (n > 200000) {
        ADD_FAILURE() << "the io_context never went quiet: the engine is busy-looping";
        busy_ = true;
        return;
      }
    }
  }
  // True when the engine's timer is armed (the only work the io_context can hold once quiet).
  bool timer_armed() {
    io_.restart();
    io_.poll();
    return !io_.stopped();
  }
  // Lets the engine's timer fire at every instant it is armed for, up to `until`, then leaves
  // the clock at `until` (no extra pass: an engine with no timer armed is never pumped).
  void run_until(steady_time until) {
    int stuck = 0;
    for (int i = 0; i < 2'000'000 && !busy_; ++i) {
      settle();
      if (busy_ || !timer_armed()) {
        break;
      }
      const steady_time wake = engine_->next_wake_for_test();
      if (wake > until) {
        break;
      }
      if (wake > now()) {
        clock_.advance(wake - now());
        stuck = 0;
      } else if (++stuck > 1000) {
        ADD_FAILURE() << "the engine keeps arming its timer for an instant already past";
        return;
      }
      engine_->pump_for_test();
    }
    if (until > now()) {
      clock_.advance(until - now());
    }
  }
  void run_for(nanoseconds d) { run_until(now() + d); }
  // Runs until the engine has no timer armed and nothing to run (bounded by `limit`).
  void run_to_quiet(nanoseconds limit = std::chrono::hours(2)) {
    const steady_time until = now() + limit;
    for (int i = 0; i < 2'000'000 && !busy_; ++i) {
      settle();
      if (busy_ || !timer_armed()) {
        return;
      }
      const steady_time wake = engine_->next_wake_for_test();
      if (wake > until) {
        return;
      }
      if (wake > now()) {
        clock_.advance(wake - now());
      }
      engine_->pump_for_test();
    }
  }
  // One pass now, as if the real timer fired early (harmless by design).
  void poke() {
    engine_->pump_for_test();
    settle();
  }

  [[nodiscard]] const std::vector<fake_pool::written>& writes() const { return pool_.writes(); }
  [[nodiscard]] std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& w : writes()) {
      out.push_back(w.idempotency_key);
    }
    return out;
  }
  [[nodiscard]] trunk_progress trunk() const { return engine_->trunks().at(0); }
  [[nodiscard]] std::int64_t active() const { return trunk().active; }

  boost::asio::io_context io_;
  manual_time_source clock_;
  fake_store store_{io_, clock_};
  fake_pool pool_{io_, clock_};
  config::daemon_settings settings_;
  config::trunk_settings trunk_;
  nanoseconds slot_grace_{seconds(30)};
  bool await_call_end_ = false;
  int idle_calls_ = 0;
  bool busy_ = false;
  steady_time t0_{};
  std::unique_ptr<dial_engine> engine_;  // last: destroyed first
};

// The one campaign of one_campaign_fixture; its tasks are T-0001, T-0002, … in the order added.
inline constexpr char campaign_id[] = "spring";

inline std::string task_name(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "T-%04d", i);
  return buf;
}

inline std::string key(const std::string& task, int attempt) {
  return std::string(campaign_id) + ":" + task + ":" + std::to_string(attempt);
}

// Campaign "spring" on trunk "main"; tweak campaign_ (and the trunk) before start().
class one_campaign_fixture : public engine_fixture {
 protected:
  one_campaign_fixture() {
    campaign_.id = campaign_id;
    campaign_.agent_id = agent_id;
    campaign_.trunk = "main";
    // Beyond run_to_quiet's 2 h horizon: a STARTED call stays STARTED unless a test says otherwise.
    campaign_.max_duration = std::chrono::hours(3);
  }

  // Scripts answers per task and attempt; nullopt leaves the request outstanding.
  void respond(std::function<std::optional<http_response>(const std::string& task, int attempt,
                                                          std::size_t index)>
                   f) {
    pool_.set_responder([f = std::move(f)](const fake_pool::written& w, std::size_t i) {
      const parsed_key k = parse_key(w.idempotency_key);
      return f(k.task, k.attempt, i);
    });
  }

  void add_tasks(int n) {
    for (int i = 1; i <= n; ++i) {
      ++added_;
      store_.add_pending(campaign_id, task_name(added_),
                         "+9715012" + std::to_string(10000 + added_));
    }
  }

  void start(std::size_t page_size = 1024) {
    settings_.trunks.emplace(trunk_.name, trunk_);
    settings_.campaigns.push_back(campaign_);
    start_engine(settings_, page_size);
  }

  [[nodiscard]] campaign_progress progress() const { return engine_->campaigns().at(0); }

  config::campaign_settings campaign_;
  int added_ = 0;
};

}  // namespace test
}  // namespace dialer
