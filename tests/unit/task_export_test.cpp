// dialer_core is built with simdjson's interface definition SIMDJSON_THREADS_ENABLED=1, which
// changes the layout of dom::parser; this file does not link simdjson::simdjson itself, so
// without the same definition its inline copies of the parser's functions would differ from the
// library's, and the linker may keep either (it kept ours, and the export crashed).
#ifndef SIMDJSON_THREADS_ENABLED
#define SIMDJSON_THREADS_ENABLED 1
#endif

#include "core/task_export.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/csv_reader.hpp"
#include "core/json.hpp"
#include "core/sqlite_store.hpp"
#include "core/time.hpp"
#include "daemon/export_command.hpp"
#include "tests/unit/store_fixture.hpp"

namespace dialer {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The export tests write through it: writable.
class raw_db : public test::raw_db {
 public:
  explicit raw_db(const fs::path& path) : test::raw_db(path, true) {}
};

// 2026-11-28T10:15:02.123Z
constexpr std::int64_t t0 = 1795860902123;

constexpr const char* spring_header[] = {
    "taskId",    "crmContactId", "first_name", "note",           "list",        "phone",
    "state",     "attempts",     "sessionId",  "lastHttpStatus", "errorClass",  "detail",
    "createdAt", "dialedAt",     "startedAt",  "endedAt",        "endReason",   "durationSeconds",
    "intent",    "resolution",   "sentiment",  "data",           "resultSource"};

constexpr const char* analysis_text = "{\"score\": 5,\n  \"tags\": [\"a\", \"b\"]}";

ingest_row task(std::int64_t line, const std::string& id, const std::string& phone,
                const string_pairs& columns, const std::string& campaign = "spring") {
  return {line, id, phone, build_variables_json(id, campaign, columns, {{"list", "S1"}})};
}

struct csv_table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

csv_table parse_csv(const std::string& text) {
  csv_table t;
  csv_reader reader(std::string_view(text), csv_options{});
  t.header = reader.header();
  csv_record record;
  while (reader.next(record)) {
    EXPECT_EQ(record.reject, "") << record.reject_detail << " at line " << record.line;
    t.rows.emplace_back(record.fields.begin(), record.fields.end());
  }
  return t;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

int run(std::vector<std::string> args, std::string& out, std::string& err) {
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  std::ostringstream o;
  std::ostringstream e;
  const int rc = run_export(static_cast<int>(argv.size()), argv.data(), o, e);
  out = o.str();
  err = e.str();
  return rc;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class task_export_test : public test::store_fixture {
 protected:
  task_export_test() : store_fixture("task_export_test") {
    clock_.set_system(system_time(milliseconds(t0)));
  }

  void claim(sqlite_store& s, std::int64_t row_id) {
    std::optional<claim_result> got;
    s.mark_dialing(row_id, 1, [&](claim_outcome o) { got = o.result; });
    ASSERT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    ASSERT_EQ(*got, claim_result::claimed);
  }

  void record(sqlite_store& s, attempt_outcome o) {
    std::optional<bool> got;
    s.record(std::move(o), [&](bool ok) { got = ok; });
    ASSERT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    ASSERT_TRUE(*got);
  }

  void apply(sqlite_store& s, session_update u, task_state expected) {
    std::optional<update_outcome> got;
    s.apply_session(std::move(u), [&](bool ok, update_outcome o) {
      EXPECT_TRUE(ok);
      got = std::move(o);
    });
    ASSERT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    ASSERT_EQ(got->verdict, update_verdict::applied) << got->reason;
    ASSERT_EQ(got->state, expected);
  }

  static session_update ended(const std::string& task_id, const std::string& session) {
    session_update u;
    u.ended = true;
    u.session_id = session;
    u.campaign_id = "spring";
    u.task_id = task_id;
    u.event_ms = t0 + 64000;
    u.end_reason = "completed";
    u.duration_seconds = 42;
    u.intent = "renew";
    u.resolution = "+1 callback";
    u.sentiment = "positive";
    u.analysis_data_json = analysis_text;
    u.event_name = "session.ended";
    u.source = "webhook";
    u.raw = "{}";
    return u;
  }

  // Rows 1, 2 (spring), 3 (other), 4, 5 (spring): the other campaign's row lies inside spring's
  // row range. T-1 ENDED with analysis, T-2 FAILED, @T-3 PENDING, T-4 SUPPRESSED (T-1's number).
  void build(sqlite_store& s) {
    const std::vector<ingest_row> first = {
        task(2, "T-1", "+971501000001",
             {{"crmContactId", "C-1"}, {"first_name", "Layla"}, {"note", "plain"}}),
        task(3, "T-2", "+971501000002",
             {{"crmContactId", "=HYPERLINK(\"http://evil\",\"x\")"},
              {"first_name", "Omar, Jr."},
              {"note", "line one\nsaid \"hi\""}})};
    ASSERT_EQ(s.ingest("spring", first, {}, true).pending, 2);
    const std::vector<ingest_row> other = {
        task(2, "O-1", "+971501000009", {{"otherKey", "x"}}, "other")};
    ASSERT_EQ(s.ingest("other", other, {}, true).pending, 1);
    const std::vector<ingest_row> second = {
        task(4, "@T-3", "+971501000003",
             {{"crmContactId", "C-3"}, {"first_name", ""}, {"note", "-5"}}),
        task(5, "T-4", "+971501000001",
             {{"crmContactId", "C-4"}, {"first_name", "Mona"}, {"note", "dup"}})};
    const auto r = s.ingest("spring", second, {}, true);
    ASSERT_EQ(r.pending, 1);
    ASSERT_EQ(r.duplicate_phone, 1);
    s.finish_ingest("spring", "fp", 4);
    s.finish_ingest("other", "fp", 1);

    clock_.advance(1500ms);
    claim(s, 1);
    claim(s, 2);
    clock_.advance(1500ms);
    attempt_outcome started;
    started.row_id = 1;
    started.state = task_state::started;
    started.attempts = 1;
    started.http_status = 201;
    started.session_id = "s-1";
    record(s, started);
    attempt_outcome failed;
    failed.row_id = 2;
    failed.state = task_state::failed;
    failed.attempts = 1;
    failed.http_status = 400;
    failed.error_class = "invalid_request";
    failed.detail = "-bad number\r\n\"+971\" rejected";
    record(s, failed);
    clock_.advance(62000ms);
    apply(s, ended("T-1", "s-1"), task_state::ended);
  }

  std::string export_text(export_format format, std::vector<task_state> states = {},
                          const std::string& campaign = "spring") {
    export_options o;
    o.state_path = db_path();
    o.campaign = campaign;
    o.format = format;
    o.states = std::move(states);
    std::ostringstream out;
    auto r = export_tasks(o, out);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return out.str();
  }

  export_error export_error_of(const std::string& campaign) {
    export_options o;
    o.state_path = db_path();
    o.campaign = campaign;
    std::ostringstream out;
    auto r = export_tasks(o, out);
    EXPECT_FALSE(r.ok());
    return r.ok() ? export_error{} : r.error();
  }
};

const std::vector<std::vector<std::string>> spring_rows = {
    {"T-1",
     "C-1",
     "Layla",
     "plain",
     "S1",
     "+971501000001",
     "ended",
     "1",
     "s-1",
     "201",
     "",
     "",
     "2026-11-28T10:15:02.123Z",
     "2026-11-28T10:15:03.623Z",
     "2026-11-28T10:15:05.123Z",
     "2026-11-28T10:16:06.123Z",
     "completed",
     "42",
     "renew",
     "'+1 callback",
     "positive",
     analysis_text,
     "webhook"},
    {"T-2",
     "'=HYPERLINK(\"http://evil\",\"x\")",
     "Omar, Jr.",
     "line one\nsaid \"hi\"",
     "S1",
     "+971501000002",
     "failed",
     "1",
     "",
     "400",
     "invalid_request",
     "'-bad number\r\n\"+971\" rejected",
     "2026-11-28T10:15:02.123Z",
     "2026-11-28T10:15:03.623Z",
     "",
     "",
     "",
     "",
     "",
     "",
     "",
     "",
     ""},
    {"'@T-3",
     "C-3",
     "",
     "'-5",
     "S1",
     "+971501000003",
     "pending",
     "0",
     "",
     "",
     "",
     "",
     "2026-11-28T10:15:02.123Z",
     "",
     "",
     "",
     "",
     "",
     "",
     "",
     "",
     "",
     ""},
    {"T-4",
     "C-4",
     "Mona",
     "dup",
     "S1",
     "+971501000001",
     "suppressed",
     "0",
     "",
     "",
     "duplicate_phone",
     "same number as task T-1 (line 2)",
     "2026-11-28T10:15:02.123Z",
     "",
     "",
     "",
     "",
     "",
     "",
     "",
     "",
     "",
     ""},
};

const std::vector<std::string> spring_jsonl = {
    R"j({"taskId":"T-1","variables":{"crmContactId":"C-1","first_name":"Layla","note":"plain",)j"
    R"j("list":"S1"},"phone":"+971501000001","state":"ended","attempts":1,"sessionId":"s-1",)j"
    R"j("lastHttpStatus":201,"errorClass":null,"detail":null,"createdAt":)j"
    R"j("2026-11-28T10:15:02.123Z","dialedAt":"2026-11-28T10:15:03.623Z","startedAt":)j"
    R"j("2026-11-28T10:15:05.123Z","endedAt":"2026-11-28T10:16:06.123Z","endReason":"completed",)j"
    R"j("durationSeconds":42,"intent":"renew","resolution":"+1 callback","sentiment":"positive",)j"
    R"j("data":{"score":5,"tags":["a","b"]},"resultSource":"webhook"})j",
    R"j({"taskId":"T-2","variables":{"crmContactId":"=HYPERLINK(\"http://evil\",\"x\")",)j"
    R"j("first_name":"Omar, Jr.","note":"line one\nsaid \"hi\"","list":"S1"},)j"
    R"j("phone":"+971501000002","state":"failed","attempts":1,"sessionId":null,)j"
    R"j("lastHttpStatus":400,"errorClass":"invalid_request",)j"
    R"j("detail":"-bad number\r\n\"+971\" rejected","createdAt":"2026-11-28T10:15:02.123Z",)j"
    R"j("dialedAt":"2026-11-28T10:15:03.623Z","startedAt":null,"endedAt":null,"endReason":null,)j"
    R"j("durationSeconds":null,"intent":null,"resolution":null,"sentiment":null,"data":null,)j"
    R"j("resultSource":null})j",
    R"j({"taskId":"@T-3","variables":{"crmContactId":"C-3","first_name":"","note":"-5",)j"
    R"j("list":"S1"},"phone":"+971501000003","state":"pending","attempts":0,"sessionId":null,)j"
    R"j("lastHttpStatus":null,"errorClass":null,"detail":null,)j"
    R"j("createdAt":"2026-11-28T10:15:02.123Z","dialedAt":null,"startedAt":null,"endedAt":null,)j"
    R"j("endReason":null,"durationSeconds":null,"intent":null,"resolution":null,)j"
    R"j("sentiment":null,"data":null,"resultSource":null})j",
    R"j({"taskId":"T-4","variables":{"crmContactId":"C-4","first_name":"Mona","note":"dup",)j"
    R"j("list":"S1"},"phone":"+971501000001","state":"suppressed","attempts":0,"sessionId":null,)j"
    R"j("lastHttpStatus":null,"errorClass":"duplicate_phone",)j"
    R"j("detail":"same number as task T-1 (line 2)","createdAt":"2026-11-28T10:15:02.123Z",)j"
    R"j("dialedAt":null,"startedAt":null,"endedAt":null,"endReason":null,)j"
    R"j("durationSeconds":null,"intent":null,"resolution":null,"sentiment":null,"data":null,)j"
    R"j("resultSource":null})j",
};

