// Loads a model file into an engine graph ready to plan, whatever its format (detected from the
// bytes, not the file name), and applies the load-time graph passes.
//
//   formats::LoadedModel m = formats::load_model("models/mobilenet_v2_ham192.onnx");
//   engine::Executor ex(m.graph, opts);
#pragma once

#include <memory>
#include <string>

#include "engine/graph.h"

namespace dermal::formats {

struct LoadedModel {
  std::shared_ptr<const engine::Graph> graph;
  std::string format;    // "onnx"
  std::string producer;  // e.g. "pytorch 1.13"
  int opset = 0;
  std::map<std::string, std::string> metadata;
  int folded_batchnorms = 0;
  int removed_identities = 0;
  double load_ms = 0;
};

LoadedModel load_model(const std::string& path);

}  // namespace dermal::formats
