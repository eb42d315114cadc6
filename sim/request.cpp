#include "sim/request.hpp"

#include <simdjson.h>

#include "sim/json_text.hpp"

namespace dialer::sim {

namespace {

constexpr std::string_view api_prefix = "/api/v1/";
constexpr std::string_view phone_numbers = "phone-numbers";
constexpr std::string_view sessions = "chat/sessions/";

bool consume(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) {
    return false;
  }
  s.remove_prefix(prefix.size());
  return true;
}

route_match only(route_kind kind, std::string_view method, std::string_view allowed,
                 route_match m) {
  if (method == allowed) {
    m.kind = kind;
  } else {
    m.kind = route_kind::method_not_allowed;
    m.allow = allowed;
  }
  return m;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

request_error unprocessable(std::string field, std::string message) {
  return request_error{422, std::move(field), std::move(message)};
}

}  // namespace

route_match match_route(std::string_view method, std::string_view target) {
  route_match m;
  std::string_view path = target;
  if (const auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    m.query = target.substr(q + 1);
  }
  if (path.substr(0, 6) == "/_sim/") {
    m.internal = true;
    if (path == "/_sim/stats") {
      return only(route_kind::sim_stats, method, "GET", m);
    }
    return m;
  }
  if (!consume(path, api_prefix)) {
    return m;
  }
  if (consume(path, phone_numbers)) {
    if (path.empty()) {
      return only(route_kind::list_phone_numbers, method, "GET", m);
    }
    // "/{id}/calls/start"
    constexpr std::string_view suffix = "/calls/start";
    if (path.front() != '/' || path.size() <= suffix.size() + 1 ||
        path.substr(path.size() - suffix.size()) != suffix) {
      return m;
    }
    const std::string_view id = path.substr(1, path.size() - 1 - suffix.size());
    if (id.find('/') != std::string_view::npos) {
      return m;
    }
    m.id = id;
    return only(route_kind::start_call, method, "POST", m);
  }
  if (consume(path, sessions)) {
    constexpr std::string_view messages = "/messages";
    route_kind kind = route_kind::get_session;
    if (path.size() > messages.size() && path.substr(path.size() - messages.size()) == messages) {
      path.remove_suffix(messages.size());
      kind = route_kind::get_session_messages;
    }
    if (path.empty() || path.find('/') != std::string_view::npos) {
      return m;
    }
    m.id = path;
    return only(kind, method, "GET", m);
  }
  return m;
}

std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

bool is_json_content_type(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) {
    media.remove_prefix(1);
  }
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) {
    media.remove_suffix(1);
  }
  constexpr std::string_view json = "application/json";
  if (media.size() != json.size()) {
    return false;
  }
  for (std::size_t i = 0; i < json.size(); ++i) {
    if (lower(media[i]) != json[i]) {
      return false;
    }
  }
  return true;
}

bool is_e164(std::string_view s) {
  if (s.size() < 9 || s.size() > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9') {
    return false;
  }
  for (std::size_t i = 2; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
  }
  return true;
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') {
        return false;
      }
    } else if (!is_hex(s[i])) {
      return false;
    }
  }
  return true;
}

result<call_start_body, request_error> parse_call_start(std::string_view body) {
  // The DOM parser validates the whole document (on-demand would skip the values of fields we do
  // not read), so any malformed body is a 400 as a real JSON server would answer.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) {
    return failure{request_error{400, {}, "the body is not valid JSON"}};
  }
  simdjson::dom::object root;
  if (doc.get_object().get(root) != simdjson::SUCCESS) {
    return failure{request_error{400, {}, "the body must be a JSON object"}};
  }
  // Last occurrence wins for a repeated key, as in JavaScript's JSON.parse.
  simdjson::dom::element to_phone;
  simdjson::dom::element agent;
  simdjson::dom::element max_duration;
  simdjson::dom::element variables;
  bool has_to_phone = false;
  bool has_agent = false;
  bool has_max_duration = false;
  bool has_variables = false;
  for (const simdjson::dom::key_value_pair field : root) {
    if (field.key == "to_phone_number") {
      to_phone = field.value;
      has_to_phone = true;
    } else if (field.key == "agent_id") {
      agent = field.value;
      has_agent = true;
    } else if (field.key == "max_duration_seconds") {
      max_duration = field.value;
      has_max_duration = true;
    } else if (field.key == "session_variables") {
      variables = field.value;
      has_variables = true;
    }
  }

  call_start_body out;
  std::string_view text;
  if (!has_to_phone) {
    return failure{unprocessable("to_phone_number", "to_phone_number is required")};
  }
  if (to_phone.get_string().get(text) != simdjson::SUCCESS || !is_e164(text)) {
    return failure{unprocessable("to_phone_number",
                                 "to_phone_number must be an E.164 number: + then 8 to 15 digits")};
  }
  out.to_phone_number = text;

  if (!has_agent) {
    return failure{unprocessable("agent_id", "agent_id is required")};
  }
  if (agent.get_string().get(text) != simdjson::SUCCESS || !is_uuid(text)) {
    return failure{unprocessable("agent_id", "agent_id must be a UUID")};
  }
  out.agent_id = text;

  if (!has_max_duration) {
    return failure{unprocessable("max_duration_seconds", "max_duration_seconds is required")};
  }
  // An integer in the JSON sense: 600 passes, 600.0, "600" and 6e2 do not.
  std::int64_t seconds_value = 0;
  if (!max_duration.is_int64() ||
      max_duration.get_int64().get(seconds_value) != simdjson::SUCCESS || seconds_value <= 0) {
    return failure{
        unprocessable("max_duration_seconds", "max_duration_seconds must be a positive integer")};
  }
  out.max_duration_seconds = seconds_value;

  if (!has_variables) {
    return failure{unprocessable("session_variables", "session_variables is required")};
  }
  simdjson::dom::object vars;
  if (variables.get_object().get(vars) != simdjson::SUCCESS) {
    return failure{
        unprocessable("session_variables", "session_variables must be an object of string values")};
  }
  bool has_task = false;
  bool has_campaign = false;
  out.session_variables_json.push_back('{');
  for (const simdjson::dom::key_value_pair field : vars) {
    if (field.value.get_string().get(text) != simdjson::SUCCESS) {
      std::string name = "session_variables." + std::string(field.key);
      std::string message = name + " must be a string";
      return failure{unprocessable(std::move(name), std::move(message))};
    }
    if (field.key == "taskId") {
      out.task_id = text;
      has_task = true;
    } else if (field.key == "campaignId") {
      out.campaign_id = text;
      has_campaign = true;
    }
    if (out.session_variables_json.size() > 1) {
      out.session_variables_json.push_back(',');
    }
    append_json_string(out.session_variables_json, field.key);
    out.session_variables_json.push_back(':');
    append_json_string(out.session_variables_json, text);
  }
  out.session_variables_json.push_back('}');
  if (!has_task) {
    return failure{
        unprocessable("session_variables.taskId", "session_variables.taskId is required")};
  }
  if (!has_campaign) {
    return failure{
        unprocessable("session_variables.campaignId", "session_variables.campaignId is required")};
  }
  return out;
}

void append_error_json(std::string& out, std::string_view message, std::string_view field) {
  out.append("{\"error\":");
  append_json_string(out, message);
  if (!field.empty()) {
    out.append(",\"field\":");
    append_json_string(out, field);
  }
  out.push_back('}');
}

}  // namespace dialer::sim
