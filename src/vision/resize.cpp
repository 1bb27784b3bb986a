#include "vision/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/error.h"

namespace dermal::vision {
namespace {

constexpr int kMaxSide = 1 << 16;

void check_sizes(int in_w, int in_h, int out_w, int out_h) {
  if (in_w <= 0 || in_h <= 0) throw Error(ErrorKind::invalid_input, "cannot resize an empty image");
  if (out_w <= 0 || out_h <= 0 || out_w > kMaxSide || out_h > kMaxSide)
    throw Error(ErrorKind::invalid_input, "resize target " + std::to_string(out_w) + "x" + std::to_string(out_h) +
                                              " is not between 1 and " + std::to_string(kMaxSide));
}

// --- PIL's separable convolution (Resample.c semantics) ---

struct Filter {
  double (*weight)(double);
  double support;
};

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
double box(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

Filter filter_for(ResizeMode m) { return m == ResizeMode::area ? Filter{box, 0.5} : Filter{triangle, 1.0}; }

// For each output index: the first source index and the normalised weights of the taps.
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<double> weights;  // ksize per output index
  std::vector<int> fixed;       // the same in 22-bit fixed point, for 8-bit data
};

constexpr int kPrecisionBits = 32 - 8 - 2;

Taps compute_taps(int in_size, int out_size, Filter f) {
  Taps t;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = f.support * filterscale;
  const double inv_filterscale = 1.0 / filterscale;  // PIL multiplies by the reciprocal
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.ksize, 0.0);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double* k = &t.weights[static_cast<size_t>(xx) * t.ksize];
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = f.weight((x + xmin - center + 0.5) * inv_filterscale);
      sum += k[x];
    }
    if (sum != 0.0)
      for (int x = 0; x < xmax; ++x) k[x] /= sum;
    t.first[xx] = xmin;
    t.count[xx] = std::max(xmax, 0);
  }
  t.fixed.resize(t.weights.size());
  for (size_t i = 0; i < t.weights.size(); ++i) {
    double w = t.weights[i] * (1 << kPrecisionBits);
    t.fixed[i] = static_cast<int>(w < 0 ? w - 0.5 : w + 0.5);
  }
  return t;
}

uint8_t clip8(int acc) {
  int v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(std::clamp(v, 0, 255));
}

// RGB rows two at a time: each tap's weight is loaded once for six independent sums.
void horizontal_rgb_pair(const uint8_t* in0, const uint8_t* in1, uint8_t* out0, uint8_t* out1, int out_w, const Taps& t) {
  for (int o = 0; o < out_w; ++o) {
    const int* k = &t.fixed[static_cast<size_t>(o) * t.ksize];
    const size_t first = static_cast<size_t>(t.first[o]) * 3;
    const uint8_t* p = in0 + first;
    const uint8_t* q = in1 + first;
    int a0 = 1 << (kPrecisionBits - 1), a1 = a0, a2 = a0, b0 = a0, b1 = a0, b2 = a0;
    for (int i = 0; i < t.count[o]; ++i, p += 3, q += 3) {
      const int w = k[i];
      a0 += p[0] * w;
      a1 += p[1] * w;
      a2 += p[2] * w;
      b0 += q[0] * w;
      b1 += q[1] * w;
      b2 += q[2] * w;
    }
    out0[o * 3] = clip8(a0);
    out0[o * 3 + 1] = clip8(a1);
    out0[o * 3 + 2] = clip8(a2);
    out1[o * 3] = clip8(b0);
    out1[o * 3 + 1] = clip8(b1);
    out1[o * 3 + 2] = clip8(b2);
  }
}

// Horizontal pass: each row of `rows` rows, `channels` interleaved values per pixel.
void horizontal_u8(const uint8_t* src, int in_w, uint8_t* dst, int out_w, int rows, int channels, const Taps& t) {
  const size_t in_row = static_cast<size_t>(in_w) * channels, out_row = static_cast<size_t>(out_w) * channels;
  int y = 0;
  if (channels == 3)  // RGB, the common case
    for (; y + 1 < rows; y += 2)
      horizontal_rgb_pair(src + y * in_row, src + (y + 1) * in_row, dst + y * out_row, dst + (y + 1) * out_row, out_w, t);
  for (; y < rows; ++y) {
    const uint8_t* in = src + y * in_row;
    uint8_t* out = dst + y * out_row;
    for (int o = 0; o < out_w; ++o) {
      const int* k = &t.fixed[static_cast<size_t>(o) * t.ksize];
      const uint8_t* base = in + static_cast<size_t>(t.first[o]) * channels;
      for (int c = 0; c < channels; ++c) {
        int acc = 1 << (kPrecisionBits - 1);
        for (int i = 0; i < t.count[o]; ++i) acc += base[i * channels + c] * k[i];
        out[o * channels + c] = clip8(acc);
      }
    }
  }
}

