#include "explain/lesion_check.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "engine/error.h"

namespace dermal::explain {

using nlohmann::json;

namespace {

constexpr int kFileVersion = 2;  // 2 added the backbone part; 1 (content + appearance) still reads

[[noreturn]] void bad_file(const std::string& source, const std::string& what) {
  throw Error(ErrorKind::invalid_model, "lesion-check statistics " + source + ": " + what);
}

// Inverts a symmetric positive-definite matrix (row-major, n x n) through its Cholesky factor.
std::vector<double> spd_inverse(std::vector<double> a, int n) {
  // a = L L', L in the lower triangle of a.
  for (int j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) throw Error(ErrorKind::invalid_input, "the feature covariance is not positive definite");
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (int i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (int k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / d;
    }
  }
  // inv(L), column by column, then inv(A) = inv(L)' inv(L).
  std::vector<double> li(static_cast<size_t>(n) * n, 0.0);
  for (int c = 0; c < n; ++c) {
    li[c * n + c] = 1 / a[c * n + c];
    for (int i = c + 1; i < n; ++i) {
      double s = 0;
      for (int k = c; k < i; ++k) s += a[i * n + k] * li[k * n + c];
      li[i * n + c] = -s / a[i * n + i];
    }
  }
  std::vector<double> inv(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) {
      double s = 0;
      for (int k = i; k < n; ++k) s += li[k * n + i] * li[k * n + j];
      inv[i * n + j] = inv[j * n + i] = s;
    }
  return inv;
}

// Means per class (classes with too few images fall back to the overall mean's role: they are
// left out) and one shared covariance, shrunk towards its average variance so that it stays
// invertible with few images or many dimensions.
MahalanobisModel fit_mahalanobis(const std::vector<const std::vector<double>*>& rows, const std::vector<int>& classes) {
  MahalanobisModel m;
  const size_t n = rows.size();
  const int d = static_cast<int>(rows.front()->size());
  m.dims = d;
  std::map<int, std::pair<std::vector<double>, int>> sums;
  for (size_t i = 0; i < n; ++i) {
    auto& s = sums[classes[i]];
    if (s.first.empty()) s.first.assign(static_cast<size_t>(d), 0.0);
    for (int j = 0; j < d; ++j) s.first[j] += (*rows[i])[j];
    ++s.second;
  }
  const int min_count = std::max(2, static_cast<int>(n / 200));
  std::map<int, std::vector<double>> centre;
  for (auto& [c, s] : sums) {
    for (double& v : s.first) v /= s.second;
    centre[c] = s.first;
    if (s.second >= min_count) m.means.emplace_back(s.first.begin(), s.first.end());
  }
  std::vector<double> cov(static_cast<size_t>(d) * d, 0.0);
  std::vector<double> r(static_cast<size_t>(d));
  for (size_t i = 0; i < n; ++i) {
    const auto& mu = centre[classes[i]];
    for (int j = 0; j < d; ++j) r[j] = (*rows[i])[j] - mu[j];
    for (int a = 0; a < d; ++a) {
      const double ra = r[a];
      double* row = &cov[static_cast<size_t>(a) * d];
      for (int b = 0; b <= a; ++b) row[b] += ra * r[b];
    }
  }
  double trace = 0;
  for (int a = 0; a < d; ++a) trace += cov[a * d + a] / static_cast<double>(n);
  const double shrink = std::clamp(static_cast<double>(d) / static_cast<double>(n + d), 0.01, 0.5);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b <= a; ++b) {
      double v = (1 - shrink) * cov[a * d + b] / static_cast<double>(n) + (a == b ? shrink * trace / d : 0.0);
      cov[a * d + b] = cov[b * d + a] = v;
    }
  std::vector<double> p = spd_inverse(std::move(cov), d);
  m.precision.assign(p.begin(), p.end());
  m.prepare();
  return m;
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double at = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(at)), hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (at - static_cast<double>(lo));
}

json model_json(const MahalanobisModel& m) {
  // The precision is symmetric: its upper triangle, row by row.
  std::vector<float> upper;
  upper.reserve(static_cast<size_t>(m.dims) * (m.dims + 1) / 2);
  for (int a = 0; a < m.dims; ++a)
    for (int b = a; b < m.dims; ++b) upper.push_back(m.precision[static_cast<size_t>(a) * m.dims + b]);
  return {{"dims", m.dims}, {"scale", m.scale}, {"means", m.means}, {"precision_upper", upper}};
}

