// Slice: values by hand along one axis (Python's own slicing gave the expected index lists,
// negative and out-of-range starts/ends, INT_MAX/INT_MIN ends, negative steps), several axes at
// once, the opset < 10 attribute form, i64 data with an f32 compute dtype, gradients against
// finite differences and f32 against f64, a Shape -> Slice chain folded by the executor, and the
// errors (arguments not known at plan time, zero steps, repeated or out-of-range axes).
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "engine/executor.h"
#include "engine/graph.h"
#include "engine/op_check.h"

namespace dermal::test {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

Tensor vec(const std::vector<int64_t>& v) { return Tensor::from_ints({static_cast<int64_t>(v.size())}, v); }

// Values 0, 1, 2, ... so that the output shows which elements were taken.
Tensor iota(const Shape& shape) {
  std::vector<double> v(static_cast<size_t>(engine::shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return Tensor::from_doubles(shape, v);
}

// Opset 13 form: starts, ends and the optional axes / steps as known inputs (empty: absent).
OpCase slice_case(Tensor data, std::vector<int64_t> starts, std::vector<int64_t> ends, std::vector<int64_t> axes = {},
                  std::vector<int64_t> steps = {}) {
  OpCase c{"Slice"};
  c.input(std::move(data)).weight(vec(starts)).weight(vec(ends));
  if (!axes.empty()) c.weight(vec(axes));
  else if (!steps.empty()) c.absent();
  if (!steps.empty()) c.weight(vec(steps));
  return c;
}

void expect_values(const OpCase& c, const Shape& shape, const std::vector<double>& values) {
  for (DType compute : {DType::f64, DType::f32}) {
    Tensor y = run_op(c, compute)[0];
    EXPECT_EQ(y.shape(), shape) << c.describe();
    EXPECT_EQ(y.to_doubles(), values) << c.describe() << (compute == DType::f64 ? " f64" : " f32");
  }
}

TEST(Slice, OneAxisMatchesPythonSlicing) {
  struct Case {
    int64_t start, end, step;
    std::vector<double> expected;
  };
  const Case cases[] = {
      {0, 7, 1, {0, 1, 2, 3, 4, 5, 6}},  {2, 5, 1, {2, 3, 4}},         {-3, -1, 1, {4, 5}},
      {-100, 100, 1, {0, 1, 2, 3, 4, 5, 6}}, {5, 2, 1, {}},            {1, kMax, 2, {1, 3, 5}},
      {2, kInt32Max, 3, {2, 5}},         {6, kMin, -1, {6, 5, 4, 3, 2, 1, 0}}, {-1, kMin, -2, {6, 4, 2, 0}},
      {5, 1, -2, {5, 3}},                {100, -100, -3, {6, 3, 0}},   {3, 3, 1, {}},
      {3, 3, -1, {}},                    {0, -1, 1, {0, 1, 2, 3, 4, 5}}, {-1, 0, -1, {6, 5, 4, 3, 2, 1}},
      {7, 0, -1, {6, 5, 4, 3, 2, 1}},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE("start " + std::to_string(k.start) + " end " + std::to_string(k.end) + " step " + std::to_string(k.step));
    expect_values(slice_case(iota({7}), {k.start}, {k.end}, {0}, {k.step}), {static_cast<int64_t>(k.expected.size())},
                  k.expected);
  }
}

TEST(Slice, SeveralAxesNegativeAxesAndDefaults) {
  // data[3, 4] = 0..11: rows 2,1 backwards (axis 0), columns 1,3 (axis -1, step 2).
  expect_values(slice_case(iota({3, 4}), {2, 1}, {0, kMax}, {0, -1}, {-1, 2}), {2, 2}, {9, 11, 5, 7});
  // Axes omitted: starts/ends apply to the leading axes in order; steps omitted: 1.
  expect_values(slice_case(iota({3, 4}), {1, -2}, {3, 4}), {2, 2}, {6, 7, 10, 11});
  // Axes in any order; an axis not named is kept whole.
  expect_values(slice_case(iota({2, 3, 2}), {1, 1}, {2, 3}, {2, 1}), {2, 2, 1}, {3, 5, 9, 11});
  // Steps given, axes absent.
  expect_values(slice_case(iota({4, 2}), {-1}, {kMin}, {}, {-3}), {2, 2}, {6, 7, 0, 1});
  // An empty result along one axis.
  expect_values(slice_case(iota({3, 4}), {5}, {9}, {1}), {3, 0}, {});
}

TEST(Slice, OpsetBefore10TakesAttributes) {
  for (int opset : {1, 9}) {
    OpCase c{"Slice"};
    c.opset = opset;
    c.attrs.set("starts", std::vector<int64_t>{0, -3});
    c.attrs.set("ends", std::vector<int64_t>{kMax, 1000});
    c.attrs.set("axes", std::vector<int64_t>{0, 1});
    c.input(iota({2, 5}));
    expect_values(c, {2, 3}, {2, 3, 4, 7, 8, 9});
    OpCase no_axes{"Slice"};
    no_axes.opset = opset;
    no_axes.attrs.set("starts", std::vector<int64_t>{1});
    no_axes.attrs.set("ends", std::vector<int64_t>{2});
    no_axes.input(iota({2, 5}));
    expect_values(no_axes, {1, 5}, {5, 6, 7, 8, 9});
  }
}

TEST(Slice, IntegerDataWithFloatCompute) {
  // Shape chains: the planner runs the kernel on i64 values whatever the compute dtype.
  const int64_t big = (int64_t{1} << 60) + 1;  // beyond f64's mantissa: must be copied, not converted
  OpCase c = slice_case(vec({1, 13, 7, big}), {-2}, {kMax});
  Tensor y = run_op(c, DType::f32)[0];
  EXPECT_EQ(y.dtype(), DType::i64);
  EXPECT_EQ(y.to_ints(), (std::vector<int64_t>{7, big}));
  OpCase backwards = slice_case(vec({1, 13, 7, big}), {-1}, {0}, {0}, {-2});
  EXPECT_EQ(run_op(backwards, DType::f32)[0].to_ints(), (std::vector<int64_t>{big, 13}));
}

struct GradCase {
  const char* name;
  Shape x;
  std::vector<int64_t> starts, ends, axes, steps;
};

void PrintTo(const GradCase& k, std::ostream* os) { *os << k.name; }

const GradCase kGradCases[] = {
    {"crop_hw", {2, 3, 7, 6}, {1, 2}, {-1, 5}, {2, 3}, {}},
    {"channels_13_step_2", {1, 13, 4, 5}, {0}, {kMax}, {1}, {2}},
    {"reverse_w", {2, 3, 4, 5}, {-1}, {kMin}, {3}, {-1}},
    {"negative_steps_two_axes", {3, 7, 6}, {5, -2}, {0, kMin}, {1, 2}, {-2, -3}},
    {"clamped_ends", {4, 9}, {-100, 3}, {100, 1000}, {0, 1}, {1, 2}},
    {"rank_1_tail", {11}, {3}, {kInt32Max}, {}, {3}},
    {"rank_5", {2, 3, 2, 3, 4}, {1, 0, 3}, {2, 2, 0}, {1, -1, -2}, {1, 1, -1}},
};

class SliceGradient : public ::testing::TestWithParam<GradCase> {};

TEST_P(SliceGradient, MatchesFiniteDifferencesAndFastPath) {
  std::mt19937 rng(31);
  const GradCase& k = GetParam();
  OpCase c = slice_case(random_tensor(k.x, rng), k.starts, k.ends, k.axes, k.steps);
  expect_vjp_matches_fd(c);
  expect_fast_matches_reference(c, 1e-6, 1e-6);
  // The gradient is dy at the taken elements and zero elsewhere: as many nonzeros as outputs.
  Tensor y = run_op(c, DType::f64)[0];
  auto dx = run_op_backward(c, {random_tensor(y.shape(), rng, 1, 2)}, DType::f64)[0].to_doubles();
  EXPECT_GT(y.numel(), 0);
  EXPECT_EQ(std::count_if(dx.begin(), dx.end(), [](double v) { return v != 0; }), y.numel());
}

INSTANTIATE_TEST_SUITE_P(Cases, SliceGradient, ::testing::ValuesIn(kGradCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Slice, ShapeChainFoldsInTheExecutor) {
  // x -> Shape -> Slice(dims 2..end) -> Reshape-free check: the slice is known at plan time.
  auto g = std::make_shared<engine::Graph>();
  g->inputs.push_back({"x", DType::f32, {2, 3, 5, 7}});
  g->constants["starts"] = vec({2});
  g->constants["ends"] = vec({kMax});
  g->add_node("Shape", "shape", {"x"}, {"dims"}, {}, 13);
  g->add_node("Slice", "hw", {"dims", "starts", "ends"}, {"hw"}, {}, 13);
  g->outputs.push_back({"hw", DType::i64, {}});
  g->finalize();
  engine::PlanOptions opts;
  opts.input_shapes = {{"x", {2, 3, 5, 7}}};
  engine::Executor ex(g, opts);
  EXPECT_EQ(ex.stats().folded_nodes, 2);
  EXPECT_EQ(ex.get("hw").to_ints(), (std::vector<int64_t>{5, 7}));
}

// Every Slice error names the node as well as what is wrong.
void expect_error(const OpCase& c, ErrorKind kind, std::vector<std::string> fragments) {
  fragments.push_back("node 'test'");
  expect_op_error(c, kind, fragments);
}

TEST(Slice, Errors) {
  std::mt19937 rng(3);
  OpCase runtime_starts{"Slice"};
  runtime_starts.input(random_tensor({3, 4}, rng)).input(vec({0})).weight(vec({2}));
  expect_error(runtime_starts, ErrorKind::unsupported, {"Slice", "starts", "known"});
  OpCase runtime_steps = slice_case(random_tensor({3, 4}, rng), {0}, {2}, {1}, {1});
  runtime_steps.known[4] = false;
  expect_error(runtime_steps, ErrorKind::unsupported, {"steps"});
  expect_error(slice_case(random_tensor({3, 4}, rng), {0}, {2}, {1}, {0}), ErrorKind::invalid_model, {"steps"});
  expect_error(slice_case(random_tensor({3, 4}, rng), {0, 0}, {2, 2}, {1, -1}), ErrorKind::invalid_model, {"repeat"});
  expect_error(slice_case(random_tensor({3, 4}, rng), {0}, {2}, {2}), ErrorKind::invalid_model, {"axis 2", "[3,4]"});
  expect_error(slice_case(random_tensor({3, 4}, rng), {0, 1}, {2}), ErrorKind::invalid_model, {"length"});
  OpCase missing_ends{"Slice"};
  missing_ends.opset = 9;
  missing_ends.attrs.set("starts", std::vector<int64_t>{0});
  missing_ends.input(random_tensor({3, 4}, rng));
  expect_error(missing_ends, ErrorKind::invalid_model, {"ends"});
  OpCase attrs_in_13 = slice_case(random_tensor({3, 4}, rng), {0}, {2});
  attrs_in_13.attrs.set("starts", std::vector<int64_t>{0});
  expect_error(attrs_in_13, ErrorKind::unsupported, {"starts"});
}

}  // namespace
}  // namespace dermal::test
