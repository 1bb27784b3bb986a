// TensorFlow.js layers models built here: a model.json around one Dense layer, its weights in
// shards split at odd bytes, quantised as tfjs-converter writes them, and every refusal: missing
// and mis-sized shards, shard paths leaving the folder, unknown dtypes, malformed JSON.
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "error_check.h"
#include "formats/keras/tfjs_model.h"
#include "formats/keras_check.h"

namespace dermal::test::keras {
namespace {

namespace fs = std::filesystem;
using formats::keras::TfjsWeights;

// kernel[i][j] and bias[j] of the Dense layer (4 inputs, 3 units).
float kernel_at(int i, int j) { return 0.1f * static_cast<float>(i * 3 + j) - 0.5f; }
const std::vector<float> kBias = {0.25f, -0.5f, 1.0f};

json dense_topology() {
  return json::parse(R"({
    "class_name": "Sequential", "keras_version": "tfjs-layers 4.22.0", "backend": "tensor_flow.js",
    "config": {"name": "sequential", "layers": [
      {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 4], "dtype": "float32", "name": "input"}},
      {"class_name": "Dense", "config": {"name": "dense", "units": 3, "activation": "linear", "use_bias": true}}]}})");
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string le32(const std::vector<float>& values) {
  std::string out;
  for (float v : values) {
    const uint32_t b = std::bit_cast<uint32_t>(v);
    for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>(b >> (8 * k)));
  }
  return out;
}

std::vector<float> kernel_values() {
  std::vector<float> k;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) k.push_back(kernel_at(i, j));
  return k;
}

json weight(const std::string& name, std::vector<int64_t> shape, const std::string& dtype = "float32") {
  return {{"name", name}, {"shape", shape}, {"dtype", dtype}};
}

class TfjsModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dermal_tfjs_" + std::to_string(getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name, const std::string& bytes) const {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  // model.json with one weight group over `shards` (name -> bytes, in order).
  std::string model(const json& weights, const std::vector<std::pair<std::string, std::string>>& shards,
                    const json& topology = dense_topology()) const {
    json paths = json::array();
    for (const auto& [name, bytes] : shards) {
      file(name, bytes);
      paths.push_back(name);
    }
    json m = {{"format", "layers-model"},
              {"generatedBy", "TensorFlow.js tfjs-layers v4.22.0"},
              {"convertedBy", nullptr},
              {"modelTopology", topology},
              {"weightsManifest", json::array({{{"paths", paths}, {"weights", weights}}})}};
    return file("model.json", m.dump());
  }
  // The float32 Dense model in one shard.
  std::string plain_model() const {
    return model(json::array({weight("dense/kernel", {4, 3}), weight("dense/bias", {3})}),
                 {{"group1-shard1of1.bin", le32(kernel_values()) + le32(kBias)}});
  }

  fs::path dir_;
};

// y = x W + b for x = [1, 2, 3, 4].
void expect_dense_output(const formats::LoadedModel& m) {
  const Tensor y = run(m, Tensor::from_floats({1, 4}, {1, 2, 3, 4})).output;
  ASSERT_EQ(y.shape(), (engine::Shape{1, 3}));
  for (int j = 0; j < 3; ++j) {
    double expected = kBias[static_cast<size_t>(j)];
    for (int i = 0; i < 4; ++i) expected += (i + 1) * static_cast<double>(kernel_at(i, j));
    EXPECT_NEAR(y.data<float>()[j], expected, 1e-5) << "unit " << j;
  }
}

