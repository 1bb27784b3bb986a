#include "formats/model_loader.h"

#include <chrono>
#include <fstream>

#include "formats/keras/keras_importer.h"

namespace dermal::formats {

namespace {

// ONNX files are protobuf ModelProto messages: they start with field 1 (ir_version, varint),
// tag byte 0x08. Zip (Keras v3) and HDF5 have magic numbers of their own.
std::string sniff_format(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::invalid_model, "cannot open model file '" + path + "'");
  char head[8] = {};
  f.read(head, sizeof head);
  const std::string magic(head, static_cast<size_t>(f.gcount()));
  if (magic.rfind("PK\x03\x04", 0) == 0) return "keras";
  if (magic.rfind("\x89HDF\r\n\x1a\n", 0) == 0) return "hdf5";
  if (!magic.empty() && magic[0] == 0x08) return "onnx";
  throw Error(ErrorKind::invalid_model, "'" + path + "' is not a model file Dermal knows (ONNX, Keras)");
}

}  // namespace

LoadedModel load_model(const std::string& path) {
  auto start = std::chrono::steady_clock::now();
  LoadedModel m;
  m.format = sniff_format(path);
  if (m.format == "keras" || m.format == "hdf5") {
    KerasModelInfo info;
    engine::Graph g = load_keras(path, &info);
    m.format = info.container;
    m.producer = "keras " + info.keras_version;
    m.input_layout = "nhwc";
    m.metadata["keras_version"] = info.keras_version;
    if (!info.backend.empty()) m.metadata["keras_backend"] = info.backend;
    m.metadata["keras_model_name"] = info.model_name;
    m.metadata["keras_model_class"] = info.model_class;
    finish_loading(std::move(g), m, start);
    return m;
  }
  return load_onnx_model(path);
}

}  // namespace dermal::formats
