#pragma once
// Test doubles for dial_engine's seams: an in-memory state_store and an http_connection_pool whose
// connections, readiness and answers the test controls. Both complete through boost::asio::post
// onto the test's io_context (never inline), as the real store and pool do. Header-only: every
// *_test.cpp is its own executable.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/http_client.hpp"
#include "core/state_store.hpp"
#include "core/time.hpp"

namespace dialer::test {

// The store's contract, kept exactly: fetch_pending pages PENDING rows by row_id; mark_dialing
// moves PENDING → DIALING only (done(false) otherwise); record moves DIALING → outcome only.
// Claims can be held until the test releases them (a slow group commit).
class fake_store final : public state_store {
 public:
  struct row {
    std::int64_t row_id = 0;
    std::string campaign;
    std::string task_id;
    std::string phone;
    std::string variables_json;
    task_state state = task_state::pending;
    int attempts = 0;
    std::int64_t not_before_ms = 0;
    std::int64_t claimed_at_ms = 0;
    std::int64_t started_at_ms = 0;
    int http_status = 0;
    std::string session_id;
    std::string error_class;
    std::string detail;
    std::int64_t redial_at_ms = 0;
    std::string end_reason;
    int pulls = 0;
    std::vector<attempt_outcome> outcomes;
  };
  struct claim {
    std::int64_t row_id;
    int attempt;
    std::function<void(claim_outcome)> done;
  };

  fake_store(boost::asio::io_context& io, const time_source& clock) : io_(io), clock_(clock) {}

  std::int64_t add_pending(const std::string& campaign, const std::string& task_id,
                           const std::string& phone, const std::string& variables_json = "") {
    row r;
    r.row_id = next_row_id_++;
    r.campaign = campaign;
    r.task_id = task_id;
    r.phone = phone;
    r.variables_json = variables_json.empty()
                           ? R"({"taskId":")" + task_id + R"(","campaignId":")" + campaign + R"("})"
                           : variables_json;
    rows_.emplace(r.row_id, r);
    return r.row_id;
  }
  // A call of an earlier run: STARTED at `started_at_ms`.
  std::int64_t add_started(const std::string& campaign, const std::string& task_id,
                           std::int64_t started_at_ms) {
    const std::int64_t id = add_pending(campaign, task_id, "+971500000000");
    row& r = rows_.at(id);
    r.state = task_state::started;
    r.attempts = 1;
    r.claimed_at_ms = started_at_ms;
    r.started_at_ms = started_at_ms;
    r.session_id = "earlier-" + task_id;
    return id;
  }

  [[nodiscard]] row& by_task(const std::string& task_id) {
    for (auto& [id, r] : rows_) {
      if (r.task_id == task_id) {
        return r;
      }
    }
    ADD_FAILURE() << "no task " << task_id;
    static row none;
    return none;
  }
  [[nodiscard]] const std::map<std::int64_t, row>& rows() const { return rows_; }
  [[nodiscard]] std::size_t count(task_state s) const {
    std::size_t n = 0;
    for (const auto& [id, r] : rows_) {
      n += r.state == s ? 1 : 0;
    }
    return n;
  }

  // While held, mark_dialing calls wait (uncommitted) until release_claims().
  void hold_claims(bool hold) { hold_claims_ = hold; }
  [[nodiscard]] const std::deque<claim>& held_claims() const { return held_; }
  // Commits the oldest `n` held claims (all by default), in order.
  void release_claims(std::size_t n = SIZE_MAX) {
    while (n-- > 0 && !held_.empty()) {
      claim c = std::move(held_.front());
      held_.pop_front();
      commit(std::move(c));
    }
  }

  [[nodiscard]] int fetch_pending_calls() const { return fetch_pending_calls_; }
  [[nodiscard]] int mark_dialing_calls() const { return mark_dialing_calls_; }
  [[nodiscard]] int contract_violations() const { return contract_violations_; }
  [[nodiscard]] int records_after_event() const { return records_after_event_; }