// Vertical pass, a whole row at a time so that memory is read in order. `row_len` values a row.
// Its inner loop vectorises; x86-64's baseline (SSE2) has no 32-bit multiply, so an AVX2 copy is
// built beside it and chosen at run time where the CPU has it (the same integer results).
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("avx2", "default")))
#endif
void vertical_u8(const uint8_t* src, uint8_t* dst, int out_h, size_t row_len, const Taps& t) {
  std::vector<int> acc(row_len);
  for (int o = 0; o < out_h; ++o) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int* k = &t.fixed[static_cast<size_t>(o) * t.ksize];
    for (int i = 0; i < t.count[o]; ++i) {
      const uint8_t* row = src + static_cast<size_t>(t.first[o] + i) * row_len;
      for (size_t j = 0; j < row_len; ++j) acc[j] += row[j] * k[i];
    }
    uint8_t* out = dst + static_cast<size_t>(o) * row_len;
    for (size_t j = 0; j < row_len; ++j) out[j] = clip8(acc[j]);
  }
}

void horizontal_f32(const float* src, int in_w, float* dst, int out_w, int rows, const Taps& t) {
  for (int y = 0; y < rows; ++y) {
    const float* in = src + static_cast<size_t>(y) * in_w;
    float* out = dst + static_cast<size_t>(y) * out_w;
    for (int o = 0; o < out_w; ++o) {
      const double* k = &t.weights[static_cast<size_t>(o) * t.ksize];
      double acc = 0.0;
      for (int i = 0; i < t.count[o]; ++i) acc += in[t.first[o] + i] * k[i];
      out[o] = static_cast<float>(acc);
    }
  }
}

void vertical_f32(const float* src, float* dst, int out_h, size_t row_len, const Taps& t) {
  std::vector<double> acc(row_len);
  for (int o = 0; o < out_h; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const double* k = &t.weights[static_cast<size_t>(o) * t.ksize];
    for (int i = 0; i < t.count[o]; ++i) {
      const float* row = src + static_cast<size_t>(t.first[o] + i) * row_len;
      for (size_t j = 0; j < row_len; ++j) acc[j] += row[j] * k[i];
    }
    float* out = dst + static_cast<size_t>(o) * row_len;
    for (size_t j = 0; j < row_len; ++j) out[j] = static_cast<float>(acc[j]);
  }
}

// PIL's NEAREST (Geometry.c, ImagingScaleAffine): positions accumulate in double, then truncate.
std::vector<int> nearest_indices(int in_size, int out_size) {
  const double step = static_cast<double>(in_size) / out_size;
  std::vector<int> idx(out_size);
  double pos = step * 0.5;
  for (int o = 0; o < out_size; ++o) {
    idx[o] = std::clamp(static_cast<int>(pos), 0, in_size - 1);
    pos += step;
  }
  return idx;
}

template <class T>
void resize_nearest(const T* src, int in_w, int in_h, T* dst, int out_w, int out_h, int channels) {
  auto xs = nearest_indices(in_w, out_w), ys = nearest_indices(in_h, out_h);
  for (int y = 0; y < out_h; ++y) {
    const T* row = src + static_cast<size_t>(ys[y]) * in_w * channels;
    T* out = dst + static_cast<size_t>(y) * out_w * channels;
    for (int x = 0; x < out_w; ++x) std::memcpy(out + x * channels, row + xs[x] * channels, sizeof(T) * channels);
  }
}

}  // namespace

const char* resize_mode_name(ResizeMode m) {
  switch (m) {
    case ResizeMode::bilinear: return "bilinear";
    case ResizeMode::area: return "area";
    case ResizeMode::nearest: return "nearest";
  }
  return "?";
}

ResizeMode parse_resize_mode(const std::string& name) {
  for (ResizeMode m : {ResizeMode::bilinear, ResizeMode::area, ResizeMode::nearest})
    if (name == resize_mode_name(m)) return m;
  throw Error(ErrorKind::invalid_input, "unknown resize mode '" + name + "' (bilinear, area or nearest)");
}

