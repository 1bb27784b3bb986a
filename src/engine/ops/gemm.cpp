// Gemm (Y = alpha * op(A) op(B) + beta * C) and MatMul (numpy matmul: 1-D operands promoted,
// batch dims broadcast). Both run on one batched product, MatmulPlan: oneDNN's matmul primitive
// for f32, plain loops for f64. Transposes are strided views (no copies), and B is read in its
// plain layout, so a weight needs no reordered copy. Backward gives both operands (MatMul in
// attention multiplies two activations) and Gemm's C, each summed over the dims it was
// broadcast along. Plain layout only.
#include <algorithm>
#include <optional>

#include "engine/dnnl_util.h"
#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// A stack of matrices: dims (batch..., rows, cols) and element strides per dim.
struct MatDesc {
  Shape dims;
  std::vector<int64_t> strides;
};

MatDesc dense(const Shape& dims) { return {dims, plain_strides(dims)}; }

MatDesc transposed(MatDesc m) {
  const size_t r = m.dims.size();
  std::swap(m.dims[r - 2], m.dims[r - 1]);
  std::swap(m.strides[r - 2], m.strides[r - 1]);
  return m;
}

// Strides over the batch dims, 0 where this operand is broadcast.
std::vector<int64_t> batch_strides(const MatDesc& m, size_t batch_rank) {
  std::vector<int64_t> s(batch_rank);
  for (size_t d = 0; d < batch_rank; ++d) s[d] = m.dims[d] == 1 ? 0 : m.strides[d];
  return s;
}

template <class T>
void matmul_reference(const MatDesc& a, const MatDesc& b, const Shape& dst, const T* pa, const T* pb, T* pd) {
  const size_t r = dst.size();
  const int64_t M = dst[r - 2], N = dst[r - 1], K = a.dims[r - 1];
  const int64_t ars = a.strides[r - 2], acs = a.strides[r - 1], brs = b.strides[r - 2], bcs = b.strides[r - 1];
  std::vector<int64_t> ds = plain_strides(dst);
  ds.resize(r - 2);
  const Shape batch(dst.begin(), dst.end() - 2);
  for_each_offset(batch, batch_strides(a, r - 2), batch_strides(b, r - 2), ds, [&](int64_t oa, int64_t ob, int64_t od) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        T sum = 0;
        for (int64_t k = 0; k < K; ++k) sum += pa[oa + m * ars + k * acs] * pb[ob + k * brs + n * bcs];
        pd[od + m * N + n] = sum;
      }
  });
}

// dst (dense, dims [broadcast batch..., a.rows, b.cols]) = a x b. Operands have equal ranks >= 2;
// a batch dim of 1 broadcasts.
class MatmulPlan {
 public:
  MatmulPlan(MatDesc a, MatDesc b, DType compute) : a_(std::move(a)), b_(std::move(b)), compute_(compute) {
    const size_t r = a_.dims.size();
    DERMAL_ASSERT(r >= 2 && b_.dims.size() == r && a_.dims[r - 1] == b_.dims[r - 2]);
    for (size_t d = 0; d + 2 < r; ++d) dst_.push_back(a_.dims[d] == 1 ? b_.dims[d] : a_.dims[d]);
    dst_.push_back(a_.dims[r - 2]);
    dst_.push_back(b_.dims[r - 1]);
    if (compute == DType::f32 && shape_numel(dst_) > 0 && a_.dims[r - 1] > 0) make_primitive();
  }

  const Shape& dst_dims() const { return dst_; }

  void run(const void* a, const void* b, void* dst) const {
    if (shape_numel(dst_) == 0) return;
    if (primitive_) {
      using namespace dnnl_util;
      dnnl::primitive p = *primitive_;
      execute(p, {{DNNL_ARG_SRC, memory(a_md_, const_cast<void*>(a))},
                  {DNNL_ARG_WEIGHTS, memory(b_md_, const_cast<void*>(b))},
                  {DNNL_ARG_DST, memory(dst_md_, dst)}});
      return;
    }
    dispatch_float(compute_, [&](auto t) {
      using T = decltype(t);
      matmul_reference<T>(a_, b_, dst_, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(dst));
    });
  }

 private:
  static dnnl::memory::desc md(const MatDesc& m) {
    return dnnl::memory::desc(dnnl_util::dims(m.dims), dnnl::memory::data_type::f32,
                              dnnl::memory::dims(m.strides.begin(), m.strides.end()));
  }

