// Pooling: MaxPool and AveragePool (2-D, and 1-D run as 2-D with a height of 1), GlobalMaxPool
// and GlobalAveragePool. f32 runs oneDNN's pooling in the input's layout wherever it computes
// exactly ONNX's result, else the plain loops; f64 always runs the plain loops.
// Window rules, as ONNX's reference and PyTorch:
//  - ceil_mode keeps a last partial window only if it starts inside the input or the left pad;
//  - count_include_pad divides by the window clipped to input + explicit pads, so the extra
//    right padding that ceil_mode adds is never counted.
#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "engine/dnnl_util.h"
#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

enum class PoolKind { max, avg };
enum class AutoPad { notset, same_upper, same_lower, valid };

struct PoolAttrs {
  PoolKind kind = PoolKind::max;
  std::vector<int64_t> kernel, strides, dilations;
  std::vector<int64_t> pads;  // ONNX order: all begins, then all ends
  AutoPad auto_pad = AutoPad::notset;
  bool ceil_mode = false;
  bool count_include_pad = false;
  size_t spatial() const { return kernel.size(); }
};

// One spatial axis for a concrete input size. Output o's window starts at o * stride - pad_begin
// and has `kernel` taps, `dilation` apart.
struct Axis {
  int64_t in = 1, out = 1, kernel = 1, stride = 1, dilation = 1, pad_begin = 0, pad_end = 0;
  int64_t extent() const { return (kernel - 1) * dilation + 1; }
  int64_t start(int64_t o) const { return o * stride - pad_begin; }
  // How far the last window reaches past the input (ceil_mode may reach beyond pad_end).
  int64_t reach_end() const { return start(out - 1) + extent() - in; }
  // count_include_pad divisor along this axis (avg has no dilation).
  int64_t padded_count(int64_t o) const { return std::min(start(o) + extent(), in + pad_end) - start(o); }
  int64_t valid_count(int64_t o) const {
    int64_t n = 0;
    for (int64_t k = 0; k < kernel; ++k) n += start(o) + k * dilation >= 0 && start(o) + k * dilation < in;
    return n;
  }
};

Axis make_axis(const PoolAttrs& a, size_t d, int64_t in, const OpContext& ctx) {
  Axis ax{in, 0, a.kernel[d], a.strides[d], a.dilations[d], 0, 0};
  const int64_t ext = ax.extent();
  if (a.auto_pad == AutoPad::notset) {
    ax.pad_begin = a.pads[d];
    ax.pad_end = a.pads[d + a.spatial()];
    const int64_t span = in + ax.pad_begin + ax.pad_end - ext;
    if (span < 0)
      ctx.fail(ErrorKind::invalid_input, "the padded input (" + std::to_string(in + ax.pad_begin + ax.pad_end) +
                                             ") is smaller than the kernel window (" + std::to_string(ext) + ")");
    ax.out = (a.ceil_mode ? (span + ax.stride - 1) / ax.stride : span / ax.stride) + 1;
    if (a.ceil_mode && ax.start(ax.out - 1) >= in) --ax.out;  // a window starting in the right pad is dropped
  } else if (a.auto_pad == AutoPad::valid) {
    if (in < ext)
      ctx.fail(ErrorKind::invalid_input, "input size " + std::to_string(in) + " is smaller than the kernel window (" +
                                             std::to_string(ext) + ") with auto_pad VALID");
    ax.out = (in - ext) / ax.stride + 1;
  } else {  // SAME_UPPER / SAME_LOWER: out = ceil(in / stride); the odd pad goes to the end / begin
    ax.out = (in + ax.stride - 1) / ax.stride;
    const int64_t total = std::max<int64_t>(0, (ax.out - 1) * ax.stride + ext - in);
    ax.pad_begin = a.auto_pad == AutoPad::same_upper ? total / 2 : total - total / 2;
    ax.pad_end = total - ax.pad_begin;
  }
  return ax;
}

