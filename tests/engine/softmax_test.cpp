// Softmax and LogSoftmax: VJP against finite differences and f32 against f64 for both opset
// forms (coerced 2-D before 13, one axis from 13), plus values, large inputs and row groupings.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/op_check.h"
#include "error_check.h"

namespace dermal::test {
namespace {

struct SoftmaxCase {
  const char* name;
  int opset;
  Shape shape;
  std::optional<int64_t> axis;  // absent: the opset's default
};

const SoftmaxCase kCases[] = {
    {"logits_default_axis", 13, {2, 13}, std::nullopt},
    {"axis1_of_4d", 13, {2, 5, 3, 4}, 1},
    {"axis0", 13, {3, 4, 5}, 0},
    {"negative_axis", 13, {3, 4, 5}, -2},
    {"coerced_default_axis", 11, {2, 3, 4}, std::nullopt},
    {"coerced_axis2", 11, {2, 3, 4, 5}, 2},
    {"coerced_axis0", 7, {3, 7}, 0},
};

class SoftmaxCases : public ::testing::TestWithParam<SoftmaxCase> {};

TEST_P(SoftmaxCases, GradientAndFastPath) {
  for (const char* type : {"Softmax", "LogSoftmax"}) {
    std::mt19937 rng(31);
    OpCase c{type};
    c.opset = GetParam().opset;
    if (GetParam().axis) c.attrs.set("axis", *GetParam().axis);
    c.input(random_tensor(GetParam().shape, rng, -3, 3));
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c, 1e-5, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Softmax, SoftmaxCases, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

OpCase softmax(const char* type, int opset, const Tensor& x, std::optional<int64_t> axis = std::nullopt) {
  OpCase c{type};
  c.opset = opset;
  if (axis) c.attrs.set("axis", *axis);
  c.input(x);
  return c;
}

TEST(Softmax, ValuesAndLargeInputs) {
  // softmax([1, 2, 3]) = exp(x - 3) / (e^-2 + e^-1 + 1)
  const double z = std::exp(-2.0) + std::exp(-1.0) + 1.0;
  const Tensor x = Tensor::from_doubles({1, 3}, {1, 2, 3});
  const Tensor want = Tensor::from_doubles({1, 3}, {std::exp(-2.0) / z, std::exp(-1.0) / z, 1 / z});
  const Tensor want_log = Tensor::from_doubles({1, 3}, {-2 - std::log(z), -1 - std::log(z), -std::log(z)});
  for (DType dt : {DType::f64, DType::f32}) {
    EXPECT_EQ(compare(run_op(softmax("Softmax", 13, x), dt)[0], want, 1e-7, 1e-6), "");
    EXPECT_EQ(compare(run_op(softmax("LogSoftmax", 13, x), dt)[0], want_log, 1e-6, 1e-6), "");
    // Shifted by 1000: the same result, no overflow to inf or NaN.
    const Tensor big = Tensor::from_doubles({1, 3}, {1001, 1002, 1003});
    EXPECT_EQ(compare(run_op(softmax("Softmax", 13, big), dt)[0], want, 1e-7, 1e-6), "");
    EXPECT_EQ(compare(run_op(softmax("LogSoftmax", 13, big), dt)[0], want_log, 1e-5, 1e-6), "");
  }
}

// Sums of the outputs over groups of `group` consecutive elements (plain order).
std::vector<double> group_sums(const Tensor& t, size_t group) {
  std::vector<double> v = t.to_doubles(), sums(v.size() / group, 0.0);
  for (size_t i = 0; i < v.size(); ++i) sums[i / group] += v[i];
  return sums;
}

// Shape [2, 3, 4], axis 1: before opset 13 each of the 2 rows of 12 sums to 1; from 13 each
// (n, w) column of 3 does, so rows of 12 sum to 4.
TEST(Softmax, OpsetChangesTheNormalisedBlock) {
  std::mt19937 rng(4);
  const Tensor x = random_tensor({2, 3, 4}, rng, -2, 2);
  for (double s : group_sums(run_op(softmax("Softmax", 11, x, 1), DType::f32)[0], 12)) EXPECT_NEAR(s, 1.0, 1e-6);
  for (double s : group_sums(run_op(softmax("Softmax", 13, x, 1), DType::f32)[0], 12)) EXPECT_NEAR(s, 4.0, 1e-6);
  // LogSoftmax before 13 with the default axis 1 on [2, 3, 4]: logsumexp over each block of 12 is 0.
  std::vector<double> y = run_op(softmax("LogSoftmax", 11, x), DType::f64)[0].to_doubles();
  for (size_t row = 0; row < 2; ++row) {
    double s = 0;
    for (size_t i = 0; i < 12; ++i) s += std::exp(y[row * 12 + i]);
    EXPECT_NEAR(s, 1.0, 1e-12);
  }
}

TEST(Softmax, AxisOutOfRangeFails) {
  std::mt19937 rng(4);
  const OpCase c = softmax("Softmax", 13, random_tensor({2, 3}, rng), 2);
  expect_error([&] { run_op(c, DType::f32); }, {ErrorKind::invalid_model}, {"Softmax"});
}

}  // namespace
}  // namespace dermal::test
