// Resize (ONNX opsets 10-19) of the two spatial axes of an N,C,H,W tensor: nearest, linear and
// cubic, every coordinate transformation but tf_crop_and_resize, exclude_outside, antialias,
// axes and keep_aspect_ratio_policy. Keras' Resizing layer (TensorFlow's tf.image.resize) also
// comes here, through modes ONNX lacks, named after TensorFlow's kernels, all with half-pixel
// centres: "tf_area" (resize_area), "tf_bilinear", "tf_bicubic" (resize_bicubic: Keys a = -0.5
// read from TensorFlow's 1024-step table), "tf_lanczos3", "tf_lanczos5", "tf_gaussian" and
// "tf_mitchellcubic" (scale_and_translate's kernels); with antialias, bilinear and bicubic also
// go through scale_and_translate, as tf.image.resize(antialias=True) does. ONNX's linear and
// cubic differ at the borders: they repeat the edge pixel, TensorFlow drops the taps outside.
//
// Every mode is linear in the input and separable: output row y is a weighted sum of input rows,
// output column x of input columns. So each axis is planned once as a table of taps (input
// index, weight) per output index; forward applies the rows' table then the columns', and the
// VJP applies the same tables transposed, which makes backward exact for every mode.
#include <algorithm>
#include <cmath>
#include <functional>

#include "engine/ops/op_util.h"

