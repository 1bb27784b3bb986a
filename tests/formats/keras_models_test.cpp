// Keras models built in TensorFlow.js and written as Keras files by tools/keras_reference (CTest
// fixture keras_reference): the applications' graphs in both formats (outputs and Grad-CAM at
// the auto layer), the small models covering every other layer type, the messy variants real
// files come in, and the refusals. All suites here are KerasRef/*: they need the fixture.
#include <filesystem>

#include <fstream>

#include "error_check.h"
#include "explain/classifier.h"
#include "formats/keras_check.h"
#include "serve/serve_fixture.h"
#include "vision/image_files.h"

namespace dermal::test::keras {
namespace {

json reference(const std::string& model) { return read_json(model_file(model, "reference.json")); }

// The auto layer of Grad-CAM: the last spatial tensor before global pooling, i.e. what the
// GlobalAveragePool node reads.
std::string auto_layer(const engine::Graph& g) {
  std::string found;
  for (const engine::Node& n : g.nodes)
    if (n.type == "GlobalAveragePool" || n.type == "GlobalMaxPool") found = n.inputs[0];
  return found;
}

struct ModelFormat {
  std::string model, file;
};
std::string param_name(const ::testing::TestParamInfo<ModelFormat>& info) {
  std::string s = info.param.model + "_" + info.param.file;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

class KerasArchitecture : public ::testing::TestWithParam<ModelFormat> {};

TEST_P(KerasArchitecture, OutputAndGradCamMatchTfjs) {
  const auto& p = GetParam();
  formats::LoadedModel m = formats::load_model(model_file(p.model, p.file));
  const json ref = reference(p.model);
  expect_matches_reference(m, ref, p.model + "/" + p.file);

  // Grad-CAM at the auto layer from the engine's gradient of the top logit.
  const std::string cam_layer = auto_layer(*m.graph);
  ASSERT_EQ(cam_layer, ref["cam_layer"].get<std::string>());
  const Tensor input = tensor_of(ref["input"]);
  engine::PlanOptions opts;
  opts.input_shapes = {{m.graph->inputs[0].name, input.shape()}};
  opts.keep = {cam_layer, m.logits};
  opts.backward_from = {m.logits};
  opts.backward_to = {cam_layer};
  engine::Executor ex(m.graph, opts);
  ex.set_input(m.graph->inputs[0].name, input);
  ex.forward();
  Tensor seed = Tensor::zeros(engine::DType::f32, ex.info(m.logits).shape);
  seed.data<float>()[ref["top"].get<int>()] = 1;
  Tensor grad = ex.backward(m.logits, seed, {cam_layer})[0];
  Tensor act = ex.get(cam_layer);  // 1, C, H, W
  const int64_t c = act.dim(1), hw = act.dim(2) * act.dim(3);
  std::vector<double> weights(static_cast<size_t>(c), 0.0), cam(static_cast<size_t>(hw), 0.0);
  const float* g = grad.data<float>();
  const float* a = act.data<float>();
  for (int64_t k = 0; k < c; ++k)
    for (int64_t i = 0; i < hw; ++i) weights[static_cast<size_t>(k)] += g[k * hw + i] / static_cast<double>(hw);
  for (int64_t i = 0; i < hw; ++i) {
    for (int64_t k = 0; k < c; ++k) cam[static_cast<size_t>(i)] += weights[static_cast<size_t>(k)] * a[k * hw + i];
    cam[static_cast<size_t>(i)] = std::max(0.0, cam[static_cast<size_t>(i)]);
  }
  const std::vector<double> ref_cam = tensor_of(ref["cam"]).to_doubles();
  ASSERT_EQ(cam.size(), ref_cam.size());
  EXPECT_GE(pearson(cam, ref_cam), 0.999) << p.model << "/" << p.file << ": Grad-CAM at " << cam_layer;
  const Tensor ref_w = tensor_of(ref["cam_grad_weights"]);
  double max_diff = 0;
  for (int64_t k = 0; k < c; ++k) max_diff = std::max(max_diff, std::abs(weights[static_cast<size_t>(k)] - ref_w.data<float>()[k]));
  EXPECT_LE(max_diff, 1e-4 * std::max(1.0, max_abs(ref_w))) << "channel weights (mean gradient)";
}

std::vector<ModelFormat> both_formats(const std::vector<std::string>& models) {
  std::vector<ModelFormat> out;
  for (const auto& m : models)
    for (const char* f : {"model.keras", "model.h5"}) out.push_back({m, f});
  return out;
}

INSTANTIATE_TEST_SUITE_P(KerasRef, KerasArchitecture,
                         ::testing::ValuesIn(both_formats({"mobilenet_v2", "resnet50", "efficientnet_b0", "densenet121",
                                                           "inception_v3", "xception", "zoo_gray"})),
                         param_name);

// The small models: every other layer type, odd sizes; Teachable Machine's nesting; a base
// model called inside a Functional model (transfer learning).
class KerasSmallModel : public ::testing::TestWithParam<ModelFormat> {};

TEST_P(KerasSmallModel, OutputMatchesTfjs) {
  const auto& p = GetParam();
  formats::LoadedModel m = formats::load_model(model_file(p.model, p.file));
  expect_matches_reference(m, reference(p.model), p.model + "/" + p.file);
}

INSTANTIATE_TEST_SUITE_P(KerasRef, KerasSmallModel,
                         ::testing::ValuesIn(both_formats({"zoo_a", "zoo_b", "teachable_machine", "transfer", "zoo_preprocess"})),
                         param_name);

// Real files are messier than the documentation: each variant loads and computes the same.
class KerasMessyFile : public ::testing::TestWithParam<ModelFormat> {};

TEST_P(KerasMessyFile, OutputMatchesTfjs) {
  const auto& p = GetParam();
  formats::LoadedModel m = formats::load_model(model_file(p.model, "messy/" + p.file));
  expect_matches_reference(m, reference(p.model), p.model + "/messy/" + p.file);
  if (p.file == "really_hdf5.keras" || p.file == "model_class.h5") {
    EXPECT_EQ(m.format, "hdf5");
  }
  if (p.file == "tf215_backslash.keras") {
    EXPECT_EQ(m.producer, "keras 2.15.0");
  }
  if (p.file == "keras3_legacy.h5") {
    EXPECT_EQ(m.producer, "keras 3.6.0");
  }
}

std::vector<ModelFormat> messy_cases() {
  std::vector<ModelFormat> out;
  for (const char* model : {"zoo_a", "zoo_b", "teachable_machine", "transfer"})
    for (const char* f : {"tf215_backslash.keras", "really_hdf5.keras", "compressed.keras", "model_class.h5",
                          "chunked_names.h5", "keras3_legacy.h5"})
      out.push_back({model, f});
  return out;
}

INSTANTIATE_TEST_SUITE_P(KerasRef, KerasMessyFile, ::testing::ValuesIn(messy_cases()), param_name);

// Teachable Machine's layout survives as Keras names: nested layers keep their own names.
TEST(KerasRefNames, NestedLayersKeepTheirNames) {
  formats::LoadedModel m = formats::load_model(model_file("teachable_machine", "model.h5"));
  EXPECT_EQ(auto_layer(*m.graph), "out_relu");
  EXPECT_EQ(m.graph->outputs[0].name, "dense_Dense2");
  EXPECT_EQ(m.logits, "dense_Dense2/preact");
  formats::LoadedModel t = formats::load_model(model_file("transfer", "model.keras"));
  EXPECT_EQ(auto_layer(*t.graph), "out_relu");
}

// A Lambda (pickled Python), a custom class and an unknown class fail at load, naming the layer,
// its class and the Keras version.
class KerasRefusal : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasRefusal, NamesLayerClassAndVersion) {
  const std::string base = model_file("zoo_b", "messy/refuse_" + GetParam() + ".h5");
  std::ifstream expect(base.substr(0, base.size() - 3) + ".txt");
  std::string layer, cls;
  std::getline(expect, layer);
  std::getline(expect, cls);
  std::vector<std::string> fragments{"'" + layer + "'", cls, "Keras 2.4.0"};
  if (GetParam() == "lambda") fragments.push_back("Python");
  if (GetParam() == "custom") fragments.push_back("custom");
  expect_error([&] { formats::load_model(base); }, {ErrorKind::unsupported}, fragments);
}

INSTANTIATE_TEST_SUITE_P(KerasRef, KerasRefusal, ::testing::Values("lambda", "custom", "unknown"));

}  // namespace
}  // namespace dermal::test::keras

