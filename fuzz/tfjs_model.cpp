// The TensorFlow.js layers reader (formats/keras/tfjs_model.cpp) on an untrusted model.json: its
// manifest (shard paths, dtypes, quantisation, shapes, sizes) and its Keras topology, over the
// real shards of the seed models, which fuzz/make_seeds.py copies into DERMAL_FUZZ_TFJS_SHARDS
// under names of their own (and rewrites the seeds' paths to match), so that a mutated manifest
// that keeps a shard's name reads real bytes. Then the load-time passes, as for every model.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "formats/keras/tfjs_model.h"
#include "formats/model_loader.h"
#include "fuzz/fuzz_common.h"

using namespace dermal;
namespace fs = std::filesystem;

namespace {

std::string* model_json = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  const fs::path dir = fs::path(tmp && *tmp ? tmp : "/tmp") / ("dermal_fuzz_tfjs_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const char* shards = std::getenv("DERMAL_FUZZ_TFJS_SHARDS");
  if (shards && *shards && fs::is_directory(shards)) {
    for (const auto& e : fs::directory_iterator(shards))
      if (e.is_regular_file()) fs::copy_file(e.path(), dir / e.path().filename(), fs::copy_options::overwrite_existing);
  } else {  // on its own: one shard of 4 KiB under tfjs-converter's usual name
    std::string block(4096, '\0');
    for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 13);
    std::ofstream(dir / "group1-shard1of1.bin", std::ios::binary) << block;
  }
  model_json = new std::string((dir / "model.json").string());
  static const int remove_at_exit = std::atexit([] { fs::remove_all(fs::path(*model_json).parent_path()); });
  (void)remove_at_exit;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::ofstream(*model_json, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                      static_cast<std::streamsize>(size));
  fuzz::refusals_allowed([&] {
    const auto start = std::chrono::steady_clock::now();
    formats::TfjsModelInfo info;
    engine::Graph g = formats::load_tfjs(*model_json, &info);
    formats::LoadedModel m;
    formats::finish_loading(std::move(g), m, start);
  });
  return 0;
}