  void make_primitive() {
    try {
      a_md_ = md(a_);
      b_md_ = md(b_);
      dst_md_ = md(dense(dst_));
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md_, b_md_, dst_md_), dnnl_util::cpu_engine());
      primitive_ = dnnl::matmul(pd);
    } catch (const dnnl::error&) {
      primitive_.reset();  // a form oneDNN does not take: the loops still give the right answer
    }
  }

  MatDesc a_, b_;
  DType compute_;
  Shape dst_;
  dnnl::memory::desc a_md_, b_md_, dst_md_;
  std::optional<dnnl::matmul> primitive_;
};

// dst (dst_dims: full's rank, 1 where summed) = full summed over the dims dst does not have.
void sum_into(const Tensor& full, const Tensor& dst, const Shape& dst_dims) {
  dispatch_float(full.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* pf = full.data<T>();
    T* pd = dst.data<T>();
    dst.fill_zero();
    std::vector<int64_t> ds = plain_strides(dst_dims);
    for (size_t d = 0; d < ds.size(); ++d)
      if (dst_dims[d] == 1) ds[d] = 0;
    for_each_offset(full.shape(), plain_strides(full.shape()), ds, {},
                    [&](int64_t of, int64_t od, int64_t) { pd[od] += pf[of]; });
  });
}

// Runs plan into dst, whose memory holds dst_dims (the plan's dims, or fewer where broadcast).
void run_reduced(const MatmulPlan& plan, const void* a, const void* b, const Tensor& dst, const Shape& dst_dims) {
  if (plan.dst_dims() == dst_dims) return plan.run(a, b, dst.raw());
  Tensor full = Tensor::zeros(dst.dtype(), plan.dst_dims());
  plan.run(a, b, full.raw());
  sum_into(full, dst, dst_dims);
}

void scale(const Tensor& t, double s) {
  if (s == 1.0) return;
  dispatch_float(t.dtype(), [&](auto v) {
    using T = decltype(v);
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= static_cast<T>(s);
  });
}

Shape pad_front(const Shape& s, size_t rank) {
  Shape out(rank - s.size(), 1);
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

void check_float(const std::vector<TensorInfo>& in, const OpContext& ctx) {
  for (const auto& t : in)
    if (t.dtype != DType::f32 && t.dtype != DType::f64)
      ctx.fail(ErrorKind::unsupported, std::string("dtype ") + dtype_name(t.dtype) + " is not supported");
  if (in.size() >= 2 && in[0].dtype != in[1].dtype) ctx.fail(ErrorKind::invalid_model, "A and B have different dtypes");
}

// ---- MatMul ----

// A constant 2-D operand whose non-zeros lie in short runs: an interpolation matrix (a resize
// exported as two MatMuls, as tools/train/pretrained/ensemble.py does) is a band a few taps
// wide. Dense, oneDNN multiplies every zero (the bundled model's two: 0.58 and 0.44 ms of its
// 33); here only the runs are read. Right (X x C, C [K, N]): per output column n, the run of k
// where C[k, n] != 0. Left (C x X, C [M, K]): per output row m, the run of k where C[m, k] != 0.
// Only when the runs hold at most an eighth of the matrix. Sums run over k in order, as the
// reference loops do; skipping exact zeros changes no sum.
class BandedConstant {
 public:
  static std::optional<BandedConstant> of(const Tensor& c, bool right) {
    if (c.rank() != 2 || c.dtype() != DType::f32 || c.numel() == 0) return std::nullopt;
    const int64_t rows = c.dim(0), cols = c.dim(1);
    const float* v = c.data<float>();
    BandedConstant b;
    b.right_ = right;
    b.inner_ = right ? rows : cols;                  // K
    const int64_t outer = right ? cols : rows;       // N (right) or M (left)
    auto at = [&](int64_t o, int64_t k) { return right ? v[k * cols + o] : v[o * cols + k]; };
    int64_t kept = 0;
    for (int64_t o = 0; o < outer; ++o) {
      int64_t lo = 0, hi = -1;
      for (int64_t k = 0; k < b.inner_; ++k)
        if (at(o, k) != 0.0f) {
          if (hi < 0) lo = k;
          hi = k;
        }
      b.start_.push_back(lo);
      b.offset_.push_back(static_cast<int64_t>(b.values_.size()));
      for (int64_t k = lo; k <= hi; ++k) b.values_.push_back(at(o, k));
      kept += hi - lo + 1;
    }
    b.offset_.push_back(static_cast<int64_t>(b.values_.size()));
    if (kept * 8 > rows * cols) return std::nullopt;
    return b;
  }

  // x: the other operand, dense [batch..., M, K] (right) or [batch..., K, N] (left), f32.
  void run(const Tensor& x, const Tensor& y) const {
    if (y.numel() == 0) return;
    const float* px = x.data<float>();
    float* py = y.data<float>();
    const int64_t outer = static_cast<int64_t>(start_.size());
    if (right_) {  // y[r, n] = sum over the run of x[r, k] C[k, n]
      const int64_t rows = x.numel() / inner_;
#pragma omp parallel for
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t n = 0; n < outer; ++n) {
          const float* w = values_.data() + offset_[n];
          const float* xr = px + r * inner_ + start_[n];
          float sum = 0;
          for (int64_t t = 0, taps = offset_[n + 1] - offset_[n]; t < taps; ++t) sum += xr[t] * w[t];
          py[r * outer + n] = sum;
        }
      return;
    }
    // y[b, m, :] = sum over the run of C[m, k] x[b, k, :]
    const int64_t cols = x.dim(-1), batches = x.numel() / (inner_ * cols);
#pragma omp parallel for collapse(2)
    for (int64_t b = 0; b < batches; ++b)
      for (int64_t m = 0; m < outer; ++m) {
        float* yr = py + (b * outer + m) * cols;
        std::fill(yr, yr + cols, 0.0f);
        for (int64_t t = 0, taps = offset_[m + 1] - offset_[m]; t < taps; ++t) {
          const float w = values_[offset_[m] + t];
          const float* xr = px + (b * inner_ + start_[m] + t) * cols;
          for (int64_t n = 0; n < cols; ++n) yr[n] += w * xr[n];
        }
      }
  }

  bool right() const { return right_; }

 private:
  bool right_ = true;
  int64_t inner_ = 0;
  std::vector<int64_t> start_, offset_;  // per output column (row): first k of its run; where its values begin
  std::vector<float> values_;
};

