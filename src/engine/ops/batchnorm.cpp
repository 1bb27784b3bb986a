// BatchNormalization in inference mode: y = scale * (x - mean) / sqrt(var + epsilon) + B per
// channel (axis 1), for X of any rank >= 2 in any layout. With the statistics fixed the op is a
// per-channel affine map y = a[c] * x + b[c], and its VJP is dx = a[c] * dy (X only: scale, B,
// mean and var get no gradients). a and b are computed once when all four parameters are
// constants, else from the inputs on every call. Training mode, spatial = 0 (opsets 7-8) and the
// optional running-statistics outputs are not supported.
#include <cmath>
#include <optional>

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

// y = a[c] * x + b[c], in both precisions.
struct ChannelAffine {
  std::vector<double> a64, b64;
  std::vector<float> a32, b32;
};

// Fails with `kind` (invalid_model for constants, invalid_input for runtime values) when a
// channel's var + epsilon is not positive.
ChannelAffine channel_affine(const Tensor& scale, const Tensor& bias, const Tensor& mean, const Tensor& var,
                             double epsilon, const OpContext& ctx, ErrorKind kind) {
  const auto s = scale.to_doubles(), beta = bias.to_doubles(), mu = mean.to_doubles(), v = var.to_doubles();
  ChannelAffine f;
  f.a64.resize(s.size());
  f.b64.resize(s.size());
  for (size_t c = 0; c < s.size(); ++c) {
    if (!(v[c] + epsilon > 0)) ctx.fail(kind, "var + epsilon is not positive in channel " + std::to_string(c));
    f.a64[c] = s[c] / std::sqrt(v[c] + epsilon);
    f.b64[c] = beta[c] - mu[c] * f.a64[c];
  }
  f.a32.assign(f.a64.begin(), f.a64.end());
  f.b32.assign(f.b64.begin(), f.b64.end());
  return f;
}

class BatchNormKernel : public Kernel {
 public:
  // known: the factors when all parameters are constants; else they come from in[1..4] per call.
  BatchNormKernel(OpContext ctx, double epsilon, std::optional<ChannelAffine> known)
      : ctx_(std::move(ctx)), epsilon_(epsilon), known_(std::move(known)) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    const ChannelAffine& f = factors(in);
    if (in[0].dtype() == DType::f32) per_channel_affine<float>(in[0], out[0], f.a32, &f.b32);
    else per_channel_affine<double>(in[0], out[0], f.a64, &f.b64);
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    const ChannelAffine& f = factors(in);
    if (d_in[0].dtype() == DType::f32) per_channel_affine<float>(d_out[0], d_in[0], f.a32, nullptr);
    else per_channel_affine<double>(d_out[0], d_in[0], f.a64, nullptr);
  }

 private:
  const ChannelAffine& factors(const std::vector<Tensor>& in) {
    if (known_) return *known_;
    now_ = channel_affine(in[1], in[2], in[3], in[4], epsilon_, ctx_, ErrorKind::invalid_input);
    return now_;
  }

  OpContext ctx_;
  double epsilon_;
  std::optional<ChannelAffine> known_;
  ChannelAffine now_;  // runtime factors of the current call
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
    if (cfg.compute != DType::f32 && cfg.compute != DType::f64)
      ctx_.fail(ErrorKind::unsupported, std::string("compute dtype ") + dtype_name(cfg.compute));
    auto known = [&](size_t i) { return i < cfg.known.size() ? cfg.known[i] : nullptr; };
    std::optional<ChannelAffine> factors;
    if (known(1) && known(2) && known(3) && known(4))
      factors = channel_affine(*known(1), *known(2), *known(3), *known(4), epsilon_, ctx_, ErrorKind::invalid_model);
    const char* names[] = {"X", "scale", "B", "mean", "var"};
    for (size_t i = 1; i < 5; ++i)
      if (!known(i) && cfg.inputs[i].dtype != DType::f32 && cfg.inputs[i].dtype != DType::f64)
        ctx_.fail(ErrorKind::unsupported, std::string(names[i]) + " has dtype " + dtype_name(cfg.inputs[i].dtype) +
                                              ", only floats are supported");
    cfg.output_layouts = {cfg.input_layouts.empty() ? Layout::plain : cfg.input_layouts[0]};
    return std::make_unique<BatchNormKernel>(ctx_, epsilon_, std::move(factors));
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
