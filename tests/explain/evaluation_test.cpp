// explain/evaluation against the definitions: AUC as the probability that a random positive outscores a
// random negative (ties half), counted pair by pair; a worked confusion/ECE example by hand; and the
// bootstrap interval of an accuracy against the binomial normal approximation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "explain/evaluation.h"

namespace dermal::test {
namespace {

using explain::EvalAccumulator;

double auc_by_pairs(const std::vector<double>& s, const std::vector<bool>& pos) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (pos[i] && !pos[j]) {
        wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
        pairs += 1;
      }
  return wins / pairs;
}

TEST(Metrics, RocAucMatchesPairCountingWithTies) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> level(0, 9);  // few distinct scores: many ties
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> s;
    std::vector<bool> pos;
    for (int i = 0; i < 60 + trial; ++i) {
      pos.push_back(rng() % 3 == 0);
      s.push_back(level(rng) + (pos.back() ? 1.5 : 0.0) * (rng() % 2));
    }
    EXPECT_NEAR(explain::roc_auc(s, pos), auc_by_pairs(s, pos), 1e-12) << "trial " << trial;
  }
  EXPECT_TRUE(std::isnan(explain::roc_auc({0.1, 0.2}, {true, true})));  // no negatives
}

TEST(Metrics, ReportOnAWorkedExample) {
  EvalAccumulator acc({"a", "b", "c"});
  acc.add(0, {0.9, 0.05, 0.05});  // right, confidence 0.9
  acc.add(0, {0.3, 0.6, 0.1});    // wrong (b), 0.6
  acc.add(1, {0.2, 0.7, 0.1});    // right, 0.7
  acc.add(1, {0.1, 0.85, 0.05});  // right, 0.85
  acc.add(2, {0.5, 0.2, 0.3});    // wrong (a), 0.5
  const auto r = acc.report();
  EXPECT_EQ(r.images, 5);
  EXPECT_DOUBLE_EQ(r.accuracy, 3.0 / 5);
  EXPECT_DOUBLE_EQ(r.recall[0], 0.5);
  EXPECT_DOUBLE_EQ(r.recall[1], 1.0);
  EXPECT_DOUBLE_EQ(r.recall[2], 0.0);
  EXPECT_DOUBLE_EQ(r.balanced_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(r.precision[0], 0.5);  // predicted a twice, right once
  EXPECT_EQ(r.confusion[0][1], 1);
  EXPECT_EQ(r.confusion[2][0], 1);
  // 15 bins: the confidences 0.9, 0.6, 0.7, 0.85, 0.5 fall in bins 13, 9, 10, 12, 7, one image
  // each, so ECE = mean |correct - confidence|.
  const double ece = (0.1 + 0.6 + 0.3 + 0.15 + 0.5) / 5;
  EXPECT_NEAR(r.ece, ece, 1e-12);
}

TEST(Metrics, BootstrapIntervalOfAnAccuracyMatchesTheBinomial) {
  const int n = 2000;
  const double p = 0.7;
  EvalAccumulator acc({"x", "y"});
  for (int i = 0; i < n; ++i) {
    const bool right = i % 10 < 7;  // exactly 70% right
    acc.add(0, right ? std::vector<double>{0.8, 0.2} : std::vector<double>{0.3, 0.7});
  }
  const auto ci = acc.bootstrap(2000);
  const double half = 1.96 * std::sqrt(p * (1 - p) / n);  // 0.0201
  EXPECT_NEAR(ci.accuracy.low, p - half, 0.2 * half);
  EXPECT_NEAR(ci.accuracy.high, p + half, 0.2 * half);
  // One class present: balanced accuracy is its recall, the same figure.
  EXPECT_DOUBLE_EQ(ci.balanced_accuracy.low, ci.accuracy.low);
  EXPECT_TRUE(std::isnan(ci.recall[1].low));  // class y never occurs
  // Deterministic for a seed.
  EXPECT_DOUBLE_EQ(acc.bootstrap(200, 5).accuracy.low, acc.bootstrap(200, 5).accuracy.low);
  // No resamples: every interval, per class too, is there and undefined.
  const auto none = acc.bootstrap(0);
  ASSERT_EQ(none.recall.size(), 2u);
  ASSERT_EQ(none.auc.size(), 2u);
  EXPECT_TRUE(std::isnan(none.accuracy.low) && std::isnan(none.recall[0].high) && std::isnan(none.auc[1].low));
}

TEST(Metrics, BootstrapOfAPerfectClassifierIsAPoint) {
  EvalAccumulator acc({"x", "y"});
  for (int i = 0; i < 50; ++i) acc.add(i % 2, i % 2 ? std::vector<double>{0.1, 0.9} : std::vector<double>{0.9, 0.1});
  const auto ci = acc.bootstrap(300);
  EXPECT_DOUBLE_EQ(ci.accuracy.low, 1.0);
  EXPECT_DOUBLE_EQ(ci.accuracy.high, 1.0);
  EXPECT_DOUBLE_EQ(ci.auc[0].low, 1.0);
}

}  // namespace
}  // namespace dermal::test
