// Conv: the f64 reference VJP against finite differences and the f32 oneDNN kernel (plain and
// channels-last) against the f64 one, over a table of named shapes; ONNX conformance values;
// weight packing shared across kernels; BatchNormalization folding; load-time errors.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/op_check.h"
#include "engine/ops/conv.h"
#include "formats/onnx_importer.h"

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

// ONNX's conformance cases for Conv and BatchNormalization pass the weights as graph inputs, which
// these ops refuse (models hold them as constants): the suite over whole graphs skips them. Here
// the node's attributes and test data are run with the weights made constants.
class ConformanceWithConstantWeights : public ::testing::TestWithParam<const char*> {};

TEST_P(ConformanceWithConstantWeights, MatchesExpectedOutput) {
  const std::string dir = std::string(DERMAL_ONNX_TESTDATA) + "/" + GetParam();
  engine::Graph graph = formats::load_onnx(dir + "/model.onnx");
  ASSERT_EQ(graph.nodes.size(), 1u);
  const engine::Node& node = graph.nodes[0];
  OpCase c{node.type};
  c.attrs = node.attrs;
  c.opset = node.opset;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    Tensor t = formats::load_tensor_pb(dir + "/test_data_set_0/input_" + std::to_string(i) + ".pb").to_dtype(DType::f64);
    c.add(t, i > 0);
  }
  Tensor expected = formats::load_tensor_pb(dir + "/test_data_set_0/output_0.pb");
  EXPECT_EQ(compare(run_op(c, DType::f64)[0], expected, 1e-5, 1e-5), "") << GetParam();
  for (Layout l : {Layout::plain, Layout::nhwc})
    EXPECT_EQ(compare(run_op(c, DType::f32, l)[0], expected, 1e-5, 1e-4), "") << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Onnx, ConformanceWithConstantWeights,
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
  try {
    run_op(c, DType::f32);
    FAIL() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_TRUE(e.kind() == ErrorKind::invalid_model || e.kind() == ErrorKind::unsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("node 'test'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
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
  try {  // fails in the factory, before any shape is known
    engine::create_op(foo.attrs, {"Conv", "n7", 13, 2, 1});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n7"), std::string::npos);
  }
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
  OpCase data_weights{"Conv"};  // W must be a constant
  data_weights.input(random_tensor({1, 3, 5, 5}, rng)).input(random_tensor({2, 3, 3, 3}, rng));
  expect_load_error(data_weights, "constant");
}

}  // namespace
}  // namespace dermal::test