MahalanobisModel model_from_json(const json& j, const std::string& source, const char* part) {
  auto fail = [&](const std::string& what) { bad_file(source, std::string(part) + ": " + what); };
  if (!j.is_object()) fail("missing");
  MahalanobisModel m;
  try {
    m.dims = j.at("dims").get<int>();
    m.scale = j.at("scale").get<double>();
    if (m.dims < 1 || m.dims > 16384) fail("dims must be from 1 to 16384");
    if (!(m.scale > 0) || !std::isfinite(m.scale)) fail("scale must be a positive number");
    for (const auto& mean : j.at("means")) {
      m.means.push_back(mean.get<std::vector<float>>());
      if (static_cast<int>(m.means.back().size()) != m.dims) fail("a mean has the wrong length");
    }
    if (m.means.empty()) fail("no means");
    const auto upper = j.at("precision_upper").get<std::vector<float>>();
    if (upper.size() != static_cast<size_t>(m.dims) * (m.dims + 1) / 2) fail("precision_upper has the wrong length");
    m.precision.assign(static_cast<size_t>(m.dims) * m.dims, 0.f);
    size_t k = 0;
    for (int a = 0; a < m.dims; ++a)
      for (int b = a; b < m.dims; ++b) m.precision[static_cast<size_t>(a) * m.dims + b] = m.precision[static_cast<size_t>(b) * m.dims + a] = upper[k++];
  } catch (const json::exception& e) {
    fail(std::string("malformed (") + e.what() + ")");
  }
  for (const auto& mean : m.means)
    for (float v : mean)
      if (!std::isfinite(v)) fail("a mean is not finite");
  for (float v : m.precision)
    if (!std::isfinite(v)) fail("the precision is not finite");
  m.prepare();
  return m;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

}  // namespace

LesionCheckMode parse_lesion_check_mode(const std::string& text) {
  if (text == "on") return LesionCheckMode::on;
  if (text == "warn") return LesionCheckMode::warn;
  if (text == "off") return LesionCheckMode::off;
  throw Error(ErrorKind::invalid_input, "lesion check mode '" + text.substr(0, 32) + "' is not one of on, warn, off");
}

const char* lesion_check_mode_name(LesionCheckMode mode) {
  switch (mode) {
    case LesionCheckMode::on: return "on";
    case LesionCheckMode::warn: return "warn";
    case LesionCheckMode::off: return "off";
  }
  return "on";
}

void MahalanobisModel::prepare() {
  p_means_.clear();
  m_p_m_.clear();
  for (const auto& mean : means) {
    std::vector<double> pm(static_cast<size_t>(dims), 0.0);
    double mpm = 0;
    for (int a = 0; a < dims; ++a) {
      const float* row = &precision[static_cast<size_t>(a) * dims];
      for (int b = 0; b < dims; ++b) pm[a] += static_cast<double>(row[b]) * mean[b];
      mpm += mean[a] * pm[a];
    }
    p_means_.push_back(std::move(pm));
    m_p_m_.push_back(mpm);
  }
}

double MahalanobisModel::distance(const std::vector<double>& x) const {
  if (static_cast<int>(x.size()) != dims)
    throw Error(ErrorKind::internal, "lesion check: " + std::to_string(x.size()) + " features for " + std::to_string(dims));
  DERMAL_ASSERT(p_means_.size() == means.size());
  double xpx = 0;
  for (int a = 0; a < dims; ++a) {
    const float* row = &precision[static_cast<size_t>(a) * dims];
    double s = 0;
    for (int b = 0; b < dims; ++b) s += row[b] * x[b];
    xpx += x[a] * s;
  }
  double best = INFINITY;
  for (size_t k = 0; k < means.size(); ++k) {
    double cross = 0;
    for (int a = 0; a < dims; ++a) cross += x[a] * p_means_[k][a];
    best = std::min(best, xpx - 2 * cross + m_p_m_[k]);
  }
  return std::max(0.0, best) / scale;
}

size_t LesionCheckStats::bytes() const {
  auto of = [](const MahalanobisModel& m) { return (m.precision.size() + m.means.size() * m.dims) * sizeof(float); };
  return of(content) + of(appearance) + of(backbone);
}

