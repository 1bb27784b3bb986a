#include "formats/model_loader.h"

#include <chrono>
#include <fstream>

#include "formats/keras/keras_importer.h"
#include "formats/keras/tfjs_model.h"

namespace dermal::formats {

namespace {

// ONNX files are protobuf ModelProto messages: they start with field 1 (ir_version, varint),
// tag byte 0x08. Zip (Keras v3) and HDF5 have magic numbers of their own. A JSON object (after
// whitespace or a UTF-8 byte order mark) is a TensorFlow.js model.json: load_tfjs checks its keys.
std::string sniff_format(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::invalid_model, "cannot open model file '" + path + "'");
  char head[64] = {};
  f.read(head, sizeof head);
  const std::string magic(head, static_cast<size_t>(f.gcount()));
  if (magic.rfind("PK\x03\x04", 0) == 0) return "keras";
  if (magic.rfind("\x89HDF\r\n\x1a\n", 0) == 0) return "hdf5";
  if (!magic.empty() && magic[0] == 0x08) return "onnx";
  const size_t text = magic.rfind("\xef\xbb\xbf", 0) == 0 ? 3 : 0;
  const size_t first = magic.find_first_not_of(" \t\r\n", text);
  if (first != std::string::npos && magic[first] == '{') return "tfjs";
  throw Error(ErrorKind::invalid_model,
              "'" + path + "' is not a model file Dermal knows (ONNX, Keras, TensorFlow.js model.json)");
}

// What a Keras file or a TensorFlow.js layers model says of its Keras model; its images are N,H,W,C.
void describe_keras(const KerasModelInfo& info, LoadedModel& m) {
  m.input_layout = "nhwc";
  m.metadata["keras_version"] = info.keras_version;
  if (!info.backend.empty()) m.metadata["keras_backend"] = info.backend;
  m.metadata["keras_model_name"] = info.model_name;
  m.metadata["keras_model_class"] = info.model_class;
}

// "tfjs-layers 4.22.0 (keras 2.2.4)": the TensorFlow.js version from generatedBy ("TensorFlow.js
// tfjs-layers v4.22.0") or the topology's keras_version ("tfjs-layers 4.22.0"), the Keras version
// when a converted Keras model states one.
std::string tfjs_producer(const TfjsModelInfo& info) {
  std::string producer = "tfjs-layers";
  const std::string& keras = info.keras.keras_version;
  for (const std::string& s : {info.generated_by, keras}) {
    const size_t at = s.find("tfjs-layers ");
    if (at == std::string::npos) continue;
    std::string version = s.substr(at + 12);
    if (!version.empty() && version[0] == 'v') version.erase(0, 1);
    producer += " " + version;
    break;
  }
  if (!keras.empty() && keras != "unknown" && keras.rfind("tfjs", 0) != 0) producer += " (keras " + keras + ")";
  return producer;
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
    describe_keras(info, m);
    finish_loading(std::move(g), m, start);
    return m;
  }
  if (m.format == "tfjs") {
    TfjsModelInfo info;
    engine::Graph g = load_tfjs(path, &info);
    m.producer = tfjs_producer(info);
    describe_keras(info.keras, m);
    if (!info.generated_by.empty()) m.metadata["tfjs_generated_by"] = info.generated_by;
    if (!info.converted_by.empty()) m.metadata["tfjs_converted_by"] = info.converted_by;
    m.metadata["tfjs_quantization"] = info.quantization;
    m.metadata["tfjs_weight_bytes"] = std::to_string(info.weight_bytes);
    finish_loading(std::move(g), m, start);
    return m;
  }
  return load_onnx_model(path);
}

}  // namespace dermal::formats
