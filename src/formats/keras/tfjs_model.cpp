#include "formats/keras/tfjs_model.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

namespace dermal::formats {

using nlohmann::json;

namespace {

namespace fs = std::filesystem;

// A model.json is the topology and the manifest: kilobytes to a few megabytes.
constexpr uint64_t kMaxModelJsonBytes = uint64_t{64} << 20;
// All the shards together: far above any model Dermal serves, far below what would overflow.
constexpr uint64_t kMaxWeightBytes = uint64_t{16} << 30;
constexpr size_t kMaxRank = 8;

[[noreturn]] void fail(const std::string& file, const std::string& message, ErrorKind kind = ErrorKind::invalid_model) {
  throw Error(kind, "'" + file + "': " + message);
}

std::string string_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string read_model_json(const std::string& path) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) throw Error(ErrorKind::invalid_model, "cannot open model file '" + path + "'");
  if (size > kMaxModelJsonBytes)
    fail(path, "a TensorFlow.js model.json of " + std::to_string(size >> 20) + " MiB: more than the " +
                   std::to_string(kMaxModelJsonBytes >> 20) + " MiB a topology and manifest need");
  std::ifstream f(path, std::ios::binary);
  std::string text(size, '\0');
  if (!f.read(text.data(), static_cast<std::streamsize>(size))) fail(path, "cannot be read");
  return text;
}

// A shard path as the manifest lists it, inside the model's folder: one that could leave it (an
// absolute path, a drive, a ".." step) or that is a URL is refused before any file is touched.
std::string shard_path(const fs::path& dir, const std::string& listed, const std::string& file) {
  auto refuse = [&](const std::string& why) { fail(file, "weight shard path '" + listed + "' " + why); };
  if (listed.empty() || listed.find('\0') != std::string::npos) refuse("is empty or holds a NUL byte");
  if (listed.find("://") != std::string::npos) refuse("is a URL: put the shards beside model.json and list their file names");
  if (listed[0] == '/' || listed[0] == '\\' || (listed.size() > 1 && listed[1] == ':'))
    refuse("is absolute: shards must lie in the model's folder");
  size_t start = 0;
  while (start <= listed.size()) {
    const size_t end = std::min(listed.find_first_of("/\\", start), listed.size());
    if (listed.compare(start, end - start, "..") == 0) refuse("leaves the model's folder ('..'): shards must lie in it");
    start = end + 1;
  }
  return (dir / listed).string();
}

uint64_t element_bytes(keras::TfjsWeights::Stored s) {
  using S = keras::TfjsWeights::Stored;
  return s == S::u8 ? 1 : s == S::u16 || s == S::f16 ? 2 : 4;
}

// IEEE half to float: exact, as tfjs-core's table decoder (subnormals, infinities and NaNs too).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 31) {
    bits = sign | 0x7f800000u | mantissa << 13;
  } else if (exponent != 0) {
    bits = sign | (exponent + 112) << 23 | mantissa << 13;
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exponent = 113;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | exponent << 23 | (mantissa & 0x3ffu) << 13;
  }
  return std::bit_cast<float>(bits);
}

// JavaScript's Math.round: halves go up, towards +infinity.
double js_round(double v) {
  const double down = std::floor(v);
  return v - down >= 0.5 ? down + 1 : down;
}

// How an Int32Array stores a number (JavaScript's ToInt32): modulo 2^32, never undefined behaviour.
int32_t js_int32(double v) {
  if (!std::isfinite(v)) return 0;
  double m = std::fmod(std::trunc(v), 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<int32_t>(static_cast<uint32_t>(m));
}

}  // namespace

