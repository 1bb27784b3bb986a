// The planner and the executor: buffer reuse by liveness, pinning, folding, fusion and layouts,
// and backward through whole graphs against finite differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "engine/dnnl_util.h"
#include "engine/executor.h"
#include "engine/op_check.h"
#include "engine/planner.h"
#include "error_check.h"

namespace dermal::test {
namespace {

using engine::BufferRequest;
using engine::Executor;
using engine::Graph;
using engine::PlanOptions;

TEST(Planner, NoTwoLiveBuffersOverlap) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<BufferRequest> r;
    std::uniform_int_distribution<int> step(0, 30), size(1, 5000), pin(0, 9);
    for (int i = 0; i < 40; ++i) {
      int a = step(rng), b = step(rng);
      r.push_back({static_cast<size_t>(size(rng)), std::min(a, b), pin(rng) == 0 ? BufferRequest::kPinned : std::max(a, b)});
    }
    auto plan = engine::plan_arena(r);
    for (size_t i = 0; i < r.size(); ++i) {
      EXPECT_LE(plan.offsets[i] + r[i].bytes, plan.arena_bytes);
      for (size_t j = i + 1; j < r.size(); ++j) {
        bool live_together = r[i].first_step <= r[j].last_step && r[j].first_step <= r[i].last_step;
        bool overlap = plan.offsets[i] < plan.offsets[j] + r[j].bytes && plan.offsets[j] < plan.offsets[i] + r[i].bytes;
        ASSERT_FALSE(live_together && overlap) << "buffers " << i << " and " << j << " share memory while both live";
      }
    }
    EXPECT_GE(plan.arena_bytes, plan.largest_live_bytes);
  }
}

TEST(Planner, ChainReusesTwoBuffers) {
  // x0 -> x1 -> ... -> x5: each written at step s, read at step s+1.
  std::vector<BufferRequest> r;
  for (int s = 0; s < 6; ++s) r.push_back({1024, s, s + 1});
  auto plan = engine::plan_arena(r);
  EXPECT_EQ(plan.arena_bytes, 2048u);
  EXPECT_EQ(plan.total_bytes, 6u * 1024);
}

TEST(Planner, PlacingBySizeLeavesNoHoleWhereStepOrderDoes) {
  // a lives over steps 0-3, b 1-3, c 1-4, d only at 4. In step order a takes [0, 64), c and b
  // follow; when a and b end, d (256) fits neither hole (64 and 192 bytes apart) and the arena
  // grows to 576. Largest first: c, then d beside it, then b where d is not yet alive, then a.
  std::vector<BufferRequest> r = {{64, 0, 3}, {192, 1, 3}, {256, 1, 4}, {256, 4, 4}};
  auto plan = engine::plan_arena(r);
  EXPECT_EQ(plan.largest_live_bytes, 512u);
  EXPECT_EQ(plan.arena_bytes, 512u);
}

// x -> Relu -> Neg -> Sigmoid -> Tanh -> Exp -> y, all [2,3,5,7].
std::shared_ptr<Graph> chain_graph() {
  auto g = std::make_shared<Graph>();
  g->inputs.push_back({"x", DType::f32, {-1, 3, 5, 7}});
  const char* ops[] = {"Relu", "Neg", "Sigmoid", "Tanh", "Exp"};
  std::string prev = "x";
  for (int i = 0; i < 5; ++i) {
    std::string out = i == 4 ? "y" : "t" + std::to_string(i);
    g->add_node(ops[i], "n" + std::to_string(i), {prev}, {out}, Attributes{}, 13);
    prev = out;
  }
  g->outputs.push_back({"y", DType::f32, {}});
  g->finalize();
  return g;
}

// A node without an output (found by fuzz/onnx.cpp: an Identity with none reached the passes,
// which take a node's first output as its result) is refused when the graph is finalized.
TEST(Graph, NodeWithoutOutputIsRefused) {
  for (const std::vector<std::string>& outputs : {std::vector<std::string>{}, std::vector<std::string>{""}}) {
    Graph g;
    g.inputs.push_back({"x", DType::f32, {1, 3}});
    g.add_node("Identity", "lost", {"x"}, outputs, Attributes{}, 13);
    g.outputs.push_back({"x", DType::f32, {}});
    expect_error([&] { g.finalize(); }, {ErrorKind::invalid_model}, {"node 'lost' (Identity) has no output"});
  }
}

double chain_value(double x) { return std::exp(std::tanh(1.0 / (1.0 + std::exp(std::max(x, 0.0))))); }

TEST(Executor, ForwardReusesMemoryAndKeepsWhatIsAsked) {
  std::mt19937 rng(11);
  Tensor x = random_tensor({2, 3, 5, 7}, rng).to_dtype(DType::f32);
  PlanOptions opts;
  opts.input_shapes["x"] = {2, 3, 5, 7};
  opts.keep = {"t1"};
  Executor ex(chain_graph(), opts);
  ex.set_input("x", x);
  ex.forward();
  auto y = ex.get("y").to_doubles();
  auto xs = x.to_doubles();
  for (size_t i = 0; i < xs.size(); ++i) ASSERT_NEAR(y[i], chain_value(xs[i]), 1e-6);
  auto t1 = ex.get("t1").to_doubles();
  for (size_t i = 0; i < xs.size(); ++i) ASSERT_NEAR(t1[i], -std::max(xs[i], 0.0), 1e-7);
  EXPECT_THROW(ex.get("t2"), Error);  // not kept: its buffer was reused
  const size_t one = 2 * 3 * 5 * 7 * 4;
  const size_t aligned = (one + 63) / 64 * 64;
  EXPECT_EQ(ex.stats().all_activation_bytes, 6 * aligned);
  EXPECT_LE(ex.stats().arena_bytes, 4 * aligned);  // input, pinned t1, pinned y, one rotating
}

TEST(Executor, BackwardMatchesFiniteDifferences) {
  std::mt19937 rng(12);
  Tensor x = random_tensor({1, 3, 5, 7}, rng);
  PlanOptions opts;
  opts.input_shapes["x"] = {1, 3, 5, 7};
  opts.backward_from = {"y"};
  opts.backward_to = {"x", "t1"};
  opts.compute = DType::f64;
  Executor ex(chain_graph(), opts);
  ex.set_input("x", x);
  ex.forward();
  Tensor seed = random_tensor({1, 3, 5, 7}, rng);
  auto grads = ex.backward("y", seed, {"x", "t1"});
  auto g = grads[0].to_doubles(), s = seed.to_doubles(), xs = x.to_doubles();
  for (size_t i = 0; i < xs.size(); ++i) {
    double h = 1e-6;
    double fd = (chain_value(xs[i] + h) - chain_value(xs[i] - h)) / (2 * h) * s[i];
    ASSERT_NEAR(g[i], fd, 1e-6) << "element " << i;
  }
  EXPECT_THROW(ex.backward("y", seed, {"t2"}), Error);  // not planned
}

