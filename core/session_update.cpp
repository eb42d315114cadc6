#include "core/session_update.hpp"

namespace dialer {

session_update to_session_update(session_event event, std::string raw, std::string_view source) {
  session_update u;
  u.ended = event.kind == session_event_kind::ended;
  u.session_id = std::move(event.session_id);
  u.campaign_id = std::move(event.campaign_id);
  u.task_id = std::move(event.task_id);
  u.event_ms = event.timestamp_ms;
  u.end_reason = std::move(event.end_reason);
  u.duration_seconds = event.duration_seconds;
  u.intent = std::move(event.intent);
  u.resolution = std::move(event.resolution);
  u.sentiment = std::move(event.sentiment);
  u.analysis_data_json = std::move(event.analysis_data_json);
  // A pulled document has no event name; name it after what it says, so the events table
  // tells pulls and webhooks apart.
  u.event_name = !event.event_name.empty() ? std::move(event.event_name)
                 : u.ended                 ? "session.ended"
                                           : "session.created";
  u.source = std::string(source);
  u.raw = std::move(raw);
  return u;
}

}  // namespace dialer
