// The op harness itself: an output that cannot tell a working kernel from a broken one (all
// zeros, constant, not finite, empty) fails the checks unless the case declares it.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <limits>

#include "engine/op_check.h"

namespace dermal::test {
namespace {

TEST(OpCheck, TrivialOutputsAreNamed) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(trivial_output(Tensor::from_doubles({3}, {0, 0, 0})), "all zeros");
  EXPECT_EQ(trivial_output(Tensor::from_doubles({}, {0})), "all zeros");
  EXPECT_EQ(trivial_output(Tensor::from_doubles({2, 2}, {1.5, 1.5, 1.5, 1.5})), "constant (1.5)");
  EXPECT_EQ(trivial_output(Tensor::from_doubles({3}, {1, nan, 2})), "not finite (element 1 = nan)");
  EXPECT_EQ(trivial_output(Tensor::from_doubles({2}, {1, std::numeric_limits<double>::infinity()})),
            "not finite (element 1 = inf)");
  EXPECT_EQ(trivial_output(Tensor::from_doubles({0}, {})), "empty");
  EXPECT_EQ(trivial_output(Tensor::from_doubles({}, {-2})), "");  // one value: only zero is trivial
  EXPECT_EQ(trivial_output(Tensor::from_doubles({3}, {0, 0, 1e-9})), "");
}

// Relu of negative inputs is all zeros: both checks pass on such an output whatever the kernel
// does, so they refuse it unless the case says so.
TEST(OpCheck, AllZeroOutputFailsUnlessDeclared) {
  OpCase c{"Relu"};
  c.input(Tensor::from_doubles({4}, {-1, -2, -0.5, -3}));
  EXPECT_NONFATAL_FAILURE(expect_vjp_matches_fd(c), "forward output 0 is all zeros");
  EXPECT_NONFATAL_FAILURE(expect_fast_matches_reference(c), "forward output 0 is all zeros");
  c.expect_trivial_output(0);
  expect_vjp_matches_fd(c);  // the gradient check itself still runs: d/dx is 0, like the FD
  expect_fast_matches_reference(c);
}

TEST(OpCheck, NonFiniteOutputFails) {
  OpCase c{"Log"};
  c.input(Tensor::from_doubles({3}, {1.0, 0.0, 2.0}));  // log(0) = -inf
  EXPECT_NONFATAL_FAILURE(expect_fast_matches_reference(c), "forward output 0 is not finite (element 1 = -inf)");
}

}  // namespace
}  // namespace dermal::test
