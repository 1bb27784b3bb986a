// Shape and data-movement ops: Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Identity,
// Dropout, Gather, Expand, Cast (gradients against finite differences, f32 against f64, values
// by hand), Shape, Size, Constant, ConstantOfShape, Range (values), and i64 shape tensors
// flowing through all of them with an f32 compute dtype, as the planner folds them.
#include <gtest/gtest.h>

#include "engine/op_check.h"

namespace dermal::test {
namespace {


Tensor ints(const Shape& shape, const std::vector<int64_t>& v) { return Tensor::from_ints(shape, v); }
Tensor vec(const std::vector<int64_t>& v) { return Tensor::from_ints({static_cast<int64_t>(v.size())}, v); }

// Input values 0, 1, 2, ... so that element order is visible in the output.
Tensor iota(const Shape& shape) {
  std::vector<double> v(static_cast<size_t>(engine::shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return Tensor::from_doubles(shape, v);
}

void expect_values(const Tensor& t, const Shape& shape, const std::vector<double>& values) {
  EXPECT_EQ(t.shape(), shape);
  EXPECT_EQ(t.to_doubles(), values);
}

void expect_gradients(const OpCase& c) {
  expect_vjp_matches_fd(c);
  expect_fast_matches_reference(c, 1e-6, 1e-6);
}

TEST(Flatten, ShapesAndGradients) {
  std::mt19937 rng(1);
  struct Case { Shape in; int64_t axis; Shape out; };
  for (const Case& k : {Case{{2, 3, 5, 7}, 0, {1, 210}}, Case{{2, 3, 5, 7}, 1, {2, 105}}, Case{{2, 3, 5, 7}, 4, {210, 1}},
                        Case{{2, 3, 5, 7}, -1, {30, 7}}, Case{{2, 3, 5, 7}, -3, {2, 105}}, Case{{13}, 1, {13, 1}},
                        Case{{}, 0, {1, 1}}}) {
    OpCase c{"Flatten"};
    c.attrs.set("axis", k.axis);
    c.input(random_tensor(k.in, rng));
    EXPECT_EQ(run_op(c, DType::f64)[0].shape(), k.out) << "axis " << k.axis;
    expect_gradients(c);
  }
  OpCase bad{"Flatten"};
  bad.attrs.set("axis", int64_t{5});
  bad.input(random_tensor({2, 3, 5, 7}, rng));
  expect_op_error(bad, ErrorKind::invalid_model, {"Flatten", "[2,3,5,7]"});
}

TEST(Reshape, ZeroCopiesMinusOneInfersAndOrderIsKept) {
  struct Case { Shape in; std::vector<int64_t> spec; Shape out; };
  for (const Case& k : {Case{{2, 3, 5}, {0, -1}, {2, 15}}, Case{{2, 3, 5}, {-1, 5}, {6, 5}}, Case{{2, 3, 5}, {5, 0, 2}, {5, 3, 2}},
                        Case{{2, 3, 5}, {30}, {30}}, Case{{1, 13, 1}, {13}, {13}}, Case{{7}, {1, -1, 1}, {1, 7, 1}}}) {
    OpCase c{"Reshape"};
    c.input(iota(k.in)).weight(vec(k.spec));
    Tensor out = run_op(c, DType::f64)[0];
    EXPECT_EQ(out.shape(), k.out);
    EXPECT_EQ(out.to_doubles(), iota(k.in).to_doubles());
    expect_gradients(c);
  }
}

TEST(Reshape, AllowZero) {
  std::mt19937 rng(2);
  OpCase keep{"Reshape"};
  keep.attrs.set("allowzero", int64_t{1});
  keep.input(random_tensor({2, 3, 5}, rng)).weight(vec({3, 10}));
  EXPECT_EQ(run_op(keep, DType::f64)[0].shape(), (Shape{3, 10}));
  expect_gradients(keep);

  // allowzero=1: a 0 is a real zero-sized dim; without it, 0 copies the input's dim (3 -> 9 != 0 elements).
  OpCase zero{"Reshape"};
  zero.attrs.set("allowzero", int64_t{1});
  zero.input(Tensor::zeros(DType::f64, {0, 3})).weight(vec({3, 0}));
  EXPECT_EQ(run_op(zero, DType::f32)[0].shape(), (Shape{3, 0}));
  OpCase copy{"Reshape"};
  copy.input(Tensor::zeros(DType::f64, {0, 3})).weight(vec({3, 0}));
  expect_op_error(copy, ErrorKind::invalid_model, {"Reshape", "[0,3]", "[3,0]"});

  OpCase both{"Reshape"};
  both.attrs.set("allowzero", int64_t{1});
  both.input(Tensor::zeros(DType::f64, {2, 3})).weight(vec({0, -1}));
  expect_op_error(both, ErrorKind::invalid_model, {"Reshape", "allowzero"});
}

TEST(Reshape, Errors) {
  std::mt19937 rng(3);
  OpCase size{"Reshape"};
  size.input(random_tensor({2, 3, 5}, rng)).weight(vec({4, 8}));
  expect_op_error(size, ErrorKind::invalid_model, {"op 'Reshape'", "[2,3,5]", "[4,8]"});
  OpCase indivisible{"Reshape"};
  indivisible.input(random_tensor({2, 3, 5}, rng)).weight(vec({-1, 4}));
  expect_op_error(indivisible, ErrorKind::invalid_model, {"Reshape", "[2,3,5]", "[-1,4]"});
  OpCase two{"Reshape"};
  two.input(random_tensor({2, 3, 5}, rng)).weight(vec({-1, -1}));
  expect_op_error(two, ErrorKind::invalid_model, {"Reshape", "more than one -1"});
  OpCase unknown{"Reshape"};
  unknown.input(random_tensor({2, 3, 5}, rng)).input(vec({30}));
  expect_op_error(unknown, ErrorKind::unsupported, {"Reshape", "shape"});
}

TEST(Squeeze, AxesInputAttributeAndDefault) {
  std::mt19937 rng(4);
  OpCase input_form{"Squeeze"};
  input_form.input(random_tensor({2, 1, 5, 1}, rng)).weight(vec({-1, 1}));
  EXPECT_EQ(run_op(input_form, DType::f64)[0].shape(), (Shape{2, 5}));
  expect_gradients(input_form);

  OpCase attr_form{"Squeeze"};
  attr_form.opset = 11;
  attr_form.attrs.set("axes", std::vector<int64_t>{3});
  attr_form.input(random_tensor({2, 1, 5, 1}, rng));
  EXPECT_EQ(run_op(attr_form, DType::f64)[0].shape(), (Shape{2, 1, 5}));
  expect_gradients(attr_form);

  OpCase all{"Squeeze"};
  all.input(random_tensor({1, 13, 1, 3}, rng));
  EXPECT_EQ(run_op(all, DType::f64)[0].shape(), (Shape{13, 3}));
  OpCase absent{"Squeeze"};
  absent.input(random_tensor({1, 13, 1, 3}, rng)).absent();
  EXPECT_EQ(run_op(absent, DType::f64)[0].shape(), (Shape{13, 3}));

  OpCase not_one{"Squeeze"};
  not_one.input(random_tensor({2, 1, 5}, rng)).weight(vec({2}));
  expect_op_error(not_one, ErrorKind::invalid_model, {"Squeeze", "[2,1,5]"});
}

TEST(Unsqueeze, AxesCountInOutputRank) {
  std::mt19937 rng(5);
  struct Case { Shape in; std::vector<int64_t> axes; Shape out; };
  for (const Case& k : {Case{{3, 5}, {0, -1}, {1, 3, 5, 1}}, Case{{3, 5}, {3, 1}, {3, 1, 5, 1}}, Case{{}, {0}, {1}},
                        Case{{13}, {-2}, {1, 13}}}) {
    OpCase c{"Unsqueeze"};
    c.input(random_tensor(k.in, rng)).weight(vec(k.axes));
    EXPECT_EQ(run_op(c, DType::f64)[0].shape(), k.out);
    expect_gradients(c);
  }
  OpCase attr_form{"Unsqueeze"};
  attr_form.opset = 11;
  attr_form.attrs.set("axes", std::vector<int64_t>{2, 0});
  attr_form.input(random_tensor({3, 5}, rng));
  EXPECT_EQ(run_op(attr_form, DType::f64)[0].shape(), (Shape{1, 3, 1, 5}));

  OpCase repeated{"Unsqueeze"};
  repeated.input(random_tensor({3, 5}, rng)).weight(vec({1, -3}));
  expect_op_error(repeated, ErrorKind::invalid_model, {"Unsqueeze", "repeat"});
}

TEST(Transpose, ValuesAndGradients) {
  OpCase small{"Transpose"};
  small.input(iota({2, 3}));
  expect_values(run_op(small, DType::f32)[0], {3, 2}, {0, 3, 1, 4, 2, 5});

  OpCase perm{"Transpose"};
  perm.attrs.set("perm", std::vector<int64_t>{1, 2, 0});
  perm.input(iota({2, 3, 2}));
  // out[j,k,i] = in[i,j,k] = 6i + 2j + k
  expect_values(run_op(perm, DType::f64)[0], {3, 2, 2}, {0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11});

  std::mt19937 rng(6);
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases{
      {{2, 3, 5, 7}, {2, 0, 3, 1}}, {{1, 13, 4, 3}, {0, 2, 3, 1}}, {{3, 4, 5}, {}}, {{7}, {0}}};
  for (const auto& [shape, p] : cases) {
    OpCase c{"Transpose"};
    if (!p.empty()) c.attrs.set("perm", p);
    c.input(random_tensor(shape, rng));
    expect_gradients(c);
  }
  OpCase bad{"Transpose"};
  bad.attrs.set("perm", std::vector<int64_t>{0, 0, 1});
  bad.input(random_tensor({2, 3, 4}, rng));
  expect_op_error(bad, ErrorKind::invalid_model, {"Transpose", "[0,0,1]"});
}

TEST(IdentityAndDropout, PassThroughWithMask) {
  std::mt19937 rng(7);
  OpCase identity{"Identity"};
  identity.input(random_tensor({2, 13, 3, 5}, rng));
  expect_gradients(identity);

  OpCase dropout{"Dropout"};
  dropout.num_outputs = 2;
  dropout.attrs.set("seed", int64_t{42});
  dropout.input(random_tensor({2, 13, 3, 5}, rng)).weight(Tensor::from_doubles({}, {0.3})).weight(ints({}, {0}));
  auto out = run_op(dropout, DType::f32, Layout::nhwc);
  EXPECT_EQ(compare(out[0], dropout.inputs[0], 1e-7, 0), "");
  EXPECT_EQ(out[1].dtype(), DType::i64);
  EXPECT_EQ(out[1].to_ints(), std::vector<int64_t>(2 * 13 * 3 * 5, 1));
  dropout.expect_trivial_output(1);  // the mask: all kept at inference
  expect_gradients(dropout);

  OpCase old_form{"Dropout"};
  old_form.opset = 7;
  old_form.num_outputs = 2;
  old_form.attrs.set("ratio", 0.2);
  old_form.input(random_tensor({3, 5}, rng));
  auto old_out = run_op(old_form, DType::f64);
  EXPECT_EQ(old_out[1].dtype(), DType::f64);  // opset < 10: the mask has the input's type
  EXPECT_EQ(old_out[1].to_doubles(), std::vector<double>(15, 1.0));

  OpCase training{"Dropout"};
  training.input(random_tensor({3, 5}, rng)).weight(Tensor::from_doubles({}, {0.5})).weight(ints({}, {1}));
  expect_op_error(training, ErrorKind::unsupported, {"Dropout", "training_mode"});
  OpCase training_no_drop{"Dropout"};  // training with ratio 0 keeps everything: allowed
  training_no_drop.input(random_tensor({3, 5}, rng)).weight(Tensor::from_doubles({}, {0.0})).weight(ints({}, {1}));
  EXPECT_EQ(compare(run_op(training_no_drop, DType::f64)[0], training_no_drop.inputs[0], 0, 0), "");
  OpCase unknown_ratio{"Dropout"};  // inference: the ratio does nothing and may come at run time
  unknown_ratio.input(random_tensor({3, 5}, rng)).input(Tensor::from_doubles({}, {0.7}));
  EXPECT_EQ(compare(run_op(unknown_ratio, DType::f64)[0], unknown_ratio.inputs[0], 0, 0), "");
  OpCase training_unknown_ratio{"Dropout"};
  training_unknown_ratio.input(random_tensor({3, 5}, rng)).input(Tensor::from_doubles({}, {0.0})).weight(ints({}, {1}));
  expect_op_error(training_unknown_ratio, ErrorKind::unsupported, {"Dropout", "training_mode"});
  OpCase bad_ratio{"Dropout"};
  bad_ratio.input(random_tensor({3, 5}, rng)).weight(Tensor::from_doubles({}, {1.5}));
  expect_op_error(bad_ratio, ErrorKind::invalid_model, {"Dropout", "ratio"});
  OpCase unknown_mode{"Dropout"};
  unknown_mode.input(random_tensor({3, 5}, rng)).absent().input(ints({}, {0}));
  expect_op_error(unknown_mode, ErrorKind::unsupported, {"Dropout", "training_mode"});
}

TEST(Gather, NegativeIndicesValues) {
  // data [3,4]: rows gathered by [[-1, 0], [1, -3]] along axis 0; columns by [-1, 1] along axis 1.
  OpCase rows{"Gather"};
  rows.input(iota({3, 4})).weight(ints({2, 2}, {-1, 0, 1, -3}));
  expect_values(run_op(rows, DType::f32)[0], {2, 2, 4},
                {8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3});
  OpCase cols{"Gather"};
  cols.attrs.set("axis", int64_t{-1});
  cols.input(iota({3, 4})).weight(vec({-1, 1}));
  expect_values(run_op(cols, DType::f64)[0], {3, 2}, {3, 1, 7, 5, 11, 9});
  OpCase scalar{"Gather"};
  scalar.attrs.set("axis", int64_t{1});
  scalar.input(iota({2, 3, 2})).weight(ints({}, {-2}));
  expect_values(run_op(scalar, DType::f64)[0], {2, 2}, {2, 3, 8, 9});

  OpCase out_of_range{"Gather"};
  out_of_range.input(iota({3, 4})).weight(vec({3}));
  expect_op_error(out_of_range, ErrorKind::invalid_model, {"Gather", "index 3", "[3,4]"});
  OpCase runtime_index{"Gather"};  // indices not known at load: checked when run
  runtime_index.input(iota({3, 4})).input(vec({-4}));
  expect_op_error(runtime_index, ErrorKind::invalid_input, {"Gather", "index -4"});
}

TEST(Gather, GradientScatterAddsRepeatedIndices) {
  std::mt19937 rng(8);
  struct Case { Shape data; int64_t axis; Tensor indices; };
  for (const Case& k : {Case{{5, 3}, 0, vec({0, -1, 0, 2})}, Case{{2, 7, 3}, 1, ints({2, 3}, {6, -7, 3, 3, 0, -1})},
                        Case{{2, 3, 13}, -1, ints({}, {-2})}, Case{{13}, 0, vec({12, 1, 1})}}) {
    OpCase c{"Gather"};
    c.attrs.set("axis", k.axis);
    c.input(random_tensor(k.data, rng)).weight(k.indices);
    expect_gradients(c);
  }
  // A repeated index receives the sum of its output gradients.
  OpCase twice{"Gather"};
  twice.input(random_tensor({3}, rng)).weight(vec({1, 1, -2}));
  auto grads = run_op_backward(twice, {Tensor::from_doubles({3}, {1.0, 2.0, 4.0})}, DType::f64);
  EXPECT_EQ(grads[0].to_doubles(), (std::vector<double>{0, 7, 0}));
}

TEST(Expand, BroadcastsAndSumsGradients) {
  std::mt19937 rng(9);
  OpCase small{"Expand"};
  small.input(Tensor::from_doubles({3, 1}, {1, 2, 3})).weight(vec({2, 1, 2}));
  expect_values(run_op(small, DType::f32)[0], {2, 3, 2}, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases{
      {{3, 1, 5}, {2, 1, 4, 1}}, {{13}, {3, 1}}, {{1, 3, 1, 1}, {2, 3, 5, 7}}};
  for (const auto& [shape, target] : cases) {
    OpCase c{"Expand"};
    c.input(random_tensor(shape, rng)).weight(vec(target));
    expect_gradients(c);
  }
  OpCase bad{"Expand"};
  bad.input(random_tensor({3, 2}, rng)).weight(vec({4, 3}));
  expect_op_error(bad, ErrorKind::invalid_model, {"Expand", "[3,2]", "[4,3]"});
}

TEST(Cast, Values) {
  auto cast = [](Tensor x, int64_t to) {
    OpCase c{"Cast"};
    c.attrs.set("to", to);
    c.input(std::move(x));
    return run_op(c, DType::f32)[0];
  };
  Tensor f = Tensor::from_doubles({5}, {-2.7, 2.7, 0.5, 0.0, -0.2});
  Tensor as_int = cast(f, 7);
  EXPECT_EQ(as_int.dtype(), DType::i64);
  EXPECT_EQ(as_int.to_ints(), (std::vector<int64_t>{-2, 2, 0, 0, 0}));
  EXPECT_EQ(cast(f, 9).to_ints(), (std::vector<int64_t>{1, 1, 1, 0, 1}));  // BOOL
  EXPECT_EQ(cast(f, 6).to_ints(), (std::vector<int64_t>{-2, 2, 0, 0, 0}));  // INT32
  EXPECT_EQ(cast(vec({200, -1, 300}), 3).to_ints(), (std::vector<int64_t>{-56, -1, 44}));  // INT8 wraps
  EXPECT_EQ(cast(vec({-1, 256}), 2).to_ints(), (std::vector<int64_t>{255, 0}));            // UINT8 wraps
  Tensor back = cast(vec({3, -4}), 1);
  EXPECT_EQ(back.to_doubles(), (std::vector<double>{3, -4}));
  EXPECT_EQ(cast(f, 11).to_doubles()[1], static_cast<double>(2.7f));  // f32 compute keeps f32 precision

  OpCase half{"Cast"};
  half.attrs.set("to", int64_t{10});
  half.input(f);
  expect_op_error(half, ErrorKind::unsupported, {"Cast", "FLOAT16"});

  std::mt19937 rng(10);
  OpCase grad{"Cast"};
  grad.attrs.set("to", int64_t{1});
  grad.input(random_tensor({3, 13}, rng));
  expect_gradients(grad);
}

TEST(ShapeAndSize, StartEndClampAndFold) {
  struct Case { std::optional<int64_t> start, end; std::vector<int64_t> out; };
  for (const Case& k : {Case{{}, {}, {2, 3, 5, 7}}, Case{1, {}, {3, 5, 7}}, Case{{}, -1, {2, 3, 5}}, Case{-1, {}, {7}},
                        Case{1, -1, {3, 5}}, Case{1, 2, {3}}, Case{-10, {}, {2, 3, 5, 7}}, Case{{}, 10, {2, 3, 5, 7}},
                        Case{3, 1, {}}}) {
    OpCase c{"Shape"};
    c.opset = 15;
    if (k.start) c.attrs.set("start", *k.start);
    if (k.end) c.attrs.set("end", *k.end);
    c.input(Tensor::zeros(DType::f64, {2, 3, 5, 7}));
    Tensor out = run_op(c, DType::f32, Layout::nhwc)[0];
    EXPECT_EQ(out.dtype(), DType::i64);
    EXPECT_EQ(out.shape(), (Shape{static_cast<int64_t>(k.out.size())}));
    EXPECT_EQ(out.to_ints(), k.out);

    auto op = engine::create_op(c.attrs, {"Shape", "s", 15, 1, 1});
    auto folded = op->fold_from_shapes({{DType::f32, {2, 3, 5, 7}}});
    ASSERT_TRUE(folded.has_value());
    EXPECT_EQ((*folded)[0].to_ints(), k.out);
    EXPECT_FALSE(op->differentiable(0));
  }
  OpCase scalar{"Shape"};
  scalar.input(Tensor::from_doubles({}, {1.0}));
  EXPECT_EQ(run_op(scalar, DType::f32)[0].shape(), (Shape{0}));

  OpCase size{"Size"};
  size.input(Tensor::zeros(DType::f64, {2, 13, 3}));
  Tensor n = run_op(size, DType::f64)[0];
  EXPECT_EQ(n.shape(), Shape{});
  EXPECT_EQ(n.to_ints(), std::vector<int64_t>{78});
  auto size_op = engine::create_op({}, {"Size", "n", 13, 1, 1});
  EXPECT_EQ((*size_op->fold_from_shapes({{DType::f32, {4, 0}}}))[0].to_ints(), std::vector<int64_t>{0});
}

TEST(Constant, EveryValueForm) {
  auto constant = [](const char* name, engine::AttrValue v) {
    OpCase c{"Constant"};
    c.attrs.set(name, std::move(v));
    return run_op(c, DType::f64)[0];
  };
  expect_values(constant("value", Tensor::from_floats({2, 2}, {1.5f, -2.f, 3.f, 4.25f})), {2, 2}, {1.5, -2, 3, 4.25});
  expect_values(constant("value_float", 0.5), {}, {0.5});
  expect_values(constant("value_floats", std::vector<double>{1, 2.5, -3}), {3}, {1, 2.5, -3});
  Tensor i = constant("value_int", int64_t{-7});
  EXPECT_EQ(i.dtype(), DType::i64);
  expect_values(i, {}, {-7});
  expect_values(constant("value_ints", std::vector<int64_t>{4, 5}), {2}, {4, 5});

  auto op = engine::create_op([] { Attributes a; a.set("value_ints", std::vector<int64_t>{1, 2, 3}); return a; }(),
                              {"Constant", "k", 13, 0, 1});
  EXPECT_EQ((*op->fold_from_shapes({}))[0].to_ints(), (std::vector<int64_t>{1, 2, 3}));

  OpCase text{"Constant"};
  text.attrs.set("value_string", std::string("hello"));
  expect_op_error(text, ErrorKind::unsupported, {"Constant", "value_string"});
  OpCase two{"Constant"};
  two.attrs.set("value_int", int64_t{1});
  two.attrs.set("value_float", 1.0);
  expect_op_error(two, ErrorKind::invalid_model, {"Constant"});
}

TEST(ConstantOfShapeAndRange, Values) {
  OpCase zeros{"ConstantOfShape"};
  zeros.weight(vec({2, 3}));
  expect_values(run_op(zeros, DType::f32)[0], {2, 3}, std::vector<double>(6, 0.0));
  OpCase fives{"ConstantOfShape"};
  fives.attrs.set("value", Tensor::from_ints({1}, {5}));
  fives.weight(vec({3}));
  Tensor f = run_op(fives, DType::f32)[0];
  EXPECT_EQ(f.dtype(), DType::i64);
  EXPECT_EQ(f.to_ints(), (std::vector<int64_t>{5, 5, 5}));
  OpCase empty{"ConstantOfShape"};
  empty.weight(vec({0, 4}));
  EXPECT_EQ(run_op(empty, DType::f32)[0].shape(), (Shape{0, 4}));

  OpCase up{"Range"};
  up.weight(Tensor::from_doubles({}, {1})).weight(Tensor::from_doubles({}, {2.2})).weight(Tensor::from_doubles({}, {0.5}));
  Tensor r = run_op(up, DType::f64)[0];
  EXPECT_EQ(compare(r, Tensor::from_doubles({3}, {1, 1.5, 2}), 1e-12, 0), "");
  OpCase down{"Range"};
  down.weight(ints({}, {10})).weight(ints({}, {4})).weight(ints({}, {-3}));
  EXPECT_EQ(run_op(down, DType::f32)[0].to_ints(), (std::vector<int64_t>{10, 7}));
  OpCase none{"Range"};
  none.weight(ints({}, {4})).weight(ints({}, {4})).weight(ints({}, {1}));
  EXPECT_EQ(run_op(none, DType::f32)[0].shape(), (Shape{0}));
}

// Shape chains fold at plan time by running kernels on i64 values while the compute dtype is f32.
TEST(ShapeTensors, IntegerValuesFlowThroughEveryOp) {
  auto run = [](OpCase c) { return run_op(c, DType::f32)[0]; };
  Tensor dims = vec({1, 13, 7, 5});
  OpCase gather{"Gather"};
  gather.input(dims).weight(ints({}, {-3}));
  EXPECT_EQ(run(gather).to_ints(), std::vector<int64_t>{13});
  OpCase unsqueeze{"Unsqueeze"};
  unsqueeze.input(ints({}, {13})).weight(vec({0}));
  EXPECT_EQ(run(unsqueeze).shape(), Shape{1});
  OpCase squeeze{"Squeeze"};
  squeeze.input(ints({1}, {13})).weight(vec({0}));
  EXPECT_EQ(run(squeeze).to_ints(), std::vector<int64_t>{13});
  OpCase reshape{"Reshape"};
  reshape.input(dims).weight(vec({2, -1}));
  EXPECT_EQ(run(reshape).to_ints(), (std::vector<int64_t>{1, 13, 7, 5}));
  OpCase flatten{"Flatten"};
  flatten.input(dims);
  EXPECT_EQ(run(flatten).shape(), (Shape{4, 1}));
  OpCase transpose{"Transpose"};
  transpose.input(ints({2, 2}, {1, 2, 3, 4}));
  EXPECT_EQ(run(transpose).to_ints(), (std::vector<int64_t>{1, 3, 2, 4}));
  OpCase expand{"Expand"};
  expand.input(ints({1}, {9})).weight(vec({3}));
  EXPECT_EQ(run(expand).to_ints(), (std::vector<int64_t>{9, 9, 9}));
  OpCase identity{"Identity"};
  identity.input(dims);
  EXPECT_EQ(run(identity).to_ints(), dims.to_ints());
  OpCase cast{"Cast"};
  cast.attrs.set("to", int64_t{7});
  cast.input(dims);
  EXPECT_EQ(run(cast).to_ints(), dims.to_ints());
  // Values beyond f64's 53-bit mantissa stay exact: kernels copy bits, never convert.
  const int64_t big = (int64_t{1} << 60) + 1;
  OpCase big_reshape{"Reshape"};
  big_reshape.input(ints({1, 1}, {big})).weight(vec({1}));
  EXPECT_EQ(run(big_reshape).to_ints(), std::vector<int64_t>{big});
  OpCase big_gather{"Gather"};
  big_gather.input(vec({7, big})).weight(vec({1}));
  EXPECT_EQ(run(big_gather).to_ints(), std::vector<int64_t>{big});
  OpCase big_transpose{"Transpose"};
  big_transpose.input(ints({1, 2}, {big, -big}));
  EXPECT_EQ(run(big_transpose).to_ints(), (std::vector<int64_t>{big, -big}));
}

}  // namespace
}  // namespace dermal::test
