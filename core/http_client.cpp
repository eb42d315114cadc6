#include "core/http_client.hpp"

namespace dialer {

std::string_view to_string(transport_error e) {
  switch (e) {
    case transport_error::none: return "none";
    case transport_error::connect_failed: return "connect_failed";
    case transport_error::tls_failed: return "tls_failed";
    case transport_error::reset_before_send: return "reset_before_send";
    case transport_error::timeout_before_send: return "timeout_before_send";
    case transport_error::reset_after_send: return "reset_after_send";
    case transport_error::timeout_after_send: return "timeout_after_send";
    case transport_error::protocol_error: return "protocol_error";
    case transport_error::shutdown: return "shutdown";
  }
  return "unknown";
}

bool maybe_delivered(transport_error e) {
  return e == transport_error::reset_after_send || e == transport_error::timeout_after_send ||
         e == transport_error::protocol_error;
}

}  // namespace dialer