TEST_F(TfjsModel, WeightsSplitAcrossShardsAtAnyByte) {
  const std::string bytes = le32(kernel_values()) + le32(kBias);  // 60 bytes
  const std::string path =
      model(json::array({weight("dense/kernel", {4, 3}), weight("dense/bias", {3})}),
            {{"a.bin", bytes.substr(0, 7)}, {"sub/b.bin", bytes.substr(7, 30)}, {"c.bin", bytes.substr(37)}});
  formats::LoadedModel m = formats::load_model(path);
  EXPECT_EQ(m.format, "tfjs");
  EXPECT_EQ(m.producer, "tfjs-layers 4.22.0");
  EXPECT_EQ(m.input_layout, "nhwc");
  EXPECT_EQ(m.metadata.at("tfjs_quantization"), "none");
  expect_dense_output(m);
}

// By name, in any order, under a model prefix (Keras 3's h5 naming, tfjs-converter's sorting).
TEST_F(TfjsModel, WeightsFoundByNameWhateverTheirOrderAndPrefix) {
  const std::string path =
      model(json::array({weight("sequential/dense/bias:0", {3}), weight("sequential/dense/kernel:0", {4, 3})}),
            {{"weights.bin", le32(kBias) + le32(kernel_values())}});
  expect_dense_output(formats::load_model(path));
}

// The topology as tfjs-converter writes it: {keras_version, backend, model_config, training_config}.
TEST_F(TfjsModel, ConverterWrappedTopology) {
  json wrapped = {
      {"keras_version", "2.2.4"}, {"backend", "tensorflow"}, {"model_config", dense_topology()}, {"training_config", nullptr}};
  const std::string path = model(json::array({weight("dense/kernel", {4, 3}), weight("dense/bias", {3})}),
                                 {{"w.bin", le32(kernel_values()) + le32(kBias)}}, wrapped);
  formats::LoadedModel m = formats::load_model(path);
  EXPECT_EQ(m.producer, "tfjs-layers 4.22.0 (keras 2.2.4)");
  expect_dense_output(m);
}

// tfjs-core's decodeWeights: q * scale + min in double, stored as float; float16 exactly; int32
// rounded as Math.round (halves towards +infinity).
TEST_F(TfjsModel, DequantisesAsTfjsCore) {
  const double min8 = -0.4681234567891, scale8 = 0.003659010167215;
  const double min16 = -1.25, scale16 = 3.0517578125e-5 * 1.1;
  const std::vector<uint16_t> halves = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0x8000, 0x3555};
  std::string bytes;
  for (int q = 0; q < 256; ++q) bytes.push_back(static_cast<char>(q));
  for (uint16_t q : {0, 1, 40000, 65535}) bytes += {static_cast<char>(q & 0xff), static_cast<char>(q >> 8)};
  for (uint16_t h : halves) bytes += {static_cast<char>(h & 0xff), static_cast<char>(h >> 8)};
  bytes += std::string{0, 1, 2, 4};  // int32 codes
  json w = json::array(
      {weight("a/kernel", {256}), weight("b/kernel", {4}), weight("c/kernel", {8}), weight("d/kernel", {4}, "int32")});
  w[0]["quantization"] = {{"dtype", "uint8"}, {"min", min8}, {"scale", scale8}, {"original_dtype", "float32"}};
  w[1]["quantization"] = {{"scale", scale16}, {"min", min16}, {"dtype", "uint16"}};  // the older key order
  w[2]["quantization"] = {{"dtype", "float16"}};
  w[3]["quantization"] = {{"dtype", "uint8"}, {"min", -1.5}, {"scale", 0.5}};
  const std::string path = model(w, {{"q.bin", bytes}});
  TfjsWeights weights(json::parse(read_bytes(path))["weightsManifest"], path);

  const Tensor a = weights.read(0);
  for (int q = 0; q < 256; ++q) ASSERT_EQ(a.data<float>()[q], static_cast<float>(q * scale8 + min8)) << "uint8 code " << q;
  const Tensor b = weights.read(1);
  const std::vector<uint16_t> codes16 = {0, 1, 40000, 65535};
  for (size_t k = 0; k < codes16.size(); ++k) EXPECT_EQ(b.data<float>()[k], static_cast<float>(codes16[k] * scale16 + min16));
  const Tensor c = weights.read(2);
  const std::vector<float> expected16 = {1.0f,     -2.0f, std::ldexp(1.0f, -24), std::ldexp(1023.0f, -24), 65504.0f,
                                         INFINITY, -0.0f, 0.333251953125f};
  for (size_t k = 0; k < expected16.size(); ++k)
    EXPECT_EQ(std::bit_cast<uint32_t>(c.data<float>()[k]), std::bit_cast<uint32_t>(expected16[k])) << "half " << halves[k];
  // -1.5, -1, -0.5, 0.5: Math.round gives -1, -1, -0, 1 (C's round would give -2 and -1 for the halves).
  const Tensor d = weights.read(3);
  EXPECT_EQ(d.to_doubles(), (std::vector<double>{-1, -1, 0, 1}));
  EXPECT_EQ(weights.total_bytes(), bytes.size());
}

