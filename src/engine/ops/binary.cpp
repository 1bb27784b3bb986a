// Elementwise arithmetic with numpy (multidirectional) broadcasting: Add, Sub, Mul, Div, Pow.
// Inputs may come in any layout; the output is channels-last when the full-size inputs are and
// the others are constant over H and W (a scalar, [C,1,1], [N,C,1,1] as in squeeze-excite), so
// residual adds and SE gates between convolutions need no reorder. Both inputs are differentiable;
// a broadcast input's gradient is summed over the dims it was broadcast along.
// Integer (i64) Add/Sub/Mul/Div/Pow run forward only, for shape arithmetic that folds at load.
#include <cmath>
#include <type_traits>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// Each operation: value f(a, b) and partial derivatives da = df/da, db = df/db.
struct AddFn {
  template <class T> static T f(T a, T b) { return a + b; }
  template <class T> static T da(T, T) { return 1; }
  template <class T> static T db(T, T) { return 1; }
};
struct SubFn {
  template <class T> static T f(T a, T b) { return a - b; }
  template <class T> static T da(T, T) { return 1; }
  template <class T> static T db(T, T) { return -1; }
};
struct MulFn {
  template <class T> static T f(T a, T b) { return a * b; }
  template <class T> static T da(T, T b) { return b; }
  template <class T> static T db(T a, T) { return a; }
};
struct DivFn {
  template <class T> static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      // Integer division truncates (as onnxruntime); dividing by zero must not kill the process.
      if (b == 0) throw Error(ErrorKind::invalid_input, "Div: integer division by zero");
    }
    return a / b;
  }
  template <class T> static T da(T, T b) { return 1 / b; }
  template <class T> static T db(T a, T b) { return -a / (b * b); }
};
struct PowFn {
  template <class T> static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    else return std::pow(a, b);
  }
  template <class T> static T da(T a, T b) { return b * std::pow(a, b - 1); }
  // d(a^b)/db = a^b ln a, defined only for a > 0 (elsewhere a^b is not smooth in b): 0 there.
  template <class T> static T db(T a, T b) { return a > 0 ? std::pow(a, b) * std::log(a) : T(0); }
};

bool same_shape_and_layout(const Tensor& a, const Tensor& b, const Tensor& y) {
  return a.shape() == y.shape() && b.shape() == y.shape() && a.layout() == y.layout() && b.layout() == y.layout();
}

// Calls fn(offset_a, offset_b, offset_y) for every output element, in y's memory order.
template <class Fn>
void for_each_broadcast(const Tensor& a, const Tensor& b, const Tensor& y, Fn&& fn) {
  const Shape& shape = y.shape();
  auto order = physical_order(y.layout(), shape.size());
  for_each_offset(permuted(shape, order), permuted(broadcast_strides(a, shape), order),
                  permuted(broadcast_strides(b, shape), order), permuted(y.strides(), order), fn);
}

template <class F, class T>
void binary_forward(const Tensor& a, const Tensor& b, const Tensor& y) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* py = y.data<T>();
  if (same_shape_and_layout(a, b, y)) {
    const int64_t n = y.numel();
    if constexpr (std::is_integral_v<T>) {
      // Integer Div may throw, which must not happen inside a parallel region.
      for (int64_t i = 0; i < n; ++i) py[i] = F::f(pa[i], pb[i]);
    } else {
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; ++i) py[i] = F::f(pa[i], pb[i]);
    }
    return;
  }
  for_each_broadcast(a, b, y, [&](int64_t oa, int64_t ob, int64_t oy) { py[oy] = F::f(pa[oa], pb[ob]); });
}

// d_a and d_b (either may be undefined) have a's and b's shapes and layouts, so they share their
// broadcast offsets; broadcast elements accumulate.
template <class F, class T>
void binary_backward(const Tensor& a, const Tensor& b, const Tensor& dy, const Tensor& d_a, const Tensor& d_b) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  const T* pdy = dy.data<T>();
  T* pda = d_a.defined() ? d_a.data<T>() : nullptr;
  T* pdb = d_b.defined() ? d_b.data<T>() : nullptr;
  if (same_shape_and_layout(a, b, dy)) {
    const int64_t n = dy.numel();
    for (int64_t i = 0; i < n; ++i) {
      if (pda) pda[i] = pdy[i] * F::da(pa[i], pb[i]);
      if (pdb) pdb[i] = pdy[i] * F::db(pa[i], pb[i]);
    }
    return;
  }
  if (pda) d_a.fill_zero();
  if (pdb) d_b.fill_zero();
  for_each_broadcast(a, b, dy, [&](int64_t oa, int64_t ob, int64_t oy) {
    if (pda) pda[oa] += pdy[oy] * F::da(pa[oa], pb[ob]);
    if (pdb) pdb[ob] += pdy[oy] * F::db(pa[oa], pb[ob]);
  });
}

