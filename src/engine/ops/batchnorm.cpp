// BatchNormalization in inference mode: y = scale * (x - mean) / sqrt(var + epsilon) + B per
// channel (axis 1), for X of any rank >= 2 in any layout. The statistics are constants, so the
// op is a per-channel affine map y = a[c] * x + b[c], and its VJP is dx = a[c] * dy. Training
// mode, spatial = 0 (opsets 7-8) and the optional running-statistics outputs are not supported.
#include <cmath>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// out = a[c] * in + b[c] (b may be null: no shift). in and out share shape and layout.
template <class T>
void per_channel_affine(const Tensor& in, const Tensor& out, const std::vector<T>& a, const std::vector<T>* b) {
  const T* x = in.data<T>();
  T* y = out.data<T>();
  const auto st = in.strides();
  const int64_t n = in.dim(0), c = in.dim(1);
  const int64_t inner = n * c > 0 ? in.numel() / (n * c) : 0;
  // The spatial dims form one run of stride st[rank-1] in both layouts (1 plain, C channels-last).
  const int64_t sn = st[0], sc = st[1], si = in.rank() > 2 ? st[in.rank() - 1] : 0;
  auto shift = [&](int64_t ch) { return b ? (*b)[ch] : T{0}; };
  const bool big = in.numel() > 65536;
  if (sc == 1) {  // channels innermost: a contiguous run of C values per position
#pragma omp parallel for if (big)
    for (int64_t p = 0; p < n * inner; ++p) {
      const int64_t base = p / inner * sn + p % inner * si;
      for (int64_t ch = 0; ch < c; ++ch) y[base + ch] = a[ch] * x[base + ch] + shift(ch);
    }
  } else {
#pragma omp parallel for if (big)
    for (int64_t p = 0; p < n * c; ++p) {
      const int64_t ch = p % c, base = p / c * sn + ch * sc;
      const T scale = a[ch], offset = shift(ch);
      for (int64_t i = 0; i < inner; ++i) y[base + i * si] = scale * x[base + i * si] + offset;
    }
  }
}

class BatchNormKernel : public Kernel {
 public:
  BatchNormKernel(const std::vector<double>& a, const std::vector<double>& b)
      : a64_(a), b64_(b), a32_(a.begin(), a.end()), b32_(b.begin(), b.end()) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    if (in[0].dtype() == DType::f32) per_channel_affine<float>(in[0], out[0], a32_, &b32_);
    else per_channel_affine<double>(in[0], out[0], a64_, &b64_);
  }

  void backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    if (d_in[0].dtype() == DType::f32) per_channel_affine<float>(d_out[0], d_in[0], a32_, nullptr);
    else per_channel_affine<double>(d_out[0], d_in[0], a64_, nullptr);
  }

 private:
  std::vector<double> a64_, b64_;
  std::vector<float> a32_, b32_;
};

class BatchNormOp : public Op {
 public:
  BatchNormOp(const OpContext& ctx, double epsilon) : Op(ctx), epsilon_(epsilon) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    const TensorInfo& x = in.at(0);
    if (x.dtype != DType::f32 && x.dtype != DType::f64)
      ctx_.fail(ErrorKind::unsupported, std::string("X has dtype ") + dtype_name(x.dtype) + ", only floats are supported");
    if (x.shape.size() < 2) ctx_.fail(ErrorKind::invalid_model, "X " + shape_str(x.shape) + " needs rank >= 2 (N, C, ...)");
    const char* names[] = {"X", "scale", "B", "mean", "var"};
    for (size_t i = 1; i < 5; ++i)
      if (shape_numel(in.at(i).shape) != x.shape[1] || in[i].shape.size() != 1)
        ctx_.fail(ErrorKind::invalid_model, std::string(names[i]) + " " + shape_str(in[i].shape) + " should be [" +
                                                std::to_string(x.shape[1]) + "] for X " + shape_str(x.shape));
    return {x};
  }

  bool accepts_nhwc(size_t input) const override { return input == 0; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    const auto scale = require_known(cfg, 1, ctx_, "BatchNormalization scale").to_doubles();
    const auto bias = require_known(cfg, 2, ctx_, "BatchNormalization B").to_doubles();
    const auto mean = require_known(cfg, 3, ctx_, "BatchNormalization mean").to_doubles();
    const auto var = require_known(cfg, 4, ctx_, "BatchNormalization var").to_doubles();
    std::vector<double> a(scale.size()), b(scale.size());
    for (size_t c = 0; c < scale.size(); ++c) {
      if (!(var[c] + epsilon_ > 0))
        ctx_.fail(ErrorKind::invalid_model, "var + epsilon is not positive in channel " + std::to_string(c));
      a[c] = scale[c] / std::sqrt(var[c] + epsilon_);
      b[c] = bias[c] - mean[c] * a[c];
    }
    if (cfg.compute != DType::f32 && cfg.compute != DType::f64)
      ctx_.fail(ErrorKind::unsupported, std::string("compute dtype ") + dtype_name(cfg.compute));
    cfg.output_layouts = {cfg.input_layouts.empty() ? Layout::plain : cfg.input_layouts[0]};
    return std::make_unique<BatchNormKernel>(a, b);
  }

 private:
  double epsilon_;
};

std::unique_ptr<Op> make_batchnorm(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 5) ctx.fail(ErrorKind::invalid_model, "expects 5 inputs (X, scale, B, mean, var)");
  if (ctx.num_outputs != 1)
    ctx.fail(ErrorKind::unsupported, "only the Y output is supported (inference mode); the node has " +
                                         std::to_string(ctx.num_outputs) + " outputs");
  const double epsilon = attrs.get_float("epsilon", 1e-5);
  attrs.ignore("momentum");  // only updates running statistics in training
  if (ctx.opset >= 14 && attrs.get_int("training_mode", 0) != 0)
    ctx.fail(ErrorKind::unsupported, "training_mode = 1 is not supported (inference only)");
  if (ctx.opset < 9 && attrs.get_int("spatial", 1) != 1)
    ctx.fail(ErrorKind::unsupported, "spatial = 0 (per-activation statistics) is not supported");
  return std::make_unique<BatchNormOp>(ctx, epsilon);
}

}  // namespace

DERMAL_REGISTER_OP("BatchNormalization", make_batchnorm);

}  // namespace dermal::engine::ops
