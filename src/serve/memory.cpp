#include "serve/memory.h"

#include <fstream>
#include <sstream>
#include <string>

namespace dermal::serve {

namespace {

// "VmRSS:	  12345 kB" -> bytes.
uint64_t status_kb(const std::string& text, const std::string& key) {
  const size_t at = text.find("\n" + key + ":");
  if (at == std::string::npos) return 0;
  std::istringstream in(text.substr(at + key.size() + 2));
  uint64_t kb = 0;
  in >> kb;
  return kb * 1024;
}

// A cgroup file holding one number ("max" or an absurd v1 sentinel mean no limit).
uint64_t cgroup_number(const char* path) {
  std::ifstream f(path);
  std::string word;
  if (!(f >> word) || word == "max") return 0;
  try {
    uint64_t v = std::stoull(word);
    return v >= (uint64_t{1} << 60) ? 0 : v;
  } catch (...) {
    return 0;
  }
}

}  // namespace

MemoryStatus read_memory_status() {
  MemoryStatus m;
  std::ifstream f("/proc/self/status");
  std::stringstream s;
  s << "\n" << f.rdbuf();
  const std::string text = s.str();
  m.rss_bytes = status_kb(text, "VmRSS");
  m.peak_rss_bytes = status_kb(text, "VmHWM");
  m.virtual_bytes = status_kb(text, "VmSize");
  m.cgroup_limit_bytes = cgroup_number("/sys/fs/cgroup/memory.max");
  m.cgroup_usage_bytes = cgroup_number("/sys/fs/cgroup/memory.current");
  if (m.cgroup_limit_bytes == 0) m.cgroup_limit_bytes = cgroup_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  if (m.cgroup_usage_bytes == 0) m.cgroup_usage_bytes = cgroup_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  return m;
}

}  // namespace dermal::serve
