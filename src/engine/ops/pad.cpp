// Pad: constant, reflect and edge modes ('wrap', new in opset 19, is unsupported).
//  - opset < 11: `pads` and `value` attributes;
//  - opset >= 11: pads (input 1) must be known at load; the optional constant_value (input 2)
//    may come at run time; opset 18 adds the optional axes (input 3), known at load.
// pads = [x1_begin, x2_begin, ..., x1_end, x2_end, ...]. A negative pad crops: cropping is done
// first, and reflect/edge then read from the cropped tensor.
// Every output element either copies one input element or is the constant, so forward is one
// index map per axis, and the VJP accumulates each output gradient into the element it copied
// (reflect and edge copy some elements several times).
#include <algorithm>
#include <cstring>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

enum class PadMode { constant, reflect, edge };

// For each axis and each output index along it, the input index it reads (-1: the constant).
struct PadPlan {
  Shape in_shape, out_shape;
  std::vector<std::vector<int64_t>> source;
};

int64_t reflect_index(int64_t t, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  const int64_t k = ((t % period) + period) % period;
  return k < n ? k : period - k;
}

std::vector<int64_t> axis_source(int64_t n, int64_t begin, int64_t end, PadMode mode) {
  const int64_t lo = std::max<int64_t>(0, -begin), hi = n - std::max<int64_t>(0, -end);  // kept after cropping
  const int64_t kept = hi - lo, before = std::max<int64_t>(begin, 0);
  std::vector<int64_t> src(static_cast<size_t>(n + begin + end));
  for (int64_t o = 0; o < static_cast<int64_t>(src.size()); ++o) {
    const int64_t t = o - before;  // index into the cropped axis
    if (t >= 0 && t < kept) src[o] = lo + t;
    else if (mode == PadMode::constant) src[o] = -1;
    else if (mode == PadMode::edge) src[o] = lo + std::clamp<int64_t>(t, 0, kept - 1);
    else src[o] = lo + reflect_index(t, kept);
  }
  return src;
}

// Visits each output row (all axes but the last): fn(row, input base offset, whole row is constant).
template <class Fn>
void for_each_row(const PadPlan& p, Fn&& fn) {
  const size_t rank = p.out_shape.size();
  const int64_t width = p.out_shape[rank - 1];
  if (shape_numel(p.out_shape) == 0) return;
  const int64_t rows = shape_numel(p.out_shape) / width;
  const std::vector<int64_t> in_strides = plain_strides(p.in_shape);
  std::vector<int64_t> idx(rank - 1, 0);
  for (int64_t row = 0; row < rows; ++row) {
    int64_t base = 0;
    bool constant = false;
    for (size_t d = 0; d + 1 < rank; ++d) {
      const int64_t s = p.source[d][idx[d]];
      if (s < 0) constant = true;
      else base += s * in_strides[d];
    }
    fn(row * width, base, constant);
    for (size_t d = rank - 1; d-- > 0;) {
      if (++idx[d] < p.out_shape[d]) break;
      idx[d] = 0;
    }
  }
}

class PadKernel : public Kernel {
 public:
  PadKernel(OpContext ctx, PadPlan plan, double attr_value) : ctx_(std::move(ctx)), p_(std::move(plan)), attr_value_(attr_value) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    const Tensor constant_value = in.size() > 2 ? in[2] : Tensor();
    if (dtype_size(in[0].dtype()) == 4) run_forward<uint32_t>(in[0], constant_value, out[0]);
    else run_forward<uint64_t>(in[0], constant_value, out[0]);
  }

  void backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    d_in[0].fill_zero();
    if (!d_out[0].defined()) return;
    dispatch_float(d_in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* dy = d_out[0].data<T>();
      T* dx = d_in[0].data<T>();
      if (p_.out_shape.empty()) {
        dx[0] = dy[0];
        return;
      }
      const std::vector<int64_t>& last = p_.source.back();
      for_each_row(p_, [&](int64_t out_offset, int64_t base, bool constant) {
        if (constant) return;
        for (size_t j = 0; j < last.size(); ++j)
          if (last[j] >= 0) dx[base + last[j]] += dy[out_offset + static_cast<int64_t>(j)];
      });
    });
  }

 private:
  // E: an unsigned integer as wide as one element; elements are copied as bits.
  template <class E>
  void run_forward(const Tensor& in, const Tensor& constant_value, const Tensor& out) const {
    const E* x = static_cast<const E*>(in.raw());
    E* y = static_cast<E*>(out.raw());
    E fill;
    std::memcpy(&fill, fill_value(constant_value).to_dtype(in.dtype()).raw(), sizeof(E));
    if (p_.out_shape.empty()) {
      y[0] = x[0];
      return;
    }
    const std::vector<int64_t>& last = p_.source.back();
    for_each_row(p_, [&](int64_t out_offset, int64_t base, bool constant) {
      E* row = y + out_offset;
      for (size_t j = 0; j < last.size(); ++j) row[j] = constant || last[j] < 0 ? fill : x[base + last[j]];
    });
  }

  // The constant_value input (opset >= 11) when given, known or not (it does not change the
  // shape); else the value attribute (opset < 11) or 0. An empty constant_value means 0.
  Tensor fill_value(const Tensor& constant_value) const {
    if (!constant_value.defined()) return Tensor::from_doubles({}, {attr_value_});
    if (constant_value.numel() > 1)
      ctx_.fail(ErrorKind::invalid_input, "constant_value must be a scalar, got " + shape_str(constant_value.shape()));
    if (constant_value.numel() == 0) return Tensor::from_doubles({}, {0.0});
    return constant_value.to_dtype(constant_value.dtype());
  }

  OpContext ctx_;
  PadPlan p_;
  double attr_value_;
};

