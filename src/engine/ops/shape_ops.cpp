// Ops that change only a tensor's shape, never its element order: Flatten, Reshape, Squeeze,
// Unsqueeze, Identity, Dropout (inference); and Shape and Size, which read only the shape.
// Their kernels copy raw bytes, so every dtype (f32, f64, i64 shape tensors) takes one path,
// and their VJP is the same copy backwards.
#include <algorithm>
#include <cstring>
#include <set>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

const Tensor* known_input(const std::vector<const Tensor*>& known, size_t i) {
  return i < known.size() ? known[i] : nullptr;
}

// An optional integer argument input (axes): its values when present, nullopt when absent.
// An absent input has an empty TensorInfo (f32, scalar); a present one is i64.
std::optional<std::vector<int64_t>> int_argument(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known,
                                                 size_t i, const OpContext& ctx, const char* what) {
  if (const Tensor* t = known_input(known, i)) return t->to_ints();
  if (i < in.size() && in[i].dtype == DType::i64)
    ctx.fail(ErrorKind::unsupported, std::string(what) + " (input " + std::to_string(i) +
                                         ") must be a constant known at load time");
  return std::nullopt;
}

std::string ints_str(const std::vector<int64_t>& v) { return shape_str(v); }

// Same bytes in, same bytes out; backward copies the gradient back.
class CopyKernel : public Kernel {
 public:
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    std::memcpy(out[0].raw(), in[0].raw(), in[0].bytes());
  }
  void backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    std::memcpy(d_in[0].raw(), d_out[0].raw(), d_in[0].bytes());
  }
};

// Base for the reshaping ops: infer gives the output shape; the kernel is a copy.
class ReshapeLikeOp : public Op {
 public:
  using Op::Op;
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    Shape out = output_shape(in, known);
    if (shape_numel(out) != shape_numel(in[0].shape))
      ctx_.fail(ErrorKind::internal, "output " + shape_str(out) + " has a different size than input " + shape_str(in[0].shape));
    return {{in[0].dtype, out}};
  }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts.assign(cfg.outputs.size(), Layout::plain);
    return std::make_unique<CopyKernel>();
  }

 protected:
  virtual Shape output_shape(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const = 0;
};

class FlattenOp : public ReshapeLikeOp {
 public:
  FlattenOp(const OpContext& ctx, int64_t axis) : ReshapeLikeOp(ctx), axis_(axis) {}
  Shape output_shape(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    const Shape& s = in[0].shape;
    const int64_t rank = static_cast<int64_t>(s.size());
    if (axis_ < -rank || axis_ > rank)
      ctx_.fail(ErrorKind::invalid_model, "axis " + std::to_string(axis_) + " out of range for input " + shape_str(s));
    const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < rank; ++d) (d < axis ? outer : inner) *= s[d];
    return {outer, inner};
  }

 private:
  int64_t axis_;
};

class ReshapeOp : public ReshapeLikeOp {
 public:
  ReshapeOp(const OpContext& ctx, bool allowzero) : ReshapeLikeOp(ctx), allowzero_(allowzero) {}
  Shape output_shape(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    const Tensor* shape_arg = known_input(known, 1);
    if (!shape_arg)
      ctx_.fail(ErrorKind::unsupported, "the shape (input 1) must be known at load time (a constant or a folded Shape chain)");
    return target_shape(in[0].shape, shape_arg->to_ints());
  }

