// Conv: 2-D convolution, and 1-D as 2-D with H = 1 (3-D is not supported). Any group count
// (depthwise included), strides, dilations, explicit (asymmetric) or automatic pads, an optional
// bias, an optional fused residual Add (KernelConfig::post_add) and an optional fused activation
// (KernelConfig::post_eltwise), in that order. W and B may be constants
// (the usual case: f32 packs them once per op, shared by all its kernels), W may be held by the
// op itself (Graph::hold_weights_in_ops: then the packed copy is the only one), or they are
// tensors computed at run time (graph inputs: read and reordered on every call). f32 runs on
// oneDNN; f64 runs plain loops, the reference for gradient checks (conv_kernels.cpp). Backward is
// the VJP with respect to X (and a fused Add's residual), never the weights.
#include "engine/ops/conv.h"

#include <algorithm>
#include <cmath>

#include "engine/ops/conv_kernels.h"
#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

using conv_detail::ConvParams;
using conv_detail::Geometry;

enum class AutoPad { notset, same_upper, same_lower, valid };

// Attributes as written; an empty list means the default for the input's spatial rank.
struct ConvAttrs {
  int64_t group = 1;
  AutoPad auto_pad = AutoPad::notset;
  std::vector<int64_t> kernel_shape, strides, dilations, pads;
};

Geometry make_geometry(const ConvAttrs& a, const Shape& x, const Shape& w, const OpContext& ctx) {
  if (x.size() != 3 && x.size() != 4)
    ctx.fail(ErrorKind::unsupported, "only 1-D and 2-D convolutions are supported, X has shape " + shape_str(x));
  if (w.size() != x.size())
    ctx.fail(ErrorKind::invalid_model, "W " + shape_str(w) + " does not match X " + shape_str(x));
  const size_t sr = x.size() - 2;
  for (const auto* list : {&a.kernel_shape, &a.strides, &a.dilations})
    if (!list->empty() && list->size() != sr)
      ctx.fail(ErrorKind::invalid_model, "kernel_shape/strides/dilations do not match X " + shape_str(x));
  if (!a.pads.empty() && a.pads.size() != 2 * sr)
    ctx.fail(ErrorKind::invalid_model, "pads has " + std::to_string(a.pads.size()) + " values for X " + shape_str(x));
  if (!a.kernel_shape.empty() && !std::equal(a.kernel_shape.begin(), a.kernel_shape.end(), w.begin() + 2))
    ctx.fail(ErrorKind::invalid_model, "kernel_shape does not match W " + shape_str(w));
  if (w[0] % a.group != 0 || x[1] != w[1] * a.group)
    ctx.fail(ErrorKind::invalid_model, "X " + shape_str(x) + ", W " + shape_str(w) + " and group " +
                                           std::to_string(a.group) + " do not fit together");

  // Per spatial dim: input, kernel, stride, dilation -> pads and output size (ONNX's rules).
  int64_t in[2] = {1, 1}, k[2] = {1, 1}, s[2] = {1, 1}, d[2] = {1, 1}, pb[2] = {0, 0}, pe[2] = {0, 0}, out[2] = {1, 1};
  for (size_t i = 0; i < sr; ++i) {
    const size_t j = i + 2 - sr;  // 1-D fills the W slot
    in[j] = x[2 + i];
    k[j] = w[2 + i];
    s[j] = a.strides.empty() ? 1 : a.strides[i];
    d[j] = a.dilations.empty() ? 1 : a.dilations[i];
    const int64_t extent = d[j] * (k[j] - 1) + 1;
    if (a.auto_pad == AutoPad::notset && !a.pads.empty()) {
      pb[j] = a.pads[i];
      pe[j] = a.pads[i + sr];
    } else if (a.auto_pad == AutoPad::same_upper || a.auto_pad == AutoPad::same_lower) {
      const int64_t o = (in[j] + s[j] - 1) / s[j];
      const int64_t total = std::max<int64_t>(0, (o - 1) * s[j] + extent - in[j]);
      pb[j] = a.auto_pad == AutoPad::same_upper ? total / 2 : total - total / 2;
      pe[j] = total - pb[j];
    }
    const int64_t padded = in[j] + pb[j] + pe[j];
    if (padded < extent)
      ctx.fail(ErrorKind::invalid_model, "the kernel of W " + shape_str(w) + " does not fit in the padded X " + shape_str(x));
    out[j] = (padded - extent) / s[j] + 1;
  }
  Geometry g;
  g.n = x[0];
  g.c = x[1];
  g.h = in[0];
  g.w = in[1];
  g.oc = w[0];
  g.group = a.group;
  g.kh = k[0];
  g.kw = k[1];
  g.oh = out[0];
  g.ow = out[1];
  g.sh = s[0];
  g.sw = s[1];
  g.dh = d[0];
  g.dw = d[1];
  g.pt = pb[0];
  g.pl = pb[1];
  g.pb = pe[0];
  g.pr = pe[1];
  g.spatial_rank = static_cast<int>(sr);
  return g;
}

