// Gemm and MatMul: reference VJP against finite differences for every data input, the f32
// (oneDNN) path against the f64 loops, exact small products, shape errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/executor.h"
#include "engine/op_check.h"

namespace dermal::test {
namespace {

constexpr int64_t M = 5, K = 13, N = 7;

struct CForm {
  const char* name;
  bool present;
  Shape shape;
};

const CForm kCForms[] = {
    {"absent", false, {}}, {"scalar", true, {}},    {"N", true, {N}},
    {"1xN", true, {1, N}}, {"MxN", true, {M, N}}, {"Mx1", true, {M, 1}},
};

OpCase gemm_case(bool trans_a, bool trans_b, double alpha, double beta, const CForm& cf, bool b_known, bool c_known,
                 std::mt19937& rng) {
  OpCase c{"Gemm"};
  c.attrs.set("transA", int64_t{trans_a});
  c.attrs.set("transB", int64_t{trans_b});
  c.attrs.set("alpha", alpha);
  c.attrs.set("beta", beta);
  c.input(random_tensor(trans_a ? Shape{K, M} : Shape{M, K}, rng));
  c.add(random_tensor(trans_b ? Shape{N, K} : Shape{K, N}, rng), b_known);
  if (cf.present) c.add(random_tensor(cf.shape, rng), c_known);
  return c;
}

TEST(Gemm, EveryTransposeAndBiasForm) {
  std::mt19937 rng(31);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const CForm& cf : kCForms) {
        SCOPED_TRACE(std::string("transA=") + (ta ? "1" : "0") + " transB=" + (tb ? "1" : "0") + " C=" + cf.name);
        // B and C as weights (a classifier head), then as data with alpha and beta != 1.
        OpCase weights = gemm_case(ta, tb, 1.0, 1.0, cf, true, true, rng);
        expect_vjp_matches_fd(weights);
        expect_fast_matches_reference(weights);
        OpCase data = gemm_case(ta, tb, 0.7, -1.3, cf, false, false, rng);
        expect_vjp_matches_fd(data);
        expect_fast_matches_reference(data);
      }
}

TEST(Gemm, Values) {
  OpCase c{"Gemm"};
  c.attrs.set("transB", int64_t{1});
  c.attrs.set("alpha", 2.0);
  c.attrs.set("beta", 0.5);
  // A [2,2] x B^T, B given as [N=2, K=2]; C [2] added to every row.
  c.input(Tensor::from_doubles({2, 2}, {1, 2, 3, 4}))
      .weight(Tensor::from_doubles({2, 2}, {5, 7, 6, 8}))
      .weight(Tensor::from_doubles({2}, {10, 20}));
  // A B^T = [[19, 22], [43, 50]]
  std::vector<double> want{2 * 19 + 5, 2 * 22 + 10, 2 * 43 + 5, 2 * 50 + 10};
  EXPECT_EQ(run_op(c, DType::f32)[0].to_doubles(), want);
  EXPECT_EQ(run_op(c, DType::f64)[0].to_doubles(), want);
}

TEST(Gemm, LargerThanOneTile) {
  std::mt19937 rng(32);
  OpCase c{"Gemm"};
  c.attrs.set("transB", int64_t{1});
  c.input(random_tensor({3, 517}, rng)).weight(random_tensor({61, 517}, rng)).weight(random_tensor({61}, rng));
  expect_fast_matches_reference(c, 1e-4, 1e-4);
}

TEST(Gemm, Errors) {
  std::mt19937 rng(33);
  OpCase inner{"Gemm"};
  inner.input(random_tensor({M, K}, rng)).weight(random_tensor({K + 1, N}, rng));
  EXPECT_THROW(run_op(inner, DType::f32), Error);

  OpCase bad_c{"Gemm"};
  bad_c.input(random_tensor({M, K}, rng)).weight(random_tensor({K, N}, rng)).weight(random_tensor({N + 1}, rng));
  EXPECT_THROW(run_op(bad_c, DType::f32), Error);

  OpCase needs_c{"Gemm"};  // C is required before opset 11
  needs_c.opset = 9;
  needs_c.input(random_tensor({M, K}, rng)).weight(random_tensor({K, N}, rng));
  EXPECT_THROW(run_op(needs_c, DType::f32), Error);

  OpCase rank3{"Gemm"};
  rank3.input(random_tensor({2, M, K}, rng)).weight(random_tensor({K, N}, rng));
  EXPECT_THROW(run_op(rank3, DType::f32), Error);
}

struct MatMulCase {
  const char* name;
  Shape a, b, out;
  bool b_known = false;
};

const MatMulCase kMatMulCases[] = {
    {"2d", {M, K}, {K, N}, {M, N}},
    {"2d_weight", {M, K}, {K, N}, {M, N}, true},
    {"1d_x_2d", {K}, {K, N}, {N}},
    {"2d_x_1d", {M, K}, {K}, {M}},
    {"1d_x_1d", {K}, {K}, {}},
    {"batched_3d", {3, M, K}, {3, K, N}, {3, M, N}},
    {"3d_x_2d_weight", {3, M, K}, {K, N}, {3, M, N}, true},
    {"2d_x_3d", {M, K}, {3, K, N}, {3, M, N}},
    {"4d_broadcast_batch", {2, 1, M, K}, {1, 3, K, N}, {2, 3, M, N}},
    {"4d_attention", {2, 3, M, K}, {2, 3, K, M}, {2, 3, M, M}},
    {"4d_x_3d", {2, 3, M, K}, {3, K, N}, {2, 3, M, N}},
    {"3d_x_1d", {4, M, K}, {K}, {4, M}},
    {"1d_x_3d", {K}, {2, K, N}, {2, N}},
};

TEST(MatMul, NumpyShapesGradientsAndFastPath) {
  std::mt19937 rng(41);
  for (const MatMulCase& mc : kMatMulCases) {
    SCOPED_TRACE(mc.name);
    OpCase c{"MatMul"};
    c.input(random_tensor(mc.a, rng)).add(random_tensor(mc.b, rng), mc.b_known);
    EXPECT_EQ(run_op(c, DType::f32)[0].shape(), mc.out);
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c);
  }
}

