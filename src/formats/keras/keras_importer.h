// Keras importer: a Keras model file into an engine graph, with no Python or TensorFlow.
// - `.keras` (Keras 3, and tf.keras 2.13+): a zip of config.json, metadata.json and
//   model.weights.h5; the weights are read in place from the archive (inflated only when a
//   re-zipped file is compressed).
// - legacy `.h5` (Keras 1/2, and Keras 3's h5 export): the model_config attribute and the
//   model_weights group.
// The container is told from the bytes, not the name (many `.keras` files are really HDF5).
// Every layer becomes engine nodes in NCHW: the graph input stays Keras' N,H,W,C and is
// transposed once; each layer's output tensor is named after the layer. A Lambda, a custom or
// an unknown layer fails here, naming the layer, its class and the Keras version.
//
//   KerasModelInfo info;
//   engine::Graph g = formats::load_keras("model.keras", &info);   // info.keras_version "3.6.0"
#pragma once

#include <string>

#include "engine/graph.h"

namespace dermal::formats {

struct KerasModelInfo {
  std::string container;      // "keras" (zip) or "hdf5"
  std::string keras_version;  // as the file states it ("3.6.0", "2.4.0"), or "unknown"
  std::string backend;        // "tensorflow", "jax"... when stated
  std::string model_name;     // the root model's name ("sequential", "resnet50")
  std::string model_class;    // "Sequential", "Functional" or "Model"
};

engine::Graph load_keras(const std::string& path, KerasModelInfo* info = nullptr);

namespace keras {
class WeightSource;
}
// What load_keras does once it has opened the container: the graph of a Keras model config (the
// JSON of config.json or of model_config) over the file's weights. `what` names the config in
// error messages. The caller holds HDF5 to one thread (Debian's HDF5 is the serial build).
engine::Graph load_keras_config(const std::string& config_json, const std::string& what, const keras::WeightSource& weights,
                                const std::string& version, KerasModelInfo* info = nullptr);

}  // namespace dermal::formats