class ConvOp : public Op {
 public:
  ConvOp(const OpContext& ctx, ConvAttrs a) : Op(ctx), a_(std::move(a)) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    const TensorInfo& x = in.at(0);
    if (x.dtype != DType::f32 && x.dtype != DType::f64)
      ctx_.fail(ErrorKind::unsupported, std::string("X has dtype ") + dtype_name(x.dtype) + ", only floats are supported");
    Geometry g = make_geometry(a_, x.shape, in.at(1).shape, ctx_);
    if (in.size() > 2 && !in[2].shape.empty() && in[2].shape != Shape{g.oc})
      ctx_.fail(ErrorKind::invalid_model, "B " + shape_str(in[2].shape) + " should be [" + std::to_string(g.oc) + "]");
    return {{x.dtype, g.out_shape()}};
  }

  // X, and the residual of a fused Add (KernelConfig::post_add), which arrives in the output's layout.
  bool accepts_nhwc(size_t input) const override { return input == 0 || input == kResidualInput; }
  bool differentiable(size_t input) const override { return input == 0 || input == kResidualInput; }
  bool wants_nhwc() const override { return true; }
  bool accepts_post_eltwise() const override { return true; }
  bool accepts_post_add() const override { return true; }
  // Grouped (depthwise) convolutions stay f32: bf16 makes them hardly faster (few products per
  // output, bound by memory) and costs the most accuracy there (sums of 9 products do not average
  // the rounding out): on the bundled model's HAM10000 test split, top-1 agreement with f32 went
  // from 96.6% to 99.2% and mean |dp| from 0.0058 to 0.0019 at the same speed (bench/bf16_agreement.py).
  bool accepts_bf16(size_t input) const override { return a_.group == 1 && (input == 0 || input == kResidualInput); }

  // W, f32 as f32 kernels run it: packed, it is all the op needs. (An f64 W stays in the graph:
  // f64 reference plans must read its exact values.)
  bool can_hold_weight(size_t input, const Tensor& value) const override {
    return input == 1 && value.dtype() == DType::f32 && value.layout() == Layout::plain && value.rank() >= 3;
  }
  void hold_weight(size_t input, Tensor value) const override {
    if (!can_hold_weight(input, value)) return Op::hold_weight(input, std::move(value));
    packed_->hold(std::move(value));
  }
  Tensor held_weight(size_t input) const override {
    if (input != 1 || !packed_->holds()) return Op::held_weight(input);
    return packed_->held_plain();
  }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    // W and B are constants, W held by this op, or runtime tensors; infer has checked shapes.
    auto known = [&](size_t i) { return i < cfg.known.size() ? cfg.known[i] : nullptr; };
    ConvParams p;
    p.held_w = packed_->holds();
    p.known_w = known(1);
    p.has_bias = cfg.present.size() > 2 && cfg.present[2];
    p.known_b = p.has_bias ? known(2) : nullptr;
    for (size_t i = 1; i < (p.has_bias ? 3 : 2); ++i)
      if (!known(i) && !(i == 1 && p.held_w) && cfg.inputs[i].dtype != DType::f32 && cfg.inputs[i].dtype != DType::f64)
        ctx_.fail(ErrorKind::unsupported, std::string(i == 1 ? "W" : "B") + " has dtype " + dtype_name(cfg.inputs[i].dtype) +
                                              ", only floats are supported");
    Geometry g = make_geometry(a_, cfg.inputs[0].shape, cfg.inputs[1].shape, ctx_);
    if (p.has_bias && shape_numel(cfg.inputs[2].shape) != g.oc)
      ctx_.fail(ErrorKind::invalid_model, "B " + shape_str(cfg.inputs[2].shape) + " should hold " + std::to_string(g.oc) + " values");
    const auto& act = cfg.post_eltwise;
    // With a negative slope the output no longer tells which side of zero the input was on.
    if (act && (act->kind == EltwiseSpec::relu || act->kind == EltwiseSpec::elu) && act->alpha < 0)
      ctx_.fail(ErrorKind::unsupported, "a fused relu/elu with a negative alpha cannot be differentiated");
    const Layout layout = cfg.input_layouts.empty() ? Layout::plain : cfg.input_layouts[0];
    cfg.output_layouts = {g.spatial_rank == 2 ? layout : Layout::plain};
    p.residual = cfg.post_add;
    // bf16 plans store X, Y and the residual in f32 or bf16, each as the planner chose.
    auto same_float = [&](DType d) { return d == cfg.compute || (cfg.compute == DType::f32 && d == DType::bf16); };
    if (p.residual && (cfg.inputs.size() <= kResidualInput || cfg.inputs[kResidualInput].shape != g.out_shape() ||
                       !same_float(cfg.inputs[kResidualInput].dtype) || cfg.input_layouts[kResidualInput] != cfg.output_layouts[0]))
      ctx_.fail(ErrorKind::internal, "a fused Add's other operand must have the output's shape " + shape_str(g.out_shape()) +
                                         ", dtype and layout");
    p.x_dtype = cfg.inputs[0].dtype;
    p.y_dtype = cfg.outputs[0].dtype;
    p.residual_dtype = p.residual ? cfg.inputs[kResidualInput].dtype : DType::f32;
    p.winograd_max_weight_bytes = cfg.winograd_max_weight_bytes;
    if (cfg.compute == DType::f64) {
      // The reference reads plain values: the held W rebuilt, for this kernel only.
      const Tensor plain = p.held_w ? packed_->held_plain() : Tensor();
      if (p.held_w) p.known_w = &plain;
      return conv_detail::make_reference_conv_kernel(g, p, act);
    }
    if (cfg.compute != DType::f32) ctx_.fail(ErrorKind::unsupported, std::string("compute dtype ") + dtype_name(cfg.compute));
    if (p.x_dtype != DType::bf16 && (p.y_dtype == DType::bf16 || p.residual_dtype == DType::bf16))
      ctx_.fail(ErrorKind::internal, "a bf16 output or residual needs X in bf16");
    return conv_detail::make_dnnl_conv_kernel(g, cfg.output_layouts[0], p, act, packed_);
  }

 private:
  ConvAttrs a_;
  std::shared_ptr<conv_detail::PackedWeights> packed_ = std::make_shared<conv_detail::PackedWeights>();
};

