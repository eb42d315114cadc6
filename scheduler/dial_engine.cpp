#include "scheduler/dial_engine.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <deque>
#include <optional>
#include <queue>
#include <set>

#include "core/agentix_client.hpp"
#include "core/log.hpp"
#include "core/session_update.hpp"
#include "core/webhook_event.hpp"
#include "scheduler/backoff.hpp"
#include "scheduler/classify.hpp"
#include "scheduler/concurrency_gate.hpp"
#include "scheduler/token_bucket.hpp"

namespace dialer {

namespace {

// Stride of a campaign of weight w: its pass grows by this per call, so calls go in the ratio of
// the weights (weights are 1..1000).
constexpr std::uint64_t stride_unit = 1'000'000;

struct retry_entry {
  steady_time due;
  std::uint64_t sequence;  // FIFO among equal due times
  dial_task task;
  bool operator>(const retry_entry& o) const {
    return due != o.due ? due > o.due : sequence > o.sequence;
  }
};

// How long before its rate token a task may be claimed: about one group commit, so the commit
// overlaps the wait for the token.
constexpr nanoseconds claim_lead = std::chrono::milliseconds(5);

// A trunk held by 429/503 without Retry-After backs off on its own, up to this long.
constexpr auto max_hold_backoff = std::chrono::seconds(60);
// A Retry-After beyond this is treated as this: a broken header must not stall a campaign for days.
constexpr auto max_retry_after = std::chrono::minutes(10);

}  // namespace

// Starts per second over the last `seconds` whole seconds, in O(1) memory.
class rate_meter {
 public:
  void count(steady_time now) {
    advance(now);
    ++buckets_[static_cast<std::size_t>(second_ % seconds)];
  }
  [[nodiscard]] double per_second(steady_time now) {
    advance(now);
    std::int64_t total = 0;
    for (std::size_t i = 0; i < seconds; ++i) {
      if (i != static_cast<std::size_t>(second_ % seconds)) {
        total += buckets_[i];  // the current, partial second is left out
      }
    }
    return static_cast<double>(total) / static_cast<double>(seconds - 1);
  }

 private:
  static constexpr std::size_t seconds = 11;
  void advance(steady_time now) {
    const std::int64_t s =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    if (s <= second_) {
      return;
    }
    for (std::int64_t k = std::max(second_ + 1, s - static_cast<std::int64_t>(seconds) + 1); k <= s;
         ++k) {
      buckets_[static_cast<std::size_t>(k % seconds)] = 0;
    }
    second_ = s;
  }
  std::array<std::int64_t, seconds> buckets_{};
  std::int64_t second_ = 0;
};

double per_second(const config::rate& r) {
  return static_cast<double>(r.count) * 1e9 / static_cast<double>(r.per.count());
}

struct dial_engine::trunk_state {
  std::unique_ptr<config::trunk_settings> settings;
  token_bucket bucket;
  concurrency_gate gate;
  steady_time hold_until{};
  int consecutive_holds = 0;
  std::int64_t holds = 0;
  std::vector<campaign_state*> campaigns;
  // Weighted fair share (stride scheduling): the pass of the campaign served last; a campaign
  // coming back from idle starts here, so it cannot bank credit while it had nothing to dial.
  std::uint64_t virtual_pass = 0;
  mutable rate_meter achieved;
  prom::histogram request_latency{prom::latency_buckets()};
  // Claims committed (DIALING) and waiting for their rate token, in claim order.
  std::deque<std::shared_ptr<attempt>> write_queue;
  // Claims made and not yet written: each is promised one of the tokens available now.
  std::int64_t unsent = 0;