 private:
  Shape target_shape(const Shape& in, const std::vector<int64_t>& spec) const {
    const std::string what = "cannot reshape " + shape_str(in) + " to shape input " + ints_str(spec);
    const bool has_zero = std::count(spec.begin(), spec.end(), 0) > 0;
    const bool has_minus_one = std::count(spec.begin(), spec.end(), -1) > 0;
    if (allowzero_ && has_zero && has_minus_one) ctx_.fail(ErrorKind::invalid_model, what + ": allowzero=1 forbids 0 with -1");
    Shape out(spec.size());
    int64_t inferred = -1, product = 1;
    for (size_t i = 0; i < spec.size(); ++i) {
      int64_t v = spec[i];
      if (v == 0 && !allowzero_) {
        if (i >= in.size()) ctx_.fail(ErrorKind::invalid_model, what + ": 0 at position " + std::to_string(i) + " has no input dim to copy");
        v = in[i];
      } else if (v == -1) {
        if (inferred >= 0) ctx_.fail(ErrorKind::invalid_model, what + ": more than one -1");
        inferred = static_cast<int64_t>(i);
        continue;
      } else if (v < -1) {
        ctx_.fail(ErrorKind::invalid_model, what + ": negative dimension " + std::to_string(v));
      }
      out[i] = v;
      product *= v;
    }
    const int64_t numel = shape_numel(in);
    if (inferred >= 0) {
      if (product == 0 || numel % product != 0)
        ctx_.fail(ErrorKind::invalid_model, what + ": " + std::to_string(numel) + " elements do not divide by " + std::to_string(product));
      out[inferred] = numel / product;
    } else if (product != numel) {
      ctx_.fail(ErrorKind::invalid_model, what + ": " + std::to_string(numel) + " elements != " + std::to_string(product));
    }
    return out;
  }
  bool allowzero_;
};

// Squeeze: axes from the attribute (opset < 13) or the optional input 1 (opset >= 13).
class SqueezeOp : public ReshapeLikeOp {
 public:
  SqueezeOp(const OpContext& ctx, std::optional<std::vector<int64_t>> axes) : ReshapeLikeOp(ctx), attr_axes_(std::move(axes)) {}
  Shape output_shape(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    const Shape& s = in[0].shape;
    const int64_t rank = static_cast<int64_t>(s.size());
    auto axes = ctx_.opset >= 13 ? int_argument(in, known, 1, ctx_, "axes") : attr_axes_;
    std::vector<bool> drop(s.size(), false);
    if (!axes) {
      for (size_t d = 0; d < s.size(); ++d) drop[d] = s[d] == 1;
    } else {
      for (int64_t a : *axes) {
        if (a < -rank || a >= rank)
          ctx_.fail(ErrorKind::invalid_model, "axis " + std::to_string(a) + " out of range for input " + shape_str(s));
        const int64_t d = a < 0 ? a + rank : a;
        if (drop[d]) ctx_.fail(ErrorKind::invalid_model, "axes " + ints_str(*axes) + " repeat an axis");
        if (s[d] != 1)
          ctx_.fail(ErrorKind::invalid_model, "cannot squeeze axis " + std::to_string(a) + " of " + shape_str(s) + ": size is not 1");
        drop[d] = true;
      }
    }
    Shape out;
    for (size_t d = 0; d < s.size(); ++d)
      if (!drop[d]) out.push_back(s[d]);
    return out;
  }

 private:
  std::optional<std::vector<int64_t>> attr_axes_;
};

// Unsqueeze: axes (required) count in the output's rank.
class UnsqueezeOp : public ReshapeLikeOp {
 public:
  UnsqueezeOp(const OpContext& ctx, std::optional<std::vector<int64_t>> axes) : ReshapeLikeOp(ctx), attr_axes_(std::move(axes)) {}
  Shape output_shape(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    const Shape& s = in[0].shape;
    auto axes = ctx_.opset >= 13 ? int_argument(in, known, 1, ctx_, "axes") : attr_axes_;
    if (!axes) ctx_.fail(ErrorKind::invalid_model, "needs axes");
    const int64_t out_rank = static_cast<int64_t>(s.size() + axes->size());
    std::vector<bool> inserted(out_rank, false);
    for (int64_t a : *axes) {
      if (a < -out_rank || a >= out_rank)
        ctx_.fail(ErrorKind::invalid_model, "axis " + std::to_string(a) + " out of range for output rank " + std::to_string(out_rank) +
                                                " (input " + shape_str(s) + ")");
      const int64_t d = a < 0 ? a + out_rank : a;
      if (inserted[d]) ctx_.fail(ErrorKind::invalid_model, "axes " + ints_str(*axes) + " repeat an axis");
      inserted[d] = true;
    }
    Shape out;
    size_t next = 0;
    for (int64_t d = 0; d < out_rank; ++d) out.push_back(inserted[d] ? 1 : s[next++]);
    return out;
  }

