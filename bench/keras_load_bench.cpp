// Loads one Keras model file and prints, as one JSON object, how long the load took and how much
// memory the process needed: peak RSS (getrusage) and RSS after the load (/proc/self/statm).
//   dermal_bench_keras_load MODEL.keras
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "formats/model_loader.h"

namespace {

long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  const long rss_before = rss_bytes();
  auto start = std::chrono::steady_clock::now();
  dermal::formats::LoadedModel m = dermal::formats::load_model(argv[1]);
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const long rss_after = rss_bytes();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("{\"model\": \"%s\", \"format\": \"%s\", \"producer\": \"%s\", \"load_ms\": %.2f, \"weight_bytes\": %zu, "
              "\"parameters\": %lld, \"nodes\": %zu, \"rss_before_bytes\": %ld, \"rss_after_bytes\": %ld, "
              "\"peak_rss_bytes\": %ld}\n",
              argv[1], m.format.c_str(), m.producer.c_str(), load_ms, m.graph->weight_bytes(),
              static_cast<long long>(m.graph->parameter_count()), m.graph->nodes.size(), rss_before, rss_after,
              usage.ru_maxrss * 1024L);
  return 0;
}
