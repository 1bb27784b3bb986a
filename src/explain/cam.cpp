#include "explain/cam.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/error.h"
#include "explain/softmax.h"
#include "vision/resize.h"

namespace dermal::explain {

using engine::Tensor;

namespace {

struct Names {
  CamMethod method;
  const char* name;
};
constexpr Names kNames[] = {{CamMethod::gradcam, "gradcam"},   {CamMethod::gradcampp, "gradcam++"},
                            {CamMethod::hirescam, "hirescam"}, {CamMethod::xgradcam, "xgradcam"},
                            {CamMethod::layercam, "layercam"}, {CamMethod::eigencam, "eigencam"},
                            {CamMethod::scorecam, "scorecam"}};

// A view of a [1,C,H,W] or [C,H,W] float tensor.
struct Channels {
  int64_t c, hw;
  const float* data;
  const float* channel(int64_t k) const { return data + k * hw; }
};

Channels channels(const Tensor& t, const char* what) {
  const auto& s = t.shape();
  if (!((s.size() == 4 && s[0] == 1) || s.size() == 3) || t.layout() != engine::Layout::plain)
    throw Error(ErrorKind::invalid_input, std::string(what) + " must be a plain [1,C,H,W] or [C,H,W] tensor, got " +
                                              engine::shape_str(s));
  int64_t c = s[s.size() - 3], hw = s[s.size() - 2] * s[s.size() - 1];
  return {c, hw, t.data<float>()};
}

std::vector<float> relu_weighted_sum(const Channels& a, const std::vector<double>& w) {
  std::vector<double> sum(static_cast<size_t>(a.hw), 0.0);
  for (int64_t k = 0; k < a.c; ++k) {
    if (w[k] == 0) continue;
    const float* ak = a.channel(k);
    for (int64_t i = 0; i < a.hw; ++i) sum[i] += w[k] * ak[i];
  }
  std::vector<float> out(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) out[i] = static_cast<float>(std::max(sum[i], 0.0));
  return out;
}

}  // namespace

CamMethod parse_cam_method(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char ch) { return std::tolower(ch); });
  n.erase(std::remove_if(n.begin(), n.end(), [](char ch) { return ch == '-' || ch == '_'; }), n.end());
  if (n == "gradcampp" || n == "gradcamplusplus") n = "gradcam++";
  for (const auto& e : kNames)
    if (n == e.name) return e.method;
  std::string all;
  for (const auto& e : kNames) all += std::string(all.empty() ? "" : ", ") + e.name;
  throw Error(ErrorKind::invalid_input, "unknown explanation method '" + name + "' (one of: " + all + ")");
}

std::string cam_method_name(CamMethod m) {
  for (const auto& e : kNames)
    if (e.method == m) return e.name;
  return "?";
}

std::vector<std::string> cam_method_names() {
  std::vector<std::string> out;
  for (const auto& e : kNames) out.push_back(e.name);
  return out;
}

bool needs_gradient(CamMethod m) { return m != CamMethod::eigencam && m != CamMethod::scorecam; }

std::vector<float> cam_from_gradients(CamMethod m, const Tensor& A, const Tensor& G) {
  Channels a = channels(A, "activation"), g = channels(G, "gradient");
  if (A.shape().back() != G.shape().back() || a.c != g.c || a.hw != g.hw)
    throw Error(ErrorKind::internal, "activation " + engine::shape_str(A.shape()) + " and gradient " +
                                         engine::shape_str(G.shape()) + " differ");
  std::vector<double> w(static_cast<size_t>(a.c), 0.0);
  switch (m) {
    case CamMethod::gradcam:
      for (int64_t k = 0; k < a.c; ++k) {
        const float* gk = g.channel(k);
        w[k] = std::accumulate(gk, gk + g.hw, 0.0) / static_cast<double>(g.hw);
      }
      return relu_weighted_sum(a, w);
    case CamMethod::gradcampp:
      for (int64_t k = 0; k < a.c; ++k) {
        const float *ak = a.channel(k), *gk = g.channel(k);
        const double sum_a = std::accumulate(ak, ak + a.hw, 0.0);
        for (int64_t i = 0; i < a.hw; ++i) {
          // alpha = g^2 / (2 g^2 + sum_A g^3) = 1 / (2 + sum_A g) where g != 0. Cancelling
          // exactly matters: real gradients are ~1e-4, so an epsilon here would dominate.
          const double g1 = gk[i], den = 2 + sum_a * g1;
          if (g1 == 0 || den == 0) continue;
          w[k] += std::max(g1, 0.0) / den;
        }
      }
      return relu_weighted_sum(a, w);
    case CamMethod::xgradcam:
      for (int64_t k = 0; k < a.c; ++k) {
        const float *ak = a.channel(k), *gk = g.channel(k);
        double num = 0, den = 0;
        for (int64_t i = 0; i < a.hw; ++i) {
          num += static_cast<double>(gk[i]) * ak[i];
          den += ak[i];
        }
        w[k] = num / (den + 1e-7);
      }
      return relu_weighted_sum(a, w);
    case CamMethod::hirescam:
    case CamMethod::layercam: {
      std::vector<double> sum(static_cast<size_t>(a.hw), 0.0);
      for (int64_t k = 0; k < a.c; ++k) {
        const float *ak = a.channel(k), *gk = g.channel(k);
        for (int64_t i = 0; i < a.hw; ++i) {
          const double gi = m == CamMethod::layercam ? std::max(gk[i], 0.f) : gk[i];
          sum[i] += gi * ak[i];
        }
      }
      std::vector<float> out(sum.size());
      for (size_t i = 0; i < sum.size(); ++i) out[i] = static_cast<float>(std::max(sum[i], 0.0));
      return out;
    }
    case CamMethod::eigencam:
    case CamMethod::scorecam: break;
  }
  throw Error(ErrorKind::internal, cam_method_name(m) + " is not a gradient method");
}