 private:
  std::optional<std::vector<int64_t>> attr_axes_;
};

// Identity and inference-mode Dropout: output = input, in whatever layout it arrives.
class DropoutKernel : public CopyKernel {
 public:
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    CopyKernel::forward(in, out);
    if (out.size() > 1 && out[1].defined()) fill_ones(out[1]);  // the mask keeps everything
  }

 private:
  static void fill_ones(const Tensor& t) {
    const int64_t n = t.numel();
    switch (t.dtype()) {
      case DType::f32: std::fill_n(t.data<float>(), n, 1.f); break;
      case DType::f64: std::fill_n(t.data<double>(), n, 1.0); break;
      case DType::i64: std::fill_n(t.data<int64_t>(), n, int64_t{1}); break;
      case DType::bf16: throw Error(ErrorKind::internal, "a bf16 Dropout mask");  // bf16 is only a convolution's input
    }
  }
};

class IdentityOp : public Op {
 public:
  IdentityOp(const OpContext& ctx, bool is_dropout) : Op(ctx), is_dropout_(is_dropout) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    std::vector<TensorInfo> out{in[0]};
    // Dropout's mask: the input's type before opset 10, bool (held as i64) from then on.
    if (is_dropout_ && ctx_.num_outputs > 1) out.push_back({ctx_.opset < 10 ? in[0].dtype : DType::i64, in[0].shape});
    return out;
  }
  bool accepts_nhwc(size_t i) const override { return i == 0; }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    if (is_dropout_) check_inference_mode(cfg);
    cfg.output_layouts.assign(cfg.outputs.size(), Layout::plain);
    cfg.output_layouts[0] = cfg.input_layouts[0];
    return std::make_unique<DropoutKernel>();
  }

 private:
  // Dropout (opset >= 12): training_mode must be known and false, or true with a known ratio
  // of 0 (nothing dropped). In inference mode the ratio has no effect and may be unknown.
  void check_inference_mode(const KernelConfig& cfg) const {
    auto present = [&](size_t i) { return i < cfg.present.size() && cfg.present[i]; };
    const Tensor* ratio = cfg.known.size() > 1 ? cfg.known[1] : nullptr;
    if (ratio) {
      const std::vector<double> v = ratio->to_doubles();
      if (v.size() != 1 || v[0] < 0 || v[0] >= 1)
        ctx_.fail(ErrorKind::invalid_model, "ratio must be one value in [0, 1), got " +
                                                (v.size() == 1 ? std::to_string(v[0]) : shape_str(ratio->shape())));
    }
    if (!present(2) || require_known(cfg, 2, ctx_, "Dropout training_mode").to_ints().at(0) == 0) return;
    const bool drops_nothing = present(1) ? ratio && ratio->to_doubles()[0] == 0 : false;  // the default ratio is 0.5
    if (!drops_nothing)
      ctx_.fail(ErrorKind::unsupported, "training_mode=true is supported only with a known ratio of 0 (inference only)");
  }
  bool is_dropout_;
};

// Shape and Size: values from the input's shape alone, so the planner folds them.
class ShapeOp : public Op {
 public:
  ShapeOp(const OpContext& ctx, int64_t start, std::optional<int64_t> end, bool size_only)
      : Op(ctx), start_(start), end_(end), size_only_(size_only) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    const Tensor v = value(in[0].shape);
    return {{DType::i64, v.shape()}};
  }
  std::optional<std::vector<Tensor>> fold_from_shapes(const std::vector<TensorInfo>& in) const override {
    return std::vector<Tensor>{value(in[0].shape)};
  }
  bool differentiable(size_t) const override { return false; }
  bool accepts_nhwc(size_t) const override { return true; }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts.assign(1, Layout::plain);
    return std::make_unique<ValueKernel>(value(cfg.inputs[0].shape));
  }

 private:
  Tensor value(const Shape& s) const {
    if (size_only_) return Tensor::from_ints({}, {shape_numel(s)});
    // start and end (opset 15) count from the back when negative, then clamp to [0, rank].
    const int64_t rank = static_cast<int64_t>(s.size());
    auto clamp = [rank](int64_t a) { return std::clamp<int64_t>(a < 0 ? a + rank : a, 0, rank); };
    const int64_t b = clamp(start_), e = std::max(b, clamp(end_.value_or(rank)));
    return Tensor::from_ints({e - b}, std::vector<int64_t>(s.begin() + b, s.begin() + e));
  }
  int64_t start_;
  std::optional<int64_t> end_;
  bool size_only_;
};