  explicit trunk_state(const config::trunk_settings& t)
      : settings(std::make_unique<config::trunk_settings>(t)),
        bucket(t.calls_per_second.count, t.calls_per_second.per, t.burst),
        gate(t.max_concurrent_calls - t.reserved_slots) {}
};

struct dial_engine::campaign_state {
  std::unique_ptr<config::campaign_settings> settings;
  trunk_state* trunk;
  std::uint64_t pass = 0;
  mutable rate_meter achieved;
  bool removing = false;  // dropped from the configuration: drains, then goes
  int committing = 0;     // claims whose DIALING commit has not been answered yet
  // A cancel waits for those claims (they are withdrawn first), so that its one store job
  // suppresses every task that will never be dialed and its count is the whole truth.
  std::function<void(std::int64_t)> pending_cancel;
  bool cancel_waiting = false;
  bool announced_start = false;     // "dialing started" logged
  bool announced_complete = false;  // "finished" logged (reset when work comes back)
  std::optional<token_bucket> bucket;
  std::deque<dial_task> ready;
  std::priority_queue<retry_entry, std::vector<retry_entry>, std::greater<>> retries;
  std::uint64_t retry_sequence = 0;
  std::int64_t cursor = 0;  // highest row_id fetched
  bool fetching = false;
  bool exhausted = false;
  std::uint64_t added_generation = 0;
  bool ingest_done = false;
  std::int64_t unsent = 0;
  // Redials (and tasks waiting out a number's daily cap) come from the store in due order.
  std::int64_t next_due_ms = 1;  // 0: none known; 1: ask at start
  std::int64_t due_cursor_ms = 0;
  std::int64_t due_cursor_row = 0;
  std::uint64_t due_generation = 0;  // bumped when the cursor is reset
  bool fetching_due = false;
  steady_time next_purge{};
  campaign_progress progress;
};

struct dial_engine::attempt {
  campaign_state* campaign;
  trunk_state* trunk;
  dial_task task;
  int number;  // 1-based attempt number: also part of the Idempotency-Key
  // What webhooks said while the request was in flight.
  bool ended_by_event = false;
  std::string session_from_event;
};

struct dial_engine::live_call {
  campaign_state* campaign;
  steady_time deadline;
  std::string session_id;  // empty: UNKNOWN (the request was ambiguous)
};

struct dial_engine::pull {
  campaign_state* campaign;
  std::int64_t row_id;
  std::string session_id;
  bool transcript;  // false: settle the session; true: fetch its transcript
  int pulls_done;
  steady_time due;
  bool operator>(const pull& o) const { return due > o.due; }
};

dial_engine::dial_engine(boost::asio::io_context& io, const config::daemon_settings& settings,
                         state_store& store, http_connection_pool& pool, const time_source& clock,
                         options opts)
    : io_(io),
      api_(settings.api),
      settle_(settings.settle),
      store_(store),
      pool_(pool),
      clock_(clock),
      options_(opts),
      timer_(io),
      rng_(opts.seed != 0 ? opts.seed : std::random_device{}()),
      alive_(std::make_shared<bool>(true)) {
  for (const auto& [name, trunk] : settings.trunks) {
    trunks_.emplace(name, std::make_unique<trunk_state>(trunk));
  }
  for (const auto& c : settings.campaigns) {
    add_campaign_state(c);
  }
}

dial_engine::campaign_state& dial_engine::add_campaign_state(const config::campaign_settings& c) {
  auto state = std::make_unique<campaign_state>();
  state->settings = std::make_unique<config::campaign_settings>(c);
  state->trunk = trunks_.at(c.trunk).get();
  if (c.calls_per_second) {
    state->bucket.emplace(c.calls_per_second->count, c.calls_per_second->per, c.burst);
  }
  state->progress.id = c.id;
  state->pass = state->trunk->virtual_pass;
  state->trunk->campaigns.push_back(state.get());
  campaign_state& ref = *state;
  campaigns_[c.id] = std::move(state);
  return ref;
}

dial_engine::~dial_engine() {
  *alive_ = false;
  timer_.cancel();
}

std::uint64_t dial_engine::random() {
  return rng_();
}

void dial_engine::start(std::function<void()> on_idle) {
  on_idle_ = std::move(on_idle);
  startup_loads_ = campaigns_.size();
  if (startup_loads_ == 0) {
    started_ = true;
    check_idle();
    return;
  }
  for (auto& [id, c] : campaigns_) {
    load_campaign(*c);
  }
}

// Calls placed by an earlier run may still be live: their slots stay taken until they must have
// ended (started + max_duration + grace); unsettled ones are pulled.
void dial_engine::load_campaign(campaign_state& c) {
  const std::int64_t now_ms = to_unix_ms(clock_.system_now());
  const auto hold = std::chrono::duration_cast<milliseconds>(nanoseconds(c.settings->max_duration) +
                                                             options_.slot_grace);
  campaign_state* campaign = &c;
  const std::string& id = c.settings->id;
  store_.fetch_active(id, now_ms - hold.count(),
                      [this, campaign, hold, alive = alive_](std::vector<active_call> calls) {
                        if (!*alive) {
                          return;
                        }
                        const steady_time now = clock_.steady_now();
                        const std::int64_t now_ms = to_unix_ms(clock_.system_now());
                        std::size_t held = 0;
                        for (auto& call : calls) {
                          const auto left =
                              milliseconds(call.started_at_ms + hold.count() - now_ms);
                          if (call.state == task_state::ended_unconfirmed) {
                            if (call.pulls < settle_.attempts) {
                              queue_pull(*campaign, call.row_id, std::move(call.session_id), false,
                                         call.pulls, now);
                            }
                            continue;
                          }
                          if (left.count() <= 0) {
                            // Past its deadline while we were down: settle it now.
                            if (call.state == task_state::started) {
                              hold_live(*campaign, call.row_id, now, std::move(call.session_id));
                              campaign->trunk->gate.occupy();
                            }
                            continue;
                          }
                          campaign->trunk->gate.occupy();
                          hold_live(*campaign, call.row_id, now + left, std::move(call.session_id));
                          ++held;
                        }
                        if (held != 0) {
                          DIALER_LOG_INFO(
                              "campaign %s: %zu call(s) of an earlier run may "
                              "still be live; their trunk slots stay taken",
                              campaign->settings->id.c_str(), held);
                        }
                        // A campaign added later (a reload) loads the same way, with the engine
                        // running.
                        if (startup_loads_ > 0 && --startup_loads_ == 0) {
                          started_ = true;
                        }
                        pump();
                      });
}

void dial_engine::tasks_added(const std::string& campaign) {
  auto it = campaigns_.find(campaign);
  if (it == campaigns_.end()) {
    return;
  }
  ++it->second->added_generation;
  it->second->exhausted = false;
  pump();
}

void dial_engine::ingest_finished(const std::string& campaign) {
  auto it = campaigns_.find(campaign);
  if (it == campaigns_.end()) {
    return;
  }
  it->second->ingest_done = true;
  ++it->second->added_generation;
  it->second->exhausted = false;
  pump();
}

void dial_engine::drain() {
  if (draining_) {
    return;
  }
  draining_ = true;
  idle_reported_ = false;  // a service reported idle before; it must report it again now
  // Claims already DIALING are still written (after a hold or a token wait), so keep pumping.
  pump();
}

void dial_engine::pump() {
  if (!started_) {
    return;
  }
  const steady_time now = clock_.steady_now();
  if (timer_at_ <= now) {
    timer_at_ = steady_time::max();  // it has fired, or is about to: re-arm for what comes next
  }
  steady_time wake = steady_time::max();
  if (!draining_) {
    // Fetching does not wait for slots or holds: a campaign whose last fetch is due must be able
    // to complete while STARTED calls still hold every slot.
    const std::int64_t now_ms = to_unix_ms(clock_.system_now());
    for (auto& [id, c] : campaigns_) {
      if (!c->progress.paused && !c->removing && c->ready.size() < options_.page_size / 2) {
        refill(*c);
        refill_due(*c, now_ms);
      }
      if (c->next_due_ms > now_ms) {
        wake = std::min(wake, now + milliseconds(c->next_due_ms - now_ms));
      }
      if (c->settings->transcripts.store && now >= c->next_purge) {
        c->next_purge = now + std::chrono::hours(1);
        store_.purge_transcripts(
            id, now_ms - c->settings->transcripts.retention.count(), [name = id](std::int64_t n) {
              if (n > 0) {
                DIALER_LOG_INFO("campaign %s: %lld transcript(s) past retention erased",
                                name.c_str(), static_cast<long long>(n));
              }
            });
      }
    }
  }
  // Before start_pulls: an expired call queues its session pull due now.
  expire_live(now, wake);
  if (!draining_) {
    start_pulls(now, wake);
  }
  for (auto& [name, trunk] : trunks_) {
    // Claimed tasks are written even while draining: they are DIALING already.
    write_ready(*trunk, now, wake);
    if (!draining_) {
      pump_trunk(*trunk, now, wake);
    }
  }
  arm_timer(wake);
  announce();
  check_idle();
}

// One log line per notable campaign event, never one per call.
void dial_engine::announce() {
  for (auto& [id, c] : campaigns_) {
    if (!c->announced_start && c->progress.requests > 0) {
      c->announced_start = true;
      DIALER_LOG_INFO("campaign %s: dialing started on trunk %s", id.c_str(),
                      c->settings->trunk.c_str());
    }
    const bool complete = campaign_complete(*c);
    if (complete && !c->announced_complete) {
      c->announced_complete = true;
      DIALER_LOG_INFO(
          "campaign %s finished: %lld started, %lld ended, %lld failed, %lld unknown", id.c_str(),
          static_cast<long long>(c->progress.started), static_cast<long long>(c->progress.ended),
          static_cast<long long>(c->progress.failed), static_cast<long long>(c->progress.unknown));
    } else if (!complete) {
      c->announced_complete = false;
    }
  }
}

void dial_engine::hold_live(campaign_state& c, std::int64_t row_id, steady_time until,
                            std::string session_id) {
  const auto it = live_.find(row_id);
  if (it != live_.end()) {
    // on_ambiguous: retry dialed again while the first attempt may still ring: that hold keeps
    // its slot until its own deadline, under a key no webhook can name.
    const live_call earlier = it->second;
    it->second = live_call{&c, until, std::move(session_id)};
    const std::int64_t anonymous = --last_anonymous_hold_;
    live_.emplace(anonymous, live_call{earlier.campaign, earlier.deadline, ""});
    live_deadlines_.emplace(earlier.deadline, anonymous);
  } else {
    live_.emplace(row_id, live_call{&c, until, std::move(session_id)});
  }
  ++c.progress.live;
  live_deadlines_.emplace(until, row_id);
}

void dial_engine::release_live(std::int64_t row_id) {
  const auto it = live_.find(row_id);
  if (it == live_.end()) {
    return;
  }
  campaign_state& c = *it->second.campaign;
  c.trunk->gate.release();
  --c.progress.live;
  live_.erase(it);  // its deadline entry is skipped when it comes up
}

// A call still live at max_duration + slot_grace gives its slot back. A STARTED one is marked
// ENDED_UNCONFIRMED and settled by pulling its session; an UNKNOWN one stays UNKNOWN.
void dial_engine::expire_live(steady_time now, steady_time& wake) {
  while (!live_deadlines_.empty()) {
    const auto [deadline, row_id] = live_deadlines_.top();
    const auto it = live_.find(row_id);
    if (it == live_.end() || it->second.deadline != deadline) {
      live_deadlines_.pop();  // released earlier
      continue;
    }
    if (deadline > now) {
      wake = std::min(wake, deadline);
      return;
    }
    live_deadlines_.pop();
    campaign_state& c = *it->second.campaign;
    std::string session_id = std::move(it->second.session_id);
    release_live(row_id);
    if (session_id.empty()) {
      continue;
    }
    ++c.progress.unconfirmed;
    if (settle_.attempts > 0) {
      queue_pull(c, row_id, session_id, false, 0, now);
    }
    store_.mark_unconfirmed(row_id, session_id, nullptr);
  }
}

void dial_engine::refill_due(campaign_state& c, std::int64_t now_ms) {
  if (c.fetching_due || c.next_due_ms == 0 || c.next_due_ms > now_ms) {
    return;
  }
  c.fetching_due = true;
  const std::size_t limit = std::max<std::size_t>(options_.page_size / 2, 1);
  store_.fetch_due(
      c.settings->id, c.due_cursor_ms, c.due_cursor_row, now_ms, limit,
      [this, campaign = &c, limit, generation = c.due_generation, alive = alive_](due_page page) {
        if (!*alive) {
          return;
        }
        campaign_state& c = *campaign;
        c.fetching_due = false;
        const bool reset_meanwhile = generation != c.due_generation;
        for (auto& t : page.tasks) {
          if (!reset_meanwhile) {
            c.due_cursor_ms = t.not_before_ms;
            c.due_cursor_row = t.row_id;
          }
          t.not_before_ms = 0;
          c.ready.push_back(std::move(t));
        }
        // A full page may have more due behind it, and a reset cursor must be read again from
        // the start: ask again at once.
        c.next_due_ms = page.tasks.size() >= limit || reset_meanwhile ? 1 : page.next_due_ms;
        pump();
      });
}

void dial_engine::pump_trunk(trunk_state& trunk, steady_time now, steady_time& wake) {
  while (true) {
    if (now < trunk.hold_until) {
      wake = std::min(wake, trunk.hold_until);
      return;
    }
    if (!trunk.gate.available()) {
      return;  // expire_live armed the wake for the next deadline; webhooks pump too
    }
    campaign_state* campaign = next_campaign(trunk, now, wake);
    if (campaign == nullptr) {
      return;
    }
    // The token is spent only when a connection can write the request at once.
    if (pool_.ready_count() <= reserved_connections_) {
      // While claims are committing, their on_claimed pumps again; asking the pool now would
      // answer at once (their connections are idle) and spin the loop for the commit's length.
      if (reserved_connections_ == 0 && !waiting_for_connection_) {
        waiting_for_connection_ = true;
        pool_.when_ready([this, alive = alive_] {
          if (*alive) {
            waiting_for_connection_ = false;
            pump();
          }
        });
      }
      return;
    }
    // A claim is promised a token available now; the token itself is spent just before the
    // write (write_ready), so commit latency never bunches requests up at the server.
    // Claim up to claim_lead before the token: the DIALING commit then overlaps the wait, and the
    // write still happens exactly when the token arrives (write_ready), so the pace is kept
    // instead of losing one commit's time per call.
    if (trunk.bucket.available(now + claim_lead) <= trunk.unsent) {
      if (trunk.unsent == 0) {
        wake = std::min(wake, trunk.bucket.next_available(now) - claim_lead);
      }
      return;  // else: the writes of earlier claims will pump again
    }
    dial_task task;
    if (!campaign->retries.empty() && campaign->retries.top().due <= now) {
      task = campaign->retries.top().task;
      campaign->retries.pop();
    } else {
      task = std::move(campaign->ready.front());
      campaign->ready.pop_front();
    }
    trunk.virtual_pass = campaign->pass;
    campaign->pass +=
        stride_unit / static_cast<std::uint64_t>(std::max(1, campaign->settings->weight));
    if (in_flight_.contains(task.row_id)) {
      // A redial whose previous request is still unanswered (its session.ended overtook the
      // answer): two requests of one task are never open at once, so it waits.
      schedule_retry(*campaign, std::move(task), now + std::chrono::seconds(1));
      continue;
    }
    dispatch(trunk, *campaign, std::move(task), now);
  }
}

// Weighted fair share of one trunk. Rate: stride scheduling — among campaigns with a task due and
// a token of their own, the one with the smallest pass dials next and its pass grows by
// stride_unit / weight, so backlogged campaigns start calls in the ratio of their weights. Slots:
// a campaign holding its weighted share of the trunk's slots (or more) waits while another
// campaign with work is below its share; when none is, any may take a free slot (work-conserving).
dial_engine::campaign_state* dial_engine::next_campaign(trunk_state& trunk, steady_time now,
                                                        steady_time& wake) {
  std::int64_t demand_weight = 0;
  std::vector<campaign_state*> eligible;
  for (campaign_state* cp : trunk.campaigns) {
    campaign_state& c = *cp;
    if (c.progress.paused || c.removing) {
      continue;
    }
    if (c.ready.size() < options_.page_size / 2) {
      refill(c);
    }
    const bool retry_due = !c.retries.empty() && c.retries.top().due <= now;
    if (!retry_due && c.ready.empty()) {
      if (!c.retries.empty()) {
        wake = std::min(wake, c.retries.top().due);
      }
      continue;
    }
    demand_weight += c.settings->weight;
    if (c.bucket && c.bucket->available(now + claim_lead) <= c.unsent) {
      if (c.unsent == 0) {
        wake = std::min(wake, c.bucket->next_available(now) - claim_lead);
      }
      continue;
    }
    eligible.push_back(&c);
  }
  if (eligible.empty()) {
    return nullptr;
  }
  const std::int64_t slots = trunk.gate.capacity();
  const auto under_share = [&](const campaign_state& c) {
    const std::int64_t held = c.progress.in_flight + c.progress.live;
    return held * demand_weight < slots * c.settings->weight;
  };
  campaign_state* best = nullptr;
  for (const bool only_under_share : {true, false}) {
    for (campaign_state* c : eligible) {
      if (only_under_share && !under_share(*c)) {
        continue;
      }
      c->pass = std::max(c->pass, trunk.virtual_pass);
      if (best == nullptr || c->pass < best->pass) {
        best = c;
      }
    }
    if (best != nullptr) {
      break;
    }
  }
  return best;  // its pass advances only when it really dials (pump_trunk)
}

void dial_engine::refill(campaign_state& c) {
  if (c.fetching || c.exhausted) {
    return;
  }
  c.fetching = true;
  const std::uint64_t generation = c.added_generation;
  store_.fetch_pending(
      c.settings->id, c.cursor, options_.page_size,
      [this, campaign = &c, generation, alive = alive_](std::vector<dial_task> tasks) {
        if (!*alive) {
          return;
        }
        campaign_state& c = *campaign;
        c.fetching = false;
        const steady_time now = clock_.steady_now();
        const std::int64_t now_ms = to_unix_ms(clock_.system_now());
        const bool full_page = tasks.size() >= options_.page_size;
        for (auto& t : tasks) {
          c.cursor = std::max(c.cursor, t.row_id);
          if (t.not_before_ms > now_ms) {
            const auto due = now + milliseconds(t.not_before_ms - now_ms);
            schedule_retry(c, std::move(t), due);
          } else {
            c.ready.push_back(std::move(t));
          }
        }
        // Only a short page fetched after the last "tasks added" news proves there are no more.
        c.exhausted = !full_page && generation == c.added_generation;
        pump();
      });
}

void dial_engine::dispatch(trunk_state& trunk, campaign_state& campaign, dial_task task,
                           steady_time now) {
  const bool slot = trunk.gate.try_acquire();
  (void)slot;  // pump_trunk checked available() just before
  ++reserved_connections_;
  ++trunk.unsent;
  ++campaign.unsent;
  ++campaign.progress.in_flight;
  ++campaign.committing;
  auto a = std::make_shared<attempt>(attempt{&campaign, &trunk, std::move(task), 0, false, {}});
  a->number = a->task.attempts + 1;
  store_.mark_dialing(a->task.row_id, a->number, [this, a, alive = alive_](claim_outcome o) {
    if (*alive) {
      on_claimed(a, o);
    }
  });
}

void dial_engine::on_claimed(std::shared_ptr<attempt> a, claim_outcome o) {
  campaign_state& c = *a->campaign;
  --c.committing;
  // Runs after this function's withdraw (if any) is queued in the store.
  struct cancel_if_waiting {
    dial_engine& e;
    campaign_state& c;
    ~cancel_if_waiting() {
      if (c.cancel_waiting && c.committing == 0) {
        e.issue_cancel(c);
      }
    }
  } cancel_check{*this, c};
  if (o.result != claim_result::claimed) {
    if (o.result == claim_result::capped) {
      // The store moved it (waiting for the next day, or FAILED for the lifetime cap).
      if (o.retry_at_ms != 0 && (c.next_due_ms == 0 || o.retry_at_ms < c.next_due_ms)) {
        c.next_due_ms = o.retry_at_ms;
      }
    } else {
      // Not PENDING any more (a webhook said it was placed, or the disk write failed): dialing
      // it could dial twice.
      DIALER_LOG_WARN("campaign %s: task %s could not be claimed for dialing; skipped",
                      c.settings->id.c_str(), a->task.task_id.c_str());
    }
    --reserved_connections_;
    --a->trunk->unsent;
    --c.unsent;
    a->trunk->gate.release();
    --c.progress.in_flight;
    pump();
    return;
  }
  if (stopped(c)) {
    withdraw(std::move(a), clock_.steady_now());
    pump();
    return;
  }
  a->trunk->write_queue.push_back(std::move(a));
  pump();
}

// A claim is durably DIALING but its request is not written yet; the campaign stopped (paused,
// cancelled, removed) meanwhile. Nothing was sent, so it certainly placed no call: the task goes
// back to PENDING (a cancelled one then to SUPPRESSED), and a paused one waits in memory for
// resume.
void dial_engine::withdraw(std::shared_ptr<attempt> a, steady_time now) {
  campaign_state& c = *a->campaign;
  trunk_state& trunk = *a->trunk;
  --reserved_connections_;
  --trunk.unsent;
  --c.unsent;
  --c.progress.in_flight;
  trunk.gate.release();
  attempt_outcome o;
  o.row_id = a->task.row_id;
  o.state = task_state::pending;
  o.attempts = a->number;
  o.error_class = "not_sent";
  o.detail = "claimed, then the campaign stopped before the request was sent";
  store_.record(std::move(o), nullptr);
  a->task.attempts = a->number;
  if (!c.progress.cancelled && !c.removing) {
    schedule_retry(c, std::move(a->task), now);
  }
  // A cancelled campaign's task is PENDING again; the cancel's store job, issued once no claim
  // is committing, suppresses it with the rest.
}

bool dial_engine::stopped(const campaign_state& c) {
  return c.progress.paused || c.progress.cancelled || c.removing;
}

void dial_engine::write_ready(trunk_state& trunk, steady_time now, steady_time& wake) {
  for (auto it = trunk.write_queue.begin(); it != trunk.write_queue.end();) {
    if (stopped(*(*it)->campaign)) {
      std::shared_ptr<attempt> a = std::move(*it);
      it = trunk.write_queue.erase(it);
      withdraw(std::move(a), now);
    } else {
      ++it;
    }
  }
  while (!trunk.write_queue.empty()) {
    if (now < trunk.hold_until) {
      wake = std::min(wake, trunk.hold_until);
      return;
    }
    attempt& a = *trunk.write_queue.front();
    campaign_state& c = *a.campaign;
    const steady_time trunk_at = trunk.bucket.next_available(now);
    const steady_time campaign_at = c.bucket ? c.bucket->next_available(now) : now;
    if (trunk_at > now || campaign_at > now) {
      wake = std::min(wake, std::max(trunk_at, campaign_at));
      return;
    }
    (void)trunk.bucket.try_acquire(now);
    if (c.bucket) {
      (void)c.bucket->try_acquire(now);
    }
    trunk.achieved.count(now);
    c.achieved.count(now);
    std::shared_ptr<attempt> owned = std::move(trunk.write_queue.front());
    trunk.write_queue.pop_front();
    in_flight_[owned->task.row_id] = owned.get();
    --trunk.unsent;
    --c.unsent;
    --reserved_connections_;
    send(std::move(owned));
  }
}

void dial_engine::send(std::shared_ptr<attempt> a) {
  campaign_state& c = *a->campaign;
  const config::campaign_settings& cs = *c.settings;
  const std::string idempotency_key = make_idempotency_key(cs.id, a->task.task_id, a->number);
  const auto make_request = [&] {
    start_call_spec spec;
    spec.phone_number_id = a->trunk->settings->phone_number_id;
    spec.agent_id = cs.agent_id;
    spec.to_phone_number = a->task.phone_e164;
    spec.max_duration_seconds = cs.max_duration.count();
    spec.variables_json = a->task.variables_json;
    spec.idempotency_key = idempotency_key;
    return build_start_call_request(api_.base_path, api_.api_key.reveal(), spec);
  };
  ++c.progress.requests;
  auto handler = [this, a, alive = alive_](http_response r) {
    if (*alive) {
      on_response(a, std::move(r));
    }
  };
  if (!pool_.try_send_now(make_request(), handler)) {
    // The connection reserved for it went stale meanwhile: nothing was sent, so queue it.
    pool_.send(make_request(), std::move(handler));
  }
}

void dial_engine::schedule_retry(campaign_state& c, dial_task task, steady_time due) {
  c.retries.push(retry_entry{due, c.retry_sequence++, std::move(task)});
}

void dial_engine::pause(campaign_state& c, std::string reason) {
  if (c.progress.paused) {
    return;
  }
  c.progress.paused = true;
  c.progress.pause_reason = reason;
  DIALER_LOG_ERROR("campaign %s paused: %s", c.settings->id.c_str(), reason.c_str());
}

void dial_engine::on_response(std::shared_ptr<attempt> a, http_response r) {
  campaign_state& c = *a->campaign;
  trunk_state& trunk = *a->trunk;
  const config::campaign_settings& cs = *c.settings;
  --c.progress.in_flight;
  if (r.error == transport_error::none) {
    trunk.request_latency.observe(std::chrono::duration<double>(r.latency).count());
  }
  if (const auto it = in_flight_.find(a->task.row_id);
      it != in_flight_.end() && it->second == a.get()) {
    in_flight_.erase(it);
  }

  std::optional<std::string> session_id;
  if (r.error == transport_error::none && r.status >= 200 && r.status < 300) {
    session_id = parse_session_id(r.body);
  }
  const classification k = classify(r, session_id.has_value());
  const steady_time now = clock_.steady_now();
  const std::int64_t now_ms = to_unix_ms(clock_.system_now());
  const steady_time slot_end = now + cs.max_duration + options_.slot_grace;

  attempt_outcome o;
  o.row_id = a->task.row_id;
  o.attempts = a->number;
  o.http_status = r.status;
  o.error_class = std::string(k.error_class);
  a->task.attempts = a->number;

  // A webhook overtook the response: the call was placed whatever the response says, and the
  // store already moved the task (record() below changes nothing then).
  if (a->ended_by_event || !a->session_from_event.empty()) {
    o.state = task_state::started;
    o.session_id = session_id.value_or(a->session_from_event);
    ++c.progress.started;
    if (a->ended_by_event) {
      trunk.gate.release();
    } else {
      hold_live(c, a->task.row_id, slot_end, a->session_from_event);
    }
    store_.record(std::move(o), nullptr);
    pump();
    return;
  }

  const auto retry_or_fail = [&](steady_time due) {
    trunk.gate.release();
    if (a->number >= cs.retry.max_attempts) {
      o.state = task_state::failed;
      o.detail =
          "not placed after " + std::to_string(a->number) + " attempt(s); last: " + o.error_class;
      ++c.progress.failed;
      return;
    }
    o.state = task_state::pending;
    o.not_before_ms = now_ms + std::chrono::duration_cast<milliseconds>(due - now).count();
    ++c.progress.retried;
    schedule_retry(c, a->task, due);
  };

  if (k.verdict != call_verdict::started) {
    ++c.progress.failed_by_class[o.error_class.empty() ? "unknown" : o.error_class];
  }
  switch (k.verdict) {
    case call_verdict::started:
      o.state = task_state::started;
      o.session_id = std::move(*session_id);
      hold_live(c, a->task.row_id, slot_end, o.session_id);
      trunk.consecutive_holds = 0;
      ++c.progress.started;
      break;
    case call_verdict::retry_later:
      retry_or_fail(now + full_jitter_backoff(a->number, cs.retry.backoff_base,
                                              cs.retry.backoff_max, random()));
      break;
    case call_verdict::hold_trunk: {
      std::optional<nanoseconds> delay = parse_retry_after(r.retry_after, clock_.system_now());
      if (!delay) {
        delay = full_jitter_backoff(++trunk.consecutive_holds, milliseconds(500), max_hold_backoff,
                                    random());
      }
      delay = std::min<nanoseconds>(*delay, max_retry_after);
      if (now + *delay > trunk.hold_until) {
        if (trunk.hold_until <= now) {
          ++trunk.holds;
          DIALER_LOG_WARN(
              "trunk %s: HTTP %d, holding all calls for %lld ms", trunk.settings->name.c_str(),
              r.status,
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(*delay).count()));
        }
        trunk.hold_until = now + *delay;
      }
      retry_or_fail(trunk.hold_until);
      break;
    }
    case call_verdict::failed:
      trunk.gate.release();
      o.state = task_state::failed;
      o.detail = r.body.substr(0, 512);
      ++c.progress.failed;
      break;
    case call_verdict::pause_campaign: {
      std::string why;
      if (r.status == 401) {
        why = "calls/start answered 401 Unauthorized: the API key (" + api_.api_key_source +
              ") was refused";
      } else if (r.status == 403) {
        why =
            "calls/start answered 403 Forbidden: the API key may not place calls from phone "
            "number " +
            trunk.settings->phone_number_id;
      } else if (r.status == 404) {
        why = "calls/start answered 404 Not Found: phone_number_id " +
              trunk.settings->phone_number_id + " or agent_id " + cs.agent_id + " is unknown";
      } else {
        why = "calls/start answered HTTP " + std::to_string(r.status) +
              " (a redirect; redirects are never followed): check api.base_url";
      }
      if (k.task_unknown) {
        o.state = task_state::unknown;
        hold_live(c, a->task.row_id, slot_end, "");
        ++c.progress.unknown;
      } else {
        // Refused, so certainly not placed: it waits, pending, for the campaign to resume.
        trunk.gate.release();
        o.state = task_state::pending;
        schedule_retry(c, a->task, now);
      }
      pause(c, why);
      break;
    }
    case call_verdict::ambiguous:
      // The call may be ringing: its slot stays taken as if it had started.
      hold_live(c, a->task.row_id, slot_end, "");
      if (cs.on_ambiguous == config::ambiguous_policy::retry && a->number < cs.retry.max_attempts) {
        const steady_time due = now + full_jitter_backoff(a->number, cs.retry.backoff_base,
                                                          cs.retry.backoff_max, random());
        o.state = task_state::pending;
        o.not_before_ms = now_ms + std::chrono::duration_cast<milliseconds>(due - now).count();
        ++c.progress.retried;
        schedule_retry(c, a->task, due);
      } else {
        o.state = task_state::unknown;
        ++c.progress.unknown;
      }
      break;
  }
  store_.record(std::move(o), nullptr);
  pump();
}

