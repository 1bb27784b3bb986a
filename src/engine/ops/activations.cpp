// Elementwise activations: one table row each (value, derivative). They run on any layout (the
// output takes the input's layout), so they never force a reorder between convolutions.
// Clip (both the attribute form, opset < 11, and the min/max-input form) lives here too.
#include <cmath>
#include <limits>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

struct Params {
  double alpha = 0, beta = 0, gamma = 0;
};

// f: value; df: derivative given input x and output y.
struct Activation {
  double (*f)(double x, const Params& p);
  double (*df)(double x, double y, const Params& p);
};

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

const Activation kRelu{[](double x, const Params&) { return x > 0 ? x : 0.0; },
                       [](double x, double, const Params&) { return x > 0 ? 1.0 : 0.0; }};
const Activation kLeakyRelu{[](double x, const Params& p) { return x >= 0 ? x : p.alpha * x; },
                            [](double x, double, const Params& p) { return x >= 0 ? 1.0 : p.alpha; }};
const Activation kSigmoid{[](double x, const Params&) { return sigmoid(x); },
                          [](double, double y, const Params&) { return y * (1 - y); }};
const Activation kHardSigmoid{
    [](double x, const Params& p) { return std::max(0.0, std::min(1.0, p.alpha * x + p.beta)); },
    [](double x, double, const Params& p) {
      double t = p.alpha * x + p.beta;
      return t > 0 && t < 1 ? p.alpha : 0.0;
    }};
const Activation kHardSwish{[](double x, const Params&) { return x * std::max(0.0, std::min(1.0, x / 6 + 0.5)); },
                            [](double x, double, const Params&) {
                              if (x <= -3) return 0.0;
                              if (x >= 3) return 1.0;
                              return x / 3 + 0.5;
                            }};
const Activation kTanh{[](double x, const Params&) { return std::tanh(x); },
                       [](double, double y, const Params&) { return 1 - y * y; }};
const Activation kElu{[](double x, const Params& p) { return x > 0 ? x : p.alpha * (std::exp(x) - 1); },
                      [](double x, double y, const Params& p) { return x > 0 ? 1.0 : y + p.alpha; }};
const Activation kSelu{
    [](double x, const Params& p) { return x > 0 ? p.gamma * x : p.gamma * p.alpha * (std::exp(x) - 1); },
    [](double x, double, const Params& p) { return x > 0 ? p.gamma : p.gamma * p.alpha * std::exp(x); }};
const Activation kSoftplus{[](double x, const Params&) { return x > 30 ? x : std::log1p(std::exp(x)); },
                           [](double x, double, const Params&) { return sigmoid(x); }};
const Activation kErf{[](double x, const Params&) { return std::erf(x); },
                      [](double x, double, const Params&) { return 2.0 / std::sqrt(M_PI) * std::exp(-x * x); }};
const Activation kSqrt{[](double x, const Params&) { return std::sqrt(x); },
                       [](double, double y, const Params&) { return 0.5 / y; }};
const Activation kExp{[](double x, const Params&) { return std::exp(x); },
                      [](double, double y, const Params&) { return y; }};
const Activation kLog{[](double x, const Params&) { return std::log(x); },
                      [](double x, double, const Params&) { return 1.0 / x; }};
const Activation kNeg{[](double x, const Params&) { return -x; }, [](double, double, const Params&) { return -1.0; }};
const Activation kReciprocal{[](double x, const Params&) { return 1.0 / x; },
                             [](double, double y, const Params&) { return -y * y; }};
const Activation kAbs{[](double x, const Params&) { return std::abs(x); },
                      [](double x, double, const Params&) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }};
// Clip: alpha = min, beta = max. The gradient passes where min < x < max: PyTorch's rule for
// hardtanh and ReLU6 (what exports as Clip), and the only rule a fused convolution can apply,
// since from the output alone x == min cannot be told from x < min.
const Activation kClip{[](double x, const Params& p) { return std::min(std::max(x, p.alpha), p.beta); },
                       [](double x, double, const Params& p) { return x > p.alpha && x < p.beta ? 1.0 : 0.0; }};

template <class T>
void unary_forward(const Activation& a, const Params& p, const Tensor& in, const Tensor& out) {
  const T* x = in.data<T>();
  T* y = out.data<T>();
  const int64_t n = in.numel();
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(a.f(x[i], p));
}

