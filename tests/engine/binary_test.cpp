// Add, Sub, Mul, Div, Pow and PRelu: reference VJP against finite differences for both inputs,
// f32 fast path (plain and channels-last) against the f64 reference, over named broadcast cases.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/op_check.h"
#include "engine/ops/op_util.h"
#include "error_check.h"

namespace dermal::test {
namespace {

using engine::KernelConfig;
using engine::OpContext;
using engine::TensorInfo;

struct BroadcastCase {
  const char* name;
  Shape a, b;
  bool b_known = false;  // b a weight (plain, no gradient) rather than data
};

const BroadcastCase kCases[] = {
    {"same_shape", {2, 3, 5, 7}, {2, 3, 5, 7}},
    {"same_shape_odd_13", {13}, {13}},
    {"scalar_right", {2, 3, 4, 5}, {}},
    {"scalar_left", {}, {2, 3, 4, 5}},
    {"channel_1C11_squeeze_excite", {2, 13, 4, 3}, {2, 13, 1, 1}},
    {"channel_1C11_single", {1, 13, 5, 3}, {1, 13, 1, 1}},
    {"channel_1C11_known", {2, 13, 4, 3}, {1, 13, 1, 1}, true},
    {"channel_C11", {2, 13, 3, 5}, {13, 1, 1}},
    {"bidirectional_3x1_1x4", {3, 1}, {1, 4}},
    {"bidirectional_rank4", {2, 1, 4, 1}, {1, 3, 1, 5}},
    {"rank_mismatch_last_dim", {2, 3, 4}, {4}},
    {"rank_mismatch_left_small", {5}, {2, 3, 5}},
    {"full_plain_weight_beside_nhwc", {2, 3, 4, 5}, {2, 3, 4, 5}, true},
    {"row_broadcast_rank4", {2, 3, 4, 5}, {1, 1, 1, 5}},
};

struct OpRange {
  const char* type;
  double a_lo, a_hi, b_lo, b_hi;  // Div needs b away from 0, Pow a > 0
};

const OpRange kOps[] = {
    {"Add", -1, 1, -1, 1}, {"Sub", -1, 1, -1, 1}, {"Mul", -1, 1, -1, 1},
    {"Div", -1, 1, 0.5, 2}, {"Pow", 0.5, 2, -1.5, 1.5},
};

void PrintTo(const OpRange& op, std::ostream* os) { *os << op.type; }

OpCase make_case(const OpRange& op, const BroadcastCase& bc, std::mt19937& rng) {
  OpCase c{op.type};
  c.input(random_tensor(bc.a, rng, op.a_lo, op.a_hi));
  c.add(random_tensor(bc.b, rng, op.b_lo, op.b_hi), bc.b_known);
  return c;
}

class BinaryTest : public ::testing::TestWithParam<OpRange> {};

TEST_P(BinaryTest, GradientsOfBothInputsAndFastPath) {
  std::mt19937 rng(11);
  for (const BroadcastCase& bc : kCases) {
    SCOPED_TRACE(bc.name);
    OpCase c = make_case(GetParam(), bc, rng);
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c, 1e-5, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Arithmetic, BinaryTest, ::testing::ValuesIn(kOps),
                         [](const auto& info) { return std::string(info.param.type); });

// Exact values, so that a wrong broadcast rule cannot hide behind a matching f32/f64 pair.
TEST(Binary, BroadcastValues) {
  OpCase add{"Add"};
  add.input(Tensor::from_doubles({3, 1}, {1, 2, 3})).input(Tensor::from_doubles({1, 4}, {10, 20, 30, 40}));
  auto y = run_op(add, DType::f32)[0];
  EXPECT_EQ(y.shape(), (Shape{3, 4}));
  EXPECT_EQ(y.to_doubles(), (std::vector<double>{11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43}));

  OpCase sub{"Sub"};
  sub.input(Tensor::from_doubles({2, 2}, {5, 6, 7, 8})).input(Tensor::from_doubles({2}, {1, 2}));
  EXPECT_EQ(run_op(sub, DType::f32)[0].to_doubles(), (std::vector<double>{4, 4, 6, 6}));

  // A squeeze-excite gate: each channel scaled by its own factor, in nhwc as well.
  OpCase mul{"Mul"};
  std::vector<double> x(1 * 3 * 2 * 2);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i);
  mul.input(Tensor::from_doubles({1, 3, 2, 2}, x)).input(Tensor::from_doubles({1, 3, 1, 1}, {1, 10, 100}));
  std::vector<double> want{0, 1, 2, 3, 40, 50, 60, 70, 800, 900, 1000, 1100};
  EXPECT_EQ(run_op(mul, DType::f32, Layout::nhwc)[0].to_doubles(), want);
  EXPECT_EQ(run_op(mul, DType::f64)[0].to_doubles(), want);

  OpCase pow{"Pow"};
  pow.input(Tensor::from_doubles({3}, {2, 3, 4})).input(Tensor::from_doubles({}, {2}));
  EXPECT_EQ(run_op(pow, DType::f64)[0].to_doubles(), (std::vector<double>{4, 9, 16}));
}

// The gradient of a broadcast input is the sum over the broadcast dims.
TEST(Binary, BroadcastGradientIsSummed) {
  OpCase add{"Add"};
  add.input(Tensor::from_doubles({2, 3}, {1, 2, 3, 4, 5, 6})).input(Tensor::from_doubles({3}, {0, 0, 0}));
  Tensor seed = Tensor::from_doubles({2, 3}, {1, 2, 3, 10, 20, 30});
  auto g = run_op_backward(add, {seed}, DType::f32);
  EXPECT_EQ(g[0].to_doubles(), seed.to_doubles());
  EXPECT_EQ(g[1].to_doubles(), (std::vector<double>{11, 22, 33}));
}

TEST(Binary, PowExponentGradientIsZeroWhereBaseIsNotPositive) {
  OpCase c{"Pow"};
  c.input(Tensor::from_doubles({4}, {-2, 0, 0.5, 3})).input(Tensor::from_doubles({4}, {2, 2, 2, 2}));
  auto g = run_op_backward(c, {Tensor::from_doubles({4}, {1, 1, 1, 1})}, DType::f64);
  auto da = g[0].to_doubles(), db = g[1].to_doubles();
  EXPECT_DOUBLE_EQ(da[0], -4);  // b a^(b-1)
  EXPECT_DOUBLE_EQ(da[3], 6);
  EXPECT_EQ(db[0], 0);
  EXPECT_EQ(db[1], 0);
  EXPECT_NEAR(db[2], 0.25 * std::log(0.5), 1e-15);
  EXPECT_NEAR(db[3], 9 * std::log(3.0), 1e-12);
}

TEST(Binary, PowWithIntegerExponent) {
  std::mt19937 rng(5);
  OpCase c{"Pow"};
  c.input(random_tensor({2, 13, 3, 3}, rng, -2, 2)).weight(Tensor::from_ints({}, {3}));
  auto x = c.inputs[0].to_doubles();
  auto y = run_op(c, DType::f32, Layout::nhwc)[0].to_doubles();
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i] * x[i] * x[i], 1e-5);
  expect_vjp_matches_fd(c);
}

