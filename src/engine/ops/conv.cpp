// Conv: 2-D convolution, and 1-D as 2-D with H = 1 (3-D is not supported). Any group count
// (depthwise included), strides, dilations, explicit (asymmetric) or automatic pads, an optional
// bias, and an optional fused activation (KernelConfig::post_eltwise). f32 runs on oneDNN with the
// weights packed once per op and shared by all its kernels; f64 runs plain loops, the reference
// for gradient checks. Backward is the VJP with respect to X.
#include "engine/ops/conv.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <mutex>
#include <unordered_map>

#include "engine/dnnl_util.h"
#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

enum class AutoPad { notset, same_upper, same_lower, valid };

// Attributes as written; an empty list means the default for the input's spatial rank.
struct ConvAttrs {
  int64_t group = 1;
  AutoPad auto_pad = AutoPad::notset;
  std::vector<int64_t> kernel_shape, strides, dilations, pads;
};

// One convolution's sizes, 1-D folded into 2-D (H = 1, kernel height 1, no pads on H).
struct Geometry {
  int64_t n = 0, c = 0, h = 0, w = 0;     // input
  int64_t oc = 0, group = 1, kh = 0, kw = 0;  // weights: [oc, c / group, kh, kw]
  int64_t oh = 0, ow = 0;                  // output
  int64_t sh = 1, sw = 1, dh = 1, dw = 1;  // strides, dilations (ONNX: 1 = dense)
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;  // pads: top, left, bottom, right
  int spatial_rank = 2;                    // as in the model
  Shape out_shape() const { return spatial_rank == 1 ? Shape{n, oc, ow} : Shape{n, oc, oh, ow}; }
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

// The fused activation's value, and its derivative computed from its output.
double eltwise_value(const EltwiseSpec& e, double x) {
  switch (e.kind) {
    case EltwiseSpec::relu: return x > 0 ? x : e.alpha * x;
    case EltwiseSpec::clip: return std::min(std::max(x, double{e.alpha}), double{e.beta});
    case EltwiseSpec::tanh: return std::tanh(x);
    case EltwiseSpec::elu: return x > 0 ? x : e.alpha * std::expm1(x);
    case EltwiseSpec::sigmoid: return 1.0 / (1.0 + std::exp(-x));
  }
  return x;
}

double eltwise_grad_from_output(const EltwiseSpec& e, double y) {
  switch (e.kind) {
    case EltwiseSpec::relu: return y > 0 ? 1.0 : e.alpha;
    case EltwiseSpec::clip: return y > e.alpha && y < e.beta ? 1.0 : 0.0;
    case EltwiseSpec::tanh: return 1 - y * y;
    case EltwiseSpec::elu: return y > 0 ? 1.0 : y + e.alpha;
    case EltwiseSpec::sigmoid: return y * (1 - y);
  }
  return 1.0;
}

// Element strides over (N, C, H, W) for a rank-3 (H = 1) or rank-4 tensor of any layout.
std::array<int64_t, 4> strides4(const Tensor& t) {
  auto s = t.strides();
  if (s.size() == 3) return {s[0], s[1], 0, s[2]};
  return {s[0], s[1], s[2], s[3]};
}

// dy scaled by the fused activation's derivative (dy itself when there is none). y and dy share
// a layout, so elementwise work can ignore it.
template <class T>
Tensor pre_activation_grad(const std::optional<EltwiseSpec>& act, const Tensor& y, const Tensor& dy) {
  if (!act) return dy;
  Tensor g = Tensor::zeros(dy.dtype(), dy.shape(), dy.layout());
  const T* yp = y.data<T>();
  const T* dyp = dy.data<T>();
  T* gp = g.data<T>();
  const int64_t n = dy.numel();
  for (int64_t i = 0; i < n; ++i) gp[i] = static_cast<T>(dyp[i] * eltwise_grad_from_output(*act, yp[i]));
  return g;
}

// The plain-loop reference: any geometry, any layout. Weights are [oc, c / group, kh, kw].
class ReferenceConvKernel : public Kernel {
 public:
  ReferenceConvKernel(Geometry g, std::vector<double> w, std::vector<double> b, std::optional<EltwiseSpec> act)
      : g_(g), w_(std::move(w)), b_(std::move(b)), act_(act) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    dispatch_float(in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* x = in[0].data<T>();
      T* y = out[0].data<T>();
      auto xs = strides4(in[0]), ys = strides4(out[0]);
      visit([&](int64_t n, int64_t oc, int64_t oh, int64_t ow, auto&& taps) {
        double acc = b_.empty() ? 0.0 : b_[oc];
        taps([&](int64_t ic, int64_t ih, int64_t iw, double w) { acc += x[n * xs[0] + ic * xs[1] + ih * xs[2] + iw * xs[3]] * w; });
        y[n * ys[0] + oc * ys[1] + oh * ys[2] + ow * ys[3]] = static_cast<T>(act_ ? eltwise_value(*act_, acc) : acc);
      });
    });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    d_in[0].fill_zero();
    if (!d_out[0].defined()) return;
    dispatch_float(in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      Tensor gy = pre_activation_grad<T>(act_, out[0], d_out[0]);
      const T* dy = gy.data<T>();
      T* dx = d_in[0].data<T>();
      auto xs = strides4(d_in[0]), ys = strides4(gy);
      visit([&](int64_t n, int64_t oc, int64_t oh, int64_t ow, auto&& taps) {
        const double g = dy[n * ys[0] + oc * ys[1] + oh * ys[2] + ow * ys[3]];
        taps([&](int64_t ic, int64_t ih, int64_t iw, double w) { dx[n * xs[0] + ic * xs[1] + ih * xs[2] + iw * xs[3]] += static_cast<T>(g * w); });
      });
    });
  }

 private:
  // Calls f(n, oc, oh, ow, taps) for every output element; taps(fn) calls fn(ic, ih, iw, weight)
  // for every kernel tap that lands inside the (unpadded) input.
  template <class F>
  void visit(F&& f) const {
    const Geometry& g = g_;
    const int64_t icg = g.c / g.group, ocg = g.oc / g.group;
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t oc = 0; oc < g.oc; ++oc)
        for (int64_t oh = 0; oh < g.oh; ++oh)
          for (int64_t ow = 0; ow < g.ow; ++ow) {
            auto taps = [&](auto&& fn) {
              for (int64_t icl = 0; icl < icg; ++icl)
                for (int64_t kh = 0; kh < g.kh; ++kh) {
                  const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
                  if (ih < 0 || ih >= g.h) continue;
                  for (int64_t kw = 0; kw < g.kw; ++kw) {
                    const int64_t iw = ow * g.sw - g.pl + kw * g.dw;
                    if (iw < 0 || iw >= g.w) continue;
                    fn(oc / ocg * icg + icl, ih, iw, w_[((oc * icg + icl) * g.kh + kh) * g.kw + kw]);
                  }
                }
            };
            f(n, oc, oh, ow, taps);
          }
  }

  Geometry g_;
  std::vector<double> w_, b_;
  std::optional<EltwiseSpec> act_;
};

