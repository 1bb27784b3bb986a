// Class activation maps of both baseline models on real HAM10000 test images, end to end through
// the path users take: explain::Classifier::load (model + card) and explain_input (forward,
// backward from the class's logit, the CAM, Score-CAM's masked forwards), against PyTorch
// autograd + tools/reference/cam_methods.py (make_model_reference.py, run by the
// torch_reference CTest fixture). Inputs are the reference's own preprocessed tensors
// (inputs.f32), so image decoding plays no part here. Bar: Pearson >= 0.999 of each grid, for
// every method, model, layer (last and an earlier block) and image. The shared models have no
// sidecar card: tests/data/cards/<model>.json gives their labels and preprocessing.
//
// The classifier scales each map to [0, 1] (min-max, after the method's ReLU); the reference
// grids are raw. Pearson ignores a positive scale and offset, and the largest difference is
// taken after scaling the reference the same way.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "explain/classifier.h"
#include "explain/map_compare.h"
#include "formats/torch_reference.h"

namespace dermal::test {
namespace {

using engine::DType;
using engine::Shape;
using engine::Tensor;
using nlohmann::json;
using torch_reference::manifest;
using torch_reference::read_f32;
using torch_reference::rows;

// Row i of the leading dimension, as a vector.
std::vector<float> row(const Tensor& t, int64_t i) {
  Tensor r = rows(t, i, 1);
  return {r.data<float>(), r.data<float>() + r.numel()};
}

constexpr double kMinPearson = 0.999;
constexpr double kMaxScaledDiff = 0.01;  // on the [0, 1] scale users see; measured: <= 1.3e-3
const std::string kCardDir = std::string(DERMAL_SOURCE_DIR) + "/tests/data/cards";
const char* const kMapMethods[] = {"gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam"};

// Lowest Pearson and largest [0, 1]-scaled difference per method, over layers and images.
struct Worst {
  double pearson = 1, diff = 0;
};

class CamVsTorch : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    m_ = manifest();
    ASSERT_LT(GetParam(), static_cast<int>(m_["models"].size()));
    model_ = m_["models"][GetParam()];
    name_ = model_["name"];
    clf_ = explain::Classifier::load(model_["file"].get<std::string>(), kCardDir + "/" + name_ + ".json");
    inputs_ = read_f32(m_["inputs"]);
  }

  // The classifier's map for image i, checked against the reference grid `expected`.
  explain::Explanation explain_and_compare(const std::string& method, const json& layer, int i, int target,
                                           const std::vector<float>& expected, Worst& worst) {
    explain::ExplainRequest req;
    req.method = explain::parse_cam_method(method);
    req.layer = layer["tensor"];
    req.target = std::to_string(target);
    const Shape grid = layer["shape"].get<Shape>();  // [C, H, W]
    explain::Timings timings;
    // A heatmap at the grid's own size: the upsampling is not what is tested here.
    explain::Explanation e = clf_->explain_input(rows(inputs_, i, 1), static_cast<int>(grid[2]),
                                                 static_cast<int>(grid[1]), req, timings);
    EXPECT_EQ(e.layer, layer["tensor"].get<std::string>());
    EXPECT_EQ(e.class_index, target);
    EXPECT_EQ(e.grid_height, grid[1]);
    EXPECT_EQ(e.grid_width, grid[2]);
    const double p = pearson(e.cam, expected);
    worst.pearson = std::min(worst.pearson, p);
    const double diff = max_map_diff(e.cam, scaled01(expected));
    worst.diff = std::max(worst.diff, diff);
    EXPECT_GE(p, kMinPearson) << name_ << " " << method << " at " << layer["tensor"] << ", image " << i << " (class "
                              << target << ")";
    EXPECT_LE(diff, kMaxScaledDiff) << name_ << " " << method << " at " << layer["tensor"] << ", image " << i;
    return e;
  }

  void print(const std::string& method, const Worst& w, const std::string& over) const {
    std::printf("%s: %-9s min Pearson vs torch %.7f, max |map - torch| on [0,1] %.2e, over %s\n", name_.c_str(),
                method.c_str(), w.pearson, w.diff, over.c_str());
  }

  json m_, model_;
  std::string name_;
  std::unique_ptr<explain::Classifier> clf_;
  Tensor inputs_;
};

TEST_P(CamVsTorch, GradientMethodsAndEigenCamOnRealImages) {
  const json& layers = model_["layers"];
  ASSERT_GE(layers.size(), 2u) << "the last layer and an earlier block";
  for (const auto& l : layers) ASSERT_TRUE(l.contains("cams")) << "reference without maps: rerun make_model_reference.py";
  // The manifest's "last" layer is what the classifier's auto rule must pick.
  EXPECT_EQ(clf_->resolve_layer("auto"), layers[0]["tensor"].get<std::string>());

  const json& first = layers[0]["cams"];
  const int images = first["images"];
  ASSERT_GE(images, 20) << "the bar is set on at least 20 real images";
  const std::vector<int> targets = first["classes"].get<std::vector<int>>();

  std::map<std::string, Worst> worst;
  int top_agrees = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const json& layer = layers[l];
    ASSERT_EQ(layer["cams"]["classes"].get<std::vector<int>>(), targets);
    for (const char* method : kMapMethods) {
      const Tensor expected = read_f32(layer["cams"][method]);
      for (int i = 0; i < images; ++i) {
        explain::Explanation e = explain_and_compare(method, layer, i, targets[i], row(expected, i), worst[method]);
        // The reference explains its top class: the engine must rank it first too (a near-tie
        // could make them differ; on these images none does).
        if (l == 0 && std::string(method) == "gradcam")
          top_agrees += e.prediction.ranked.front().index == targets[i];
      }
    }
  }
  EXPECT_EQ(top_agrees, images) << "engine and torch disagree on the top class";
  for (const auto& [method, w] : worst)
    print(method, w, std::to_string(images) + " images x " + std::to_string(layers.size()) + " layers");
}

TEST_P(CamVsTorch, ScoreCamOnRealImages) {
  const json& last = model_["layers"][0];
  ASSERT_EQ(last["role"], "last");
  ASSERT_TRUE(last.contains("cams") && last["cams"].contains("scorecam")) << "reference without Score-CAM";
  const json& cams = last["cams"];
  const int images = cams["scorecam"]["images"];
  ASSERT_GE(images, 1);
  const Tensor expected = read_f32(cams["scorecam"]);
  Worst worst;
  for (int i = 0; i < images; ++i) explain_and_compare("scorecam", last, i, cams["classes"][i], row(expected, i), worst);
  print("scorecam", worst, std::to_string(images) + " image(s)");
}

INSTANTIATE_TEST_SUITE_P(Baselines, CamVsTorch, ::testing::Values(0, 1));

}  // namespace
}  // namespace dermal::test
