// Pieces of the Keras importer on their own: Keras' naming rule, the layout helpers, the zip
// reader, and one-layer .keras files built here (config + an empty weights file) whose outputs
// are checked against Keras' formulas: the activations (hard_sigmoid changed meaning in Keras 3),
// and the refusals that need no weights.
#include <hdf5.h>
#include <zip.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "formats/keras/keras_layer.h"
#include "formats/keras/keras_weights.h"
#include "formats/keras/trial_read.h"
#include "formats/keras/zip_archive.h"
#include "formats/keras_check.h"
#include "error_check.h"

namespace dermal::test::keras {
namespace {

namespace fk = formats::keras;

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("dermal_keras_" + std::to_string(getpid()) + "_" + name)).string();
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A zip with the given entries, stored or deflated.
void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& entries, bool deflate) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr);
  for (const auto& [name, data] : entries) {
    zip_source_t* src = zip_source_buffer(z, data.data(), data.size(), 0);
    zip_int64_t idx = zip_file_add(z, name.c_str(), src, ZIP_FL_OVERWRITE);
    ASSERT_GE(idx, 0);
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(z), 0);
}

// An HDF5 file with no datasets: the weights of a model whose layers have none.
std::string empty_hdf5() {
  const std::string path = temp_path("empty.h5");
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Gclose(H5Gcreate2(f, "vars", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Fclose(f);
  std::string bytes = read_bytes(path);
  std::remove(path.c_str());
  return bytes;
}

// A Keras 3 Sequential: an 8-feature input, then `layer`.
std::string one_layer_model(const json& layer, const std::string& version, bool deflate = false) {
  json model = {{"module", "keras"},
                {"class_name", "Sequential"},
                {"config",
                 {{"name", "sequential"},
                  {"layers", json::array({{{"module", "keras.layers"},
                                           {"class_name", "InputLayer"},
                                           {"config", {{"batch_shape", {nullptr, 8}}, {"name", "input_layer"}}}},
                                          layer})}}}};
  const std::string path = temp_path(layer["config"]["name"].get<std::string>() + ".keras");
  write_zip(path,
            {{"metadata.json", json{{"keras_version", version}}.dump()}, {"config.json", model.dump()},
             {"model.weights.h5", empty_hdf5()}},
            deflate);
  return path;
}

// A .keras zip holding `model` as its config.
std::string zipped_model(const json& model, const std::string& name, const std::string& version) {
  const std::string path = temp_path(name + ".keras");
  write_zip(path, {{"metadata.json", json{{"keras_version", version}}.dump()}, {"config.json", model.dump()},
                   {"model.weights.h5", empty_hdf5()}},
            false);
  return path;
}

json activation_layer(const std::string& act) {
  return {{"module", "keras.layers"}, {"class_name", "Activation"}, {"config", {{"name", "act"}, {"activation", act}}}};
}

const std::vector<float> kInput = {-7.0f, -3.2f, -1.0f, -0.25f, 0.0f, 0.4f, 2.9f, 6.5f};

std::vector<double> run_one(const std::string& path) {
  formats::LoadedModel m = formats::load_model(path);
  std::remove(path.c_str());
  return run(m, Tensor::from_floats({1, 8}, kInput)).output.to_doubles();
}

TEST(KerasNaming, SnakeCaseMatchesKeras) {
  EXPECT_EQ(fk::snake_case("Conv2D"), "conv2d");
  EXPECT_EQ(fk::snake_case("DepthwiseConv2D"), "depthwise_conv2d");
  EXPECT_EQ(fk::snake_case("BatchNormalization"), "batch_normalization");
  EXPECT_EQ(fk::snake_case("GlobalAveragePooling2D"), "global_average_pooling2d");
  EXPECT_EQ(fk::snake_case("ReLU"), "re_lu");
  EXPECT_EQ(fk::snake_case("PReLU"), "p_re_lu");
  EXPECT_EQ(fk::snake_case("ZeroPadding2D"), "zero_padding2d");
  EXPECT_EQ(fk::snake_case("Functional"), "functional");
}

TEST(KerasLayout, AxesAndBroadcastParameters) {
  EXPECT_EQ(fk::stored_axis(-1, 4), 1);  // channels
  EXPECT_EQ(fk::stored_axis(1, 4), 2);   // height
  EXPECT_EQ(fk::stored_axis(2, 4), 3);
  EXPECT_EQ(fk::stored_axis(-1, 3), 2);
  EXPECT_EQ(fk::stored_axis(4, 4), -1);
  // HWIO (2,3,5,7) -> OIHW: element [h][w][i][o] lands at [o][i][h][w].
  std::vector<float> v(2 * 3 * 5 * 7);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  Tensor hwio = Tensor::from_floats({2, 3, 5, 7}, v);
  Tensor oihw = fk::permuted(hwio, {3, 2, 0, 1});
  ASSERT_EQ(oihw.shape(), (engine::Shape{7, 5, 2, 3}));
  for (int h = 0; h < 2; ++h)
    for (int w = 0; w < 3; ++w)
      for (int i = 0; i < 5; ++i)
        for (int o = 0; o < 7; ++o)
          ASSERT_EQ(oihw.data<float>()[((o * 5 + i) * 2 + h) * 3 + w], v[((h * 3 + w) * 5 + i) * 7 + o]);
  // A per-(H, W, C) parameter (PReLU's alpha) broadcast against N, C, H, W.
  Tensor hwc = Tensor::from_floats({2, 3, 13}, std::vector<float>(v.begin(), v.begin() + 78));
  Tensor b = fk::broadcastable(hwc, {1, 2, 3}, 4);
  ASSERT_EQ(b.shape(), (engine::Shape{1, 13, 2, 3}));
  EXPECT_EQ(b.data<float>()[(4 * 2 + 1) * 3 + 2], v[(1 * 3 + 2) * 13 + 4]);
  Tensor ch = fk::broadcastable(Tensor::from_floats({13}, std::vector<float>(13, 1.0f)), {-1}, 4);
  EXPECT_EQ(ch.shape(), (engine::Shape{1, 13, 1, 1}));
}

TEST(KerasZip, StoredEntriesAreReadInPlaceDeflatedOnesInflated) {
  std::string payload(100000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 7919) % 251);
  for (bool deflate : {false, true}) {
    const std::string path = temp_path(deflate ? "deflated.zip" : "stored.zip");
    write_zip(path, {{"a.txt", "hello"}, {"model.weights.h5", payload}}, deflate);
    {
      fk::ZipArchive z = fk::ZipArchive::open(path);
      EXPECT_TRUE(z.has("a.txt"));
      EXPECT_FALSE(z.has("b.txt"));
      EXPECT_EQ(z.read("a.txt"), "hello");
      fk::ZipArchive::Entry e = z.entry("model.weights.h5");
      EXPECT_EQ(e.in_place, !deflate);
      ASSERT_EQ(e.size, payload.size());
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(e.data), e.size), payload);
      z.release(e, 0, e.size);  // the pages come back from the file when read again
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(e.data), e.size), payload);
      EXPECT_THROW(z.entry("missing"), Error);
    }
    std::remove(path.c_str());
  }
}