// Weights reordered into the formats oneDNN asks for, shared by all kernels of one op (one per
// batch size, forward and backward). Keyed by the format and by the weight tensor they came
// from, which each entry keeps alive so its address cannot be reused by another tensor.
class PackedWeights {
 public:
  dnnl::memory get(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& e : entries_)
      if (e.source.raw() == w.raw() && e.packed.get_desc() == wanted) return e.packed;
    Tensor w32 = w.dtype() == DType::f32 ? w : w.to_dtype(DType::f32);
    dnnl::memory src = dnnl_util::memory(plain, w32.raw());
    dnnl::memory packed = wanted == plain ? src : dnnl_util::reorder(src, wanted);
    entries_.push_back({w, w32, packed});
    return packed;
  }

 private:
  struct Entry {
    Tensor source, data;  // data: the f32 buffer a plain `packed` points into
    dnnl::memory packed;
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

dnnl::algorithm eltwise_algorithm(EltwiseSpec::Kind kind) {
  switch (kind) {
    case EltwiseSpec::relu: return dnnl::algorithm::eltwise_relu;
    case EltwiseSpec::clip: return dnnl::algorithm::eltwise_clip_v2;
    case EltwiseSpec::tanh: return dnnl::algorithm::eltwise_tanh;
    case EltwiseSpec::elu: return dnnl::algorithm::eltwise_elu;
    case EltwiseSpec::sigmoid: return dnnl::algorithm::eltwise_logistic;
  }
  return dnnl::algorithm::eltwise_relu;
}

// The f32 path on oneDNN. src and dst keep the layout the input arrives in.
class DnnlConvKernel : public Kernel {
 public:
  DnnlConvKernel(const Geometry& g, Layout layout, const Tensor& w, const Tensor* b, std::optional<EltwiseSpec> act,
                 std::shared_ptr<PackedWeights> packed)
      : w_(w), act_(act), packed_(std::move(packed)) {
    using md = dnnl::memory::desc;
    using tag = dnnl::memory::format_tag;
    src_md_ = dnnl_util::desc({g.n, g.c, g.h, g.w}, layout);
    dst_md_ = dnnl_util::desc({g.n, g.oc, g.oh, g.ow}, layout);
    const auto f32 = dnnl::memory::data_type::f32;
    dnnl::memory::dims wdims = g.group == 1 ? dnnl::memory::dims{g.oc, g.c, g.kh, g.kw}
                                            : dnnl::memory::dims{g.group, g.oc / g.group, g.c / g.group, g.kh, g.kw};
    plain_w_md_ = md(wdims, f32, g.group == 1 ? tag::oihw : tag::goihw);
    any_w_md_ = md(wdims, f32, tag::any);
    strides_ = {g.sh, g.sw};
    dilates_ = {g.dh - 1, g.dw - 1};
    pad_l_ = {g.pt, g.pl};
    pad_r_ = {g.pb, g.pr};

    dnnl::primitive_attr attr;
    if (act_) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.f, eltwise_algorithm(act_->kind), act_->alpha, act_->beta);
      attr.set_post_ops(ops);
    }
    if (b) {
      bias_ = b->to_dtype(DType::f32);
      bias_md_ = dnnl_util::desc({g.oc});
    }
    dnnl::convolution_forward::primitive_desc pd(forward_desc(dnnl::prop_kind::forward_inference), attr,
                                                 dnnl_util::cpu_engine());
    fwd_ = dnnl::convolution_forward(pd);
    fwd_weights_ = packed_->get(w_, plain_w_md_, pd.weights_desc());
  }

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl_util::memory(src_md_, in[0].raw())},
                                               {DNNL_ARG_WEIGHTS, fwd_weights_},
                                               {DNNL_ARG_DST, dnnl_util::memory(dst_md_, out[0].raw())}};
    if (bias_.defined()) args[DNNL_ARG_BIAS] = dnnl_util::memory(bias_md_, bias_.raw());
    dnnl_util::execute(fwd_, args);
  }

  void backward(const std::vector<Tensor>&, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    prepare_backward();
    Tensor gy = pre_activation_grad<float>(act_, out[0], d_out[0]);
    dnnl_util::execute(bwd_, {{DNNL_ARG_DIFF_DST, dnnl_util::memory(dst_md_, gy.raw())},
                              {DNNL_ARG_WEIGHTS, bwd_weights_},
                              {DNNL_ARG_DIFF_SRC, dnnl_util::memory(src_md_, d_in[0].raw())}});
  }

 private:
  dnnl::convolution_forward::desc forward_desc(dnnl::prop_kind kind) const {
    if (bias_.defined())
      return {kind, dnnl::algorithm::convolution_direct, src_md_, any_w_md_, bias_md_, dst_md_, strides_, dilates_, pad_l_, pad_r_};
    return {kind, dnnl::algorithm::convolution_direct, src_md_, any_w_md_, dst_md_, strides_, dilates_, pad_l_, pad_r_};
  }

  // Built on the first backward, so inference-only plans never hold a second packed copy.
  void prepare_backward() {
    if (bwd_weights_) return;
    dnnl::convolution_forward::primitive_desc hint(forward_desc(dnnl::prop_kind::forward_training), dnnl_util::cpu_engine());
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, src_md_, any_w_md_, dst_md_, strides_,
                                            dilates_, pad_l_, pad_r_);
    dnnl::convolution_backward_data::primitive_desc pd(d, dnnl_util::cpu_engine(), hint);
    bwd_ = dnnl::convolution_backward_data(pd);
    bwd_weights_ = packed_->get(w_, plain_w_md_, pd.weights_desc());
  }

  Tensor w_, bias_;
  std::optional<EltwiseSpec> act_;
  std::shared_ptr<PackedWeights> packed_;
  dnnl::memory::desc src_md_, dst_md_, plain_w_md_, any_w_md_, bias_md_;
  dnnl::memory::dims strides_, dilates_, pad_l_, pad_r_;
  dnnl::convolution_forward fwd_;
  dnnl::memory fwd_weights_;
  dnnl::convolution_backward_data bwd_;
  dnnl::memory bwd_weights_;
};

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

  bool accepts_nhwc(size_t input) const override { return input == 0; }
  bool wants_nhwc() const override { return true; }
  bool accepts_post_eltwise() const override { return true; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    const Tensor& w = require_known(cfg, 1, ctx_, "Conv weights W");
    const Tensor* b = cfg.present.size() > 2 && cfg.present[2] ? &require_known(cfg, 2, ctx_, "Conv bias B") : nullptr;
    Geometry g = make_geometry(a_, cfg.inputs[0].shape, w.shape(), ctx_);
    if (b && b->numel() != g.oc)
      ctx_.fail(ErrorKind::invalid_model, "B " + shape_str(b->shape()) + " should hold " + std::to_string(g.oc) + " values");
    const auto& act = cfg.post_eltwise;
    // With a negative slope the output no longer tells which side of zero the input was on.
    if (act && (act->kind == EltwiseSpec::relu || act->kind == EltwiseSpec::elu) && act->alpha < 0)
      ctx_.fail(ErrorKind::unsupported, "a fused relu/elu with a negative alpha cannot be differentiated");
    const Layout layout = cfg.input_layouts.empty() ? Layout::plain : cfg.input_layouts[0];
    cfg.output_layouts = {g.spatial_rank == 2 ? layout : Layout::plain};
    if (cfg.compute == DType::f64)
      return std::make_unique<ReferenceConvKernel>(g, w.to_doubles(), b ? b->to_doubles() : std::vector<double>{}, act);
    if (cfg.compute != DType::f32) ctx_.fail(ErrorKind::unsupported, std::string("compute dtype ") + dtype_name(cfg.compute));
    return std::make_unique<DnnlConvKernel>(g, cfg.output_layouts[0], w, b, act, packed_);
  }

 private:
  ConvAttrs a_;
  std::shared_ptr<PackedWeights> packed_ = std::make_shared<PackedWeights>();
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
  std::vector<double> w = W.to_doubles(), b = B ? B->to_doubles() : std::vector<double>(oc, 0.0);
  const auto s = scale.to_doubles(), beta = bn_bias.to_doubles(), mu = mean.to_doubles(), v = var.to_doubles();
  const size_t per_channel = oc ? w.size() / oc : 0;
  for (int64_t c = 0; c < oc; ++c) {
    if (!(v[c] + epsilon > 0))
      throw Error(ErrorKind::invalid_model, "cannot fold BatchNormalization: var + epsilon <= 0 in channel " + std::to_string(c));
    const double k = s[c] / std::sqrt(v[c] + epsilon);
    for (size_t i = 0; i < per_channel; ++i) w[c * per_channel + i] *= k;
    b[c] = (b[c] - mu[c]) * k + beta[c];
  }
  return {Tensor::from_doubles(W.shape(), w).to_dtype(W.dtype()), Tensor::from_doubles({oc}, b).to_dtype(W.dtype())};
}

DERMAL_REGISTER_OP("Conv", make_conv);

}  // namespace dermal::engine::ops
