// ONNX importer: a .onnx file (opsets 7 to 18, initializers inline or in external-data files)
// into an engine graph. Anything unsupported (op, attribute, dtype, opset) fails here, at load,
// with the op type, node name and opset in the message.
//
//   engine::Graph g = formats::load_onnx("model.onnx");
#pragma once

#include <string>

#include "engine/graph.h"

namespace onnx {
class TensorProto;
}

namespace dermal::formats {

struct OnnxModelInfo {
  int64_t ir_version = 0;
  int opset = 0;
  std::string producer;  // producer_name and version
  std::map<std::string, std::string> metadata;  // metadata_props
};

// base_dir: where external-data files are looked up (the model file's folder).
engine::Graph load_onnx(const std::string& path, OnnxModelInfo* info = nullptr);
engine::Graph load_onnx_array(const char* data, size_t size, const std::string& base_dir, OnnxModelInfo* info = nullptr);

// A TensorProto (raw_data, typed fields or external data) as an engine tensor. Float types
// become f32 (f64 stays f64), integer and bool types become i64.
engine::Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir);
// Reads a serialized TensorProto file (ONNX's test data: input_0.pb, output_0.pb).
engine::Tensor load_tensor_pb(const std::string& path);

}  // namespace dermal::formats
