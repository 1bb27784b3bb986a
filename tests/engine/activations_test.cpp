// Activations: forward values against closed forms written here (ONNX's operator definitions,
// not the engine's code), reference VJP against finite differences, fast path against the
// reference.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "engine/op_check.h"
#include "error_check.h"

namespace dermal::test {
namespace {

// Points where activations differ: both signs, zero, near zero, kinks, saturation.
const std::vector<double> kSigned = {-1000, -50, -7.5, -3, -2.5, -1, -0.25, -1e-3, 0, 1e-3, 0.25, 1, 2.5, 3, 7.5, 50, 1000};
const std::vector<double> kPositive = {1e-30, 1e-8, 1e-3, 0.25, 1, 2, 3, 1e6, 1e30};

// The kernel's output at `xs` (its data input, put first) against `f` at the same points: f64 to
// a few ulps (the closed forms are written differently, so they round differently); f32 to its
// rounding of f(float(x)).
void expect_forward(const std::string& what, OpCase c, const std::vector<double>& xs,
                    const std::function<double(double)>& f) {
  c.inputs.insert(c.inputs.begin(), Tensor::from_doubles({static_cast<int64_t>(xs.size())}, xs));
  c.known.insert(c.known.begin(), false);
  const std::vector<double> y64 = run_op(c, DType::f64)[0].to_doubles();
  const std::vector<double> y32 = run_op(c, DType::f32)[0].to_doubles();
  ASSERT_EQ(y64.size(), xs.size()) << what;
  ASSERT_EQ(y32.size(), xs.size()) << what;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double want = f(xs[i]);
    ASSERT_TRUE(std::isfinite(want)) << what << " at " << xs[i];
    EXPECT_NEAR(y64[i], want, 1e-300 + 1e-12 * std::abs(want)) << what << " f64 at x = " << xs[i];
    const double want32 = f(static_cast<float>(xs[i]));
    EXPECT_NEAR(y32[i], want32, std::numeric_limits<float>::min() + 2e-7 * std::abs(want32))
        << what << " f32 at x = " << xs[i];
  }
}

void expect_forward(const char* type, std::initializer_list<std::pair<const char*, double>> attrs,
                    const std::vector<double>& xs, const std::function<double(double)>& f) {
  OpCase c{type};
  std::string what = type;
  for (const auto& [k, v] : attrs) {
    c.attrs.set(k, v);
    what += std::string(" ") + k + "=" + std::to_string(v);
  }
  expect_forward(what, c, xs, f);
}

TEST(Activations, ForwardMatchesClosedForms) {
  // ONNX defaults: LeakyRelu alpha 0.01; HardSigmoid alpha 0.2, beta 0.5; Elu alpha 1; Selu
  // alpha and gamma as below (float values of the SELU paper's constants).
  const double selu_alpha = 1.67326319217681884765625, selu_gamma = 1.05070102214813232421875;
  expect_forward("Relu", {}, kSigned, [](double x) { return x < 0 ? 0.0 : x; });
  expect_forward("Relu", {}, {-1e30, -1e6, 1e6, 1e30}, [](double x) { return x < 0 ? 0.0 : x; });
  expect_forward("LeakyRelu", {}, kSigned, [](double x) { return x < 0 ? 0.01 * x : x; });
  expect_forward("LeakyRelu", {{"alpha", 0.25}}, kSigned, [](double x) { return x < 0 ? 0.25 * x : x; });
  expect_forward("Sigmoid", {}, kSigned, [](double x) { return 1 / (1 + std::exp(-x)); });
  expect_forward("HardSigmoid", {}, kSigned, [](double x) { return std::fmin(1, std::fmax(0, 0.2 * x + 0.5)); });
  expect_forward("HardSigmoid", {{"alpha", 0.25}, {"beta", 0.375}}, kSigned,
                 [](double x) { return std::fmin(1, std::fmax(0, 0.25 * x + 0.375)); });
  // PyTorch's form, x * relu6(x + 3) / 6.
  expect_forward("HardSwish", {}, kSigned, [](double x) { return x * std::fmin(6, std::fmax(0, x + 3)) / 6; });
  // tanh(|x|) = (1 - e^-2|x|) / (1 + e^-2|x|), with expm1 so that small |x| keeps its digits.
  expect_forward("Tanh", {}, kSigned, [](double x) {
    const double m = std::expm1(-2 * std::abs(x));
    return std::copysign(-m / (2 + m), x);
  });
  expect_forward("Elu", {}, kSigned, [](double x) { return x < 0 ? std::expm1(x) : x; });
  expect_forward("Elu", {{"alpha", 0.5}}, kSigned, [](double x) { return x < 0 ? 0.5 * std::expm1(x) : x; });
  expect_forward("Selu", {}, kSigned, [&](double x) {
    return x <= 0 ? selu_gamma * (selu_alpha * std::exp(x) - selu_alpha) : selu_gamma * x;
  });
  expect_forward("Selu", {{"alpha", 2.0}, {"gamma", 1.5}}, kSigned,
                 [](double x) { return x <= 0 ? 1.5 * (2 * std::exp(x) - 2) : 1.5 * x; });
  // log(1 + e^x) without overflow; around 30 the engine switches to x.
  expect_forward("Softplus", {}, kSigned, [](double x) { return std::fmax(x, 0) + std::log1p(std::exp(-std::abs(x))); });
  expect_forward("Softplus", {}, {29, 30, 31, 36, 40}, [](double x) { return x + std::log1p(std::exp(-x)); });
  expect_forward("Erf", {}, kSigned, [](double x) { return 1 - std::erfc(x); });
  // Near zero, the Maclaurin series (1 - erfc(x) would cancel there).
  expect_forward("Erf", {}, {-1e-3, -1e-5, 1e-5, 1e-3}, [](double x) {
    return 2 / std::sqrt(M_PI) * (x - x * x * x / 3 + std::pow(x, 5) / 10 - std::pow(x, 7) / 42);
  });
  expect_forward("Sqrt", {}, kPositive, [](double x) { return std::pow(x, 0.5); });
  expect_forward("Sqrt", {}, {0}, [](double) { return 0.0; });
  expect_forward("Exp", {}, {-80, -50, -7.5, -1, -1e-3, 0, 1e-3, 1, 7.5, 50, 80}, [](double x) { return std::pow(M_E, x); });
  expect_forward("Log", {}, kPositive, [](double x) { return std::log2(x) * M_LN2; });
  expect_forward("Neg", {}, kSigned, [](double x) { return 0 - x; });
  expect_forward("Reciprocal", {}, kPositive, [](double x) { return std::pow(x, -1); });
  expect_forward("Reciprocal", {}, {-1e30, -3, -0.25, -1e-30}, [](double x) { return std::pow(x, -1); });
  expect_forward("Abs", {}, kSigned, [](double x) { return x < 0 ? -x : x; });
  expect_forward("Abs", {}, {-1e30, 1e30}, [](double x) { return x < 0 ? -x : x; });
}

TEST(Clip, ForwardMatchesClosedForm) {
  OpCase attrs{"Clip"};
  attrs.opset = 6;
  attrs.attrs.set("min", -0.25);
  attrs.attrs.set("max", 2.5);
  expect_forward("Clip opset 6", attrs, kSigned, [](double x) { return x < -0.25 ? -0.25 : x > 2.5 ? 2.5 : x; });
  OpCase inputs{"Clip"};
  inputs.weight(Tensor::from_doubles({}, {-1})).weight(Tensor::from_doubles({}, {3}));
  expect_forward("Clip", inputs, kSigned, [](double x) { return x < -1 ? -1 : x > 3 ? 3 : x; });
  OpCase min_only{"Clip"};
  min_only.weight(Tensor::from_doubles({}, {0.25})).absent();
  expect_forward("Clip min only", min_only, kSigned, [](double x) { return x < 0.25 ? 0.25 : x; });
}

struct ActivationCase {
  const char* type;
  double lo, hi;  // input range (Sqrt needs positive inputs)
};

class ActivationTest : public ::testing::TestWithParam<ActivationCase> {};

TEST_P(ActivationTest, GradientAndFastPath) {
  std::mt19937 rng(7);
  for (Shape shape : {Shape{5}, Shape{2, 3, 5, 7}, Shape{1, 13, 4, 3}}) {
    OpCase c{GetParam().type};
    c.input(random_tensor(shape, rng, GetParam().lo, GetParam().hi));
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c, 1e-5, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Unary, ActivationTest,
                         ::testing::Values(ActivationCase{"Relu", -2, 2}, ActivationCase{"LeakyRelu", -2, 2},
                                           ActivationCase{"Sigmoid", -4, 4}, ActivationCase{"HardSigmoid", -4, 4},
                                           ActivationCase{"HardSwish", -5, 5}, ActivationCase{"Tanh", -3, 3},
                                           ActivationCase{"Elu", -2, 2}, ActivationCase{"Selu", -2, 2},
                                           ActivationCase{"Softplus", -5, 5}, ActivationCase{"Erf", -2, 2},
                                           ActivationCase{"Sqrt", 0.5, 3}, ActivationCase{"Exp", -2, 2}, ActivationCase{"Log", 0.5, 3},
                                           ActivationCase{"Neg", -2, 2}, ActivationCase{"Reciprocal", 0.5, 2},
                                           ActivationCase{"Abs", -2, 2}),
                         [](const auto& info) { return std::string(info.param.type); });

TEST(Clip, AttributeAndInputForms) {
  std::mt19937 rng(3);
  OpCase old_form{"Clip"};
  old_form.opset = 6;
  old_form.attrs.set("min", 0.0);
  old_form.attrs.set("max", 0.5);
  old_form.input(random_tensor({2, 3, 4, 5}, rng));
  expect_vjp_matches_fd(old_form);
  expect_fast_matches_reference(old_form, 1e-6, 1e-6);

  OpCase new_form{"Clip"};
  new_form.input(random_tensor({2, 3, 4, 5}, rng)).weight(Tensor::from_doubles({}, {-0.3})).weight(Tensor::from_doubles({}, {0.6}));
  expect_vjp_matches_fd(new_form);
  auto out = run_op(new_form, DType::f32)[0].to_doubles();
  for (double v : out) {
    EXPECT_GE(v, -0.3 - 1e-7);
    EXPECT_LE(v, 0.6 + 1e-7);
  }
}

TEST(Activations, UnsupportedAttributeFailsAtLoad) {
  OpCase c{"Relu"};
  c.attrs.set("bogus", int64_t{1});
  std::mt19937 rng(1);
  c.input(random_tensor({3}, rng));
  expect_error([&] { run_op(c, DType::f32); }, {ErrorKind::unsupported}, {"bogus", "Relu"});
}

}  // namespace
}  // namespace dermal::test

namespace dermal::test {
namespace {

// At exactly a bound the gradient stops (hardtanh / ReLU6): the rule a fused convolution must
// follow too, since its backward only sees the clipped output.
TEST(Clip, NoGradientAtTheBounds) {
  OpCase c{"Clip"};
  c.input(Tensor::from_doubles({4}, {0.0, 0.3, 6.0, -1.0}))
      .weight(Tensor::from_doubles({}, {0.0}))
      .weight(Tensor::from_doubles({}, {6.0}));
  for (DType compute : {DType::f32, DType::f64}) {
    auto g = run_op_backward(c, {Tensor::from_doubles({4}, {1, 1, 1, 1})}, compute)[0].to_doubles();
    EXPECT_EQ(g, (std::vector<double>{0, 1, 0, 0}));
  }
}

}  // namespace
}  // namespace dermal::test