namespace keras {

TfjsWeights::TfjsWeights(const json& manifest, const std::string& model_json_path) : file_(model_json_path) {
  if (!manifest.is_array()) fail(file_, "weightsManifest is not a list of weight groups");
  const fs::path dir = fs::path(model_json_path).parent_path().empty() ? fs::path(".") : fs::path(model_json_path).parent_path();
  uint64_t total = 0;
  for (size_t g = 0; g < manifest.size(); ++g) {
    const json& group = manifest[g];
    const std::string where = "weight group " + std::to_string(g + 1);
    if (!group.is_object() || !group.contains("paths") || !group["paths"].is_array() || !group.contains("weights") ||
        !group["weights"].is_array())
      fail(file_, where + " has no 'paths' and 'weights' lists");
    Group out;
    for (const json& p : group["paths"]) {
      if (!p.is_string()) fail(file_, where + ": a shard path is not a string");
      out.shards.push_back({p.get<std::string>(), shard_path(dir, p.get<std::string>(), file_), 0});
    }
    uint64_t offset = 0;
    for (const json& w : group["weights"]) {
      if (!w.is_object() || !w.contains("name") || !w["name"].is_string()) fail(file_, where + ": a weight entry has no name");
      Spec s;
      s.name = w["name"].get<std::string>();
      s.optimizer = string_field(w, "group") == "optimizer";
      auto bad = [&](const std::string& why, ErrorKind kind = ErrorKind::invalid_model) {
        fail(file_, "weight '" + s.name + "': " + why, kind);
      };
      if (!w.contains("shape") || !w["shape"].is_array() || w["shape"].size() > kMaxRank)
        bad("its shape is not a list of at most " + std::to_string(kMaxRank) + " sizes");
      for (const json& d : w["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > INT32_MAX)
          bad("its shape " + w["shape"].dump() + " holds a size that is not an integer from 0 to 2^31 - 1");
        s.shape.push_back(d.get<int64_t>());
      }
      const std::string dtype = string_field(w, "dtype");
      if (dtype == "int32") {
        s.stored = Stored::i32;
        s.int32 = true;
      } else if (dtype == "bool" || dtype == "string" || dtype == "complex64") {
        bad("dtype '" + dtype + "': Keras layers hold float32 weights, and Dermal reads float32 and int32",
            ErrorKind::unsupported);
      } else if (dtype != "float32") {
        bad("unknown dtype '" + dtype + "' (TensorFlow.js writes float32, int32, bool, string or complex64)");
      }
      // Present and null reads as absent (tfjs-core would fail on it).
      if (w.contains("quantization") && !w["quantization"].is_null()) {
        const json& q = w["quantization"];
        const std::string qtype = q.is_object() ? string_field(q, "dtype") : "";
        if (qtype == "uint8" || qtype == "uint16") {
          if (!q.contains("min") || !q["min"].is_number() || !q.contains("scale") || !q["scale"].is_number() ||
              !std::isfinite(q["min"].get<double>()) || !std::isfinite(q["scale"].get<double>()))
            bad(qtype + " quantization without finite numbers 'min' and 'scale'");
          s.min = q["min"].get<double>();
          s.scale = q["scale"].get<double>();
          s.stored = qtype == "uint8" ? Stored::u8 : Stored::u16;
        } else if (qtype == "float16") {
          if (s.int32) bad("float16 quantization of an int32 weight (TensorFlow.js quantises only float32 to float16)");
          s.stored = Stored::f16;
        } else {
          bad("unknown quantization dtype '" + qtype + "' (TensorFlow.js writes uint8, uint16 or float16)");
        }
      }
      // Bounded before any multiplication can overflow: each size < 2^31, the product checked.
      uint64_t bytes = element_bytes(s.stored);
      for (int64_t d : s.shape) {
        if (d != 0 && bytes > kMaxWeightBytes / static_cast<uint64_t>(d))
          bad("shape " + engine::shape_str(s.shape) + " is larger than the " + std::to_string(kMaxWeightBytes >> 30) +
              " GiB Dermal reads");
        bytes *= static_cast<uint64_t>(d);
      }
      s.group = g;
      s.offset = offset;
      s.bytes = bytes;
      offset += bytes;
      total += bytes;
      if (total > kMaxWeightBytes)
        fail(file_, "the weights are larger than the " + std::to_string(kMaxWeightBytes >> 30) + " GiB Dermal reads");
      specs_.push_back(std::move(s));
    }
    if (out.shards.empty() && offset > 0) fail(file_, where + " lists weights but no shard files");
    check_sizes(out, g, offset);
    groups_.push_back(std::move(out));
  }
}

// Every shard exists and the group's shards hold exactly the bytes its weights need.
void TfjsWeights::check_sizes(Group& g, size_t group, uint64_t needed) const {
  // The weight whose bytes include `offset` in this group, for messages.
  auto weight_at = [&](uint64_t offset) -> const Spec* {
    for (const Spec& s : specs_)
      if (s.group == group && offset < s.offset + s.bytes && s.bytes > 0) return &s;
    return nullptr;
  };
  auto describe = [&](const Spec* s) {
    return s ? "weight '" + s->name + "' (shape " + engine::shape_str(s->shape) + ", bytes " + std::to_string(s->offset) +
                   " to " + std::to_string(s->offset + s->bytes) + " of weight group " + std::to_string(group + 1) + ")"
             : std::string("no weight");
  };
  uint64_t held = 0;
  for (Shard& shard : g.shards) {
    std::error_code ec;
    if (!fs::is_regular_file(shard.path, ec))
      fail(file_, "weight shard '" + shard.name + "' is missing (looked for '" + shard.path + "'); it holds " +
                      describe(weight_at(held)) + (held < needed ? " onwards" : ""));
    shard.size = fs::file_size(shard.path, ec);
    held += shard.size;
  }
  if (held == needed) return;
  const std::string last = g.shards.empty() ? std::string("(none)") : g.shards.back().name;
  if (held < needed)
    fail(file_, "weight shard '" + last + "' ends " + std::to_string(needed - held) +
                    " bytes short of what the manifest needs: " + describe(weight_at(held)) + " is cut off (weight group " +
                    std::to_string(group + 1) + ": " + std::to_string(held) + " bytes in its shards, " + std::to_string(needed) +
                    " needed)");
  const Spec* last_weight = needed ? weight_at(needed - 1) : nullptr;
  fail(file_, "weight shard '" + last + "' holds " + std::to_string(held - needed) +
                  " bytes more than the manifest needs (the last is " + describe(last_weight) +
                  "): the manifest does not describe this shard");
}

uint64_t TfjsWeights::total_bytes() const {
  uint64_t n = 0;
  for (const Spec& s : specs_) n += s.bytes;
  return n;
}

void TfjsWeights::read_bytes(const Group& g, uint64_t offset, uint64_t size, unsigned char* dst) const {
  uint64_t start = 0;
  for (const Shard& shard : g.shards) {
    const uint64_t end = start + shard.size;
    if (size > 0 && offset < end) {
      const uint64_t n = std::min(size, end - offset);
      std::ifstream f(shard.path, std::ios::binary);
      f.seekg(static_cast<std::streamoff>(offset - start));
      if (!f.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n)))
        fail(file_, "weight shard '" + shard.name + "' could not be read (did it change while loading?)");
      dst += n;
      offset += n;
      size -= n;
    }
    start = end;
  }
  if (size > 0) fail(file_, "the weight shards end early");  // sizes were checked: only a file changed since
}