TEST_F(task_export_test, csv_has_every_field_of_every_task_exactly) {
  auto store = open();
  build(*store);
  const std::string text = export_text(export_format::csv);
  const auto t = parse_csv(text);
  EXPECT_EQ(t.header, std::vector<std::string>(std::begin(spring_header), std::end(spring_header)));
  EXPECT_EQ(t.rows, spring_rows);
  // RFC 4180 on the wire: CRLF records, quoted cells with doubled quotes, the formula guard
  // inside the quotes, and the phone's + untouched.
  EXPECT_EQ(text.substr(0, text.find("\r\n")).find('\n'), std::string::npos);
  EXPECT_NE(text.find("\r\nT-2,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",\"Omar, Jr.\","
                      "\"line one\nsaid \"\"hi\"\"\",S1,+971501000002,failed,"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\r\n'@T-3,C-3,,'-5,S1,+971501000003,pending,0,"), std::string::npos);
  EXPECT_EQ(text.substr(text.size() - 2), "\r\n");
}

TEST_F(task_export_test, jsonl_has_every_field_of_every_task_exactly) {
  auto store = open();
  build(*store);
  const std::string text = export_text(export_format::jsonl);
  EXPECT_EQ(lines_of(text), spring_jsonl);
  EXPECT_EQ(text.back(), '\n');

  // Each line is a JSON object a consumer can read, with the types the CRM expects.
  simdjson::dom::parser parser;
  std::vector<std::string> task_ids;
  for (const auto& line : lines_of(text)) {
    simdjson::dom::object obj;
    ASSERT_EQ(parser.parse(line).get_object().get(obj), simdjson::SUCCESS) << line;
    std::string_view id;
    ASSERT_EQ(obj["taskId"].get_string().get(id), simdjson::SUCCESS);
    task_ids.emplace_back(id);
    EXPECT_TRUE(obj["variables"].is_object());
    EXPECT_TRUE(obj["attempts"].is_int64());
  }
  EXPECT_EQ(task_ids, (std::vector<std::string>{"T-1", "T-2", "@T-3", "T-4"}));
  simdjson::dom::object first;
  ASSERT_EQ(parser.parse(lines_of(text)[0]).get_object().get(first), simdjson::SUCCESS);
  EXPECT_EQ(first["data"]["score"].get_int64().value(), 5);
  EXPECT_EQ(first["durationSeconds"].get_int64().value(), 42);
  EXPECT_EQ(first["lastHttpStatus"].get_int64().value(), 201);
  std::string_view note;
  simdjson::dom::object second;
  ASSERT_EQ(parser.parse(lines_of(text)[1]).get_object().get(second), simdjson::SUCCESS);
  ASSERT_EQ(second["variables"]["note"].get_string().get(note), simdjson::SUCCESS);
  EXPECT_EQ(note, "line one\nsaid \"hi\"");
  EXPECT_TRUE(second["data"].is_null());
}

TEST_F(task_export_test, state_filters_select_the_tasks) {
  auto store = open();
  build(*store);
  const auto t =
      parse_csv(export_text(export_format::csv, {task_state::ended, task_state::failed}));
  EXPECT_EQ(t.rows, (std::vector<std::vector<std::string>>{spring_rows[0], spring_rows[1]}));
  // The key columns come from the whole campaign, so a filtered export has the same header.
  EXPECT_EQ(t.header.size(), std::size(spring_header));

  EXPECT_EQ(lines_of(export_text(export_format::jsonl, {task_state::suppressed})),
            std::vector<std::string>{spring_jsonl[3]});
  EXPECT_EQ(lines_of(export_text(export_format::jsonl, {task_state::pending, task_state::pending})),
            std::vector<std::string>{spring_jsonl[2]});
  EXPECT_EQ(parse_csv(export_text(export_format::csv, {task_state::unknown})).rows.size(), 0u);
  EXPECT_EQ(export_text(export_format::jsonl, {task_state::dialing}), "");
}

TEST_F(task_export_test, other_campaigns_rows_are_left_out) {
  auto store = open();
  build(*store);
  const auto t = parse_csv(export_text(export_format::csv, {}, "other"));
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.header[1], "otherKey");
  EXPECT_EQ(t.header[2], "list");
  EXPECT_EQ(t.rows[0][0], "O-1");
  EXPECT_EQ(t.rows[0][1], "x");
}

TEST_F(task_export_test, unknown_campaign_is_named_with_the_known_ones) {
  auto store = open();
  build(*store);
  store->finish_ingest("empty", "fp", 0);
  const auto e = export_error_of("autumn");
  EXPECT_EQ(e.code, export_errc::unknown_campaign);
  EXPECT_NE(e.message.find("\"autumn\""), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("known campaigns: empty, other, spring"), std::string::npos)
      << e.message;
  EXPECT_EQ(e.known_campaigns, (std::vector<std::string>{"empty", "other", "spring"}));
}

TEST_F(task_export_test, a_campaign_with_tasks_but_no_finished_ingest_is_known) {
  auto store = open();
  const std::vector<ingest_row> rows = {task(2, "T-1", "+971501000001", {{"k", "v"}}, "midway")};
  ASSERT_EQ(store->ingest("midway", rows, {}, true).pending, 1);
  EXPECT_EQ(parse_csv(export_text(export_format::csv, {}, "midway")).rows.size(), 1u);
  const auto e = export_error_of("nope");
  EXPECT_EQ(e.known_campaigns, std::vector<std::string>{"midway"});
}

TEST_F(task_export_test, empty_campaign_gives_the_header_only) {
  auto store = open();
  build(*store);
  store->finish_ingest("empty", "fp", 0);
  EXPECT_EQ(export_text(export_format::csv, {}, "empty"),
            "taskId,phone,state,attempts,sessionId,lastHttpStatus,errorClass,detail,createdAt,"
            "dialedAt,startedAt,endedAt,endReason,durationSeconds,intent,resolution,sentiment,"
            "data,resultSource\r\n");
  EXPECT_EQ(export_text(export_format::jsonl, {}, "empty"), "");
}

TEST_F(task_export_test, reads_what_the_open_writer_committed_without_its_lock) {
  auto store = open();
  build(*store);
  const auto before = parse_csv(export_text(export_format::csv));
  ASSERT_EQ(before.rows.size(), 4u);
  EXPECT_EQ(before.rows[2][6], "pending");

  // The writer goes on after the export (the export took no lock and left no transaction open),
  // and the next export sees what it committed.
  clock_.advance(1000ms);
  claim(*store, 4);
  const auto after = parse_csv(export_text(export_format::csv));
  ASSERT_EQ(after.rows.size(), 4u);
  EXPECT_EQ(after.rows[2][6], "dialing");
  EXPECT_EQ(after.rows[2][7], "1");
  EXPECT_EQ(after.rows[2][13], "2026-11-28T10:16:08.123Z");
  // The daemon's lock is still its own: a second store on the same file is refused.
  EXPECT_THROW(open(), std::runtime_error);
}

TEST_F(task_export_test, correlation_keys_are_found_in_every_row_and_never_clash) {
  {
    auto store = open();
    const std::vector<ingest_row> rows = {
        {2, "A", "+971501000001", R"({"taskId":"A","campaignId":"keys","a":"1"})"},
        {3, "B", "+971501000002",
         R"({"taskId":"B","campaignId":"keys","a":"2","b":"x","phone":"home",)"
         R"("variables.phone":"y","n":7,"z":null,"o":{"k":[1, 2]}})"}};
    ASSERT_EQ(store->ingest("keys", rows, {}, false).pending, 2);
  }
  const auto t = parse_csv(export_text(export_format::csv, {}, "keys"));
  ASSERT_GE(t.header.size(), 8u);
  EXPECT_EQ(std::vector<std::string>(t.header.begin(), t.header.begin() + 8),
            (std::vector<std::string>{"taskId", "a", "b", "variables.phone.2", "variables.phone",
                                      "n", "z", "o"}));
  EXPECT_EQ(t.header[8], "phone");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(std::vector<std::string>(t.rows[0].begin(), t.rows[0].begin() + 9),
            (std::vector<std::string>{"A", "1", "", "", "", "", "", "", "+971501000001"}));
  EXPECT_EQ(std::vector<std::string>(t.rows[1].begin(), t.rows[1].begin() + 9),
            (std::vector<std::string>{"B", "2", "x", "home", "y", "7", "", R"({"k":[1,2]})",
                                      "+971501000002"}));
}

TEST_F(task_export_test, damaged_json_is_written_as_text) {
  {
    auto store = open();
    build(*store);
  }
  {
    raw_db raw(db_path());
    raw.exec(
        "UPDATE tasks SET variables = 'not json', analysis_data = '[1, 2]' WHERE task_id = 'T-1'");
  }
  export_options o;
  o.state_path = db_path();
  o.campaign = "spring";
  o.format = export_format::jsonl;
  std::ostringstream out;
  auto r = export_tasks(o, out);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().damaged_json, 2);
  const auto first = lines_of(out.str()).at(0);
  EXPECT_NE(first.find(R"("variables":"not json",)"), std::string::npos) << first;
  EXPECT_NE(first.find(R"("data":"[1, 2]",)"), std::string::npos) << first;
  simdjson::dom::parser parser;
  EXPECT_EQ(parser.parse(first).error(), simdjson::SUCCESS);

  const auto t = parse_csv(export_text(export_format::csv));
  EXPECT_EQ(t.rows[0][1], "");  // no key cells for that row
  EXPECT_EQ(t.rows[0][21], "[1, 2]");
  EXPECT_EQ(t.rows[1][2], "Omar, Jr.");
}

