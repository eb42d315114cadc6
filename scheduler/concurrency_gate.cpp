#include "scheduler/concurrency_gate.hpp"

#include <cassert>
#include <cstdio>
#include <stdexcept>

namespace dialer {

concurrency_gate::concurrency_gate(std::int64_t capacity) : capacity_(capacity) {
  if (capacity < 1) {
    throw std::invalid_argument("concurrency_gate: capacity must be at least 1");
  }
}

bool concurrency_gate::try_acquire() {
  if (in_use_ >= capacity_) {
    return false;
  }
  ++in_use_;
  if (in_use_ > peak_) {
    peak_ = in_use_;
  }
  return true;
}

void concurrency_gate::occupy() {
  ++in_use_;
  if (in_use_ > peak_) {
    peak_ = in_use_;
  }
}

void concurrency_gate::release() {
  if (in_use_ == 0) {
    ++release_bugs_;
    assert(false && "concurrency_gate: release without acquire");
    std::fprintf(stderr, "BUG: concurrency_gate released more slots than acquired\n");
    return;
  }
  --in_use_;
}

void concurrency_gate::set_capacity(std::int64_t capacity) {
  if (capacity < 1) {
    throw std::invalid_argument("concurrency_gate: capacity must be at least 1");
  }
  capacity_ = capacity;
}

}  // namespace dialer
