#pragma once
// Every placed call, kept for the session endpoints. Session ids are UUIDv4-formatted: 64 random
// bits (version nibble 4) then the variant bits and the call's index scrambled by an invertible
// multiply-add, so ids are unique by construction, look random, and a lookup is an index into
// a deque plus a check of the random half (no hash map). Variable-length fields live in an arena.
// Not thread-safe: the simulator calls it under its lock.
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "sim/sim_time.hpp"
#include "sim/string_arena.hpp"

namespace dialer::sim {

struct session_record {
  std::uint64_t random_half = 0;
  steady_time placed{};
  system_time placed_wall{};
  nanoseconds duration{0};
  bool hit_max_duration = false;  // the drawn duration was cut to max_duration_seconds
  std::uint32_t phone_number_index = 0;
  std::string_view agent_id;
  std::string_view to_phone_number;
  std::string_view session_variables_json;

  [[nodiscard]] bool ended(steady_time now) const { return now >= placed + duration; }
};

class session_store {
 public:
  static constexpr std::size_t id_length = 36;

  // `salt` (a random draw) offsets the scrambled index so that the first ids do not show it.
  explicit session_store(std::uint64_t salt = 0) : salt_(salt) {}

  // Stores the record (copying its strings into the arena; random_half is taken as given) and
  // writes its session id into `id_out` (appended).
  void add(session_record record, std::string& id_out);
  // nullptr if `id` is not a session this store issued.
  [[nodiscard]] const session_record* find(std::string_view id) const;
  [[nodiscard]] std::size_t size() const { return records_.size(); }

 private:
  std::uint64_t salt_;
  std::deque<session_record> records_;
  string_arena arena_;
};

// The session document of GET /api/v1/chat/sessions/{id}: the session.ended payload of
// agentix-api.md without "event", plus "status" ("active" or "ended"). An active session has no
// durationSeconds, endReason or analysis yet.
void append_session_json(std::string& out, std::string_view session_id,
                         std::string_view phone_number_id, const session_record& s,
                         steady_time now);
// {"items":[…]}: the fake transcript turns whose time has come by `now`.
void append_messages_json(std::string& out, const session_record& s, steady_time now);

}  // namespace dialer::sim
