// The ONNX reader (formats/onnx_wire.cpp, onnx_importer.cpp) and the load-time graph passes every
// model goes through (formats::finish_loading: Identity removal, BatchNorm folding, weights handed
// to their ops, the logits found), on untrusted model bytes. External data may only name files
// beside the model: the model's directory holds one (weights.bin, 4 KiB), so that both sides of
// that check are reached.
#include <chrono>
#include <filesystem>

#include "formats/model_loader.h"
#include "formats/onnx_importer.h"
#include "fuzz/fuzz_common.h"

using namespace dermal;

namespace {

const std::string& model_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string d = std::string(tmp && *tmp ? tmp : "/tmp") + "/dermal_fuzz_onnx_" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    std::string block(4096, '\0');
    for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 7);
    std::ofstream(d + "/weights.bin", std::ios::binary).write(block.data(), static_cast<std::streamsize>(block.size()));
    return d;
  }();
  static const int remove_at_exit = std::atexit([] { std::filesystem::remove_all(dir); });
  (void)remove_at_exit;
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::refusals_allowed([&] {
    const auto start = std::chrono::steady_clock::now();
    formats::OnnxModelInfo info;
    engine::Graph g = formats::load_onnx_array(reinterpret_cast<const char*>(data), size, model_dir(), &info);
    formats::LoadedModel m;
    formats::finish_loading(std::move(g), m, start);
  });
  return 0;
}
