// Comparing class activation maps with their references: the correlation of the raw grids, and
// the largest difference once both are scaled to [0, 1] (the form users see).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace dermal::test {

// Pearson correlation; 1 for two constant maps that are equal, 0 when only one is constant.
template <class A, class B>
double pearson(const std::vector<A>& a, const std::vector<B>& b) {
  const size_t n = std::min(a.size(), b.size());
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i], mb += b[i];
  ma /= static_cast<double>(n), mb /= static_cast<double>(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    const double da = a[i] - ma, db = b[i] - mb;
    sab += da * db, saa += da * da, sbb += db * db;
  }
  if (saa == 0 || sbb == 0) return saa == sbb ? 1.0 : 0.0;
  return sab / std::sqrt(saa * sbb);
}

// (x - min) / (max - min) in double; a constant map becomes zeros.
template <class T>
std::vector<double> scaled01(const std::vector<T>& v) {
  std::vector<double> out(v.begin(), v.end());
  if (out.empty()) return out;
  auto [lo, hi] = std::minmax_element(out.begin(), out.end());
  const double min = *lo, range = *hi - *lo;
  for (double& x : out) x = range > 0 ? (x - min) / range : 0.0;
  return out;
}

template <class A, class B>
double max_map_diff(const std::vector<A>& a, const std::vector<B>& b) {
  double m = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

}  // namespace dermal::test
