// Slice: a strided sub-tensor, numpy's data[start:end:step] along chosen axes. Opsets 1-9 take
// starts, ends and optional axes as attributes; from opset 10 they are inputs (starts, ends,
// optional axes, optional steps) that must be known at plan time (constants or folded Shape
// chains), since they decide the output shape. Negative starts/ends count from the end of their
// axis and out-of-range ones are clamped as the spec says (so INT_MAX / INT_MIN mean "to the
// end"); negative steps walk backwards; negative axes count from the last. Data may be f32, f64
// or i64 (shape chains fold through here). The VJP with respect to data scatters dy into zeros.
#include <algorithm>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// Where one axis of the output comes from: input index start + i * step for i < count.
struct AxisSlice {
  int64_t start = 0, step = 1, count = 0;
};

// starts/ends/axes/steps as given; empty axes / steps mean the defaults.
struct SliceArgs {
  std::vector<int64_t> starts, ends, axes, steps;
};

// The spec's clamping for one axis of size n.
AxisSlice clamp_axis(int64_t start, int64_t end, int64_t step, int64_t n) {
  if (start < 0) start += n;
  if (end < 0) end += n;
  AxisSlice a;
  a.step = step;
  if (n == 0) return a;  // nothing to take (and [0, n - 1] below would be empty)
  if (step > 0) {
    a.start = std::clamp<int64_t>(start, 0, n);
    end = std::clamp<int64_t>(end, 0, n);
    a.count = end > a.start ? (end - a.start + step - 1) / step : 0;
  } else {
    a.start = std::clamp<int64_t>(start, 0, n - 1);
    end = std::clamp<int64_t>(end, -1, n - 1);
    a.count = a.start > end ? (a.start - end - step - 1) / -step : 0;
  }
  return a;
}

std::vector<AxisSlice> resolve(const SliceArgs& s, const Shape& shape, const OpContext& ctx) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  const size_t k = s.starts.size();
  if (s.ends.size() != k || (!s.axes.empty() && s.axes.size() != k) || (!s.steps.empty() && s.steps.size() != k))
    ctx.fail(ErrorKind::invalid_model, "starts " + shape_str(s.starts) + ", ends " + shape_str(s.ends) + ", axes " +
                                           shape_str(s.axes) + " and steps " + shape_str(s.steps) + " differ in length");
  std::vector<AxisSlice> plan(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) plan[d] = {0, 1, shape[d]};
  std::vector<bool> seen(shape.size(), false);
  for (size_t i = 0; i < k; ++i) {
    const int64_t axis = s.axes.empty() ? static_cast<int64_t>(i) : s.axes[i];
    if (axis < -rank || axis >= rank)
      ctx.fail(ErrorKind::invalid_model, "axis " + std::to_string(axis) + " is out of range for data " + shape_str(shape));
    const size_t d = static_cast<size_t>(axis < 0 ? axis + rank : axis);
    if (seen[d]) ctx.fail(ErrorKind::invalid_model, "axes " + shape_str(s.axes) + " repeat an axis");
    seen[d] = true;
    const int64_t step = s.steps.empty() ? 1 : s.steps[i];
    if (step == 0) ctx.fail(ErrorKind::invalid_model, "steps " + shape_str(s.steps) + " contain a 0");
    plan[d] = clamp_axis(s.starts[i], s.ends[i], step, shape[d]);
  }
  return plan;
}

class SliceKernel : public Kernel {
 public:
  explicit SliceKernel(std::vector<AxisSlice> plan) : plan_(std::move(plan)) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    visit(in[0], out[0], [](auto* x, auto* y, int64_t xo, int64_t yo) { y[yo] = x[xo]; });
  }

  void backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    d_in[0].fill_zero();
    if (!d_out[0].defined()) return;
    // Every step is nonzero, so no two outputs read the same input: plain stores suffice.
    visit(d_in[0], d_out[0], [](auto* dx, auto* dy, int64_t xo, int64_t yo) { dx[xo] = dy[yo]; });
  }

 private:
  // Calls f(data(t), data(sliced), offset in t, offset in sliced) for every element of the slice.
  template <class F>
  void visit(const Tensor& t, const Tensor& sliced, F&& f) const {
    const auto ts = t.strides();
    std::vector<int64_t> step_strides(plan_.size());
    int64_t base = 0;
    for (size_t d = 0; d < plan_.size(); ++d) {
      base += plan_[d].start * ts[d];
      step_strides[d] = plan_[d].step * ts[d];
    }
    auto run = [&](auto zero) {
      using T = decltype(zero);
      T* a = t.data<T>();
      T* b = sliced.data<T>();
      for_each_offset(sliced.shape(), step_strides, sliced.strides(), {},
                      [&](int64_t ta, int64_t sb, int64_t) { f(a, b, base + ta, sb); });
    };
    switch (t.dtype()) {
      case DType::f32: return run(float{});
      case DType::f64: return run(double{});
      case DType::i64: return run(int64_t{});
      case DType::bf16: break;  // bf16 is only a convolution's input
    }
    throw Error(ErrorKind::unsupported, std::string("Slice of dtype ") + dtype_name(t.dtype()));
  }

  std::vector<AxisSlice> plan_;
};

class SliceOp : public Op {
 public:
  // attr_args: the opset < 10 attributes; unset from opset 10 on.
  SliceOp(const OpContext& ctx, std::optional<SliceArgs> attr_args) : Op(ctx), attr_args_(std::move(attr_args)) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    const Shape& data = in.at(0).shape;
    if (data.empty()) ctx_.fail(ErrorKind::invalid_model, "data must have rank >= 1, got a scalar");
    Shape out;
    for (const AxisSlice& a : resolve(args(in, known), data, ctx_)) out.push_back(a.count);
    return {{in[0].dtype, out}};
  }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts.assign(1, Layout::plain);
    return std::make_unique<SliceKernel>(resolve(args(cfg.inputs, cfg.known), cfg.inputs[0].shape, ctx_));
  }

 private:
  SliceArgs args(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const {
    if (attr_args_) return *attr_args_;
    const char* names[] = {"data", "starts", "ends", "axes", "steps"};
    auto values = [&](size_t i) -> std::vector<int64_t> {
      if (i < known.size() && known[i]) return known[i]->to_ints();
      // An absent optional input has an empty TensorInfo; a present one holds integers.
      if (i >= 3 && (i >= in.size() || in[i].dtype != DType::i64)) return {};
      ctx_.fail(ErrorKind::unsupported, std::string(names[i]) + " (input " + std::to_string(i) +
                                            ") must be known at load time (a constant or a folded Shape chain)");
    };
    return {values(1), values(2), values(3), values(4)};
  }

  std::optional<SliceArgs> attr_args_;
};

std::unique_ptr<Op> make_slice(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.opset >= 10) {
    if (ctx.num_inputs < 3 || ctx.num_inputs > 5)
      ctx.fail(ErrorKind::invalid_model, "expects 3 to 5 inputs (data, starts, ends, axes, steps), got " +
                                             std::to_string(ctx.num_inputs));
    return std::make_unique<SliceOp>(ctx, std::nullopt);
  }
  if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects one input (data) before opset 10");
  auto starts = attrs.find_ints("starts"), ends = attrs.find_ints("ends");
  if (!starts || !ends) ctx.fail(ErrorKind::invalid_model, "needs the starts and ends attributes before opset 10");
  return std::make_unique<SliceOp>(ctx, SliceArgs{*starts, *ends, attrs.get_ints("axes", {}), {}});
}

}  // namespace

DERMAL_REGISTER_OP("Slice", make_slice);

}  // namespace dermal::engine::ops