namespace dermal::test::keras {
namespace {

// The one-channel reference model through the path users take, in all three formats: the
// classifier's answer on TF.js's reference input is TF.js's output, its own input from a photo
// is [1, 20, 18, 1], explain gives the map at the auto layer, and the server answers it.
TEST(KerasRefGray, PredictExplainAndServeInEveryFormat) {
  const json ref = reference("zoo_gray");
  const Tensor input = tensor_of(ref["input"]);
  const Tensor expected = tensor_of(ref["output"]);
  formats::CardOverrides raw;
  raw.preprocess_mode = "raw";  // the model rescales itself
  for (const char* file : {"model.keras", "model.h5", "tfjs/model.json"}) {
    SCOPED_TRACE(file);
    auto clf = explain::Classifier::load(model_file("zoo_gray", file), "", raw);
    EXPECT_EQ(clf->card().preprocess.channels, 1);
    EXPECT_TRUE(clf->card().preprocess.nhwc);
    explain::Timings t;
    const explain::Prediction p = clf->predict_input(input, t);
    ASSERT_EQ(p.probabilities.size(), 7u);
    for (size_t k = 0; k < 7; ++k) EXPECT_NEAR(p.probabilities[k], expected.data<float>()[k], 1e-5);
    vision::Image photo;
    photo.width = 40;
    photo.height = 30;
    for (int i = 0; i < 40 * 30; ++i) photo.rgb.insert(photo.rgb.end(), {uint8_t(i % 251), uint8_t(i % 83), uint8_t(i % 17)});
    EXPECT_EQ(clf->input_tensor(photo).shape(), (engine::Shape{1, 20, 18, 1}));
    const explain::Explanation e = clf->explain(photo, {}, t);
    EXPECT_EQ(e.layer, "conv_2");
    EXPECT_EQ(e.heatmap.width, 40);
  }
  const std::string card = ::testing::TempDir() + "/zoo_gray_card.json";
  std::ofstream(card) << R"({"labels": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"], "preprocess": {"mode": "raw"}})";
  serve::ServeConfig c = test_config();
  c.model_path = model_file("zoo_gray", "model.keras");
  c.card_path = card;
  RunningServer s(c);
  const Bytes jpeg = read_bytes(ham_image("ISIC_0024306"));
  auto r = s.client().Post("/api/predict", std::string(jpeg.begin(), jpeg.end()), "image/jpeg");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace dermal::test::keras
