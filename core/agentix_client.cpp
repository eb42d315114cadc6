#include "core/agentix_client.hpp"

#include <simdjson.h>

#include <charconv>

#include "core/json.hpp"

namespace dialer {
namespace {

constexpr char hex_digits[] = "0123456789ABCDEF";

void append_percent(std::string& out, unsigned char c) {
  out.push_back('%');
  out.push_back(hex_digits[c >> 4]);
  out.push_back(hex_digits[c & 0xF]);
}

}  // namespace

std::string build_start_call_body(const start_call_spec& spec) {
  std::string body;
  body.reserve(96 + spec.to_phone_number.size() + spec.agent_id.size() +
               spec.variables_json.size());
  body.append("{\"to_phone_number\":");
  append_json_string(body, spec.to_phone_number);
  body.append(",\"agent_id\":");
  append_json_string(body, spec.agent_id);
  body.append(",\"max_duration_seconds\":");
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, spec.max_duration_seconds);
  body.append(digits, end);
  body.append(",\"session_variables\":");
  body.append(spec.variables_json);
  body.push_back('}');
  return body;
}

http_request build_start_call_request(std::string_view base_path, std::string_view api_key,
                                      const start_call_spec& spec) {
  http_request req;
  req.method = "POST";
  req.target.reserve(base_path.size() + 64 + spec.phone_number_id.size());
  req.target.append(base_path);
  req.target.append("/api/v1/phone-numbers/");
  req.target.append(encode_path_segment(spec.phone_number_id));
  req.target.append("/calls/start");
  req.headers.reserve(4);
  req.headers.push_back({"x-api-key", std::string(api_key)});
  req.headers.push_back({"Content-Type", "application/json"});
  req.headers.push_back({"Accept", "application/json"});
  req.headers.push_back({"Idempotency-Key", std::string(spec.idempotency_key)});
  req.body = build_start_call_body(spec);
  return req;
}

http_request build_session_request(std::string_view base_path, std::string_view api_key,
                                   std::string_view session_id, bool messages) {
  http_request req;
  req.method = "GET";
  req.target.reserve(base_path.size() + 64 + session_id.size());
  req.target.append(base_path);
  req.target.append("/api/v1/chat/sessions/");
  req.target.append(encode_path_segment(session_id));
  if (messages) {
    req.target.append("/messages");
  }
  req.headers.push_back({"x-api-key", std::string(api_key)});
  req.headers.push_back({"Accept", "application/json"});
  return req;
}

std::string make_idempotency_key(std::string_view campaign, std::string_view task_id, int attempt) {
  std::string key;
  key.reserve(campaign.size() + task_id.size() + 8);
  for (std::string_view part : {campaign, std::string_view(":"), task_id}) {
    for (char ch : part) {
      const auto c = static_cast<unsigned char>(ch);
      if (c <= 0x20 || c >= 0x7F || c == '%') {
        append_percent(key, c);
      } else {
        key.push_back(ch);
      }
    }
  }
  key.push_back(':');
  key.append(std::to_string(attempt));
  return key;
}

std::string encode_path_segment(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (char ch : segment) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      append_percent(out, c);
    }
  }
  return out;
}

namespace {

// Looks into a "data" object one level deep only: recursion on untrusted input is bounded.
std::optional<std::string> session_id_in(simdjson::ondemand::object object, bool top_level) {
  // On-demand objects are read forward once: look at every field and keep what we recognise.
  std::optional<std::string> found;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    if (key == "sessionId" || key == "session_id") {
      std::string_view id;
      if (field.value().get_string().get(id) == simdjson::SUCCESS && !id.empty()) {
        found = std::string(id);
      }
    } else if (key == "data" && top_level && !found) {
      simdjson::ondemand::object inner;
      if (field.value().get_object().get(inner) == simdjson::SUCCESS) {
        found = session_id_in(inner, false);
      }
    }
  }
  return found;
}

}  // namespace

std::optional<std::string> parse_session_id(std::string_view body) {
  thread_local simdjson::ondemand::parser parser;
  thread_local std::string padded;
  padded.assign(body);
  padded.resize(body.size() + simdjson::SIMDJSON_PADDING);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded.data(), body.size(), padded.size()).get(doc) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  simdjson::ondemand::object object;
  if (doc.get_object().get(object) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  try {
    return session_id_in(object, true);
  } catch (const simdjson::simdjson_error&) {
    return std::nullopt;
  }
}

}  // namespace dialer
