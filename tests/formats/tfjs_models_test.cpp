// The reference models in TensorFlow.js layers format, as tools/keras_reference/write_tfjs_files.js
// saves them with tfjs's own model.save (CTest fixture keras_reference): every model from its
// model.json and float32 shards; quantised variants (uint8, uint16, float16, as tfjs-converter lays
// them out) against TensorFlow.js's output for those very files, and their dequantised weights
// against tfjs-core's bit for bit; weights named by their full model path. KerasRef*: they need
// the fixture.
#include <bit>
#include <cstring>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "explain/classifier.h"
#include "formats/keras/tfjs_model.h"
#include "formats/keras_check.h"

namespace dermal::test::keras {
namespace {

struct Variant {
  std::string model, variant;  // variant: the folder, "tfjs" or "tfjs_uint8"...
};
std::string param_name(const ::testing::TestParamInfo<Variant>& info) { return info.param.model + "_" + info.param.variant; }

// Float32 shards: the same weights as the .keras and .h5 files, so the same reference (output and logits).
class TfjsLayersModel : public ::testing::TestWithParam<Variant> {};

TEST_P(TfjsLayersModel, OutputMatchesTfjs) {
  const auto& p = GetParam();
  formats::LoadedModel m = formats::load_model(model_file(p.model, p.variant + "/model.json"));
  EXPECT_EQ(m.format, "tfjs");
  EXPECT_EQ(m.producer, "tfjs-layers 4.22.0");
  EXPECT_EQ(m.metadata.at("tfjs_quantization"), "none");
  expect_matches_reference(m, read_json(model_file(p.model, "reference.json")), p.model + "/" + p.variant);
}

std::vector<Variant> float_variants() {
  std::vector<Variant> out;
  for (const char* model : {"mobilenet_v2", "resnet50", "efficientnet_b0", "densenet121", "inception_v3", "xception", "zoo_a",
                            "zoo_b", "teachable_machine", "transfer", "zoo_preprocess", "zoo_gray"})
    out.push_back({model, "tfjs"});
  // Every weight named by its path from the root model ("sequential_4/sequential_1/model1/Conv1/kernel").
  for (const char* model : {"mobilenet_v2", "teachable_machine"}) out.push_back({model, "tfjs_prefixed"});
  return out;
}

INSTANTIATE_TEST_SUITE_P(KerasRef, TfjsLayersModel, ::testing::ValuesIn(float_variants()), param_name);

// Quantised weights: TensorFlow.js itself loaded these files for the reference output.
class TfjsQuantisedModel : public ::testing::TestWithParam<Variant> {};

TEST_P(TfjsQuantisedModel, OutputMatchesTfjsOnTheSameFiles) {
  const auto& p = GetParam();
  formats::LoadedModel m = formats::load_model(model_file(p.model, p.variant + "/model.json"));
  EXPECT_EQ(m.metadata.at("tfjs_quantization"), p.variant.substr(5));
  const json ref = read_json(model_file(p.model, p.variant + "/reference.json"));
  const Tensor expected = tensor_of(ref["output"]);
  RunResult r = run(m, tensor_of(ref["input"]));
  EXPECT_LE(max_abs_diff(r.output, expected), 1e-4 * std::max(1.0, max_abs(expected))) << p.model << "/" << p.variant;
  EXPECT_GT(max_abs(expected), 1e-3) << "the reference output is (almost) all zeros";
}

TEST_P(TfjsQuantisedModel, DequantisedWeightsAreTfjsCoresBitForBit) {
  const auto& p = GetParam();
  const std::string path = model_file(p.model, p.variant + "/model.json");
  const formats::keras::TfjsWeights weights(read_json(path)["weightsManifest"], path);
  std::ifstream f(model_file(p.model, p.variant + "/decoded.bin"), std::ios::binary);
  const std::string decoded(std::istreambuf_iterator<char>(f), {});
  size_t offset = 0, differing = 0;
  for (size_t i = 0; i < weights.specs().size(); ++i) {
    const Tensor t = weights.read(i);
    const size_t bytes = static_cast<size_t>(t.numel()) * sizeof(float);
    ASSERT_LE(offset + bytes, decoded.size()) << weights.specs()[i].name;
    for (int64_t k = 0; k < t.numel(); ++k) {
      uint32_t want;
      std::memcpy(&want, decoded.data() + offset + static_cast<size_t>(k) * 4, 4);
      if (std::bit_cast<uint32_t>(t.data<float>()[k]) != want && differing++ < 5)
        ADD_FAILURE() << weights.specs()[i].name << "[" << k << "]: " << t.data<float>()[k] << " vs tfjs "
                      << std::bit_cast<float>(want);
    }
    offset += bytes;
  }
  EXPECT_EQ(offset, decoded.size());
  EXPECT_EQ(differing, 0u) << p.model << "/" << p.variant;
}

std::vector<Variant> quantised_variants() {
  std::vector<Variant> out;
  for (const char* model : {"mobilenet_v2", "teachable_machine"})
    for (const char* v : {"tfjs_uint8", "tfjs_uint16", "tfjs_float16"}) out.push_back({model, v});
  return out;
}

INSTANTIATE_TEST_SUITE_P(KerasRef, TfjsQuantisedModel, ::testing::ValuesIn(quantised_variants()), param_name);

// Teachable Machine's nested Sequentials from model.json keep the Keras layer names.
TEST(KerasRefTfjsNames, NestedLayersKeepTheirNames) {
  formats::LoadedModel m = formats::load_model(model_file("teachable_machine", "tfjs_uint8/model.json"));
  EXPECT_EQ(m.graph->outputs[0].name, "dense_Dense2");
  EXPECT_EQ(m.logits, "dense_Dense2/preact");
  EXPECT_EQ(m.metadata.at("keras_model_name"), "sequential_4");
}

// Teachable Machine's export is model.json, its shards and a metadata.json naming the classes:
// with no card, that gives the card (labels; the centre square as x / 127 - 1, as its library
// feeds the model). A model.card.json beside model.json wins (model.json is itself a .json).
TEST(KerasRefTfjsCard, TeachableMachineMetadataAndCardJson) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("dermal_tm_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::copy(fs::path(model_file("teachable_machine", "tfjs/model.json")).parent_path(), dir);
  const std::vector<std::string> labels{"mole", "freckle", "scar", "wart", "cyst", "burn", "rash"};
  std::ofstream(dir / "metadata.json") << json{{"tfjsVersion", "1.3.1"}, {"tmVersion", "2.4.7"},
                                               {"packageName", "@teachablemachine/image"}, {"modelName", "tm-model"},
                                               {"labels", labels}, {"imageSize", 32}}.dump();
  const std::string model = (dir / "model.json").string();
  auto clf = explain::Classifier::load(model);
  ASSERT_EQ(clf->card().labels.size(), 7u);
  EXPECT_EQ(clf->card().labels[0].code, "mole");
  EXPECT_TRUE(clf->card().preprocess.keep_aspect);
  EXPECT_DOUBLE_EQ(clf->card().preprocess.scale, 1.0 / 127);
  EXPECT_DOUBLE_EQ(clf->card().preprocess.mean[0], 1.0);
  EXPECT_NE(clf->card().source.find("Teachable Machine"), std::string::npos) << clf->card().source;
  vision::Image img;
  img.width = 48;
  img.height = 32;
  img.rgb.assign(48 * 32 * 3, 200);
  explain::Timings t;
  EXPECT_EQ(clf->predict(img, t).probabilities.size(), 7u);
  std::ofstream(dir / "model.card.json") << R"({"labels": ["a", "b", "c", "d", "e", "f", "g"]})";
  EXPECT_EQ(explain::Classifier::load(model)->card().labels[0].code, "a");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dermal::test::keras
