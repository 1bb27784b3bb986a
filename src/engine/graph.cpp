#include "engine/graph.h"

#include <algorithm>
#include <map>
#include <set>

#include "engine/ops/conv.h"

namespace dermal::engine {

Node& Graph::add_node(const std::string& type, const std::string& node_name, std::vector<std::string> node_inputs,
                      std::vector<std::string> node_outputs, const Attributes& attrs, int opset) {
  OpContext ctx{type, node_name, opset, node_inputs.size(), node_outputs.size()};
  Node n;
  n.name = node_name;
  n.type = type;
  n.opset = opset;
  n.inputs = std::move(node_inputs);
  n.outputs = std::move(node_outputs);
  n.op = create_op(attrs, ctx);
  n.attrs = attrs;
  nodes.push_back(std::move(n));
  return nodes.back();
}

bool Graph::is_input(const std::string& tensor) const {
  return std::any_of(inputs.begin(), inputs.end(), [&](const ValueInfo& v) { return v.name == tensor; });
}

bool Graph::is_output(const std::string& tensor) const {
  return std::any_of(outputs.begin(), outputs.end(), [&](const ValueInfo& v) { return v.name == tensor; });
}

const Node* Graph::producer(const std::string& tensor) const {
  for (const Node& n : nodes)
    for (const auto& o : n.outputs)
      if (o == tensor) return &n;
  return nullptr;
}

const Node* Graph::node(const std::string& name) const {
  for (const Node& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

std::vector<const Node*> Graph::consumers(const std::string& tensor) const {
  std::vector<const Node*> out;
  for (const Node& n : nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), tensor) != n.inputs.end()) out.push_back(&n);
  return out;
}

int64_t Graph::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : constants)
    if (t.dtype() != DType::i64) n += t.numel();
  for (const auto& [name, info] : held_by_ops)
    if (info.dtype != DType::i64) n += shape_numel(info.shape);
  return n;
}

size_t Graph::weight_bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : constants) n += t.bytes();
  for (const auto& [name, info] : held_by_ops) n += static_cast<size_t>(shape_numel(info.shape)) * dtype_size(info.dtype);
  return n;
}

Tensor Graph::constant_value(const std::string& tensor) const {
  if (auto it = constants.find(tensor); it != constants.end()) return it->second;
  if (held_by_ops.count(tensor))
    for (const Node& n : nodes)
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (n.inputs[i] == tensor) return n.op->held_weight(i);
  throw Error(ErrorKind::invalid_input, "'" + tensor + "' is not a constant of the graph");
}

void Graph::finalize() {
  // Where each tensor comes from: graph input, constant, or exactly one node output.
  std::set<std::string> defined;
  for (const auto& in : inputs) defined.insert(in.name);
  for (const auto& [name, t] : constants) defined.insert(name);
  for (const auto& [name, info] : held_by_ops) defined.insert(name);
  std::map<std::string, size_t> producer_of;
  for (size_t i = 0; i < nodes.size(); ++i) {
    // The graph passes and the planner take a node's first output as its result.
    if (nodes[i].outputs.empty() || nodes[i].outputs[0].empty())
      throw Error(ErrorKind::invalid_model, "node '" + nodes[i].name + "' (" + nodes[i].type + ") has no output");
    for (const auto& o : nodes[i].outputs) {
      if (o.empty()) continue;
      if (defined.count(o) || producer_of.count(o))
        throw Error(ErrorKind::invalid_model, "tensor '" + o + "' is defined more than once (node '" + nodes[i].name + "')");
      producer_of[o] = i;
    }
  }
  // Kahn's algorithm, keeping the file's order among ready nodes.
  std::vector<int> missing(nodes.size(), 0);
  std::vector<std::vector<size_t>> readers(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& in : nodes[i].inputs) {
      if (in.empty() || defined.count(in)) continue;
      auto it = producer_of.find(in);
      if (it == producer_of.end())
        throw Error(ErrorKind::invalid_model, "node '" + nodes[i].name + "' (" + nodes[i].type + ") reads tensor '" + in +
                                                  "', which nothing defines");
      ++missing[i];
      readers[it->second].push_back(i);
    }
  }
  std::vector<size_t> order, ready;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (missing[i] == 0) ready.push_back(i);
  while (!ready.empty()) {
    std::sort(ready.begin(), ready.end(), std::greater<>());
    size_t i = ready.back();
    ready.pop_back();
    order.push_back(i);
    for (size_t r : readers[i])
      if (--missing[r] == 0) ready.push_back(r);
  }
  if (order.size() != nodes.size()) throw Error(ErrorKind::invalid_model, "the graph has a cycle");
  std::vector<Node> sorted;
  for (size_t i : order) sorted.push_back(std::move(nodes[i]));
  nodes = std::move(sorted);
  for (const auto& out : outputs)
    if (!defined.count(out.name) && !producer_of.count(out.name))
      throw Error(ErrorKind::invalid_model, "graph output '" + out.name + "' is never computed");
}

