// One line per event on stderr, logfmt style (key=value), with a UTC timestamp and a level:
//   ts=2025-05-01T12:00:00.123Z level=info id=5f2c... method=POST route=/api/predict status=200 ms=23.1 ...
// Image bytes, file names and query strings are never written.
#pragma once

#include <mutex>
#include <string>

#include "serve/config.h"

namespace dermal::serve {

class Log {
 public:
  explicit Log(LogLevel level) : level_(level) {}
  bool enabled(LogLevel l) const { return level_ != LogLevel::off && l >= level_; }
  // `fields`: "key=value key=value"; the time and level are added in front.
  void write(LogLevel l, const std::string& fields);

  // A value safe for one logfmt field: quoted when it has spaces, control bytes dropped.
  static std::string quote(const std::string& value);

 private:
  LogLevel level_;
  std::mutex mutex_;
};

}  // namespace dermal::serve