// A and B promoted to rank >= 2 and padded to one rank; the output as computed (before the
// promoted dims are dropped).
struct MatMulShapes {
  Shape a, b, out;
};

MatMulShapes matmul_shapes(const Shape& a, const Shape& b, const OpContext& ctx) {
  if (a.empty() || b.empty()) ctx.fail(ErrorKind::invalid_model, "MatMul inputs must have rank >= 1");
  Shape a2 = a.size() == 1 ? Shape{1, a[0]} : a;
  Shape b2 = b.size() == 1 ? Shape{b[0], 1} : b;
  if (a2.back() != b2[b2.size() - 2])
    ctx.fail(ErrorKind::invalid_model, "inner dims differ: " + shape_str(a) + " x " + shape_str(b));
  Shape batch = broadcast_shapes(Shape(a2.begin(), a2.end() - 2), Shape(b2.begin(), b2.end() - 2), ctx);
  const size_t r = batch.size() + 2;
  MatMulShapes s{pad_front(a2, r), pad_front(b2, r), batch};
  s.out.push_back(a2[a2.size() - 2]);
  s.out.push_back(b2.back());
  return s;
}

class MatMulKernel : public Kernel {
 public:
  MatMulKernel(MatMulShapes s, DType compute, std::optional<BandedConstant> banded)
      : s_(std::move(s)), compute_(compute), forward_(dense(s_.a), dense(s_.b), compute), banded_(std::move(banded)) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    if (banded_) return banded_->run(in[banded_->right() ? 0 : 1], out[0]);
    forward_.run(in[0].raw(), in[1].raw(), out[0].raw());
  }

  std::string algorithm() const override { return banded_ ? "banded" : ""; }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    for (size_t i = 0; i < 2; ++i)
      if (d_in[i].defined() && !d_out[0].defined()) d_in[i].fill_zero();
    if (!d_out[0].defined()) return;
    const void* dy = d_out[0].raw();
    if (d_in[0].defined()) {  // dA = dY x B^T
      if (!d_a_) d_a_.emplace(dense(s_.out), transposed(dense(s_.b)), compute_);
      run_reduced(*d_a_, dy, in[1].raw(), d_in[0], s_.a);
    }
    if (d_in[1].defined()) {  // dB = A^T x dY
      if (!d_b_) d_b_.emplace(transposed(dense(s_.a)), dense(s_.out), compute_);
      run_reduced(*d_b_, in[0].raw(), dy, d_in[1], s_.b);
    }
  }

 private:
  MatMulShapes s_;
  DType compute_;
  MatmulPlan forward_;
  std::optional<BandedConstant> banded_;  // forward only: backward runs the dense products
  std::optional<MatmulPlan> d_a_, d_b_;
};

