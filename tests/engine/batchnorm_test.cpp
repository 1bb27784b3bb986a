// BatchNormalization (inference): reference VJP against finite differences, f32 (plain and
// channels-last) against f64, with the parameters as constants and as runtime inputs (all or
// some), runtime parameters read afresh on every call, a hand-computed example, and the modes
// that must fail at load.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/op_check.h"
#include "error_check.h"

namespace dermal::test {
namespace {

OpCase batchnorm_case(const Shape& x, std::mt19937& rng, double epsilon) {
  const int64_t c = x[1];
  OpCase op{"BatchNormalization"};
  op.attrs.set("epsilon", epsilon);
  op.input(random_tensor(x, rng, -2, 2))
      .weight(random_tensor({c}, rng, 0.5, 2))    // scale
      .weight(random_tensor({c}, rng))            // B
      .weight(random_tensor({c}, rng))            // mean
      .weight(random_tensor({c}, rng, 0.05, 3));  // var
  return op;
}

struct BatchNormShape {
  const char* name;
  Shape x;
};

void PrintTo(const BatchNormShape& s, std::ostream* os) { *os << s.name; }

class BatchNormTest : public ::testing::TestWithParam<BatchNormShape> {};

TEST_P(BatchNormTest, GradientAndFastPath) {
  std::mt19937 rng(21);
  for (double epsilon : {1e-5, 1.001e-5, 1e-3}) {
    OpCase c = batchnorm_case(GetParam().x, rng, epsilon);
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c, 1e-5, 1e-5);
  }
}

// Scale, B, mean and var as runtime inputs: all four, or only some (the rest constants). The
// values must equal the all-constant ones, and X's gradient still checks out.
TEST_P(BatchNormTest, RuntimeParametersMatchConstants) {
  std::mt19937 rng(23);
  const OpCase known = batchnorm_case(GetParam().x, rng, 1e-3);
  const Tensor seed = random_tensor(GetParam().x, rng);
  for (std::vector<size_t> runtime_inputs : {std::vector<size_t>{1, 2, 3, 4}, {4}, {1, 3}}) {
    OpCase c = known;
    for (size_t i : runtime_inputs) c.known[i] = false;
    SCOPED_TRACE(c.describe());
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c, 1e-5, 1e-5);
    EXPECT_EQ(compare(run_op(c, DType::f64)[0], run_op(known, DType::f64)[0], 1e-12, 1e-12), "");
    EXPECT_EQ(compare(run_op_backward(c, {seed}, DType::f64)[0], run_op_backward(known, {seed}, DType::f64)[0], 1e-12, 1e-12), "");
    for (Layout l : {Layout::plain, Layout::nhwc}) {
      EXPECT_EQ(compare(run_op(c, DType::f32, l)[0], run_op(known, DType::f32, l)[0], 1e-6, 1e-6), "");
      EXPECT_EQ(compare(run_op_backward(c, {seed}, DType::f32, l)[0], run_op_backward(known, {seed}, DType::f32, l)[0], 1e-6, 1e-6), "");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormTest,
                         ::testing::Values(BatchNormShape{"nchw_3", {2, 3, 4, 5}}, BatchNormShape{"nchw_13", {1, 13, 3, 3}},
                                           BatchNormShape{"nchw_13_1x1", {2, 13, 1, 1}},
                                           BatchNormShape{"one_channel", {2, 1, 3, 4}}, BatchNormShape{"rank_2", {3, 5}},
                                           BatchNormShape{"rank_3", {2, 3, 7}}, BatchNormShape{"rank_5", {1, 3, 2, 3, 4}}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(BatchNormalization, LargeTensorsTakeTheParallelLoops) {
  // Over 65536 elements the loops run in parallel; the gradient check is too slow at this size.
  std::mt19937 rng(22);
  for (Shape shape : {Shape{2, 13, 61, 47}, Shape{3, 70000}})
    expect_fast_matches_reference(batchnorm_case(shape, rng, 1e-5), 1e-5, 1e-5);
}

TEST(BatchNormalization, HandComputedExample) {
  // Channel 0: scale 2, B 1, mean 1, var 3 (+ eps 1 -> sqrt 2): y = 2 * (x - 1) / 2 + 1 = x.
  // Channel 1: scale 0.5, B -1, mean 0, var 0.25 (+ eps 1 -> sqrt 1.25): y = 0.5 x / 1.118.. - 1.
  OpCase c{"BatchNormalization"};
  c.attrs.set("epsilon", 1.0);
  c.input(Tensor::from_doubles({1, 2, 1, 2}, {3, -1, 4, -2}))
      .weight(Tensor::from_doubles({2}, {2, 0.5}))
      .weight(Tensor::from_doubles({2}, {1, -1}))
      .weight(Tensor::from_doubles({2}, {1, 0}))
      .weight(Tensor::from_doubles({2}, {3, 0.25}));
  const double k = 0.5 / std::sqrt(1.25);
  Tensor want = Tensor::from_doubles({1, 2, 1, 2}, {3, -1, 4 * k - 1, -2 * k - 1});
  EXPECT_EQ(compare(run_op(c, DType::f64)[0], want, 1e-12, 0), "");
  for (Layout l : {Layout::plain, Layout::nhwc}) EXPECT_EQ(compare(run_op(c, DType::f32, l)[0], want, 1e-6, 0), "");
  // The gradient of x is the per-channel factor times the seed.
  Tensor seed = Tensor::from_doubles({1, 2, 1, 2}, {1, 2, 3, 4});
  Tensor dx = run_op_backward(c, {seed}, DType::f64)[0];
  EXPECT_EQ(compare(dx, Tensor::from_doubles({1, 2, 1, 2}, {1, 2, 3 * k, 4 * k}), 1e-12, 0), "");
}

// One kernel called several times with new values in the same parameter buffers: a kernel
// that kept the first call's factors would return stale results.
TEST(BatchNormalization, RuntimeParametersAreReadOnEveryCall) {
  std::mt19937 rng(24);
  const Shape x_shape{2, 13, 3, 5};
  const double epsilon = 1e-4;
  for (DType compute : {DType::f64, DType::f32})
    for (Layout layout : {Layout::plain, Layout::nhwc}) {
      const std::string what = std::string(compute == DType::f64 ? "f64 " : "f32 ") + (layout == Layout::plain ? "plain" : "nhwc");
      engine::Attributes attrs;
      attrs.set("epsilon", epsilon);
      auto op = engine::create_op(attrs, {"BatchNormalization", "runtime", 15, 5, 1});
      engine::KernelConfig cfg;
      cfg.compute = compute;
      cfg.inputs = {{compute, x_shape}};
      for (int i = 0; i < 4; ++i) cfg.inputs.push_back({compute, {x_shape[1]}});
      cfg.present.assign(5, true);
      cfg.known.assign(5, nullptr);
      cfg.input_layouts = {layout, Layout::plain, Layout::plain, Layout::plain, Layout::plain};
      cfg.outputs = op->infer(cfg.inputs, cfg.known);
      auto kernel = op->make_kernel(cfg);
      std::vector<Tensor> params;
      for (int i = 0; i < 4; ++i) params.push_back(Tensor::zeros(compute, {x_shape[1]}));
      for (int call = 0; call < 3; ++call) {
        OpCase ref = batchnorm_case(x_shape, rng, epsilon);
        for (int i = 0; i < 4; ++i) params[i].copy_from(ref.inputs[i + 1].to_dtype(compute));
        std::vector<Tensor> in = {ref.inputs[0].to_dtype(compute).to_layout(layout)};
        in.insert(in.end(), params.begin(), params.end());
        Tensor y = Tensor::zeros(compute, x_shape, cfg.output_layouts[0]);
        kernel->forward(in, {y});
        Tensor seed64 = random_tensor(x_shape, rng);
        Tensor dx = Tensor::zeros(compute, x_shape, layout);
        kernel->backward(in, {y}, {seed64.to_dtype(compute).to_layout(layout)}, {dx, Tensor(), Tensor(), Tensor(), Tensor()});
        const double tol = compute == DType::f64 ? 1e-12 : 1e-5;
        EXPECT_EQ(compare(y.to_dtype(DType::f64), run_op(ref, DType::f64)[0], tol, tol), "") << what << " call " << call;
        EXPECT_EQ(compare(dx.to_dtype(DType::f64), run_op_backward(ref, {seed64}, DType::f64)[0], tol, tol), "")
            << what << " call " << call;
      }
    }
}

TEST(BatchNormalization, OldOpsetsAndIgnoredAttributes) {
  std::mt19937 rng(4);
  OpCase c = batchnorm_case({1, 3, 4, 4}, rng, 1e-4);
  c.opset = 7;
  c.attrs.set("spatial", int64_t{1});
  c.attrs.set("momentum", 0.9);
  expect_fast_matches_reference(c, 1e-5, 1e-5);
  c.opset = 15;
  c.attrs = {};
  c.attrs.set("training_mode", int64_t{0});
  expect_fast_matches_reference(c, 1e-5, 1e-5);
}

void expect_unsupported(const OpCase& c, const std::string& needle) {
  expect_error([&] { run_op(c, DType::f32); }, {ErrorKind::unsupported, ErrorKind::invalid_model},
               {"BatchNormalization", "node 'test'", needle});
}

TEST(BatchNormalization, UnsupportedModesFailAtLoad) {
  std::mt19937 rng(9);
  OpCase training = batchnorm_case({1, 3, 2, 2}, rng, 1e-5);
  training.opset = 15;
  training.attrs.set("training_mode", int64_t{1});
  expect_unsupported(training, "training_mode");

  OpCase per_activation = batchnorm_case({1, 3, 2, 2}, rng, 1e-5);
  per_activation.opset = 7;
  per_activation.attrs.set("spatial", int64_t{0});
  expect_unsupported(per_activation, "spatial");

  OpCase spatial_in_opset_9 = batchnorm_case({1, 3, 2, 2}, rng, 1e-5);
  spatial_in_opset_9.opset = 9;
  spatial_in_opset_9.attrs.set("spatial", int64_t{1});
  expect_unsupported(spatial_in_opset_9, "spatial");

  OpCase three_outputs = batchnorm_case({1, 3, 2, 2}, rng, 1e-5);
  three_outputs.num_outputs = 3;
  expect_unsupported(three_outputs, "outputs");

  OpCase wrong_channels = batchnorm_case({1, 3, 2, 2}, rng, 1e-5);
  wrong_channels.inputs[3] = random_tensor({4}, rng);
  expect_unsupported(wrong_channels, "mean");

  OpCase runtime_mean = batchnorm_case({1, 3, 2, 2}, rng, 1e-5);  // shapes alone are checked
  runtime_mean.known[3] = false;
  runtime_mean.inputs[3] = random_tensor({2}, rng);
  expect_unsupported(runtime_mean, "mean [2]");

  OpCase negative_var = batchnorm_case({1, 3, 2, 2}, rng, 1e-5);
  negative_var.inputs[4].data<double>()[1] = -0.5;
  expect_unsupported(negative_var, "channel 1");
}

TEST(BatchNormalization, NegativeRuntimeVarFailsWhenRun) {
  std::mt19937 rng(10);
  OpCase c = batchnorm_case({1, 3, 2, 2}, rng, 1e-5);
  c.known[4] = false;
  c.inputs[4].data<double>()[2] = -1.0;
  expect_error([&] { run_op(c, DType::f32); }, {ErrorKind::invalid_input}, {"node 'test'", "channel 2"});
}

}  // namespace
}  // namespace dermal::test