class PadOp : public Op {
 public:
  PadOp(const OpContext& ctx, PadMode mode, std::vector<int64_t> attr_pads, double attr_value)
      : Op(ctx), mode_(mode), attr_pads_(std::move(attr_pads)), attr_value_(attr_value) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    return {{in[0].dtype, plan(in, known).out_shape}};
  }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    const Tensor* constant_value = cfg.known.size() > 2 ? cfg.known[2] : nullptr;
    if (constant_value && constant_value->numel() > 1)
      ctx_.fail(ErrorKind::invalid_model, "constant_value must be a scalar, got " + shape_str(constant_value->shape()));
    cfg.output_layouts.assign(1, Layout::plain);
    return std::make_unique<PadKernel>(ctx_, plan(cfg.inputs, cfg.known), attr_value_);
  }

 private:
  PadPlan plan(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const {
    const Shape& shape = in[0].shape;
    const int64_t rank = static_cast<int64_t>(shape.size());
    std::vector<int64_t> pads = attr_pads_, axes;
    if (ctx_.opset >= 11) {
      if (known.size() < 2 || !known[1])
        ctx_.fail(ErrorKind::unsupported, "pads (input 1) must be known at load time (a constant or a folded Shape chain)");
      pads = known[1]->to_ints();
      // axes (opset 18): an absent input has an empty TensorInfo; a present one is i64.
      if (known.size() > 3 && known[3]) axes = known[3]->to_ints();
      else if (in.size() > 3 && in[3].dtype == DType::i64)
        ctx_.fail(ErrorKind::unsupported, "axes (input 3) must be known at load time");
    }
    if (axes.empty() && !(known.size() > 3 && known[3]))
      for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
    if (pads.size() != 2 * axes.size())
      ctx_.fail(ErrorKind::invalid_model, "pads " + shape_str(pads) + " should have " + std::to_string(2 * axes.size()) +
                                              " values for input " + shape_str(shape));
    std::vector<int64_t> begin(rank, 0), end(rank, 0);
    std::vector<bool> seen(rank, false);
    for (size_t k = 0; k < axes.size(); ++k) {
      const int64_t d = normalize_axis(axes[k], rank, ctx_);
      if (seen[d]) ctx_.fail(ErrorKind::invalid_model, "axes " + shape_str(axes) + " repeat an axis");
      seen[d] = true;
      begin[d] = pads[k];
      end[d] = pads[k + axes.size()];
    }
    PadPlan p{shape, shape, {}};
    for (int64_t d = 0; d < rank; ++d) {
      const int64_t n = shape[d], out = n + begin[d] + end[d];
      const int64_t kept = n - std::max<int64_t>(0, -begin[d]) - std::max<int64_t>(0, -end[d]);
      if (kept < 0 || out < 0)
        ctx_.fail(ErrorKind::invalid_model, "pads " + shape_str(pads) + " crop more than axis " + std::to_string(d) +
                                                " of input " + shape_str(shape) + " holds");
      if (mode_ != PadMode::constant && kept == 0 && out > 0)
        ctx_.fail(ErrorKind::invalid_model, "cannot reflect or edge-pad the empty axis " + std::to_string(d) + " of input " + shape_str(shape));
      p.out_shape[d] = out;
      p.source.push_back(axis_source(n, begin[d], end[d], mode_));
    }
    return p;
  }

  PadMode mode_;
  std::vector<int64_t> attr_pads_;  // opset < 11
  double attr_value_;               // opset < 11
};

std::unique_ptr<Op> make_pad(const Attributes& attrs, const OpContext& ctx) {
  const std::string mode_name = attrs.get_string("mode", "constant");
  PadMode mode = PadMode::constant;
  if (mode_name == "reflect") mode = PadMode::reflect;
  else if (mode_name == "edge") mode = PadMode::edge;
  else if (mode_name == "wrap") ctx.fail(ErrorKind::unsupported, "mode 'wrap' is not supported (constant, reflect and edge are)");
  else if (mode_name != "constant") ctx.fail(ErrorKind::invalid_model, "unknown mode '" + mode_name + "'");
  if (ctx.opset < 11) {
    if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects one input before opset 11");
    auto pads = attrs.find_ints("pads");
    if (!pads) ctx.fail(ErrorKind::invalid_model, "needs the pads attribute");
    return std::make_unique<PadOp>(ctx, mode, *pads, attrs.get_float("value", 0.0));
  }
  const size_t max_inputs = ctx.opset >= 18 ? 4 : 3;
  if (ctx.num_inputs < 2 || ctx.num_inputs > max_inputs)
    ctx.fail(ErrorKind::invalid_model, "expects 2 to " + std::to_string(max_inputs) + " inputs, got " + std::to_string(ctx.num_inputs));
  return std::make_unique<PadOp>(ctx, mode, std::vector<int64_t>{}, 0.0);
}

}  // namespace

DERMAL_REGISTER_OP("Pad", make_pad);

}  // namespace dermal::engine::ops
