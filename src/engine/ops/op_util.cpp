#include "engine/ops/op_util.h"

#include <algorithm>

namespace dermal::engine::ops {

int64_t normalize_axis(int64_t axis, int64_t rank, const OpContext& ctx) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    ctx.fail(ErrorKind::invalid_model, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const OpContext& ctx) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      ctx.fail(ErrorKind::invalid_model, "shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> broadcast_strides(const Tensor& t, const Shape& out_shape) {
  std::vector<int64_t> own = t.strides();
  const Shape& s = t.shape();
  std::vector<int64_t> out(out_shape.size(), 0);
  size_t offset = out_shape.size() - s.size();
  for (size_t i = 0; i < s.size(); ++i) out[offset + i] = s[i] == 1 ? 0 : own[i];
  return out;
}

std::vector<size_t> physical_order(Layout layout, size_t rank) {
  if (layout == Layout::nhwc) return {0, 2, 3, 1};
  std::vector<size_t> order(rank);
  for (size_t i = 0; i < rank; ++i) order[i] = i;
  return order;
}

std::vector<int64_t> plain_strides(const Shape& shape) {
  std::vector<int64_t> st(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * shape[i + 1];
  return st;
}

const Tensor& require_known(const KernelConfig& cfg, size_t input, const OpContext& ctx, const char* what) {
  if (input >= cfg.known.size() || !cfg.known[input])
    ctx.fail(ErrorKind::unsupported, std::string(what) + " (input " + std::to_string(input) +
                                         ") must be a constant known at load time");
  return *cfg.known[input];
}

}  // namespace dermal::engine::ops
