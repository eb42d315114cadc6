#pragma once
// Writes a whole file so that readers see either the old content or the new, never a part:
// the data goes to PATH.tmp.PID, is fsync'ed, and is renamed over PATH. Throws
// std::runtime_error naming the path on failure.
#include <sys/types.h>

#include <string>
#include <string_view>

namespace dialer::sim {

void write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0644);

}  // namespace dialer::sim
