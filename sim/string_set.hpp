#pragma once
// A set of strings that only grows: open addressing with linear probing over slots that hold the
// string's 64-bit hash and a view into an arena. A lookup touches one slot (one cache miss) and
// compares strings only on a full hash match, where std::unordered_set would chase a bucket, a
// node and the string. The duplicate counters test every placement against millions of keys.
// Not thread-safe.
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "sim/string_arena.hpp"

namespace dialer::sim {

class string_set {
 public:
  explicit string_set(std::size_t initial_capacity = 1 << 16) {
    std::size_t cap = 16;
    while (cap < initial_capacity) {
      cap *= 2;
    }
    slots_.resize(cap);
  }

  // Adds `s` unless present; returns true if it was added.
  bool insert(std::string_view s) {
    std::uint64_t h = std::hash<std::string_view>{}(s);
    h = h == 0 ? 1 : h;  // 0 marks an empty slot
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      slot& sl = slots_[i];
      if (sl.hash == 0) {
        const std::string_view stored = arena_.store(s);
        sl = slot{h, stored.data(), static_cast<std::uint32_t>(stored.size())};
        if (++size_ * 2 > slots_.size()) {
          grow();
        }
        return true;
      }
      if (sl.hash == h && std::string_view(sl.data, sl.size) == s) {
        return false;
      }
    }
  }

  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  struct slot {
    std::uint64_t hash = 0;
    const char* data = nullptr;
    std::uint32_t size = 0;
  };

  void grow() {
    std::vector<slot> old(slots_.size() * 2);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const slot& sl : old) {
      if (sl.hash == 0) {
        continue;
      }
      std::size_t i = sl.hash & mask;
      while (slots_[i].hash != 0) {
        i = (i + 1) & mask;
      }
      slots_[i] = sl;
    }
  }

  std::vector<slot> slots_;
  std::size_t size_ = 0;
  string_arena arena_;
};

}  // namespace dialer::sim