std::unique_ptr<Op> make_conv(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 2 && ctx.num_inputs != 3) ctx.fail(ErrorKind::invalid_model, "expects 2 or 3 inputs (X, W, B)");
  ConvAttrs a;
  a.group = attrs.get_int("group", 1);
  a.kernel_shape = attrs.get_ints("kernel_shape", {});
  a.strides = attrs.get_ints("strides", {});
  a.dilations = attrs.get_ints("dilations", {});
  a.pads = attrs.get_ints("pads", {});
  const std::string auto_pad = attrs.get_string("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") a.auto_pad = AutoPad::notset;
  else if (auto_pad == "SAME_UPPER") a.auto_pad = AutoPad::same_upper;
  else if (auto_pad == "SAME_LOWER") a.auto_pad = AutoPad::same_lower;
  else if (auto_pad == "VALID") a.auto_pad = AutoPad::valid;
  else ctx.fail(ErrorKind::invalid_model, "auto_pad '" + auto_pad + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");

  if (a.group < 1) ctx.fail(ErrorKind::invalid_model, "group must be at least 1, got " + std::to_string(a.group));
  auto all = [](const std::vector<int64_t>& v, auto pred) { return std::all_of(v.begin(), v.end(), pred); };
  if (!all(a.strides, [](int64_t v) { return v > 0; }) || !all(a.dilations, [](int64_t v) { return v > 0; }) ||
      !all(a.kernel_shape, [](int64_t v) { return v > 0; }))
    ctx.fail(ErrorKind::invalid_model, "strides, dilations and kernel_shape must be positive");
  if (!all(a.pads, [](int64_t v) { return v >= 0; })) ctx.fail(ErrorKind::unsupported, "negative pads are not supported");
  if (a.auto_pad != AutoPad::notset && !all(a.pads, [](int64_t v) { return v == 0; }))
    ctx.fail(ErrorKind::invalid_model, "pads and auto_pad '" + auto_pad + "' cannot both be given");
  if (a.pads.size() % 2 != 0) ctx.fail(ErrorKind::invalid_model, "pads needs begin and end values for each axis");
  // The spatial rank the attributes imply must be 1 or 2 (also checked against X at infer).
  for (size_t rank : {a.kernel_shape.size(), a.strides.size(), a.dilations.size(), a.pads.size() / 2})
    if (rank > 2) ctx.fail(ErrorKind::unsupported, "only 1-D and 2-D convolutions are supported");
  return std::make_unique<ConvOp>(ctx, std::move(a));
}

}  // namespace

