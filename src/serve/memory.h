// The process's memory as Linux reports it: resident and peak resident set (/proc/self/status)
// and the cgroup's limit and usage when the process runs in one with a limit (containers).
//
//   MemoryStatus m = read_memory_status();
//   m.rss_bytes, m.peak_rss_bytes, m.cgroup_limit_bytes (0: no limit)
#pragma once

#include <cstdint>

namespace dermal::serve {

struct MemoryStatus {
  uint64_t rss_bytes = 0;           // VmRSS
  uint64_t peak_rss_bytes = 0;      // VmHWM: the most resident at any time since start
  uint64_t virtual_bytes = 0;       // VmSize
  uint64_t cgroup_limit_bytes = 0;  // memory.max (v2) or memory.limit_in_bytes (v1); 0: none
  uint64_t cgroup_usage_bytes = 0;  // memory.current or memory.usage_in_bytes; 0: unknown
};

MemoryStatus read_memory_status();

}  // namespace dermal::serve