TEST_F(task_export_test, refuses_stores_of_another_schema_version) {
  {
    raw_db raw(db_path());
    raw.exec("PRAGMA application_id = 1684627820; PRAGMA user_version = 1");
  }
  auto e = export_error_of("spring");
  EXPECT_EQ(e.code, export_errc::schema_too_old);
  EXPECT_NE(e.message.find("written by an older dialerd: run dialerd once to migrate"),
            std::string::npos)
      << e.message;
  {
    raw_db raw(db_path());
    raw.exec("PRAGMA user_version = 4");
  }
  e = export_error_of("spring");
  EXPECT_EQ(e.code, export_errc::schema_too_new);
  EXPECT_NE(e.message.find("newer dialerd"), std::string::npos) << e.message;
  {
    raw_db raw(db_path());
    raw.exec("PRAGMA application_id = 7; PRAGMA user_version = 2");
  }
  e = export_error_of("spring");
  EXPECT_EQ(e.code, export_errc::store_unreadable);
  EXPECT_NE(e.message.find("not a dialerd state store"), std::string::npos) << e.message;

  fs::remove(db_path());
  std::ofstream(db_path()) << "taskId,phone\nT-1,+971501000001\n";
  e = export_error_of("spring");
  EXPECT_EQ(e.code, export_errc::store_unreadable);
  EXPECT_NE(e.message.find(db_path().string()), std::string::npos) << e.message;

  fs::remove(db_path());
  e = export_error_of("spring");
  EXPECT_EQ(e.code, export_errc::store_missing);
  EXPECT_NE(e.message.find("does not exist"), std::string::npos) << e.message;
  EXPECT_FALSE(fs::exists(db_path()));  // a read-only open never creates the file
}

