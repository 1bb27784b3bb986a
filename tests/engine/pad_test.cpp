// Pad: hand-computed values for constant, reflect and edge (numpy.pad gives the same), cropping
// by negative pads, the attribute (opset < 11), input (opset 11) and axes (opset 18) forms, i64
// data, gradients against finite differences and f32 against f64, and the error cases.
#include <gtest/gtest.h>

#include "engine/op_check.h"

namespace dermal::test {
namespace {


Tensor vec(const std::vector<int64_t>& v) { return Tensor::from_ints({static_cast<int64_t>(v.size())}, v); }

// Pad in the input form (opset 13): data, pads, optional constant value.
OpCase pad_case(const std::string& mode, Tensor data, const std::vector<int64_t>& pads) {
  OpCase c{"Pad"};
  c.attrs.set("mode", mode);
  c.input(std::move(data)).weight(vec(pads));
  return c;
}

void expect_values(const Tensor& t, const Shape& shape, const std::vector<double>& values) {
  EXPECT_EQ(t.shape(), shape);
  EXPECT_EQ(t.to_doubles(), values);
}

const Tensor kSmall = Tensor::from_doubles({2, 3}, {1, 2, 3, 4, 5, 6});

TEST(Pad, ConstantValues) {
  // pads: row begin 1, column begin 2, row end 0, column end 1.
  OpCase c = pad_case("constant", kSmall, {1, 2, 0, 1});
  c.weight(Tensor::from_doubles({}, {9}));
  expect_values(run_op(c, DType::f32)[0], {3, 6}, {9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9});
  OpCase runtime_value = pad_case("constant", kSmall, {1, 0, 0, 0});  // constant_value not known at load
  runtime_value.input(Tensor::from_doubles({}, {-1.5}));
  expect_values(run_op(runtime_value, DType::f64)[0], {3, 3}, {-1.5, -1.5, -1.5, 1, 2, 3, 4, 5, 6});
  OpCase zero = pad_case("constant", kSmall, {0, 1, 1, 0});  // default value 0
  expect_values(run_op(zero, DType::f64)[0], {3, 4}, {0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0});
}

TEST(Pad, ReflectValues) {
  OpCase c = pad_case("reflect", kSmall, {1, 2, 0, 1});
  expect_values(run_op(c, DType::f32)[0], {3, 6}, {6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5});
  // Pads wider than the axis reflect again and again (numpy's rule).
  OpCase wide = pad_case("reflect", Tensor::from_doubles({3}, {1, 2, 3}), {5, 4});
  expect_values(run_op(wide, DType::f64)[0], {12}, {2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3});
}

TEST(Pad, EdgeValues) {
  OpCase c = pad_case("edge", kSmall, {1, 2, 0, 1});
  expect_values(run_op(c, DType::f32)[0], {3, 6}, {1, 1, 1, 2, 3, 3, 1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6});
}

TEST(Pad, NegativePadsCropFirst) {
  Tensor x = Tensor::from_doubles({5}, {1, 2, 3, 4, 5});
  expect_values(run_op(pad_case("constant", x, {-1, -2}), DType::f32)[0], {2}, {2, 3});
  // Crop one at the front, then reflect three at the back of [2, 3, 4, 5].
  expect_values(run_op(pad_case("reflect", x, {-1, 3}), DType::f32)[0], {7}, {2, 3, 4, 5, 4, 3, 2});
  // Crop two at the back, then repeat the edge of [1, 2, 3].
  expect_values(run_op(pad_case("edge", x, {2, -2}), DType::f32)[0], {5}, {1, 1, 1, 2, 3});
  expect_values(run_op(pad_case("constant", x, {-5, 0}), DType::f32)[0], {0}, {});
}

TEST(Pad, AttributeAndAxesForms) {
  OpCase old_form{"Pad"};
  old_form.opset = 2;
  old_form.attrs.set("pads", std::vector<int64_t>{0, 1, 1, 0});
  old_form.attrs.set("value", 7.0);
  old_form.input(kSmall);
  expect_values(run_op(old_form, DType::f32)[0], {3, 4}, {7, 1, 2, 3, 7, 4, 5, 6, 7, 7, 7, 7});

  // opset 18: pads for the listed axes only; axis -1 is the columns.
  OpCase axes_form{"Pad"};
  axes_form.opset = 18;
  axes_form.attrs.set("mode", std::string("edge"));
  axes_form.input(kSmall).weight(vec({2, 1})).absent().weight(vec({-1}));
  expect_values(run_op(axes_form, DType::f64)[0], {2, 6}, {1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6});
}

TEST(Pad, IntegerData) {
  // Shape tensors are i64 even when the compute dtype is f32; values are copied exactly.
  const int64_t big = (int64_t{1} << 60) + 1;
  OpCase c{"Pad"};
  c.input(vec({big, 3})).weight(vec({1, 2})).weight(Tensor::from_ints({}, {-4}));
  Tensor out = run_op(c, DType::f32)[0];
  EXPECT_EQ(out.dtype(), DType::i64);
  EXPECT_EQ(out.to_ints(), (std::vector<int64_t>{-4, big, 3, -4, -4}));
}

TEST(Pad, GradientsMatchFiniteDifferences) {
  std::mt19937 rng(11);
  struct Case { Shape shape; std::vector<int64_t> pads; };
  const std::vector<Case> cases{{{2, 3, 5, 7}, {0, 0, 1, 2, 0, 0, 3, 1}},
                                {{1, 13, 4, 3}, {0, 1, 2, 2, 0, 0, 1, 2}},
                                {{5, 7}, {-1, 2, 1, -3}},
                                {{3}, {5, 4}},
                                {{2, 1, 3}, {1, 2, 0, 0, 3, 1}}};
  for (const char* mode : {"constant", "reflect", "edge"}) {
    for (const Case& k : cases) {
      OpCase c = pad_case(mode, random_tensor(k.shape, rng), k.pads);
      if (std::string(mode) == "constant") c.weight(Tensor::from_doubles({}, {0.25}));
      expect_vjp_matches_fd(c);
      expect_fast_matches_reference(c, 1e-6, 1e-6);
    }
  }
  // Reflecting an axis of one element repeats it; its gradient collects every copy.
  OpCase single = pad_case("reflect", Tensor::from_doubles({1}, {0.5}), {2, 1});
  expect_values(run_op(single, DType::f64)[0], {4}, {0.5, 0.5, 0.5, 0.5});
  auto grads = run_op_backward(single, {Tensor::from_doubles({4}, {1, 2, 3, 4})}, DType::f64);
  EXPECT_EQ(grads[0].to_doubles(), std::vector<double>{10});
}

TEST(Pad, EdgeGradientAccumulatesByHand) {
  // edge [a, b, c] with pads (2, 1) -> [a, a, a, b, c, c]: da = g0+g1+g2, db = g3, dc = g4+g5.
  OpCase c = pad_case("edge", Tensor::from_doubles({3}, {1, 2, 3}), {2, 1});
  auto grads = run_op_backward(c, {Tensor::from_doubles({6}, {1, 2, 4, 8, 16, 32})}, DType::f32);
  EXPECT_EQ(grads[0].to_doubles(), (std::vector<double>{7, 8, 48}));
}

TEST(Pad, Errors) {
  expect_op_error(pad_case("wrap", kSmall, {1, 1, 1, 1}), ErrorKind::unsupported, {"op 'Pad'", "wrap"});
  expect_op_error(pad_case("mirror", kSmall, {1, 1, 1, 1}), ErrorKind::invalid_model, {"Pad", "mirror"});
  expect_op_error(pad_case("constant", kSmall, {1, 1, 1}), ErrorKind::invalid_model, {"Pad", "[1,1,1]", "[2,3]"});
  expect_op_error(pad_case("constant", kSmall, {-3, 0, 0, 0}), ErrorKind::invalid_model, {"Pad", "crop"});
  expect_op_error(pad_case("reflect", kSmall, {-2, 0, 1, 0}), ErrorKind::invalid_model, {"Pad", "empty axis"});
  OpCase vector_value = pad_case("constant", kSmall, {1, 1, 1, 1});
  vector_value.weight(Tensor::from_doubles({2}, {1, 2}));
  expect_op_error(vector_value, ErrorKind::invalid_model, {"Pad", "constant_value"});
  OpCase unknown_pads{"Pad"};
  unknown_pads.input(kSmall).input(vec({1, 1, 1, 1}));
  expect_op_error(unknown_pads, ErrorKind::unsupported, {"Pad", "pads"});
}

}  // namespace
}  // namespace dermal::test