class MatMulOp : public Op {
 public:
  using Op::Op;

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    if (in.size() != 2) ctx_.fail(ErrorKind::invalid_model, "expects 2 inputs");
    check_float(in, ctx_);
    MatMulShapes s = matmul_shapes(in[0].shape, in[1].shape, ctx_);
    // Drop the dims that 1-D operands were promoted with.
    Shape out(s.out.begin(), s.out.end() - 2);
    if (in[0].shape.size() > 1) out.push_back(s.out[s.out.size() - 2]);
    if (in[1].shape.size() > 1) out.push_back(s.out.back());
    return {{in[0].dtype, out}};
  }

  bool differentiable(size_t input) const override { return input < 2; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts = {Layout::plain};
    MatMulShapes s = matmul_shapes(cfg.inputs[0].shape, cfg.inputs[1].shape, ctx_);
    // A constant 2-D operand, the other one not: broadcast over the other's batch dims.
    std::optional<BandedConstant> banded;
    auto known = [&](size_t i) { return i < cfg.known.size() ? cfg.known[i] : nullptr; };
    if (cfg.compute == DType::f32 && known(0) == nullptr && known(1) && cfg.inputs[0].shape.size() >= 2)
      banded = BandedConstant::of(*known(1), true);
    else if (cfg.compute == DType::f32 && known(1) == nullptr && known(0) && cfg.inputs[1].shape.size() >= 2)
      banded = BandedConstant::of(*known(0), false);
    return std::make_unique<MatMulKernel>(std::move(s), cfg.compute, std::move(banded));
  }
};

// ---- Gemm ----

struct GemmParams {
  double alpha = 1, beta = 1;
  bool trans_a = false, trans_b = false;
};

class GemmKernel : public Kernel {
 public:
  GemmKernel(const GemmParams& p, const Shape& a, const Shape& b, const Shape& c, DType compute)
      : p_(p), compute_(compute), a_(op_view(a, p.trans_a)), b_(op_view(b, p.trans_b)),
        dy_(dense({a_.dims[0], b_.dims[1]})), c_(c), forward_(a_, b_, compute) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    const Tensor& y = out[0];
    forward_.run(in[0].raw(), in[1].raw(), y.raw());
    const bool has_c = in.size() > 2 && in[2].defined();
    if (p_.alpha == 1.0 && !has_c) return;
    dispatch_float(y.dtype(), [&](auto t) {
      using T = decltype(t);
      T* py = y.data<T>();
      const T alpha = static_cast<T>(p_.alpha), beta = static_cast<T>(p_.beta);
      if (!has_c) {
        for (int64_t i = 0; i < y.numel(); ++i) py[i] *= alpha;
        return;
      }
      const T* pc = in[2].data<T>();
      for_each_offset(y.shape(), y.strides(), broadcast_strides(in[2], y.shape()), {},
                      [&](int64_t oy, int64_t oc, int64_t) { py[oy] = alpha * py[oy] + beta * pc[oc]; });
    });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_out[0].defined()) {
      for (const Tensor& d : d_in)
        if (d.defined()) d.fill_zero();
      return;
    }
    const void* dy = d_out[0].raw();
    if (d_in[0].defined()) {
      // d op(A) = alpha dY op(B)^T; for transA, A's gradient is its transpose: op(B) dY^T.
      if (!d_a_) d_a_.emplace(p_.trans_a ? MatmulPlan(b_, transposed(dy_), compute_) : MatmulPlan(dy_, transposed(b_), compute_));
      if (p_.trans_a) d_a_->run(in[1].raw(), dy, d_in[0].raw());
      else d_a_->run(dy, in[1].raw(), d_in[0].raw());
      scale(d_in[0], p_.alpha);
    }
    if (d_in[1].defined()) {
      // d op(B) = alpha op(A)^T dY; for transB: dY^T op(A).
      if (!d_b_) d_b_.emplace(p_.trans_b ? MatmulPlan(transposed(dy_), a_, compute_) : MatmulPlan(transposed(a_), dy_, compute_));
      if (p_.trans_b) d_b_->run(dy, in[0].raw(), d_in[1].raw());
      else d_b_->run(in[0].raw(), dy, d_in[1].raw());
      scale(d_in[1], p_.alpha);
    }
    if (d_in.size() > 2 && d_in[2].defined()) {
      sum_into(d_out[0], d_in[2], pad_front(c_, 2));
      scale(d_in[2], p_.beta);
    }
  }

 private:
  static MatDesc op_view(const Shape& s, bool trans) { return trans ? transposed(dense(s)) : dense(s); }

  GemmParams p_;
  DType compute_;
  MatDesc a_, b_, dy_;  // op(A) [M,K], op(B) [K,N], dY [M,N]
  Shape c_;
  MatmulPlan forward_;
  std::optional<MatmulPlan> d_a_, d_b_;
};