void dial_engine::on_session_update(const update_outcome& o) {
  if (o.verdict != update_verdict::applied) {
    return;
  }
  const auto found = campaigns_.find(o.campaign);
  if (found == campaigns_.end()) {
    return;
  }
  campaign_state& c = *found->second;
  const steady_time now = clock_.steady_now();
  const auto in_flight = in_flight_.find(o.row_id);
  if (o.state == task_state::started) {
    if (in_flight != in_flight_.end()) {
      in_flight->second->session_from_event = o.session_id;
    } else if (const auto live = live_.find(o.row_id); live != live_.end()) {
      live->second.session_id = o.session_id;  // an UNKNOWN call reconciled
    } else if (o.previous == task_state::pending || o.previous == task_state::unknown) {
      // Placed although the answer said otherwise, or reconciled after its slot expired: the
      // call is ringing now, so it takes a slot, even above the cap.
      c.trunk->gate.occupy();
      hold_live(c, o.row_id, now + c.settings->max_duration + options_.slot_grace, o.session_id);
    }
    pump();
    return;
  }
  if (o.state != task_state::ended && o.state != task_state::pending) {
    return;
  }
  ++c.progress.ended;
  ++c.progress.ended_by_reason[o.end_reason];
  if (in_flight != in_flight_.end()) {
    in_flight->second->ended_by_event = true;  // on_response frees the slot
  } else {
    release_live(o.row_id);
  }
  if (o.previous == task_state::ended_unconfirmed && c.progress.unconfirmed > 0) {
    --c.progress.unconfirmed;
  }
  if (o.state == task_state::pending && o.redial_at_ms != 0) {
    ++c.progress.redials;
    if (o.redial_at_ms <= c.due_cursor_ms) {  // the wall clock stepped back
      c.due_cursor_ms = 0;
      c.due_cursor_row = 0;
      ++c.due_generation;
    }
    if (c.next_due_ms == 0 || (c.next_due_ms != 1 && o.redial_at_ms < c.next_due_ms)) {
      c.next_due_ms = o.redial_at_ms;
    }
  }
  if (c.settings->transcripts.store && !o.session_id.empty()) {
    queue_pull(c, o.row_id, o.session_id, true, 0, now);
  }
  pump();
}

