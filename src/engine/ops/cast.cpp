// Cast. The engine holds f32, f64 and i64 only, so every integer target (and BOOL) becomes
// i64, with the value wrapped to the target's width as a C cast would (BOOL: nonzero -> 1).
// A float target keeps a float input in its own dtype (the compute precision); an i64 input
// becomes f32 for FLOAT and f64 for DOUBLE. FLOAT16, BFLOAT16, STRING and complex targets are
// unsupported. The VJP passes the gradient through float -> float casts and is zero otherwise.
#include <cmath>
#include <limits>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// ONNX TensorProto.DataType codes.
enum OnnxType : int64_t {
  kFloat = 1, kUint8 = 2, kInt8 = 3, kUint16 = 4, kInt16 = 5, kInt32 = 6, kInt64 = 7, kString = 8,
  kBool = 9, kFloat16 = 10, kDouble = 11, kUint32 = 12, kUint64 = 13, kComplex64 = 14, kComplex128 = 15, kBfloat16 = 16,
};

bool is_float(DType t) { return t == DType::f32 || t == DType::f64; }

// Float to integer truncates toward zero; NaN and out-of-range values (undefined in ONNX)
// become 0 or saturate rather than invoke undefined behaviour.
int64_t float_to_int(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
  if (v <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

int64_t wrap_to(int64_t to, int64_t v) {
  switch (to) {
    case kUint8: return static_cast<uint8_t>(v);
    case kInt8: return static_cast<int8_t>(v);
    case kUint16: return static_cast<uint16_t>(v);
    case kInt16: return static_cast<int16_t>(v);
    case kInt32: return static_cast<int32_t>(v);
    case kUint32: return static_cast<uint32_t>(v);
    case kBool: return v != 0;
    default: return v;  // INT64, UINT64 (held in the same bits)
  }
}

class CastKernel : public Kernel {
 public:
  explicit CastKernel(int64_t to) : to_(to) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    const Tensor& x = in[0];
    const Tensor& y = out[0];
    const int64_t n = x.numel();
    if (is_float(y.dtype())) return y.copy_from(x.to_dtype(y.dtype()));
    int64_t* dst = y.data<int64_t>();
    if (x.dtype() == DType::i64) {
      const int64_t* src = x.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = wrap_to(to_, src[i]);
      return;
    }
    dispatch_float(x.dtype(), [&](auto t) {
      using T = decltype(t);
      const T* src = x.data<T>();
      for (int64_t i = 0; i < n; ++i)
        dst[i] = to_ == kBool ? (src[i] != 0) : wrap_to(to_, float_to_int(static_cast<double>(src[i])));
    });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined() || !is_float(out[0].dtype())) return d_in[0].fill_zero();
    d_in[0].copy_from(d_out[0].to_dtype(d_in[0].dtype()));
  }

 private:
  int64_t to_;
};

class CastOp : public Op {
 public:
  CastOp(const OpContext& ctx, int64_t to) : Op(ctx), to_(to) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    DType out = DType::i64;
    if (to_ == kFloat || to_ == kDouble) out = is_float(in[0].dtype) ? in[0].dtype : (to_ == kFloat ? DType::f32 : DType::f64);
    return {{out, in[0].shape}};
  }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts.assign(1, Layout::plain);
    return std::make_unique<CastKernel>(to_);
  }

 private:
  int64_t to_;
};

std::unique_ptr<Op> make_cast(const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects exactly one input");
  const std::optional<int64_t> to = attrs.find_int("to");
  if (!to) ctx.fail(ErrorKind::invalid_model, "needs the 'to' attribute");
  switch (*to) {
    case kFloat: case kDouble: case kUint8: case kInt8: case kUint16: case kInt16: case kInt32: case kInt64:
    case kBool: case kUint32: case kUint64:
      break;
    case kFloat16: case kBfloat16: case kString: case kComplex64: case kComplex128:
      ctx.fail(ErrorKind::unsupported, "cast to data type " + std::to_string(*to) +
                                           " (FLOAT16, BFLOAT16, STRING or complex) is not supported");
    default:
      ctx.fail(ErrorKind::unsupported, "cast to data type " + std::to_string(*to) + " is not supported");
  }
  return std::make_unique<CastOp>(ctx, *to);
}

}  // namespace

DERMAL_REGISTER_OP("Cast", make_cast);

}  // namespace dermal::engine::ops
