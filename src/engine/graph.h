// The graph IR: named tensors, nodes in topological order, constant tensors (weights).
// Importers (ONNX, Keras) build it; passes (BatchNorm folding) rewrite it; the executor plans
// and runs it. Nothing here knows about files.
//
//   Graph g;
//   g.inputs.push_back({"x", DType::f32, {-1, 3, 8, 8}});   // -1: dynamic (batch)
//   g.constants["w"] = weights;
//   g.add_node("Conv", "conv1", {"x", "w"}, {"y"}, attrs, /*opset=*/13);
//   g.outputs.push_back({"y", DType::f32, {}});
//   g.finalize();   // sorts, checks every tensor has exactly one producer
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/op.h"

namespace dermal::engine {

struct ValueInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;  // -1 for a dynamic dimension; empty if unknown (outputs)
};

struct Node {
  std::string name;
  std::string type;
  int opset = 13;
  std::vector<std::string> inputs;   // "" marks an absent optional input
  std::vector<std::string> outputs;  // "" marks an unused optional output
  Attributes attrs;  // as read from the file (for passes and inspection)
  std::shared_ptr<const Op> op;
};

class Graph {
 public:
  std::string name;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::map<std::string, Tensor> constants;
  // Constants handed to the op of their only reader (hold_weights_in_ops): the op keeps the
  // values, packed; the graph keeps the name, dtype and shape.
  std::map<std::string, TensorInfo> held_by_ops;
  std::vector<Node> nodes;  // topologically sorted after finalize()

  // Parses attrs into an op now, so unsupported ops and attributes fail at load.
  Node& add_node(const std::string& type, const std::string& name, std::vector<std::string> inputs,
                 std::vector<std::string> outputs, const Attributes& attrs, int opset);
  // Sorts nodes topologically, checks that every tensor is defined once and used tensors exist.
  void finalize();

  bool is_constant(const std::string& tensor) const { return constants.count(tensor) || held_by_ops.count(tensor); }
  // A constant's values, plain: a weight held by an op is rebuilt from its packed form (a copy).
  Tensor constant_value(const std::string& tensor) const;
  bool is_input(const std::string& tensor) const;
  bool is_output(const std::string& tensor) const;
  const Node* producer(const std::string& tensor) const;         // nullptr for inputs/constants
  const Node* node(const std::string& name) const;              // the first so named; nullptr for none
  std::vector<const Node*> consumers(const std::string& tensor) const;
  // Number of parameters and bytes of the constants (held by ops or not).
  int64_t parameter_count() const;
  size_t weight_bytes() const;
};

// Folds each BatchNormalization that directly follows a Conv with constant weights into that
// Conv (the conv's output had no other consumer and is not a graph output), for every format.
// The folded weights are new constants; each original is dropped as soon as nothing reads it, so
// loading peaks at the model plus one layer's weights, never two copies of the model. Returns the
// count.
int fold_batchnorm_into_conv(Graph& graph);
// Removes Identity, and Dropout in inference mode, renaming their consumers' inputs.
int remove_identities(Graph& graph);
// Hands each constant that one node alone reads, and whose op can hold it (a Conv's f32 W), to
// that op, and drops the graph's plain copy: the op packs it for oneDNN at its first plan and
// frees the plain values then, so the weights are in memory once. Run after the passes that
// rewrite constants (BatchNorm folding). Returns the count.
int hold_weights_in_ops(Graph& graph);

}  // namespace dermal::engine
