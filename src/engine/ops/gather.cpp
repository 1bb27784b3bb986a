// Gather: picks slices of data along one axis by index (negative indices count from the end).
// Output shape: data[:axis] + indices + data[axis+1:]. Data may be float or i64 (shape chains
// such as Shape -> Gather fold through here); indices are i64. The VJP scatter-adds the
// output gradient back to the gathered slices (an index may repeat).
#include <cstring>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// data viewed as [outer, axis_dim, inner]; output as [outer, num_indices, inner].
struct GatherGeometry {
  int64_t outer = 1, axis_dim = 1, inner = 1;
};

class GatherKernel : public Kernel {
 public:
  GatherKernel(OpContext ctx, GatherGeometry g) : ctx_(std::move(ctx)), g_(g) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    const std::vector<int64_t> idx = checked_indices(in[1]);
    const size_t esize = dtype_size(in[0].dtype());
    const size_t row = static_cast<size_t>(g_.inner) * esize;
    const char* x = static_cast<const char*>(in[0].raw());
    char* y = static_cast<char*>(out[0].raw());
    const int64_t n = static_cast<int64_t>(idx.size());
    for (int64_t o = 0; o < g_.outer; ++o)
      for (int64_t j = 0; j < n; ++j)
        std::memcpy(y + (o * n + j) * row, x + (o * g_.axis_dim + idx[j]) * row, row);
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    d_in[0].fill_zero();
    if (!d_out[0].defined()) return;
    const std::vector<int64_t> idx = checked_indices(in[1]);
    const int64_t n = static_cast<int64_t>(idx.size()), inner = g_.inner;
    dispatch_float(d_in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* dy = d_out[0].data<T>();
      T* dx = d_in[0].data<T>();
      for (int64_t o = 0; o < g_.outer; ++o)
        for (int64_t j = 0; j < n; ++j) {
          const T* src = dy + (o * n + j) * inner;
          T* dst = dx + (o * g_.axis_dim + idx[j]) * inner;
          for (int64_t k = 0; k < inner; ++k) dst[k] += src[k];
        }
    });
  }

 private:
  // Indices made non-negative; out-of-range ones are the caller's error.
  std::vector<int64_t> checked_indices(const Tensor& indices) const {
    std::vector<int64_t> idx = indices.to_ints();
    for (int64_t& i : idx) {
      if (i < -g_.axis_dim || i >= g_.axis_dim)
        ctx_.fail(ErrorKind::invalid_input, "index " + std::to_string(i) + " out of range for an axis of size " +
                                                std::to_string(g_.axis_dim));
      if (i < 0) i += g_.axis_dim;
    }
    return idx;
  }
  OpContext ctx_;
  GatherGeometry g_;
};

class GatherOp : public Op {
 public:
  GatherOp(const OpContext& ctx, int64_t axis) : Op(ctx), axis_(axis) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    const Shape& data = in[0].shape;
    if (data.empty()) ctx_.fail(ErrorKind::invalid_model, "data must have rank >= 1, got a scalar");
    if (in[1].dtype != DType::i64)
      ctx_.fail(ErrorKind::invalid_model, std::string("indices must be integers, got ") + dtype_name(in[1].dtype));
    const int64_t axis = normalize_axis(axis_, static_cast<int64_t>(data.size()), ctx_);
    Shape out(data.begin(), data.begin() + axis);
    out.insert(out.end(), in[1].shape.begin(), in[1].shape.end());
    out.insert(out.end(), data.begin() + axis + 1, data.end());
    return {{in[0].dtype, out}};
  }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    const Shape& data = cfg.inputs[0].shape;
    const int64_t axis = normalize_axis(axis_, static_cast<int64_t>(data.size()), ctx_);
    GatherGeometry g;
    for (int64_t d = 0; d < static_cast<int64_t>(data.size()); ++d) {
      if (d < axis) g.outer *= data[d];
      else if (d == axis) g.axis_dim = data[d];
      else g.inner *= data[d];
    }
    cfg.output_layouts.assign(1, Layout::plain);
    auto kernel = std::make_unique<GatherKernel>(ctx_, g);
    // Indices known at load (the usual case) are checked now rather than at the first run.
    if (cfg.known.size() > 1 && cfg.known[1]) {
      for (int64_t i : cfg.known[1]->to_ints())
        if (i < -g.axis_dim || i >= g.axis_dim)
          ctx_.fail(ErrorKind::invalid_model, "index " + std::to_string(i) + " out of range for axis " +
                                                  std::to_string(axis) + " of data " + shape_str(data));
    }
    return kernel;
  }

 private:
  int64_t axis_;
};

std::unique_ptr<Op> make_gather(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 2) ctx.fail(ErrorKind::invalid_model, "expects two inputs (data, indices)");
  return std::make_unique<GatherOp>(ctx, attrs.get_int("axis", 0));
}

}  // namespace

DERMAL_REGISTER_OP("Gather", make_gather);

}  // namespace dermal::engine::ops
