#include "explain/evaluation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "engine/error.h"

namespace dermal::explain {

void EvalAccumulator::add(int truth, const std::vector<double>& probabilities) {
  if (truth < 0 || truth >= static_cast<int>(labels_.size()) || probabilities.size() != labels_.size())
    throw Error(ErrorKind::internal, "evaluation: class index or probability count out of range");
  truth_.push_back(truth);
  probabilities_.push_back(probabilities);
}

double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  // Mann-Whitney U from ranks, with average ranks for ties.
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0;
  size_t pos = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2;  // 1-based ranks i+1..j
    for (size_t k = i; k < j; ++k)
      if (positive[order[k]]) {
        rank_sum += avg_rank;
        ++pos;
      }
    i = j;
  }
  const size_t neg = scores.size() - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - static_cast<double>(pos) * (pos + 1) / 2) / (static_cast<double>(pos) * neg);
}

EvalReport EvalAccumulator::report() const {
  std::vector<size_t> all(truth_.size());
  std::iota(all.begin(), all.end(), 0);
  return report_of(all);
}

EvalReport EvalAccumulator::report_of(const std::vector<size_t>& rows) const {
  const size_t k = labels_.size();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EvalReport r;
  r.labels = labels_;
  r.images = static_cast<int>(rows.size());
  r.support.assign(k, 0);
  r.confusion.assign(k, std::vector<int>(k, 0));
  std::vector<int> predicted(k, 0);
  int correct = 0;
  std::vector<double> bin_conf(r.ece_bins, 0), bin_acc(r.ece_bins, 0);
  std::vector<int> bin_n(r.ece_bins, 0);
  for (size_t i : rows) {
    const auto& p = probabilities_[i];
    const int pred = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
    const int t = truth_[i];
    ++r.support[t];
    ++predicted[pred];
    ++r.confusion[t][pred];
    correct += pred == t;
    const double conf = p[pred];
    const int bin = std::min(r.ece_bins - 1, static_cast<int>(conf * r.ece_bins));
    bin_conf[bin] += conf;
    bin_acc[bin] += pred == t;
    ++bin_n[bin];
  }
  if (r.images == 0) return r;
  r.accuracy = static_cast<double>(correct) / r.images;
  double recall_sum = 0;
  int present = 0;
  for (size_t c = 0; c < k; ++c) {
    r.recall.push_back(r.support[c] ? static_cast<double>(r.confusion[c][c]) / r.support[c] : nan);
    r.precision.push_back(predicted[c] ? static_cast<double>(r.confusion[c][c]) / predicted[c] : nan);
    if (r.support[c]) {
      recall_sum += r.recall.back();
      ++present;
    }
    std::vector<double> scores;
    std::vector<bool> positive;
    for (size_t i : rows) {
      scores.push_back(probabilities_[i][c]);
      positive.push_back(truth_[i] == static_cast<int>(c));
    }
    r.auc.push_back(roc_auc(scores, positive));
  }
  r.balanced_accuracy = present ? recall_sum / present : nan;
  for (int b = 0; b < r.ece_bins; ++b)
    if (bin_n[b]) r.ece += std::abs(bin_acc[b] - bin_conf[b]) / r.images;
  return r;
}

namespace {

Interval percentile_interval(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }), values.end());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (values.empty()) return {nan, nan};
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {  // linear interpolation between order statistics
    const double pos = q * static_cast<double>(values.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
  };
  return {at(0.025), at(0.975)};
}

}  // namespace

EvalIntervals EvalAccumulator::bootstrap(int resamples, uint64_t seed) const {
  EvalIntervals out;
  out.resamples = resamples;
  const size_t n = truth_.size(), k = labels_.size();
  if (n == 0 || resamples <= 0) {  // every interval undefined, per class too
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out.accuracy = out.balanced_accuracy = out.ece = {nan, nan};
    out.recall.assign(k, {nan, nan});
    out.auc.assign(k, {nan, nan});
    return out;
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  std::vector<double> acc, bal, ece;
  std::vector<std::vector<double>> recall(k), auc(k);
  std::vector<size_t> rows(n);
  for (int b = 0; b < resamples; ++b) {
    for (auto& r : rows) r = pick(rng);
    const EvalReport r = report_of(rows);
    acc.push_back(r.accuracy);
    bal.push_back(r.balanced_accuracy);
    ece.push_back(r.ece);
    for (size_t c = 0; c < k; ++c) {
      recall[c].push_back(r.recall[c]);
      auc[c].push_back(r.auc[c]);
    }
  }
  out.accuracy = percentile_interval(acc);
  out.balanced_accuracy = percentile_interval(bal);
  out.ece = percentile_interval(ece);
  for (size_t c = 0; c < k; ++c) {
    out.recall.push_back(percentile_interval(recall[c]));
    out.auc.push_back(percentile_interval(auc[c]));
  }
  return out;
}

}  // namespace dermal::explain
