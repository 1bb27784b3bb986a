// explain/cam.cpp against the papers' formulas as tools/reference/cam_methods.py computes them
// (NumPy, float64), on the committed fixture tests/data/cam/cam_reference.json: odd channel counts
// and grid sizes, a dead and a constant channel, and gradients at the scale real models give.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "explain/cam.h"
#include "explain/map_compare.h"
#include "error_check.h"

namespace dermal::test {
namespace {

using engine::DType;
using engine::Shape;
using engine::Tensor;
using explain::CamMethod;
using nlohmann::json;

const json& fixture() {
  static const json doc = [] {
    const std::string path = std::string(DERMAL_SOURCE_DIR) + "/tests/data/cam/cam_reference.json";
    std::ifstream f(path);
    if (!f) throw std::runtime_error("missing fixture " + path + " (tools/reference/make_cam_reference.py)");
    return json::parse(f);
  }();
  return doc;
}

Tensor tensor_from(const json& values, const Shape& shape) {
  std::vector<float> v = values.get<std::vector<float>>();
  return Tensor::from_floats(shape, v);
}

void expect_map_matches(const std::vector<float>& got, const json& expected_json, const std::string& what) {
  std::vector<double> expected = expected_json.get<std::vector<double>>();
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (float v : got) ASSERT_TRUE(std::isfinite(v)) << what;
  EXPECT_GE(pearson(got, expected), 0.9999) << what;
  std::vector<float> normalised = got;
  explain::normalize01(normalised);
  EXPECT_LE(max_map_diff(normalised, scaled01(expected)), 1e-5) << what << " after normalisation";
}

TEST(CamMethods, MatchPaperFormulasOnFixture) {
  const json& doc = fixture();
  ASSERT_GE(doc["cases"].size(), 3u);
  int checked = 0;
  for (const json& c : doc["cases"]) {
    const Shape shape = c["shape"].get<Shape>();
    const std::string name = c["name"];
    Tensor a = tensor_from(c["activation"], shape), g = tensor_from(c["gradient"], shape);
    for (const char* method : {"gradcam", "gradcam++", "hirescam", "xgradcam", "layercam"}) {
      auto map = explain::cam_from_gradients(explain::parse_cam_method(method), a, g);
      expect_map_matches(map, c["maps"][method], name + " " + method);
      ++checked;
    }
    expect_map_matches(explain::eigen_cam(a), c["maps"]["eigencam"], name + " eigencam");
    expect_map_matches(explain::weighted_cam(a, c["weights"].get<std::vector<float>>()), c["maps"]["weighted"],
                       name + " weighted (Score-CAM's combination)");
    checked += 2;
  }
  EXPECT_EQ(checked, 21);
}

TEST(CamMethods, BatchOfOneGivesTheSameMaps) {
  const json& c = fixture()["cases"][0];
  Shape shape = c["shape"].get<Shape>(), batched = shape;
  batched.insert(batched.begin(), 1);
  Tensor a = tensor_from(c["activation"], shape), g = tensor_from(c["gradient"], shape);
  Tensor a1 = tensor_from(c["activation"], batched), g1 = tensor_from(c["gradient"], batched);
  for (const std::string& name : explain::cam_method_names()) {
    CamMethod m = explain::parse_cam_method(name);
    if (!explain::needs_gradient(m)) continue;
    EXPECT_EQ(explain::cam_from_gradients(m, a, g), explain::cam_from_gradients(m, a1, g1)) << name;
  }
  EXPECT_EQ(explain::eigen_cam(a), explain::eigen_cam(a1));
}

TEST(CamMethods, MismatchedOrNonGradientInputsAreRejected) {
  Tensor a = Tensor::zeros(DType::f32, {3, 4, 5}), g = Tensor::zeros(DType::f32, {3, 5, 4});
  EXPECT_THROW(explain::cam_from_gradients(CamMethod::gradcam, a, g), Error);
  EXPECT_THROW(explain::cam_from_gradients(CamMethod::gradcam, a, Tensor::zeros(DType::f32, {4, 4, 5})), Error);
  EXPECT_THROW(explain::cam_from_gradients(CamMethod::gradcam, Tensor::zeros(DType::f32, {2, 3, 4, 5}),
                                           Tensor::zeros(DType::f32, {2, 3, 4, 5})),
               Error);
  EXPECT_THROW(explain::cam_from_gradients(CamMethod::eigencam, a, a), Error);
  EXPECT_THROW(explain::cam_from_gradients(CamMethod::scorecam, a, a), Error);
  EXPECT_THROW(explain::weighted_cam(a, {1.f, 2.f}), Error);
}

TEST(CamMethods, Normalize01KeepsAllZeroMapsZero) {
  std::vector<float> zeros(35, 0.f);
  explain::normalize01(zeros);
  for (float v : zeros) EXPECT_EQ(v, 0.f);  // not NaN

  std::vector<float> constant(12, 3.5f);
  explain::normalize01(constant);
  for (float v : constant) EXPECT_EQ(v, 0.f);

  std::vector<float> map = {2.f, -1.f, 5.f, 0.5f, 5.f};
  explain::normalize01(map);
  EXPECT_FLOAT_EQ(map[1], 0.f);
  EXPECT_NEAR(map[2], 1.f, 1e-6);
  EXPECT_NEAR(map[0], 0.5f, 1e-6);

  std::vector<float> empty;
  explain::normalize01(empty);
  EXPECT_TRUE(empty.empty());
}

TEST(CamMethods, ParseAcceptsNamesAndAliases) {
  const std::vector<std::pair<std::string, CamMethod>> cases = {
      {"gradcam", CamMethod::gradcam},     {"Grad-CAM", CamMethod::gradcam},      {"grad_cam", CamMethod::gradcam},
      {"gradcam++", CamMethod::gradcampp}, {"Grad-CAM++", CamMethod::gradcampp},  {"gradcampp", CamMethod::gradcampp},
      {"gradcamplusplus", CamMethod::gradcampp}, {"HiResCAM", CamMethod::hirescam}, {"xgradcam", CamMethod::xgradcam},
      {"XGrad-CAM", CamMethod::xgradcam}, {"layercam", CamMethod::layercam},      {"Layer-CAM", CamMethod::layercam},
      {"eigencam", CamMethod::eigencam},   {"Eigen_CAM", CamMethod::eigencam},    {"scorecam", CamMethod::scorecam},
      {"Score-CAM", CamMethod::scorecam}};
  for (const auto& [name, method] : cases) EXPECT_EQ(explain::parse_cam_method(name), method) << name;

  const auto names = explain::cam_method_names();
  EXPECT_EQ(names.size(), 7u);
  for (const auto& name : names) EXPECT_EQ(explain::cam_method_name(explain::parse_cam_method(name)), name);
  EXPECT_FALSE(explain::needs_gradient(CamMethod::eigencam));
  EXPECT_FALSE(explain::needs_gradient(CamMethod::scorecam));
  EXPECT_TRUE(explain::needs_gradient(CamMethod::layercam));
}

TEST(CamMethods, ParseRejectsUnknownNamesListingTheKnownOnes) {
  for (const std::string bad : {"gradcam+++", "smoothgrad", "", "grad cam", "cam"}) {
    std::vector<std::string> fragments = explain::cam_method_names();
    fragments.push_back("'" + bad + "'");
    expect_error([&] { explain::parse_cam_method(bad); }, {ErrorKind::invalid_input}, fragments);
  }
}

}  // namespace
}  // namespace dermal::test