void dial_engine::queue_pull(campaign_state& c, std::int64_t row_id, std::string session_id,
                             bool transcript, int pulls_done, steady_time due) {
  ++c.progress.settling;
  pull_queue_.push_back(
      std::make_shared<pull>(pull{&c, row_id, std::move(session_id), transcript, pulls_done, due}));
  std::push_heap(pull_queue_.begin(), pull_queue_.end(),
                 [](const auto& a, const auto& b) { return *a > *b; });
}

void dial_engine::start_pulls(steady_time now, steady_time& wake) {
  const auto later = [](const auto& a, const auto& b) { return *a > *b; };
  while (!pull_queue_.empty() && pulls_in_flight_ < options_.max_pulls_in_flight) {
    if (pull_queue_.front()->due > now) {
      wake = std::min(wake, pull_queue_.front()->due);
      return;
    }
    std::pop_heap(pull_queue_.begin(), pull_queue_.end(), later);
    std::shared_ptr<pull> p = std::move(pull_queue_.back());
    pull_queue_.pop_back();
    ++pulls_in_flight_;
    ++p->pulls_done;
    pool_.send(
        build_session_request(api_.base_path, api_.api_key.reveal(), p->session_id, p->transcript),
        [this, p, alive = alive_](http_response r) {
          if (*alive) {
            on_pull(p, std::move(r));
          }
        });
  }
}