namespace dermal::engine::ops {
namespace {

// Output index o reads input index[k] with weight[k] for k in [begin[o], begin[o + 1]).
struct AxisTaps {
  std::vector<int64_t> begin{0};
  std::vector<int64_t> index;
  std::vector<double> weight;
  void add(int64_t i, double w) {
    index.push_back(i);
    weight.push_back(w);
  }
  void end_output() { begin.push_back(static_cast<int64_t>(index.size())); }
};

enum class Mode {
  nearest, linear, cubic,  // ONNX
  tf_area, tf_bilinear, tf_bicubic, tf_lanczos3, tf_lanczos5, tf_gaussian, tf_mitchellcubic  // TensorFlow
};

struct ResizeAttrs {
  Mode mode = Mode::nearest;
  std::string coordinates = "half_pixel";
  std::string nearest_mode = "round_prefer_floor";
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  std::vector<int64_t> axes;
  std::string aspect_policy = "stretch";
};

// The input coordinate output index o maps to, per ONNX's coordinate_transformation_mode.
// `scale` is output / input along the axis; the spec's resized length is n * scale, unrounded.
double source_coordinate(const std::string& mode, int64_t o, int64_t n, double scale) {
  const double x = static_cast<double>(o), resized = static_cast<double>(n) * scale;
  if (mode == "half_pixel") return (x + 0.5) / scale - 0.5;
  if (mode == "pytorch_half_pixel") return resized > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
  if (mode == "align_corners") return resized == 1 ? 0.0 : x * static_cast<double>(n - 1) / (resized - 1);
  if (mode == "asymmetric") return x / scale;
  if (mode == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
  // half_pixel_symmetric (opset 19): half_pixel about the centre of the resized extent.
  const double adjustment = std::floor(resized) / resized;
  const double centre = static_cast<double>(n) / 2;
  return centre * (1 - adjustment) + (x + 0.5) / scale - 0.5;
}

int64_t nearest_index(double x, const std::string& rule) {
  const double f = std::floor(x);
  if (rule == "floor") return static_cast<int64_t>(f);
  if (rule == "ceil") return static_cast<int64_t>(std::ceil(x));
  if (x - f == 0.5) return static_cast<int64_t>(rule == "round_prefer_ceil" ? f + 1 : f);
  return static_cast<int64_t>(std::round(x));
}

double keys_cubic(double d, double a) {
  d = std::abs(d);
  if (d < 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return 0;
}

// TensorFlow's sampling kernels (scale_and_translate), each with its radius.
struct Kernel1d {
  std::function<double(double)> value;
  double radius;
};

Kernel1d tf_kernel(Mode mode) {
  constexpr double pi = 3.14159265359;  // TensorFlow's constant
  auto lanczos = [pi](double r) {
    return Kernel1d{[r, pi](double x) {
                      x = std::abs(x);
                      if (x > r) return 0.0;
                      if (x <= 1e-3) return 1.0;
                      return r * std::sin(pi * x) * std::sin(pi * x / r) / (pi * pi * x * x);
                    },
                    r};
  };
  switch (mode) {
    case Mode::tf_lanczos3: return lanczos(3);
    case Mode::tf_lanczos5: return lanczos(5);
    case Mode::tf_gaussian:
      return {[](double x) {
                x = std::abs(x);
                const double sigma = 1.5 / 3;
                return x >= 1.5 ? 0.0 : std::exp(-x * x / (2 * sigma * sigma));
              },
              1.5};
    case Mode::tf_mitchellcubic:
      return {[](double x) {
                x = std::abs(x);
                if (x >= 2) return 0.0;
                if (x >= 1) return (((-7.0 / 18.0) * x + 2.0) * x - 10.0 / 3.0) * x + 16.0 / 9.0;
                return ((7.0 / 6.0) * x - 2.0) * x * x + 8.0 / 9.0;
              },
              2};
    case Mode::tf_bilinear: return {[](double x) { return std::max(0.0, 1 - std::abs(x)); }, 1};  // triangle
    default: return {[](double x) { return keys_cubic(x, -0.5); }, 2};  // tf_bicubic: keyscubic
  }
}

// Drops the taps outside [0, n) of output index o's span and rescales the rest to sum to 1, as
// exclude_outside and TensorFlow's kernels do (a sum too small to divide by is left alone).
void add_normalized(AxisTaps& t, const std::vector<std::pair<int64_t, double>>& taps, int64_t n, bool exclude, bool normalize) {
  double total = 0;
  for (const auto& [i, w] : taps)
    if (!exclude || (i >= 0 && i < n)) total += w;
  const bool divide = normalize && std::abs(total) >= 1000 * 1.17549435e-38;
  for (const auto& [i, w] : taps) {
    if (exclude && (i < 0 || i >= n)) continue;
    t.add(std::clamp<int64_t>(i, 0, n - 1), divide ? w / total : w);
  }
  t.end_output();
}

// One axis from length n to m. `scale` is ONNX's (m / n unless the model gave scales).
AxisTaps plan_axis(const ResizeAttrs& a, int64_t n, int64_t m, double scale) {
  AxisTaps t;
  const double inverse = static_cast<double>(n) / static_cast<double>(m);  // TensorFlow's scale
  for (int64_t o = 0; o < m; ++o) {
    std::vector<std::pair<int64_t, double>> taps;
    if (a.mode == Mode::nearest) {
      taps.push_back({nearest_index(source_coordinate(a.coordinates, o, n, scale), a.nearest_mode), 1.0});
      add_normalized(t, taps, n, false, false);
    } else if (a.mode == Mode::linear || a.mode == Mode::cubic) {
      // ONNX: the kernel's taps around x, widened by 1 / scale when antialiasing a shrink;
      // taps past the edge repeat the edge unless exclude_outside.
      const double x = source_coordinate(a.coordinates, o, n, scale);
      const double radius = a.mode == Mode::linear ? 1 : 2;
      const double k = a.antialias && scale < 1 ? scale : 1;
      const int64_t start = static_cast<int64_t>(std::floor(-radius / k)) + 1, stop = 2 - start;
      const int64_t fx = static_cast<int64_t>(std::floor(x));
      for (int64_t i = start; i < stop; ++i) {
        const double d = (static_cast<double>(fx + i) - x) * k;
        taps.push_back({fx + i, a.mode == Mode::linear ? std::max(0.0, 1 - std::abs(d)) : keys_cubic(d, a.cubic_a)});
      }
      add_normalized(t, taps, n, a.exclude_outside, a.exclude_outside || k < 1);
    } else if (a.mode == Mode::tf_area) {
      // resize_area: each output pixel averages the input box it covers, by overlap.
      const double lo = static_cast<double>(o) * inverse, hi = static_cast<double>(o + 1) * inverse;
      for (auto i = static_cast<int64_t>(std::floor(lo)); i < static_cast<int64_t>(std::ceil(hi)); ++i)
        taps.push_back({std::min(i, n - 1), (std::min<double>(static_cast<double>(i + 1), hi) - std::max<double>(static_cast<double>(i), lo)) / inverse});
      add_normalized(t, taps, n, false, false);
    } else if (a.mode == Mode::tf_bicubic && !a.antialias) {
      // resize_bicubic with half-pixel centres: Keys (a = -0.5) at the distance rounded to
      // 1/1024 (TensorFlow reads a table), taps outside dropped and the rest renormalised.
      const double x = (static_cast<double>(o) + 0.5) * inverse - 0.5;
      const double fx = std::floor(x);
      const double q = static_cast<double>(std::lrint((x - fx) * 1024)) / 1024;
      const auto i = static_cast<int64_t>(fx);
      for (int64_t j = -1; j <= 2; ++j) taps.push_back({i + j, keys_cubic(static_cast<double>(j) - q, -0.5)});
      add_normalized(t, taps, n, true, true);
    } else {
      // scale_and_translate: the kernel at half-pixel sample positions, widened by the shrink
      // factor when antialiasing, taps outside dropped, weights normalised.
      const Kernel1d kernel = tf_kernel(a.mode);
      const double k = a.antialias ? std::max(inverse, 1.0) : 1.0;
      const double x = (static_cast<double>(o) + 0.5) * inverse - 0.5;
      for (auto i = static_cast<int64_t>(std::ceil(x - kernel.radius * k)); i <= static_cast<int64_t>(std::floor(x + kernel.radius * k)); ++i)
        taps.push_back({i, kernel.value((static_cast<double>(i) - x) / k)});
      add_normalized(t, taps, n, true, true);
    }
  }
  return t;
}

struct ResizePlan {
  Shape in_shape, out_shape;
  double scale_h = 1, scale_w = 1;  // ONNX's scales (output / input unless the model gave them)
  AxisTaps rows, cols;
};

class ResizeKernel : public Kernel {
 public:
  explicit ResizeKernel(ResizePlan p) : p_(std::move(p)) {}

  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    dispatch_float(in[0].dtype(), [&](auto z) {
      using T = decltype(z);
      const int64_t planes = p_.in_shape[0] * p_.in_shape[1], H = p_.in_shape[2], W = p_.in_shape[3];
      const int64_t OH = p_.out_shape[2], OW = p_.out_shape[3];
      std::vector<T> rows(static_cast<size_t>(OH * W));
      const T* x = in[0].data<T>();
      T* y = out[0].data<T>();
      for (int64_t c = 0; c < planes; ++c) {
        const T* src = x + c * H * W;
        std::fill(rows.begin(), rows.end(), T(0));
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t k = p_.rows.begin[oy]; k < p_.rows.begin[oy + 1]; ++k) {
            const T w = static_cast<T>(p_.rows.weight[k]);
            const T* line = src + p_.rows.index[k] * W;
            T* acc = rows.data() + oy * W;
            for (int64_t i = 0; i < W; ++i) acc[i] += w * line[i];
          }
        T* dst = y + c * OH * OW;
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            T sum = 0;
            for (int64_t k = p_.cols.begin[ox]; k < p_.cols.begin[ox + 1]; ++k)
              sum += static_cast<T>(p_.cols.weight[k]) * rows[oy * W + p_.cols.index[k]];
            dst[oy * OW + ox] = sum;
          }
      }
    });
  }

