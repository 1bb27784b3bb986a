// How good a classifier is on labelled images: accuracy, balanced accuracy (mean per-class
// recall, the ISIC challenge metric), per-class recall, precision and one-vs-rest AUC, the
// confusion matrix, and the expected calibration error of the top probability.
//
//   explain::EvalAccumulator acc(labels);
//   acc.add(true_index, probabilities);  // per image
//   explain::EvalReport r = acc.report();
#pragma once

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

class EvalAccumulator {
 public:
  explicit EvalAccumulator(std::vector<std::string> labels) : labels_(std::move(labels)) {}
  void add(int truth, const std::vector<double>& probabilities);
  EvalReport report() const;

 private:
  std::vector<std::string> labels_;
  std::vector<int> truth_;
  std::vector<std::vector<double>> probabilities_;
};

// Area under the ROC curve of scores for positives vs negatives (ties count half).
double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive);

}  // namespace dermal::explain
