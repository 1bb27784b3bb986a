// The lesion check: is this a skin-lesion image at all? It runs on the classifier's own
// activations, after the forward pass and before any diagnosis is shown, and refuses photos of
// cups, cats, text or walls that the classifier would otherwise label with confidence.
//
// Distances from the lesion images the check was fitted on (docs/lesion_check.md has the study
// that chose them), each from a part the statistics file holds:
//  - backbone (the bundled model's check, and `dermal fit-check`'s default): the Mahalanobis
//    distance of the channel means and standard deviations of two layers of the check's own small
//    ImageNet-pretrained network (models/lesion_backbone_mnv2_112.onnx) to their mean. A lesion
//    classifier trained on 10,000 dermoscopy images knows nothing of cats; a network that learned
//    from everyday photos does, and it reads the image the same way for every model;
//  - content: the Mahalanobis distance of the penultimate features (the channel means of the last
//    spatial layer, what global pooling feeds the classifier, and of the last layer at the
//    resolution before it) to the nearest class mean, with one shared covariance (Lee et al.,
//    NeurIPS 2018); classes are the model's own top classes, so fitting needs no labels;
//  - appearance: the Mahalanobis distance of early layers' per-channel means and standard
//    deviations (the last layers at strides 2 and 4) to their mean: colour, texture and blur, the
//    low-level statistics that differ between a dermoscopy image and a photo (Sastry & Oore,
//    ICML 2020, in its cheapest form).
// Each distance is divided by its value at the fitting images' pass quantile, and the score is the
// largest of them: the image passes when score <= threshold (1 unless overridden).
//
//   explain::LesionCheckStats s = explain::load_lesion_check("models/x.check.json");
//   explain::LesionCheckResult r = explain::run_lesion_check(s, features, explain::LesionCheckMode::on);
//   r.passed, r.score, r.threshold, r.reason
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace dermal::explain {

enum class LesionCheckMode {
  on,    // a failed check withholds the diagnosis (unless the caller forces it)
  warn,  // the diagnosis is shown with the failed check beside it
  off,   // not computed
};
LesionCheckMode parse_lesion_check_mode(const std::string& text);  // throws invalid_input
const char* lesion_check_mode_name(LesionCheckMode mode);

// What the check reads from one forward pass.
struct LesionFeatures {
  std::vector<double> content;     // channel means of each content layer
  std::vector<double> appearance;  // channel means, then channel standard deviations, of each appearance layer
  std::vector<double> backbone;    // the same as appearance, from the backbone's layers
};

// A Mahalanobis distance: (x - m)' P (x - m) to the nearest of the means, divided by `scale`.
struct MahalanobisModel {
  int dims = 0;
  std::vector<std::vector<float>> means;
  std::vector<float> precision;  // dims x dims, symmetric
  double scale = 1;
  double distance(const std::vector<double>& x) const;
  // Precomputes P m and m' P m for each mean, so that a distance costs one matrix-vector
  // product whatever the number of means: (x-m)'P(x-m) = x'Px - 2 x'(Pm) + m'Pm.
  void prepare();

 private:
  std::vector<std::vector<double>> p_means_;
  std::vector<double> m_p_m_;
};

struct LesionCheckStats {
  // Tensor names in the model the check was fitted for; the features are their statistics, in order.
  // A part without layers is not used (its model has dims 0).
  std::vector<std::string> content_layers, appearance_layers;
  // The check's own network, when it reads one: a file name, found beside the statistics or among
  // the bundled models, and the tensors of it that the backbone part reads.
  std::string backbone_file;
  std::vector<std::string> backbone_layers;
  MahalanobisModel content, appearance, backbone;
  double threshold = 1;          // the fitted pass threshold on the score
  nlohmann::json fitted;         // what it was fitted on, and how it did (for /health and docs)
  std::string source;            // the file it came from
  size_t bytes() const;          // what the statistics hold in memory
};

struct LesionCheckResult {
  LesionCheckMode mode = LesionCheckMode::on;
  bool available = false;  // statistics loaded and the check on
  bool passed = true;      // meaningful only when available
  double score = 0, threshold = 0;
  std::vector<std::pair<std::string, double>> parts;  // each part's distance: "backbone", "content", "appearance"
  std::string reason;
  bool withholds_diagnosis() const { return available && !passed && mode == LesionCheckMode::on; }
};

// The activation means and standard deviations the check reads, from NCHW float32 data.
std::vector<double> channel_means(const float* nchw, int64_t channels, int64_t plane);
std::vector<double> channel_means_and_stds(const float* nchw, int64_t channels, int64_t plane);

LesionCheckResult run_lesion_check(const LesionCheckStats& stats, const LesionFeatures& f, LesionCheckMode mode,
                                   double threshold_override = 0);
// The result when there are no statistics (or the check is off): never a silent pass.
LesionCheckResult lesion_check_unavailable(LesionCheckMode mode, const std::string& why);
// The `lesion_check` object every front end shows.
nlohmann::json lesion_check_json(const LesionCheckResult& r);

// Fits the check: `fit` features with their class labels (the model's own top class) give the
// means and covariances of each part the features hold (content by class, the others as one
// Gaussian). Each part's scale is its `pass_quantile` quantile over `calibration`
// (images not used for the means), taken in each group (a source: one clinic or camera) with at
// least 10 images and then the largest, so that share of every source passes at threshold 1.
LesionCheckStats fit_lesion_check(const std::vector<LesionFeatures>& fit, const std::vector<int>& classes,
                                  const std::vector<LesionFeatures>& calibration, const std::vector<int>& groups,
                                  double pass_quantile);

LesionCheckStats parse_lesion_check(const std::string& json_text, const std::string& source);
LesionCheckStats load_lesion_check(const std::string& path);  // throws invalid_model on a bad file
std::string lesion_check_to_json(const LesionCheckStats& s);

}  // namespace dermal::explain
