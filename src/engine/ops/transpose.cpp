// Strided copies: Transpose (a permutation of axes) and Expand (numpy broadcasting to a shape).
// Forward moves raw elements, templated on element size, so f32, f64 and i64 share one path.
// Transpose's VJP is the inverse permutation; Expand's sums the gradient over broadcast axes.
#include <cstring>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// Calls f(E{}) with an unsigned integer type as wide as one element.
template <class F>
void dispatch_element_size(DType dtype, F&& f) {
  if (dtype_size(dtype) == 4) f(uint32_t{});
  else f(uint64_t{});
}

// out[o] = in[i] for every pair of offsets the strides produce over `shape`.
template <class E>
void strided_copy(const Shape& shape, const std::vector<int64_t>& out_strides, const std::vector<int64_t>& in_strides,
                  const void* in, void* out) {
  const E* x = static_cast<const E*>(in);
  E* y = static_cast<E*>(out);
  for_each_offset(shape, out_strides, in_strides, {}, [&](int64_t o, int64_t i, int64_t) { y[o] = x[i]; });
}

class TransposeKernel : public Kernel {
 public:
  TransposeKernel(Shape out_shape, std::vector<int64_t> in_strides)
      : out_shape_(std::move(out_shape)), out_strides_(plain_strides(out_shape_)), in_strides_(std::move(in_strides)) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    dispatch_element_size(in[0].dtype(), [&](auto e) {
      strided_copy<decltype(e)>(out_shape_, out_strides_, in_strides_, in[0].raw(), out[0].raw());
    });
  }
  // A permutation: each input element receives exactly one output element.
  void backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    dispatch_element_size(d_in[0].dtype(), [&](auto e) {
      strided_copy<decltype(e)>(out_shape_, in_strides_, out_strides_, d_out[0].raw(), d_in[0].raw());
    });
  }

 private:
  Shape out_shape_;
  std::vector<int64_t> out_strides_, in_strides_;  // input strides listed in output dim order
};

class TransposeOp : public Op {
 public:
  TransposeOp(const OpContext& ctx, std::optional<std::vector<int64_t>> perm) : Op(ctx), perm_(std::move(perm)) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    const Shape& s = in[0].shape;
    Shape out;
    for (int64_t p : perm_for(s)) out.push_back(s[p]);
    return {{in[0].dtype, out}};
  }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    const Shape& s = cfg.inputs[0].shape;
    const std::vector<int64_t> perm = perm_for(s), strides = plain_strides(s);
    std::vector<int64_t> in_strides;
    for (int64_t p : perm) in_strides.push_back(strides[p]);
    cfg.output_layouts.assign(1, Layout::plain);
    return std::make_unique<TransposeKernel>(cfg.outputs[0].shape, in_strides);
  }

 private:
  // The permutation for this input: the attribute, checked, or the reversed axes.
  std::vector<int64_t> perm_for(const Shape& s) const {
    const size_t rank = s.size();
    std::vector<int64_t> perm;
    if (!perm_) {
      for (size_t d = rank; d-- > 0;) perm.push_back(static_cast<int64_t>(d));
      return perm;
    }
    perm = *perm_;
    std::vector<bool> seen(rank, false);
    bool valid = perm.size() == rank;
    for (int64_t p : perm) {
      if (!valid || p < 0 || p >= static_cast<int64_t>(rank) || seen[p]) {
        valid = false;
        break;
      }
      seen[p] = true;
    }
    if (!valid) ctx_.fail(ErrorKind::invalid_model, "perm " + shape_str(perm) + " is not a permutation of the axes of " + shape_str(s));
    return perm;
  }
  std::optional<std::vector<int64_t>> perm_;
};

class ExpandKernel : public Kernel {
 public:
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    const Shape& shape = out[0].shape();
    dispatch_element_size(in[0].dtype(), [&](auto e) {
      strided_copy<decltype(e)>(shape, plain_strides(shape), broadcast_strides(in[0], shape), in[0].raw(), out[0].raw());
    });
  }
  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    d_in[0].fill_zero();
    if (!d_out[0].defined()) return;
    const Shape& shape = out[0].shape();
    dispatch_float(d_in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* dy = d_out[0].data<T>();
      T* dx = d_in[0].data<T>();
      for_each_offset(shape, plain_strides(shape), broadcast_strides(in[0], shape), {},
                      [&](int64_t o, int64_t i, int64_t) { dx[i] += dy[o]; });
    });
  }
};

class ExpandOp : public Op {
 public:
  using Op::Op;
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    if (known.size() < 2 || !known[1])
      ctx_.fail(ErrorKind::unsupported, "the shape (input 1) must be known at load time (a constant or a folded Shape chain)");
    const Shape target = known[1]->to_ints();
    for (int64_t d : target)
      if (d < 0) ctx_.fail(ErrorKind::invalid_model, "shape input " + shape_str(target) + " has a negative dimension");
    return {{in[0].dtype, broadcast_shapes(in[0].shape, target, ctx_)}};
  }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts.assign(1, Layout::plain);
    return std::make_unique<ExpandKernel>();
  }
};

std::unique_ptr<Op> make_transpose(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects exactly one input");
  return std::make_unique<TransposeOp>(ctx, attrs.find_ints("perm"));
}

std::unique_ptr<Op> make_expand(const Attributes&, const OpContext& ctx) {
  if (ctx.num_inputs != 2) ctx.fail(ErrorKind::invalid_model, "expects two inputs (data, shape)");
  return std::make_unique<ExpandOp>(ctx);
}

}  // namespace

DERMAL_REGISTER_OP("Transpose", make_transpose);
DERMAL_REGISTER_OP("Expand", make_expand);

}  // namespace dermal::engine::ops
