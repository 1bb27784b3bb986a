// Class activation maps of both baseline models on real HAM10000 test images, end to end through
// the engine (forward, backward from the top class's logit) and explain/cam.cpp, against
// PyTorch autograd + tools/reference/cam_methods.py (make_model_reference.py, run by the
// torch_reference CTest fixture). Inputs are the reference's own preprocessed tensors
// (inputs.f32), so image decoding plays no part here. Bar: Pearson >= 0.999 of each raw grid,
// for every method, model, layer (last and an earlier block) and image.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/executor.h"
#include "explain/cam.h"
#include "explain/map_compare.h"
#include "formats/model_loader.h"

namespace dermal::test {
namespace {

using engine::DType;
using engine::Shape;
using engine::Tensor;
using nlohmann::json;

constexpr double kMinPearson = 0.999;
const std::string kRefDir = DERMAL_REFERENCE_DIR;
const char* const kGradientMethods[] = {"gradcam", "gradcam++", "hirescam", "xgradcam", "layercam"};

json manifest() {
  std::ifstream f(kRefDir + "/manifest.json");
  if (!f) throw std::runtime_error("no reference at " + kRefDir + ": run the torch_reference test first");
  return json::parse(f);
}

Tensor read_f32(const json& entry) {
  Tensor t = Tensor::zeros(DType::f32, entry["shape"].get<Shape>());
  std::ifstream f(kRefDir + "/" + entry["file"].get<std::string>(), std::ios::binary);
  f.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.bytes()));
  if (f.gcount() != static_cast<std::streamsize>(t.bytes())) throw std::runtime_error("short reference file");
  return t;
}

// Row i of the leading dimension, as a vector, or as a [1, ...] tensor.
std::vector<float> row(const Tensor& t, int64_t i) {
  const int64_t n = t.numel() / t.dim(0);
  return {t.data<float>() + i * n, t.data<float>() + (i + 1) * n};
}
Tensor row_tensor(const Tensor& t, int64_t i) {
  Shape s = t.shape();
  s[0] = 1;
  return Tensor::from_floats(s, row(t, i));
}

// torch.nn.functional.interpolate(mode="bilinear", align_corners=False) of one [h, w] plane.
std::vector<double> upsample_bilinear(const float* plane, int64_t h, int64_t w, int64_t out_h, int64_t out_w) {
  struct Tap {
    int64_t i0, i1;
    double l1;
  };
  auto taps = [](int64_t in, int64_t out) {
    std::vector<Tap> t(static_cast<size_t>(out));
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    for (int64_t d = 0; d < out; ++d) {
      const double src = std::max((d + 0.5) * scale - 0.5, 0.0);
      const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
      t[d] = {i0, std::min(i0 + 1, in - 1), src - static_cast<double>(i0)};
    }
    return t;
  };
  const auto ty = taps(h, out_h), tx = taps(w, out_w);
  std::vector<double> out(static_cast<size_t>(out_h * out_w));
  for (int64_t y = 0; y < out_h; ++y)
    for (int64_t x = 0; x < out_w; ++x) {
      const Tap &a = ty[y], &b = tx[x];
      const double top = plane[a.i0 * w + b.i0] * (1 - b.l1) + plane[a.i0 * w + b.i1] * b.l1;
      const double bottom = plane[a.i1 * w + b.i0] * (1 - b.l1) + plane[a.i1 * w + b.i1] * b.l1;
      out[y * out_w + x] = top * (1 - a.l1) + bottom * a.l1;
    }
  return out;
}

// Score-CAM's channel weights as the paper's reference code computes them: the target's softmax
// probability for the input times each channel upsampled and min-max normalised; 0 for a
// constant channel. `batch` is planned for [B, 3, H, W].
std::vector<float> score_cam_weights(engine::Executor& batch, const std::string& in, const std::string& out,
                                     const Tensor& x, const Tensor& act, int target) {
  const Shape bs = batch.info(in).shape;
  const int64_t b = bs[0], plane = bs[2] * bs[3], channels = act.dim(1), h = act.dim(2), w = act.dim(3);
  std::vector<float> weights(static_cast<size_t>(channels), 0.f);
  std::vector<int64_t> pending;
  Tensor masked = Tensor::zeros(DType::f32, bs);
  auto flush = [&] {
    batch.set_input(in, masked);
    batch.forward();
    Tensor logits = batch.get(out);
    const int64_t classes = logits.dim(1);
    for (size_t r = 0; r < pending.size(); ++r) {
      const float* l = logits.data<float>() + r * classes;
      double max = *std::max_element(l, l + classes), sum = 0;
      for (int64_t c = 0; c < classes; ++c) sum += std::exp(l[c] - max);
      weights[pending[r]] = static_cast<float>(std::exp(l[target] - max) / sum);
    }
    pending.clear();
  };
  for (int64_t k = 0; k < channels; ++k) {
    std::vector<double> up = upsample_bilinear(act.data<float>() + k * h * w, h, w, bs[2], bs[3]);
    auto [lo, hi] = std::minmax_element(up.begin(), up.end());
    if (*hi == *lo) continue;
    const double min = *lo, range = *hi - *lo;
    float* dst = masked.data<float>() + static_cast<int64_t>(pending.size()) * 3 * plane;
    for (int64_t ch = 0; ch < 3; ++ch)
      for (int64_t i = 0; i < plane; ++i)
        dst[ch * plane + i] = static_cast<float>(x.data<float>()[ch * plane + i] * ((up[i] - min) / range));
    pending.push_back(k);
    if (static_cast<int64_t>(pending.size()) == b) flush();
  }
  if (!pending.empty()) flush();
  return weights;
}

