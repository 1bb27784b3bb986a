// Pooling: the f64 VJP against finite differences and the f32 path (oneDNN or plain loops, in
// plain and channels-last layouts) against f64 over named shapes; values checked by hand and
// against PyTorch for padding, ceil_mode and count_include_pad; load-time rejections.
#include <gtest/gtest.h>

#include "engine/op_check.h"
#include "error_check.h"

namespace dermal::test {
namespace {

struct PoolShape {
  const char* name;
  Shape shape;
  std::vector<int64_t> kernel, strides, pads;
  const char* auto_pad = "NOTSET";
  int64_t ceil_mode = 0;
  std::vector<int64_t> dilations = {};  // MaxPool only
};

const PoolShape kShapes[] = {
    {.name = "k3s2p1_c13_batch2", .shape = {2, 13, 9, 9}, .kernel = {3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}},
    {.name = "k2s2_c3", .shape = {1, 3, 8, 8}, .kernel = {2, 2}, .strides = {2, 2}, .pads = {0, 0, 0, 0}},
    {.name = "asymmetric_pads", .shape = {1, 3, 7, 6}, .kernel = {3, 2}, .strides = {1, 2}, .pads = {0, 1, 2, 0}},
    {.name = "ceil", .shape = {2, 3, 8, 7}, .kernel = {3, 3}, .strides = {2, 2}, .pads = {0, 0, 0, 0}, .ceil_mode = 1},
    // The last window starts in the input and reaches past the end pad into ceil's extra pad.
    {.name = "ceil_pads", .shape = {1, 13, 6, 6}, .kernel = {3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}, .ceil_mode = 1},
    {.name = "ceil_asymmetric", .shape = {1, 3, 7, 5}, .kernel = {2, 3}, .strides = {3, 2}, .pads = {1, 0, 0, 2}, .ceil_mode = 1},
    {.name = "same_upper", .shape = {1, 3, 7, 8}, .kernel = {3, 3}, .strides = {2, 2}, .pads = {}, .auto_pad = "SAME_UPPER"},
    {.name = "same_lower", .shape = {1, 3, 7, 8}, .kernel = {2, 3}, .strides = {2, 1}, .pads = {}, .auto_pad = "SAME_LOWER"},
    {.name = "valid", .shape = {1, 5, 9, 7}, .kernel = {3, 3}, .strides = {2, 2}, .pads = {}, .auto_pad = "VALID"},
    {.name = "non_square", .shape = {2, 3, 5, 11}, .kernel = {2, 4}, .strides = {1, 3}, .pads = {1, 0, 0, 2}},
    {.name = "one_d", .shape = {2, 3, 11}, .kernel = {3}, .strides = {2}, .pads = {1, 1}},
    {.name = "one_d_ceil", .shape = {1, 13, 10}, .kernel = {3}, .strides = {2}, .pads = {0, 1}, .ceil_mode = 1},
};

OpCase pool_case(const char* type, const PoolShape& s, std::mt19937& rng) {
  OpCase c{type};
  c.attrs.set("kernel_shape", s.kernel);
  c.attrs.set("strides", s.strides);
  if (!s.pads.empty()) c.attrs.set("pads", s.pads);
  c.attrs.set("auto_pad", std::string(s.auto_pad));
  c.attrs.set("ceil_mode", s.ceil_mode);
  if (!s.dilations.empty()) c.attrs.set("dilations", s.dilations);
  c.input(random_tensor(s.shape, rng));  // random: no ties, so max pooling is differentiable
  return c;
}

class PoolShapes : public ::testing::TestWithParam<PoolShape> {};

TEST_P(PoolShapes, MaxPool) {
  std::mt19937 rng(11);
  OpCase c = pool_case("MaxPool", GetParam(), rng);
  expect_vjp_matches_fd(c);
  expect_fast_matches_reference(c, 1e-6, 1e-6);
}

TEST_P(PoolShapes, AveragePool) {
  for (int64_t include_pad : {0, 1}) {
    std::mt19937 rng(12);
    OpCase c = pool_case("AveragePool", GetParam(), rng);
    c.attrs.set("count_include_pad", include_pad);
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c, 1e-5, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Pooling, PoolShapes, ::testing::ValuesIn(kShapes),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(MaxPool, Dilations) {
  std::mt19937 rng(5);
  for (const PoolShape& s : {PoolShape{.name = "d2", .shape = {1, 3, 9, 9}, .kernel = {3, 3}, .strides = {1, 1},
                                       .pads = {2, 2, 2, 2}, .dilations = {2, 2}},
                             PoolShape{.name = "d13_ceil", .shape = {2, 13, 8, 10}, .kernel = {2, 2}, .strides = {2, 3},
                                       .pads = {0, 1, 1, 0}, .ceil_mode = 1, .dilations = {1, 3}}}) {
    OpCase c = pool_case("MaxPool", s, rng);
    expect_vjp_matches_fd(c);
    expect_fast_matches_reference(c, 1e-6, 1e-6);
  }
}

// After ReLU many windows hold tied maxima (zeros): the gradient goes to the first of them, as in
// PyTorch, on the f64 loops and on oneDNN alike.
TEST(MaxPool, TiesGoToTheFirstMaximum) {
  OpCase small{"MaxPool"};
  small.attrs.set("kernel_shape", std::vector<int64_t>{2, 2});
  small.input(Tensor::from_doubles({1, 1, 2, 3}, {0, 2, 2, 0, 2, 2}));
  const Tensor seed = Tensor::from_doubles({1, 1, 1, 2}, {1, 10});
  for (DType dt : {DType::f64, DType::f32})
    EXPECT_EQ(compare(run_op_backward(small, {seed}, dt)[0], Tensor::from_doubles({1, 1, 2, 3}, {0, 11, 0, 0, 0, 0}), 0, 0),
              "");

  OpCase relu_like{"MaxPool"};
  relu_like.attrs.set("kernel_shape", std::vector<int64_t>{3, 3});
  relu_like.attrs.set("strides", std::vector<int64_t>{2, 2});
  relu_like.attrs.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  std::vector<double> v(2 * 13 * 8 * 8);
  for (size_t i = 0; i < v.size(); ++i) v[i] = i % 7 == 0 ? 1.0 : 0.0;
  relu_like.input(Tensor::from_doubles({2, 13, 8, 8}, v));
  expect_fast_matches_reference(relu_like, 1e-6, 1e-6);
}

// Outputs of the f64 reference and of the f32 path in both layouts.
void expect_values(const OpCase& c, const Shape& shape, const std::vector<double>& expected) {
  const Tensor want = Tensor::from_doubles(shape, expected);
  EXPECT_EQ(compare(run_op(c, DType::f64)[0], want, 1e-12, 1e-12), "") << c.describe() << " f64";
  EXPECT_EQ(compare(run_op(c, DType::f32)[0], want, 1e-5, 1e-6), "") << c.describe() << " f32";
  EXPECT_EQ(compare(run_op(c, DType::f32, Layout::nhwc)[0], want, 1e-5, 1e-6), "") << c.describe() << " f32 nhwc";
}

OpCase avg_1_to_16(std::vector<int64_t> kernel, int64_t stride, int64_t ceil_mode, int64_t include_pad) {
  std::vector<double> v(16);
  for (int i = 0; i < 16; ++i) v[i] = i + 1;
  OpCase c{"AveragePool"};
  c.attrs.set("kernel_shape", kernel);
  c.attrs.set("strides", std::vector<int64_t>{stride, stride});
  c.attrs.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  c.attrs.set("ceil_mode", ceil_mode);
  c.attrs.set("count_include_pad", include_pad);
  c.input(Tensor::from_doubles({1, 1, 4, 4}, v));
  return c;
}

// x = 1..16 as 4x4, 2x2 windows, stride 2, pad 1: corners hold one element, edges two.
TEST(AveragePool, CountIncludePadByHand) {
  expect_values(avg_1_to_16({2, 2}, 2, 0, 1), {1, 1, 3, 3}, {0.25, 1.25, 1, 3.5, 8.5, 5, 3.25, 7.25, 4});
  expect_values(avg_1_to_16({2, 2}, 2, 0, 0), {1, 1, 3, 3}, {1, 2.5, 4, 7, 8.5, 10, 13, 14.5, 16});
}

// 3x3 windows, stride 2, pad 1, ceil_mode: the last row/column of windows covers rows 3..5 =
// input row 3, the explicit pad row 4 and ceil's extra row 5, so its padded divisor is 2, not 3.
// Values as PyTorch's avg_pool2d(ceil_mode=True).
TEST(AveragePool, CeilModeDivisor) {
  expect_values(avg_1_to_16({3, 3}, 2, 1, 1), {1, 1, 3, 3},
                {14.0 / 9, 30.0 / 9, 2, 57.0 / 9, 11, 6, 4.5, 7.5, 4});
  expect_values(avg_1_to_16({3, 3}, 2, 1, 0), {1, 1, 3, 3}, {3.5, 5, 6, 9.5, 11, 12, 13.5, 15, 16});
}

// 5x5 input, 2x2 windows, stride 2, ceil_mode: the partial last windows hold one column/row.
// With a pad of 1, the fourth window would start in the right pad and is dropped.
TEST(Pooling, CeilModeWindows) {
  std::vector<double> v(25);
  for (int i = 0; i < 25; ++i) v[i] = i + 1;
  OpCase max{"MaxPool"};
  max.attrs.set("kernel_shape", std::vector<int64_t>{2, 2});
  max.attrs.set("strides", std::vector<int64_t>{2, 2});
  max.attrs.set("ceil_mode", int64_t{1});
  max.input(Tensor::from_doubles({1, 1, 5, 5}, v));
  expect_values(max, {1, 1, 3, 3}, {7, 9, 10, 17, 19, 20, 22, 24, 25});

  OpCase avg{"AveragePool"};
  avg.attrs = max.attrs;
  avg.attrs.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  avg.attrs.set("count_include_pad", int64_t{1});
  avg.input(Tensor::from_doubles({1, 1, 5, 5}, v));
  expect_values(avg, {1, 1, 3, 3}, {0.25, 1.25, 2.25, 4.25, 10, 12, 9.25, 20, 22});
}

TEST(GlobalPool, GradientFastPathAndValues) {
  std::mt19937 rng(21);
  for (const char* type : {"GlobalAveragePool", "GlobalMaxPool"})
    for (Shape shape : {Shape{2, 13, 5, 3}, Shape{1, 3, 7, 7}, Shape{2, 3, 6}}) {
      OpCase c{type};
      c.input(random_tensor(shape, rng));
      expect_vjp_matches_fd(c);
      expect_fast_matches_reference(c, 1e-6, 1e-6);
    }
  OpCase avg{"GlobalAveragePool"}, max{"GlobalMaxPool"};
  const Tensor x = Tensor::from_doubles({1, 2, 2, 2}, {1, 2, 3, 6, -1, -5, -2, -4});
  avg.input(x);
  max.input(x);
  expect_values(avg, {1, 2, 1, 1}, {3, -3});
  expect_values(max, {1, 2, 1, 1}, {6, -1});
}

// Max pooling's f32 backward uses the argmax oneDNN kept from forward; after a forward on other
// data it must still differentiate at the input it is given.
TEST(MaxPool, BackwardAfterForwardOnOtherData) {
  using namespace engine;
  std::mt19937 rng(8);
  Attributes attrs;
  attrs.set("kernel_shape", std::vector<int64_t>{3, 3});
  attrs.set("strides", std::vector<int64_t>{2, 2});
  OpContext ctx{"MaxPool", "pool", 13, 1, 1};
  auto op = create_op(attrs, ctx);
  KernelConfig cfg;
  cfg.compute = DType::f32;
  cfg.inputs = {{DType::f32, {1, 3, 7, 7}}};
  cfg.present = {true};
  cfg.known = {nullptr};
  cfg.input_layouts = {Layout::nhwc};
  cfg.outputs = op->infer(cfg.inputs, cfg.known);
  auto kernel = op->make_kernel(cfg);
  ASSERT_EQ(cfg.output_layouts.at(0), Layout::nhwc);

  const Tensor a = random_tensor({1, 3, 7, 7}, rng).to_dtype(DType::f32).to_layout(Layout::nhwc);
  const Tensor b = random_tensor({1, 3, 7, 7}, rng).to_dtype(DType::f32).to_layout(Layout::nhwc);
  const Tensor ya = Tensor::zeros(DType::f32, cfg.outputs[0].shape, Layout::nhwc);
  const Tensor yb = Tensor::zeros(DType::f32, cfg.outputs[0].shape, Layout::nhwc);
  kernel->forward({a}, {ya});
  kernel->forward({b}, {yb});
  const Tensor seed = random_tensor(cfg.outputs[0].shape, rng);
  const Tensor dy = seed.to_dtype(DType::f32).to_layout(Layout::nhwc);
  const Tensor dx = Tensor::zeros(DType::f32, {1, 3, 7, 7}, Layout::nhwc);
  kernel->backward({a}, {ya}, {dy}, {dx});

  OpCase ref{"MaxPool"};
  ref.attrs = attrs;
  ref.input(a.to_dtype(DType::f64));
  EXPECT_EQ(compare(dx.to_dtype(DType::f64), run_op_backward(ref, {seed}, DType::f64)[0], 1e-6, 1e-6), "");
}

void expect_load_error(OpCase c, ErrorKind kind, const std::string& text) {
  std::mt19937 rng(1);
  c.input(random_tensor({1, 3, 6, 6}, rng));
  SCOPED_TRACE(c.describe());
  expect_error([&] { run_op(c, DType::f32); }, {kind}, {text, c.type});
}

TEST(Pooling, UnsupportedFormsFailAtLoad) {
  OpCase indices{"MaxPool"};
  indices.attrs.set("kernel_shape", std::vector<int64_t>{2, 2});
  indices.num_outputs = 2;
  expect_load_error(indices, ErrorKind::unsupported, "Indices");

  OpCase storage{"MaxPool"};
  storage.attrs.set("kernel_shape", std::vector<int64_t>{2, 2});
  storage.attrs.set("storage_order", int64_t{1});
  expect_load_error(storage, ErrorKind::unsupported, "storage_order");

  OpCase dilated_avg{"AveragePool"};
  dilated_avg.attrs.set("kernel_shape", std::vector<int64_t>{2, 2});
  dilated_avg.attrs.set("dilations", std::vector<int64_t>{2, 2});
  expect_load_error(dilated_avg, ErrorKind::unsupported, "dilations");

  OpCase three_d{"AveragePool"};
  three_d.attrs.set("kernel_shape", std::vector<int64_t>{2, 2, 2});
  expect_load_error(three_d, ErrorKind::unsupported, "2-D");

  OpCase bad_pad{"MaxPool"};
  bad_pad.attrs.set("kernel_shape", std::vector<int64_t>{2, 2});
  bad_pad.attrs.set("auto_pad", std::string("SAME"));
  expect_load_error(bad_pad, ErrorKind::unsupported, "auto_pad");

  OpCase include_pad_on_max{"MaxPool"};
  include_pad_on_max.attrs.set("kernel_shape", std::vector<int64_t>{2, 2});
  include_pad_on_max.attrs.set("count_include_pad", int64_t{1});
  expect_load_error(include_pad_on_max, ErrorKind::unsupported, "count_include_pad");

  OpCase pad_too_big{"AveragePool"};
  pad_too_big.attrs.set("kernel_shape", std::vector<int64_t>{2, 2});
  pad_too_big.attrs.set("pads", std::vector<int64_t>{0, 2, 0, 0});
  expect_load_error(pad_too_big, ErrorKind::unsupported, "pads");
}

}  // namespace
}  // namespace dermal::test