void dial_engine::settle_failed(pull& p, std::string detail) {
  campaign_state& c = *p.campaign;
  const bool give_up = p.pulls_done >= settle_.attempts || draining_;
  if (!p.transcript) {
    store_.record_pull(p.row_id, p.pulls_done,
                       (give_up ? "not settled after " : "not settled yet after ") +
                           std::to_string(p.pulls_done) + " session pull(s): " + detail,
                       nullptr);
  }
  if (give_up) {
    if (!p.transcript) {
      DIALER_LOG_WARN(
          "campaign %s: session %s not settled after %d pull(s) (%s); the task stays "
          "ENDED_UNCONFIRMED",
          c.settings->id.c_str(), p.session_id.c_str(), p.pulls_done, detail.c_str());
    }
    return;
  }
  auto delay = settle_.first_delay * (1LL << std::min(p.pulls_done - 1, 20));
  delay = std::min<milliseconds>(delay, settle_.max_delay);
  queue_pull(c, p.row_id, p.session_id, p.transcript, p.pulls_done, clock_.steady_now() + delay);
}

void dial_engine::on_pull(std::shared_ptr<pull> p, http_response r) {
  --pulls_in_flight_;
  campaign_state& c = *p->campaign;
  --c.progress.settling;
  const auto finish = [this] { pump(); };
  if (r.error != transport_error::none) {
    ++pull_results_["error"];
    settle_failed(*p, std::string(to_string(r.error)));
    return finish();
  }
  if (r.status == 404) {
    ++pull_results_["not_found"];
    p->pulls_done = std::max(p->pulls_done, settle_.attempts);  // no point asking again
    settle_failed(*p, "the session API does not know the session (404)");
    return finish();
  }
  if (r.status < 200 || r.status >= 300) {
    ++pull_results_["error"];
    settle_failed(*p, "HTTP " + std::to_string(r.status));
    return finish();
  }
  if (p->transcript) {
    auto items = parse_transcript(r.body);
    if (!items) {
      settle_failed(*p, "transcript: " + items.error());
      return finish();
    }
    store_.save_transcript(p->row_id, std::move(items).value(), nullptr);
    return finish();
  }
  auto doc = parse_session_document(r.body);
  if (!doc) {
    settle_failed(*p, "session document: " + doc.error());
    return finish();
  }
  if (doc.value().kind != session_event_kind::ended) {
    ++pull_results_["active"];
    settle_failed(*p, "the session is still " + (doc.value().status.empty() ? std::string("active")
                                                                            : doc.value().status));
    return finish();
  }
  ++pull_results_["settled"];
  session_event ev = std::move(doc).value();
  if (ev.session_id.empty()) {
    ev.session_id = p->session_id;
  }
  ++c.progress.settling;  // until the store has applied it
  session_update update = to_session_update(std::move(ev), std::move(r.body), "pull");
  update.row_id = p->row_id;
  store_.apply_session(std::move(update), [this, p, alive = alive_](bool ok, update_outcome o) {
    if (!*alive) {
      return;
    }
    --p->campaign->progress.settling;
    if (!ok) {
      settle_failed(*p, "the store could not record it");
    } else {
      on_session_update(o);
    }
    pump();
  });
  finish();
}