void TfjsWeights::read_into(size_t i, float* dst) const {
  const Spec& s = specs_.at(i);
  std::vector<unsigned char> bytes(s.bytes);
  read_bytes(groups_[s.group], s.offset, s.bytes, bytes.data());
  const unsigned char* b = bytes.data();
  const uint64_t n = s.bytes / element_bytes(s.stored);
  auto u32 = [](const unsigned char* p) {
    return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
           static_cast<uint32_t>(p[3]) << 24;
  };
  auto u16 = [](const unsigned char* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); };
  // tfjs-core computes q * scale + min in double (JavaScript numbers) and stores it in a
  // Float32Array: one rounding to float at the end. The product is rounded on its own, as in
  // JavaScript: volatile keeps a compiler allowed FMA (-ffp-contract=fast) from fusing it.
  auto dequantised = [&](uint32_t q) {
    const volatile double product = static_cast<double>(q) * s.scale;
    const double v = product + s.min;
    return static_cast<float>(s.int32 ? static_cast<double>(js_int32(js_round(v))) : v);
  };
  switch (s.stored) {
    case Stored::f32:
      for (uint64_t k = 0; k < n; ++k) dst[k] = std::bit_cast<float>(u32(b + 4 * k));
      break;
    case Stored::i32:
      for (uint64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(static_cast<int32_t>(u32(b + 4 * k)));
      break;
    case Stored::u8:
      for (uint64_t k = 0; k < n; ++k) dst[k] = dequantised(b[k]);
      break;
    case Stored::u16:
      for (uint64_t k = 0; k < n; ++k) dst[k] = dequantised(u16(b + 2 * k));
      break;
    case Stored::f16:
      for (uint64_t k = 0; k < n; ++k) dst[k] = half_to_float(u16(b + 2 * k));
      break;
  }
}

