#include "formats/keras/keras_importer.h"

#include <cmath>
#include <fstream>
#include <mutex>

#include "formats/keras/hdf5_file.h"
#include "formats/keras/keras_model.h"
#include "formats/keras/trial_read.h"
#include "formats/keras/zip_archive.h"

namespace dermal::formats {

using keras::json;

namespace {

// Debian's HDF5 is the serial build: one thread in the library at a time.
std::mutex hdf5_mutex;

json parse_json(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::invalid_model, what + " is not valid JSON");
  return j;
}

std::string string_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

void describe(const json& model, KerasModelInfo* info) {
  if (!info) return;
  info->model_class = keras::class_name(model);
  auto cfg = model.find("config");
  if (cfg != model.end() && cfg->is_object()) info->model_name = string_field(*cfg, "name");
}

engine::Graph build_graph(const json& model, const keras::WeightSource& weights, const std::string& version) {
  engine::Graph g;
  keras::GraphBuilder builder(g);
  keras::ModelWalker walker(builder, weights, version);
  walker.build_root(model);
  g.name = keras::layer_name(model);
  g.finalize();
  return g;
}

engine::Graph load_zip(const std::string& path, KerasModelInfo* info) {
  keras::ZipArchive zip = keras::ZipArchive::open(path);
  if (!zip.has("config.json"))
    throw Error(ErrorKind::invalid_model, "'" + path + "' is a zip archive but not a Keras model (no config.json)");
  std::string version = "unknown";
  if (zip.has("metadata.json")) {
    json meta = parse_json(zip.read("metadata.json"), "'" + path + "': metadata.json");
    if (!string_field(meta, "keras_version").empty()) version = string_field(meta, "keras_version");
  }
  if (info) info->container = "keras";
  const std::string config = zip.read("config.json");
  if (!zip.has("model.weights.h5"))
    throw Error(ErrorKind::invalid_model, "'" + path + "' has no model.weights.h5 (only the HDF5 weights format is supported)");
  keras::ZipArchive::Entry entry = zip.entry("model.weights.h5");
  // Pages of each dataset are dropped once its tensor is made: the weights live once, in the graph.
  keras::Hdf5File file = keras::Hdf5File::open_memory(
      entry.data, entry.size, [&](uint64_t offset, uint64_t size) { zip.release(entry, offset, size); });
  auto weights = keras::keras3_weight_source(file);
  return load_keras_config(config, "'" + path + "': config.json", *weights, version, info);
}

engine::Graph load_h5(const std::string& path, KerasModelInfo* info) {
  keras::Hdf5File file = keras::Hdf5File::open_path(path);
  std::optional<std::string> config = file.string_attr("", "model_config");
  if (!config) {
    if (file.is_group("model_weights") || file.has_attr("", "layer_names"))
      throw Error(ErrorKind::invalid_model, "'" + path + "' holds only weights (no model_config): Dermal needs the whole model, "
                                            "saved with model.save()");
    throw Error(ErrorKind::invalid_model, "'" + path + "' is an HDF5 file but not a Keras model (no model_config attribute)");
  }
  std::string version = file.string_attr("", "keras_version").value_or("");
  if (version.empty() && file.is_group("model_weights")) version = file.string_attr("model_weights", "keras_version").value_or("");
  if (version.empty()) version = "unknown";
  if (info) {
    info->container = "hdf5";
    info->backend = file.string_attr("", "backend").value_or("");
  }
  auto weights = keras::legacy_weight_source(file);
  return load_keras_config(*config, "'" + path + "': model_config", *weights, version, info);
}

}  // namespace

engine::Graph load_keras_config(const std::string& config_json, const std::string& what, const keras::WeightSource& weights,
                                const std::string& version, KerasModelInfo* info) {
  try {
    json model = parse_json(config_json, what);
    if (info) {
      info->keras_version = version;
      describe(model, info);
    }
    return build_graph(model, weights, version);
  } catch (const json::exception& e) {  // a config with unexpected value types
    throw Error(ErrorKind::invalid_model, what + ": " + e.what());
  }
}

engine::Graph load_keras(const std::string& path, KerasModelInfo* info) {
  char head[8] = {};
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(ErrorKind::invalid_model, "cannot open model file '" + path + "'");
    f.read(head, sizeof head);
  }
  const bool zip = keras::ZipArchive::has_signature(head, sizeof head);
  if (!zip && !keras::Hdf5File::has_signature(head, sizeof head))
    throw Error(ErrorKind::invalid_model, "'" + path + "' is neither a .keras zip nor an HDF5 file");
  // (JSON type errors are turned into errors by load_keras_config; metadata.json is read safely.)
  auto load = [&](KerasModelInfo* i) { return zip ? load_zip(path, i) : load_h5(path, i); };
  std::lock_guard<std::mutex> lock(hdf5_mutex);
  // HDF5 1.10 can crash or hang on a corrupt file: the file is read once in a child process first.
  keras::trial_read_in_child([&] { load(nullptr); }, "'" + path + "'", keras::trial_read_deadline_s(path));
  return load(info);
}

}  // namespace dermal::formats
