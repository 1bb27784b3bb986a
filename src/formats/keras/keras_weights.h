// Where a Keras layer's variables live in the file, for the two ways Keras saves them:
// - Keras 3 `.keras` (and tf.keras 2.13+ zips): model.weights.h5, one group per layer keyed by
//   its snake-cased class name plus a counter within its model ("layers/conv2d_1/vars/0"); a
//   nested model adds a level ("layers/functional/layers/conv2d/vars"). tf.keras 2.15 on Windows
//   wrote those paths as one flat group name with backslashes ("layers\functional\layers\conv2d").
// - legacy `.h5` (Keras 1/2, and Keras 3's h5 export): group model_weights/<top-level layer>,
//   whose weight_names attribute lists dataset paths in the layer's order; a nested model's group
//   lists the variables of all its layers, told apart by the layer name in each path.
//
//   auto source = keras3_weight_source(file);
//   Variables v = source->layer_variables({{"model", "conv1"}, {"functional", "conv2d"}});
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "formats/keras/hdf5_file.h"

namespace dermal::formats::keras {

// One level of nesting from the root model down to a layer.
struct ScopeLevel {
  std::string name;  // the layer's name in the config
  std::string key;   // its Keras 3 saving key: snake-cased class plus counter ("conv2d_1")
};
using LayerScope = std::vector<ScopeLevel>;

// A layer's variables, as views into one scratch buffer that the source reuses for every layer
// (valid until its next call): converting a layer then allocates only the graph's own tensors,
// so the load leaves no freed temporaries behind (they would keep the process's memory high).
struct Variables {
  std::vector<engine::Tensor> values;  // in Keras' order: kernel, bias / gamma, beta, mean, var
  std::string where;                   // where they were looked up, for error messages
  const float* scratch_begin = nullptr;
  const float* scratch_end = nullptr;
  bool is_view(const engine::Tensor& t) const {
    const float* p = static_cast<const float*>(t.raw());
    return p >= scratch_begin && p < scratch_end;
  }
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual Variables layer_variables(const LayerScope& scope) const = 0;
};

// `file` must outlive the source.
std::unique_ptr<WeightSource> keras3_weight_source(const Hdf5File& file);
std::unique_ptr<WeightSource> legacy_weight_source(const Hdf5File& file);

// Keras' class-name-to-key rule ("DepthwiseConv2D" -> "depthwise_conv2d", "PReLU" -> "p_re_lu").
std::string snake_case(const std::string& class_name);

}  // namespace dermal::formats::keras
