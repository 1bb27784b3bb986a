// Reductions: ReduceSum, ReduceMean, ReduceMax and ReduceMin over any set of axes (plain layout).
// The axes come from the `axes` attribute (ReduceSum before opset 13, the others before 18) or
// from the optional second input, which must then be known at load. No axes reduce everything,
// unless noop_with_empty_axes (input form only) makes the op an identity.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

enum class ReduceKind { sum, mean, max, min };

// Which dims a reduction removes, for one input shape.
struct ReducePlan {
  Shape in_shape;
  std::vector<bool> reduced;         // per input dim
  std::vector<int64_t> out_strides;  // output offset strides over in_shape's dims: 0 on reduced dims
  int64_t out_numel = 1;
  int64_t count = 1;  // inputs folded into each output
  bool identity = false;
};

template <class T>
void reduce_forward(ReduceKind kind, const ReducePlan& p, const Tensor& in, const Tensor& out) {
  const T* x = in.data<T>();
  T* y = out.data<T>();
  if (kind == ReduceKind::sum || kind == ReduceKind::mean) {
    std::vector<double> acc(static_cast<size_t>(p.out_numel), 0.0);
    for_each_offset(p.in_shape, plain_strides(p.in_shape), p.out_strides, {},
                    [&](int64_t xi, int64_t yi, int64_t) { acc[yi] += x[xi]; });
    const double scale = kind == ReduceKind::mean ? 1.0 / static_cast<double>(p.count) : 1.0;
    for (int64_t i = 0; i < p.out_numel; ++i) y[i] = static_cast<T>(acc[i] * scale);
    return;
  }
  const bool is_max = kind == ReduceKind::max;
  std::fill(y, y + p.out_numel, is_max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity());
  // NaN propagates: once y holds a NaN no comparison replaces it.
  for_each_offset(p.in_shape, plain_strides(p.in_shape), p.out_strides, {}, [&](int64_t xi, int64_t yi, int64_t) {
    if ((is_max ? x[xi] > y[yi] : x[xi] < y[yi]) || std::isnan(x[xi])) y[yi] = x[xi];
  });
}

// Sum and mean spread dy evenly; max and min send it to the extreme elements, split among ties.
template <class T>
void reduce_backward(ReduceKind kind, const ReducePlan& p, const Tensor& in, const Tensor& out, const Tensor& d_out,
                     const Tensor& d_in) {
  const T* x = in.data<T>();
  const T* y = out.data<T>();
  const T* dy = d_out.data<T>();
  T* dx = d_in.data<T>();
  const auto in_strides = plain_strides(p.in_shape);
  if (kind == ReduceKind::sum || kind == ReduceKind::mean) {
    const T scale = kind == ReduceKind::mean ? T(1) / static_cast<T>(p.count) : T(1);
    for_each_offset(p.in_shape, in_strides, p.out_strides, {},
                    [&](int64_t xi, int64_t yi, int64_t) { dx[xi] = dy[yi] * scale; });
    return;
  }
  std::vector<int64_t> ties(static_cast<size_t>(p.out_numel), 0);
  for_each_offset(p.in_shape, in_strides, p.out_strides, {},
                  [&](int64_t xi, int64_t yi, int64_t) { ties[yi] += x[xi] == y[yi]; });
  for_each_offset(p.in_shape, in_strides, p.out_strides, {}, [&](int64_t xi, int64_t yi, int64_t) {
    dx[xi] = x[xi] == y[yi] ? dy[yi] / static_cast<T>(ties[yi]) : T(0);
  });
}

class ReduceKernel : public Kernel {
 public:
  ReduceKernel(ReduceKind kind, ReducePlan plan) : kind_(kind), plan_(std::move(plan)) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    if (plan_.identity) return out[0].copy_from(in[0]);
    dispatch_float(in[0].dtype(), [&](auto t) { reduce_forward<decltype(t)>(kind_, plan_, in[0], out[0]); });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    if (plan_.identity) return d_in[0].copy_from(d_out[0]);
    dispatch_float(in[0].dtype(),
                   [&](auto t) { reduce_backward<decltype(t)>(kind_, plan_, in[0], out[0], d_out[0], d_in[0]); });
  }

 private:
  ReduceKind kind_;
  ReducePlan plan_;
};

