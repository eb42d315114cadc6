#pragma once
// What the sqlite_store tests share: an executor standing in for the event loop, a second
// connection that reads the file behind the store's back, rows to ingest, and a fixture that owns
// a fresh directory per test with a store opened in it on a manual clock. Header-only: every
// *_test.cpp is its own executable.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "core/sqlite_store.hpp"
#include "core/state_store.hpp"
#include "core/time.hpp"

namespace dialer::test {

// Stands in for the event loop: the store posts completions here and the test thread runs them.
// poster() may be called from any thread; run_until only from the test thread.
class test_executor {
 public:
  std::function<void(std::function<void()>)> poster() {
    return [this](std::function<void()> fn) {
      {
        std::lock_guard lock(mu_);
        queue_.push_back(std::move(fn));
      }
      cv_.notify_all();
    };
  }

  // Runs completions on this thread until `done` holds; false if it still does not after
  // `timeout`.
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        if (!cv_.wait_until(lock, deadline, [&] { return !queue_.empty(); })) {
          return done();
        }
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

// A separate connection to the store's file, so assertions do not trust the store. Read-only
// unless `writable`. Throws std::runtime_error on any SQLite error.
class raw_db {
 public:
  explicit raw_db(const std::filesystem::path& path, bool writable = false) {
    const int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("raw open: ") + sqlite3_errmsg(db_));
    }
  }
  ~raw_db() { sqlite3_close(db_); }
  raw_db(const raw_db&) = delete;
  raw_db& operator=(const raw_db&) = delete;

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error != nullptr ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error(sql + ": " + message);
    }
  }

  // Every row of a query, columns as text ("" for NULL).
  std::vector<std::vector<std::string>> rows(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::vector<std::vector<std::string>> out;
    int rc = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const auto* text = sqlite3_column_text(stmt, i);
        row.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    return out;
  }

  // The one value a query returns.
  std::string scalar(const std::string& sql) {
    const auto r = rows(sql);
    if (r.size() != 1 || r[0].size() != 1) {
      throw std::runtime_error(sql + ": not one value");
    }
    return r[0][0];
  }

 private:
  sqlite3* db_ = nullptr;
};

// A state as the tasks table stores it.
constexpr int st(task_state s) {
  return static_cast<int>(s);
}

// `count` rows from CSV line `first_line` on: task ids `id_prefix` + line, distinct phones.
inline std::vector<ingest_row> make_rows(std::int64_t first_line, int count,
                                         const std::string& id_prefix = "t", int first_phone = 0) {
  std::vector<ingest_row> rows;
  for (int i = 0; i < count; ++i) {
    ingest_row r;
    r.line = first_line + i;
    r.task_id = id_prefix + std::to_string(first_line + i);
    r.phone_e164 = "+97150" + std::to_string(1000000 + first_phone + i);
    r.variables_json = R"({"taskId":")" + r.task_id + R"("})";
    rows.push_back(std::move(r));
  }
  return rows;
}

// A fresh directory per test (named after `name`, removed with everything in it afterwards) and
// a store in it whose completions run on exec_ and whose time is clock_.
class store_fixture : public ::testing::Test {
 protected:
  explicit store_fixture(const std::string& name) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (name + ".XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    dir_ = tmpl;
  }
  ~store_fixture() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  store_fixture(const store_fixture&) = delete;
  store_fixture& operator=(const store_fixture&) = delete;

  [[nodiscard]] std::filesystem::path db_path() const { return dir_ / "state.db"; }

  sqlite_store_options options() {
    sqlite_store_options o;
    o.path = db_path();
    o.post = exec_.poster();
    o.clock = &clock_;
    return o;
  }

  std::unique_ptr<sqlite_store> open() { return std::make_unique<sqlite_store>(options()); }

  [[nodiscard]] std::int64_t now_ms() const { return to_unix_ms(clock_.system_now()); }

  // What s.fetch_active(campaign, since) answers, run on exec_.
  std::vector<active_call> active(sqlite_store& s, const std::string& campaign,
                                  std::int64_t since) {
    std::optional<std::vector<active_call>> got;
    s.fetch_active(campaign, since, [&](std::vector<active_call> c) { got = std::move(c); });
    EXPECT_TRUE(exec_.run_until([&] { return got.has_value(); }));
    return got.value_or(std::vector<active_call>{});
  }

  manual_time_source clock_;
  std::filesystem::path dir_;
  test_executor exec_;
};

}  // namespace dialer::test
