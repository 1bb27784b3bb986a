// Conv's kernels: the plain-loop reference (any geometry, any layout, f64 or f32) and the oneDNN
// kernel (f32, or bf16 with f32 sums). Each reads W and B either from constants (converted, or packed, once) or from
// its inputs on every call, so runtime weights are never cached.
#include "engine/ops/conv_kernels.h"

#include <array>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "engine/dnnl_util.h"
#include "engine/ops/op_util.h"

namespace dermal::engine::ops::conv_detail {

namespace {

// The block size when `wanted` (a format oneDNN chose for W) splits output channels (dim 0) into
// equal blocks, outermost, each stored whole in the bytes its plain rows take (Acdb64a,
// Abcde16a, ABcd16b16a...): then W can be packed in its own buffer, one block at a time. 0
// otherwise (padding, another dim outermost).
int64_t whole_row_block(const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted) {
  const dnnl_memory_desc_t& d = wanted.data;
  if (d.format_kind != dnnl_blocked || d.offset0 != 0 || wanted.get_size() != plain.get_size()) return 0;
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  int64_t block = 1, rest = 1;
  for (int i = 0; i < b.inner_nblks; ++i)
    if (b.inner_idxs[i] == 0) block *= b.inner_blks[i];
  for (int i = 0; i < d.ndims; ++i)
    if (d.padded_dims[i] != d.dims[i]) return 0;
  for (int i = 1; i < d.ndims; ++i) rest *= d.dims[i];
  return d.dims[0] % block == 0 && b.strides[0] == block * rest ? block : 0;
}

// Packs the plain W in `w` into `wanted` in place, block by block through a one-block copy, so
// that packing never holds the weights twice. False (w untouched) when `wanted` does not allow it.
bool pack_in_place(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted) {
  const int64_t block = whole_row_block(plain, wanted);
  if (!block) return false;
  dnnl::memory::dims dims = plain.dims();
  const int64_t blocks = dims[0] / block;
  dims[0] = block;
  const dnnl::memory::dims origin(dims.size(), 0);
  const dnnl::memory::desc from = plain.submemory_desc(dims, origin), to = wanted.submemory_desc(dims, origin);
  const size_t bytes = w.bytes() / static_cast<size_t>(blocks);
  auto& eng = dnnl_util::cpu_engine();
  dnnl::reorder reorder(dnnl::reorder::primitive_desc(eng, from, eng, to));
  Tensor scratch = Tensor::uninitialized(DType::f32, {static_cast<int64_t>(bytes / sizeof(float))});
  for (int64_t k = 0; k < blocks; ++k) {
    char* at = static_cast<char*>(w.raw()) + k * bytes;
    std::memcpy(scratch.raw(), at, bytes);
    dnnl_util::execute(reorder, {{DNNL_ARG_FROM, dnnl_util::memory(from, scratch.raw())}, {DNNL_ARG_TO, dnnl_util::memory(to, at)}});
  }
  return true;
}

// Winograd's transformed weights: oneDNN reorders into that format, never out of it.
bool one_way(const dnnl::memory::desc& md) { return md.data.format_kind == dnnl_format_kind_wino; }

}  // namespace

void PackedWeights::hold(Tensor w) {
  std::lock_guard<std::mutex> lock(mutex_);
  DERMAL_ASSERT(!holds() && w.dtype() == DType::f32 && w.layout() == Layout::plain);
  held_shape_ = w.shape();
  held_ = std::move(w);
}

bool PackedWeights::holds() const { return !held_shape_.empty(); }

dnnl::memory PackedWeights::get(const Tensor* w, const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted) {
  std::lock_guard<std::mutex> lock(mutex_);
  const void* key = w ? w->raw() : nullptr;
  const Entry* first_held = nullptr;
  for (const Entry& e : entries_) {
    if (e.key == key && e.packed.get_desc() == wanted) return e.packed;
    if (!e.key && !first_held && !one_way(e.packed.get_desc())) first_held = &e;
  }
  Entry e{key, {}, {}, {}};
  dnnl::memory src;
  if (w) {
    e.source = *w;
    e.data = w->dtype() == DType::f32 ? *w : w->to_dtype(DType::f32);
    src = dnnl_util::memory(plain, e.data.raw());
  } else if (first_held) {
    // The plain copy is gone: another packed format is the source (through plain for Winograd's
    // transform, which oneDNN reorders from plain formats only).
    src = one_way(wanted) ? dnnl_util::reorder(first_held->packed, plain) : first_held->packed;
  } else {
    DERMAL_ASSERT(held_.defined());
    held_md_ = plain;
    // When nobody else reads the buffer, its plain values may become the packed ones.
    const bool in_place = held_.sole_owner() && !one_way(wanted) && pack_in_place(held_, plain, wanted);
    e.data = held_;
    src = dnnl_util::memory(in_place ? wanted : plain, held_.raw());
  }
  e.packed = src.get_desc() == wanted ? src : dnnl_util::reorder(src, wanted);
  if (e.packed.get_data_handle() != e.data.raw()) e.data = Tensor();
  entries_.push_back(std::move(e));
  // Packed (or kept as it is, as the first entry's data): the held W needs no other handle,
  // unless the packed format cannot be turned back into others.
  if (!w && !one_way(wanted)) held_ = Tensor();
  return entries_.back().packed;
}

Tensor PackedWeights::held_plain() const {
  std::lock_guard<std::mutex> lock(mutex_);
  DERMAL_ASSERT(holds());
  if (held_.defined()) return held_;
  for (const Entry& e : entries_) {
    if (e.key || one_way(e.packed.get_desc())) continue;
    Tensor out = Tensor::uninitialized(DType::f32, held_shape_);
    dnnl_util::reorder_into(e.packed, dnnl_util::memory(held_md_, out.raw()));
    return out;
  }
  DERMAL_ASSERT(false);
  return {};
}

namespace {

// The fused activation's value, and its derivative computed from its output.
double eltwise_value(const EltwiseSpec& e, double x) {
  switch (e.kind) {
    case EltwiseSpec::relu: return x > 0 ? x : e.alpha * x;
    case EltwiseSpec::clip: return std::min(std::max(x, double{e.alpha}), double{e.beta});
    case EltwiseSpec::tanh: return std::tanh(x);
    case EltwiseSpec::elu: return x > 0 ? x : e.alpha * std::expm1(x);
    case EltwiseSpec::sigmoid: return 1.0 / (1.0 + std::exp(-x));
  }
  return x;
}

double eltwise_grad_from_output(const EltwiseSpec& e, double y) {
  switch (e.kind) {
    case EltwiseSpec::relu: return y > 0 ? 1.0 : e.alpha;
    case EltwiseSpec::clip: return y > e.alpha && y < e.beta ? 1.0 : 0.0;
    case EltwiseSpec::tanh: return 1 - y * y;
    case EltwiseSpec::elu: return y > 0 ? 1.0 : y + e.alpha;
    case EltwiseSpec::sigmoid: return y * (1 - y);
  }
  return 1.0;
}

// Element strides over (N, C, H, W) for a rank-3 (H = 1) or rank-4 tensor of any layout.
std::array<int64_t, 4> strides4(const Tensor& t) {
  auto s = t.strides();
  if (s.size() == 3) return {s[0], s[1], 0, s[2]};
  return {s[0], s[1], s[2], s[3]};
}

// dy scaled by the fused activation's derivative (dy itself when there is none). y and dy share
// a layout, so elementwise work can ignore it.
template <class T>
Tensor pre_activation_grad(const std::optional<EltwiseSpec>& act, const Tensor& y, const Tensor& dy) {
  if (!act) return dy;
  Tensor g = Tensor::zeros(dy.dtype(), dy.shape(), dy.layout());
  const T* yp = y.data<T>();
  const T* dyp = dy.data<T>();
  T* gp = g.data<T>();
  const int64_t n = dy.numel();
  for (int64_t i = 0; i < n; ++i) gp[i] = static_cast<T>(dyp[i] * eltwise_grad_from_output(*act, yp[i]));
  return g;
}

// Backward's start, the same in both kernels: the gradient before the fused activation, which a
// fused Add hands on to its residual unchanged (when d_in asks for that gradient). Undefined when
// no gradient is asked for, or none comes from above (every gradient asked for is then zeroed).
Tensor backward_start(bool residual, const std::optional<EltwiseSpec>& act, const Tensor& y, const std::vector<Tensor>& d_out,
                      const std::vector<Tensor>& d_in) {
  const Tensor* d_r = residual && d_in.size() > kResidualInput && d_in[kResidualInput].defined() ? &d_in[kResidualInput] : nullptr;
  if (!d_in[0].defined() && !d_r) return {};
  if (!d_out[0].defined()) {
    for (const Tensor* d : {&d_in[0], d_r})
      if (d && d->defined()) d->fill_zero();
    return {};
  }
  Tensor gy, y_read = y;  // a bf16 output is read as f32; gradients are f32 throughout
  if (y.dtype() == DType::bf16) {
    y_read = Tensor::uninitialized(DType::f32, y.shape(), y.layout());
    y_read.copy_from(y);
  }
  dispatch_float(y_read.dtype(), [&](auto t) { gy = pre_activation_grad<decltype(t)>(act, y_read, d_out[0]); });
  if (d_r) d_r->copy_from(gy);
  return gy;
}

// The plain-loop reference. Weights are [oc, c / group, kh, kw].
class ReferenceConvKernel : public Kernel {
 public:
  ReferenceConvKernel(const Geometry& g, const ConvParams& p, std::optional<EltwiseSpec> act)
      : g_(g), has_bias_(p.has_bias), residual_(p.residual), act_(act) {
    if (p.known_w) known_w_ = p.known_w->to_doubles();
    if (p.known_b) known_b_ = p.known_b->to_doubles();
  }

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    const std::vector<double>& w = values(known_w_, in, 1, w_now_);
    const std::vector<double>* b = has_bias_ ? &values(known_b_, in, 2, b_now_) : nullptr;
    dispatch_float(in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* x = in[0].data<T>();
      const T* r = residual_ ? in[kResidualInput].data<T>() : nullptr;
      T* y = out[0].data<T>();
      auto xs = strides4(in[0]), ys = strides4(out[0]), rs = residual_ ? strides4(in[kResidualInput]) : ys;
      visit(w, [&](int64_t n, int64_t oc, int64_t oh, int64_t ow, auto&& taps) {
        double acc = b ? (*b)[oc] : 0.0;
        taps([&](int64_t ic, int64_t ih, int64_t iw, double wv) { acc += x[n * xs[0] + ic * xs[1] + ih * xs[2] + iw * xs[3]] * wv; });
        // Rounded to T before the residual is added, as the unfused Conv then Add would.
        if (r) acc = static_cast<T>(acc) + r[n * rs[0] + oc * rs[1] + oh * rs[2] + ow * rs[3]];
        y[n * ys[0] + oc * ys[1] + oh * ys[2] + ow * ys[3]] = static_cast<T>(act_ ? eltwise_value(*act_, acc) : acc);
      });
    });
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    const Tensor gy = backward_start(residual_, act_, out[0], d_out, d_in);
    if (!gy.defined() || !d_in[0].defined()) return;
    d_in[0].fill_zero();
    const std::vector<double>& w = values(known_w_, in, 1, w_now_);
    dispatch_float(in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* dy = gy.data<T>();
      T* dx = d_in[0].data<T>();
      auto xs = strides4(d_in[0]), ys = strides4(gy);
      visit(w, [&](int64_t n, int64_t oc, int64_t oh, int64_t ow, auto&& taps) {
        const double g = dy[n * ys[0] + oc * ys[1] + oh * ys[2] + ow * ys[3]];
        taps([&](int64_t ic, int64_t ih, int64_t iw, double wv) { dx[n * xs[0] + ic * xs[1] + ih * xs[2] + iw * xs[3]] += static_cast<T>(g * wv); });
      });
    });
  }

 private:
  // A parameter's values: the constant's, or input i's as it is now (kept in `scratch`).
  static const std::vector<double>& values(const std::optional<std::vector<double>>& known,
                                           const std::vector<Tensor>& in, size_t i, std::vector<double>& scratch) {
    if (known) return *known;
    scratch = in[i].to_doubles();
    return scratch;
  }

  // Calls f(n, oc, oh, ow, taps) for every output element; taps(fn) calls fn(ic, ih, iw, weight)
  // for every kernel tap that lands inside the (unpadded) input.
  template <class F>
  void visit(const std::vector<double>& w, F&& f) const {
    const Geometry& g = g_;
    const int64_t icg = g.c / g.group, ocg = g.oc / g.group;
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t oc = 0; oc < g.oc; ++oc)
        for (int64_t oh = 0; oh < g.oh; ++oh)
          for (int64_t ow = 0; ow < g.ow; ++ow) {
            auto taps = [&](auto&& fn) {
              for (int64_t icl = 0; icl < icg; ++icl)
                for (int64_t kh = 0; kh < g.kh; ++kh) {
                  const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
                  if (ih < 0 || ih >= g.h) continue;
                  for (int64_t kw = 0; kw < g.kw; ++kw) {
                    const int64_t iw = ow * g.sw - g.pl + kw * g.dw;
                    if (iw < 0 || iw >= g.w) continue;
                    fn(oc / ocg * icg + icl, ih, iw, w[((oc * icg + icl) * g.kh + kh) * g.kw + kw]);
                  }
                }
            };
            f(n, oc, oh, ow, taps);
          }
  }

  Geometry g_;
  bool has_bias_, residual_;
  std::optional<EltwiseSpec> act_;
  std::optional<std::vector<double>> known_w_, known_b_;
  std::vector<double> w_now_, b_now_;  // runtime values of the current call
};