// Everything is run as 2-D: a 1-D pooling gets a unit height axis.
struct Geometry {
  int64_t n = 0, c = 0;
  Axis h, w;
  Shape in4() const { return {n, c, h.in, w.in}; }
  Shape out4() const { return {n, c, h.out, w.out}; }
};

Geometry make_geometry(const PoolAttrs& a, const Shape& in, const OpContext& ctx) {
  if (in.size() != a.spatial() + 2)
    ctx.fail(ErrorKind::invalid_model, "input " + shape_str(in) + " does not match a kernel_shape of " +
                                           std::to_string(a.spatial()) + " dims");
  Geometry g;
  g.n = in[0];
  g.c = in[1];
  if (a.spatial() == 2) g.h = make_axis(a, 0, in[2], ctx);
  g.w = make_axis(a, a.spatial() - 1, in.back(), ctx);
  return g;
}

// A rank-3 tensor seen as [N, C, 1, L] (rank 3 is always plain).
Tensor as_4d(const Tensor& t) {
  if (t.rank() == 4) return t;
  Shape s = t.shape();
  s.insert(s.begin() + 2, 1);
  return Tensor::view(t.dtype(), s, t.raw(), t.layout());
}

// Calls fn(offset in the (n, c) plane) for each tap of window (oh, ow) inside the input.
template <class Fn>
void for_each_tap(const Geometry& g, const std::vector<int64_t>& xs, int64_t oh, int64_t ow, Fn&& fn) {
  for (int64_t kh = 0; kh < g.h.kernel; ++kh) {
    const int64_t ih = g.h.start(oh) + kh * g.h.dilation;
    if (ih < 0 || ih >= g.h.in) continue;
    for (int64_t kw = 0; kw < g.w.kernel; ++kw) {
      const int64_t iw = g.w.start(ow) + kw * g.w.dilation;
      if (iw >= 0 && iw < g.w.in) fn(ih * xs[2] + iw * xs[3]);
    }
  }
}

// The first maximal tap (as PyTorch; NaN wins), or -1 for a window with no input in it.
template <class T>
int64_t window_argmax(const T* plane, const Geometry& g, const std::vector<int64_t>& xs, int64_t oh, int64_t ow) {
  int64_t best = -1;
  for_each_tap(g, xs, oh, ow, [&](int64_t off) {
    if (best < 0 || plane[off] > plane[best] || std::isnan(plane[off])) best = off;
  });
  return best;
}

int64_t avg_divisor(const PoolAttrs& a, const Geometry& g, int64_t oh, int64_t ow) {
  if (a.count_include_pad) return g.h.padded_count(oh) * g.w.padded_count(ow);
  return g.h.valid_count(oh) * g.w.valid_count(ow);
}

// Plain loops over any layout. Forward (dy4, dx4 null): x -> y. Backward: dy -> dx (max reads x).
template <class T>
void pool_reference(const PoolAttrs& a, const Geometry& g, const Tensor& x4, const Tensor& y4, const Tensor* dy4,
                    const Tensor* dx4) {
  const auto xs = x4.strides(), ys = y4.strides();
  const T* x = x4.data<T>();
  T* y = dx4 ? nullptr : y4.data<T>();
  const T* dy = dx4 ? dy4->data<T>() : nullptr;
  T* dx = dx4 ? dx4->data<T>() : nullptr;
  if (dx4) dx4->fill_zero();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t in_base = n * xs[0] + c * xs[1];
      const T* plane = x + in_base;
      for (int64_t oh = 0; oh < g.h.out; ++oh)
        for (int64_t ow = 0; ow < g.w.out; ++ow) {
          const int64_t out_off = n * ys[0] + c * ys[1] + oh * ys[2] + ow * ys[3];
          if (a.kind == PoolKind::max) {
            const int64_t best = window_argmax(plane, g, xs, oh, ow);
            if (dx && best >= 0) dx[in_base + best] += dy[out_off];
            if (y) y[out_off] = best >= 0 ? plane[best] : -std::numeric_limits<T>::infinity();
            continue;
          }
          const int64_t count = avg_divisor(a, g, oh, ow);
          if (dx) {
            if (count == 0) continue;
            const T share = dy[out_off] / static_cast<T>(count);
            for_each_tap(g, xs, oh, ow, [&](int64_t off) { dx[in_base + off] += share; });
          } else {
            double sum = 0;
            for_each_tap(g, xs, oh, ow, [&](int64_t off) { sum += plane[off]; });
            y[out_off] = static_cast<T>(count ? sum / count : 0.0);
          }
        }
    }
}

