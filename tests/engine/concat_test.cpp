// Concat: reference VJP (every input) against finite differences, f32 plain/nhwc against f64,
// exact values, layout choice and shape errors.
#include <gtest/gtest.h>

#include "engine/op_check.h"

namespace dermal::test {
namespace {

using engine::KernelConfig;
using engine::OpContext;

struct ConcatCase {
  const char* name;
  int64_t axis;
  std::vector<Shape> shapes;
  std::vector<bool> known;  // empty: all data
};

const ConcatCase kCases[] = {
    {"channels_odd", 1, {{2, 3, 4, 5}, {2, 13, 4, 5}, {2, 5, 4, 5}}, {}},
    {"channels_negative_axis", -3, {{1, 3, 3, 2}, {1, 13, 3, 2}}, {}},
    {"batch_axis0", 0, {{1, 3, 2, 5}, {2, 3, 2, 5}}, {}},
    {"height_axis2", 2, {{2, 3, 1, 5}, {2, 3, 4, 5}}, {}},
    {"width_axis_minus1", -1, {{2, 3, 4, 1}, {2, 3, 4, 6}, {2, 3, 4, 2}}, {}},
    {"channels_with_known_constant", 1, {{2, 3, 4, 5}, {2, 13, 4, 5}}, {false, true}},
    {"rank2_axis1", 1, {{3, 5}, {3, 13}}, {}},
    {"rank3_axis_minus2", -2, {{2, 1, 7}, {2, 4, 7}, {2, 3, 7}}, {}},
    {"rank1", 0, {{13}, {3}}, {}},
    {"single_input", 1, {{2, 5, 3, 3}}, {}},
};

OpCase make_case(const ConcatCase& cc, std::mt19937& rng) {
  OpCase c{"Concat"};
  c.attrs.set("axis", cc.axis);
  for (size_t i = 0; i < cc.shapes.size(); ++i)
    c.add(random_tensor(cc.shapes[i], rng), !cc.known.empty() && cc.known[i]);
  return c;
}

TEST(Concat, GradientsOfEveryInputAndFastPath) {
  std::mt19937 rng(21);
  for (const ConcatCase& cc : kCases) {
    SCOPED_TRACE(cc.name);
    OpCase c = make_case(cc, rng);
    expect_vjp_matches_fd(c);
    // A copy: f32 must reproduce the f64 values exactly up to rounding.
    expect_fast_matches_reference(c, 1e-7, 1e-7);
  }
}

TEST(Concat, Values) {
  OpCase c{"Concat"};
  c.attrs.set("axis", int64_t{1});
  c.input(Tensor::from_doubles({2, 1}, {1, 2})).input(Tensor::from_doubles({2, 2}, {3, 4, 5, 6}));
  auto y = run_op(c, DType::f32)[0];
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(y.to_doubles(), (std::vector<double>{1, 3, 4, 2, 5, 6}));

  // Channel concat of nhwc tensors: channel 0 from the first, channels 1-2 from the second.
  OpCase n{"Concat"};
  n.attrs.set("axis", int64_t{1});
  n.input(Tensor::from_doubles({1, 1, 1, 2}, {1, 2})).input(Tensor::from_doubles({1, 2, 1, 2}, {3, 4, 5, 6}));
  EXPECT_EQ(run_op(n, DType::f32, Layout::nhwc)[0].to_doubles(), (std::vector<double>{1, 2, 3, 4, 5, 6}));

  auto g = run_op_backward(c, {Tensor::from_doubles({2, 3}, {10, 20, 30, 40, 50, 60})}, DType::f32);
  EXPECT_EQ(g[0].to_doubles(), (std::vector<double>{10, 40}));
  EXPECT_EQ(g[1].to_doubles(), (std::vector<double>{20, 30, 50, 60}));
}

TEST(Concat, IntegerShapeVectorsAndEmptyInputs) {
  OpCase c{"Concat"};
  c.attrs.set("axis", int64_t{0});
  c.weight(Tensor::from_ints({1}, {1})).weight(Tensor::from_ints({0}, {})).weight(Tensor::from_ints({2}, {-1, 64}));
  auto y = run_op(c, DType::f32)[0];
  EXPECT_EQ(y.dtype(), DType::i64);
  EXPECT_EQ(y.to_ints(), (std::vector<int64_t>{1, -1, 64}));
}

engine::Layout output_layout(const std::vector<Shape>& shapes, const std::vector<Layout>& layouts) {
  Attributes attrs;
  attrs.set("axis", int64_t{1});
  return kernel_output_layout("Concat", attrs, shapes, layouts);
}

TEST(Concat, OutputLayout) {
  const Layout P = Layout::plain, N = Layout::nhwc;
  EXPECT_EQ(output_layout({{1, 3, 4, 4}, {1, 5, 4, 4}}, {N, N}), N);
  EXPECT_EQ(output_layout({{1, 3, 4, 4}, {1, 5, 4, 4}}, {N, P}), P);
  EXPECT_EQ(output_layout({{1, 3, 4, 4}, {1, 5, 4, 4}}, {P, P}), P);
}

TEST(Concat, Errors) {
  std::mt19937 rng(4);
  OpCase mismatch{"Concat"};
  mismatch.attrs.set("axis", int64_t{1});
  mismatch.input(random_tensor({2, 3, 4}, rng)).input(random_tensor({2, 3, 5}, rng));
  expect_op_error(mismatch, ErrorKind::invalid_model, {"[2,3,5]"});

  OpCase axis{"Concat"};
  axis.attrs.set("axis", int64_t{3});
  axis.input(random_tensor({2, 3, 4}, rng)).input(random_tensor({2, 3, 4}, rng));
  expect_op_error(axis, ErrorKind::invalid_model, {"axis 3"});

  OpCase no_axis{"Concat"};
  no_axis.input(random_tensor({2}, rng));
  expect_op_error(no_axis, ErrorKind::invalid_model, {"axis"});
}

}  // namespace
}  // namespace dermal::test