TEST(Executor, RejectsWrongInputs) {
  PlanOptions opts;
  opts.input_shapes["x"] = {1, 4, 5, 7};  // channel count fixed at 3 by the graph
  EXPECT_THROW(Executor(chain_graph(), opts), Error);
  opts.input_shapes["x"] = {1, 3, 5, 7};
  Executor ex(chain_graph(), opts);
  EXPECT_THROW(ex.forward(), Error);  // input not set
  EXPECT_THROW(ex.set_input("x", Tensor::zeros(DType::f32, {1, 3, 5, 6})), Error);
}

}  // namespace
}  // namespace dermal::test

namespace dermal::test {
namespace {

// x -> Conv -> Relu -> Conv(stride 2) -> Clip -> + skip(MaxPool(x')) ... a small residual CNN that
// exercises fusion, channels-last layouts, conversions back to plain, and backward through all.
std::shared_ptr<Graph> small_cnn(std::mt19937& rng) {
  auto g = std::make_shared<Graph>();
  g->inputs.push_back({"x", DType::f32, {-1, 3, 9, 9}});
  g->constants["w1"] = random_tensor({8, 3, 3, 3}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["b1"] = random_tensor({8}, rng).to_dtype(DType::f32);
  g->constants["w2"] = random_tensor({8, 1, 3, 3}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["fc"] = random_tensor({8, 5}, rng).to_dtype(DType::f32);
  g->constants["shape"] = Tensor::from_ints({2}, {0, -1});
  Attributes same;
  same.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  Attributes depthwise = same;
  depthwise.set("group", int64_t{8});
  depthwise.set("strides", std::vector<int64_t>{2, 2});
  Attributes pool;
  pool.set("kernel_shape", std::vector<int64_t>{3, 3});
  pool.set("strides", std::vector<int64_t>{2, 2});
  pool.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  Attributes clip;
  clip.set("min", 0.0);
  clip.set("max", 0.6);
  g->add_node("Conv", "conv1", {"x", "w1", "b1"}, {"c1"}, same, 13);
  g->add_node("Relu", "relu1", {"c1"}, {"r1"}, {}, 13);
  g->add_node("Conv", "conv2", {"r1", "w2"}, {"c2"}, depthwise, 13);
  g->add_node("Clip", "clip2", {"c2"}, {"r2"}, clip, 6);
  g->add_node("MaxPool", "pool", {"r1"}, {"p1"}, pool, 13);
  g->add_node("Add", "add", {"r2", "p1"}, {"sum"}, {}, 13);
  g->add_node("GlobalAveragePool", "gap", {"sum"}, {"gap"}, {}, 13);
  g->add_node("Reshape", "flatten", {"gap", "shape"}, {"flat"}, {}, 13);
  g->add_node("MatMul", "fc", {"flat", "fc"}, {"logits"}, {}, 13);
  g->outputs.push_back({"logits", DType::f32, {}});
  g->finalize();
  return g;
}

TEST(Executor, FusedChannelsLastPlanMatchesReferencePlan) {
  std::mt19937 rng(21);
  auto g = small_cnn(rng);
  Tensor x = random_tensor({2, 3, 9, 9}, rng);
  Tensor seed = random_tensor({2, 5}, rng);
  std::vector<std::vector<Tensor>> grads;
  std::vector<Tensor> logits;
  for (DType compute : {DType::f32, DType::f64}) {
    PlanOptions opts;
    opts.input_shapes["x"] = {2, 3, 9, 9};
    opts.backward_from = {"logits"};
    opts.backward_to = {"x", "r1"};
    opts.compute = compute;
    Executor ex(g, opts);
    if (compute == DType::f32) {
      EXPECT_EQ(ex.stats().fused_activations, 2);  // relu1 into conv1, clip2 into conv2
      EXPECT_GE(ex.stats().layout_reorders, 1);     // into channels-last for conv1
    } else {
      EXPECT_EQ(ex.stats().fused_activations, 0);  // the reference plan runs every op alone
    }
    ex.set_input("x", x);
    ex.forward();
    logits.push_back(ex.get("logits"));
    grads.push_back(ex.backward("logits", seed, {"x", "r1"}));
  }
  EXPECT_EQ(compare(logits[0], logits[1], 1e-5, 1e-4), "");
  EXPECT_EQ(compare(grads[0][0], grads[1][0], 1e-5, 1e-4), "") << "d/dx";
  EXPECT_EQ(compare(grads[0][1], grads[1][1], 1e-5, 1e-4), "") << "d/dr1";

  // And the f64 plan's gradient against central differences of the f64 forward.
  PlanOptions opts;
  opts.input_shapes["x"] = {2, 3, 9, 9};
  opts.compute = DType::f64;
  Executor ref(g, opts);
  auto loss = [&](const Tensor& input) {
    ref.set_input("x", input);
    ref.forward();
    auto y = ref.get("logits").to_doubles(), s = seed.to_doubles();
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += y[i] * s[i];
    return l;
  };
  auto g64 = grads[1][0].to_doubles();
  for (int64_t j = 0; j < x.numel(); j += 7) {
    Tensor plus = x.clone(), minus = x.clone();
    plus.data<double>()[j] += 1e-6;
    minus.data<double>()[j] -= 1e-6;
    double fd = (loss(plus) - loss(minus)) / 2e-6;
    ASSERT_NEAR(g64[j], fd, 1e-6 + 1e-5 * std::abs(fd)) << "element " << j;
  }
}

// Convolution weights handed to their ops (hold_weights_in_ops): later plans (other batch sizes,
// backward through the convolutions, the f64 reference) give exactly what the same graph with
// plain constant weights gives, and no plain copy survives packing: it is freed, or packed in
// place, but only when no other tensor shares its buffer.
TEST(Executor, HeldWeightsServeEveryPlanAndNoPlainCopySurvives) {
  std::mt19937 rng_plain(23), rng_held(23), rng(24);
  auto plain = small_cnn(rng_plain), held = small_cnn(rng_held);
  // w1 in a buffer whose release the test can see.
  auto freed = std::make_shared<bool>(false);
  const Tensor w1 = held->constants.at("w1");
  void* buffer = std::malloc(w1.bytes());
  std::memcpy(buffer, w1.raw(), w1.bytes());
  held->constants["w1"] = Tensor::adopt(DType::f32, w1.shape(), buffer, std::shared_ptr<void>(buffer, [freed](void* p) {
                                          *freed = true;
                                          std::free(p);
                                        }));
  const Tensor w2_elsewhere = held->constants.at("w2");  // another reader of w2's buffer
  EXPECT_EQ(engine::hold_weights_in_ops(*held), 2);  // w1 and w2; b1 and the MatMul's fc stay
  EXPECT_FALSE(held->constants.count("w1"));
  EXPECT_TRUE(held->is_constant("w1"));
  EXPECT_EQ(held->weight_bytes(), plain->weight_bytes());
  EXPECT_EQ(held->parameter_count(), plain->parameter_count());
  EXPECT_FALSE(*freed);  // nothing is packed yet: the op's copy is the only one
  EXPECT_EQ(compare(held->constant_value("w1"), plain->constants.at("w1"), 0, 0), "");

  for (DType compute : {DType::f32, DType::f64})
    for (int64_t batch : {1, 3}) {
      PlanOptions opts;
      opts.input_shapes["x"] = {batch, 3, 9, 9};
      opts.backward_from = {"logits"};
      opts.backward_to = {"x"};
      opts.compute = compute;
      Executor a(plain, opts), b(held, opts);
      if (compute == DType::f32) {
        EXPECT_TRUE(*freed || std::memcmp(buffer, w1.raw(), w1.bytes()) != 0) << "the plain w1 outlived its packing";
      }
      Tensor x = random_tensor({batch, 3, 9, 9}, rng), seed = random_tensor({batch, 5}, rng);
      const std::string what = dtype_name(compute) + (", batch " + std::to_string(batch));
      for (Executor* ex : {&a, &b}) {
        ex->set_input("x", x);
        ex->forward();
      }
      EXPECT_EQ(compare(b.get("logits"), a.get("logits"), 0, 0), "") << what;
      EXPECT_EQ(compare(b.backward("logits", seed, {"x"})[0], a.backward("logits", seed, {"x"})[0], 0, 0), "") << what;
      EXPECT_EQ(compare(b.get("w2"), a.get("w2"), 0, 0), "") << what;
    }
  // Rebuilt from the packed copies, the values are the original ones; a shared buffer is intact.
  EXPECT_EQ(compare(held->constant_value("w1"), plain->constants.at("w1"), 0, 0), "");
  EXPECT_EQ(compare(w2_elsewhere, plain->constants.at("w2"), 0, 0), "");

  // Channels that oneDNN blocks without padding (Acdb32a...): W is packed in its own buffer.
  auto wide = [](std::mt19937& r) {
    auto g = std::make_shared<Graph>();
    g->inputs.push_back({"x", DType::f32, {-1, 16, 6, 6}});
    g->constants["w"] = random_tensor({32, 16, 3, 3}, r).to_dtype(DType::f32);
    Attributes same;
    same.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    g->add_node("Conv", "conv", {"x", "w"}, {"y"}, same, 13);
    g->outputs.push_back({"y", DType::f32, {}});
    g->finalize();
    return g;
  };
  std::mt19937 wide_plain_rng(25), wide_held_rng(25);
  auto wide_plain = wide(wide_plain_rng), wide_held = wide(wide_held_rng);
  EXPECT_EQ(engine::hold_weights_in_ops(*wide_held), 1);
  for (int64_t batch : {2, 1}) {
    PlanOptions opts;
    opts.input_shapes["x"] = {batch, 16, 6, 6};
    opts.backward_from = {"y"};
    opts.backward_to = {"x"};
    Executor a(wide_plain, opts), b(wide_held, opts);
    Tensor x = random_tensor({batch, 16, 6, 6}, rng), seed = random_tensor({batch, 32, 6, 6}, rng);
    for (Executor* ex : {&a, &b}) {
      ex->set_input("x", x);
      ex->forward();
    }
    EXPECT_EQ(compare(b.get("y"), a.get("y"), 0, 0), "") << "batch " << batch;
    EXPECT_EQ(compare(b.backward("y", seed, {"x"})[0], a.backward("y", seed, {"x"})[0], 0, 0), "") << "batch " << batch;
  }
  EXPECT_EQ(compare(wide_held->constant_value("w"), wide_plain->constants.at("w"), 0, 0), "");

  // A weight two nodes read stays in the graph.
  Graph shared;
  shared.inputs.push_back({"x", DType::f32, {1, 3, 9, 9}});
  shared.constants["w"] = random_tensor({4, 3, 3, 3}, rng).to_dtype(DType::f32);
  shared.add_node("Conv", "a", {"x", "w"}, {"ya"}, {}, 13);
  shared.add_node("Conv", "b", {"x", "w"}, {"yb"}, {}, 13);
  shared.add_node("Add", "sum", {"ya", "yb"}, {"y"}, {}, 13);
  shared.outputs.push_back({"y", DType::f32, {}});
  shared.finalize();
  EXPECT_EQ(engine::hold_weights_in_ops(shared), 0);
  EXPECT_TRUE(shared.constants.count("w"));
}

TEST(Executor, KeepingATensorDisablesItsFusion) {
  std::mt19937 rng(22);
  PlanOptions opts;
  opts.input_shapes["x"] = {1, 3, 9, 9};
  opts.keep = {"c1"};  // the pre-activation output must survive, so relu1 cannot be fused
  Executor ex(small_cnn(rng), opts);
  EXPECT_EQ(ex.stats().fused_activations, 1);
  ex.set_input("x", random_tensor({1, 3, 9, 9}, rng));
  ex.forward();
  auto c1 = ex.get("c1").to_doubles();
  EXPECT_TRUE(std::any_of(c1.begin(), c1.end(), [](double v) { return v < 0; })) << "c1 should be pre-ReLU";
}

// Two residual blocks: conv_b's Add takes ra (ResNet's identity shortcut, then ReLU); the second
// Add reads two convolutions, and the later one (conv_c) takes it with the earlier one's output
// as its residual (ResNet's projection shortcut).
std::shared_ptr<Graph> residual_cnn(std::mt19937& rng) {
  auto g = std::make_shared<Graph>();
  g->inputs.push_back({"x", DType::f32, {-1, 4, 6, 6}});
  g->constants["wa"] = random_tensor({8, 4, 3, 3}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["wb"] = random_tensor({8, 8, 3, 3}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["bb"] = random_tensor({8}, rng).to_dtype(DType::f32);
  g->constants["wc"] = random_tensor({6, 8, 1, 1}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["wd"] = random_tensor({6, 4, 1, 1}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["fc"] = random_tensor({6, 3}, rng).to_dtype(DType::f32);
  g->constants["shape"] = Tensor::from_ints({2}, {0, -1});
  Attributes same;
  same.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  g->add_node("Conv", "conv_a", {"x", "wa"}, {"ca"}, same, 13);
  g->add_node("Relu", "relu_a", {"ca"}, {"ra"}, {}, 13);
  g->add_node("Conv", "conv_d", {"x", "wd"}, {"cd"}, {}, 13);
  g->add_node("Conv", "conv_b", {"ra", "wb", "bb"}, {"cb"}, same, 13);
  g->add_node("Add", "add_b", {"cb", "ra"}, {"sb"}, {}, 13);
  g->add_node("Relu", "relu_b", {"sb"}, {"rb"}, {}, 13);
  g->add_node("Conv", "conv_c", {"rb", "wc"}, {"cc"}, {}, 13);
  g->add_node("Add", "add_c", {"cd", "cc"}, {"sc"}, {}, 13);
  g->add_node("GlobalAveragePool", "gap", {"sc"}, {"gap"}, {}, 13);
  g->add_node("Reshape", "flatten", {"gap", "shape"}, {"flat"}, {}, 13);
  g->add_node("MatMul", "fc", {"flat", "fc"}, {"logits"}, {}, 13);
  g->outputs.push_back({"logits", DType::f32, {}});
  g->finalize();
  return g;
}

// Residual Adds fused into the convolutions (oneDNN's sum post-op; backward pins every residual
// here, so each is copied into the output first) give the unfused f32 plan's and the f64
// reference plan's logits, and their gradients, to the input and to a residual operand that a
// convolution also reads (two gradient paths meet there).
TEST(Executor, FusedResidualAddsMatchTheUnfusedPlans) {
  std::mt19937 rng(31);
  auto g = residual_cnn(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng);
  Tensor seed = random_tensor({2, 3}, rng);
  struct Plan {
    DType compute;
    bool fuse;
    int adds, activations;
  };
  std::vector<Tensor> logits, dx, dra;
  for (Plan p : {Plan{DType::f64, true, 0, 0}, Plan{DType::f32, false, 0, 0}, Plan{DType::f32, true, 2, 2}}) {
    PlanOptions opts;
    opts.input_shapes["x"] = {2, 4, 6, 6};
    opts.backward_from = {"logits"};
    opts.backward_to = {"x", "ra"};
    opts.compute = p.compute;
    opts.fuse = p.fuse;
    Executor ex(g, opts);
    EXPECT_EQ(ex.stats().fused_adds, p.adds);               // add_b into conv_b, add_c into conv_c
    EXPECT_EQ(ex.stats().fused_activations, p.activations);  // relu_a into conv_a, relu_b after add_b
    ex.set_input("x", x);
    ex.forward();
    logits.push_back(ex.get("logits"));
    auto grads = ex.backward("logits", seed, {"x", "ra"});
    dx.push_back(grads[0]);
    dra.push_back(grads[1]);
  }
  for (size_t k : {1, 2}) {
    const std::string plan = k == 1 ? "unfused f32" : "fused f32";
    EXPECT_EQ(compare(logits[k], logits[0], 1e-5, 1e-4), "") << plan;
    EXPECT_EQ(compare(dx[k], dx[0], 1e-5, 1e-4), "") << plan << ", d/dx";
    EXPECT_EQ(compare(dra[k], dra[0], 1e-5, 1e-4), "") << plan << ", d/dra";
  }

  // A tensor someone keeps cannot vanish into a fused kernel: cb must survive, so add_b stays
  // apart (and relu_b with it); add_c still rides on conv_c.
  PlanOptions opts;
  opts.input_shapes["x"] = {2, 4, 6, 6};
  opts.keep = {"cb"};
  Executor kept(g, opts);
  EXPECT_EQ(kept.stats().fused_adds, 1);
  EXPECT_EQ(kept.stats().fused_activations, 1);
  kept.set_input("x", x);
  kept.forward();
  EXPECT_EQ(compare(kept.get("logits"), logits[0], 1e-5, 1e-4), "");
}

// The residual summed into the convolution's output (oneDNN's sum post-op) in the residual's own
// buffer where nothing reads it afterwards: in an inference plan, add_c's operand cd expires at
// conv_c, so conv_c's result overwrites it in place; ra, conv_b's own input, cannot be. A kept
// residual is copied instead and keeps its value. Every plan gives the backward plans' logits,
// forward after forward.
TEST(Executor, ResidualsSummedInPlaceWhereTheyExpire) {
  std::mt19937 rng(31);
  auto g = residual_cnn(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng);
  PlanOptions reference_opts;
  reference_opts.input_shapes["x"] = {2, 4, 6, 6};
  reference_opts.compute = DType::f64;
  Executor reference(g, reference_opts);
  reference.set_input("x", x);
  reference.forward();
  const Tensor expected = reference.get("logits");

  PlanOptions opts;
  opts.input_shapes["x"] = {2, 4, 6, 6};
  Executor in_place(g, opts);
  EXPECT_EQ(in_place.stats().fused_adds, 2);
  EXPECT_EQ(in_place.stats().residuals_in_place, 1);
  for (int run = 0; run < 2; ++run) {
    in_place.set_input("x", x);
    in_place.forward();
    EXPECT_EQ(compare(in_place.get("logits"), expected, 1e-5, 1e-4), "") << "run " << run;
  }

  opts.keep = {"cd"};
  Executor kept(g, opts);
  EXPECT_EQ(kept.stats().fused_adds, 2);
  EXPECT_EQ(kept.stats().residuals_in_place, 0);
  kept.set_input("x", x);
  kept.forward();
  EXPECT_EQ(compare(kept.get("logits"), expected, 1e-5, 1e-4), "");
  reference_opts.keep = {"cd"};
  Executor reference_kept(g, reference_opts);
  reference_kept.set_input("x", x);
  reference_kept.forward();
  EXPECT_EQ(compare(kept.get("cd"), reference_kept.get("cd"), 1e-5, 1e-4), "") << "the kept residual was overwritten";
}

// Two residual 3x3 convolutions of 16 and 32 channels, as in a ResNet's first stage.
std::shared_ptr<Graph> winograd_cnn(std::mt19937& rng) {
  auto g = std::make_shared<Graph>();
  g->inputs.push_back({"x", DType::f32, {-1, 16, 10, 10}});
  g->constants["wa"] = random_tensor({32, 16, 3, 3}, rng, -0.2, 0.2).to_dtype(DType::f32);
  g->constants["ba"] = random_tensor({32}, rng).to_dtype(DType::f32);
  g->constants["wb"] = random_tensor({32, 32, 3, 3}, rng, -0.2, 0.2).to_dtype(DType::f32);
  g->constants["bb"] = random_tensor({32}, rng).to_dtype(DType::f32);
  g->constants["fc"] = random_tensor({32, 3}, rng).to_dtype(DType::f32);
  g->constants["shape"] = Tensor::from_ints({2}, {0, -1});
  Attributes same;
  same.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  g->add_node("Conv", "conv_a", {"x", "wa", "ba"}, {"ca"}, same, 13);
  g->add_node("Relu", "relu_a", {"ca"}, {"ra"}, {}, 13);
  g->add_node("Conv", "conv_b", {"ra", "wb", "bb"}, {"cb"}, same, 13);
  g->add_node("Add", "add_b", {"cb", "ra"}, {"sb"}, {}, 13);
  g->add_node("Relu", "relu_b", {"sb"}, {"rb"}, {}, 13);
  g->add_node("GlobalAveragePool", "gap", {"rb"}, {"gap"}, {}, 13);
  g->add_node("Reshape", "flatten", {"gap", "shape"}, {"flat"}, {}, 13);
  g->add_node("MatMul", "fc", {"flat", "fc"}, {"logits"}, {}, 13);
  g->outputs.push_back({"logits", DType::f32, {}});
  g->finalize();
  return g;
}

// Winograd's convolutions (with the bias, the residual as a sum post-op, the ReLU) give the f64
// reference's logits and gradients as closely as the direct ones do. Their weights, held by the
// ops, serve the direct backward and any later plan, and come back exactly: Winograd's
// transformed copy is kept beside them, never in their place.
TEST(Executor, WinogradConvolutionsMatchTheReferencePlan) {
  struct Plan {
    DType compute;
    size_t winograd_max_weight_bytes;
    int winograd;
  };
  std::vector<Plan> plans = {Plan{DType::f64, engine::kDefaultWinogradMaxWeightBytes, 0}, Plan{DType::f32, 0, 0},
                             Plan{DType::f32, 1000, 0}, Plan{DType::f32, engine::kDefaultWinogradMaxWeightBytes, 2}};
  // Direct plans first (the held W is then packed in place and Winograd's transform starts from
  // that packed copy), then Winograd first (the held W stays plain beside its transform).
  for (int64_t batch : {2, 1}) {
    std::mt19937 rng(43 + batch), same_rng(43 + batch);
    auto g = winograd_cnn(rng);
    const auto original = winograd_cnn(same_rng);
    EXPECT_EQ(engine::hold_weights_in_ops(*g), 2);
    Tensor x = random_tensor({batch, 16, 10, 10}, rng), seed = random_tensor({batch, 3}, rng);
    std::map<size_t, Tensor> logits, dx, dra;  // by index in `plans`
    for (size_t k = 0; k < plans.size(); ++k) {
      const size_t i = batch == 2 ? k : plans.size() - 1 - k;
      const Plan& p = plans[i];
      PlanOptions opts;
      opts.input_shapes["x"] = {batch, 16, 10, 10};
      opts.backward_from = {"logits"};
      opts.backward_to = {"x", "ra"};
      opts.compute = p.compute;
      opts.winograd_max_weight_bytes = p.winograd_max_weight_bytes;
      Executor ex(g, opts);
      const std::string what = "batch " + std::to_string(batch) + ", plan " + std::to_string(i);
      EXPECT_EQ(ex.stats().winograd_convolutions.size(), static_cast<size_t>(p.winograd)) << what;
      EXPECT_EQ(ex.stats().winograd_weight_bytes > 0, p.winograd > 0) << what;
      EXPECT_EQ(ex.stats().fused_adds, p.compute == DType::f32 ? 1 : 0) << what;
      ex.set_input("x", x);
      ex.forward();
      logits[i] = ex.get("logits");
      auto grads = ex.backward("logits", seed, {"x", "ra"});
      dx[i] = grads[0];
      dra[i] = grads[1];
      if (p.winograd) {
        const auto steps = ex.profile(1);
        EXPECT_EQ(std::count_if(steps.begin(), steps.end(), [](const engine::StepTime& t) {
                    return t.label.find(" (winograd)") != std::string::npos;
                  }),
                  2);
      }
    }
    for (size_t i = 1; i < plans.size(); ++i) {
      EXPECT_EQ(compare(logits[i], logits[0], 1e-5, 1e-4), "") << "plan " << i << ", batch " << batch;
      EXPECT_EQ(compare(dx[i], dx[0], 1e-5, 1e-4), "") << "plan " << i << ", batch " << batch << ", d/dx";
      EXPECT_EQ(compare(dra[i], dra[0], 1e-5, 1e-4), "") << "plan " << i << ", batch " << batch << ", d/dra";
    }
    EXPECT_NE(compare(logits[3], logits[1], 0, 0), "") << "Winograd rounds otherwise than direct: was it run?";
    for (const char* w : {"wa", "wb"}) EXPECT_EQ(compare(g->constant_value(w), original->constants.at(w), 0, 0), "") << w;
  }
}

// Five Winograd convolutions in a row, three with residuals: ra is conv_b's X and the residual of
// conv_c and of conv_e (its last reader); rc is both conv_d's X and its residual. 32 channels of
// 32 x 32: on smaller maps oneDNN's Winograd happens to survive writing over its own input.
std::shared_ptr<Graph> winograd_chain(std::mt19937& rng) {
  auto g = std::make_shared<Graph>();
  g->inputs.push_back({"x", DType::f32, {-1, 32, 32, 32}});
  Attributes same;
  same.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  // name, X, residual (none: ""), output
  const std::vector<std::array<std::string, 4>> convs = {
      {"a", "x", "", "ra"}, {"b", "ra", "", "rb"}, {"c", "rb", "ra", "rc"}, {"d", "rc", "rc", "rd"}, {"e", "rd", "ra", "re"}};
  for (const auto& [c, x, residual, out] : convs) {
    g->constants["w" + c] = random_tensor({32, 32, 3, 3}, rng, -0.15, 0.15).to_dtype(DType::f32);
    g->constants["b" + c] = random_tensor({32}, rng, -0.1, 0.1).to_dtype(DType::f32);
    g->add_node("Conv", "conv_" + c, {x, "w" + c, "b" + c}, {"c" + c}, same, 13);
    if (!residual.empty()) g->add_node("Add", "add_" + c, {"c" + c, residual}, {"s" + c}, {}, 13);
    g->add_node("Relu", "relu_" + c, {residual.empty() ? "c" + c : "s" + c}, {out}, {}, 13);
  }
  g->constants["fc"] = random_tensor({32, 3}, rng).to_dtype(DType::f32);
  g->constants["shape"] = Tensor::from_ints({2}, {0, -1});
  g->add_node("GlobalAveragePool", "gap", {"re"}, {"gap"}, {}, 13);
  g->add_node("Reshape", "flatten", {"gap", "shape"}, {"flat"}, {}, 13);
  g->add_node("MatMul", "fc", {"flat", "fc"}, {"logits"}, {}, 13);
  g->outputs.push_back({"logits", DType::f32, {}});
  g->finalize();
  return g;
}

// Tensors passed blocked (nChw16c) from one Winograd convolution to the next give the f64
// reference's results, whichever tensors a plan pins: a residual that expires is added to in its
// own buffer, one that lives on is copied, one that is also X is never overwritten. Pinned
// tensors (kept, differentiated) stay in the usual layout, and backward runs through them.
TEST(Executor, BlockedTensorsBetweenWinogradConvolutionsMatchTheReferencePlan) {
  std::mt19937 rng(47);
  auto g = winograd_chain(rng);
  Tensor x = random_tensor({2, 32, 32, 32}, rng), seed = random_tensor({2, 3}, rng);
  struct Plan {
    std::vector<std::string> keep, backward_to;
    int blocked;  // of ra, rb, rc, rd
  };
  for (const Plan& p : {Plan{{}, {}, 4}, Plan{{"rc"}, {}, 3}, Plan{{"rd"}, {}, 3}, Plan{{}, {"rd"}, 2}, Plan{{}, {"x"}, 0}}) {
    const std::string what = "keep " + (p.keep.empty() ? "-" : p.keep[0]) + ", backward to " + (p.backward_to.empty() ? "-" : p.backward_to[0]);
    std::vector<Tensor> logits, kept, grads;
    for (DType compute : {DType::f64, DType::f32}) {
      PlanOptions opts;
      opts.input_shapes["x"] = {2, 32, 32, 32};
      opts.compute = compute;
      opts.keep = p.keep;
      opts.backward_to = p.backward_to;
      if (!p.backward_to.empty()) opts.backward_from = {"logits"};
      Executor ex(g, opts);
      if (compute == DType::f32) {
        EXPECT_EQ(ex.stats().winograd_convolutions.size(), 5u) << what;
        EXPECT_EQ(ex.stats().blocked_tensors, p.blocked) << what;
      }
      for (int run = 0; run < 2; ++run) {  // the second run starts from what the first overwrote
        ex.set_input("x", x);
        ex.forward();
      }
      logits.push_back(ex.get("logits"));
      if (!p.keep.empty()) kept.push_back(ex.get(p.keep[0]));
      if (!p.backward_to.empty()) grads.push_back(ex.backward("logits", seed, p.backward_to)[0]);
    }
    EXPECT_EQ(compare(logits[1], logits[0], 1e-5, 1e-4), "") << what;
    if (!kept.empty()) EXPECT_EQ(compare(kept[1], kept[0], 1e-5, 1e-4), "") << what;
    if (!grads.empty()) EXPECT_EQ(compare(grads[1], grads[0], 1e-5, 1e-4), "") << what << ", gradient";
  }
}

// nChw16c as Tensor stores it is oneDNN's: a copy into it through Tensor and one through
// oneDNN's reorder hold the same bytes, and both come back to the same plain tensor.
TEST(Tensor, BlockedLayoutIsOnednnsNchw16c) {
  std::mt19937 rng(3);
  const Tensor plain = random_tensor({2, 32, 3, 5}, rng).to_dtype(DType::f32);
  const Tensor blocked = plain.to_layout(Layout::nchw16c);
  Tensor by_onednn = Tensor::zeros(DType::f32, plain.shape(), Layout::nchw16c);
  auto& eng = engine::dnnl_util::cpu_engine();
  const auto from = engine::dnnl_util::desc(plain.shape(), Layout::plain, DType::f32);
  const auto to = engine::dnnl_util::desc(plain.shape(), Layout::nchw16c, DType::f32);
  dnnl::reorder r(dnnl::reorder::primitive_desc(eng, from, eng, to));
  engine::dnnl_util::execute(r, {{DNNL_ARG_FROM, engine::dnnl_util::memory(from, plain.raw())},
                                 {DNNL_ARG_TO, engine::dnnl_util::memory(to, by_onednn.raw())}});
  EXPECT_EQ(std::memcmp(blocked.raw(), by_onednn.raw(), plain.bytes()), 0);
  EXPECT_NE(std::memcmp(blocked.raw(), plain.raw(), plain.bytes()), 0);
  EXPECT_EQ(compare(by_onednn.to_layout(Layout::nhwc).to_layout(Layout::plain), plain, 0, 0), "");
  EXPECT_EQ(compare(blocked.to_layout(Layout::plain), plain, 0, 0), "");
  EXPECT_THROW(Tensor::zeros(DType::f32, {1, 24, 2, 2}, Layout::nchw16c), Error);
}

// Relative error ||a - b|| / ||b|| over all elements, both converted to double.
double relative_error(const Tensor& a, const Tensor& b) {
  const auto x = a.to_doubles(), y = b.to_doubles();
  double d = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d += (x[i] - y[i]) * (x[i] - y[i]);
    n += y[i] * y[i];
  }
  return std::sqrt(d / n);
}

Tensor bf16_rounded(const Tensor& t) { return t.to_dtype(DType::bf16).to_dtype(DType::f32); }

// A bf16 plan's convolution is the convolution of X and W rounded to bf16, summed in f32: the f64
// reference on the rounded values gives it to f32 precision, and the unrounded values do not. On
// a CPU without native bf16 the plan says so and runs f32.
TEST(Executor, Bf16ConvolutionsRoundTheirInputsAndWeightsOnly) {
  std::mt19937 rng(41);
  const Tensor x = random_tensor({1, 32, 9, 9}, rng).to_dtype(DType::f32);
  const Tensor w = random_tensor({16, 32, 3, 3}, rng, -0.2, 0.2).to_dtype(DType::f32);
  const Tensor b = random_tensor({16}, rng).to_dtype(DType::f32);
  auto conv_graph = [&](const Tensor& weights) {
    auto g = std::make_shared<Graph>();
    g->inputs.push_back({"x", DType::f32, {1, 32, 9, 9}});
    g->constants["w"] = weights;
    g->constants["b"] = b;
    Attributes same;
    same.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    g->add_node("Conv", "conv", {"x", "w", "b"}, {"c"}, same, 13);
    g->add_node("Relu", "relu", {"c"}, {"y"}, {}, 13);
    g->outputs.push_back({"y", DType::f32, {}});
    g->finalize();
    return g;
  };
  auto run = [&](const std::shared_ptr<Graph>& g, const Tensor& input, DType compute, engine::Precision precision) {
    PlanOptions opts;
    opts.input_shapes["x"] = {1, 32, 9, 9};
    opts.compute = compute;
    opts.precision = precision;
    Executor ex(g, opts);
    ex.set_input("x", input);
    ex.forward();
    return std::make_pair(ex.get("y"), ex.stats());
  };
  auto [y, stats] = run(conv_graph(w), x, DType::f32, engine::Precision::bf16);
  if (!engine::dnnl_util::cpu_has_bf16()) {
    EXPECT_EQ(stats.precision, engine::Precision::f32);
    EXPECT_NE(stats.precision_note.find("no native bf16"), std::string::npos) << stats.precision_note;
    GTEST_SKIP() << "this CPU has no native bf16: " << stats.precision_note;
  }
  EXPECT_EQ(stats.precision, engine::Precision::bf16);
  EXPECT_EQ(stats.bf16_convolutions.size(), 1u);
  EXPECT_EQ(stats.precision_note, "");
  const Tensor rounded = run(conv_graph(bf16_rounded(w)), bf16_rounded(x), DType::f64, engine::Precision::f32).first;
  const Tensor exact = run(conv_graph(w), x, DType::f64, engine::Precision::f32).first;
  EXPECT_EQ(compare(y, rounded, 1e-5, 1e-5), "");
  EXPECT_GT(relative_error(y, exact), 1e-4);  // the rounding shows: this is not the f32 result
  EXPECT_LT(relative_error(y, exact), 1e-2);
}

// In a bf16 plan a tensor that only convolutions read (as X, or as a fused Add's residual) is
// stored in bf16; what anything else reads, or a caller keeps or differentiates to, stays f32.
// Logits and gradients (computed in f32) stay within bf16's error of the f64 reference.
TEST(Executor, Bf16PlansStoreWhatOnlyConvolutionsRead) {
  if (!engine::dnnl_util::cpu_has_bf16()) GTEST_SKIP() << "this CPU has no native bf16";
  std::mt19937 rng(43);
  auto g = residual_cnn(rng);
  Tensor x = random_tensor({2, 4, 6, 6}, rng);
  Tensor seed = random_tensor({2, 3}, rng);
  auto plan = [&](engine::Precision precision, DType compute, bool backward) {
    PlanOptions opts;
    opts.input_shapes["x"] = {2, 4, 6, 6};
    opts.precision = precision;
    opts.compute = compute;
    if (backward) {
      opts.backward_from = {"logits"};
      opts.backward_to = {"x", "ra"};
    }
    auto ex = std::make_unique<Executor>(g, opts);
    ex->set_input("x", x);
    ex->forward();
    return ex;
  };
  auto reference = plan(engine::Precision::f32, DType::f64, true);
  auto f32 = plan(engine::Precision::f32, DType::f32, false);
  auto inference = plan(engine::Precision::bf16, DType::f32, false);
  EXPECT_EQ(inference->stats().bf16_convolutions.size(), 4u);
  EXPECT_EQ(inference->stats().fused_adds, 2);
  for (const char* name : {"ra", "rb", "cd"}) EXPECT_EQ(inference->info(name).dtype, DType::bf16) << name;
  for (const char* name : {"sc", "logits"}) EXPECT_EQ(inference->info(name).dtype, DType::f32) << name;
  const Tensor logits = inference->get("logits");
  EXPECT_EQ(logits.dtype(), DType::f32);
  EXPECT_LT(relative_error(logits, reference->get("logits")), 2e-2);
  EXPECT_GT(relative_error(logits, f32->get("logits")), 1e-5);

  auto trained = plan(engine::Precision::bf16, DType::f32, true);
  EXPECT_EQ(trained->info("ra").dtype, DType::f32);  // differentiated to: kept in f32
  EXPECT_EQ(trained->info("rb").dtype, DType::bf16);
  auto grads = trained->backward("logits", seed, {"x", "ra"});
  auto expected = reference->backward("logits", seed, {"x", "ra"});
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(grads[k].dtype(), DType::f32);
    EXPECT_LT(relative_error(grads[k], expected[k]), 3e-2) << (k ? "d/dra" : "d/dx");
  }
}

// Depthwise convolutions stay f32 in bf16 plans (Conv's accepts_bf16): the tensors around one are
// f32, and the dense convolutions after it read it through a conversion.
// expand (1x1) -> depthwise 3x3 -> project (1x1) -> again (1x1), as in MobileNetV2.
std::shared_ptr<Graph> inverted_residual_chain(std::mt19937& rng) {
  auto g = std::make_shared<Graph>();
  g->inputs.push_back({"x", DType::f32, {1, 8, 6, 6}});
  g->constants["w1"] = random_tensor({16, 8, 1, 1}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["wd"] = random_tensor({16, 1, 3, 3}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["w2"] = random_tensor({8, 16, 1, 1}, rng, -0.5, 0.5).to_dtype(DType::f32);
  g->constants["w3"] = random_tensor({8, 8, 1, 1}, rng, -0.5, 0.5).to_dtype(DType::f32);
  Attributes depthwise;
  depthwise.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  depthwise.set("group", int64_t{16});
  g->add_node("Conv", "expand", {"x", "w1"}, {"e"}, {}, 13);
  g->add_node("Conv", "dw", {"e", "wd"}, {"d"}, depthwise, 13);
  g->add_node("Conv", "project", {"d", "w2"}, {"p"}, {}, 13);
  g->add_node("Conv", "again", {"p", "w3"}, {"y"}, {}, 13);  // p: read by convolutions alone, so bf16
  g->outputs.push_back({"y", DType::f32, {}});
  g->finalize();
  return g;
}

TEST(Executor, Bf16PlansKeepDepthwiseConvolutionsF32) {
  if (!engine::dnnl_util::cpu_has_bf16()) GTEST_SKIP() << "this CPU has no native bf16";
  std::mt19937 rng(47);
  auto g = inverted_residual_chain(rng);
  PlanOptions opts;
  opts.input_shapes["x"] = {1, 8, 6, 6};
  opts.precision = engine::Precision::bf16;
  Executor ex(g, opts);
  EXPECT_EQ(ex.stats().bf16_convolutions.size(), 3u);
  EXPECT_EQ(ex.info("e").dtype, DType::f32);
  EXPECT_EQ(ex.info("d").dtype, DType::f32);
  EXPECT_EQ(ex.info("p").dtype, DType::bf16);
  PlanOptions f64 = opts;
  f64.compute = DType::f64;
  Executor reference(g, f64);
  const Tensor x = random_tensor({1, 8, 6, 6}, rng);
  for (Executor* e : {&ex, &reference}) {
    e->set_input("x", x);
    e->forward();
  }
  EXPECT_LT(relative_error(ex.get("y"), reference.get("y")), 2e-2);
}

// PlanOptions::f32_nodes: the named convolutions stay f32 in a bf16 plan, and so does what only
// they read; with every dense convolution named, the plan computes exactly what the f32 plan does.
TEST(Executor, Bf16PlansKeepTheNamedConvolutionsF32) {
  if (!engine::dnnl_util::cpu_has_bf16()) GTEST_SKIP() << "this CPU has no native bf16";
  std::mt19937 rng(53);
  auto g = inverted_residual_chain(rng);
  const Tensor x = random_tensor({1, 8, 6, 6}, rng);
  PlanOptions opts;
  opts.input_shapes["x"] = {1, 8, 6, 6};
  Executor f32(g, opts);
  f32.set_input("x", x);
  f32.forward();
  opts.precision = engine::Precision::bf16;
  opts.f32_nodes = {"again"};
  Executor one(g, opts);
  EXPECT_EQ(one.stats().bf16_convolutions.size(), 2u);
  EXPECT_EQ(one.info("p").dtype, DType::f32);  // its one reader runs f32 now
  opts.f32_nodes = {"expand", "project", "again"};
  Executor all(g, opts);
  EXPECT_EQ(all.stats().bf16_convolutions.size(), 0u);
  for (Executor* e : {&one, &all}) {
    e->set_input("x", x);
    e->forward();
  }
  EXPECT_EQ(compare(all.get("y"), f32.get("y"), 0, 0), "");
  EXPECT_NE(compare(one.get("y"), f32.get("y"), 0, 0), "");  // two convolutions still round
  opts.f32_nodes = {"again", "no_such_conv"};
  expect_error([&] { Executor(g, opts); }, {ErrorKind::invalid_input}, {"no node named 'no_such_conv'"});
}

// profile() times each kernel of the plan once per run, under the plan's own labels (fused kernels
// name what rides on them), and its runs are real forwards from the inputs as set, every one.
TEST(Executor, ProfileTimesEveryKernel) {
  std::mt19937 rng(33);
  auto g = residual_cnn(rng);
  PlanOptions opts;
  opts.input_shapes["x"] = {1, 4, 6, 6};
  Executor ex(g, opts);
  Tensor x = random_tensor({1, 4, 6, 6}, rng);
  EXPECT_THROW(ex.profile(2), Error);  // no input yet
  ex.set_input("x", x);
  std::vector<engine::StepTime> steps = ex.profile(3);
  const Tensor after_profile = ex.get("logits");
  ex.set_input("x", x);
  ex.forward();
  const Tensor logits = ex.get("logits");
  ASSERT_EQ(static_cast<int>(steps.size()), ex.stats().steps);
  std::vector<std::string> labels;
  for (const auto& s : steps) {
    EXPECT_GE(s.ms, 0.0) << s.label;
    labels.push_back(s.label);
  }
  for (const char* fused : {"conv_a+relu_a", "conv_b+add_b+relu_b", "conv_c+add_c", "conv_d", "fc"})
    EXPECT_NE(std::find(labels.begin(), labels.end(), fused), labels.end()) << fused;
  EXPECT_EQ(compare(after_profile, logits, 0, 0), "");
}

// A kernel that says it runs plain loops (as pooling does when oneDNN refuses a case): the plan
// must list it, so that a slow path is never silent.
class SlowPathKernel : public engine::Kernel {
 public:
  void forward(const std::vector<Tensor>& in, const std::vector<Tensor>& out) override {
    std::memcpy(out[0].data<float>(), in[0].data<float>(), in[0].numel() * sizeof(float));
  }
  std::string fallback_reason() const override { return "the test's reason"; }
};

class SlowPathOp : public engine::Op {
 public:
  using Op::Op;
  std::vector<engine::TensorInfo> infer(const std::vector<engine::TensorInfo>& in,
                                        const std::vector<const Tensor*>&) const override {
    return {in[0]};
  }
  std::unique_ptr<engine::Kernel> make_kernel(engine::KernelConfig&) const override {
    return std::make_unique<SlowPathKernel>();
  }
};

DERMAL_REGISTER_OP("DermalTestSlowPath", [](const Attributes&, const engine::OpContext& ctx) {
  return std::make_unique<SlowPathOp>(ctx);
});

TEST(Executor, ListsKernelsOnASlowPath) {
  auto g = std::make_shared<Graph>();
  g->inputs.push_back({"x", DType::f32, {1, 3, 5, 7}});
  g->add_node("Relu", "fast", {"x"}, {"t"}, Attributes{}, 13);
  g->add_node("DermalTestSlowPath", "slow", {"t"}, {"y"}, Attributes{}, 13);
  g->outputs.push_back({"y", DType::f32, {}});
  g->finalize();
  PlanOptions opts;
  opts.input_shapes["x"] = {1, 3, 5, 7};
  opts.fuse = false;
  Executor ex(g, opts);
  EXPECT_EQ(ex.stats().fallbacks, std::vector<std::string>{"slow: the test's reason"});
}

}  // namespace
}  // namespace dermal::test
