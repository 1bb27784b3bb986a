// Normalising layers: BatchNormalization, LayerNormalization, Normalization, Rescaling.
#include <algorithm>
#include <cmath>

#include "formats/keras/keras_layer.h"

namespace dermal::formats::keras {
namespace {

using engine::Attributes;
using engine::Tensor;

// "axis": -1, 3 or [3] (Keras 2 writes lists); `fallback` when absent.
std::vector<int> axes_of(const LayerCall& c, std::vector<int> fallback) {
  const json& v = c.cfg("axis");
  if (v.is_null()) return fallback;
  std::vector<int> out;
  if (v.is_number_integer()) out.push_back(v.get<int>());
  else if (v.is_array())
    for (const json& e : v) {
      if (!e.is_number_integer()) c.fail("config 'axis' is not a list of integers", ErrorKind::invalid_model);
      out.push_back(e.get<int>());
    }
  else c.fail("config 'axis' is not an integer or a list", ErrorKind::invalid_model);
  const int rank = c.in().rank;
  for (int& a : out) {
    if (a < 0) a += rank;
    if (a <= 0 || a >= rank) c.fail("axis " + std::to_string(a) + " does not fit a rank-" + std::to_string(rank) + " input");
  }
  return out;
}

std::vector<float> numbers(const json& v) {
  std::vector<float> out;
  if (v.is_number()) out.push_back(v.get<float>());
  else if (v.is_array())
    for (const json& e : v) {
      std::vector<float> inner = numbers(e);
      out.insert(out.end(), inner.begin(), inner.end());
    }
  return out;
}

// A per-channel (or scalar) constant broadcast along `axes` of the input.
std::string per_axis(const LayerCall& c, const std::string& suffix, const Tensor& param, const std::vector<int>& axes) {
  Tensor t = broadcastable(param, axes, c.in().rank);
  if (!t.defined())
    c.fail(suffix + " has shape " + engine::shape_str(param.shape()) + ", which does not fit the normalised axes",
           ErrorKind::invalid_model);
  return c.constant(suffix, t);
}

KTensor batch_normalization(LayerCall& c) {
  const std::vector<int> axes = axes_of(c, {-1 + c.in().rank});
  if (axes.size() != 1) c.fail("normalising over several axes is not supported");
  if (c.flag("renorm", false)) c.fail("batch renormalization (renorm) is not supported");
  const bool scale = c.flag("scale", true), center = c.flag("center", true);
  const double eps = c.number("epsilon", 1e-3);
  auto w = c.weights((scale ? 1 : 0) + (center ? 1 : 0) + 2);
  size_t k = 0;
  const int64_t channels = w.back().numel();
  Tensor gamma = scale ? w[k++] : Tensor::from_floats({channels}, std::vector<float>(static_cast<size_t>(channels), 1.0f));
  Tensor beta = center ? w[k++] : Tensor::from_floats({channels}, std::vector<float>(static_cast<size_t>(channels), 0.0f));
  Tensor mean = w[k++], var = w[k++];
  const KTensor& x = c.in();
  if (stored_axis(axes[0], x.rank) == 1) {
    Attributes a;
    a.set("epsilon", eps);
    return KTensor{c.op("BatchNormalization",
                        {x.name, c.constant("gamma", gamma), c.constant("beta", beta), c.constant("moving_mean", mean),
                         c.constant("moving_variance", var)},
                        c.out, a, 15),
                   x.rank};
  }
  // Another axis (e.g. the last of a sequence): y = x * s + t with the statistics folded in.
  Tensor s = Tensor::zeros(engine::DType::f32, {channels}), t = Tensor::zeros(engine::DType::f32, {channels});
  for (int64_t i = 0; i < channels; ++i) {
    const float si = gamma.data<float>()[i] / std::sqrt(var.data<float>()[i] + static_cast<float>(eps));
    s.data<float>()[i] = si;
    t.data<float>()[i] = beta.data<float>()[i] - mean.data<float>()[i] * si;
  }
  std::string m = c.op("Mul", {x.name, per_axis(c, "scale", s, axes)}, c.out + "/scaled");
  return KTensor{c.op("Add", {m, per_axis(c, "shift", t, axes)}, c.out), x.rank};
}

KTensor layer_normalization(LayerCall& c) {
  const KTensor& x = c.in();
  const std::vector<int> axes = axes_of(c, {x.rank - 1});
  if (c.flag("rms_scaling", false)) c.fail("rms_scaling is not supported");
  const bool scale = c.flag("scale", true), center = c.flag("center", true);
  const float eps = static_cast<float>(c.number("epsilon", 1e-3));
  auto w = c.weights((scale ? 1 : 0) + (center ? 1 : 0));
  std::vector<int64_t> stored;
  for (int a : axes) stored.push_back(stored_axis(a, x.rank));
  Attributes reduce;
  reduce.set("axes", stored);
  reduce.set("keepdims", int64_t{1});
  std::string mean = c.op("ReduceMean", {x.name}, c.out + "/mean", reduce);
  std::string d = c.op("Sub", {x.name, mean}, c.out + "/centered");
  std::string sq = c.op("Mul", {d, d}, c.out + "/squared");
  std::string var = c.op("ReduceMean", {sq}, c.out + "/variance", reduce);
  std::string sd = c.op("Sqrt", {c.op("Add", {var, c.scalar("epsilon", eps)}, c.out + "/variance_eps")}, c.out + "/stddev");
  const bool last = !scale && !center;
  std::string y = c.op("Div", {d, sd}, last ? c.out : c.out + "/normalized");
  size_t k = 0;
  if (scale) y = c.op("Mul", {y, per_axis(c, "gamma", w[k++], axes)}, center ? c.out + "/scaled" : c.out);
  if (center) y = c.op("Add", {y, per_axis(c, "beta", w[k++], axes)}, c.out);
  return KTensor{y, x.rank};
}

// y = (x - mean) / max(sqrt(variance), 1e-7); with invert, x = ... solved for x.
KTensor normalization(LayerCall& c) {
  const KTensor& x = c.in();
  std::vector<int> axes;
  if (!c.cfg("axis").is_null() || !c.config->contains("axis")) axes = axes_of(c, {x.rank - 1});
  Tensor mean, var;
  if (c.has("mean") && c.has("variance")) {
    std::vector<float> m = numbers(c.cfg("mean")), v = numbers(c.cfg("variance"));
    if (m.size() != v.size() || m.empty()) c.fail("config mean and variance do not match", ErrorKind::invalid_model);
    mean = Tensor::from_floats({static_cast<int64_t>(m.size())}, m);
    var = Tensor::from_floats({static_cast<int64_t>(v.size())}, v);
    c.weights(-1);  // none needed
  } else {
    auto w = c.weights(-1);  // mean, variance, count
    if (w.size() < 2) c.fail("expects mean and variance weights, the file has " + std::to_string(w.size()), ErrorKind::invalid_model);
    mean = w[0];
    var = w[1];
  }
  Tensor denom = Tensor::zeros(engine::DType::f32, var.shape());
  for (int64_t i = 0; i < var.numel(); ++i) denom.data<float>()[i] = std::max(std::sqrt(var.data<float>()[i]), 1e-7f);
  if (mean.rank() != static_cast<int>(axes.size())) {  // stored with broadcast dims: keep the values
    mean = Tensor::from_floats({mean.numel()}, std::vector<float>(mean.data<float>(), mean.data<float>() + mean.numel()));
    denom = Tensor::from_floats({denom.numel()}, std::vector<float>(denom.data<float>(), denom.data<float>() + denom.numel()));
  }
  if (c.flag("invert", false)) {
    std::string m = c.op("Mul", {x.name, per_axis(c, "stddev", denom, axes)}, c.out + "/scaled");
    return KTensor{c.op("Add", {m, per_axis(c, "mean", mean, axes)}, c.out), x.rank};
  }
  std::string d = c.op("Sub", {x.name, per_axis(c, "mean", mean, axes)}, c.out + "/centered");
  return KTensor{c.op("Div", {d, per_axis(c, "stddev", denom, axes)}, c.out), x.rank};
}

// y = x * scale + offset; each a number or a per-channel list.
KTensor rescaling(LayerCall& c) {
  const KTensor& x = c.in();
  std::vector<float> scale = numbers(c.cfg("scale")), offset = numbers(c.cfg("offset"));
  if (scale.empty()) scale = {1.0f};
  if (offset.empty()) offset = {0.0f};
  c.weights(0);
  auto as_param = [&](const std::vector<float>& v) { return Tensor::from_floats({static_cast<int64_t>(v.size())}, v); };
  const bool add = !(offset.size() == 1 && offset[0] == 0.0f);
  std::string y = c.op("Mul", {x.name, per_axis(c, "scale", as_param(scale), {x.rank - 1})}, add ? c.out + "/scaled" : c.out);
  if (add) y = c.op("Add", {y, per_axis(c, "offset", as_param(offset), {x.rank - 1})}, c.out);
  return KTensor{y, x.rank};
}

const LayerRegistration registration{
    {"BatchNormalization", batch_normalization},
    {"LayerNormalization", layer_normalization},
    {"Normalization", normalization},
    {"Rescaling", rescaling},
};

}  // namespace
}  // namespace dermal::formats::keras