  void backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& d_out,
                const std::vector<Tensor>& d_in) override {
    if (!d_in[0].defined()) return;
    d_in[0].fill_zero();
    if (!d_out[0].defined()) return;
    dispatch_float(d_in[0].dtype(), [&](auto z) {
      using T = decltype(z);
      const int64_t planes = p_.in_shape[0] * p_.in_shape[1], H = p_.in_shape[2], W = p_.in_shape[3];
      const int64_t OH = p_.out_shape[2], OW = p_.out_shape[3];
      std::vector<T> rows(static_cast<size_t>(OH * W));
      const T* dy = d_out[0].data<T>();
      T* dx = d_in[0].data<T>();
      for (int64_t c = 0; c < planes; ++c) {
        const T* g = dy + c * OH * OW;
        std::fill(rows.begin(), rows.end(), T(0));
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox)
            for (int64_t k = p_.cols.begin[ox]; k < p_.cols.begin[ox + 1]; ++k)
              rows[oy * W + p_.cols.index[k]] += static_cast<T>(p_.cols.weight[k]) * g[oy * OW + ox];
        T* dst = dx + c * H * W;
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t k = p_.rows.begin[oy]; k < p_.rows.begin[oy + 1]; ++k) {
            const T w = static_cast<T>(p_.rows.weight[k]);
            T* line = dst + p_.rows.index[k] * W;
            const T* acc = rows.data() + oy * W;
            for (int64_t i = 0; i < W; ++i) line[i] += w * acc[i];
          }
      }
    });
  }

 private:
  ResizePlan p_;
};

