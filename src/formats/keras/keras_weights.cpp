#include "formats/keras/keras_weights.h"

#include <map>
#include <regex>

namespace dermal::formats::keras {

namespace {

// Reads the datasets into `scratch` (grown as needed) and returns views of them.
Variables read_views(const Hdf5File& file, const std::vector<std::string>& paths, std::vector<float>& scratch, std::string where) {
  std::vector<engine::Shape> shapes;
  size_t total = 0;
  for (const std::string& p : paths) {
    shapes.push_back(file.dataset_shape(p));
    total += static_cast<size_t>(engine::shape_numel(shapes.back()));
  }
  if (scratch.size() < total) scratch.resize(total);
  Variables v;
  v.where = std::move(where);
  size_t offset = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    const int64_t n = engine::shape_numel(shapes[i]);
    file.read_floats_into(paths[i], scratch.data() + offset, n);
    v.values.push_back(engine::Tensor::view(engine::DType::f32, shapes[i], scratch.data() + offset));
    offset += static_cast<size_t>(n);
  }
  v.scratch_begin = scratch.data();
  v.scratch_end = scratch.data() + scratch.size();
  return v;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

class Keras3Source : public WeightSource {
 public:
  explicit Keras3Source(const Hdf5File& file) : file_(file) {}

  Variables layer_variables(const LayerScope& scope) const override {
    std::vector<std::string> parts;
    for (const ScopeLevel& level : scope) {
      parts.push_back("layers");
      parts.push_back(level.key);
    }
    const std::string where = join(parts, "/") + "/vars";
    std::string group = where;
    if (!file_.is_group(group)) {
      const std::string flat = join(parts, "\\") + "/vars";  // tf.keras 2.15 written on Windows
      if (file_.is_group(flat)) group = flat;
    }
    std::vector<std::string> paths;
    if (file_.is_group(group))
      for (int i = 0; file_.exists(group + "/" + std::to_string(i)); ++i) paths.push_back(group + "/" + std::to_string(i));
    return read_views(file_, paths, scratch_, where);
  }

 private:
  const Hdf5File& file_;
  mutable std::vector<float> scratch_;
};

// Whether a weight path ("model/conv1/kernel:0", "conv1/bn/gamma:0") is a variable of `layer`:
// everything before the variable's name is the layer's name, maybe after a model prefix. Layer
// names may hold '/' themselves (Keras 2's DenseNet: "conv1/bn").
bool names_layer(const std::string& weight, const std::string& layer) {
  const size_t slash = weight.rfind('/');
  if (slash == std::string::npos) return false;
  const std::string stem = weight.substr(0, slash);
  return stem == layer || (stem.size() > layer.size() && stem.compare(stem.size() - layer.size(), layer.size(), layer) == 0 &&
                           stem[stem.size() - layer.size() - 1] == '/');
}

class LegacySource : public WeightSource {
 public:
  explicit LegacySource(const Hdf5File& file) : file_(file), root_(file.is_group("model_weights") ? "model_weights" : "") {}

  Variables layer_variables(const LayerScope& scope) const override {
    const std::string group = (root_.empty() ? "" : root_ + "/") + scope.front().name;
    std::string where = "/" + group;
    if (scope.size() > 1) where += " (weights named '" + scope.back().name + "/...')";
    if (!file_.is_group(group)) return Variables{{}, where};
    auto cached = names_.find(group);
    if (cached == names_.end()) cached = names_.emplace(group, file_.string_list_attr(group, "weight_names")).first;
    const std::vector<std::string>& names = cached->second;
    std::vector<std::string> paths;
    for (const std::string& name : names)  // in a nested model's group, the ones naming this layer
      if (scope.size() == 1 || names_layer(name, scope.back().name)) paths.push_back(group + "/" + name);
    return read_views(file_, paths, scratch_, where);
  }

 private:
  const Hdf5File& file_;
  std::string root_;
  mutable std::map<std::string, std::vector<std::string>> names_;  // weight_names per group
  mutable std::vector<float> scratch_;
};

}  // namespace

std::unique_ptr<WeightSource> keras3_weight_source(const Hdf5File& file) { return std::make_unique<Keras3Source>(file); }
std::unique_ptr<WeightSource> legacy_weight_source(const Hdf5File& file) { return std::make_unique<LegacySource>(file); }

std::string snake_case(const std::string& class_name) {
  static const std::regex non_word(R"(\W+)"), word_start("(.)([A-Z][a-z]+)"), lower_upper("([a-z])([A-Z])");
  std::string s = std::regex_replace(class_name, non_word, "");
  s = std::regex_replace(s, word_start, "$1_$2");
  s = std::regex_replace(s, lower_upper, "$1_$2");
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace dermal::formats::keras