class ReferencePoolKernel : public Kernel {
 public:
  // fallback: why oneDNN could not take this f32 case (empty for f64 and for cases it cannot be exact on)
  ReferencePoolKernel(PoolAttrs a, Geometry g, std::string fallback = {})
      : a_(std::move(a)), g_(g), fallback_(std::move(fallback)) {}
  std::string fallback_reason() const override { return fallback_; }

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    dispatch_float(in[0].dtype(), [&](auto t) {
      pool_reference<decltype(t)>(a_, g_, as_4d(in[0]), as_4d(out[0]), nullptr, nullptr);
    });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    const Tensor dy = as_4d(d_out[0]), dx = as_4d(d_in[0]);
    dispatch_float(in[0].dtype(), [&](auto t) {
      pool_reference<decltype(t)>(a_, g_, as_4d(in[0]), as_4d(out[0]), &dy, &dx);
    });
  }

 private:
  PoolAttrs a_;
  Geometry g_;
  std::string fallback_;
};

// oneDNN pooling, forward and backward, in the input's layout. Max pooling's backward reads the
// argmax workspace of the last forward; if backward comes for other input data, forward reruns.
class DnnlPoolKernel : public Kernel {
 public:
  DnnlPoolKernel(const PoolAttrs& a, const Geometry& g, Layout layout)
      : in_md_(dnnl_util::desc(g.in4(), layout)), out_md_(dnnl_util::desc(g.out4(), layout)) {
    const dnnl::algorithm alg = a.kind == PoolKind::max ? dnnl::algorithm::pooling_max
                                : a.count_include_pad   ? dnnl::algorithm::pooling_avg_include_padding
                                                        : dnnl::algorithm::pooling_avg_exclude_padding;
    const dnnl::memory::dims strides{g.h.stride, g.w.stride}, kernel{g.h.kernel, g.w.kernel},
        dilation{g.h.dilation - 1, g.w.dilation - 1}, pad_l{g.h.pad_begin, g.w.pad_begin},
        pad_r{std::max<int64_t>(0, g.h.reach_end()), std::max<int64_t>(0, g.w.reach_end())};
    auto& eng = dnnl_util::cpu_engine();
    fwd_pd_ = dnnl::pooling_v2_forward::primitive_desc(
        {dnnl::prop_kind::forward_training, alg, in_md_, out_md_, strides, kernel, dilation, pad_l, pad_r}, eng);
    bwd_pd_ = dnnl::pooling_v2_backward::primitive_desc(
        {alg, in_md_, out_md_, strides, kernel, dilation, pad_l, pad_r}, eng, fwd_pd_);
    fwd_ = dnnl::pooling_v2_forward(fwd_pd_);
    bwd_ = dnnl::pooling_v2_backward(bwd_pd_);
    if (a.kind == PoolKind::max) workspace_ = dnnl::memory(fwd_pd_.workspace_desc(), eng);
  }

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    run_forward(in[0], out[0].raw());
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DIFF_DST, dnnl_util::memory(out_md_, d_out[0].raw())},
                                               {DNNL_ARG_DIFF_SRC, dnnl_util::memory(in_md_, d_in[0].raw())}};
    if (workspace_) {
      if (workspace_src_ != in[0].raw()) {
        Tensor scratch = Tensor::zeros(DType::f32, {static_cast<int64_t>(out_md_.get_size() / sizeof(float))});
        run_forward(in[0], scratch.raw());
      }
      args.emplace(DNNL_ARG_WORKSPACE, workspace_);
    }
    dnnl_util::execute(bwd_, args);
  }

 private:
  void run_forward(const Tensor& x, void* y) {
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl_util::memory(in_md_, x.raw())},
                                               {DNNL_ARG_DST, dnnl_util::memory(out_md_, y)}};
    if (workspace_) args.emplace(DNNL_ARG_WORKSPACE, workspace_);
    dnnl_util::execute(fwd_, args);
    workspace_src_ = x.raw();
  }

  dnnl::memory::desc in_md_, out_md_;
  dnnl::pooling_v2_forward::primitive_desc fwd_pd_;
  dnnl::pooling_v2_backward::primitive_desc bwd_pd_;
  dnnl::pooling_v2_forward fwd_;
  dnnl::pooling_v2_backward bwd_;
  dnnl::memory workspace_;
  const void* workspace_src_ = nullptr;
};

