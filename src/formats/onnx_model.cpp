// The ONNX half of formats::load_model, apart so that a program that needs only the engine and
// ONNX (the engine benchmark) links neither the Keras importer nor HDF5 and its dependencies.
#include <chrono>

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
