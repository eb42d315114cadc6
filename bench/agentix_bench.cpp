// The per-call work of the Agentix client: the session variables built at ingest, the calls/start
// request built when a call is sent, and the sessionId read from its 2xx answer. Inputs are what
// the end-to-end benchmark and a typical CRM campaign send (scripts/demo.sh's mapping).
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/agentix_client.hpp"
#include "core/json.hpp"

namespace dialer {
namespace {

// A typical campaign: two CSV columns and one static value, besides taskId and campaignId.
const string_pairs& columns() {
  static const string_pairs c = {{"crmContactId", "C-500123"}, {"first_name", "Customer 123"}};
  return c;
}
const string_pairs& statics() {
  static const string_pairs s = {{"offer", "gold"}};
  return s;
}

void BM_build_variables_json(benchmark::State& state) {
  std::int64_t bytes = 0;
  for (auto _ : state) {
    std::string json = build_variables_json("T-000123", "spring-renewals", columns(), statics());
    bytes += static_cast<std::int64_t>(json.size());
    benchmark::DoNotOptimize(json.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_build_variables_json);

// What dial_engine::send does per call: the Idempotency-Key, then the whole request (target,
// four headers, the JSON body around the stored variables).
void BM_build_start_call_request(benchmark::State& state) {
  const std::string variables =
      build_variables_json("T-000123", "spring-renewals", columns(), statics());
  const std::string api_key = "pk_live_8f3a2b7c9d1e4f60a5b8c7d2e1f0a9b8";
  std::int64_t bytes = 0;
  int attempt = 0;
  for (auto _ : state) {
    const std::string key = make_idempotency_key("spring-renewals", "T-000123", ++attempt & 3);
    start_call_spec spec;
    spec.phone_number_id = "6f1c2a9e-0000-4000-8000-000000000001";
    spec.agent_id = "d796c919-7ef3-413a-8bf1-351b6442953a";
    spec.to_phone_number = "+971501234567";
    spec.max_duration_seconds = 600;
    spec.variables_json = variables;
    spec.idempotency_key = key;
    http_request req = build_start_call_request("", api_key, spec);
    bytes += static_cast<std::int64_t>(req.body.size());
    benchmark::DoNotOptimize(req.body.data());
    benchmark::DoNotOptimize(req.target.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_build_start_call_request);

// agentix-sim's 201 answer, as the API documents it: {"sessionId":"<uuid>","status":"queued"}.
void BM_parse_session_id(benchmark::State& state) {
  const std::string_view body =
      R"({"sessionId":"3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b","status":"queued"})";
  for (auto _ : state) {
    auto id = parse_session_id(body);
    if (!id) {
      state.SkipWithError("no sessionId");
      break;
    }
    benchmark::DoNotOptimize(id->data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_parse_session_id);

// The tolerant form: the id inside a "data" object, after other fields.
void BM_parse_session_id_nested(benchmark::State& state) {
  const std::string_view body =
      R"({"status":"queued","requestId":"req_01HZX3","data":{"session_id":)"
      R"("3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b","createdAt":"2025-05-01T10:00:00Z"}})";
  for (auto _ : state) {
    auto id = parse_session_id(body);
    if (!id) {
      state.SkipWithError("no sessionId");
      break;
    }
    benchmark::DoNotOptimize(id->data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_parse_session_id_nested);

// Values as CRM exports hold them. Arg 0: plain ASCII (names, ids, notes); arg 1: UTF-8 heavy
// (Arabic, accented Latin, CJK, an emoji), which takes the multi-byte validation path; arg 2:
// ASCII that needs escaping (quotes, backslashes, tabs, newlines).
const std::array<std::string, 3>& json_inputs() {
  static const std::array<std::string, 3> inputs = {
      "Fatima Al Mansouri, Dubai Marina, renewal due next month (gold tier)",
      "ليلى المنصوري، دبي مارينا — José Müller 東京都 🙂 تجديد الاشتراك الشهر "
      "القادم",
      "she said \"call after 5\"\tC:\\crm\\export\nline two\r\n\"quoted\"",
  };
  return inputs;
}

void BM_append_json_string(benchmark::State& state) {
  const std::string& text = json_inputs()[static_cast<std::size_t>(state.range(0))];
  std::string out;
  out.reserve(4 * text.size() + 2);
  for (auto _ : state) {
    out.clear();
    append_json_string(out, text);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_append_json_string)->ArgName("input")->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace dialer
