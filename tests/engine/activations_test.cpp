// Activations: reference VJP against finite differences, fast path against the reference.
#include <gtest/gtest.h>

#include "engine/op_check.h"
#include "error_check.h"

namespace dermal::test {
namespace {

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
