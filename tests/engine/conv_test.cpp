// Conv: the f64 reference VJP against finite differences and the f32 oneDNN kernel (plain and
// channels-last) against the f64 one, over a table of named shapes, with W and B as constants
// and as runtime inputs; ONNX conformance values; weight packing shared across kernels; runtime
// weights read afresh on every call; BatchNormalization folding; load-time errors.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/op_check.h"
#include "engine/ops/conv.h"
#include "formats/onnx_importer.h"
#include "error_check.h"

namespace dermal::test {
namespace {

using engine::EltwiseSpec;

struct ConvCase {
  const char* name;
  Shape x, w;
  int64_t group = 1;
  std::vector<int64_t> strides = {}, dilations = {}, pads = {};
  const char* auto_pad = nullptr;
  bool bias = false;
  std::optional<EltwiseSpec> act = std::nullopt;
  Shape residual = {};  // a fused residual Add's operand (the output's shape), before act
};

// Failure messages name the case rather than dumping its bytes.
void PrintTo(const ConvCase& k, std::ostream* os) { *os << k.name; }

OpCase make_case(const ConvCase& k, std::mt19937& rng) {
  OpCase c{"Conv"};
  if (k.group != 1) c.attrs.set("group", k.group);
  if (!k.strides.empty()) c.attrs.set("strides", k.strides);
  if (!k.dilations.empty()) c.attrs.set("dilations", k.dilations);
  if (!k.pads.empty()) c.attrs.set("pads", k.pads);
  if (k.auto_pad) c.attrs.set("auto_pad", std::string(k.auto_pad));
  c.attrs.set("kernel_shape", std::vector<int64_t>(k.w.begin() + 2, k.w.end()));
  c.input(random_tensor(k.x, rng));
  c.weight(random_tensor(k.w, rng, -0.5, 0.5));
  if (k.bias) c.weight(random_tensor({k.w[0]}, rng));
  if (!k.residual.empty()) {
    if (!k.bias) c.absent();
    c.input(random_tensor(k.residual, rng));
    c.post_add = true;
  }
  c.post_eltwise = k.act;
  return c;
}

const EltwiseSpec kRelu{EltwiseSpec::relu};
const EltwiseSpec kLeakyRelu{EltwiseSpec::relu, 0.1f};
const EltwiseSpec kClip{EltwiseSpec::clip, -0.2f, 0.4f};
const EltwiseSpec kTanh{EltwiseSpec::tanh};
const EltwiseSpec kElu{EltwiseSpec::elu, 0.7f};
const EltwiseSpec kSigmoid{EltwiseSpec::sigmoid};

const ConvCase kCases[] = {
    {.name = "odd_channels_3", .x = {1, 3, 7, 7}, .w = {4, 3, 3, 3}, .pads = {1, 1, 1, 1}},
    {.name = "odd_channels_13_bias", .x = {1, 13, 6, 5}, .w = {5, 13, 3, 3}, .bias = true},
    {.name = "depthwise", .x = {1, 8, 7, 6}, .w = {8, 1, 3, 3}, .group = 8, .pads = {1, 1, 1, 1}, .bias = true},
    {.name = "depthwise_odd_13", .x = {1, 13, 5, 5}, .w = {13, 1, 3, 3}, .group = 13, .pads = {1, 1, 1, 1}},
    {.name = "depthwise_multiplier_2", .x = {1, 5, 6, 6}, .w = {10, 1, 3, 3}, .group = 5, .strides = {2, 2}, .pads = {1, 1, 1, 1}},
    {.name = "grouped_2", .x = {1, 6, 5, 5}, .w = {4, 3, 3, 3}, .group = 2, .bias = true},
    {.name = "stride_2", .x = {1, 3, 9, 8}, .w = {4, 3, 3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}},
    {.name = "stride_2_1", .x = {1, 3, 8, 7}, .w = {3, 3, 2, 3}, .strides = {2, 1}},
    {.name = "dilation_2", .x = {1, 3, 9, 9}, .w = {2, 3, 3, 3}, .dilations = {2, 2}, .pads = {2, 2, 2, 2}},
    {.name = "dilation_2_stride_2", .x = {1, 4, 11, 10}, .w = {3, 4, 3, 3}, .strides = {2, 2}, .dilations = {2, 1}},
    {.name = "asymmetric_pads", .x = {1, 3, 6, 7}, .w = {4, 3, 3, 2}, .pads = {1, 0, 2, 1}},
    {.name = "same_upper_stride_2_even", .x = {1, 3, 8, 8}, .w = {2, 3, 3, 3}, .strides = {2, 2}, .auto_pad = "SAME_UPPER"},
    {.name = "same_upper_stride_2_odd", .x = {1, 3, 7, 9}, .w = {2, 3, 3, 3}, .strides = {2, 2}, .auto_pad = "SAME_UPPER"},
    {.name = "same_lower_stride_2_even", .x = {1, 3, 8, 6}, .w = {2, 3, 3, 3}, .strides = {2, 2}, .auto_pad = "SAME_LOWER"},
    {.name = "same_lower_stride_2_odd", .x = {1, 3, 7, 9}, .w = {2, 3, 4, 3}, .strides = {2, 2}, .auto_pad = "SAME_LOWER"},
    {.name = "same_upper_dilated", .x = {1, 3, 8, 7}, .w = {2, 3, 3, 3}, .dilations = {2, 2}, .auto_pad = "SAME_UPPER"},
    {.name = "valid_stride_2", .x = {1, 3, 8, 7}, .w = {4, 3, 3, 3}, .strides = {2, 2}, .auto_pad = "VALID"},
    {.name = "pointwise_1x1", .x = {2, 16, 5, 5}, .w = {7, 16, 1, 1}, .bias = true},
    {.name = "batch_2", .x = {2, 3, 6, 6}, .w = {4, 3, 3, 3}, .pads = {1, 1, 1, 1}, .bias = true},
    {.name = "conv1d", .x = {2, 3, 10}, .w = {4, 3, 3}, .strides = {2}, .pads = {1, 2}, .bias = true},
    {.name = "conv1d_grouped_same_lower", .x = {1, 4, 9}, .w = {4, 2, 4}, .group = 2, .auto_pad = "SAME_LOWER"},
    {.name = "fused_relu", .x = {1, 3, 6, 6}, .w = {5, 3, 3, 3}, .pads = {1, 1, 1, 1}, .bias = true, .act = kRelu},
    {.name = "fused_leaky_relu", .x = {1, 3, 6, 6}, .w = {5, 3, 3, 3}, .pads = {1, 1, 1, 1}, .bias = true, .act = kLeakyRelu},
    {.name = "fused_clip", .x = {1, 3, 6, 6}, .w = {5, 3, 3, 3}, .pads = {1, 1, 1, 1}, .bias = true, .act = kClip},
    {.name = "fused_tanh", .x = {1, 3, 6, 6}, .w = {5, 3, 3, 3}, .pads = {1, 1, 1, 1}, .act = kTanh},
    {.name = "fused_elu", .x = {1, 3, 6, 6}, .w = {5, 3, 3, 3}, .pads = {1, 1, 1, 1}, .bias = true, .act = kElu},
    {.name = "fused_sigmoid", .x = {2, 3, 5, 6}, .w = {5, 3, 3, 3}, .bias = true, .act = kSigmoid},
    {.name = "fused_clip_depthwise_stride_2", .x = {1, 13, 7, 7}, .w = {13, 1, 3, 3}, .group = 13, .strides = {2, 2},
     .auto_pad = "SAME_UPPER", .bias = true, .act = kClip},
    {.name = "fused_relu_conv1d", .x = {1, 3, 8}, .w = {4, 3, 3}, .pads = {1, 1}, .bias = true, .act = kRelu},
    // Residual Adds riding on the convolution (ResNet: then ReLU; MobileNetV2: none), gradients
    // to X and to the residual both checked.
    {.name = "fused_residual_relu", .x = {1, 8, 6, 6}, .w = {8, 8, 3, 3}, .pads = {1, 1, 1, 1}, .bias = true, .act = kRelu,
     .residual = {1, 8, 6, 6}},
    {.name = "fused_residual_1x1_no_bias", .x = {2, 16, 5, 5}, .w = {7, 16, 1, 1}, .residual = {2, 7, 5, 5}},
    {.name = "fused_residual_clip_stride_2", .x = {1, 5, 9, 8}, .w = {6, 5, 3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1},
     .bias = true, .act = kClip, .residual = {1, 6, 5, 4}},
    {.name = "fused_residual_conv1d", .x = {1, 3, 8}, .w = {4, 3, 3}, .pads = {1, 1}, .act = kTanh, .residual = {1, 4, 8}},
};

class ConvTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvTest, GradientAndFastPath) {
  std::mt19937 rng(11);
  OpCase c = make_case(GetParam(), rng);
  expect_vjp_matches_fd(c);
  expect_fast_matches_reference(c);
  // "Zero trust": an all-zero output would match trivially.
  auto out = run_op(c, DType::f64)[0].to_doubles();
  EXPECT_GT(std::count_if(out.begin(), out.end(), [](double v) { return v != 0; }), static_cast<long>(out.size() / 3));
}

// The same cases with W (and B) as runtime inputs: gradients and the fast path as above, and the
// same values as with constant weights, forward and backward.
TEST_P(ConvTest, RuntimeWeightsMatchConstantWeights) {
  std::mt19937 rng(11);
  const OpCase known = make_case(GetParam(), rng);
  OpCase runtime = known;
  for (size_t i = 1; i < runtime.known.size(); ++i) runtime.known[i] = false;
  expect_vjp_matches_fd(runtime);
  expect_fast_matches_reference(runtime);
  const Tensor y = run_op(known, DType::f64)[0];
  const Tensor seed = random_tensor(y.shape(), rng);
  EXPECT_EQ(compare(run_op(runtime, DType::f64)[0], y, 1e-12, 1e-12), "");
  EXPECT_EQ(compare(run_op_backward(runtime, {seed}, DType::f64)[0], run_op_backward(known, {seed}, DType::f64)[0], 1e-12, 1e-12), "");
  for (Layout l : {Layout::plain, Layout::nhwc}) {
    const char* lname = l == Layout::plain ? "plain" : "nhwc";
    EXPECT_EQ(compare(run_op(runtime, DType::f32, l)[0], run_op(known, DType::f32, l)[0], 1e-6, 1e-6), "") << lname;
    EXPECT_EQ(compare(run_op_backward(runtime, {seed}, DType::f32, l)[0], run_op_backward(known, {seed}, DType::f32, l)[0],
                      1e-6, 1e-6), "") << lname;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

Tensor arange(const Shape& shape) {
  std::vector<double> v(static_cast<size_t>(engine::shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return Tensor::from_doubles(shape, v);
}

// x = 0, 1, 2, ... and an all-ones 3x3 kernel with stride 2: sums of windows, easy to check by hand.
void expect_window_sums(const char* auto_pad, std::vector<int64_t> pads, const Shape& x, const Shape& y_shape,
                        const std::vector<double>& expected) {
  OpCase c{"Conv"};
  c.attrs.set("kernel_shape", std::vector<int64_t>{3, 3});
  c.attrs.set("strides", std::vector<int64_t>{2, 2});
  if (auto_pad) c.attrs.set("auto_pad", std::string(auto_pad));
  if (!pads.empty()) c.attrs.set("pads", pads);
  c.input(arange(x)).weight(Tensor::from_doubles({1, 1, 3, 3}, std::vector<double>(9, 1.0)));
  Tensor want = Tensor::from_doubles(y_shape, expected);
  EXPECT_EQ(compare(run_op(c, DType::f64)[0], want, 1e-9, 0), "") << (auto_pad ? auto_pad : "explicit pads");
  for (Layout l : {Layout::plain, Layout::nhwc})
    EXPECT_EQ(compare(run_op(c, DType::f32, l)[0], want, 1e-4, 0), "") << (auto_pad ? auto_pad : "explicit pads");
}

TEST(Conv, KnownAnswers) {
  // ONNX conformance: test_conv_with_autopad_same and test_conv_with_strides_and_asymmetric_padding.
  expect_window_sums("SAME_LOWER", {}, {1, 1, 5, 5}, {1, 1, 3, 3}, {12, 27, 24, 63, 108, 81, 72, 117, 84});
  expect_window_sums(nullptr, {1, 0, 1, 0}, {1, 1, 7, 5}, {1, 1, 4, 2}, {21, 33, 99, 117, 189, 207, 171, 183});
  // 4x4 with stride 2: one pad row/column in total, after the data (UPPER) or before it (LOWER).
  expect_window_sums("SAME_UPPER", {}, {1, 1, 4, 4}, {1, 1, 2, 2}, {45, 39, 66, 50});
  expect_window_sums("SAME_LOWER", {}, {1, 1, 4, 4}, {1, 1, 2, 2}, {10, 24, 51, 90});
  expect_window_sums("VALID", {}, {1, 1, 4, 4}, {1, 1, 1, 1}, {45});
}

// ONNX's conformance cases for Conv and BatchNormalization pass the weights as graph inputs (the
// suite over whole graphs runs them so, on the f32 channels-last path). Here the node runs on
// its own, with the weights as constants (how models hold them) and as runtime inputs, in f64
// and in f32 in both layouts.
class ConformanceWeightsEitherWay : public ::testing::TestWithParam<const char*> {};

TEST_P(ConformanceWeightsEitherWay, MatchesExpectedOutput) {
  const std::string dir = std::string(DERMAL_ONNX_TESTDATA) + "/" + GetParam();
  engine::Graph graph = formats::load_onnx(dir + "/model.onnx");
  ASSERT_EQ(graph.nodes.size(), 1u);
  const engine::Node& node = graph.nodes[0];
  Tensor expected = formats::load_tensor_pb(dir + "/test_data_set_0/output_0.pb");
  for (bool weights_known : {true, false}) {
    OpCase c{node.type};
    c.attrs = node.attrs;
    c.opset = node.opset;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      Tensor t = formats::load_tensor_pb(dir + "/test_data_set_0/input_" + std::to_string(i) + ".pb").to_dtype(DType::f64);
      c.add(t, i > 0 && weights_known);
    }
    const std::string what = std::string(GetParam()) + (weights_known ? ", constant weights" : ", runtime weights");
    EXPECT_EQ(compare(run_op(c, DType::f64)[0], expected, 1e-5, 1e-5), "") << what;
    for (Layout l : {Layout::plain, Layout::nhwc})
      EXPECT_EQ(compare(run_op(c, DType::f32, l)[0], expected, 1e-5, 1e-4), "") << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Onnx, ConformanceWeightsEitherWay,
                         ::testing::Values("test_basic_conv_with_padding", "test_basic_conv_without_padding",
                                           "test_conv_with_autopad_same", "test_conv_with_strides_and_asymmetric_padding",
                                           "test_conv_with_strides_no_padding", "test_conv_with_strides_padding",
                                           "test_batchnorm_epsilon", "test_batchnorm_example"),
                         [](const auto& info) { return std::string(info.param).substr(5); });

// Runs an already created op the way the executor does, for a given batch and layout.
std::vector<Tensor> run_kernel(const engine::Op& op, const Tensor& x64, const Tensor& w, Layout layout,
                               const Tensor& seed64) {
  engine::KernelConfig cfg;
  cfg.compute = DType::f32;
  cfg.inputs = {{DType::f32, x64.shape()}, {DType::f32, w.shape()}};
  cfg.present = {true, true};
  cfg.known = {nullptr, &w};
  cfg.input_layouts = {layout, Layout::plain};
  cfg.outputs = op.infer(cfg.inputs, cfg.known);
  auto kernel = op.make_kernel(cfg);
  Tensor x = x64.to_dtype(DType::f32).to_layout(layout);
  Tensor y = Tensor::zeros(DType::f32, cfg.outputs[0].shape, cfg.output_layouts[0]);
  kernel->forward({x, w}, {y});
  Tensor dx = Tensor::zeros(DType::f32, x.shape(), layout);
  kernel->backward({x, w}, {y}, {seed64.to_dtype(DType::f32).to_layout(y.layout())}, {dx, Tensor()});
  return {y.to_dtype(DType::f64), dx.to_dtype(DType::f64)};
}

TEST(Conv, KernelsOfOneOpShareWeightsCorrectly) {
  // One op, kernels for several batch sizes and layouts, and a second weight tensor: every
  // kernel must use its own weights, packed for its own primitive.
  std::mt19937 rng(5);
  OpCase c{"Conv"};
  c.attrs.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  auto op = engine::create_op(c.attrs, {"Conv", "shared", 13, 2, 1});
  Tensor w1 = random_tensor({16, 13, 3, 3}, rng), w2 = random_tensor({16, 13, 3, 3}, rng);
  Tensor w1_f32 = w1.to_dtype(DType::f32), w2_f32 = w2.to_dtype(DType::f32);
  for (auto [w, w_f32] : {std::pair{&w1, &w1_f32}, std::pair{&w2, &w2_f32}, std::pair{&w1, &w1_f32}})
    for (int64_t batch : {1, 3})
      for (Layout layout : {Layout::nhwc, Layout::plain}) {
        Tensor x = random_tensor({batch, 13, 6, 5}, rng), seed = random_tensor({batch, 16, 6, 5}, rng);
        OpCase ref{"Conv"};
        ref.attrs = c.attrs;
        ref.input(x).weight(*w);
        auto got = run_kernel(*op, x, *w_f32, layout, seed);
        EXPECT_EQ(compare(got[0], run_op(ref, DType::f64)[0], 1e-4, 1e-4), "") << "batch " << batch;
        EXPECT_EQ(compare(got[1], run_op_backward(ref, {seed}, DType::f64)[0], 1e-4, 1e-4), "") << "batch " << batch;
      }
}

// One kernel called several times with new values in the same W and B buffers: a kernel that
// kept (or packed once) the first call's runtime weights would return stale results.
TEST(Conv, RuntimeWeightsAreReadOnEveryCall) {
  std::mt19937 rng(6);
  struct Setup {
    const char* name;
    Shape x, w;
    int64_t group;
  };
  for (const Setup& k : {Setup{"dense_13", {2, 13, 7, 6}, {16, 13, 3, 3}, 1}, Setup{"depthwise_13", {1, 13, 6, 7}, {13, 1, 3, 3}, 13},
                         Setup{"grouped_1x1", {1, 6, 5, 5}, {9, 2, 1, 1}, 3}})
    for (DType compute : {DType::f64, DType::f32})
      for (Layout layout : {Layout::plain, Layout::nhwc}) {
        const std::string what = std::string(k.name) + (compute == DType::f64 ? " f64 " : " f32 ") +
                                 (layout == Layout::plain ? "plain" : "nhwc");
        engine::Attributes attrs;
        attrs.set("pads", std::vector<int64_t>{1, 0, 1, 1});
        attrs.set("group", k.group);
        auto op = engine::create_op(attrs, {"Conv", "runtime", 13, 3, 1});
        const Shape b_shape{k.w[0]};
        engine::KernelConfig cfg;
        cfg.compute = compute;
        cfg.inputs = {{compute, k.x}, {compute, k.w}, {compute, b_shape}};
        cfg.present = {true, true, true};
        cfg.known = {nullptr, nullptr, nullptr};
        cfg.input_layouts = {layout, Layout::plain, Layout::plain};
        cfg.outputs = op->infer(cfg.inputs, cfg.known);
        auto kernel = op->make_kernel(cfg);
        Tensor w = Tensor::zeros(compute, k.w), b = Tensor::zeros(compute, b_shape);
        for (int call = 0; call < 3; ++call) {
          Tensor x64 = random_tensor(k.x, rng), w64 = random_tensor(k.w, rng), b64 = random_tensor(b_shape, rng);
          w.copy_from(w64.to_dtype(compute));
          b.copy_from(b64.to_dtype(compute));
          Tensor x = x64.to_dtype(compute).to_layout(layout);
          Tensor y = Tensor::zeros(compute, cfg.outputs[0].shape, cfg.output_layouts[0]);
          kernel->forward({x, w, b}, {y});
          Tensor seed64 = random_tensor(y.shape(), rng);
          Tensor dx = Tensor::zeros(compute, k.x, layout);
          kernel->backward({x, w, b}, {y}, {seed64.to_dtype(compute).to_layout(y.layout())}, {dx, Tensor(), Tensor()});

          OpCase ref{"Conv"};
          ref.attrs = attrs;
          ref.input(x64).weight(w64).weight(b64);
          const double tol = compute == DType::f64 ? 1e-12 : 1e-4;
          EXPECT_EQ(compare(y.to_dtype(DType::f64), run_op(ref, DType::f64)[0], tol, tol), "") << what << " call " << call;
          EXPECT_EQ(compare(dx.to_dtype(DType::f64), run_op_backward(ref, {seed64}, DType::f64)[0], tol, tol), "")
              << what << " call " << call;
        }
      }
}

// W a constant and B a runtime input, and the other way round.
TEST(Conv, MixedConstantAndRuntimeParameters) {
  std::mt19937 rng(7);
  for (const ConvCase& k : kCases) {
    if (!k.bias) continue;
    const OpCase known = make_case(k, rng);
    for (size_t runtime_input : {1, 2}) {
      OpCase mixed = known;
      mixed.known[runtime_input] = false;
      SCOPED_TRACE(std::string(k.name) + (runtime_input == 1 ? ": runtime W" : ": runtime B"));
      expect_fast_matches_reference(mixed);
      EXPECT_EQ(compare(run_op(mixed, DType::f64)[0], run_op(known, DType::f64)[0], 1e-12, 1e-12), "");
      EXPECT_EQ(compare(run_op(mixed, DType::f32, Layout::nhwc)[0], run_op(known, DType::f32, Layout::nhwc)[0], 1e-6, 1e-6), "");
    }
  }
}

TEST(Conv, FoldBatchnormMatchesConvThenBatchnorm) {
  std::mt19937 rng(8);
  for (bool with_bias : {true, false}) {
    const int64_t oc = 5;
    Tensor x = random_tensor({2, 3, 6, 7}, rng), w = random_tensor({oc, 3, 3, 3}, rng), b = random_tensor({oc}, rng);
    Tensor scale = random_tensor({oc}, rng, 0.5, 2), shift = random_tensor({oc}, rng), mean = random_tensor({oc}, rng),
           var = random_tensor({oc}, rng, 0.1, 2);
    const double eps = 1e-3;
    OpCase conv{"Conv"};
    conv.attrs.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    conv.input(x).weight(w);
    if (with_bias) conv.weight(b);
    OpCase bn{"BatchNormalization"};
    bn.attrs.set("epsilon", eps);
    bn.input(run_op(conv, DType::f64)[0]).weight(scale).weight(shift).weight(mean).weight(var);
    Tensor expected = run_op(bn, DType::f64)[0];

    auto [w2, b2] = engine::ops::fold_batchnorm_weights(w, with_bias ? &b : nullptr, scale, shift, mean, var, eps);
    EXPECT_EQ(w2.shape(), w.shape());
    EXPECT_EQ(b2.shape(), (Shape{oc}));
    OpCase folded{"Conv"};
    folded.attrs = conv.attrs;
    folded.input(x).weight(w2).weight(b2);
    EXPECT_EQ(compare(run_op(folded, DType::f64)[0], expected, 1e-12, 1e-12), "") << "bias " << with_bias;
    EXPECT_EQ(compare(run_op(folded, DType::f32, Layout::nhwc)[0], expected, 1e-4, 1e-4), "") << "bias " << with_bias;
    // f32 weights stay f32.
    auto [w3, b3] = engine::ops::fold_batchnorm_weights(w.to_dtype(DType::f32), nullptr, scale, shift, mean, var, eps);
    EXPECT_EQ(w3.dtype(), DType::f32);
  }
  Tensor w = random_tensor({4, 3, 1, 1}, rng), wrong = random_tensor({3}, rng);
  EXPECT_THROW(engine::ops::fold_batchnorm_weights(w, nullptr, wrong, wrong, wrong, wrong, 1e-5), Error);
}

// Runs a case that must fail with one of the given kinds, naming the node and `needle`.
void expect_load_error(const OpCase& c, const std::string& needle) {
  expect_error([&] { run_op(c, DType::f32); }, {ErrorKind::invalid_model, ErrorKind::unsupported}, {"node 'test'", needle});
}

TEST(Conv, InvalidAttributesAndShapesFail) {
  std::mt19937 rng(2);
  auto base = [&](Shape x, Shape w) {
    OpCase c{"Conv"};
    c.input(random_tensor(x, rng)).weight(random_tensor(w, rng));
    return c;
  };
  OpCase foo = base({1, 3, 5, 5}, {2, 3, 3, 3});
  foo.attrs.set("auto_pad", std::string("FOO"));
  expect_load_error(foo, "FOO");
  // Fails in the factory, before any shape is known.
  expect_error([&] { engine::create_op(foo.attrs, {"Conv", "n7", 13, 2, 1}); }, {}, {"n7"});
  OpCase kernel = base({1, 3, 5, 5}, {2, 3, 3, 3});
  kernel.attrs.set("kernel_shape", std::vector<int64_t>{3, 2});
  expect_load_error(kernel, "kernel_shape");
  OpCase channels = base({1, 4, 5, 5}, {2, 3, 3, 3});
  expect_load_error(channels, "[1,4,5,5]");
  OpCase groups = base({1, 4, 5, 5}, {3, 2, 3, 3});
  groups.attrs.set("group", int64_t{2});
  expect_load_error(groups, "group");
  OpCase conv3d = base({1, 3, 4, 4, 4}, {2, 3, 3, 3, 3});
  expect_load_error(conv3d, "2-D");
  OpCase both = base({1, 3, 5, 5}, {2, 3, 3, 3});
  both.attrs.set("auto_pad", std::string("SAME_UPPER"));
  both.attrs.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  expect_load_error(both, "pads");
  OpCase too_small = base({1, 3, 2, 2}, {2, 3, 3, 3});
  expect_load_error(too_small, "does not fit");
  OpCase bogus = base({1, 3, 5, 5}, {2, 3, 3, 3});
  bogus.attrs.set("bogus", int64_t{1});
  expect_load_error(bogus, "bogus");
  // Runtime W and B are checked from their shapes alone.
  OpCase runtime_w{"Conv"};
  runtime_w.input(random_tensor({1, 3, 5, 5}, rng)).input(random_tensor({2, 4, 3, 3}, rng));
  expect_load_error(runtime_w, "[2,4,3,3]");
  OpCase runtime_b{"Conv"};
  runtime_b.input(random_tensor({1, 3, 5, 5}, rng)).input(random_tensor({2, 3, 3, 3}, rng)).input(random_tensor({3}, rng));
  expect_load_error(runtime_b, "B [3]");
}

}  // namespace
}  // namespace dermal::test
