// softmax(logits / temperature), computed from the largest logit so that exp never overflows:
// the class probabilities the classifier reports and the class scores Score-CAM weighs by.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace dermal::explain {

inline std::vector<double> softmax(const std::vector<double>& logits, double temperature = 1.0) {
  std::vector<double> p;
  if (logits.empty()) return p;
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (double l : logits) {
    p.push_back(std::exp((l - top) / temperature));
    sum += p.back();
  }
  for (double& v : p) v /= sum;
  return p;
}

}  // namespace dermal::explain
