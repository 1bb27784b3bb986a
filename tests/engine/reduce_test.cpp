// Reductions: VJP against finite differences and f32 against f64 over named axis cases (axes as
// attribute and as input, keepdims on and off, all axes, noop), plus hand-computed values.
#include <gtest/gtest.h>

#include "engine/op_check.h"

namespace dermal::test {
namespace {

struct ReduceCase {
  const char* name;
  const char* type;
  int opset;
  Shape shape;
  std::vector<int64_t> axes;
  bool axes_as_input;  // else the attribute (empty: not given)
  int64_t keepdims;
  int64_t noop_with_empty_axes = 0;
};

const ReduceCase kCases[] = {
    {"mean_hw_keep", "ReduceMean", 13, {2, 13, 5, 3}, {2, 3}, false, 1},
    {"mean_last_drop", "ReduceMean", 13, {3, 4, 7}, {-1}, false, 0},
    {"mean_all_drop", "ReduceMean", 11, {2, 3, 5}, {}, false, 0},
    {"mean_input_axes", "ReduceMean", 18, {2, 13, 4, 3}, {1, 3}, true, 1},
    {"mean_input_absent", "ReduceMean", 18, {3, 5}, {}, true, 1},
    {"mean_noop", "ReduceMean", 18, {3, 5}, {}, true, 0, 1},
    {"sum_attr", "ReduceSum", 11, {2, 3, 5, 7}, {0, 2}, false, 0},
    {"sum_input", "ReduceSum", 13, {2, 3, 5, 7}, {-3, 3}, true, 1},
    {"max_attr", "ReduceMax", 13, {2, 13, 5, 3}, {2, 3}, false, 1},
    {"max_input", "ReduceMax", 18, {4, 6, 5}, {1}, true, 0},
    {"min_all", "ReduceMin", 13, {3, 7}, {}, false, 1},
};

OpCase make_case(const ReduceCase& r, std::mt19937& rng) {
  OpCase c{r.type};
  c.opset = r.opset;
  c.attrs.set("keepdims", r.keepdims);
  if (r.noop_with_empty_axes) c.attrs.set("noop_with_empty_axes", r.noop_with_empty_axes);
  if (!r.axes_as_input && !r.axes.empty()) c.attrs.set("axes", r.axes);
  c.input(random_tensor(r.shape, rng));  // random: no ties for max/min
  if (r.axes_as_input && !r.axes.empty())
    c.weight(Tensor::from_ints({static_cast<int64_t>(r.axes.size())}, r.axes));
  return c;
}

class ReduceCases : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(ReduceCases, GradientAndFastPath) {
  std::mt19937 rng(17);
  OpCase c = make_case(GetParam(), rng);
  expect_vjp_matches_fd(c);
  expect_fast_matches_reference(c, 1e-5, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Reduce, ReduceCases, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

Tensor run_f32(const OpCase& c) { return run_op(c, DType::f32)[0]; }

TEST(Reduce, ValuesAndShapes) {
  const Tensor x = Tensor::from_doubles({2, 3}, {1, 2, 6, -4, 0, 1});
  OpCase mean{"ReduceMean"};
  mean.attrs.set("axes", std::vector<int64_t>{1});
  mean.input(x);
  EXPECT_EQ(compare(run_f32(mean), Tensor::from_doubles({2, 1}, {3, -1}), 1e-6, 0), "");

  OpCase sum{"ReduceSum"};
  sum.attrs.set("keepdims", int64_t{0});
  sum.input(x).weight(Tensor::from_ints({1}, {0}));
  EXPECT_EQ(compare(run_f32(sum), Tensor::from_doubles({3}, {-3, 2, 7}), 1e-6, 0), "");

  OpCase max{"ReduceMax"};
  max.attrs.set("keepdims", int64_t{0});
  max.input(x);
  EXPECT_EQ(compare(run_f32(max), Tensor::from_doubles({}, {6}), 1e-6, 0), "");

  OpCase noop{"ReduceSum"};
  noop.attrs.set("noop_with_empty_axes", int64_t{1});
  noop.input(x);
  EXPECT_EQ(compare(run_f32(noop), x, 1e-6, 0), "");
}

// Tied maxima share the gradient (as PyTorch's amax).
TEST(Reduce, MaxGradientSplitsAmongTies) {
  OpCase c{"ReduceMax"};
  c.attrs.set("axes", std::vector<int64_t>{1});
  c.input(Tensor::from_doubles({2, 3}, {1, 3, 3, 5, 2, 4}));
  const Tensor seed = Tensor::from_doubles({2, 1}, {1, 2});
  for (DType dt : {DType::f64, DType::f32})
    EXPECT_EQ(compare(run_op_backward(c, {seed}, dt)[0], Tensor::from_doubles({2, 3}, {0, 0.5, 0.5, 2, 0, 0}), 1e-6, 0), "");
}

TEST(Reduce, Errors) {
  std::mt19937 rng(2);
  OpCase unknown_axes{"ReduceMean"};
  unknown_axes.opset = 18;
  unknown_axes.input(random_tensor({2, 3}, rng)).input(Tensor::from_ints({1}, {1}));
  expect_op_error(unknown_axes, ErrorKind::unsupported, {"axes"});

  OpCase twice{"ReduceMean"};
  twice.attrs.set("axes", std::vector<int64_t>{1, -1});
  twice.input(random_tensor({2, 3}, rng));
  expect_op_error(twice, ErrorKind::invalid_model, {"twice"});

  OpCase out_of_range{"ReduceSum"};
  out_of_range.input(random_tensor({2, 3}, rng)).weight(Tensor::from_ints({1}, {2}));
  expect_op_error(out_of_range, ErrorKind::invalid_model, {"axis"});

  // From opset 18 ReduceMean's axes are an input; the attribute is not part of the op.
  OpCase attr_at_18{"ReduceMean"};
  attr_at_18.opset = 18;
  attr_at_18.attrs.set("axes", std::vector<int64_t>{1});
  attr_at_18.input(random_tensor({2, 3}, rng));
  expect_op_error(attr_at_18, ErrorKind::unsupported, {"axes"});
}

}  // namespace
}  // namespace dermal::test