std::pair<Tensor, Tensor> fold_batchnorm_weights(const Tensor& W, const Tensor* B, const Tensor& scale,
                                                 const Tensor& bn_bias, const Tensor& mean, const Tensor& var,
                                                 double epsilon) {
  if (W.rank() < 1) throw Error(ErrorKind::invalid_model, "cannot fold BatchNormalization into a scalar weight");
  const int64_t oc = W.dim(0);
  for (const Tensor* t : {B, &scale, &bn_bias, &mean, &var})
    if (t && t->numel() != oc)
      throw Error(ErrorKind::invalid_model, "cannot fold BatchNormalization: W " + shape_str(W.shape()) +
                                                " has " + std::to_string(oc) + " output channels but a tensor has shape " +
                                                shape_str(t->shape()));
  std::vector<double> b = B ? B->to_doubles() : std::vector<double>(oc, 0.0), k(oc);
  const auto s = scale.to_doubles(), beta = bn_bias.to_doubles(), mu = mean.to_doubles(), v = var.to_doubles();
  for (int64_t c = 0; c < oc; ++c) {
    if (!(v[c] + epsilon > 0))
      throw Error(ErrorKind::invalid_model, "cannot fold BatchNormalization: var + epsilon <= 0 in channel " + std::to_string(c));
    k[c] = s[c] / std::sqrt(v[c] + epsilon);
    b[c] = (b[c] - mu[c]) * k[c] + beta[c];
  }
  // W's values scaled in double and rounded once, straight into the result: no double copy of
  // the largest weights at load.
  const Tensor src = W.to_layout(Layout::plain);
  Tensor w = Tensor::uninitialized(W.dtype(), W.shape());
  const int64_t per_channel = oc ? W.numel() / oc : 0;
  dispatch_float(W.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* from = src.data<T>();
    T* to = w.data<T>();
    for (int64_t c = 0; c < oc; ++c)
      for (int64_t i = c * per_channel; i < (c + 1) * per_channel; ++i) to[i] = static_cast<T>(from[i] * k[c]);
  });
  return {w, Tensor::from_doubles({oc}, b).to_dtype(W.dtype())};
}

DERMAL_REGISTER_OP("Conv", make_conv);

}  // namespace dermal::engine::ops