// Pow's exponent may have another dtype than its base (opset 12+): bring it to the base's.
// (An integer base with a float exponent is handled before this.)
Tensor as_dtype_of(const Tensor& t, const Tensor& like) { return t.dtype() == like.dtype() ? t : t.to_dtype(like.dtype()); }

template <class F>
class BinaryKernel : public Kernel {
 public:
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    if (in[0].dtype() == DType::i64 && in[1].dtype() != DType::i64) {
      // Integer base, float exponent (Pow): compute in f64, then truncate as numpy's astype.
      Tensor y = Tensor::zeros(DType::f64, out[0].shape());
      binary_forward<F, double>(in[0].to_dtype(DType::f64), in[1].to_dtype(DType::f64), y);
      return out[0].copy_from(y.to_dtype(DType::i64));
    }
    Tensor b = as_dtype_of(in[1], in[0]);
    if (in[0].dtype() == DType::i64) return binary_forward<F, int64_t>(in[0], b, out[0]);
    dispatch_float(in[0].dtype(), [&](auto t) { binary_forward<F, decltype(t)>(in[0], b, out[0]); });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    Tensor d_a = d_in.size() > 0 ? d_in[0] : Tensor(), d_b = d_in.size() > 1 ? d_in[1] : Tensor();
    if (!d_out[0].defined()) {
      if (d_a.defined()) d_a.fill_zero();
      if (d_b.defined()) d_b.fill_zero();
      return;
    }
    DERMAL_ASSERT(!d_a.defined() || d_a.layout() == in[0].layout());
    DERMAL_ASSERT(!d_b.defined() || d_b.layout() == in[1].layout());
    Tensor b = as_dtype_of(in[1], in[0]);
    dispatch_float(in[0].dtype(), [&](auto t) { binary_backward<F, decltype(t)>(in[0], b, d_out[0], d_a, d_b); });
  }
};

// Constant over the last two dims (H, W of an NCHW output) once right-aligned.
bool constant_over_hw(const Shape& s) {
  for (size_t i = s.size() >= 2 ? s.size() - 2 : 0; i < s.size(); ++i)
    if (s[i] != 1) return false;
  return true;
}

bool is_supported_dtype(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::i64; }

template <class F>
class BinaryOp : public Op {
 public:
  using Op::Op;

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    if (in.size() != 2) ctx_.fail(ErrorKind::invalid_model, "expects 2 inputs");
    for (const auto& t : in)
      if (!is_supported_dtype(t.dtype)) ctx_.fail(ErrorKind::unsupported, std::string("dtype ") + dtype_name(t.dtype) + " is not supported");
    // Only Pow may mix dtypes (base and exponent, opset 12+).
    if (in[0].dtype != in[1].dtype && (!std::is_same_v<F, PowFn> || ctx_.opset < 12))
      ctx_.fail(ErrorKind::invalid_model, std::string("inputs have different dtypes (") + dtype_name(in[0].dtype) +
                                              " and " + dtype_name(in[1].dtype) + ")");
    return {{in[0].dtype, broadcast_shapes(in[0].shape, in[1].shape, ctx_)}};
  }

  bool differentiable(size_t input) const override { return input < 2; }
  bool accepts_nhwc(size_t) const override { return true; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    bool any_nhwc = false, all_fit = true;
    for (size_t i = 0; i < 2; ++i) {
      bool nhwc = cfg.input_layouts[i] == Layout::nhwc;
      any_nhwc = any_nhwc || nhwc;
      all_fit = all_fit && (nhwc || constant_over_hw(cfg.inputs[i].shape));
    }
    bool out_nhwc = cfg.outputs[0].shape.size() == 4 && any_nhwc && all_fit;
    cfg.output_layouts = {out_nhwc ? Layout::nhwc : Layout::plain};
    return std::make_unique<BinaryKernel<F>>();
  }
};