TEST(KerasFiles, NotAKerasModelIsRefusedClearly) {
  const std::string zip_path = temp_path("not_keras.keras");
  write_zip(zip_path, {{"readme.txt", "no model here"}}, false);
  expect_error([&] { formats::load_model(zip_path); }, {ErrorKind::invalid_model}, {"config.json"});
  std::remove(zip_path.c_str());
  const std::string h5_path = temp_path("weights_only.h5");
  std::ofstream(h5_path, std::ios::binary) << empty_hdf5();
  expect_error([&] { formats::load_model(h5_path); }, {}, {"model_config"});
  std::remove(h5_path.c_str());
}

// Files found by fuzzing (reproducers in fuzz/corpus): ones on which Debian's HDF5 1.10 loops
// forever, reads out of bounds or crashes, and datasets declaring far more values than they
// store. Each is refused with a clear error, quickly, and this process is untouched.
TEST(KerasFiles, CorruptFilesAreRefusedNotHungOrCrashed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"keras_h5/global_heap_free_space_size_0", "corrupt HDF5 global heap at byte 2048 (object 0 of size 0)"},
      {"keras_h5/global_heap_object_past_its_collection", "corrupt HDF5 global heap"},
      // HDF5 reads out of bounds here: whether that faults depends on the memory around it, so the
      // error is either the crash contained or the garbage it read.
      {"keras_h5/hdf5_segfault_reading_a_string", "hdf5_segfault_reading_a_string'"},
      {"keras_h5/permute_dims_not_a_permutation", "config 'dims' must be a permutation of 1..3"},
      {"keras_h5/dataset_shape_beyond_its_storage", "declares more than 2^31 values"},
      {"keras_zip/dataset_shape_beyond_its_storage", "declares more than 2^31 values"},
  };
  for (const auto& [name, says] : cases) {
    const auto start = std::chrono::steady_clock::now();
    expect_error([&] { formats::load_model(std::string(DERMAL_SOURCE_DIR) + "/fuzz/corpus/" + name); }, {ErrorKind::invalid_model},
                 {says});
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5)) << name;
  }
}