void check_float(const std::vector<TensorInfo>& in, const OpContext& ctx) {
  if (in.empty() || (in[0].dtype != DType::f32 && in[0].dtype != DType::f64))
    ctx.fail(ErrorKind::unsupported, "needs one float input");
}

class PoolOp : public Op {
 public:
  PoolOp(const OpContext& ctx, PoolAttrs a) : Op(ctx), a_(std::move(a)) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    check_float(in, ctx_);
    const Geometry g = make_geometry(a_, in[0].shape, ctx_);
    Shape out = g.out4();
    if (a_.spatial() == 1) out.erase(out.begin() + 2);
    return {{in[0].dtype, out}};
  }
  bool accepts_nhwc(size_t i) const override { return i == 0; }
  bool wants_nhwc() const override { return true; }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    const Geometry g = make_geometry(a_, cfg.inputs[0].shape, ctx_);
    cfg.output_layouts = {cfg.input_layouts[0]};
    // oneDNN's include-padding average always divides by the whole kernel: exact only while no
    // window reaches past the explicit end pads.
    const bool dnnl_exact = a_.kind == PoolKind::max || !a_.count_include_pad ||
                            (g.h.reach_end() <= g.h.pad_end && g.w.reach_end() <= g.w.pad_end);
    if (cfg.compute == DType::f32 && dnnl_exact) {
      try {
        return std::make_unique<DnnlPoolKernel>(a_, g, cfg.input_layouts[0]);
      } catch (const dnnl::error& e) {
        // a case this oneDNN build does not implement: the plain loops compute it, and say so
        return std::make_unique<ReferencePoolKernel>(a_, g, std::string("oneDNN refused the pooling (") + e.what() +
                                                                "); plain loops");
      }
    }
    return std::make_unique<ReferencePoolKernel>(a_, g);
  }

 private:
  PoolAttrs a_;
};

// A global pool's forward over channels-last data: the positions outer and the channels inner,
// so every read is contiguous (one channel's values lie C apart: a loop per channel strides
// through the whole tensor C times). The same sums in the same order as global_pool's.
template <class T>
void global_pool_nhwc(PoolKind kind, const Tensor& x, const Tensor& y) {
  const int64_t n_count = x.dim(0), c_count = x.dim(1), size = x.numel() / std::max<int64_t>(1, n_count * c_count);
  const auto ys = y.strides();
  const T* xp = x.data<T>();
  std::vector<double> sum(static_cast<size_t>(c_count));
  std::vector<T> best(static_cast<size_t>(c_count));
  for (int64_t n = 0; n < n_count; ++n) {
    const T* image = xp + n * size * c_count;
    std::fill(sum.begin(), sum.end(), 0.0);
    if (size) std::copy(image, image + c_count, best.begin());
    for (int64_t s = 0; s < size; ++s) {
      const T* row = image + s * c_count;
      if (kind == PoolKind::avg) {
        for (int64_t c = 0; c < c_count; ++c) sum[c] += row[c];
      } else {
        // The first NaN wins, as in global_pool.
        for (int64_t c = 0; c < c_count; ++c)
          if (row[c] > best[c] || (std::isnan(row[c]) && !std::isnan(best[c]))) best[c] = row[c];
      }
    }
    for (int64_t c = 0; c < c_count; ++c)
      y.data<T>()[n * ys[0] + c * ys[1]] = kind == PoolKind::max ? best[c] : static_cast<T>(sum[c] / size);
  }
}