// The hot activations get a float loop the compiler vectorises.
void relu_forward_f32(const Tensor& in, const Tensor& out) {
  const float* x = in.data<float>();
  float* y = out.data<float>();
  const int64_t n = in.numel();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

void clip_forward_f32(const Tensor& in, const Tensor& out, float lo, float hi) {
  const float* x = in.data<float>();
  float* y = out.data<float>();
  const int64_t n = in.numel();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(x[i], lo), hi);
}

class UnaryKernel : public Kernel {
 public:
  UnaryKernel(const Activation& a, Params p, const Activation* fast_relu, bool fast_clip)
      : a_(a), p_(p), fast_relu_(fast_relu != nullptr), fast_clip_(fast_clip) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    if (in[0].dtype() == DType::f32 && fast_relu_) return relu_forward_f32(in[0], out[0]);
    if (in[0].dtype() == DType::f32 && fast_clip_)
      return clip_forward_f32(in[0], out[0], static_cast<float>(p_.alpha), static_cast<float>(p_.beta));
    dispatch_float(in[0].dtype(), [&](auto t) { unary_forward<decltype(t)>(a_, p_, in[0], out[0]); });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    dispatch_float(in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* x = in[0].data<T>();
      const T* y = out[0].data<T>();
      const T* dy = d_out[0].data<T>();
      T* dx = d_in[0].data<T>();
      const int64_t n = in[0].numel();
      for (int64_t i = 0; i < n; ++i) dx[i] = static_cast<T>(dy[i] * a_.df(x[i], y[i], p_));
    });
  }

 private:
  const Activation& a_;
  Params p_;
  bool fast_relu_, fast_clip_;
};

class UnaryOp : public Op {
 public:
  UnaryOp(const OpContext& ctx, const Activation& a, Params p, std::optional<EltwiseSpec> eltwise)
      : Op(ctx), a_(a), p_(p), eltwise_(eltwise) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    if (in.empty() || (in[0].dtype != DType::f32 && in[0].dtype != DType::f64))
      ctx_.fail(ErrorKind::unsupported, "needs one float input");
    return {in[0]};
  }
  bool accepts_nhwc(size_t) const override { return true; }
  std::optional<EltwiseSpec> as_eltwise(const std::vector<const Tensor*>&) const override { return eltwise_; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts = {cfg.input_layouts[0]};
    return std::make_unique<UnaryKernel>(a_, p_, &a_ == &kRelu ? &kRelu : nullptr, &a_ == &kClip);
  }

 protected:
  const Activation& a_;
  Params p_;
  std::optional<EltwiseSpec> eltwise_;
};

// Clip whose bounds are inputs: read them on each run (they are usually constants, but a graph
// may compute them).
class ClipKernel : public Kernel {
 public:
  explicit ClipKernel(std::vector<bool> present) : present_(std::move(present)) {}
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override { kernel(in).forward(in, out); }
  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    kernel(in).backward(in, out, d_out, d_in);
  }

 private:
  UnaryKernel kernel(const std::vector<Tensor>& in) const {
    Params p{-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(), 0};
    if (present_.size() > 1 && present_[1]) p.alpha = in[1].to_doubles().at(0);
    if (present_.size() > 2 && present_[2]) p.beta = in[2].to_doubles().at(0);
    return UnaryKernel(kClip, p, nullptr, true);
  }
  std::vector<bool> present_;
};

// Clip with min/max as inputs (opset >= 11).
class ClipInputsOp : public UnaryOp {
 public:
  explicit ClipInputsOp(const OpContext& ctx) : UnaryOp(ctx, kClip, {}, std::nullopt) {}
  bool differentiable(size_t i) const override { return i == 0; }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts = {cfg.input_layouts[0]};
    return std::make_unique<ClipKernel>(cfg.present);
  }
  std::optional<EltwiseSpec> as_eltwise(const std::vector<const Tensor*>& known) const override {
    float lo = -std::numeric_limits<float>::max(), hi = std::numeric_limits<float>::max();
    if (ctx_.num_inputs > 1 && known.size() > 1) {
      if (!known[1]) return std::nullopt;
      lo = static_cast<float>(known[1]->to_doubles().at(0));
    }
    if (ctx_.num_inputs > 2 && known.size() > 2) {
      if (!known[2]) return std::nullopt;
      hi = static_cast<float>(known[2]->to_doubles().at(0));
    }
    return EltwiseSpec{EltwiseSpec::clip, lo, hi};
  }
};

