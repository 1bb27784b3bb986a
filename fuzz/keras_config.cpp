// The Keras model walker and layer table (formats/keras/keras_model.cpp, keras_layers_*.cpp) on
// an untrusted model config: config.json's JSON, built over the weights of a real model, so that
// a mutated config that keeps a layer's name and shape gets past the weight lookup and into the
// layer's conversion. The weights come from the .keras file named by DERMAL_FUZZ_KERAS_MODEL
// (fuzz/run.sh names one of the seed models); its config.json is the natural seed.
#include <cstdio>
#include <memory>
#include <vector>

#include "formats/keras/hdf5_file.h"
#include "formats/keras/keras_importer.h"
#include "formats/keras/keras_weights.h"
#include "formats/keras/zip_archive.h"
#include "fuzz/fuzz_common.h"

using namespace dermal;

namespace {

struct Weights {
  std::vector<uint8_t> bytes;  // model.weights.h5, held for the file image
  std::unique_ptr<formats::keras::Hdf5File> file;
  std::unique_ptr<formats::keras::WeightSource> source;
};
Weights* weights = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* model = std::getenv("DERMAL_FUZZ_KERAS_MODEL");
  if (!model || !*model) {
    std::fprintf(stderr, "keras_config: set DERMAL_FUZZ_KERAS_MODEL to a .keras file whose weights the configs use\n");
    std::exit(2);
  }
  weights = new Weights;
  auto zip = formats::keras::ZipArchive::open(model);
  auto entry = zip.entry("model.weights.h5");
  weights->bytes.assign(entry.data, entry.data + entry.size);
  weights->file = std::make_unique<formats::keras::Hdf5File>(
      formats::keras::Hdf5File::open_memory(weights->bytes.data(), weights->bytes.size()));
  weights->source = formats::keras::keras3_weight_source(*weights->file);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string config(reinterpret_cast<const char*>(data), size);
  fuzz::refusals_allowed([&] {
    formats::KerasModelInfo info;
    formats::load_keras_config(config, "config.json", *weights->source, "3.6.0", &info);
  });
  return 0;
}