class CamVsTorch : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    m_ = manifest();
    ASSERT_LT(GetParam(), static_cast<int>(m_["models"].size()));
    model_ = m_["models"][GetParam()];
    loaded_ = formats::load_model(model_["file"].get<std::string>());
    inputs_ = read_f32(m_["inputs"]);
    name_ = model_["name"];
  }
  Shape single_input() const { return {1, inputs_.dim(1), inputs_.dim(2), inputs_.dim(3)}; }
  json m_, model_;
  formats::LoadedModel loaded_;
  Tensor inputs_;
  std::string name_;
};

TEST_P(CamVsTorch, GradientMethodsAndEigenCamOnRealImages) {
  std::vector<std::string> layers;
  for (const auto& l : model_["layers"]) {
    ASSERT_TRUE(l.contains("cams")) << "reference without maps: rerun make_model_reference.py";
    layers.push_back(l["tensor"]);
  }
  engine::PlanOptions opts;
  opts.input_shapes[model_["input"]] = single_input();
  opts.keep = layers;
  opts.backward_from = {model_["output"]};
  opts.backward_to = layers;
  engine::Executor ex(loaded_.graph, opts);
  const int64_t classes = ex.info(model_["output"]).shape[1];

  const json& first = model_["layers"][0]["cams"];
  const int images = first["images"];
  ASSERT_GE(images, 20) << "the bar is set on at least 20 real images";
  const std::vector<int> targets = first["classes"].get<std::vector<int>>();

  // Reference maps: [layer][method] -> [images, H, W].
  std::vector<std::map<std::string, Tensor>> expected(layers.size());
  std::vector<std::string> methods(std::begin(kGradientMethods), std::end(kGradientMethods));
  methods.push_back("eigencam");
  for (size_t l = 0; l < layers.size(); ++l)
    for (const auto& method : methods) expected[l][method] = read_f32(model_["layers"][l]["cams"][method]);

  std::map<std::string, double> worst;  // method -> lowest Pearson over layers and images
  int top_agrees = 0;
  for (int i = 0; i < images; ++i) {
    ex.set_input(model_["input"], row_tensor(inputs_, i));
    ex.forward();
    std::vector<float> logits = row(ex.get(model_["output"]), 0);
    top_agrees += std::max_element(logits.begin(), logits.end()) - logits.begin() == targets[i];
    Tensor seed = Tensor::zeros(DType::f32, {1, classes});
    seed.data<float>()[targets[i]] = 1.f;  // the logit, never the softmax
    std::vector<Tensor> grads = ex.backward(model_["output"], seed, layers);
    for (size_t l = 0; l < layers.size(); ++l) {
      Tensor act = ex.get(layers[l]);
      for (const auto& method : methods) {
        std::vector<float> map = method == "eigencam"
                                     ? explain::eigen_cam(act)
                                     : explain::cam_from_gradients(explain::parse_cam_method(method), act, grads[l]);
        const double p = pearson(map, row(expected[l].at(method), i));
        worst.try_emplace(method, 1.0);
        worst[method] = std::min(worst[method], p);
        EXPECT_GE(p, kMinPearson) << name_ << " " << method << " at " << layers[l] << ", image " << i << " (class "
                                  << targets[i] << ")";
      }
    }
  }
  // A near-tie between the top two logits could make them differ; on these images none does.
  EXPECT_EQ(top_agrees, images) << "engine and torch disagree on the top class";
  for (const auto& [method, p] : worst)
    std::printf("%s: %-9s min Pearson vs torch %.7f over %d images x %zu layers\n", name_.c_str(), method.c_str(), p,
                images, layers.size());
}

TEST_P(CamVsTorch, ScoreCamOnRealImages) {
  const json& last = model_["layers"][0];
  ASSERT_EQ(last["role"], "last");
  ASSERT_TRUE(last.contains("cams") && last["cams"].contains("scorecam")) << "reference without Score-CAM";
  const json& cams = last["cams"];
  const int images = cams["scorecam"]["images"];
  ASSERT_GE(images, 1);
  Tensor expected = read_f32(cams["scorecam"]), expected_weights = read_f32(cams["scorecam_weights"]);
  const std::string layer = last["tensor"], in = model_["input"], out = model_["output"];

  engine::PlanOptions opts;
  opts.input_shapes[in] = single_input();
  opts.keep = {layer};
  engine::Executor single(loaded_.graph, opts);
  Shape batched = single_input();
  batched[0] = 32;
  opts.input_shapes[in] = batched;
  opts.keep.clear();
  engine::Executor batch(loaded_.graph, opts);

  double worst = 1, worst_weight = 0;
  for (int i = 0; i < images; ++i) {
    Tensor x = row_tensor(inputs_, i);
    single.set_input(in, x);
    single.forward();
    Tensor act = single.get(layer);
    const int target = cams["classes"][i];
    std::vector<float> weights = score_cam_weights(batch, in, out, x, act, target);
    std::vector<float> ref_weights = row(expected_weights, i);
    worst_weight = std::max(worst_weight, max_map_diff(weights, ref_weights));
    const double p = pearson(explain::weighted_cam(act, weights), row(expected, i));
    worst = std::min(worst, p);
    EXPECT_GE(p, kMinPearson) << name_ << " scorecam image " << i;
  }
  EXPECT_LE(worst_weight, 1e-3) << "Score-CAM channel weights (softmax probabilities)";
  std::printf("%s: scorecam  min Pearson vs torch %.7f over %d image(s); max |weight - torch| %.2e\n", name_.c_str(),
              worst, images, worst_weight);
}

INSTANTIATE_TEST_SUITE_P(Baselines, CamVsTorch, ::testing::Values(0, 1));

}  // namespace
}  // namespace dermal::test