TEST(Binary, IntegerShapeArithmetic) {
  OpCase div{"Div"};
  div.input(Tensor::from_ints({3}, {7, -7, 12})).input(Tensor::from_ints({}, {2}));
  auto y = run_op(div, DType::f32)[0];
  EXPECT_EQ(y.dtype(), DType::i64);
  EXPECT_EQ(y.to_ints(), (std::vector<int64_t>{3, -3, 6}));

  OpCase mul{"Mul"};
  mul.input(Tensor::from_ints({2}, {3, 4})).input(Tensor::from_ints({2}, {5, -1}));
  EXPECT_EQ(run_op(mul, DType::f64)[0].to_ints(), (std::vector<int64_t>{15, -4}));

  OpCase pow{"Pow"};  // integer base, float exponent: computed in f64, truncated to i64
  pow.input(Tensor::from_ints({3}, {2, 3, 4})).weight(Tensor::from_doubles({3}, {0.5, 2, 1.5}));
  EXPECT_EQ(run_op(pow, DType::f32)[0].to_ints(), (std::vector<int64_t>{1, 9, 8}));

  OpCase zero{"Div"};
  zero.input(Tensor::from_ints({1}, {1})).input(Tensor::from_ints({1}, {0}));
  EXPECT_THROW(run_op(zero, DType::f32), Error);
}