class GemmOp : public Op {
 public:
  GemmOp(const OpContext& ctx, GemmParams p) : Op(ctx), p_(p) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    if (in.size() < 2 || in.size() > 3) ctx_.fail(ErrorKind::invalid_model, "expects 2 or 3 inputs");
    check_float(in, ctx_);
    const Shape &a = in[0].shape, &b = in[1].shape;
    if (a.size() != 2 || b.size() != 2)
      ctx_.fail(ErrorKind::invalid_model, "A " + shape_str(a) + " and B " + shape_str(b) + " must be 2-D");
    const int64_t M = p_.trans_a ? a[1] : a[0], K = p_.trans_a ? a[0] : a[1];
    const int64_t Kb = p_.trans_b ? b[1] : b[0], N = p_.trans_b ? b[0] : b[1];
    if (K != Kb)
      ctx_.fail(ErrorKind::invalid_model, "inner dims differ: A " + shape_str(a) + (p_.trans_a ? " (transposed)" : "") +
                                              ", B " + shape_str(b) + (p_.trans_b ? " (transposed)" : ""));
    if (in.size() == 3 && in[2].dtype != in[0].dtype && !in[2].shape.empty())
      ctx_.fail(ErrorKind::invalid_model, "C has another dtype than A");
    Shape y{M, N};
    if (in.size() == 3 && !c_broadcasts(in[2].shape, y))
      ctx_.fail(ErrorKind::invalid_model, "C " + shape_str(in[2].shape) + " does not broadcast to " + shape_str(y));
    return {{in[0].dtype, y}};
  }

  bool differentiable(size_t input) const override { return input < 3; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts = {Layout::plain};
    const bool has_c = cfg.inputs.size() > 2 && cfg.present.size() > 2 && cfg.present[2];
    return std::make_unique<GemmKernel>(p_, cfg.inputs[0].shape, cfg.inputs[1].shape,
                                        has_c ? cfg.inputs[2].shape : Shape{}, cfg.compute);
  }

 private:
  // Unidirectional: C's dims, right-aligned, are 1 or equal to Y's.
  static bool c_broadcasts(const Shape& c, const Shape& y) {
    if (c.size() > 2) return false;
    for (size_t i = 0; i < c.size(); ++i)
      if (c[i] != 1 && c[i] != y[2 - c.size() + i]) return false;
    return true;
  }

  GemmParams p_;
};

std::unique_ptr<Op> make_gemm(const Attributes& attrs, const OpContext& ctx) {
  if (attrs.has("broadcast"))
    ctx.fail(ErrorKind::unsupported, "attribute 'broadcast' (opset < 7) is not supported; re-export with opset 7 or later");
  // C became optional in opset 11.
  const size_t min_inputs = ctx.opset < 11 ? 3 : 2;
  if (ctx.num_inputs < min_inputs || ctx.num_inputs > 3)
    ctx.fail(ErrorKind::invalid_model, "expects " + std::to_string(min_inputs) + " to 3 inputs, got " +
                                           std::to_string(ctx.num_inputs));
  GemmParams p;
  p.alpha = attrs.get_float("alpha", 1.0);
  p.beta = attrs.get_float("beta", 1.0);
  p.trans_a = attrs.get_int("transA", 0) != 0;
  p.trans_b = attrs.get_int("transB", 0) != 0;
  return std::make_unique<GemmOp>(ctx, p);
}

std::unique_ptr<Op> make_matmul(const Attributes&, const OpContext& ctx) {
  if (ctx.num_inputs != 2) ctx.fail(ErrorKind::invalid_model, "expects 2 inputs");
  return std::make_unique<MatMulOp>(ctx);
}

}  // namespace

DERMAL_REGISTER_OP("Gemm", make_gemm);
DERMAL_REGISTER_OP("MatMul", make_matmul);

}  // namespace dermal::engine::ops
