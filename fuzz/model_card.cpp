// The model card reader (formats/model_card.cpp) on untrusted JSON: parsed, then its labels
// fitted to a 7-class model as Classifier::load does.
#include "formats/model_card.h"
#include "fuzz/fuzz_common.h"

using namespace dermal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::refusals_allowed([&] {
    formats::ModelCard card = formats::parse_model_card(text, "card.json");
    formats::fit_labels(card, 7);
    if (card.labels.size() != 7) fuzz::finding("fit_labels left " + std::to_string(card.labels.size()) + " labels for 7 classes");
  });
  return 0;
}