TEST(MatMul, Values) {
  OpCase c{"MatMul"};
  c.input(Tensor::from_doubles({2, 2}, {1, 2, 3, 4})).input(Tensor::from_doubles({2, 2}, {5, 6, 7, 8}));
  EXPECT_EQ(run_op(c, DType::f32)[0].to_doubles(), (std::vector<double>{19, 22, 43, 50}));

  // Broadcast batch: one A against two Bs.
  OpCase b{"MatMul"};
  b.input(Tensor::from_doubles({1, 1, 2}, {1, 2})).input(Tensor::from_doubles({2, 2, 1}, {3, 4, 5, 6}));
  auto y = run_op(b, DType::f32)[0];
  EXPECT_EQ(y.shape(), (Shape{2, 1, 1}));
  EXPECT_EQ(y.to_doubles(), (std::vector<double>{11, 17}));
  // A's gradient sums over the two Bs it met: seed 1 -> B0 + B1 = [8, 10].
  auto g = run_op_backward(b, {Tensor::from_doubles({2, 1, 1}, {1, 1})}, DType::f32);
  EXPECT_EQ(g[0].to_doubles(), (std::vector<double>{8, 10}));
}

// A resize written as two MatMuls (rows, then columns) with antialiased linear weights: each
// output reads a short run of inputs.
Tensor interpolation(int64_t from, int64_t to, bool right) {
  std::vector<double> w(from * to, 0.0);
  const double scale = double(from) / to, support = std::max(1.0, scale);
  for (int64_t o = 0; o < to; ++o) {
    const double centre = (o + 0.5) * scale - 0.5;
    double total = 0;
    for (int64_t i = 0; i < from; ++i) total += std::max(0.0, 1.0 - std::abs(i - centre) / support);
    for (int64_t i = 0; i < from; ++i) {
      const double v = std::max(0.0, 1.0 - std::abs(i - centre) / support) / total;
      (right ? w[i * to + o] : w[o * from + i]) = v;
    }
  }
  return Tensor::from_doubles(right ? Shape{from, to} : Shape{to, from}, w).to_dtype(DType::f32);
}