Tensor as_f32(const Tensor& t) { return t.dtype() == DType::f32 ? t : t.to_dtype(DType::f32); }

dnnl::algorithm eltwise_algorithm(EltwiseSpec::Kind kind) {
  switch (kind) {
    case EltwiseSpec::relu: return dnnl::algorithm::eltwise_relu;
    case EltwiseSpec::clip: return dnnl::algorithm::eltwise_clip_v2;
    case EltwiseSpec::tanh: return dnnl::algorithm::eltwise_tanh;
    case EltwiseSpec::elu: return dnnl::algorithm::eltwise_elu;
    case EltwiseSpec::sigmoid: return dnnl::algorithm::eltwise_logistic;
  }
  return dnnl::algorithm::eltwise_relu;
}

// Puts a runtime W into the format a primitive wants, on every call. The packed buffer is
// allocated once; its contents are rewritten each time. A plain format needs no copy at all.
class RuntimeWeightReorder {
 public:
  RuntimeWeightReorder() = default;
  RuntimeWeightReorder(const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted) : plain_(plain) {
    if (wanted == plain) return;
    auto& eng = dnnl_util::cpu_engine();
    packed_ = dnnl::memory(wanted, eng);
    reorder_ = dnnl::reorder(dnnl::reorder::primitive_desc(eng, plain, eng, wanted));
  }