class ReduceOp : public Op {
 public:
  ReduceOp(const OpContext& ctx, ReduceKind kind, bool keepdims, bool axes_from_input, bool noop_with_empty_axes,
           std::vector<int64_t> axes_attr)
      : Op(ctx),
        kind_(kind),
        keepdims_(keepdims),
        axes_from_input_(axes_from_input),
        noop_with_empty_axes_(noop_with_empty_axes),
        axes_attr_(std::move(axes_attr)) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    if (in.empty() || (in[0].dtype != DType::f32 && in[0].dtype != DType::f64))
      ctx_.fail(ErrorKind::unsupported, "needs a float data input");
    const ReducePlan p = plan(in, known);
    if (p.identity) return {in[0]};
    Shape out;
    for (size_t d = 0; d < p.in_shape.size(); ++d) {
      if (!p.reduced[d]) out.push_back(p.in_shape[d]);
      else if (keepdims_) out.push_back(1);
    }
    return {{in[0].dtype, out}};
  }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    return std::make_unique<ReduceKernel>(kind_, plan(cfg.inputs, cfg.known));
  }

 private:
  // The axes as given: the attribute, or input 1 (absent: an i64 input that is not there).
  std::vector<int64_t> given_axes(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const {
    if (!axes_from_input_) return axes_attr_;
    const bool present = in.size() > 1 && ((known.size() > 1 && known[1]) || in[1].dtype == DType::i64);
    if (!present) return {};
    if (known.size() < 2 || !known[1])
      ctx_.fail(ErrorKind::unsupported, "axes (input 1) must be a constant known at load time");
    return known[1]->to_ints();
  }

  ReducePlan plan(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const {
    ReducePlan p;
    p.in_shape = in[0].shape;
    const int64_t rank = static_cast<int64_t>(p.in_shape.size());
    const std::vector<int64_t> axes = given_axes(in, known);
    if (axes.empty() && axes_from_input_ && noop_with_empty_axes_) {
      p.identity = true;
      return p;
    }
    p.reduced.assign(p.in_shape.size(), axes.empty());
    for (int64_t a : axes) {
      const int64_t d = normalize_axis(a, rank, ctx_);
      if (p.reduced[d]) ctx_.fail(ErrorKind::invalid_model, "axis " + std::to_string(a) + " is listed twice");
      p.reduced[d] = true;
    }
    Shape kept = p.in_shape;
    for (size_t d = 0; d < kept.size(); ++d)
      if (p.reduced[d]) {
        p.count *= kept[d];
        kept[d] = 1;
      }
    p.out_strides = plain_strides(kept);
    for (size_t d = 0; d < kept.size(); ++d)
      if (p.reduced[d]) p.out_strides[d] = 0;
    p.out_numel = shape_numel(kept);
    return p;
  }

  ReduceKind kind_;
  bool keepdims_, axes_from_input_, noop_with_empty_axes_;
  std::vector<int64_t> axes_attr_;
};

std::unique_ptr<Op> make_reduce(ReduceKind kind, const Attributes& attrs, const OpContext& ctx) {
  // ReduceSum took axes as an input from opset 13, the other reductions from opset 18.
  const bool axes_from_input = ctx.opset >= (kind == ReduceKind::sum ? 13 : 18);
  const size_t max_inputs = axes_from_input ? 2 : 1;
  if (ctx.num_inputs < 1 || ctx.num_inputs > max_inputs)
    ctx.fail(ErrorKind::invalid_model, "expects 1 to " + std::to_string(max_inputs) + " inputs, got " + std::to_string(ctx.num_inputs));
  const bool keepdims = attrs.get_int("keepdims", 1) != 0;
  bool noop = false;
  std::vector<int64_t> axes;
  if (axes_from_input) noop = attrs.get_int("noop_with_empty_axes", 0) != 0;
  else axes = attrs.get_ints("axes", {});
  return std::make_unique<ReduceOp>(ctx, kind, keepdims, axes_from_input, noop, axes);
}

}  // namespace

DERMAL_REGISTER_OP("ReduceSum", [](const Attributes& a, const OpContext& c) { return make_reduce(ReduceKind::sum, a, c); });
DERMAL_REGISTER_OP("ReduceMean", [](const Attributes& a, const OpContext& c) { return make_reduce(ReduceKind::mean, a, c); });
DERMAL_REGISTER_OP("ReduceMax", [](const Attributes& a, const OpContext& c) { return make_reduce(ReduceKind::max, a, c); });
DERMAL_REGISTER_OP("ReduceMin", [](const Attributes& a, const OpContext& c) { return make_reduce(ReduceKind::min, a, c); });

}  // namespace dermal::engine::ops