  // ---- state_store ----
  bool ingest_complete(const std::string&, const std::string&) override {
    ADD_FAILURE() << "the engine does not ingest";
    return false;
  }
  ingest_result ingest(const std::string&, std::span<const ingest_row>,
                       std::span<const ingest_reject>, bool) override {
    ADD_FAILURE() << "the engine does not ingest";
    return {};
  }
  void finish_ingest(const std::string&, const std::string&, std::int64_t) override {
    ADD_FAILURE() << "the engine does not ingest";
  }

  void fetch_pending(const std::string& campaign, std::int64_t after_row_id, std::size_t limit,
                     std::function<void(std::vector<dial_task>)> done) override {
    ++fetch_pending_calls_;
    std::vector<dial_task> out;
    for (auto it = rows_.upper_bound(after_row_id); it != rows_.end() && out.size() < limit; ++it) {
      const row& r = it->second;
      if (r.campaign == campaign && r.state == task_state::pending && r.redial_at_ms == 0) {
        out.push_back(
            dial_task{r.row_id, r.task_id, r.phone, r.variables_json, r.attempts, r.not_before_ms});
      }
    }
    boost::asio::post(
        io_, [done = std::move(done), out = std::move(out)]() mutable { done(std::move(out)); });
  }

  void fetch_active(const std::string& campaign, std::int64_t since_ms,
                    std::function<void(std::vector<active_call>)> done) override {
    std::vector<active_call> out;
    for (const auto& [id, r] : rows_) {
      if (r.campaign != campaign) {
        continue;
      }
      if (r.state == task_state::started || r.state == task_state::ended_unconfirmed) {
        out.push_back({r.row_id, r.started_at_ms, r.state, r.session_id, r.pulls});
      } else if (r.state == task_state::unknown && r.claimed_at_ms >= since_ms) {
        out.push_back({r.row_id, r.claimed_at_ms, r.state, "", 0});
      }
    }
    boost::asio::post(
        io_, [done = std::move(done), out = std::move(out)]() mutable { done(std::move(out)); });
  }

  void fetch_due(const std::string& campaign, std::int64_t after_ms, std::int64_t after_row_id,
                 std::int64_t up_to_ms, std::size_t limit,
                 std::function<void(due_page)> done) override {
    std::vector<const row*> due;
    due_page page;
    for (const auto& [id, r] : rows_) {
      if (r.campaign != campaign || r.state != task_state::pending || r.redial_at_ms == 0) {
        continue;
      }
      const bool after =
          r.redial_at_ms > after_ms || (r.redial_at_ms == after_ms && r.row_id > after_row_id);
      if (after && r.redial_at_ms <= up_to_ms) {
        due.push_back(&r);
      } else if (r.redial_at_ms > up_to_ms &&
                 (page.next_due_ms == 0 || r.redial_at_ms < page.next_due_ms)) {
        page.next_due_ms = r.redial_at_ms;
      }
    }
    std::sort(due.begin(), due.end(), [](const row* a, const row* b) {
      return std::pair(a->redial_at_ms, a->row_id) < std::pair(b->redial_at_ms, b->row_id);
    });
    for (const row* r : due) {
      if (page.tasks.size() >= limit) {
        break;
      }
      page.tasks.push_back(dial_task{r->row_id, r->task_id, r->phone, r->variables_json,
                                     r->attempts, r->redial_at_ms});
    }
    boost::asio::post(
        io_, [done = std::move(done), page = std::move(page)]() mutable { done(std::move(page)); });
  }