std::vector<double> channel_means(const float* x, int64_t channels, int64_t plane) {
  std::vector<double> out(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    double s = 0;
    for (int64_t i = 0; i < plane; ++i) s += x[c * plane + i];
    out[c] = s / static_cast<double>(plane);
  }
  return out;
}

std::vector<double> channel_means_and_stds(const float* x, int64_t channels, int64_t plane) {
  std::vector<double> out = channel_means(x, channels, plane);
  out.resize(static_cast<size_t>(2 * channels));
  for (int64_t c = 0; c < channels; ++c) {
    double s = 0;
    for (int64_t i = 0; i < plane; ++i) {
      const double d = x[c * plane + i] - out[c];
      s += d * d;
    }
    out[channels + c] = std::sqrt(s / static_cast<double>(std::max<int64_t>(1, plane - 1)));
  }
  return out;
}

LesionCheckResult run_lesion_check(const LesionCheckStats& stats, const LesionFeatures& f, LesionCheckMode mode,
                                   double threshold_override) {
  if (mode == LesionCheckMode::off) return lesion_check_unavailable(mode, "the lesion check is off");
  LesionCheckResult r;
  r.mode = mode;
  r.available = true;
  const char* largest = "";
  for (auto [name, model, x, what] : {std::tuple{"backbone", &stats.backbone, &f.backbone, "what it shows is"},
                                      std::tuple{"content", &stats.content, &f.content, "its content is"},
                                      std::tuple{"appearance", &stats.appearance, &f.appearance, "its colours and textures are"}}) {
    if (model->dims == 0) continue;
    const double d = model->distance(*x);
    r.parts.emplace_back(name, d);
    if (r.parts.size() == 1 || d > r.score) {
      r.score = d;
      largest = what;
    }
  }
  r.threshold = threshold_override > 0 ? threshold_override : stats.threshold;
  r.passed = r.score <= r.threshold;
  if (r.passed) {
    r.reason = "looks like the skin-lesion images the check was fitted on";
  } else {
    r.reason = std::string("does not look like a skin-lesion image: ") + largest + " far from the lesion images the "
               "check was fitted on (score " + fixed(r.score, 2) + " > " + fixed(r.threshold, 2) + ")";
  }
  return r;
}

LesionCheckResult lesion_check_unavailable(LesionCheckMode mode, const std::string& why) {
  LesionCheckResult r;
  r.mode = mode;
  r.available = false;
  r.reason = why;
  return r;
}

json lesion_check_json(const LesionCheckResult& r) {
  json j{{"mode", lesion_check_mode_name(r.mode)}, {"available", r.available}, {"reason", r.reason}};
  if (!r.available) {
    j["passed"] = nullptr;
    j["score"] = nullptr;
    j["threshold"] = nullptr;
    return j;
  }
  auto round4 = [](double v) { return std::round(v * 1e4) / 1e4; };
  j["passed"] = r.passed;
  j["score"] = round4(r.score);
  j["threshold"] = round4(r.threshold);
  j["parts"] = json::object();
  for (const auto& [name, d] : r.parts) j["parts"][name] = round4(d);
  return j;
}