std::unique_ptr<Op> make(const OpContext& ctx, const Activation& a, Params p = {},
                         std::optional<EltwiseSpec> e = std::nullopt) {
  if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects exactly one input");
  return std::make_unique<UnaryOp>(ctx, a, p, e);
}

std::unique_ptr<Op> make_clip(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.opset < 11) {
    Params p{attrs.get_float("min", -std::numeric_limits<float>::max()),
             attrs.get_float("max", std::numeric_limits<float>::max()), 0};
    return std::make_unique<UnaryOp>(
        ctx, kClip, p, EltwiseSpec{EltwiseSpec::clip, static_cast<float>(p.alpha), static_cast<float>(p.beta)});
  }
  if (ctx.num_inputs < 1 || ctx.num_inputs > 3) ctx.fail(ErrorKind::invalid_model, "expects 1 to 3 inputs");
  return std::make_unique<ClipInputsOp>(ctx);
}

}  // namespace

DERMAL_REGISTER_OP("Relu", [](const Attributes&, const OpContext& c) { return make(c, kRelu, {}, EltwiseSpec{EltwiseSpec::relu}); });
DERMAL_REGISTER_OP("LeakyRelu", [](const Attributes& a, const OpContext& c) {
  double alpha = a.get_float("alpha", 0.01);
  // Fusable only while the sign of the output still tells the sign of the input.
  std::optional<EltwiseSpec> fused;
  if (alpha > 0) fused = EltwiseSpec{EltwiseSpec::relu, static_cast<float>(alpha)};
  return make(c, kLeakyRelu, {alpha}, fused);
});
DERMAL_REGISTER_OP("Sigmoid", [](const Attributes&, const OpContext& c) { return make(c, kSigmoid, {}, EltwiseSpec{EltwiseSpec::sigmoid}); });
DERMAL_REGISTER_OP("HardSigmoid", [](const Attributes& a, const OpContext& c) {
  return make(c, kHardSigmoid, {a.get_float("alpha", 0.2), a.get_float("beta", 0.5)});
});
DERMAL_REGISTER_OP("HardSwish", [](const Attributes&, const OpContext& c) { return make(c, kHardSwish); });
DERMAL_REGISTER_OP("Tanh", [](const Attributes&, const OpContext& c) { return make(c, kTanh, {}, EltwiseSpec{EltwiseSpec::tanh}); });
DERMAL_REGISTER_OP("Elu", [](const Attributes& a, const OpContext& c) {
  double alpha = a.get_float("alpha", 1.0);
  std::optional<EltwiseSpec> fused;
  if (alpha > 0) fused = EltwiseSpec{EltwiseSpec::elu, static_cast<float>(alpha)};
  return make(c, kElu, {alpha}, fused);
});
DERMAL_REGISTER_OP("Selu", [](const Attributes& a, const OpContext& c) {
  return make(c, kSelu, {a.get_float("alpha", 1.67326319217681884765625), 0, a.get_float("gamma", 1.05070102214813232421875)});
});
DERMAL_REGISTER_OP("Softplus", [](const Attributes&, const OpContext& c) { return make(c, kSoftplus); });
DERMAL_REGISTER_OP("Erf", [](const Attributes&, const OpContext& c) { return make(c, kErf); });
DERMAL_REGISTER_OP("Sqrt", [](const Attributes&, const OpContext& c) { return make(c, kSqrt); });
DERMAL_REGISTER_OP("Exp", [](const Attributes&, const OpContext& c) { return make(c, kExp); });
DERMAL_REGISTER_OP("Log", [](const Attributes&, const OpContext& c) { return make(c, kLog); });
DERMAL_REGISTER_OP("Neg", [](const Attributes&, const OpContext& c) { return make(c, kNeg); });
DERMAL_REGISTER_OP("Reciprocal", [](const Attributes&, const OpContext& c) { return make(c, kReciprocal); });
DERMAL_REGISTER_OP("Abs", [](const Attributes&, const OpContext& c) { return make(c, kAbs); });
DERMAL_REGISTER_OP("Clip", make_clip);

}  // namespace dermal::engine::ops