  // Applies the lifecycle's core rules (no caps); tests that need exact store semantics use
  // sqlite_store.
  void apply_session(session_update u, std::function<void(bool, update_outcome)> done) override {
    update_outcome o;
    o.session_id = u.session_id;
    row* r = nullptr;
    for (auto& [id, x] : rows_) {
      if (x.campaign == u.campaign_id && x.task_id == u.task_id) {
        r = &x;
      }
    }
    if (r == nullptr) {
      o.verdict = update_verdict::orphan;
    } else {
      o.row_id = r->row_id;
      o.campaign = r->campaign;
      o.previous = o.state = r->state;
      if (r->state == task_state::ended || (!u.ended && r->state == task_state::started)) {
        o.verdict = update_verdict::duplicate;
      } else {
        o.verdict = update_verdict::applied;
        r->session_id = u.session_id;
        if (!u.ended) {
          r->state = task_state::started;
        } else {
          const auto p = policies_.find(r->campaign);
          const bool redial = p != policies_.end() && r->attempts < p->second.max_attempts &&
                              std::find(p->second.redial_on.begin(), p->second.redial_on.end(),
                                        u.end_reason) != p->second.redial_on.end();
          r->end_reason = u.end_reason;
          o.end_reason = u.end_reason;
          r->state = redial ? task_state::pending : task_state::ended;
          r->redial_at_ms =
              redial ? to_unix_ms(clock_.system_now()) + p->second.redial_after_ms : 0;
          o.redial_at_ms = r->redial_at_ms;
        }
        o.state = r->state;
      }
    }
    ++applied_sessions_;
    applied_updates_.push_back(std::move(u));
    boost::asio::post(io_, [done = std::move(done), o = std::move(o)]() mutable {
      if (done) {
        done(true, std::move(o));
      }
    });
  }

  void mark_unconfirmed(std::int64_t row_id, const std::string& session_id,
                        std::function<void(bool)> done) override {
    auto it = rows_.find(row_id);
    const bool ok = it != rows_.end() && it->second.state == task_state::started &&
                    it->second.session_id == session_id;
    if (ok) {
      it->second.state = task_state::ended_unconfirmed;
    }
    post_bool(std::move(done), ok);
  }
  void record_pull(std::int64_t row_id, int pulls, std::string detail,
                   std::function<void(bool)> done) override {
    auto it = rows_.find(row_id);
    const bool ok = it != rows_.end() && it->second.state == task_state::ended_unconfirmed;
    if (ok) {
      it->second.pulls = pulls;
      it->second.detail = std::move(detail);
    }
    post_bool(std::move(done), ok);
  }
  void save_transcript(std::int64_t, std::string, std::function<void(bool)> done) override {
    post_bool(std::move(done), true);
  }
  void purge_transcripts(const std::string&, std::int64_t,
                         std::function<void(std::int64_t)> done) override {
    if (done) {
      boost::asio::post(io_, [done = std::move(done)] { done(0); });
    }
  }
  void fetch_summary(const std::string& campaign,
                     std::function<void(campaign_summary)> done) override {
    boost::asio::post(io_, [done = std::move(done), s = summary(campaign)]() mutable {
      done(std::move(s));
    });
  }
  void cancel_pending(const std::string& campaign,
                      std::function<void(std::int64_t)> done) override {
    std::int64_t n = 0;
    for (auto& [id, r] : rows_) {
      if (r.campaign == campaign && r.state == task_state::pending) {
        r.state = task_state::suppressed;
        r.error_class = "cancelled";
        ++n;
      }
    }
    if (done) {
      boost::asio::post(io_, [done = std::move(done), n] { done(n); });
    }
  }
  void requeue(const std::string& campaign, task_state from,
               std::function<void(std::int64_t)> done) override {
    std::int64_t n = 0;
    for (auto& [id, r] : rows_) {
      if (r.campaign == campaign && r.state == from) {
        r.state = task_state::pending;
        r.redial_at_ms = to_unix_ms(clock_.system_now());
        ++n;
      }
    }
    if (done) {
      boost::asio::post(io_, [done = std::move(done), n] { done(n); });
    }
  }
  void set_campaign_policy(const std::string& campaign, campaign_policy policy) override {
    policies_[campaign] = std::move(policy);
  }
  [[nodiscard]] int applied_sessions() const { return applied_sessions_; }
  // Every update passed to apply_session, in order (its source tells webhooks from pulls).
  [[nodiscard]] const std::vector<session_update>& applied_updates() const {
    return applied_updates_;
  }

