// Evaluation (serve/metrics.h is another thing: the service's Prometheus counters): how good a
// classifier is on labelled images: accuracy, balanced accuracy (mean per-class recall, the ISIC
// challenge metric), per-class recall, precision and one-vs-rest AUC, the confusion matrix, and
// the expected calibration error of the top probability.
//
//   explain::EvalAccumulator acc(labels);
//   acc.add(true_index, probabilities);  // per image
//   explain::EvalReport r = acc.report();
//   explain::EvalIntervals ci = acc.bootstrap(1000);  // 95% intervals
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dermal::explain {

struct EvalReport {
  std::vector<std::string> labels;
  int images = 0;
  double accuracy = 0;
  double balanced_accuracy = 0;       // mean recall over the classes present
  std::vector<int> support;           // images per true class
  std::vector<double> recall, precision, auc;  // NaN where undefined (no images, no predictions)
  std::vector<std::vector<int>> confusion;      // [true][predicted]
  double ece = 0;                     // 15 equal-width confidence bins
  int ece_bins = 15;
};

// A 95% percentile-bootstrap interval for each figure of an EvalReport: the images are
// resampled with replacement `resamples` times and every figure recomputed (Efron & Tibshirani,
// "An Introduction to the Bootstrap", ch. 13). Per-class entries are NaN where undefined, and
// every entry is NaN with no images or no resamples.
struct Interval {
  double low = 0, high = 0;
};
struct EvalIntervals {
  int resamples = 0;
  Interval accuracy, balanced_accuracy, ece;
  std::vector<Interval> recall, auc;
};

class EvalAccumulator {
 public:
  explicit EvalAccumulator(std::vector<std::string> labels) : labels_(std::move(labels)) {}
  void add(int truth, const std::vector<double>& probabilities);
  EvalReport report() const;
  // Deterministic for a given seed.
  EvalIntervals bootstrap(int resamples, uint64_t seed = 2026) const;

 private:
  EvalReport report_of(const std::vector<size_t>& rows) const;

  std::vector<std::string> labels_;
  std::vector<int> truth_;
  std::vector<std::vector<double>> probabilities_;
};

// Area under the ROC curve of scores for positives vs negatives (ties count half).
double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive);

}  // namespace dermal::explain