  // w: f32, plain. The result is valid until the next call.
  dnnl::memory operator()(const Tensor& w) {
    dnnl::memory src = dnnl_util::memory(plain_, w.raw());
    if (!packed_) return src;
    dnnl_util::execute(reorder_, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, packed_}});
    return packed_;
  }

 private:
  dnnl::memory::desc plain_;
  dnnl::memory packed_;
  dnnl::reorder reorder_;
};

// The oneDNN path. src and dst keep the layout the input arrives in. With X in bf16 the forward
// runs on bf16 inputs and weights (sums in f32, bias and post-ops on f32 values, Y rounded only
// if stored in bf16); backward runs in f32 on the bf16-rounded weights, so it differentiates the
// model the forward ran, at f32 precision.
class DnnlConvKernel : public Kernel {
 public:
  DnnlConvKernel(const Geometry& g, Layout layout, const ConvParams& p, std::optional<EltwiseSpec> act,
                 std::shared_ptr<PackedWeights> packed)
      : held_w_(p.held_w), has_bias_(p.has_bias), residual_(p.residual), act_(act), packed_(std::move(packed)) {
    using md = dnnl::memory::desc;
    using tag = dnnl::memory::format_tag;
    if (p.known_w) known_w_ = *p.known_w;
    src_md_ = dnnl_util::desc({g.n, g.c, g.h, g.w}, layout, p.x_dtype);
    dst_md_ = dnnl_util::desc({g.n, g.oc, g.oh, g.ow}, layout, p.y_dtype);
    src32_md_ = dnnl_util::desc({g.n, g.c, g.h, g.w}, layout);
    dst32_md_ = dnnl_util::desc({g.n, g.oc, g.oh, g.ow}, layout);
    const auto f32 = dnnl::memory::data_type::f32;
    dnnl::memory::dims wdims = g.group == 1 ? dnnl::memory::dims{g.oc, g.c, g.kh, g.kw}
                                            : dnnl::memory::dims{g.group, g.oc / g.group, g.c / g.group, g.kh, g.kw};
    plain_w_md_ = md(wdims, f32, g.group == 1 ? tag::oihw : tag::goihw);
    any_w_md_ = md(wdims, dnnl_util::data_type(p.x_dtype), tag::any);
    any_w32_md_ = md(wdims, f32, tag::any);
    strides_ = {g.sh, g.sw};
    dilates_ = {g.dh - 1, g.dw - 1};
    pad_l_ = {g.pt, g.pl};
    pad_r_ = {g.pb, g.pr};

    if (residual_) residual_md_ = dnnl_util::desc({g.n, g.oc, g.oh, g.ow}, layout, p.residual_dtype);
    if (has_bias_) bias_md_ = dnnl_util::desc({g.oc});
    if (p.known_b) known_bias_ = p.known_b->to_dtype(DType::f32);
    if (try_winograd(g, p)) return;
    // The residual as oneDNN's sum post-op (accumulated into dst, which holds it when the
    // convolution starts, in place where the executor can give dst the residual's buffer) where
    // the strides are 1: oneDNN 2.6 then runs its brgemm kernels, as for the bare convolution,
    // where with a binary post-op it falls back to older, slower ones. With strides of 2 the
    // brgemm 1x1 kernel is slower on some shapes (ResNet-50's 512 -> 1024 shortcut): binary there,
    // which reads the residual from its own buffer.
    sum_residual_ = residual_ && p.residual_dtype == p.y_dtype && g.sh == 1 && g.sw == 1;
    dnnl::primitive_attr attr;
    dnnl::post_ops ops;
    if (sum_residual_) ops.append_sum(1.f);
    else if (residual_) ops.append_binary(dnnl::algorithm::binary_add, residual_md_);
    if (act_) ops.append_eltwise(1.f, eltwise_algorithm(act_->kind), act_->alpha, act_->beta);
    attr.set_post_ops(ops);
    dnnl::convolution_forward::primitive_desc pd(forward_desc(dnnl::prop_kind::forward_inference, src_md_, any_w_md_, dst_md_),
                                                 attr, dnnl_util::cpu_engine());
    fwd_ = dnnl::convolution_forward(pd);
    if (constant_w()) fwd_weights_ = packed_get(pd.weights_desc());
    else fwd_reorder_ = RuntimeWeightReorder(plain_w_md_, pd.weights_desc());
  }

