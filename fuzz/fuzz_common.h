// What the fuzz targets share: which exceptions are answers and which are findings, and a
// scratch file for the readers that take a path.
//
// A target's input may be refused: a dermal::Error of any kind but `internal`, or an HttpError
// with a 4xx status, is the clear error a user would get. Anything else escapes to libFuzzer,
// which reports it as a crash: an unexpected exception type (a std::out_of_range, a JSON type
// error, a bad_alloc past the limits) is a bug, as is a broken invariant.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "engine/error.h"

namespace dermal::fuzz {

// Runs `body`; returns normally when it succeeds or refuses the input with a dermal::Error.
template <typename F>
void refusals_allowed(F&& body) {
  try {
    body();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::internal) {
      std::fprintf(stderr, "internal error: %s\n", e.what());
      std::abort();
    }
  }
}

// Aborts with a message: a finding, reported by libFuzzer with the input that caused it.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "finding: %s\n", what.c_str());
  std::abort();
}

// A file of this process's own that each input overwrites (for readers that open a path), removed
// at exit. One per process: the suffix of the first call names it.
inline const std::string& write_scratch(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = [&] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/dermal_fuzz_" + std::to_string(::getpid()) + suffix;
  }();
  static const int remove_at_exit = std::atexit([] { std::remove(path.c_str()); });
  (void)remove_at_exit;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace dermal::fuzz