// Constant operands that are bands (an interpolation matrix) are multiplied run by run, on
// either side, with the dense product's values; a dense constant keeps the dense product.
TEST(MatMul, BandedConstantsMatchTheDenseProduct) {
  std::mt19937 rng(59);
  for (bool dense : {false, true}) {
    auto g = std::make_shared<engine::Graph>();
    g->inputs.push_back({"x", DType::f32, {2, 3, 40, 32}});
    g->constants["cols"] = dense ? random_tensor({32, 23}, rng).to_dtype(DType::f32) : interpolation(32, 23, true);
    g->constants["rows"] = dense ? random_tensor({29, 40}, rng).to_dtype(DType::f32) : interpolation(40, 29, false);
    g->add_node("MatMul", "resize_w", {"x", "cols"}, {"w"}, {}, 13);  // [2, 3, 40, 23]
    g->add_node("MatMul", "resize_h", {"rows", "w"}, {"y"}, {}, 13);  // [2, 3, 29, 23]
    g->outputs.push_back({"y", DType::f32, {}});
    g->finalize();
    const Tensor x = random_tensor({2, 3, 40, 32}, rng);
    std::vector<Tensor> y;
    for (DType compute : {DType::f64, DType::f32}) {
      engine::PlanOptions opts;
      opts.input_shapes["x"] = {2, 3, 40, 32};
      opts.compute = compute;
      engine::Executor ex(g, opts);
      ex.set_input("x", x);
      ex.forward();
      y.push_back(ex.get("y"));
      if (compute == DType::f32) {
        const auto steps = ex.profile(1);
        EXPECT_EQ(std::count_if(steps.begin(), steps.end(),
                                [](const engine::StepTime& t) { return t.label.find(" (banded)") != std::string::npos; }),
                  dense ? 0 : 2);
      }
    }
    EXPECT_EQ(y[1].shape(), (Shape{2, 3, 29, 23}));
    EXPECT_EQ(compare(y[1], y[0], 1e-5, 1e-5), "") << (dense ? "dense" : "banded");
  }
}

// Empty operands beside a banded constant: K = 0 gives zeros, an empty other operand an empty
// product (both once divided by zero: SIGFPE).
TEST(MatMul, BandedConstantsTakeEmptyOperands) {
  struct Case {
    Shape x, c, y;
    bool right;
  };
  for (const Case& k : {Case{{1, 3, 5, 0}, {0, 4}, {1, 3, 5, 4}, true}, Case{{2, 16, 0}, {16, 16}, {2, 16, 0}, false}}) {
    auto g = std::make_shared<engine::Graph>();
    g->inputs.push_back({"x", DType::f32, k.x});
    g->constants["c"] = k.c[0] == 0 ? Tensor::zeros(DType::f32, k.c) : interpolation(16, 16, false);
    g->add_node("MatMul", "mm", k.right ? std::vector<std::string>{"x", "c"} : std::vector<std::string>{"c", "x"}, {"y"}, {}, 13);
    g->outputs.push_back({"y", DType::f32, {}});
    g->finalize();
    engine::PlanOptions opts;
    opts.input_shapes["x"] = k.x;
    engine::Executor ex(g, opts);
    ex.set_input("x", Tensor::zeros(DType::f32, k.x));
    ex.forward();
    const Tensor y = ex.get("y");
    EXPECT_EQ(y.shape(), k.y);
    for (double v : y.to_doubles()) EXPECT_EQ(v, 0.0);
  }
}

TEST(MatMul, Errors) {
  std::mt19937 rng(42);
  OpCase inner{"MatMul"};
  inner.input(random_tensor({M, K}, rng)).input(random_tensor({K + 1, N}, rng));
  EXPECT_THROW(run_op(inner, DType::f32), Error);
  OpCase batch{"MatMul"};
  batch.input(random_tensor({2, M, K}, rng)).input(random_tensor({3, K, N}, rng));
  EXPECT_THROW(run_op(batch, DType::f32), Error);
}

}  // namespace
}  // namespace dermal::test