// Global pools: one value per (n, c) over all spatial positions, in the input's layout.
template <class T>
void global_pool(PoolKind kind, const Tensor& x, const Tensor& y, const Tensor* dy, const Tensor* dx) {
  if (!dx && x.layout() == Layout::nhwc) return global_pool_nhwc<T>(kind, x, y);
  const int64_t n_count = x.dim(0), c_count = x.dim(1), size = x.numel() / std::max<int64_t>(1, n_count * c_count);
  const auto xs = x.strides(), ys = y.strides();
  const int64_t step = x.layout() == Layout::nhwc ? c_count : 1;  // between spatial positions
  const T* xp = x.data<T>();
  for (int64_t n = 0; n < n_count; ++n)
    for (int64_t c = 0; c < c_count; ++c) {
      const T* plane = xp + n * xs[0] + c * xs[1];
      const int64_t out_off = n * ys[0] + c * ys[1];
      int64_t best = 0;
      double sum = 0;
      for (int64_t s = 0; s < size; ++s) {
        const T v = plane[s * step];
        sum += v;
        if (v > plane[best * step] || (std::isnan(v) && !std::isnan(plane[best * step]))) best = s;
      }
      if (!dx) {
        y.data<T>()[out_off] = kind == PoolKind::max ? plane[best * step] : static_cast<T>(sum / size);
        continue;
      }
      T* dplane = dx->data<T>() + n * xs[0] + c * xs[1];
      const T g = dy->data<T>()[out_off];
      for (int64_t s = 0; s < size; ++s)
        dplane[s * step] = kind == PoolKind::max ? (s == best ? g : T(0)) : g / static_cast<T>(size);
    }
}

class GlobalPoolKernel : public Kernel {
 public:
  explicit GlobalPoolKernel(PoolKind kind) : kind_(kind) {}
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    dispatch_float(in[0].dtype(), [&](auto t) { global_pool<decltype(t)>(kind_, in[0], out[0], nullptr, nullptr); });
  }
  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    if (!d_out[0].defined()) return d_in[0].fill_zero();
    dispatch_float(in[0].dtype(), [&](auto t) { global_pool<decltype(t)>(kind_, in[0], out[0], &d_out[0], &d_in[0]); });
  }

 private:
  PoolKind kind_;
};

class GlobalPoolOp : public Op {
 public:
  GlobalPoolOp(const OpContext& ctx, PoolKind kind) : Op(ctx), kind_(kind) {}
  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>&) const override {
    check_float(in, ctx_);
    if (in[0].shape.size() < 3) ctx_.fail(ErrorKind::invalid_model, "needs an input of rank 3 or more, got " + shape_str(in[0].shape));
    Shape out(in[0].shape.size(), 1);
    out[0] = in[0].shape[0];
    out[1] = in[0].shape[1];
    return {{in[0].dtype, out}};
  }
  bool accepts_nhwc(size_t i) const override { return i == 0; }
  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    cfg.output_layouts = {cfg.input_layouts[0]};
    return std::make_unique<GlobalPoolKernel>(kind_);
  }

 private:
  PoolKind kind_;
};

std::string list_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