LesionCheckStats fit_lesion_check(const std::vector<LesionFeatures>& fit, const std::vector<int>& classes,
                                  const std::vector<LesionFeatures>& calibration, const std::vector<int>& groups,
                                  double pass_quantile) {
  if (fit.size() < 20 || calibration.size() < 10)
    throw Error(ErrorKind::invalid_input, "fitting the lesion check needs at least 30 in-domain images (got " +
                                              std::to_string(fit.size() + calibration.size()) + ")");
  if (!(pass_quantile > 0.5 && pass_quantile < 1))
    throw Error(ErrorKind::invalid_input, "the pass quantile must be between 0.5 and 1");
  // The parts the features hold: each is fitted, then scaled at the pass quantile of every source.
  using Part = std::vector<double> LesionFeatures::*;
  LesionCheckStats s;
  std::vector<std::pair<Part, MahalanobisModel*>> parts;
  for (auto [member, model] : {std::pair{&LesionFeatures::backbone, &s.backbone}, std::pair{&LesionFeatures::content, &s.content},
                               std::pair{&LesionFeatures::appearance, &s.appearance}})
    if (!(fit.front().*member).empty()) parts.emplace_back(member, model);
  if (parts.empty()) throw Error(ErrorKind::internal, "lesion check: no features to fit");
  for (auto [member, model] : parts) {
    std::vector<const std::vector<double>*> rows;
    for (const auto& f : fit) rows.push_back(&(f.*member));
    // content: the model's classes; the others one Gaussian
    *model = fit_mahalanobis(rows, member == &LesionFeatures::content ? classes : std::vector<int>(fit.size(), 0));
    std::map<int, std::vector<double>> by_group;
    for (size_t i = 0; i < calibration.size(); ++i) by_group[groups.at(i)].push_back(model->distance(calibration[i].*member));
    double scale = 0;
    for (const auto& [group, d] : by_group) {
      if (d.size() < 10 && by_group.size() > 1) continue;  // too few to say where its tail is
      scale = std::max(scale, quantile(d, pass_quantile));
    }
    if (!(scale > 0)) throw Error(ErrorKind::invalid_input, "the in-domain images are all alike: the check cannot be fitted");
    model->scale = scale;
  }
  s.threshold = 1;
  return s;
}

LesionCheckStats parse_lesion_check(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    bad_file(source, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("lesion_check_version"))
    bad_file(source, "not a lesion-check file (no lesion_check_version)");
  if (j["lesion_check_version"] != kFileVersion && j["lesion_check_version"] != 1)
    bad_file(source, "version " + j["lesion_check_version"].dump() + " is not supported (expected " +
                         std::to_string(kFileVersion) + ")");
  LesionCheckStats s;
  s.source = source;
  try {
    s.content_layers = j.value("content_layers", std::vector<std::string>());
    s.appearance_layers = j.value("appearance_layers", std::vector<std::string>());
    s.backbone_layers = j.value("backbone_layers", std::vector<std::string>());
    s.backbone_file = j.value("backbone_file", std::string());
    s.threshold = j.at("threshold").get<double>();
  } catch (const json::exception& e) {
    bad_file(source, std::string("malformed (") + e.what() + ")");
  }
  if (!(s.threshold > 0) || !std::isfinite(s.threshold)) bad_file(source, "threshold must be a positive number");
  if (s.content_layers.empty() && s.appearance_layers.empty() && s.backbone_layers.empty())
    bad_file(source, "no layers named");
  if (s.backbone_layers.empty() != s.backbone_file.empty()) bad_file(source, "backbone_file and backbone_layers go together");
  // The backbone is a file name looked up among known folders, never a path into the machine.
  if (s.backbone_file.find('/') != std::string::npos || s.backbone_file.find("..") != std::string::npos)
    bad_file(source, "backbone_file must be a file name, not a path");
  for (auto [layers, model, name] : {std::tuple{&s.content_layers, &s.content, "content"},
                                     std::tuple{&s.appearance_layers, &s.appearance, "appearance"},
                                     std::tuple{&s.backbone_layers, &s.backbone, "backbone"}})
    if (!layers->empty()) *model = model_from_json(j.value(name, json()), source, name);
  s.fitted = j.value("fitted", json::object());
  return s;
}

LesionCheckStats load_lesion_check(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::invalid_model, "cannot open lesion-check statistics '" + path + "'");
  std::ostringstream s;
  s << f.rdbuf();
  return parse_lesion_check(s.str(), path);
}

std::string lesion_check_to_json(const LesionCheckStats& s) {
  json j{{"lesion_check_version", kFileVersion},
         {"about", "Dermal's lesion check for one model (dermal fit-check; docs/lesion_check.md)"},
         {"threshold", s.threshold},
         {"fitted", s.fitted}};
  if (!s.backbone_layers.empty()) j["backbone_file"] = s.backbone_file;
  for (auto [layers, model, name] : {std::tuple{&s.content_layers, &s.content, "content"},
                                     std::tuple{&s.appearance_layers, &s.appearance, "appearance"},
                                     std::tuple{&s.backbone_layers, &s.backbone, "backbone"}})
    if (!layers->empty()) {
      j[std::string(name) + "_layers"] = *layers;
      j[name] = model_json(*model);
    }
  return j.dump() + "\n";  // one line: about 100,000 numbers
}

}  // namespace dermal::explain