  void mark_dialing(std::int64_t row_id, int attempt,
                    std::function<void(claim_outcome)> done) override {
    ++mark_dialing_calls_;
    claim c{row_id, attempt, std::move(done)};
    if (hold_claims_) {
      held_.push_back(std::move(c));
      return;
    }
    commit(std::move(c));
  }

  void record(attempt_outcome outcome, std::function<void(bool)> done) override {
    bool ok = false;
    auto it = rows_.find(outcome.row_id);
    if (it == rows_.end()) {
      ++contract_violations_;
      ADD_FAILURE() << "record(row " << outcome.row_id << ") of an unknown row";
    } else if (it->second.state != task_state::dialing || it->second.attempts != outcome.attempts) {
      // A webhook moved it first: the store leaves it alone (and says false).
      ++records_after_event_;
    } else {
      row& r = it->second;
      r.state = outcome.state;
      r.attempts = outcome.attempts;
      r.http_status = outcome.http_status;
      r.error_class = outcome.error_class;
      r.detail = outcome.detail;
      r.not_before_ms = outcome.not_before_ms;
      if (outcome.state == task_state::started) {
        r.session_id = outcome.session_id;
        r.started_at_ms = to_unix_ms(clock_.system_now());
      }
      r.outcomes.push_back(std::move(outcome));
      ok = true;
    }
    if (done) {
      boost::asio::post(io_, [done = std::move(done), ok] { done(ok); });
    }
  }

  void flush(std::function<void()> done) override { boost::asio::post(io_, std::move(done)); }

  campaign_summary summary(const std::string& campaign) override {
    campaign_summary s;
    for (const auto& [id, r] : rows_) {
      if (r.campaign == campaign) {
        ++s.by_state[static_cast<std::size_t>(r.state)];
      }
    }
    return s;
  }

 private:
  void commit(claim c) {
    claim_outcome o;
    auto it = rows_.find(c.row_id);
    if (it != rows_.end() && it->second.state == task_state::pending) {
      it->second.state = task_state::dialing;
      it->second.attempts = c.attempt;
      it->second.claimed_at_ms = to_unix_ms(clock_.system_now());
      it->second.redial_at_ms = 0;
      o.result = claim_result::claimed;
    }
    boost::asio::post(io_, [done = std::move(c.done), o] { done(o); });
  }
  void post_bool(std::function<void(bool)> done, bool ok) {
    if (done) {
      boost::asio::post(io_, [done = std::move(done), ok] { done(ok); });
    }
  }

  boost::asio::io_context& io_;
  const time_source& clock_;
  std::map<std::int64_t, row> rows_;
  std::int64_t next_row_id_ = 1;
  bool hold_claims_ = false;
  std::deque<claim> held_;
  int fetch_pending_calls_ = 0;
  int mark_dialing_calls_ = 0;
  int contract_violations_ = 0;
  int records_after_event_ = 0;
  int applied_sessions_ = 0;
  std::vector<session_update> applied_updates_;
  std::map<std::string, campaign_policy> policies_;
};

// A pool of `ready` idle connections. A written request occupies its connection until its answer
// is delivered; then the connection is idle again and when_ready waiters run (as in https_pool).
// Every written request is recorded with the manual steady instant of the write. Answers come from
// `responder`; when it returns nullopt the request stays outstanding until answer().
class fake_pool final : public http_connection_pool {
 public:
  struct written {
    steady_time at;
    http_request request;
    std::string idempotency_key;
    bool answered = false;
    response_handler done;
  };
  using responder_fn = std::function<std::optional<http_response>(const written&, std::size_t)>;

  fake_pool(boost::asio::io_context& io, const time_source& clock) : io_(io), clock_(clock) {}

