// The ONNX half of formats::load_model, apart so that a program that needs only the engine and
// ONNX (the engine benchmark) links neither the Keras importer nor HDF5 and its dependencies.
#include <chrono>
#include <set>

#include "engine/graph.h"
#include "formats/model_loader.h"
#include "formats/onnx_importer.h"

namespace dermal::formats {

void find_logits(const engine::Graph& g, LoadedModel& m) {
  if (g.outputs.empty()) throw Error(ErrorKind::invalid_model, "the model has no outputs");
  const std::string& out = g.outputs[0].name;
  m.logits = out;
  m.output_is_probability = false;
  const engine::Node* last = g.producer(out);
  if (last && last->type == "Softmax" && !last->inputs.empty()) {
    m.logits = last->inputs[0];
    m.output_is_probability = true;
  }
}

namespace {

// "nchw", "nhwc", or "" when the readers of `tensor` (and, through elementwise ops, theirs)
// do not say.
std::string layout_from_readers(const engine::Graph& g, const std::string& tensor, int depth) {
  if (depth > 8) return "";
  static const std::set<std::string> channels_first{"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool",
                                                    "BatchNormalization", "InstanceNormalization", "GlobalAveragePool",
                                                    "GlobalMaxPool"};
  static const std::set<std::string> elementwise{"Cast", "Sub", "Div", "Mul", "Add", "Identity", "Clip", "Relu"};
  std::string found;
  for (const engine::Node* n : g.consumers(tensor)) {
    std::string here;
    if (n->type == "Transpose") {
      const auto perm = n->attrs.get_ints("perm", {});
      if (perm == std::vector<int64_t>{0, 3, 1, 2}) here = "nhwc";
    } else if (channels_first.count(n->type) && !n->inputs.empty() && n->inputs[0] == tensor) {
      here = "nchw";
    } else if (elementwise.count(n->type) && !n->outputs.empty()) {
      here = layout_from_readers(g, n->outputs[0], depth + 1);
    }
    if (here.empty()) continue;
    if (!found.empty() && found != here) return "";  // readers disagree: let the shape decide
    found = here;
  }
  return found;
}

}  // namespace

std::string image_layout(const LoadedModel& m, const std::string& input) {
  if (m.format != "onnx") return m.input_layout;
  const std::string from_graph = layout_from_readers(*m.graph, input, 0);
  if (!from_graph.empty()) return from_graph;
  for (const auto& in : m.graph->inputs)
    if (in.name == input && in.shape.size() == 4) {
      auto is_channels = [](int64_t d) { return d == 1 || d == 3; };
      if (is_channels(in.shape[3]) && !is_channels(in.shape[1])) return "nhwc";
    }
  return "nchw";
}

void finish_loading(engine::Graph g, LoadedModel& m, std::chrono::steady_clock::time_point start) {
  m.removed_identities = engine::remove_identities(g);
  m.folded_batchnorms = engine::fold_batchnorm_into_conv(g);
  m.held_weights = engine::hold_weights_in_ops(g);
  find_logits(g, m);
  m.graph = std::make_shared<engine::Graph>(std::move(g));
  m.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

LoadedModel load_onnx_model(const std::string& path) {
  auto start = std::chrono::steady_clock::now();
  LoadedModel m;
  m.format = "onnx";
  OnnxModelInfo info;
  engine::Graph g = load_onnx(path, &info);
  m.producer = info.producer;
  m.opset = info.opset;
  m.metadata = info.metadata;
  finish_loading(std::move(g), m, start);
  return m;
}

}  // namespace dermal::formats
