// Both baseline models against PyTorch, on real HAM10000 test images: logits, inner activations,
// and the gradient of every class logit with respect to the last conv block and an earlier block.
// The reference comes from tools/reference/make_model_reference.py (an ONNX interpreter written
// on torch.nn.functional, with autograd), run by the torch_reference CTest fixture.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/executor.h"
#include "engine/op_check.h"
#include "formats/model_loader.h"
#include "formats/torch_reference.h"

namespace dermal::test {
namespace {

using nlohmann::json;
using torch_reference::manifest;
using torch_reference::read_f32;
using torch_reference::rows;

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_doubles(), y = b.to_doubles();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

class ModelVsTorch : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    m_ = manifest();
    ASSERT_LT(GetParam(), static_cast<int>(m_["models"].size()));
    model_ = m_["models"][GetParam()];
    loaded_ = formats::load_model(model_["file"].get<std::string>());
    inputs_ = read_f32(m_["inputs"]);
  }
  json m_, model_;
  formats::LoadedModel loaded_;
  Tensor inputs_;
};

TEST_P(ModelVsTorch, LogitsOnRealImages) {
  const int64_t n = inputs_.dim(0);
  ASSERT_GE(n, 50) << "the reference must cover at least 50 test images";
  Tensor expected = read_f32(model_["logits"]);
  engine::PlanOptions opts;
  opts.input_shapes[model_["input"]] = inputs_.shape();
  engine::Executor batch(loaded_.graph, opts);
  batch.set_input(model_["input"], inputs_);
  batch.forward();
  Tensor logits = batch.get(model_["output"]);
  double diff = max_abs_diff(logits, expected);
  EXPECT_LE(diff, 1e-4) << model_["name"] << ": batch of " << n;
  EXPECT_GT(max_abs(expected.to_doubles()), 0.5) << "reference logits are suspiciously small";

  // One image at a time gives the same numbers.
  opts.input_shapes[model_["input"]] = {1, 3, inputs_.dim(2), inputs_.dim(3)};
  engine::Executor single(loaded_.graph, opts);
  for (int64_t i = 0; i < n; i += 7) {
    single.set_input(model_["input"], rows(inputs_, i, 1));
    single.forward();
    EXPECT_LE(max_abs_diff(single.get(model_["output"]), rows(expected, i, 1)), 1e-4) << "image " << i;
  }
  std::printf("%s: %lld images, max |logit - torch| = %.2e\n", model_["name"].get<std::string>().c_str(),
              static_cast<long long>(n), diff);
}

TEST_P(ModelVsTorch, ClassLogitGradientsAtInnerLayers) {
  std::vector<std::string> layers;
  for (const auto& l : model_["layers"]) layers.push_back(l["tensor"]);
  ASSERT_EQ(layers.size(), 2u) << "expected a last and an earlier block";
  engine::PlanOptions opts;
  opts.input_shapes[model_["input"]] = {1, 3, inputs_.dim(2), inputs_.dim(3)};
  opts.keep = layers;
  opts.backward_from = {model_["output"]};
  opts.backward_to = layers;
  engine::Executor ex(loaded_.graph, opts);
  const int64_t classes = ex.info(model_["output"]).shape[1];
  for (size_t l = 0; l < layers.size(); ++l) {
    const json& layer = model_["layers"][l];
    Tensor act_ref = read_f32(layer["activation"]);
    Tensor grad_file = read_f32(layer["gradient"]);  // [K, classes, C, H, W]
    const int64_t k = layer["grad_images"];
    Shape per_class = act_ref.shape();
    per_class[0] = k * classes;
    Tensor grad_ref = Tensor::view(DType::f32, per_class, grad_file.raw());
    double worst = 0;
    for (int64_t i = 0; i < k; ++i) {
      ex.set_input(model_["input"], rows(inputs_, i, 1));
      ex.forward();
      Tensor act = ex.get(layers[l]);
      Tensor act_expected = rows(act_ref, i, 1);
      EXPECT_LE(max_abs_diff(act, act_expected), 1e-4 * std::max(1.0, max_abs(act_expected.to_doubles())))
          << layers[l] << " activation, image " << i;
      for (int64_t c = 0; c < classes; ++c) {
        Tensor seed = Tensor::zeros(DType::f32, {1, classes});
        seed.data<float>()[c] = 1.f;
        Tensor g = ex.backward(model_["output"], seed, {layers[l]})[0];
        // The reference block for image i, class c: [1, C, H, W].
        Tensor expected = rows(grad_ref, i * classes + c, 1);
        double scale = max_abs(expected.to_doubles());
        ASSERT_GT(scale, 0) << "reference gradient is all zero: it would prove nothing";
        double rel = max_abs_diff(g, expected) / scale;
        worst = std::max(worst, rel);
        EXPECT_LE(rel, 1e-4) << layers[l] << " image " << i << " class " << c;
      }
    }
    std::printf("%s: d logit / d %s over %lld images x %lld classes: max error %.2e of the gradient's range\n",
                model_["name"].get<std::string>().c_str(), layers[l].c_str(), static_cast<long long>(k),
                static_cast<long long>(classes), worst);
  }
}

INSTANTIATE_TEST_SUITE_P(Baselines, ModelVsTorch, ::testing::Values(0, 1));

}  // namespace
}  // namespace dermal::test
