#include "sim/ledger.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <utility>

namespace dialer::sim {

ledger::ledger(const std::string& path, std::string label) : label_(std::move(label)) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw std::runtime_error("--" + label_ + ": cannot open '" + path +
                             "': " + std::strerror(errno));
  }
  buffer_.reserve(flush_threshold * 2);
}

ledger::~ledger() {
  flush();
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

ledger::ledger(ledger&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      label_(std::move(other.label_)),
      buffer_(std::move(other.buffer_)),
      errors_(other.errors_) {}

ledger& ledger::operator=(ledger&& other) noexcept {
  if (this != &other) {
    flush();
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
    label_ = std::move(other.label_);
    buffer_ = std::move(other.buffer_);
    errors_ = other.errors_;
  }
  return *this;
}

void ledger::line_done() {
  if (buffer_.size() >= flush_threshold) {
    flush();
  }
}

void ledger::flush() {
  if (fd_ < 0) {
    buffer_.clear();
    return;
  }
  std::size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (errors_++ == 0) {
        std::cerr << "agentix-sim: " << label_ << " write failed: " << std::strerror(errno) << "\n";
      }
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  buffer_.clear();
}

}  // namespace dialer::sim