engine::Tensor TfjsWeights::read(size_t i) const {
  engine::Tensor t = engine::Tensor::zeros(engine::DType::f32, specs_.at(i).shape);
  read_into(i, t.data<float>());
  return t;
}

namespace {

// Where each variable comes in a Keras layer's list (kernel, bias; gamma, beta, moving_mean,
// moving_variance...): the manifest's own order is the writer's (tfjs-converter sorts names).
int variable_rank(std::string var) {
  static const std::map<std::string, int> rank{
      {"kernel", 0}, {"depthwise_kernel", 0}, {"pointwise_kernel", 1}, {"bias", 2},  // convolutions, Dense
      {"gamma", 3},  {"beta", 4}, {"moving_mean", 5}, {"moving_variance", 6},         // normalisations
      {"alpha", 0},  {"mean", 0}, {"variance", 1},    {"count", 2}};                  // PReLU, Normalization
  auto it = rank.find(var);
  if (it == rank.end()) {  // "kernel_1": a writer's suffix for a repeated name
    const size_t underscore = var.rfind('_');
    if (underscore != std::string::npos && underscore + 1 < var.size() &&
        var.find_first_not_of("0123456789", underscore + 1) == std::string::npos)
      it = rank.find(var.substr(0, underscore));
  }
  return it == rank.end() ? -1 : it->second;
}

std::string join_names(const LayerScope& scope, size_t from) {
  std::string out;
  for (size_t i = from; i < scope.size(); ++i) out += (i > from ? "/" : "") + scope[i].name;
  return out;
}

class TfjsSource : public WeightSource {
 public:
  explicit TfjsSource(const TfjsWeights& weights) : weights_(weights) {
    const auto& specs = weights.specs();
    for (size_t i = 0; i < specs.size(); ++i) {
      std::string name = specs[i].name;
      if (name.size() > 2 && name.compare(name.size() - 2, 2, ":0") == 0) name.resize(name.size() - 2);
      const size_t slash = name.rfind('/');
      if (slash == std::string::npos || specs[i].optimizer) continue;  // not a layer's variable
      by_layer_[name.substr(0, slash)].push_back({i, variable_rank(name.substr(slash + 1))});
    }
  }

  // The layer's weights: named after its path of names from the root ("model1/Conv1/kernel"),
  // a shorter tail of it ("Conv1/kernel", what tfjs-layers writes), or under one prefix the scope
  // does not know (the root model's name, as Keras 3's h5 writes it).
  Variables layer_variables(const LayerScope& scope) const override {
    const std::vector<Entry>* found = nullptr;
    for (size_t from = 0; from < scope.size() && !found; ++from) {
      auto it = by_layer_.find(join_names(scope, from));
      if (it != by_layer_.end()) found = &it->second;
    }
    for (size_t from = 0; from < scope.size() && !found; ++from) found = only_under_prefix(join_names(scope, from));
    Variables v;
    v.where = "weightsManifest entries " + join_names(scope, 0) + "/*";
    if (!found) return v;
    std::vector<Entry> entries = *found;
    const bool known = std::all_of(entries.begin(), entries.end(), [](const Entry& e) { return e.rank >= 0; });
    if (known) std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.rank < b.rank; });
    size_t total = 0;
    for (const Entry& e : entries) total += static_cast<size_t>(engine::shape_numel(weights_.specs()[e.index].shape));
    if (scratch_.size() < total) scratch_.resize(total);
    size_t offset = 0;
    for (const Entry& e : entries) {
      const engine::Shape& shape = weights_.specs()[e.index].shape;
      weights_.read_into(e.index, scratch_.data() + offset);
      v.values.push_back(engine::Tensor::view(engine::DType::f32, shape, scratch_.data() + offset));
      offset += static_cast<size_t>(engine::shape_numel(shape));
    }
    v.scratch_begin = scratch_.data();
    v.scratch_end = scratch_.data() + scratch_.size();
    return v;
  }

 private:
  struct Entry {
    size_t index;
    int rank;
  };

  // The weights of the one layer named "<prefix>/<path>", or null when none or several are.
  const std::vector<Entry>* only_under_prefix(const std::string& path) const {
    const std::vector<Entry>* found = nullptr;
    for (const auto& [stem, entries] : by_layer_)
      if (stem.size() > path.size() && stem.compare(stem.size() - path.size(), path.size(), path) == 0 &&
          stem[stem.size() - path.size() - 1] == '/') {
        if (found) return nullptr;
        found = &entries;
      }
    return found;
  }

  const TfjsWeights& weights_;
  std::map<std::string, std::vector<Entry>> by_layer_;  // "model1/Conv1" -> its weights, manifest order
  mutable std::vector<float> scratch_;
};

}  // namespace

