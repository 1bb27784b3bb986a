// Ops that produce values known at load or plan time: Constant, ConstantOfShape and Range.
// None is differentiable. Float values keep the dtype the model gave them (f32 from ONNX
// files); each kernel writes into whatever float dtype its output was planned in.
#include <cmath>
#include <cstring>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

const Tensor* known_input(const std::vector<const Tensor*>& known, size_t i) {
  return i < known.size() ? known[i] : nullptr;
}

// Base: infer and make_kernel both come from value(), computed from the known inputs.
class ValueOp : public Op {
 public:
  using Op::Op;
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    Tensor v = value(in, known);
    return {{v.dtype(), v.shape()}};
  }
  bool differentiable(size_t) const override { return false; }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts.assign(1, Layout::plain);
    return std::make_unique<ValueKernel>(value(cfg.inputs, cfg.known).to_dtype(cfg.outputs[0].dtype));
  }

 protected:
  virtual Tensor value(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const = 0;
};

class ConstantOp : public ValueOp {
 public:
  ConstantOp(const OpContext& ctx, Tensor value) : ValueOp(ctx), value_(std::move(value)) {}
  std::optional<std::vector<Tensor>> fold_from_shapes(const std::vector<TensorInfo>&) const override {
    return std::vector<Tensor>{value_.clone()};
  }

 protected:
  Tensor value(const std::vector<TensorInfo>&, const std::vector<const Tensor*>&) const override { return value_; }

 private:
  Tensor value_;
};

class ConstantOfShapeOp : public ValueOp {
 public:
  ConstantOfShapeOp(const OpContext& ctx, Tensor fill) : ValueOp(ctx), fill_(std::move(fill)) {}

 protected:
  Tensor value(const std::vector<TensorInfo>&, const std::vector<const Tensor*>& known) const override {
    const Tensor* shape_arg = known_input(known, 0);
    if (!shape_arg)
      ctx_.fail(ErrorKind::unsupported, "the shape (input 0) must be known at load time (a constant or a folded Shape chain)");
    const Shape shape = shape_arg->to_ints();
    for (int64_t d : shape)
      if (d < 0) ctx_.fail(ErrorKind::invalid_model, "shape input " + shape_str(shape) + " has a negative dimension");
    Tensor out = Tensor::zeros(fill_.dtype(), shape);
    const size_t esize = dtype_size(fill_.dtype());
    char* dst = static_cast<char*>(out.raw());
    for (int64_t i = 0; i < out.numel(); ++i) std::memcpy(dst + i * esize, fill_.raw(), esize);
    return out;
  }

 private:
  Tensor fill_;  // one element
};

// Range(start, limit, delta): all three must be known, since they decide the output's length.
class RangeOp : public ValueOp {
 public:
  using ValueOp::ValueOp;

 protected:
  Tensor value(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    const char* names[] = {"start", "limit", "delta"};
    for (size_t i = 0; i < 3; ++i) {
      if (!known_input(known, i))
        ctx_.fail(ErrorKind::unsupported, std::string(names[i]) + " (input " + std::to_string(i) + ") must be known at load time");
      if (known[i]->numel() != 1)
        ctx_.fail(ErrorKind::invalid_model, std::string(names[i]) + " must be a scalar, got " + shape_str(known[i]->shape()));
    }
    const DType dtype = in[0].dtype;
    if (dtype == DType::i64) {
      const int64_t start = known[0]->to_ints()[0], limit = known[1]->to_ints()[0], delta = known[2]->to_ints()[0];
      if (delta == 0) ctx_.fail(ErrorKind::invalid_model, "delta is 0");
      // ceil((limit - start) / delta) in integers
      const int64_t span = limit - start;
      int64_t n = span / delta + ((span % delta != 0) && ((span > 0) == (delta > 0)) ? 1 : 0);
      n = std::max<int64_t>(n, 0);
      std::vector<int64_t> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = start + i * delta;
      return Tensor::from_ints({n}, v);
    }
    const double start = known[0]->to_doubles()[0], limit = known[1]->to_doubles()[0], delta = known[2]->to_doubles()[0];
    if (delta == 0) ctx_.fail(ErrorKind::invalid_model, "delta is 0");
    const int64_t n = std::max<int64_t>(static_cast<int64_t>(std::ceil((limit - start) / delta)), 0);
    std::vector<double> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i) * delta;
    return Tensor::from_doubles({n}, v).to_dtype(dtype);
  }
};

std::unique_ptr<Op> make_constant(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 0) ctx.fail(ErrorKind::invalid_model, "expects no inputs");
  for (const char* name : {"value_string", "value_strings", "sparse_value"})
    if (attrs.has(name)) ctx.fail(ErrorKind::unsupported, std::string("attribute '") + name + "' is not supported (numeric dense values only)");
  int count = 0;
  for (const char* name : {"value", "value_float", "value_floats", "value_int", "value_ints"}) count += attrs.has(name);
  if (count != 1) ctx.fail(ErrorKind::invalid_model, "needs exactly one value attribute, got " + std::to_string(count));
  Tensor value;
  if (const Tensor* t = attrs.find_tensor("value")) value = t->clone();
  else if (attrs.has("value_float")) value = Tensor::from_floats({}, {static_cast<float>(attrs.get_float("value_float", 0))});
  else if (attrs.has("value_int")) value = Tensor::from_ints({}, {attrs.get_int("value_int", 0)});
  else if (attrs.has("value_ints")) {
    std::vector<int64_t> v = attrs.get_ints("value_ints", {});
    value = Tensor::from_ints({static_cast<int64_t>(v.size())}, v);
  } else {
    std::vector<double> v = attrs.get_floats("value_floats", {});
    value = Tensor::from_doubles({static_cast<int64_t>(v.size())}, v).to_dtype(DType::f32);
  }
  return std::make_unique<ConstantOp>(ctx, value.to_layout(Layout::plain));
}

std::unique_ptr<Op> make_constant_of_shape(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects one input (shape)");
  Tensor fill = Tensor::from_floats({}, {0.f});
  if (const Tensor* t = attrs.find_tensor("value")) {
    if (t->numel() != 1) ctx.fail(ErrorKind::invalid_model, "value must hold one element, got " + shape_str(t->shape()));
    fill = t->to_dtype(t->dtype());  // plain, owning
  }
  return std::make_unique<ConstantOfShapeOp>(ctx, fill);
}

std::unique_ptr<Op> make_range(const Attributes&, const OpContext& ctx) {
  if (ctx.num_inputs != 3) ctx.fail(ErrorKind::invalid_model, "expects three inputs (start, limit, delta)");
  return std::make_unique<RangeOp>(ctx);
}

}  // namespace

DERMAL_REGISTER_OP("Constant", make_constant);
DERMAL_REGISTER_OP("ConstantOfShape", make_constant_of_shape);
DERMAL_REGISTER_OP("Range", make_range);

}  // namespace dermal::engine::ops