class ResizeOp : public Op {
 public:
  ResizeOp(const OpContext& ctx, ResizeAttrs a) : Op(ctx), a_(std::move(a)) {}

  std::vector<TensorInfo> infer(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const override {
    return {{in[0].dtype, plan(in, known).out_shape}};
  }

  std::unique_ptr<Kernel> make_kernel(KernelConfig& cfg) const override {
    ResizePlan p = plan(cfg.inputs, cfg.known);
    p.rows = plan_axis(a_, p.in_shape[2], p.out_shape[2], p.scale_h);
    p.cols = plan_axis(a_, p.in_shape[3], p.out_shape[3], p.scale_w);
    cfg.output_layouts.assign(1, Layout::plain);
    return std::make_unique<ResizeKernel>(std::move(p));
  }

 private:
  // The output shape from scales or sizes (inputs 2 and 3 from opset 11, input 1 at opset 10),
  // which must be known at load; only H and W may change.
  ResizePlan plan(const std::vector<TensorInfo>& in, const std::vector<const Tensor*>& known) const {
    const Shape& shape = in[0].shape;
    if (shape.size() != 4)
      ctx_.fail(ErrorKind::unsupported, "resizes N,C,H,W tensors; the input is " + shape_str(shape));
    const size_t scales_at = ctx_.opset >= 11 ? 2 : 1, sizes_at = 3;
    const Tensor* scales = known.size() > scales_at && known[scales_at] && known[scales_at]->numel() > 0 ? known[scales_at] : nullptr;
    const Tensor* sizes = ctx_.opset >= 11 && known.size() > sizes_at && known[sizes_at] && known[sizes_at]->numel() > 0 ? known[sizes_at] : nullptr;
    const bool given_at_runtime = (in.size() > scales_at && !in[scales_at].shape.empty() && !scales && shape_numel(in[scales_at].shape) > 0) ||
                                  (in.size() > sizes_at && !in[sizes_at].shape.empty() && !sizes && shape_numel(in[sizes_at].shape) > 0);
    if (given_at_runtime) ctx_.fail(ErrorKind::unsupported, "scales and sizes must be known at load time");
    if (!scales && !sizes) ctx_.fail(ErrorKind::invalid_model, "needs scales or sizes");
    std::vector<int64_t> axes = a_.axes;
    if (axes.empty())
      for (int64_t d = 0; d < 4; ++d) axes.push_back(d);
    for (auto& d : axes) d = normalize_axis(d, 4, ctx_);
    const std::vector<double> given = scales ? scales->to_doubles() : std::vector<double>{};
    const std::vector<int64_t> target = sizes ? sizes->to_ints() : std::vector<int64_t>{};
    if ((scales ? given.size() : target.size()) != axes.size())
      ctx_.fail(ErrorKind::invalid_model, std::string(scales ? "scales " : "sizes ") + "have " +
                                              std::to_string(scales ? given.size() : target.size()) + " values for " +
                                              std::to_string(axes.size()) + " axes");
    ResizePlan p;
    p.in_shape = p.out_shape = shape;
    std::vector<double> scale(4, 1.0);
    double policy_scale = 0;  // keep_aspect_ratio_policy: one scale for every listed axis
    if (sizes && a_.aspect_policy != "stretch") {
      for (size_t k = 0; k < axes.size(); ++k) {
        const double s = static_cast<double>(target[k]) / static_cast<double>(shape[axes[k]]);
        policy_scale = k == 0 ? s : a_.aspect_policy == "not_larger" ? std::min(policy_scale, s) : std::max(policy_scale, s);
      }
    }
    for (size_t k = 0; k < axes.size(); ++k) {
      const int64_t d = axes[k], n = shape[d];
      if (scales) {
        if (!(given[k] > 0) || !std::isfinite(given[k]))
          ctx_.fail(ErrorKind::invalid_model, "scale " + std::to_string(given[k]) + " must be a positive number");
        scale[d] = given[k];
        const double out = std::floor(static_cast<double>(n) * given[k] + 1e-9);
        if (out > 1e7) ctx_.fail(ErrorKind::invalid_model, "the resized axis would be " + std::to_string(out) + " long");
        p.out_shape[d] = static_cast<int64_t>(out);
      } else if (policy_scale > 0) {
        scale[d] = policy_scale;
        p.out_shape[d] = static_cast<int64_t>(std::round(policy_scale * static_cast<double>(n)));
      } else {
        if (target[k] < 1 || target[k] > 10'000'000)
          ctx_.fail(ErrorKind::invalid_model, "size " + std::to_string(target[k]) + " is not between 1 and 10^7");
        p.out_shape[d] = target[k];
        scale[d] = static_cast<double>(target[k]) / static_cast<double>(n);
      }
    }
    if (p.out_shape[0] != shape[0] || p.out_shape[1] != shape[1])
      ctx_.fail(ErrorKind::unsupported, "resizes H and W only; " + shape_str(shape) + " to " + shape_str(p.out_shape) + " changes N or C");
    if (shape[2] < 1 || shape[3] < 1 || p.out_shape[2] < 1 || p.out_shape[3] < 1)
      ctx_.fail(ErrorKind::invalid_model, "cannot resize " + shape_str(shape) + " to " + shape_str(p.out_shape));
    p.scale_h = scale[2];
    p.scale_w = scale[3];
    return p;
  }

  ResizeAttrs a_;
};

std::unique_ptr<Op> make_resize(const Attributes& attrs, const OpContext& ctx) {
  ResizeAttrs a;
  const std::string mode = attrs.get_string("mode", "nearest");
  const std::vector<std::pair<std::string, Mode>> modes{
      {"nearest", Mode::nearest},         {"linear", Mode::linear},           {"cubic", Mode::cubic},
      {"tf_area", Mode::tf_area},         {"tf_bilinear", Mode::tf_bilinear}, {"tf_bicubic", Mode::tf_bicubic},
      {"tf_lanczos3", Mode::tf_lanczos3},
      {"tf_lanczos5", Mode::tf_lanczos5}, {"tf_gaussian", Mode::tf_gaussian}, {"tf_mitchellcubic", Mode::tf_mitchellcubic}};
  auto found = std::find_if(modes.begin(), modes.end(), [&](const auto& m) { return m.first == mode; });
  if (found == modes.end()) ctx.fail(ErrorKind::invalid_model, "unknown mode '" + mode + "'");
  a.mode = found->second;
  if (ctx.opset >= 11) {
    a.coordinates = attrs.get_string("coordinate_transformation_mode", "half_pixel");
    a.nearest_mode = attrs.get_string("nearest_mode", "round_prefer_floor");
    a.cubic_a = attrs.get_float("cubic_coeff_a", -0.75);
    a.exclude_outside = attrs.get_int("exclude_outside", 0) != 0;
    (void)attrs.get_float("extrapolation_value", 0.0);  // only tf_crop_and_resize reads it
  } else {
    a.coordinates = "asymmetric";  // opset 10's only rule
    a.nearest_mode = "floor";
  }
  if (ctx.opset >= 18) {
    a.antialias = attrs.get_int("antialias", 0) != 0;
    a.axes = attrs.get_ints("axes", {});
    a.aspect_policy = attrs.get_string("keep_aspect_ratio_policy", "stretch");
  }
  static const std::vector<std::string> coordinate_modes{"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                                         "align_corners", "asymmetric", "tf_half_pixel_for_nn"};
  if (a.coordinates == "tf_crop_and_resize")
    ctx.fail(ErrorKind::unsupported, "coordinate_transformation_mode 'tf_crop_and_resize' is not supported");
  if (std::find(coordinate_modes.begin(), coordinate_modes.end(), a.coordinates) == coordinate_modes.end())
    ctx.fail(ErrorKind::invalid_model, "unknown coordinate_transformation_mode '" + a.coordinates + "'");
  if (a.nearest_mode != "round_prefer_floor" && a.nearest_mode != "round_prefer_ceil" && a.nearest_mode != "floor" &&
      a.nearest_mode != "ceil")
    ctx.fail(ErrorKind::invalid_model, "unknown nearest_mode '" + a.nearest_mode + "'");
  if (a.aspect_policy != "stretch" && a.aspect_policy != "not_larger" && a.aspect_policy != "not_smaller")
    ctx.fail(ErrorKind::invalid_model, "unknown keep_aspect_ratio_policy '" + a.aspect_policy + "'");
  if (ctx.num_inputs < 2 || ctx.num_inputs > 4)
    ctx.fail(ErrorKind::invalid_model, "expects 2 to 4 inputs, got " + std::to_string(ctx.num_inputs));
  return std::make_unique<ResizeOp>(ctx, a);
}

}  // namespace

DERMAL_REGISTER_OP("Resize", make_resize);

}  // namespace dermal::engine::ops