TEST_F(task_export_test, rows_stream_in_rowid_order_without_a_sorter) {
  open().reset();
  const std::string plan = export_query_plan_for_test(db_path());
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  EXPECT_NE(plan.find("INTEGER PRIMARY KEY"), std::string::npos) << plan;
}

TEST(task_export_format, iso8601_utc_with_milliseconds) {
  const auto iso = [](std::int64_t ms) {
    std::string s;
    append_iso8601_ms(s, ms);
    return s;
  };
  EXPECT_EQ(iso(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso(t0), "2026-11-28T10:15:02.123Z");
  EXPECT_EQ(iso(951868799999), "2000-02-29T23:59:59.999Z");
  EXPECT_EQ(iso(1709164800000), "2024-02-29T00:00:00.000Z");
  EXPECT_EQ(iso(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(iso(253402300799999), "9999-12-31T23:59:59.999Z");
}

TEST(task_export_format, csv_fields_quote_and_guard_formulas) {
  const auto field = [](std::string_view text, bool outside) {
    std::string s;
    append_csv_field(s, text, outside);
    return s;
  };
  EXPECT_EQ(field("plain", true), "plain");
  EXPECT_EQ(field("", true), "");
  EXPECT_EQ(field("a,b", false), "\"a,b\"");
  EXPECT_EQ(field("say \"hi\"", false), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(field("a\nb", false), "\"a\nb\"");
  EXPECT_EQ(field("a\rb", false), "\"a\rb\"");
  for (const char* cell : {"=1+2", "+1", "-1", "@SUM(A1)", "\tx"}) {
    EXPECT_EQ(field(cell, true), "'" + std::string(cell)) << cell;
    EXPECT_EQ(field(cell, false), cell) << cell;
  }
  EXPECT_EQ(field("\rx", true), "\"'\rx\"");
  EXPECT_EQ(field("=A1,B1", true), "\"'=A1,B1\"");
  EXPECT_EQ(field("x=1", true), "x=1");
  EXPECT_EQ(field("+971501000001", false), "+971501000001");
}

TEST_F(task_export_test, run_export_rejects_bad_arguments_with_exit_2) {
  const std::string db = db_path().string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "--campaign ID is required"},
      {{"--state-path", db}, "--campaign ID is required"},
      {{"--campaign", "spring"}, "give --config FILE or --state-path FILE"},
      {{"--campaign", "spring", "--state-path", db, "--config", "x.yaml"}, "not both"},
      {{"--campaign", "spring", "--state-path"}, "--state-path needs a value"},
      {{"--campaign", "spring", "--state-path", db, "--format", "xml"},
       "--format: expected csv or jsonl, got \"xml\""},
      {{"--campaign", "spring", "--state-path", db, "--state", "ended,done"},
       "unknown state \"done\""},
      {{"--campaign", "spring", "--state-path", db, "--state", "ended,"}, "unknown state \"\""},
      {{"--campaign", "spring", "--state-path", db, "--verbose"}, "unknown option \"--verbose\""},
      {{"--campaign", "spring", "--state-path", db, "extra"}, "unexpected argument \"extra\""},
      {{"--campaign", "a", "--campaign=b", "--state-path", db}, "--campaign given twice"},
      {{"--campaign=", "--state-path", db}, "--campaign needs a non-empty value"},
      {{"--campaign", "spring", "--state-path", db, "--output", db}, "would overwrite"},
      {{"--campaign", "spring", "--state-path", db, "--output", db + "-wal"}, "would overwrite"},
  };
  for (const auto& [args, message] : cases) {
    std::string out;
    std::string err;
    EXPECT_EQ(run(args, out, err), 2) << message;
    EXPECT_NE(err.find(message), std::string::npos) << "expected \"" << message << "\" in: " << err;
    EXPECT_EQ(out, "");
  }
}

TEST_F(task_export_test, run_export_help_goes_to_stdout) {
  std::string out;
  std::string err;
  EXPECT_EQ(run({"--help"}, out, err), 0);
  EXPECT_EQ(out.rfind("usage: dialerd export --campaign ID", 0), 0u) << out;
  EXPECT_NE(out.find("ended_unconfirmed"), std::string::npos);
  EXPECT_EQ(err, "");
}

TEST_F(task_export_test, run_export_writes_stdout_or_a_whole_file) {
  auto store = open();
  build(*store);
  std::string out;
  std::string err;
  ASSERT_EQ(run({"--campaign", "spring", "--state-path", db_path().string(), "--format=jsonl",
                 "--state", "ended", "--state", "failed,pending"},
                out, err),
            0)
      << err;
  EXPECT_EQ(lines_of(out),
            (std::vector<std::string>{spring_jsonl[0], spring_jsonl[1], spring_jsonl[2]}));
  EXPECT_EQ(err, "");

  const fs::path file = dir_ / "out" / "spring.csv";
  fs::create_directories(file.parent_path());
  std::ofstream(file) << "the previous export";
  ASSERT_EQ(
      run({"--campaign", "spring", "--state-path", db_path().string(), "--output", file.string()},
          out, err),
      0)
      << err;
  EXPECT_EQ(out, "");
  EXPECT_NE(err.find("4 task(s) of campaign spring written to " + file.string()), std::string::npos)
      << err;
  EXPECT_EQ(read_file(file), export_text(export_format::csv));
  EXPECT_FALSE(fs::exists(file.string() + ".tmp"));

  // A failed export leaves the previous file as it was, and no temporary file.
  EXPECT_EQ(
      run({"--campaign", "autumn", "--state-path", db_path().string(), "--output", file.string()},
          out, err),
      1);
  EXPECT_EQ(read_file(file), export_text(export_format::csv));
  EXPECT_FALSE(fs::exists(file.string() + ".tmp"));
}

TEST_F(task_export_test, run_export_runtime_errors_exit_1) {
  std::string out;
  std::string err;
  EXPECT_EQ(run({"--campaign", "spring", "--state-path", db_path().string()}, out, err), 1);
  EXPECT_NE(err.find(db_path().string() + " does not exist"), std::string::npos) << err;

  auto store = open();
  build(*store);
  EXPECT_EQ(run({"--campaign", "autumn", "--state-path", db_path().string()}, out, err), 1);
  EXPECT_NE(err.find("unknown campaign \"autumn\""), std::string::npos) << err;
  EXPECT_NE(err.find("known campaigns: other, spring"), std::string::npos) << err;
  EXPECT_EQ(out, "");

  EXPECT_EQ(run({"--campaign", "spring", "--state-path", db_path().string(), "--output",
                 (dir_ / "no-such-dir" / "x.csv").string()},
                out, err),
            1);
  EXPECT_NE(err.find("cannot write"), std::string::npos) << err;
}

TEST_F(task_export_test, run_export_finds_the_store_through_the_daemon_config) {
  auto store = open();
  build(*store);
  // The API key variable is deliberately unset: the export never needs the key.
  const fs::path config = dir_ / "dialerd.yaml";
  std::ofstream(config) << "api:\n"
                           "  base_url: https://api.example.com\n"
                           "  api_key_env: DIALER_EXPORT_TEST_UNSET_KEY\n"
                           "state_path: state.db\n"
                           "trunks:\n"
                           "  main: {phone_number_id: pn-1}\n";
  std::string out;
  std::string err;
  ASSERT_EQ(
      run({"--campaign", "spring", "--config", config.string(), "--format", "jsonl"}, out, err), 0)
      << err;
  EXPECT_EQ(lines_of(out), spring_jsonl);

  std::ofstream(config) << "state_path: [\n";
  EXPECT_EQ(run({"--campaign", "spring", "--config", config.string()}, out, err), 2);
  EXPECT_NE(err.find(config.string()), std::string::npos) << err;
  EXPECT_NE(err.find("--state-path"), std::string::npos) << err;
}

}  // namespace
}  // namespace dialer