  bool winograd() const { return winograd_.extra_weight_bytes > 0; }
  size_t extra_weight_bytes() const override { return winograd_.extra_weight_bytes; }
  std::string algorithm() const override { return winograd() ? "winograd" : ""; }
  size_t scratch_bytes() const override {
    const Winograd& w = winograd_;
    if (!winograd()) return 0;
    return (w.io.input ? 0 : w.src_md.get_size()) + (w.dst_in_scratch() ? w.dst_md.get_size() : 0) + w.scratchpad_md.get_size();
  }
  void use_scratch(void* memory) override { winograd_.scratch = static_cast<char*>(memory); }
  bool runs_blocked() const override { return winograd(); }
  bool sums_into_output() const override { return sum_residual_; }
  void carry_blocked(const BlockedIo& io) override {
    Winograd& w = winograd_;
    DERMAL_ASSERT(winograd() && (!io.residual || residual_));
    w.io = io;
    if (io.residual) {  // copied into dst as it is, unless dst is the residual's own buffer
      w.residual_to_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(dnnl_util::cpu_engine(), w.dst_md, dnnl_util::cpu_engine(), w.dst_md));
    }
  }

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    if (winograd()) return forward_winograd(in, out);
    Tensor w32, b32;  // runtime W and B as f32, alive for this call
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl_util::memory(src_md_, in[0].raw())},
                                               {DNNL_ARG_DST, dnnl_util::memory(dst_md_, out[0].raw())}};
    if (constant_w()) {
      args[DNNL_ARG_WEIGHTS] = fwd_weights_;
    } else {
      w32 = as_f32(in[1]);
      args[DNNL_ARG_WEIGHTS] = fwd_reorder_(w32);
    }
    if (has_bias_) {
      b32 = known_bias_.defined() ? known_bias_ : as_f32(in[2]);
      args[DNNL_ARG_BIAS] = dnnl_util::memory(bias_md_, b32.raw());
    }
    if (sum_residual_) {
      if (out[0].raw() != in[kResidualInput].raw())  // not given the residual's buffer: copy it in
        std::memcpy(out[0].raw(), in[kResidualInput].raw(), residual_md_.get_size());  // same dtype and layout
    } else if (residual_) {
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = dnnl_util::memory(residual_md_, in[kResidualInput].raw());
    }
    dnnl_util::execute(fwd_, args);
  }

  void backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    const Tensor gy = backward_start(residual_, act_, out[0], d_out, d_in);
    if (!gy.defined() || !d_in[0].defined()) return;
    prepare_backward();
    Tensor w32 = constant_w() ? Tensor() : as_f32(in[1]);
    dnnl_util::execute(bwd_, {{DNNL_ARG_DIFF_DST, dnnl_util::memory(dst32_md_, gy.raw())},
                              {DNNL_ARG_WEIGHTS, constant_w() ? bwd_weights_ : bwd_reorder_(w32)},
                              {DNNL_ARG_DIFF_SRC, dnnl_util::memory(src32_md_, d_in[0].raw())}});
  }

 private:
  // Winograd's F(2x2, 3x3) or F(4x4, 3x3) (oneDNN picks) for a dense 3x3 stride-1 f32
  // convolution with constant weights: 1.3-3x faster than direct on 16-512 channels here, at
  // the price of transformed weights 1.8x (2x3) or 4x (4x3) the plain ones, which are kept too
  // (backward and other plans need a format reorderable from them; Winograd's is not), and of a
  // workspace (0.2-10 MB, more with more threads). So only where the transformed weights fit
  // p.winograd_max_weight_bytes; the workspace, like the copies below, is planned in the arena.
  // oneDNN 2.6 runs it on nChw16c only and takes a residual only as a sum post-op: src, dst and
  // the residual pass through blocked copies, except where the executor carries them blocked
  // (carry_blocked). Results differ from direct by rounding (about 1e-6 of the output's scale).
  bool try_winograd(const Geometry& g, const ConvParams& p) {
    if (!p.winograd_max_weight_bytes || !constant_w() || (has_bias_ && !known_bias_.defined()) || g.group != 1 ||
        g.kh != 3 || g.kw != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 || g.dw != 1 || g.spatial_rank != 2 || g.c % 16 ||
        g.oc % 16 || p.x_dtype != DType::f32 || p.y_dtype != DType::f32 || p.residual_dtype != DType::f32)
      return false;
    using tag = dnnl::memory::format_tag;
    const auto f32 = dnnl::memory::data_type::f32;
    Winograd& w = winograd_;
    w.src_md = dnnl::memory::desc({g.n, g.c, g.h, g.w}, f32, tag::nChw16c);
    w.dst_md = dnnl::memory::desc({g.n, g.oc, g.oh, g.ow}, f32, tag::nChw16c);
    dnnl::primitive_attr attr;
    dnnl::post_ops ops;
    if (residual_) ops.append_sum(1.f);  // dst holds the residual when the convolution starts
    if (act_) ops.append_eltwise(1.f, eltwise_algorithm(act_->kind), act_->alpha, act_->beta);
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // its workspace, in our arena too
    auto& eng = dnnl_util::cpu_engine();
    dnnl::convolution_forward::primitive_desc pd;
    try {
      const dnnl::convolution_forward::desc d =
          has_bias_ ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
                                                      w.src_md, any_w32_md_, bias_md_, w.dst_md, strides_, pad_l_, pad_r_)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
                                                      w.src_md, any_w32_md_, w.dst_md, strides_, pad_l_, pad_r_);
      pd = dnnl::convolution_forward::primitive_desc(d, attr, eng);
    } catch (const dnnl::error&) {
      return false;  // no Winograd kernel for this shape or CPU
    }
    w.scratchpad_md = pd.scratchpad_desc();
    if (pd.weights_desc().get_size() > p.winograd_max_weight_bytes) return false;
    fwd_ = dnnl::convolution_forward(pd);
    fwd_weights_ = packed_get(pd.weights_desc());
    w.to_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(eng, src_md_, eng, w.src_md));
    w.from_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(eng, w.dst_md, eng, dst_md_));
    if (residual_) w.residual_to_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(eng, residual_md_, eng, w.dst_md));
    w.extra_weight_bytes = pd.weights_desc().get_size();
    return true;
  }

  void forward_winograd(const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
    Winograd& w = winograd_;
    DERMAL_ASSERT(w.scratch);
    // Scratch holds the blocked copies of X and Y that the executor does not carry, then the
    // workspace; nChw16c sizes are whole 64-byte lines, so each starts as aligned as the arena.
    char* next = w.scratch;
    auto take = [&next](size_t bytes) { return std::exchange(next, next + bytes); };
    dnnl::memory src = dnnl_util::memory(w.src_md, w.io.input ? in[0].raw() : take(w.src_md.get_size()));
    if (!w.io.input)
      dnnl_util::execute(w.to_blocked, {{DNNL_ARG_FROM, dnnl_util::memory(src_md_, in[0].raw())}, {DNNL_ARG_TO, src}});
    // The sum post-op adds to what dst holds: the residual, in its own buffer where it expires here.
    void* y = w.io.output ? out[0].raw() : w.dst_in_scratch() ? take(w.dst_md.get_size()) : in[kResidualInput].raw();
    dnnl::memory dst = dnnl_util::memory(w.dst_md, y);
    if (residual_ && y != in[kResidualInput].raw())
      dnnl_util::execute(w.residual_to_blocked, {{DNNL_ARG_FROM, dnnl_util::memory(w.io.residual ? w.dst_md : residual_md_, in[kResidualInput].raw())},
                                                 {DNNL_ARG_TO, dst}});
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, src},
        {DNNL_ARG_WEIGHTS, fwd_weights_},
        {DNNL_ARG_DST, dst},
        {DNNL_ARG_SCRATCHPAD, dnnl_util::memory(w.scratchpad_md, take(w.scratchpad_md.get_size()))}};
    if (has_bias_) args[DNNL_ARG_BIAS] = dnnl_util::memory(bias_md_, known_bias_.raw());
    dnnl_util::execute(fwd_, args);
    if (!w.io.output)
      dnnl_util::execute(w.from_blocked, {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, dnnl_util::memory(dst_md_, out[0].raw())}});
  }

  dnnl::convolution_forward::desc forward_desc(dnnl::prop_kind kind, const dnnl::memory::desc& src, const dnnl::memory::desc& w,
                                               const dnnl::memory::desc& dst) const {
    if (has_bias_)
      return {kind, dnnl::algorithm::convolution_direct, src, w, bias_md_, dst, strides_, dilates_, pad_l_, pad_r_};
    return {kind, dnnl::algorithm::convolution_direct, src, w, dst, strides_, dilates_, pad_l_, pad_r_};
  }

  bool constant_w() const { return held_w_ || known_w_.defined(); }
  dnnl::memory packed_get(const dnnl::memory::desc& wanted) {
    return packed_->get(held_w_ ? nullptr : &known_w_, plain_w_md_, wanted);
  }

  // Built on the first backward, so inference-only plans never hold a second packed copy.
  void prepare_backward() {
    if (backward_ready_) return;
    dnnl::convolution_forward::primitive_desc hint(
        forward_desc(dnnl::prop_kind::forward_training, src32_md_, any_w32_md_, dst32_md_), dnnl_util::cpu_engine());
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, src32_md_, any_w32_md_, dst32_md_, strides_,
                                            dilates_, pad_l_, pad_r_);
    dnnl::convolution_backward_data::primitive_desc pd(d, dnnl_util::cpu_engine(), hint);
    bwd_ = dnnl::convolution_backward_data(pd);
    if (constant_w()) bwd_weights_ = packed_get(pd.weights_desc());
    else bwd_reorder_ = RuntimeWeightReorder(plain_w_md_, pd.weights_desc());
    backward_ready_ = true;
  }

  struct Winograd {
    dnnl::memory::desc src_md, dst_md;  // nChw16c X and Y
    dnnl::memory::desc scratchpad_md;   // oneDNN's workspace for the transforms
    dnnl::reorder to_blocked, residual_to_blocked, from_blocked;
    BlockedIo io;  // what the executor carries blocked (carry_blocked)
    bool dst_in_scratch() const { return !io.output && !(io.residual && io.residual_expires); }
    size_t extra_weight_bytes = 0;  // the transformed weights; 0: direct convolution
    char* scratch = nullptr;  // X's and Y's copies, then the workspace: the executor's, during this step only
  };

  bool held_w_, has_bias_, residual_;
  bool sum_residual_ = false;  // the residual as a sum post-op (sums_into_output), else binary
  Tensor known_w_, known_bias_;  // undefined (and W not held): read from the inputs on every call
  std::optional<EltwiseSpec> act_;
  std::shared_ptr<PackedWeights> packed_;
  dnnl::memory::desc src_md_, dst_md_, residual_md_, plain_w_md_, any_w_md_, bias_md_;
  dnnl::memory::desc src32_md_, dst32_md_, any_w32_md_;  // backward's, f32 whatever the forward's
  dnnl::memory::dims strides_, dilates_, pad_l_, pad_r_;
  dnnl::convolution_forward fwd_;
  dnnl::memory fwd_weights_;
  RuntimeWeightReorder fwd_reorder_;
  bool backward_ready_ = false;
  dnnl::convolution_backward_data bwd_;
  dnnl::memory bwd_weights_;
  RuntimeWeightReorder bwd_reorder_;
  Winograd winograd_;
};

}  // namespace

std::unique_ptr<Kernel> make_reference_conv_kernel(const Geometry& g, const ConvParams& p,
                                                   std::optional<EltwiseSpec> act) {
  return std::make_unique<ReferenceConvKernel>(g, p, act);
}

std::unique_ptr<Kernel> make_dnnl_conv_kernel(const Geometry& g, Layout layout, const ConvParams& p,
                                              std::optional<EltwiseSpec> act, std::shared_ptr<PackedWeights> packed) {
  return std::make_unique<DnnlConvKernel>(g, layout, p, act, std::move(packed));
}

}  // namespace dermal::engine::ops::conv_detail