dial_engine::campaign_state* dial_engine::find_campaign(const std::string& id) {
  const auto it = campaigns_.find(id);
  return it == campaigns_.end() || it->second->removing ? nullptr : it->second.get();
}

control_status dial_engine::pause_campaign(const std::string& id) {
  campaign_state* c = find_campaign(id);
  if (c == nullptr) {
    return control_status::unknown;
  }
  if (c->progress.cancelled) {
    return control_status::conflict;
  }
  if (!c->progress.paused) {
    c->progress.paused = true;
    c->progress.paused_by_operator = true;
    c->progress.pause_reason = "paused by an operator";
    DIALER_LOG_INFO("campaign %s paused by an operator: no new calls; live calls go on",
                    id.c_str());
  }
  return control_status::ok;
}

control_status dial_engine::resume_campaign(const std::string& id) {
  campaign_state* c = find_campaign(id);
  if (c == nullptr) {
    return control_status::unknown;
  }
  if (c->progress.cancelled) {
    return control_status::conflict;
  }
  if (c->progress.paused) {
    DIALER_LOG_INFO("campaign %s resumed (was: %s)", id.c_str(), c->progress.pause_reason.c_str());
    c->progress.paused = false;
    c->progress.paused_by_operator = false;
    c->progress.pause_reason.clear();
    idle_reported_ = false;
    pump();
  }
  return control_status::ok;
}