std::vector<float> eigen_cam(const Tensor& A) {
  Channels a = channels(A, "activation");
  const int64_t n = a.hw;
  // X: n x C, centred per channel. Its first principal direction's projection X v equals
  // sigma * u, u the top eigenvector of the n x n Gram matrix X X^T (n is small: H*W).
  std::vector<double> x(static_cast<size_t>(n * a.c));
  for (int64_t k = 0; k < a.c; ++k) {
    const float* ak = a.channel(k);
    const double mean = std::accumulate(ak, ak + n, 0.0) / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) x[i * a.c + k] = ak[i] - mean;
  }
  std::vector<double> gram(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < a.c; ++k) s += x[i * a.c + k] * x[j * a.c + k];
      gram[i * n + j] = gram[j * n + i] = s;
    }
  // Power iteration from a fixed start; converges to the dominant eigenvector. (Not the
  // constant vector: centring puts it in the Gram matrix's null space.)
  std::vector<double> u(static_cast<size_t>(n)), next(u.size());
  for (int64_t i = 0; i < n; ++i) u[i] = std::sin(1.0 + static_cast<double>(i));
  double lambda = 0;
  for (int iter = 0; iter < 1000; ++iter) {
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += gram[i * n + j] * u[j];
      next[i] = s;
    }
    const double norm = std::sqrt(std::inner_product(next.begin(), next.end(), next.begin(), 0.0));
    if (norm == 0) break;  // a constant activation: no direction at all
    double change = 0;
    for (int64_t i = 0; i < n; ++i) {
      next[i] /= norm;
      change = std::max(change, std::abs(next[i] - u[i]));
    }
    u.swap(next);
    lambda = norm;
    if (change < 1e-12) break;
  }
  const double sigma = std::sqrt(std::max(lambda, 0.0));
  // The sign that correlates with the channel sum: the map points where the layer is active.
  double corr = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < a.c; ++k) corr += u[i] * x[i * a.c + k];
  if (corr < 0)
    for (double& v : u) v = -v;
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(sigma * u[i]);
  return out;
}

std::vector<float> weighted_cam(const Tensor& A, const std::vector<float>& weights) {
  Channels a = channels(A, "activation");
  if (static_cast<int64_t>(weights.size()) != a.c) throw Error(ErrorKind::internal, "one weight per channel expected");
  return relu_weighted_sum(a, std::vector<double>(weights.begin(), weights.end()));
}

void normalize01(std::vector<float>& map) {
  if (map.empty()) return;
  auto [lo, hi] = std::minmax_element(map.begin(), map.end());
  const float min = *lo, range = *hi - *lo;
  for (float& v : map) v = range > 0 ? (v - min) / range : 0.f;
}

std::vector<float> score_cam(const Tensor& x, bool nhwc, const Tensor& activation, int class_index, int batch,
                             const std::function<Tensor(const Tensor&)>& logits_of) {
  const engine::Shape& xs = x.shape();
  const int64_t H = nhwc ? xs[1] : xs[2], W = nhwc ? xs[2] : xs[3], channels = nhwc ? xs[3] : xs[1];
  const engine::Shape& as = activation.shape();
  const int64_t C = as[1], h = as[2], w = as[3];
  batch = std::max(1, std::min<int>(batch, static_cast<int>(C)));
  const int64_t plane = H * W, image = channels * plane;
  const float* a = activation.data<float>();
  const float* xp = x.data<float>();
  std::vector<float> weights(static_cast<size_t>(C), 0.f);
  Tensor masked = Tensor::zeros(engine::DType::f32, nhwc ? engine::Shape{batch, H, W, channels} : engine::Shape{batch, channels, H, W});
  for (int64_t k0 = 0; k0 < C; k0 += batch) {
    const int64_t n = std::min<int64_t>(batch, C - k0);
    std::vector<bool> flat(static_cast<size_t>(n), false);
    for (int64_t b = 0; b < n; ++b) {
      vision::FloatMap m{static_cast<int>(w), static_cast<int>(h), std::vector<float>(a + (k0 + b) * h * w, a + (k0 + b + 1) * h * w)};
      vision::FloatMap up = vision::upsample_bilinear(m, static_cast<int>(W), static_cast<int>(H));
      auto [lo, hi] = std::minmax_element(up.values.begin(), up.values.end());
      const float min = *lo, range = *hi - *lo;
      flat[b] = range == 0;
      float* dst = masked.data<float>() + b * image;
      for (int64_t i = 0; i < plane; ++i) {
        const float mask = flat[b] ? 0.f : (up.values[i] - min) / range;
        for (int64_t c = 0; c < channels; ++c) {
          const int64_t at = nhwc ? i * channels + c : c * plane + i;
          dst[at] = xp[at] * mask;
        }
      }
    }
    const Tensor logits = logits_of(masked);
    const int64_t classes = logits.numel() / batch;
    for (int64_t b = 0; b < n; ++b) {
      if (flat[b]) continue;  // a constant channel masks nothing: the reference skips it too
      const float* l = logits.data<float>() + b * classes;
      const std::vector<double> p = softmax(std::vector<double>(l, l + classes));
      weights[k0 + b] = static_cast<float>(p[class_index]);
    }
  }
  return weighted_cam(activation, weights);
}

}  // namespace dermal::explain