TEST_F(TfjsModel, MissingShardIsNamed) {
  const std::string bytes = le32(kernel_values()) + le32(kBias);
  const std::string path = model(json::array({weight("dense/kernel", {4, 3}), weight("dense/bias", {3})}),
                                 {{"group1-shard1of2.bin", bytes.substr(0, 48)}, {"group1-shard2of2.bin", bytes.substr(48)}});
  fs::remove(dir_ / "group1-shard2of2.bin");
  expect_error([&] { formats::load_model(path); }, {ErrorKind::invalid_model},
               {path, "'group1-shard2of2.bin' is missing", "'dense/bias'"});
}

TEST_F(TfjsModel, ShortOrLongShardIsNamedWithTheWeight) {
  const std::string bytes = le32(kernel_values()) + le32(kBias);
  const json weights = json::array({weight("dense/kernel", {4, 3}), weight("dense/bias", {3})});
  const std::string short_path = model(weights, {{"group1-shard1of1.bin", bytes.substr(0, 52)}});
  expect_error([&] { formats::load_model(short_path); }, {ErrorKind::invalid_model},
               {short_path, "'group1-shard1of1.bin' ends 8 bytes short", "'dense/bias'", "[3]"});
  const std::string long_path = model(weights, {{"group1-shard1of1.bin", bytes + "tail"}});
  expect_error([&] { formats::load_model(long_path); }, {ErrorKind::invalid_model},
               {long_path, "'group1-shard1of1.bin' holds 4 bytes more", "'dense/bias'"});
}

TEST_F(TfjsModel, ShardPathsMustStayInTheModelsFolder) {
  const std::string outside = dir_.filename().string() + "_outside.bin";
  file("../" + outside, le32(kernel_values()) + le32(kBias));  // there, and still refused
  for (const std::string& listed :
       {"../" + outside, "sub/../../" + outside, "..\\" + outside, std::string("/etc/passwd"), std::string("C:\\weights.bin")}) {
    json m = json::parse(read_bytes(plain_model()));
    m["weightsManifest"][0]["paths"] = {listed};
    const std::string path = file("model.json", m.dump());
    expect_error([&] { formats::load_model(path); }, {ErrorKind::invalid_model}, {path, listed, "folder"});
  }
  json m = json::parse(read_bytes(plain_model()));
  m["weightsManifest"][0]["paths"] = {"https://example.com/group1-shard1of1.bin"};
  const std::string path = file("model.json", m.dump());
  expect_error([&] { formats::load_model(path); }, {ErrorKind::invalid_model}, {"is a URL"});
  fs::remove(dir_.parent_path() / outside);
}

