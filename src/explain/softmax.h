// softmax(logits / temperature + offsets), computed from the largest term so that exp never
// overflows: the class probabilities the classifier reports (offsets: the card's operating point,
// empty for none) and the class scores Score-CAM weighs by (the model's own: T = 1, no offsets).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace dermal::explain {

inline std::vector<double> softmax(const std::vector<double>& logits, double temperature = 1.0,
                                   const std::vector<double>& offsets = {}) {
  std::vector<double> p;
  for (size_t i = 0; i < logits.size(); ++i) p.push_back(logits[i] / temperature + (i < offsets.size() ? offsets[i] : 0.0));
  if (p.empty()) return p;
  const double top = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (double& v : p) {
    v = std::exp(v - top);
    sum += v;
  }
  for (double& v : p) v /= sum;
  return p;
}

}  // namespace dermal::explain
