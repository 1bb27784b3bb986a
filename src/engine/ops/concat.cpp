// Concat: joins inputs along one axis (negative axes count from the end). Channel concats of
// channels-last tensors (DenseNet, Inception) stay channels-last: the output is nhwc when every
// input is a rank-4 nhwc tensor, plain otherwise. Each input's gradient is its slice of d_out.
// f32, f64 and i64 (shape vectors built at load, e.g. for Reshape).
#include <cstring>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// Copies between `part` and the slab of `whole` that starts at `offset` along `axis` (to_whole:
// part -> whole, else whole -> part). Same layouts: contiguous runs with memcpy; otherwise an
// element loop in whole's memory order.
void copy_slab(const Tensor& whole, const Tensor& part, size_t axis, int64_t offset, bool to_whole) {
  if (part.numel() == 0) return;
  const size_t es = dtype_size(whole.dtype());
  char* w = static_cast<char*>(whole.raw());
  char* p = static_cast<char*>(part.raw());
  const auto order = physical_order(whole.layout(), whole.shape().size());
  if (whole.layout() == part.layout()) {
    // In memory order, dims before the axis are shared; from the axis on, each of part's runs is
    // one contiguous block inside whole's.
    Shape ws = permuted(whole.shape(), order), ps = permuted(part.shape(), order);
    size_t at = 0;
    while (order[at] != axis) ++at;
    int64_t outer = 1, inner = 1;
    for (size_t d = 0; d < at; ++d) outer *= ps[d];
    for (size_t d = at + 1; d < ps.size(); ++d) inner *= ps[d];
    const int64_t part_run = ps[at] * inner, whole_run = ws[at] * inner;
    for (int64_t o = 0; o < outer; ++o) {
      char* wp = w + (o * whole_run + offset * inner) * es;
      char* pp = p + o * part_run * es;
      if (to_whole) std::memcpy(wp, pp, part_run * es);
      else std::memcpy(pp, wp, part_run * es);
    }
    return;
  }
  std::vector<int64_t> ws = whole.strides();
  const int64_t base = offset * ws[axis];
  auto copy = [&](auto word) {
    using W = decltype(word);
    W* wd = reinterpret_cast<W*>(w) + base;
    W* pd = reinterpret_cast<W*>(p);
    for_each_offset(permuted(part.shape(), order), permuted(ws, order), permuted(part.strides(), order), {},
                    [&](int64_t ow, int64_t op, int64_t) {
                      if (to_whole) wd[ow] = pd[op];
                      else pd[op] = wd[ow];
                    });
  };
  if (es == 4) copy(uint32_t{});
  else copy(uint64_t{});
}

class ConcatKernel : public Kernel {
 public:
  explicit ConcatKernel(size_t axis) : axis_(axis) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    int64_t offset = 0;
    for (const Tensor& t : in) {
      copy_slab(out[0], t, axis_, offset, true);
      offset += t.shape()[axis_];
    }
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    int64_t offset = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      if (i < d_in.size() && d_in[i].defined()) {
        if (d_out[0].defined()) copy_slab(d_out[0], d_in[i], axis_, offset, false);
        else d_in[i].fill_zero();
      }
      offset += in[i].shape()[axis_];
    }
  }

 private:
  size_t axis_;
};

class ConcatOp : public Op {
 public:
  ConcatOp(const OpContext& ctx, int64_t axis) : Op(ctx), axis_(axis) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    if (in.empty()) ctx_.fail(ErrorKind::invalid_model, "needs at least one input");
    const TensorInfo& first = in[0];
    if (first.dtype != DType::f32 && first.dtype != DType::f64 && first.dtype != DType::i64)
      ctx_.fail(ErrorKind::unsupported, std::string("dtype ") + dtype_name(first.dtype) + " is not supported");
    if (first.shape.empty()) ctx_.fail(ErrorKind::invalid_model, "cannot concatenate scalars");
    const size_t axis = static_cast<size_t>(normalize_axis(axis_, static_cast<int64_t>(first.shape.size()), ctx_));
    Shape out = first.shape;
    out[axis] = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      const Shape& s = in[i].shape;
      if (in[i].dtype != first.dtype)
        ctx_.fail(ErrorKind::invalid_model, "input " + std::to_string(i) + " has dtype " + dtype_name(in[i].dtype) +
                                                ", input 0 has " + dtype_name(first.dtype));
      bool ok = s.size() == first.shape.size();
      for (size_t d = 0; ok && d < s.size(); ++d) ok = d == axis || s[d] == first.shape[d];
      if (!ok)
        ctx_.fail(ErrorKind::invalid_model, "input " + std::to_string(i) + " " + shape_str(s) + " does not match input 0 " +
                                                shape_str(first.shape) + " outside axis " + std::to_string(axis));
      out[axis] += s[axis];
    }
    return {{first.dtype, out}};
  }

  bool differentiable(size_t) const override { return true; }
  bool accepts_nhwc(size_t) const override { return true; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    bool all_nhwc = true;
    for (size_t i = 0; i < cfg.inputs.size(); ++i)
      all_nhwc = all_nhwc && cfg.inputs[i].shape.size() == 4 && cfg.input_layouts[i] == Layout::nhwc;
    cfg.output_layouts = {all_nhwc ? Layout::nhwc : Layout::plain};
    const int64_t rank = static_cast<int64_t>(cfg.outputs[0].shape.size());
    return std::make_unique<ConcatKernel>(static_cast<size_t>(normalize_axis(axis_, rank, ctx_)));
  }

 private:
  int64_t axis_;
};

std::unique_ptr<Op> make_concat(const Attributes& attrs, const OpContext& ctx) {
  auto axis = attrs.find_int("axis");
  if (!axis) ctx.fail(ErrorKind::invalid_model, "needs the 'axis' attribute");
  if (ctx.num_inputs < 1) ctx.fail(ErrorKind::invalid_model, "needs at least one input");
  return std::make_unique<ConcatOp>(ctx, *axis);
}

}  // namespace

DERMAL_REGISTER_OP("Concat", make_concat);

}  // namespace dermal::engine::ops