std::unique_ptr<WeightSource> tfjs_weight_source(const TfjsWeights& weights) { return std::make_unique<TfjsSource>(weights); }

}  // namespace keras

namespace {

std::string quantization_summary(const keras::TfjsWeights& weights) {
  using S = keras::TfjsWeights::Stored;
  std::vector<std::string> kinds;
  for (const auto& s : weights.specs()) {
    const char* k = s.stored == S::u8 ? "uint8" : s.stored == S::u16 ? "uint16" : s.stored == S::f16 ? "float16" : nullptr;
    if (k && std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(k);
  }
  std::string out;
  for (const std::string& k : kinds) out += (out.empty() ? "" : ", ") + k;
  return out.empty() ? "none" : out;
}

}  // namespace

engine::Graph load_tfjs(const std::string& path, TfjsModelInfo* info) {
  const std::string text = read_model_json(path);
  try {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) fail(path, "is not valid JSON");
    if (!j.is_object() || !j.contains("modelTopology") || !j.contains("weightsManifest"))
      fail(path, "is a JSON file but not a TensorFlow.js model (it needs 'modelTopology' and 'weightsManifest')");
    const json& topology = j["modelTopology"];
    if (string_field(j, "format") == "graph-model" || (topology.is_object() && topology.contains("node")))
      fail(path,
           "is a TensorFlow.js graph model (a converted SavedModel or frozen graph): Dermal reads TensorFlow.js layers "
           "models, whose topology is a Keras model (tensorflowjs_converter --output_format=tfjs_layers_model)",
           ErrorKind::unsupported);
    if (!topology.is_object()) fail(path, "modelTopology is not a Keras model config");
    // tfjs-converter wraps the config: {keras_version, backend, model_config, training_config}.
    const json& model = topology.contains("model_config") ? topology["model_config"] : topology;
    if (!model.is_object() || !model.contains("class_name") || !model.contains("config"))
      fail(path, "modelTopology holds no Keras model config (class_name and config)");
    std::string version = string_field(topology, "keras_version");
    if (version.empty()) version = "unknown";

    keras::TfjsWeights weights(j["weightsManifest"], path);
    auto source = keras::tfjs_weight_source(weights);
    engine::Graph g;
    try {
      g = load_keras_config(model.dump(), "'" + path + "': modelTopology", *source, version, info ? &info->keras : nullptr);
    } catch (const Error& e) {  // a layer's message: name the file too
      const std::string message = e.what();
      throw Error(e.kind(), message.find(path) == std::string::npos ? "'" + path + "': " + message : message);
    }
    if (info) {
      info->keras.container = "tfjs";
      info->keras.backend = string_field(topology, "backend");
      info->generated_by = string_field(j, "generatedBy");
      info->converted_by = string_field(j, "convertedBy");
      info->quantization = quantization_summary(weights);
      info->weight_bytes = static_cast<int64_t>(weights.total_bytes());
    }
    return g;
  } catch (const json::exception& e) {  // a value of an unexpected type anywhere in model.json
    fail(path, e.what());
  }
}

}  // namespace dermal::formats