control_status dial_engine::cancel_campaign(const std::string& id,
                                            std::function<void(std::int64_t)> done) {
  campaign_state* c = find_campaign(id);
  if (c == nullptr) {
    return control_status::unknown;
  }
  c->progress.cancelled = true;
  c->progress.paused = true;
  c->progress.paused_by_operator = false;
  c->progress.pause_reason = "cancelled by an operator";
  // What is queued here is still PENDING on disk: the store suppresses it.
  c->ready.clear();
  c->retries = {};
  c->next_due_ms = 0;
  c->exhausted = true;
  c->ingest_done = true;
  // Claims committed and waiting for their token are withdrawn now; claims still committing
  // are withdrawn when their commit is answered, and the cancel's store job waits for them.
  const steady_time now = clock_.steady_now();
  trunk_state& trunk = *c->trunk;
  for (auto it = trunk.write_queue.begin(); it != trunk.write_queue.end();) {
    if ((*it)->campaign == c) {
      std::shared_ptr<attempt> a = std::move(*it);
      it = trunk.write_queue.erase(it);
      withdraw(std::move(a), now);
    } else {
      ++it;
    }
  }
  c->pending_cancel = std::move(done);
  c->cancel_waiting = true;
  if (c->committing == 0) {
    issue_cancel(*c);
  }
  pump();
  return control_status::ok;
}

void dial_engine::issue_cancel(campaign_state& c) {
  c.cancel_waiting = false;
  const std::string id = c.settings->id;
  store_.cancel_pending(
      id, [this, id, done = std::move(c.pending_cancel), alive = alive_](std::int64_t n) {
        if (*alive) {
          DIALER_LOG_INFO(
              "campaign %s cancelled: %lld queued task(s) will not be dialed; live calls "
              "finish",
              id.c_str(), static_cast<long long>(n));
          pump();
        }
        if (done) {
          done(n);
        }
      });
  c.pending_cancel = nullptr;
}

control_status dial_engine::set_campaign_rate(const std::string& id, const config::rate& r,
                                              int burst) {
  campaign_state* c = find_campaign(id);
  if (c == nullptr) {
    return control_status::unknown;
  }
  if (r.count <= 0 || r.per.count() <= 0 || burst < 1) {
    return control_status::invalid;
  }
  const steady_time now = clock_.steady_now();
  if (c->bucket) {
    c->bucket->set_rate(r.count, r.per, burst, now);
  } else {
    c->bucket.emplace(r.count, r.per, burst);
  }
  c->settings->calls_per_second = r;
  c->settings->burst = burst;
  DIALER_LOG_INFO("campaign %s: pace set to %.3g calls/s (burst %d)", id.c_str(), per_second(r),
                  burst);
  pump();
  return control_status::ok;
}

void dial_engine::apply_trunk_settings(trunk_state& t, const config::trunk_settings& s) {
  const steady_time now = clock_.steady_now();
  if (!(s.calls_per_second == t.settings->calls_per_second) || s.burst != t.settings->burst) {
    t.bucket.set_rate(s.calls_per_second.count, s.calls_per_second.per, s.burst, now);
  }
  t.gate.set_capacity(s.max_concurrent_calls - s.reserved_slots);
  *t.settings = s;
}

control_status dial_engine::set_trunk_rate(const std::string& name, const config::rate& r,
                                           int burst) {
  const auto it = trunks_.find(name);
  if (it == trunks_.end()) {
    return control_status::unknown;
  }
  if (r.count <= 0 || r.per.count() <= 0 || burst < 1) {
    return control_status::invalid;
  }
  config::trunk_settings s = *it->second->settings;
  s.calls_per_second = r;
  s.burst = burst;
  apply_trunk_settings(*it->second, s);
  DIALER_LOG_INFO("trunk %s: pace set to %.3g calls/s (burst %d)", name.c_str(), per_second(r),
                  burst);
  pump();
  return control_status::ok;
}

control_status dial_engine::set_trunk_capacity(const std::string& name, int max_concurrent_calls) {
  const auto it = trunks_.find(name);
  if (it == trunks_.end()) {
    return control_status::unknown;
  }
  config::trunk_settings s = *it->second->settings;
  if (max_concurrent_calls <= s.reserved_slots || max_concurrent_calls > 100000) {
    return control_status::invalid;
  }
  s.max_concurrent_calls = max_concurrent_calls;
  apply_trunk_settings(*it->second, s);
  DIALER_LOG_INFO("trunk %s: at most %d concurrent calls (%d reserved)", name.c_str(),
                  max_concurrent_calls, s.reserved_slots);
  pump();
  return control_status::ok;
}