Image fit_within(const Image& src, int max_side) {
  const int longer = std::max(src.width, src.height);
  if (max_side <= 0 || longer <= max_side) return src;
  const double s = static_cast<double>(max_side) / longer;
  const int w = std::max(1, static_cast<int>(std::lround(src.width * s)));
  const int h = std::max(1, static_cast<int>(std::lround(src.height * s)));
  return resize(src, w, h, ResizeMode::area);  // a box average: as sharp for viewing, a third of the taps
}

Image resize(const Image& src, int width, int height, ResizeMode mode) {
  check_sizes(src.width, src.height, width, height);
  if (width == src.width && height == src.height) return src;
  Image out = Image::blank(width, height);
  if (mode == ResizeMode::nearest) {
    resize_nearest(src.rgb.data(), src.width, src.height, out.rgb.data(), width, height, 3);
    return out;
  }
  // Horizontal first, through an 8-bit intermediate, as PIL does.
  Filter f = filter_for(mode);
  Image mid;
  const Image* rows = &src;  // what the vertical pass reads (no copy of an unchanged width)
  if (width != src.width) {
    Taps t = compute_taps(src.width, width, f);
    mid = Image::blank(width, src.height);
    horizontal_u8(src.rgb.data(), src.width, mid.rgb.data(), width, src.height, 3, t);
    if (height == src.height) return mid;
    rows = &mid;
  }
  Taps t = compute_taps(src.height, height, f);
  vertical_u8(rows->rgb.data(), out.rgb.data(), height, static_cast<size_t>(width) * 3, t);
  return out;
}

FloatMap resize(const FloatMap& src, int width, int height, ResizeMode mode) {
  check_sizes(src.width, src.height, width, height);
  if (width == src.width && height == src.height) return src;
  FloatMap out = FloatMap::filled(width, height);
  if (mode == ResizeMode::nearest) {
    resize_nearest(src.values.data(), src.width, src.height, out.values.data(), width, height, 1);
    return out;
  }
  Filter f = filter_for(mode);
  FloatMap mid = src;
  if (width != src.width) {
    Taps t = compute_taps(src.width, width, f);
    mid = FloatMap::filled(width, src.height);
    horizontal_f32(src.values.data(), src.width, mid.values.data(), width, src.height, t);
  }
  if (height == src.height) return mid;
  Taps t = compute_taps(src.height, height, f);
  vertical_f32(mid.values.data(), out.values.data(), height, static_cast<size_t>(width), t);
  return out;
}

Image center_crop_to_aspect(const Image& src, int width, int height) {
  check_sizes(src.width, src.height, width, height);
  int cw = src.width, ch = src.height;
  // Compare src.width / src.height with width / height without dividing.
  if (static_cast<int64_t>(src.width) * height > static_cast<int64_t>(src.height) * width)
    cw = std::max(1, static_cast<int>(std::lround(static_cast<double>(src.height) * width / height)));
  else
    ch = std::max(1, static_cast<int>(std::lround(static_cast<double>(src.width) * height / width)));
  if (cw == src.width && ch == src.height) return src;
  const int x0 = (src.width - cw) / 2, y0 = (src.height - ch) / 2;
  Image out = Image::blank(cw, ch);
  for (int y = 0; y < ch; ++y) std::memcpy(out.pixel(0, y), src.pixel(x0, y0 + y), static_cast<size_t>(cw) * 3);
  return out;
}

FloatMap upsample_bilinear(const FloatMap& src, int width, int height) {
  check_sizes(src.width, src.height, width, height);
  struct Tap {
    int i0, i1;
    double w1;
  };
  auto taps = [](int in, int out) {
    std::vector<Tap> t(out);
    const double scale = static_cast<double>(in) / out;
    for (int o = 0; o < out; ++o) {
      double s = std::max((o + 0.5) * scale - 0.5, 0.0);
      int i0 = std::min(static_cast<int>(s), in - 1);
      t[o] = {i0, std::min(i0 + 1, in - 1), s - i0};
    }
    return t;
  };
  auto xs = taps(src.width, width), ys = taps(src.height, height);
  FloatMap out = FloatMap::filled(width, height);
  for (int y = 0; y < height; ++y) {
    const Tap& ty = ys[y];
    for (int x = 0; x < width; ++x) {
      const Tap& tx = xs[x];
      double top = src.at(tx.i0, ty.i0) * (1 - tx.w1) + src.at(tx.i1, ty.i0) * tx.w1;
      double bottom = src.at(tx.i0, ty.i1) * (1 - tx.w1) + src.at(tx.i1, ty.i1) * tx.w1;
      out.at(x, y) = static_cast<float>(top * (1 - ty.w1) + bottom * ty.w1);
    }
  }
  return out;
}

}  // namespace dermal::vision
