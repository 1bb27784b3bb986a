// Helpers shared by op implementations: axis and broadcast rules, dtype dispatch, and strided
// iteration over tensors of any layout.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/op.h"

namespace dermal::engine::ops {

// ONNX axis in [-rank, rank) -> [0, rank). Fails naming the node otherwise.
int64_t normalize_axis(int64_t axis, int64_t rank, const OpContext& ctx);
// Numpy-style multidirectional broadcasting.
Shape broadcast_shapes(const Shape& a, const Shape& b, const OpContext& ctx);
// Strides of t (any layout) expressed over out_shape's dims: 0 where t is broadcast.
std::vector<int64_t> broadcast_strides(const Tensor& t, const Shape& out_shape);
// Row-major strides of a plain tensor of this shape.
std::vector<int64_t> plain_strides(const Shape& shape);
// Expects an input to be known at plan time (a weight or shape argument).
const Tensor& require_known(const KernelConfig& cfg, size_t input, const OpContext& ctx, const char* what);

// Logical dims of a layout in the order they lie in memory: iterating in this order visits the
// buffer contiguously.
std::vector<size_t> physical_order(Layout layout, size_t rank);

template <class V>
V permuted(const V& v, const std::vector<size_t>& order) {
  V out(order.size());
  for (size_t i = 0; i < order.size(); ++i) out[i] = v[order[i]];
  return out;
}

// Writes a value computed at plan time (Constant, Shape, Size...). Nothing flows back.
class ValueKernel : public Kernel {
 public:
  explicit ValueKernel(Tensor value) : value_(std::move(value)) {}
  void forward(const std::vector<Tensor>&, const std::vector<Tensor>& out) override { out[0].copy_from(value_); }
  void backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
                const std::vector<Tensor>&) override {}

 private:
  Tensor value_;
};

// Calls f(T{}) with T = float for f32 and double for f64.
template <class F>
void dispatch_float(DType dtype, F&& f) {
  if (dtype == DType::f32) f(float{});
  else if (dtype == DType::f64) f(double{});
  else throw Error(ErrorKind::unsupported, std::string("dtype ") + dtype_name(dtype) + " is not supported here");
}

// Visits every index of `shape` in row-major order, passing the element offsets of up to three
// strided operands (unused operands get empty strides and offset 0).
template <class Fn>
void for_each_offset(const Shape& shape, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb,
                     const std::vector<int64_t>& sc, Fn&& fn) {
  const size_t rank = shape.size();
  if (shape_numel(shape) == 0) return;
  if (rank == 0) {
    fn(int64_t{0}, int64_t{0}, int64_t{0});
    return;
  }
  auto st = [](const std::vector<int64_t>& s, size_t d) { return s.empty() ? 0 : s[d]; };
  std::vector<int64_t> idx(rank, 0);
  int64_t oa = 0, ob = 0, oc = 0;
  const int64_t inner = shape[rank - 1];
  const int64_t ia = st(sa, rank - 1), ib = st(sb, rank - 1), ic = st(sc, rank - 1);
  while (true) {
    for (int64_t i = 0; i < inner; ++i) fn(oa + i * ia, ob + i * ib, oc + i * ic);
    // advance the outer dims
    int d = static_cast<int>(rank) - 2;
    for (; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        oa += st(sa, d);
        ob += st(sb, d);
        oc += st(sc, d);
        break;
      }
      oa -= st(sa, d) * (shape[d] - 1);
      ob -= st(sb, d) * (shape[d] - 1);
      oc -= st(sc, d) * (shape[d] - 1);
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

}  // namespace dermal::engine::ops