control_status dial_engine::retry_tasks(const std::string& id, task_state which,
                                        std::function<void(std::int64_t)> done) {
  campaign_state* c = find_campaign(id);
  if (c == nullptr) {
    return control_status::unknown;
  }
  if (c->progress.cancelled) {
    return control_status::conflict;
  }
  if (which != task_state::unknown && which != task_state::failed) {
    return control_status::invalid;
  }
  store_.requeue(
      id, which, [this, c, id, which, done = std::move(done), alive = alive_](std::int64_t n) {
        if (*alive && n > 0) {
          DIALER_LOG_INFO("campaign %s: %lld %s task(s) requeued by an operator", id.c_str(),
                          static_cast<long long>(n), std::string(to_string(which)).c_str());
          // Requeued tasks come back through the due source; their due time may be at or behind
          // its cursor (the same millisecond, or the wall clock stepped back): read it from the
          // start.
          c->next_due_ms = 1;
          c->due_cursor_ms = 0;
          c->due_cursor_row = 0;
          ++c->due_generation;
          idle_reported_ = false;
          pump();
        }
        if (done) {
          done(n);
        }
      });
  return control_status::ok;
}

void dial_engine::ingest_started(const std::string& id) {
  if (campaign_state* c = find_campaign(id)) {
    c->ingest_done = false;
    c->exhausted = false;
    idle_reported_ = false;
  }
}

void dial_engine::reconfigure(const config::daemon_settings& settings) {
  for (const auto& [name, t] : settings.trunks) {
    const auto it = trunks_.find(name);
    if (it == trunks_.end()) {
      trunks_.emplace(name, std::make_unique<trunk_state>(t));
    } else {
      apply_trunk_settings(*it->second, t);
    }
  }
  std::set<std::string> wanted;
  for (const auto& cs : settings.campaigns) {
    wanted.insert(cs.id);
    const auto it = campaigns_.find(cs.id);
    if (it == campaigns_.end() || it->second->settings->trunk != cs.trunk) {
      if (it != campaigns_.end()) {
        DIALER_LOG_WARN("campaign %s: moving to another trunk needs a restart; kept on %s",
                        cs.id.c_str(), it->second->settings->trunk.c_str());
        continue;
      }
      campaign_state& c = add_campaign_state(cs);
      DIALER_LOG_INFO("campaign %s: added by a reload", cs.id.c_str());
      load_campaign(c);
      continue;
    }
    campaign_state& c = *it->second;
    if (c.removing) {
      c.removing = false;
      // What it had in memory was dropped at removal: read its PENDING tasks again.
      c.cursor = 0;
      c.exhausted = false;
      ++c.added_generation;
      c.due_cursor_ms = 0;
      c.due_cursor_row = 0;
      ++c.due_generation;
      c.next_due_ms = 1;
      DIALER_LOG_INFO("campaign %s: back in the configuration", cs.id.c_str());
    }
    const steady_time now = clock_.steady_now();
    if (cs.calls_per_second) {
      if (c.bucket) {
        c.bucket->set_rate(cs.calls_per_second->count, cs.calls_per_second->per, cs.burst, now);
      } else {
        c.bucket.emplace(cs.calls_per_second->count, cs.calls_per_second->per, cs.burst);
      }
    } else {
      c.bucket.reset();
    }
    const std::string trunk = c.settings->trunk;
    *c.settings = cs;
    c.settings->trunk = trunk;
  }
  for (auto& [id, c] : campaigns_) {
    if (!wanted.contains(id) && !c->removing) {
      c->removing = true;
      c->ready.clear();
      c->retries = {};
      c->next_due_ms = 0;
      DIALER_LOG_INFO(
          "campaign %s: removed from the configuration; it stops dialing (its queued "
          "tasks stay PENDING in the state file), live calls finish",
          id.c_str());
    }
  }
  idle_reported_ = false;
  pump();
}

void dial_engine::arm_timer(steady_time wake) {
  if (wake == steady_time::max() || wake >= timer_at_) {
    return;
  }
  timer_at_ = wake;
  timer_.expires_at(wake);
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec) {
      return;
    }
    timer_at_ = steady_time::max();
    pump();
  });
}

bool dial_engine::campaign_complete(const campaign_state& c) const {
  const bool calls_done =
      !options_.await_call_end ||
      (c.progress.live == 0 && c.progress.settling == 0 && c.next_due_ms == 0 && !c.fetching_due);
  return c.ingest_done && c.exhausted && !c.fetching && c.ready.empty() && c.retries.empty() &&
         c.progress.in_flight == 0 && calls_done;
}

void dial_engine::check_idle() {
  if (idle_reported_ || !started_ || reserved_connections_ != 0) {
    return;
  }
  for (const auto& [id, c] : campaigns_) {
    if (c->progress.in_flight != 0) {
      return;
    }
    if (draining_ || c->removing || c->progress.cancelled) {
      continue;
    }
    // A pause by an operator waits for resume; one by the API (401/403/404) ends a one-shot run.
    if (c->progress.paused_by_operator || (!c->progress.paused && !campaign_complete(*c))) {
      return;
    }
  }
  idle_reported_ = true;
  // The timer stays armed: a service that is idle still has deadlines of live calls to keep
  // (their slots, their settling pulls); a one-shot run stops the loop in on_idle anyway.
  if (on_idle_) {
    boost::asio::post(io_, on_idle_);
  }
}

std::vector<campaign_progress> dial_engine::campaigns() const {
  std::vector<campaign_progress> out;
  const steady_time now = clock_.steady_now();
  for (const auto& [id, c] : campaigns_) {
    if (c->removing && c->progress.in_flight == 0 && c->progress.live == 0) {
      continue;
    }
    out.push_back(c->progress);
    campaign_progress& p = out.back();
    p.complete = campaign_complete(*c);
    p.trunk = c->settings->trunk;
    p.weight = c->settings->weight;
    p.rate_target =
        per_second(c->settings->calls_per_second.value_or(c->trunk->settings->calls_per_second));
    p.rate_achieved = c->achieved.per_second(now);
  }
  return out;
}

std::vector<trunk_progress> dial_engine::trunks() const {
  std::vector<trunk_progress> out;
  const steady_time now = clock_.steady_now();
  for (const auto& [name, t] : trunks_) {
    trunk_progress p;
    p.name = name;
    p.active = t->gate.in_use();
    p.capacity = t->settings->max_concurrent_calls;
    p.reserved = t->settings->reserved_slots;
    p.peak_active = t->gate.peak();
    p.holds = t->holds;
    p.held = now < t->hold_until;
    p.rate_target = per_second(t->settings->calls_per_second);
    p.rate_achieved = t->achieved.per_second(now);
    p.request_latency = t->request_latency;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace dialer