template <class F>
std::unique_ptr<Op> make_binary(const Attributes& attrs, const OpContext& ctx) {
  // Opset < 7 spelled broadcasting with attributes; we implement the opset 7+ numpy rule only.
  for (const char* old : {"broadcast", "axis"})
    if (attrs.has(old))
      ctx.fail(ErrorKind::unsupported, std::string("attribute '") + old + "' (opset < 7 broadcasting) is not supported; "
                                       "re-export the model with opset 7 or later");
  if (ctx.num_inputs != 2) ctx.fail(ErrorKind::invalid_model, "expects 2 inputs, got " + std::to_string(ctx.num_inputs));
  return std::make_unique<BinaryOp<F>>(ctx);
}

// PRelu: y = x for x >= 0, slope * x otherwise; slope broadcasts to x (unidirectionally). Only
// x is differentiable (the slope is a weight).
template <class T>
void prelu_forward(const Tensor& x, const Tensor& slope, const Tensor& y) {
  const T* px = x.data<T>();
  const T* ps = slope.data<T>();
  T* py = y.data<T>();
  for_each_broadcast(x, slope, y, [&](int64_t ox, int64_t os, int64_t oy) {
    py[oy] = px[ox] >= 0 ? px[ox] : ps[os] * px[ox];
  });
}

template <class T>
void prelu_backward(const Tensor& x, const Tensor& slope, const Tensor& dy, const Tensor& dx) {
  const T* px = x.data<T>();
  const T* ps = slope.data<T>();
  const T* pdy = dy.data<T>();
  T* pdx = dx.data<T>();
  // dx has x's layout, so x's offsets address it.
  for_each_broadcast(x, slope, dy, [&](int64_t ox, int64_t os, int64_t oy) {
    pdx[ox] = px[ox] >= 0 ? pdy[oy] : ps[os] * pdy[oy];
  });
}

class PReluKernel : public Kernel {
 public:
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    Tensor slope = as_dtype_of(in[1], in[0]);
    dispatch_float(in[0].dtype(), [&](auto t) { prelu_forward<decltype(t)>(in[0], slope, out[0]); });
  }
  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    DERMAL_ASSERT(d_in[0].layout() == in[0].layout());
    Tensor slope = as_dtype_of(in[1], in[0]);
    dispatch_float(in[0].dtype(), [&](auto t) { prelu_backward<decltype(t)>(in[0], slope, d_out[0], d_in[0]); });
  }
};

class PReluOp : public Op {
 public:
  using Op::Op;

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    if (in.size() != 2) ctx_.fail(ErrorKind::invalid_model, "expects 2 inputs (X, slope)");
    for (const auto& t : in)
      if (t.dtype != DType::f32 && t.dtype != DType::f64) ctx_.fail(ErrorKind::unsupported, "needs float inputs");
    const Shape &x = in[0].shape, &s = in[1].shape;
    bool ok = s.size() <= x.size();
    for (size_t i = 0; ok && i < s.size(); ++i) {
      int64_t xd = x[x.size() - s.size() + i];
      ok = s[i] == 1 || s[i] == xd;
    }
    if (!ok) ctx_.fail(ErrorKind::invalid_model, "slope " + shape_str(s) + " does not broadcast to X " + shape_str(x));
    return {in[0]};
  }

  bool accepts_nhwc(size_t input) const override { return input == 0; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts = {cfg.input_layouts[0]};
    return std::make_unique<PReluKernel>();
  }
};

std::unique_ptr<Op> make_prelu(const Attributes&, const OpContext& ctx) {
  if (ctx.num_inputs != 2) ctx.fail(ErrorKind::invalid_model, "expects 2 inputs (X, slope)");
  return std::make_unique<PReluOp>(ctx);
}

}  // namespace

DERMAL_REGISTER_OP("Add", make_binary<AddFn>);
DERMAL_REGISTER_OP("Sub", make_binary<SubFn>);
DERMAL_REGISTER_OP("Mul", make_binary<MulFn>);
DERMAL_REGISTER_OP("Div", make_binary<DivFn>);
DERMAL_REGISTER_OP("Pow", make_binary<PowFn>);
DERMAL_REGISTER_OP("PRelu", make_prelu);

}  // namespace dermal::engine::ops