namespace {

void rename_input(Graph& g, const std::string& from, const std::string& to) {
  for (Node& n : g.nodes)
    for (auto& in : n.inputs)
      if (in == from) in = to;
}

}  // namespace

int remove_identities(Graph& g) {
  int removed = 0;
  for (size_t i = 0; i < g.nodes.size();) {
    Node& n = g.nodes[i];
    // (finalize refuses a node without an output; the check is here too for graphs built without it)
    const bool passthrough = !n.outputs.empty() && (n.type == "Identity" || (n.type == "Dropout" && (n.outputs.size() == 1 ||
                                                                                                      n.outputs[1].empty())));
    // Keep it when its output is a graph output: the name must survive.
    if (passthrough && !n.inputs.empty() && !n.inputs[0].empty() && !g.is_output(n.outputs[0])) {
      std::string from = n.outputs[0], to = n.inputs[0];
      g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i));
      rename_input(g, from, to);
      ++removed;
      continue;
    }
    ++i;
  }
  return removed;
}

int fold_batchnorm_into_conv(Graph& g) {
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& bn = g.nodes[i];
    if (bn.type != "BatchNormalization" || bn.outputs.size() != 1 || bn.inputs.size() != 5) continue;
    const Node* conv_ptr = g.producer(bn.inputs[0]);
    if (!conv_ptr || conv_ptr->type != "Conv") continue;
    Node& conv = const_cast<Node&>(*conv_ptr);
    if (conv.inputs.size() < 2 || conv.outputs.size() != 1) continue;  // the op refuses it when planned
    const std::string& mid = bn.inputs[0];
    if (g.consumers(mid).size() != 1 || g.is_output(mid)) continue;
    if (!g.is_constant(conv.inputs[1]) || (conv.inputs.size() > 2 && !conv.inputs[2].empty() && !g.is_constant(conv.inputs[2])))
      continue;
    bool params_known = true;
    for (size_t k = 1; k < 5; ++k) params_known = params_known && g.is_constant(bn.inputs[k]);
    if (!params_known) continue;
    const Tensor* bias = conv.inputs.size() > 2 && !conv.inputs[2].empty() ? &g.constants.at(conv.inputs[2]) : nullptr;
    auto [w, b] = ops::fold_batchnorm_weights(g.constants.at(conv.inputs[1]), bias, g.constants.at(bn.inputs[1]),
                                              g.constants.at(bn.inputs[2]), g.constants.at(bn.inputs[3]),
                                              g.constants.at(bn.inputs[4]), bn.attrs.get_float("epsilon", 1e-5));
    // New constant names: the originals may be shared with other nodes.
    std::string wname = conv.name + "/folded_weight", bname = conv.name + "/folded_bias";
    g.constants[wname] = w;
    g.constants[bname] = b;
    std::vector<std::string> replaced(conv.inputs.begin() + 1, conv.inputs.end());
    replaced.insert(replaced.end(), bn.inputs.begin() + 1, bn.inputs.end());
    conv.inputs.resize(3);
    conv.inputs[1] = wname;
    conv.inputs[2] = bname;
    conv.outputs[0] = bn.outputs[0];
    g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(i));
    --i;
    ++folded;
    // Drop the originals nothing reads any more now, not after the last fold: the model's
    // weights are never all held twice.
    for (const auto& name : replaced)
      if (!name.empty() && g.consumers(name).empty() && !g.is_output(name)) g.constants.erase(name);
  }
  // Drop constants nothing reads (initializers the file has but no node uses, too).
  std::set<std::string> used;
  for (const Node& n : g.nodes) used.insert(n.inputs.begin(), n.inputs.end());
  for (auto it = g.constants.begin(); it != g.constants.end();)
    it = used.count(it->first) || g.is_output(it->first) ? std::next(it) : g.constants.erase(it);
  return folded;
}

int hold_weights_in_ops(Graph& g) {
  int held = 0;
  for (Node& n : g.nodes)
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const std::string& name = n.inputs[i];
      auto it = g.constants.find(name);
      if (it == g.constants.end() || g.is_output(name) || !n.op->can_hold_weight(i, it->second)) continue;
      // Only its sole reader may take it, and only through one input.
      auto readers = g.consumers(name);
      if (readers.size() != 1 || std::count(n.inputs.begin(), n.inputs.end(), name) != 1) continue;
      g.held_by_ops[name] = {it->second.dtype(), it->second.shape()};
      n.op->hold_weight(i, std::move(it->second));
      g.constants.erase(it);
      ++held;
    }
  return held;
}

}  // namespace dermal::engine
