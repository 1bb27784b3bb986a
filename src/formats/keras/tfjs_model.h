// TensorFlow.js layers models: a model.json whose modelTopology is a Keras model config (the
// config itself, or wrapped as {model_config, training_config} by tfjs-converter) and whose
// weightsManifest lists binary weight shards beside it, as tfjs-layers' model.save(),
// tfjs-converter (from a Keras .h5) and Teachable Machine write them. The config goes through the
// Keras importer's layer table (load_keras_config); the weights come from the shards, dequantised
// as tfjs-core's decodeWeights does (uint8/uint16: q * scale + min; float16).
// Shard paths must stay inside the model.json's folder; every shard must hold exactly the bytes
// its manifest describes.
//
//   TfjsModelInfo info;
//   engine::Graph g = formats::load_tfjs("export/model.json", &info);   // info.quantization "uint8"
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "formats/keras/keras_importer.h"
#include "formats/keras/keras_weights.h"

namespace dermal::formats {

struct TfjsModelInfo {
  KerasModelInfo keras;      // container "tfjs"; keras_version as the topology states it
  std::string generated_by;  // model.json's generatedBy and convertedBy, when stated
  std::string converted_by;
  std::string quantization;  // "none", or the manifest's quantised dtypes ("uint8", "uint8, float16")
  int64_t weight_bytes = 0;  // in the shards
};

engine::Graph load_tfjs(const std::string& model_json_path, TfjsModelInfo* info = nullptr);

namespace keras {

// The weights a weightsManifest describes, in its shard files: the manifest and the files are
// checked when it is made (paths inside the model's folder, dtypes, shapes, sizes to the byte);
// each tensor is read and decoded when asked for, so the shards are never held whole.
class TfjsWeights {
 public:
  enum class Stored { f32, i32, u8, u16, f16 };  // the bytes in the shard
  struct Spec {
    std::string name;  // as the manifest writes it ("conv2d_1/kernel")
    engine::Shape shape;
    Stored stored = Stored::f32;
    bool int32 = false;      // dtype int32: dequantised values are rounded as JavaScript's Math.round
    bool optimizer = false;  // "group": "optimizer": training state, no layer's variable
    double min = 0, scale = 1;
    size_t group = 0;
    uint64_t offset = 0, bytes = 0;  // within the group's shards, concatenated
  };

  TfjsWeights(const nlohmann::json& manifest, const std::string& model_json_path);
  const std::vector<Spec>& specs() const { return specs_; }
  uint64_t total_bytes() const;
  // Decodes weight i into dst (its element count of floats), value for value as tfjs-core.
  void read_into(size_t i, float* dst) const;
  engine::Tensor read(size_t i) const;

 private:
  struct Shard {
    std::string name;  // as listed
    std::string path;  // resolved
    uint64_t size = 0;
  };
  struct Group {
    std::vector<Shard> shards;
  };
  void check_sizes(Group& g, size_t group, uint64_t needed) const;
  void read_bytes(const Group& g, uint64_t offset, uint64_t size, unsigned char* dst) const;

  std::string file_;  // the model.json, for messages
  std::vector<Group> groups_;
  std::vector<Spec> specs_;
};

// A layer's variables are the weights named "<layer>/<variable>", maybe after the names of the
// models around it ("model_1/conv2d/kernel"), in Keras' order whatever the manifest's order.
// `weights` must outlive the source.
std::unique_ptr<WeightSource> tfjs_weight_source(const TfjsWeights& weights);

}  // namespace keras
}  // namespace dermal::formats