void expect_inputs(const OpContext& ctx, size_t lo, size_t hi) {
  if (ctx.num_inputs < lo || ctx.num_inputs > hi)
    ctx.fail(ErrorKind::invalid_model, "expects " + std::to_string(lo) + (lo == hi ? "" : " to " + std::to_string(hi)) +
                                           " inputs, got " + std::to_string(ctx.num_inputs));
}

std::unique_ptr<Op> make_flatten(const Attributes& attrs, const OpContext& ctx) {
  expect_inputs(ctx, 1, 1);
  return std::make_unique<FlattenOp>(ctx, attrs.get_int("axis", 1));
}

std::unique_ptr<Op> make_reshape(const Attributes& attrs, const OpContext& ctx) {
  expect_inputs(ctx, 2, 2);
  const int64_t allowzero = attrs.get_int("allowzero", 0);
  if (allowzero != 0 && allowzero != 1) ctx.fail(ErrorKind::invalid_model, "allowzero must be 0 or 1");
  return std::make_unique<ReshapeOp>(ctx, allowzero == 1);
}

// Squeeze's axes are optional; Unsqueeze's are required.
template <class SqueezeLike, bool kAxesRequired>
std::unique_ptr<Op> make_squeeze_like(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.opset < 13) {
    expect_inputs(ctx, 1, 1);
    auto axes = attrs.find_ints("axes");
    if (kAxesRequired && !axes) ctx.fail(ErrorKind::invalid_model, "needs the axes attribute");
    return std::make_unique<SqueezeLike>(ctx, std::move(axes));
  }
  expect_inputs(ctx, kAxesRequired ? 2 : 1, 2);
  return std::make_unique<SqueezeLike>(ctx, std::nullopt);
}

std::unique_ptr<Op> make_identity(const Attributes&, const OpContext& ctx) {
  expect_inputs(ctx, 1, 1);
  return std::make_unique<IdentityOp>(ctx, false);
}

std::unique_ptr<Op> make_dropout(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.opset < 12) {
    expect_inputs(ctx, 1, 1);
    const double ratio = attrs.get_float("ratio", 0.5);
    if (ratio < 0 || ratio >= 1) ctx.fail(ErrorKind::invalid_model, "ratio " + std::to_string(ratio) + " is not in [0, 1)");
  } else {
    expect_inputs(ctx, 1, 3);
    attrs.ignore("seed");  // only training draws random numbers
  }
  if (ctx.num_outputs < 1 || ctx.num_outputs > 2) ctx.fail(ErrorKind::invalid_model, "expects 1 or 2 outputs");
  return std::make_unique<IdentityOp>(ctx, true);
}

std::unique_ptr<Op> make_shape(const Attributes& attrs, const OpContext& ctx) {
  expect_inputs(ctx, 1, 1);
  return std::make_unique<ShapeOp>(ctx, attrs.get_int("start", 0), attrs.find_int("end"), false);
}

std::unique_ptr<Op> make_size(const Attributes&, const OpContext& ctx) {
  expect_inputs(ctx, 1, 1);
  return std::make_unique<ShapeOp>(ctx, 0, std::nullopt, true);
}

}  // namespace

DERMAL_REGISTER_OP("Flatten", make_flatten);
DERMAL_REGISTER_OP("Reshape", make_reshape);
DERMAL_REGISTER_OP("Squeeze", (make_squeeze_like<SqueezeOp, false>));
DERMAL_REGISTER_OP("Unsqueeze", (make_squeeze_like<UnsqueezeOp, true>));
DERMAL_REGISTER_OP("Identity", make_identity);
DERMAL_REGISTER_OP("Dropout", make_dropout);
DERMAL_REGISTER_OP("Shape", make_shape);
DERMAL_REGISTER_OP("Size", make_size);

}  // namespace dermal::engine::ops
