// Walks a Keras model config (Sequential, Functional / Model, and models nested inside them)
// and converts each layer call into engine nodes with the layer table.
//
//   GraphBuilder b(graph);
//   ModelWalker walker(b, *weights, "3.6.0");
//   walker.build_root(config_json);   // graph inputs (NHWC), nodes, outputs
#pragma once

#include <string>
#include <vector>

#include "formats/keras/keras_layer.h"
#include "formats/keras/keras_weights.h"

namespace dermal::formats::keras {

class ModelWalker {
 public:
  ModelWalker(GraphBuilder& builder, const WeightSource& weights, std::string keras_version);
  // Fails at once, naming the layer, its class and the Keras version, when any layer anywhere in
  // the model (nested ones included) is a Lambda, a custom class or one Dermal does not know.
  void check_supported(const json& model) const;
  void build_root(const json& model);

 private:
  std::vector<KTensor> build(const json& model, const LayerScope& scope, const std::vector<KTensor>* inputs);
  std::vector<KTensor> sequential(const json& model, const LayerScope& scope, const std::vector<KTensor>* inputs);
  std::vector<KTensor> functional(const json& model, const LayerScope& scope, const std::vector<KTensor>* inputs);
  // One call of a layer (or nested model) on its inputs; node > 0 for a shared layer's later calls.
  std::vector<KTensor> call(const json& layer, const LayerScope& scope, const ScopeLevel& level,
                            const std::vector<KTensor>& inputs, int node);
  KTensor graph_input(const std::string& name, const json& batch_shape);
  [[noreturn]] void fail_layer(const json& layer, const std::string& message, ErrorKind kind) const;

  GraphBuilder& b_;
  const WeightSource& weights_;
  std::string version_;
  int major_ = 3;
};

// Helpers shared with the importer.
bool is_model_class(const std::string& class_name);
std::string layer_name(const json& layer);
std::string class_name(const json& layer);

}  // namespace dermal::formats::keras