// The layout each input combination yields (what the planner relies on to avoid reorders).
Layout output_layout(const char* type, const std::vector<Shape>& shapes, const std::vector<Layout>& layouts) {
  return kernel_output_layout(type, {}, shapes, layouts);
}

TEST(Binary, OutputLayout) {
  const Layout P = Layout::plain, N = Layout::nhwc;
  EXPECT_EQ(output_layout("Add", {{1, 8, 4, 4}, {1, 8, 4, 4}}, {N, N}), N);
  EXPECT_EQ(output_layout("Mul", {{1, 8, 4, 4}, {1, 8, 1, 1}}, {N, P}), N);
  EXPECT_EQ(output_layout("Mul", {{1, 8, 1, 1}, {1, 8, 4, 4}}, {P, N}), N);
  EXPECT_EQ(output_layout("Mul", {{2, 8, 4, 4}, {8, 1, 1}}, {N, P}), N);
  EXPECT_EQ(output_layout("Add", {{1, 8, 4, 4}, {}}, {N, P}), N);
  EXPECT_EQ(output_layout("Add", {{1, 8, 4, 4}, {1, 8, 4, 4}}, {N, P}), P);  // a full plain operand
  EXPECT_EQ(output_layout("Add", {{1, 8, 4, 4}, {4}}, {N, P}), P);           // varies along W
  EXPECT_EQ(output_layout("Add", {{1, 8, 4, 4}, {1, 8, 4, 4}}, {P, P}), P);
  EXPECT_EQ(output_layout("PRelu", {{1, 8, 4, 4}, {8, 1, 1}}, {N, P}), N);
}

TEST(Binary, RejectsOldBroadcastAttributesAndBadShapes) {
  std::mt19937 rng(2);
  OpCase old{"Add"};
  old.opset = 6;
  old.attrs.set("broadcast", int64_t{1});
  old.input(random_tensor({2, 3}, rng)).input(random_tensor({3}, rng));
  expect_error([&] { run_op(old, DType::f32); }, {ErrorKind::unsupported}, {"broadcast"});
  OpCase bad{"Mul"};
  bad.input(random_tensor({2, 3}, rng)).input(random_tensor({4}, rng));
  expect_error([&] { run_op(bad, DType::f32); }, {ErrorKind::invalid_model}, {"[2,3]"});
}

struct PReluCase {
  const char* name;
  Shape x, slope;
};

TEST(PRelu, GradientAndFastPath) {
  const PReluCase cases[] = {
      {"channel_C11", {2, 13, 4, 3}, {13, 1, 1}},
      {"single_slope", {2, 3, 5, 7}, {1}},
      {"last_dim", {3, 5}, {5}},
      {"same_shape", {2, 13, 3, 3}, {2, 13, 3, 3}},
  };
  std::mt19937 rng(8);
  for (const auto& pc : cases) {
    SCOPED_TRACE(pc.name);
    OpCase c{"PRelu"};
    c.input(random_tensor(pc.x, rng, -2, 2)).weight(random_tensor(pc.slope, rng, 0.05, 0.5));
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c, 1e-6, 1e-6);
  }
}

TEST(PRelu, ValuesAndBadSlope) {
  OpCase c{"PRelu"};
  c.input(Tensor::from_doubles({1, 2, 1, 2}, {-1, 2, -3, 4})).weight(Tensor::from_doubles({2, 1, 1}, {0.5, 0.1}));
  auto y = run_op(c, DType::f32, Layout::nhwc)[0].to_doubles();
  EXPECT_NEAR(y[0], -0.5, 1e-7);
  EXPECT_EQ(y[1], 2);
  EXPECT_NEAR(y[2], -0.3, 1e-7);
  EXPECT_EQ(y[3], 4);

  std::mt19937 rng(1);
  OpCase bad{"PRelu"};
  bad.input(random_tensor({2, 13, 4, 5}, rng)).weight(random_tensor({4}, rng));
  EXPECT_THROW(run_op(bad, DType::f32), Error);
}

}  // namespace
}  // namespace dermal::test