PoolAttrs read_pool_attrs(PoolKind kind, const Attributes& attrs, const OpContext& ctx) {
  PoolAttrs a;
  a.kind = kind;
  auto kernel = attrs.find_ints("kernel_shape");
  if (!kernel) ctx.fail(ErrorKind::invalid_model, "kernel_shape is required");
  a.kernel = *kernel;
  const size_t nd = a.kernel.size();
  if (nd != 1 && nd != 2)
    ctx.fail(ErrorKind::unsupported, "only 1-D and 2-D pooling are supported, kernel_shape is " + list_str(a.kernel));
  const std::vector<int64_t> ones(nd, 1);
  a.strides = attrs.get_ints("strides", ones);
  a.pads = attrs.get_ints("pads", std::vector<int64_t>(2 * nd, 0));
  if (kind == PoolKind::max) {
    a.dilations = attrs.get_ints("dilations", ones);
    if (attrs.get_int("storage_order", 0) != 0) ctx.fail(ErrorKind::unsupported, "storage_order 1 is not supported");
  } else {
    // AveragePool's dilations only exist from opset 19.
    if (attrs.get_ints("dilations", ones) != ones) ctx.fail(ErrorKind::unsupported, "AveragePool dilations are not supported");
    a.dilations = ones;
    a.count_include_pad = attrs.get_int("count_include_pad", 0) != 0;
  }
  a.ceil_mode = attrs.get_int("ceil_mode", 0) != 0;
  const std::string auto_pad = attrs.get_string("auto_pad", "NOTSET");
  if (auto_pad == "SAME_UPPER") a.auto_pad = AutoPad::same_upper;
  else if (auto_pad == "SAME_LOWER") a.auto_pad = AutoPad::same_lower;
  else if (auto_pad == "VALID") a.auto_pad = AutoPad::valid;
  else if (auto_pad != "NOTSET") ctx.fail(ErrorKind::unsupported, "auto_pad '" + auto_pad + "' is not supported");

  if (a.strides.size() != nd || a.dilations.size() != nd || a.pads.size() != 2 * nd)
    ctx.fail(ErrorKind::invalid_model, "strides " + list_str(a.strides) + ", dilations " + list_str(a.dilations) +
                                           " or pads " + list_str(a.pads) + " do not match kernel_shape " + list_str(a.kernel));
  for (size_t d = 0; d < nd; ++d) {
    if (a.kernel[d] < 1 || a.strides[d] < 1 || a.dilations[d] < 1)
      ctx.fail(ErrorKind::invalid_model, "kernel_shape, strides and dilations must be positive");
    const int64_t extent = (a.kernel[d] - 1) * a.dilations[d] + 1;
    for (int64_t p : {a.pads[d], a.pads[d + nd]})
      if (p < 0 || p >= extent)
        ctx.fail(ErrorKind::unsupported, "pads " + list_str(a.pads) + " must be non-negative and smaller than the kernel window");
  }
  if (a.auto_pad != AutoPad::notset && a.pads != std::vector<int64_t>(2 * nd, 0))
    ctx.fail(ErrorKind::invalid_model, "pads " + list_str(a.pads) + " given together with auto_pad " + auto_pad);
  // The spec's output size for VALID with ceil_mode changed between ONNX releases.
  if (a.auto_pad == AutoPad::valid && a.ceil_mode)
    ctx.fail(ErrorKind::unsupported, "ceil_mode with auto_pad VALID is not supported");
  return a;
}

std::unique_ptr<Op> make_pool(PoolKind kind, const Attributes& attrs, const OpContext& ctx) {
  if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects exactly one input");
  if (kind == PoolKind::max && ctx.num_outputs > 1)
    ctx.fail(ErrorKind::unsupported, "the optional Indices output is not supported");
  if (ctx.num_outputs > 1) ctx.fail(ErrorKind::invalid_model, "expects exactly one output");
  return std::make_unique<PoolOp>(ctx, read_pool_attrs(kind, attrs, ctx));
}

std::unique_ptr<Op> make_global_pool(PoolKind kind, const OpContext& ctx) {
  if (ctx.num_inputs != 1) ctx.fail(ErrorKind::invalid_model, "expects exactly one input");
  return std::make_unique<GlobalPoolOp>(ctx, kind);
}

}  // namespace

DERMAL_REGISTER_OP("MaxPool", [](const Attributes& a, const OpContext& c) { return make_pool(PoolKind::max, a, c); });
DERMAL_REGISTER_OP("AveragePool", [](const Attributes& a, const OpContext& c) { return make_pool(PoolKind::avg, a, c); });
DERMAL_REGISTER_OP("GlobalMaxPool", [](const Attributes&, const OpContext& c) { return make_global_pool(PoolKind::max, c); });
DERMAL_REGISTER_OP("GlobalAveragePool", [](const Attributes&, const OpContext& c) { return make_global_pool(PoolKind::avg, c); });

}  // namespace dermal::engine::ops