  void set_ready(std::size_t n) { ready_ = n; }
  void set_responder(responder_fn f) { responder_ = std::move(f); }
  // Called for every request at the instant it is written (before the answer is scheduled).
  void on_write(std::function<void(const written&)> f) { on_write_ = std::move(f); }
  // Posts every when_ready waiter (a connection became ready).
  void fire_when_ready() {
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& cb : waiters) {
      boost::asio::post(io_, std::move(cb));
    }
  }
  // Answers the outstanding request `index`.
  void answer(std::size_t index, http_response r) {
    ASSERT_LT(index, writes_.size());
    ASSERT_FALSE(writes_[index].answered) << "request " << index << " answered twice";
    deliver(index, std::move(r));
  }
  [[nodiscard]] std::vector<std::size_t> outstanding() const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < writes_.size(); ++i) {
      if (!writes_[i].answered) {
        out.push_back(i);
      }
    }
    return out;
  }

  [[nodiscard]] const std::vector<written>& writes() const { return writes_; }
  [[nodiscard]] std::size_t waiters() const { return waiters_.size(); }
  [[nodiscard]] int when_ready_calls() const { return when_ready_calls_; }
  [[nodiscard]] std::size_t queued_sends() const { return queued_.size(); }

  // ---- http_connection_pool ----
  std::size_t ready_count() const override { return ready_; }
  void when_ready(std::function<void()> cb) override {
    ++when_ready_calls_;
    if (ready_ > 0) {
      boost::asio::post(io_, std::move(cb));
      return;
    }
    waiters_.push_back(std::move(cb));
  }
  bool try_send_now(http_request req, response_handler done) override {
    if (ready_ == 0) {
      return false;
    }
    write(std::move(req), std::move(done));
    return true;
  }
  void send(http_request req, response_handler done) override {
    if (req.method == "GET") {
      // Session pulls: recorded apart from calls/start writes, answered at once (default 404),
      // and they take no connection, so the pacing tests see only dials.
      gets_.push_back(req.target);
      http_response r = get_responder_ ? get_responder_(req) : http_response{};
      if (!get_responder_) {
        r.status = 404;
      }
      boost::asio::post(
          io_, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
      return;
    }
    queued_.emplace_back(std::move(req), std::move(done));
    dispatch();
  }
  void set_get_responder(std::function<http_response(const http_request&)> f) {
    get_responder_ = std::move(f);
  }
  [[nodiscard]] const std::vector<std::string>& gets() const { return gets_; }
  void warm_up(std::size_t, std::function<void(std::size_t)> done) override {
    boost::asio::post(io_, [done = std::move(done), n = ready_] { done(n); });
  }
  void shutdown() override {}

 private:
  static std::string header(const http_request& r, std::string_view name) {
    for (const auto& h : r.headers) {
      if (h.name == name) {
        return h.value;
      }
    }
    return {};
  }

  std::vector<std::string> gets_;
  std::function<http_response(const http_request&)> get_responder_;

  void write(http_request req, response_handler done) {
    --ready_;
    written w{clock_.steady_now(), std::move(req), {}, false, std::move(done)};
    w.idempotency_key = header(w.request, "Idempotency-Key");
    writes_.push_back(std::move(w));
    const std::size_t index = writes_.size() - 1;
    if (on_write_) {
      on_write_(writes_[index]);
    }
    if (responder_) {
      if (auto r = responder_(writes_[index], index)) {
        deliver(index, std::move(*r));
      }
    }
  }

  void deliver(std::size_t index, http_response r) {
    written& w = writes_[index];
    w.answered = true;
    ++ready_;  // the connection is idle again
    boost::asio::post(
        io_, [done = std::move(w.done), r = std::move(r)]() mutable { done(std::move(r)); });
    dispatch();
  }

  void dispatch() {
    while (ready_ > 0 && !queued_.empty()) {
      auto [req, done] = std::move(queued_.front());
      queued_.pop_front();
      write(std::move(req), std::move(done));
    }
    if (ready_ > 0) {
      fire_when_ready();
    }
  }

  boost::asio::io_context& io_;
  const time_source& clock_;
  std::size_t ready_ = 0;
  std::vector<written> writes_;
  std::deque<std::pair<http_request, response_handler>> queued_;
  std::vector<std::function<void()>> waiters_;
  responder_fn responder_;
  std::function<void(const written&)> on_write_;
  int when_ready_calls_ = 0;
};

}  // namespace dialer::test