TEST_F(TfjsModel, UnknownDtypesAreRefused) {
  const std::string bytes = le32(kernel_values()) + le32(kBias);
  auto refused = [&](json w0, std::initializer_list<ErrorKind> kinds, const std::vector<std::string>& fragments) {
    const std::string path = model(json::array({w0, weight("dense/bias", {3})}), {{"w.bin", bytes}});
    expect_error([&] { formats::load_model(path); }, kinds, fragments);
  };
  refused(weight("dense/kernel", {4, 3}, "float64"), {ErrorKind::invalid_model}, {"'dense/kernel'", "unknown dtype 'float64'"});
  refused(weight("dense/kernel", {4, 3}, "string"), {ErrorKind::unsupported}, {"'dense/kernel'", "'string'"});
  json q = weight("dense/kernel", {4, 3});
  q["quantization"] = {{"dtype", "int4"}, {"min", 0}, {"scale", 1}};
  refused(q, {ErrorKind::invalid_model}, {"'dense/kernel'", "unknown quantization dtype 'int4'"});
  q["quantization"] = {{"dtype", "uint8"}};
  refused(q, {ErrorKind::invalid_model}, {"'dense/kernel'", "'min' and 'scale'"});
  refused(weight("dense/kernel", {4, -3}), {ErrorKind::invalid_model}, {"'dense/kernel'", "[4,-3]"});
  refused(weight("dense/kernel", {2147483647, 2147483647, 2147483647}), {ErrorKind::invalid_model}, {"'dense/kernel'", "GiB"});
}

// Malformed or mistyped JSON is an error naming the file, never an exception of the JSON library.
TEST_F(TfjsModel, MalformedJsonIsAnErrorNamingTheFile) {
  const std::string good = read_bytes(plain_model());
  for (
      const std::string& text :
      {good.substr(0, good.size() / 2), std::string(R"({"modelTopology": {}, "weightsManifest": 5})"),
       std::string(R"({"modelTopology": [], "weightsManifest": []})"),
       std::string(R"({"modelTopology": {"class_name": "Sequential", "config": {"layers": 5}}, "weightsManifest": []})"),
       std::string(
           R"({"modelTopology": {"class_name": "Sequential", "config": 3}, "weightsManifest": [{"paths": [], "weights": [{"name": 7}]}]})"),
       std::string(
           R"({"modelTopology": {"class_name": 1, "config": {}}, "weightsManifest": [{"paths": ["w.bin"], "weights": [{"name": "a/b", "shape": "4"}]}]})"),
       std::string(
           R"({"modelTopology": {"class_name": "Sequential", "config": {}}, "weightsManifest": [{"paths": [3], "weights": []}]})")}) {
    const std::string path = file("model.json", text);
    expect_error([&] { formats::load_model(path); }, {ErrorKind::invalid_model, ErrorKind::unsupported}, {path});
  }
  const std::string card = file("model.json", R"({"labels": ["mel", "nv"]})");
  expect_error([&] { formats::load_model(card); }, {ErrorKind::invalid_model}, {card, "not a TensorFlow.js model"});
}

TEST_F(TfjsModel, GraphModelsAreRefusedNamingWhatToConvertTo) {
  const std::string path =
      file("model.json", R"({"format": "graph-model", "modelTopology": {"node": []}, "weightsManifest": []})");
  expect_error([&] { formats::load_model(path); }, {ErrorKind::unsupported}, {path, "graph model", "tfjs_layers_model"});
}

TEST_F(TfjsModel, MissingLayerWeightsNameTheLayerAndTheFile) {
  const std::string path = model(json::array({weight("other/kernel", {4, 3})}), {{"w.bin", le32(kernel_values())}});
  expect_error([&] { formats::load_model(path); }, {ErrorKind::invalid_model}, {path, "'dense'", "dense/*"});
}

// Told from the bytes: any name, a byte order mark, leading whitespace.
TEST_F(TfjsModel, RecognisedFromTheBytesNotTheName) {
  const std::string text = read_bytes(plain_model());
  const std::string path = file("export.txt", "\xef\xbb\xbf \n\t" + text);
  expect_dense_output(formats::load_model(path));
}

}  // namespace
}  // namespace dermal::test::keras
