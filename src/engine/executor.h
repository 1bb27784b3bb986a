// The executor: plans a graph for concrete input shapes, then runs forward and backward.
//
//   engine::PlanOptions opts;
//   opts.input_shapes = {{"input", {1, 3, 192, 192}}};
//   opts.keep = {"layer4_out"};                 // readable after forward
//   opts.backward_from = {"logits"};             // outputs backward may start from
//   opts.backward_to = {"layer4_out"};           // tensors backward must reach
//   engine::Executor ex(graph, opts);
//   ex.set_input("input", image);
//   ex.forward();
//   Tensor logits = ex.get("logits");
//   Tensor seed = Tensor::zeros(DType::f32, {1, 7});  seed.data<float>()[4] = 1;
//   auto grads = ex.backward("logits", seed, {"layer4_out"});   // d logit_4 / d layer4_out
//
// Planning folds everything computable before running (weights-only subgraphs, Shape chains),
// fuses activations into the convolutions before them, picks channels-last layouts for
// convolution chains, and lays out activations in one arena, reusing a buffer once its last
// reader has run. Tensors in keep, the outputs, and everything backward needs are pinned.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace dermal::engine {

// The precision a plan's convolutions run in. bf16: their inputs and weights rounded to bfloat16,
// products summed in f32 (oneDNN's AVX-512 BF16 kernels, about twice f32's speed), weights held
// in bf16 (half the memory), and a tensor that only convolutions read stored in bf16; every other
// op, and all of backward, in f32. A CPU without native bf16 runs the plan in f32
// (PlanStats::precision_note says why).
enum class Precision : uint8_t { f32, bf16 };
const char* precision_name(Precision p);  // "f32", "bf16"
// "f32" or "bf16"; anything else: Error(invalid_input) naming both.
Precision parse_precision(const std::string& name);

// Winograd where its transformed weights, kept beside the plain ones, take at most 1 MiB per
// convolution: the 16-64 channel layers of large feature maps, where it gains most (1.5-2x on one
// thread) and its weights are smallest.
inline constexpr size_t kDefaultWinogradMaxWeightBytes = size_t{1} << 20;

struct PlanOptions {
  std::map<std::string, Shape> input_shapes;  // every non-constant graph input; all dims concrete
  // Integer inputs given by value (shape arguments): they are folded like constants.
  std::map<std::string, Tensor> input_values;
  std::vector<std::string> keep;
  std::vector<std::string> backward_from;
  std::vector<std::string> backward_to;
  DType compute = DType::f32;  // f64 runs the plain reference kernels (gradient checks)
  bool fuse = true;            // activation fusion and channels-last layouts (f32 only)
  Precision precision = Precision::f32;  // bf16 needs compute f32 and fuse
  // In bf16 plans, the convolutions (node names) that stay f32: those whose rounding changes the
  // answers most (tools/bf16_calibrate.py finds them). A name that is no node is an error.
  std::vector<std::string> f32_nodes;
  // Dense 3x3 stride-1 f32 convolutions run Winograd's algorithm (faster, the same results to
  // rounding) where its transformed weights, held beside the plain ones, take at most this many
  // bytes each; 0: never. (Its workspace is planned in the arena.) Needs compute f32 and fuse.
  size_t winograd_max_weight_bytes = kDefaultWinogradMaxWeightBytes;
};

struct PlanStats {
  size_t arena_bytes = 0;           // planned peak activation memory
  size_t largest_live_bytes = 0;    // lower bound: the largest set of tensors alive at once
  size_t all_activation_bytes = 0;  // what a planner without reuse would need
  int steps = 0;                    // kernels run per forward
  int folded_nodes = 0;             // nodes computed at plan time
  int fused_activations = 0;
  int fused_adds = 0;               // residual Adds riding on the convolution before them
  int residuals_in_place = 0;       // of those, summed into the residual's own buffer (no copy)
  int layout_reorders = 0;          // conversion steps: to another layout and/or between f32 and bf16
  Precision precision = Precision::f32;  // what the convolutions run in
  std::string precision_note;       // why not bf16, when it was asked for and the plan runs f32
  std::vector<std::string> bf16_convolutions;  // the nodes that run in bf16
  std::vector<std::string> winograd_convolutions;  // the nodes that run Winograd's algorithm
  size_t winograd_weight_bytes = 0;  // their transformed weights, held beside the packed ones
  int blocked_tensors = 0;  // carried in nchw16c from one Winograd convolution to others, unconverted
  std::vector<std::string> fallbacks;  // "node: why" for each kernel on plain loops instead of oneDNN
};

// Per-tensor result of shape inference over a planned graph.
struct TensorPlanInfo {
  std::string name;
  TensorInfo info;
  bool known = false;  // folded at plan time
};

// One kernel of the plan and its median wall time over a profile's runs (Executor::profile).
struct StepTime {
  std::string label;  // the node, "+" what rides on it, or a layout copy ("x#nhwc")
  double ms = 0;
};

class Executor {
 public:
  Executor(std::shared_ptr<const Graph> graph, PlanOptions options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void set_input(const std::string& name, const Tensor& value);  // any layout; copied in
  // The inputs' buffers may be reused by later kernels: set them again before the next forward.
  void forward();
  // Runs forward `runs` times from the inputs as set (after a warm-up run) and times every
  // kernel: where a forward's time goes, in plan order (dermal inspect --profile).
  std::vector<StepTime> profile(int runs);
  // An output, a kept tensor or a folded constant, as an owning plain copy.
  Tensor get(const std::string& name) const;
  // Gradients of sum(seed * from) with respect to each tensor in `to` (plain, owning). Runs only
  // the ops between them. `from` must be in backward_from and `to` in backward_to.
  std::vector<Tensor> backward(const std::string& from, const Tensor& seed, const std::vector<std::string>& to);

  const PlanStats& stats() const;
  // Shape of any planned tensor, and its dtype as stored (bf16 where a bf16 plan stores it so).
  const TensorInfo& info(const std::string& name) const;
  std::vector<TensorPlanInfo> tensor_infos() const;  // every tensor, in graph order; dtypes as get() returns them
  const Graph& graph() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dermal::engine