// The trial read in a child process: what the child throws comes back as it was; a child that
// crashes or runs past its deadline becomes a clear error and leaves this process as it was.
TEST(KerasTrialRead, ChildRefusalsCrashesAndHangsBecomeErrors) {
  fk::trial_read_in_child([] {}, "a file", 5);
  expect_error([] { fk::trial_read_in_child([] { throw Error(ErrorKind::unsupported, "layer 'x' (Lambda)"); }, "f", 5); },
               {ErrorKind::unsupported}, {"layer 'x' (Lambda)"});
  expect_error([] { fk::trial_read_in_child([] { std::raise(SIGKILL); }, "'m.h5'", 5); }, {ErrorKind::invalid_model},
               {"'m.h5'", "crashed", "signal 9"});
  const auto start = std::chrono::steady_clock::now();
  expect_error([] { fk::trial_read_in_child([] { ::pause(); }, "'m.h5'", 0.3); }, {ErrorKind::invalid_model},
               {"did not finish reading within"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // Burning CPU past the deadline is a loop; using none is a stall, retried, then refused.
  expect_error([] { fk::trial_read_in_child([] { for (std::atomic<unsigned> spin{0};;) spin.fetch_add(1, std::memory_order_relaxed); }, "'m.h5'", 3); },
               {ErrorKind::invalid_model}, {"did not finish reading within 3 s"});
  expect_error([] { fk::trial_read_in_child([] { ::pause(); }, "'m.h5'", 60); }, {ErrorKind::invalid_model},
               {"'m.h5'", "stopped making progress", "3 tries"});
}

// The fork copies a lock another thread holds at that instant, and the child that needs it waits
// forever (GCC 12's AddressSanitizer allocator did this to a server loading a model while its
// HTTP threads started): the trial read sees the child use no CPU and forks a new one.
TEST(KerasTrialRead, AChildBlockedOnALockHeldAtTheForkIsForkedAgain) {
  std::mutex lock;
  std::atomic<bool> held{false};
  std::thread holder([&] {
    std::lock_guard<std::mutex> hold(lock);
    held = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  });
  while (!held) std::this_thread::yield();
  EXPECT_NO_THROW(fk::trial_read_in_child([&] { std::lock_guard<std::mutex> take(lock); }, "'m.h5'", 30));
  holder.join();
}

struct ActivationCase {
  const char* name;
  const char* version;
  double (*f)(double);
};

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

class KerasActivation : public ::testing::TestWithParam<ActivationCase> {};

TEST_P(KerasActivation, MatchesKerasFormula) {
  const ActivationCase& c = GetParam();
  std::vector<double> got = run_one(one_layer_model(activation_layer(c.name), c.version));
  ASSERT_EQ(got.size(), kInput.size());
  if (std::string(c.name) == "softmax") {
    double sum = 0;
    for (float x : kInput) sum += std::exp(x);
    for (size_t i = 0; i < kInput.size(); ++i) EXPECT_NEAR(got[i], std::exp(kInput[i]) / sum, 1e-6);
    return;
  }
  for (size_t i = 0; i < kInput.size(); ++i) EXPECT_NEAR(got[i], c.f(kInput[i]), 1e-5) << c.name << "(" << kInput[i] << ")";
}

INSTANTIATE_TEST_SUITE_P(
    Keras, KerasActivation,
    ::testing::Values(
        ActivationCase{"linear", "3.6.0", [](double x) { return x; }},
        ActivationCase{"relu", "3.6.0", [](double x) { return std::max(x, 0.0); }},
        ActivationCase{"relu6", "3.6.0", [](double x) { return std::min(std::max(x, 0.0), 6.0); }},
        ActivationCase{"sigmoid", "3.6.0", sigmoid},
        // Keras 3: relu6(x + 3) / 6; Keras 2: clip(0.2 x + 0.5, 0, 1).
        ActivationCase{"hard_sigmoid", "3.6.0", [](double x) { return std::min(std::max(x + 3, 0.0), 6.0) / 6; }},
        ActivationCase{"hard_sigmoid", "2.15.0", [](double x) { return std::min(std::max(0.2 * x + 0.5, 0.0), 1.0); }},
        ActivationCase{"swish", "3.6.0", [](double x) { return x * sigmoid(x); }},
        ActivationCase{"silu", "3.6.0", [](double x) { return x * sigmoid(x); }},
        ActivationCase{"hard_swish", "3.6.0", [](double x) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; }},
        ActivationCase{"gelu", "3.6.0", [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
        ActivationCase{"tanh", "3.6.0", [](double x) { return std::tanh(x); }},
        ActivationCase{"elu", "3.6.0", [](double x) { return x > 0 ? x : std::exp(x) - 1; }},
        ActivationCase{"softplus", "3.6.0", [](double x) { return std::log1p(std::exp(x)); }},
        ActivationCase{"softmax", "3.6.0", nullptr}),
    [](const auto& info) { return std::string(info.param.name) + "_keras" + info.param.version[0]; });

TEST(KerasLayers, ReluEluAndLeakyReluOptions) {
  json relu = {{"class_name", "ReLU"}, {"config", {{"name", "relu"}, {"max_value", 2.5}, {"negative_slope", 0.1}, {"threshold", 0.0}}}};
  std::vector<double> got = run_one(one_layer_model(relu, "3.6.0", /*deflate=*/true));
  for (size_t i = 0; i < kInput.size(); ++i)
    EXPECT_NEAR(got[i], kInput[i] < 0 ? 0.1 * kInput[i] : std::min<double>(kInput[i], 2.5), 1e-6);
  json elu = {{"class_name", "ELU"}, {"config", {{"name", "elu"}, {"alpha", 0.7}}}};
  got = run_one(one_layer_model(elu, "3.6.0"));
  for (size_t i = 0; i < kInput.size(); ++i)
    EXPECT_NEAR(got[i], kInput[i] > 0 ? kInput[i] : 0.7 * (std::exp(kInput[i]) - 1), 1e-6);
  json leaky = {{"class_name", "LeakyReLU"}, {"config", {{"name", "leaky"}, {"negative_slope", 0.05}}}};
  got = run_one(one_layer_model(leaky, "3.6.0"));
  for (size_t i = 0; i < kInput.size(); ++i) EXPECT_NEAR(got[i], kInput[i] < 0 ? 0.05 * kInput[i] : kInput[i], 1e-6);
}

// Keras 2.2 Sequentials have no InputLayer: the first layer states the input shape; Keras 2.1
// wrote the config as a bare list of layers.
TEST(KerasModels, SequentialWithoutInputLayer) {
  json first = {{"class_name", "Activation"}, {"config", {{"name", "act"}, {"activation", "relu"}, {"batch_input_shape", {nullptr, 8}}}}};
  json second = {{"class_name", "Activation"}, {"config", {{"name", "act2"}, {"activation", "tanh"}}}};
  for (const json& cfg : {json{{"name", "seq"}, {"layers", {first, second}}}, json::array({first, second})}) {
    const std::string path = zipped_model({{"class_name", "Sequential"}, {"config", cfg}}, "seq", "2.2.4");
    formats::LoadedModel m = formats::load_model(path);
    std::remove(path.c_str());
    ASSERT_EQ(m.graph->inputs.size(), 1u);
    EXPECT_EQ(m.graph->inputs[0].shape, (engine::Shape{-1, 8}));
    std::vector<double> got = run(m, Tensor::from_floats({1, 8}, kInput)).output.to_doubles();
    for (size_t i = 0; i < kInput.size(); ++i) EXPECT_NEAR(got[i], std::tanh(std::max(0.0f, kInput[i])), 1e-6);
  }
}

// A nested Sequential called with no inputs (found by fuzz/keras_config) is refused, not a crash.
TEST(KerasModels, NestedModelCalledWithoutInputsIsRefused) {
  json input = {{"class_name", "InputLayer"},
                {"name", "image"},
                {"config", {{"name", "image"}, {"batch_shape", {nullptr, 8}}}},
                {"inbound_nodes", json::array()}};
  json act = {{"class_name", "Activation"}, {"config", {{"name", "act"}, {"activation", "relu"}}}};
  json inner = {{"class_name", "Sequential"},
                {"name", "inner"},
                {"config", {{"name", "inner"}, {"layers", json::array({act})}}},
                {"inbound_nodes", json::array({{{"args", json::array()}, {"kwargs", json::object()}}})}};
  json model = {{"class_name", "Functional"},
                {"config",
                 {{"name", "outer"},
                  {"layers", json::array({input, inner})},
                  {"input_layers", json::array({json::array({"image", 0, 0})})},
                  {"output_layers", json::array({json::array({"inner", 0, 0})})}}}};
  const std::string path = zipped_model(model, "outer", "3.6.0");
  expect_error([&] { formats::load_model(path); }, {ErrorKind::invalid_model}, {"'inner'", "too few inputs"});
  std::remove(path.c_str());
}

TEST(KerasLayers, UnsupportedSettingsFailAtLoadNamingTheLayer) {
  auto expect_refused = [](const json& layer, const std::string& what) {
    const std::string path = one_layer_model(layer, "3.6.0");
    SCOPED_TRACE(layer.dump());
    expect_error([&] { formats::load_model(path); }, {ErrorKind::unsupported},
                 {"'" + layer["config"]["name"].get<std::string>() + "'", layer["class_name"].get<std::string>(),
                  "Keras 3.6.0", what});
    std::remove(path.c_str());
  };
  expect_refused({{"class_name", "ReLU"}, {"config", {{"name", "thresholded"}, {"threshold", 1.0}}}}, "threshold");
  expect_refused(activation_layer("mish"), "activation 'mish'");
  expect_refused({{"class_name", "Lambda"}, {"config", {{"name", "my_lambda"}, {"function", "gASV..."}}}}, "Python");
  expect_refused({{"module", "my_package.layers"}, {"class_name", "Swish2"}, {"registered_name", "Custom>Swish2"},
                  {"config", {{"name", "fancy"}}}},
                 "custom");
}

// A second converter for a class already in the table is refused (as OpRegistry refuses a
// duplicate op), and the refused registration adds nothing, not even its new entries.
TEST(KerasLayers, DuplicateRegistrationIsRefused) {
  const fk::LayerConverter* dense = fk::find_layer_converter("Dense");
  ASSERT_NE(dense, nullptr);
  const auto classes = fk::supported_layer_classes();
  const fk::LayerConverter other = [](fk::LayerCall& c) { return c.in(); };
  expect_error([&] { fk::LayerRegistration r{{"Dense", other}}; }, {ErrorKind::internal},
               {"Keras layer class 'Dense' is registered twice"});
  expect_error([&] { fk::LayerRegistration r{{"TestOnlyLayer", other}, {"TestOnlyLayer", other}}; }, {ErrorKind::internal},
               {"'TestOnlyLayer' is registered twice"});
  expect_error([&] { fk::LayerRegistration r{{"TestOnlyLayer", other}, {"Conv2D", other}}; }, {ErrorKind::internal},
               {"'Conv2D' is registered twice"});
  EXPECT_EQ(fk::find_layer_converter("Dense"), dense);
  EXPECT_NE(dense->target_type(), other.target_type());  // still the real converter, not overwritten
  EXPECT_EQ(fk::find_layer_converter("TestOnlyLayer"), nullptr);
  EXPECT_EQ(fk::supported_layer_classes(), classes);
}

// docs/keras.md's list of layers is the layer table: the block between its "keras-layers"
// markers names exactly the registered classes, in the table's order. On a difference the test
// prints the block to paste (the list is generated from the table, never written by hand).
TEST(KerasLayers, DocsListExactlyTheLayerTable) {
  std::string block;
  for (const auto& name : fk::supported_layer_classes()) block += (block.empty() ? "" : ", ") + name;
  std::string wrapped, line;  // at 100 columns, as the rest of the docs
  std::istringstream words(block);
  for (std::string w; words >> w;) {
    if (!line.empty() && line.size() + 1 + w.size() > 100) {
      wrapped += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + w;
  }
  wrapped += line + "\n";
  std::ifstream f(std::string(DERMAL_SOURCE_DIR) + "/docs/keras.md");
  std::stringstream all;
  all << f.rdbuf();
  const std::string text = all.str();
  const std::string open = "<!-- keras-layers: generated from the layer table by tests/formats/keras_units_test.cpp -->\n",
                    close = "<!-- /keras-layers -->";
  const size_t start = text.find(open), end = text.find(close);
  ASSERT_NE(start, std::string::npos) << "docs/keras.md lacks the marker " << open;
  ASSERT_NE(end, std::string::npos) << "docs/keras.md lacks the marker " << close;
  EXPECT_EQ(text.substr(start + open.size(), end - start - open.size()), wrapped)
      << "docs/keras.md's layer list differs from the layer table; the block should read:\n" << wrapped;
}

}  // namespace
}  // namespace dermal::test::keras
