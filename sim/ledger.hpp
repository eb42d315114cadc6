#pragma once
// The JSONL ledger of placed calls (and, with another label, the webhook log). Lines are appended
// to a memory buffer and written out when it passes 64 KiB and on flush(), which the server calls
// every 100 ms and at exit, so a placement costs no system call. Not thread-safe: its owner calls
// it under its lock.
#include <string>
#include <string_view>

namespace dialer::sim {

class ledger {
 public:
  ledger() = default;  // disabled: append() and flush() do nothing
  // Truncates or creates `path`; throws std::runtime_error if it cannot. `label` names it in
  // messages ("ledger": "--ledger: cannot open …", "ledger write failed").
  explicit ledger(const std::string& path, std::string label = "ledger");
  ~ledger();
  ledger(const ledger&) = delete;
  ledger& operator=(const ledger&) = delete;
  ledger(ledger&& other) noexcept;
  ledger& operator=(ledger&& other) noexcept;

  [[nodiscard]] bool enabled() const { return fd_ >= 0; }
  // The buffer the next line goes to; call line_done() after appending one complete line.
  [[nodiscard]] std::string& buffer() { return buffer_; }
  void line_done();
  // Writes everything buffered. A failed write is reported once on stderr and counted in
  // errors(); the ledger is the referee's evidence, so main then exits non-zero.
  void flush();
  [[nodiscard]] long errors() const { return errors_; }

 private:
  static constexpr std::size_t flush_threshold = 64 * 1024;
  int fd_ = -1;
  std::string label_;
  std::string buffer_;
  long errors_ = 0;
};

}  // namespace dialer::sim
