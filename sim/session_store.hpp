#pragma once
// Every placed call, kept for the session endpoints. Session ids are UUIDv4-formatted: 64 random
// bits (version nibble 4) then the variant bits and the call's index scrambled by an invertible
// multiply-add, so ids are unique by construction, look random, and a lookup is an index into
// a deque plus a check of the random half (no hash map). Variable-length fields live in an arena.
// Not thread-safe: the simulator calls it under its lock. A stored record never moves and never
// changes, so a reference from add() may be read on another thread without the lock once the
// hand-over itself is synchronised (the webhook queue's mutex does that).
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "sim/end_reason.hpp"
#include "sim/sim_time.hpp"
#include "sim/string_arena.hpp"

namespace dialer::sim {

struct session_record {
  std::uint64_t random_half = 0;
  steady_time placed{};
  system_time placed_wall{};
  nanoseconds duration{0};
  // Fixed at placement, so the session document and the session.ended webhook agree;
  // max_duration when the drawn duration was cut to max_duration_seconds.
  end_reason reason = end_reason::completed;
  std::uint32_t phone_number_index = 0;
  std::string_view agent_id;
  std::string_view to_phone_number;
  std::string_view session_variables_json;
  std::string_view task_id;  // session_variables' taskId and campaignId, for the webhook log
  std::string_view campaign_id;

  [[nodiscard]] bool ended(steady_time now) const { return now >= placed + duration; }
};

class session_store {
 public:
  static constexpr std::size_t id_length = 36;

  // `salt` (a random draw) offsets the scrambled index so that the first ids do not show it.
  explicit session_store(std::uint64_t salt = 0) : salt_(salt) {}

  // Stores the record (copying its strings into the arena; random_half is taken as given, with
  // its version nibble set), appends its session id to `id_out`, and returns the stored record,
  // which stays valid and unchanged for the store's lifetime. Its index is size() - 1.
  const session_record& add(session_record record, std::string& id_out);
  // nullptr if `id` is not a session this store issued.
  [[nodiscard]] const session_record* find(std::string_view id) const;
  [[nodiscard]] std::size_t size() const { return records_.size(); }
  // The id of the record stored at `index` with `random_half`: reads only the immutable salt, so
  // it may be called from any thread.
  void append_id(std::uint64_t index, std::uint64_t random_half, std::string& out) const;

 private:
  std::uint64_t salt_;
  std::deque<session_record> records_;
  string_arena arena_;
};

enum class session_event : std::uint8_t { created, ended };
[[nodiscard]] std::string_view to_string(session_event e);  // "session.created", "session.ended"

// The fake post-call analysis, a function of the session's random bits and end reason. Calls
// nobody answered (no_answer, busy, failed) get intent "", resolution "unresolved", sentiment
// "neutral" and no data.
struct session_analysis {
  std::string_view intent;
  std::string_view resolution;
  std::string_view sentiment;
  bool has_data = false;  // data: {"callback_requested": "true"|"false"}
  bool callback_requested = false;
};
[[nodiscard]] session_analysis analysis_of(const session_record& s);
// durationSeconds: the duration rounded to the nearest second.
[[nodiscard]] std::int64_t duration_seconds(const session_record& s);

// The session document of GET /api/v1/chat/sessions/{id}: the session.ended payload of
// agentix-api.md without "event", plus "status" ("active" or "ended"). An active session has no
// durationSeconds, endReason or analysis yet.
void append_session_json(std::string& out, std::string_view session_id,
                         std::string_view phone_number_id, const session_record& s,
                         steady_time now);
// The webhook payload of agentix-api.md section 4: "event" first, then the same fields as the
// session document without "status" (built by the same code, so the two agree byte for byte on
// every shared field). session.created carries the start as its timestamp and no
// durationSeconds, endReason or analysis.
void append_event_json(std::string& out, session_event event, std::string_view session_id,
                       std::string_view phone_number_id, const session_record& s);
// {"items":[…]}: the fake transcript turns whose time has come by `now`.
void append_messages_json(std::string& out, const session_record& s, steady_time now);

}  // namespace dialer::sim
