#pragma once
// Trunk capacity: DIALING + STARTED calls never exceed `capacity`. Not thread-safe.
#include <cstdint>

namespace dialer {

class concurrency_gate {
 public:
  explicit concurrency_gate(std::int64_t capacity);

  [[nodiscard]] bool available() const { return in_use_ < capacity_; }
  // Takes a slot if one is free.
  [[nodiscard]] bool try_acquire();
  // Returns a slot. Releasing more than was acquired is a bug: it is counted, never goes negative.
  void release();
  // Counts a slot held by a call that is already live (found at start-up), even above capacity:
  // it must be waited for, never ignored.
  void occupy();
  // A lower capacity takes effect for new acquisitions; slots in use are not revoked.
  void set_capacity(std::int64_t capacity);

  [[nodiscard]] std::int64_t in_use() const { return in_use_; }
  [[nodiscard]] std::int64_t capacity() const { return capacity_; }
  [[nodiscard]] std::int64_t peak() const { return peak_; }
  [[nodiscard]] std::uint64_t release_bugs() const { return release_bugs_; }

 private:
  std::int64_t capacity_;
  std::int64_t in_use_ = 0;
  std::int64_t peak_ = 0;
  std::uint64_t release_bugs_ = 0;
};

}  // namespace dialer
