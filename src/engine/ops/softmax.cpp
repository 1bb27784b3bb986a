// Softmax and LogSoftmax (plain layout). Before opset 13 the input is coerced to 2-D at `axis`
// (default 1) and each row of the flattened trailing block is normalised; from opset 13 the
// normalisation runs along `axis` alone (default -1). The maximum is subtracted first, so large
// inputs neither overflow nor lose LogSoftmax's precision.
#include <algorithm>
#include <cmath>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// The input seen as [outer, n, inner]: each (outer, inner) pair is one row of n elements, inner
// apart.
struct Rows {
  int64_t outer = 1, n = 1, inner = 1;
};

template <class T>
void softmax_forward(bool log, const Rows& r, const T* x, T* y) {
  for (int64_t o = 0; o < r.outer; ++o)
    for (int64_t i = 0; i < r.inner; ++i) {
      const T* xr = x + o * r.n * r.inner + i;
      T* yr = y + o * r.n * r.inner + i;
      T max = xr[0];
      for (int64_t k = 1; k < r.n; ++k) max = std::max(max, xr[k * r.inner]);
      double sum = 0;
      for (int64_t k = 0; k < r.n; ++k) sum += std::exp(static_cast<double>(xr[k * r.inner] - max));
      const double log_sum = std::log(sum);
      for (int64_t k = 0; k < r.n; ++k) {
        const double shifted = static_cast<double>(xr[k * r.inner] - max);
        yr[k * r.inner] = static_cast<T>(log ? shifted - log_sum : std::exp(shifted) / sum);
      }
    }
}

// Softmax: dx = y * (dy - sum(dy * y)). LogSoftmax: dx = dy - exp(y) * sum(dy).
template <class T>
void softmax_backward(bool log, const Rows& r, const T* y, const T* dy, T* dx) {
  for (int64_t o = 0; o < r.outer; ++o)
    for (int64_t i = 0; i < r.inner; ++i) {
      const int64_t base = o * r.n * r.inner + i;
      double dot = 0;
      for (int64_t k = 0; k < r.n; ++k) {
        const int64_t j = base + k * r.inner;
        dot += log ? dy[j] : static_cast<double>(dy[j]) * y[j];
      }
      for (int64_t k = 0; k < r.n; ++k) {
        const int64_t j = base + k * r.inner;
        dx[j] = static_cast<T>(log ? dy[j] - std::exp(static_cast<double>(y[j])) * dot : y[j] * (dy[j] - dot));
      }
    }
}

class SoftmaxKernel : public Kernel {
 public:
  SoftmaxKernel(bool log, Rows rows) : log_(log), rows_(rows) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    dispatch_float(in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      softmax_forward<T>(log_, rows_, in[0].data<T>(), out[0].data<T>());
    });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    dispatch_float(in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      softmax_backward<T>(log_, rows_, out[0].data<T>(), d_out[0].data<T>(), d_in[0].data<T>());
    });
  }

 private:
  bool log_;
  Rows rows_;
};

class SoftmaxOp : public Op {
 public:
  SoftmaxOp(const OpContext& ctx, bool log, int64_t axis) : Op(ctx), log_(log), axis_(axis) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    if (in.empty() || (in[0].dtype != DType::f32 && in[0].dtype != DType::f64))
      ctx_.fail(ErrorKind::unsupported, "needs one float input");
    rows(in[0].shape);  // checks the axis
    return {in[0]};
  }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    return std::make_unique<SoftmaxKernel>(log_, rows(cfg.inputs[0].shape));
  }

 private:
  Rows rows(const Shape& shape) const {
    const int64_t rank = static_cast<int64_t>(shape.size());
    const int64_t axis = normalize_axis(axis_, rank, ctx_);
    Rows r;
    for (int64_t d = 0; d < rank; ++d) {
      if (d < axis) r.outer *= shape[d];
      else if (d == axis || ctx_.opset < 13) r.n *= shape[d];  // before 13: the whole trailing block
      else r.inner *= shape[d];
    }
    return r;
  }

  bool log_;
  int64_t axis_;
};

std::unique_ptr<Op> make_softmax(bool log, const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects exactly one input");
  return std::make_unique<SoftmaxOp>(ctx, log, attrs.get_int("axis", ctx.opset < 13 ? 1 : -1));
}

}  // namespace

DERMAL_REGISTER_OP("Softmax", [](const Attributes& a, const OpContext& c) { return make_softmax(false, a, c); });
DERMAL_REGISTER_OP("LogSoftmax", [](const Attributes& a, const OpContext& c) { return make_softmax(true, a, c); });

}  // namespace dermal::engine::ops
