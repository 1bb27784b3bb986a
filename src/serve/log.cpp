#include "serve/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace dermal::serve {

void Log::write(LogLevel l, const std::string& fields) {
  if (!enabled(l)) return;
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::lock_guard<std::mutex> lock(mutex_);
  std::fprintf(stderr, "ts=%s.%03dZ level=%s %s\n", stamp, ms, log_level_name(l), fields.c_str());
  std::fflush(stderr);
}

std::string Log::quote(const std::string& value) {
  std::string clean;
  bool needs_quotes = value.empty();
  for (unsigned char c : value.substr(0, 512)) {
    if (c < 0x20 || c == 0x7f) continue;
    if (c == ' ' || c == '=' || c == '"') needs_quotes = true;
    if (c == '"' || c == '\\') clean += '\\';
    clean += static_cast<char>(c);
  }
  return needs_quotes ? "\"" + clean + "\"" : clean;
}

}  // namespace dermal::serve
