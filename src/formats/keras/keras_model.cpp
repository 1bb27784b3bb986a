#include "formats/keras/keras_model.h"

#include <cstdlib>
#include <map>
#include <tuple>

namespace dermal::formats::keras {

namespace {

const json& field(const json& obj, const std::string& key) {
  static const json null_value;
  if (!obj.is_object()) return null_value;
  auto it = obj.find(key);
  return it == obj.end() ? null_value : *it;
}

// A model's config: {"class_name": ..., "config": {...}}; Keras 2.1 Sequential: a bare list.
const json& layers_of(const json& model) {
  const json& cfg = field(model, "config");
  return cfg.is_array() ? cfg : field(cfg, "layers");
}

// Keras 3 saving keys: snake-cased class, then _1, _2... within one model's layer list.
std::vector<std::string> saving_keys(const json& layers) {
  std::map<std::string, int> used;
  std::vector<std::string> keys;
  for (const json& layer : layers) {
    std::string key = snake_case(class_name(layer));
    auto it = used.find(key);
    if (it == used.end()) used[key] = 0;
    else key.append("_").append(std::to_string(++it->second));
    keys.push_back(key);
  }
  return keys;
}

// The input's batch shape as a Keras layer config states it, or null.
json batch_shape_of(const json& cfg) {
  for (const char* key : {"batch_shape", "batch_input_shape"})
    if (field(cfg, key).is_array()) return field(cfg, key);
  for (const char* key : {"input_shape", "shape"})
    if (field(cfg, key).is_array()) {
      json s = json::array({nullptr});
      for (const json& d : field(cfg, key)) s.push_back(d);
      return s;
    }
  return nullptr;
}

// The input shape a model's first layer declares; for a nested model, that of its own input.
json first_input_shape(const json& layer) {
  const std::string cls = class_name(layer);
  if (cls == "Sequential") {
    const json& layers = layers_of(layer);
    if (layers.empty()) return nullptr;
    json s = batch_shape_of(field(layers[0], "config"));
    return s.is_null() ? first_input_shape(layers[0]) : s;
  }
  if (cls == "Functional" || cls == "Model") {
    const json& inputs = field(field(layer, "config"), "input_layers");
    if (!inputs.is_array() || inputs.empty()) return nullptr;
    const json& first = inputs[0].is_string() ? inputs : inputs[0];
    for (const json& l : layers_of(layer))
      if (!first.empty() && layer_name(l) == first[0]) return batch_shape_of(field(l, "config"));
  }
  return batch_shape_of(field(layer, "config"));
}

using TensorKey = std::tuple<std::string, int, int>;  // layer, node, tensor index

TensorKey ref_of(const json& history) {
  if (!history.is_array() || history.size() < 3 || !history[0].is_string() || !history[1].is_number_integer() ||
      !history[2].is_number_integer())
    throw Error(ErrorKind::invalid_model, "Keras config: a layer input reference is malformed: " + history.dump());
  return {history[0].get<std::string>(), history[1].get<int>(), history[2].get<int>()};
}

// Keras 3 node args: tensors are {"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}.
void collect_keras3_refs(const json& v, std::vector<TensorKey>& out) {
  if (v.is_object()) {
    if (field(v, "class_name") == "__keras_tensor__") {
      out.push_back(ref_of(field(field(v, "config"), "keras_history")));
      return;
    }
    for (const auto& [k, e] : v.items()) collect_keras3_refs(e, out);
  } else if (v.is_array()) {
    for (const json& e : v) collect_keras3_refs(e, out);
  }
}

// The inputs of one saved call: Keras 2 [[name, node, tensor, kwargs], ...], Keras 3 {args, kwargs}.
std::vector<TensorKey> node_inputs(const json& node) {
  std::vector<TensorKey> refs;
  if (node.is_object()) collect_keras3_refs(field(node, "args"), refs);
  else if (node.is_array())
    for (const json& r : node) refs.push_back(ref_of(r));
  return refs;
}

// input_layers / output_layers: [[name, node, tensor], ...] or a single [name, node, tensor].
std::vector<TensorKey> endpoint_refs(const json& v) {
  std::vector<TensorKey> refs;
  if (!v.is_array()) return refs;
  if (!v.empty() && v[0].is_string()) return {ref_of(v)};
  for (const json& r : v) refs.push_back(ref_of(r));
  return refs;
}

std::string key_str(const TensorKey& k) {
  return "'" + std::get<0>(k) + "' (node " + std::to_string(std::get<1>(k)) + ", tensor " + std::to_string(std::get<2>(k)) + ")";
}

}  // namespace

bool is_model_class(const std::string& c) { return c == "Functional" || c == "Model" || c == "Sequential"; }

std::string class_name(const json& layer) {
  const json& c = field(layer, "class_name");
  return c.is_string() ? c.get<std::string>() : "";
}

std::string layer_name(const json& layer) {
  const json& n = field(field(layer, "config"), "name");
  if (n.is_string()) return n.get<std::string>();
  const json& top = field(layer, "name");
  return top.is_string() ? top.get<std::string>() : "";
}

ModelWalker::ModelWalker(GraphBuilder& builder, const WeightSource& weights, std::string keras_version)
    : b_(builder), weights_(weights), version_(std::move(keras_version)) {
  major_ = std::atoi(version_.c_str());
  if (major_ <= 0) major_ = 2;
}

void ModelWalker::fail_layer(const json& layer, const std::string& message, ErrorKind kind) const {
  throw Error(kind, "Keras layer '" + layer_name(layer) + "' (" + class_name(layer) + ", Keras " + version_ + "): " + message);
}

void ModelWalker::check_supported(const json& model) const {
  for (const json& layer : layers_of(model)) {
    const std::string cls = class_name(layer);
    if (is_model_class(cls)) {
      check_supported(layer);
      continue;
    }
    if (cls == "InputLayer" || find_layer_converter(cls)) continue;
    if (cls == "Lambda")
      fail_layer(layer, "a Lambda layer holds Python code (pickled bytecode) that Dermal cannot run; "
                        "rebuild the model with built-in layers", ErrorKind::unsupported);
    if (cls == "TFOpLambda" || cls == "SlicingOpLambda")
      fail_layer(layer, "a raw TensorFlow operation inside a Keras model is not supported; use built-in layers",
                 ErrorKind::unsupported);
    const json& registered = field(layer, "registered_name");
    const json& module = field(layer, "module");
    const bool custom = (registered.is_string() && registered.get<std::string>().find('>') != std::string::npos) ||
                        (module.is_string() && module.get<std::string>().rfind("keras", 0) != 0);
    std::string supported;
    for (const std::string& s : supported_layer_classes()) supported += (supported.empty() ? "" : ", ") + s;
    fail_layer(layer, std::string(custom ? "a custom layer class: Dermal runs built-in Keras layers only"
                                         : "this Keras layer class is not supported") +
                          " (supported: InputLayer, Sequential, Functional, " + supported + ")",
               ErrorKind::unsupported);
  }
}

void ModelWalker::build_root(const json& model) {
  check_supported(model);
  std::vector<KTensor> outs = build(model, {}, nullptr);
  for (const KTensor& y : outs) {
    std::string name = y.name;
    if (y.rank == 4) {  // back to Keras' channels-last order at the model's edge
      engine::Attributes a;
      a.set("perm", std::vector<int64_t>{0, 2, 3, 1});
      name = b_.op("Transpose", {y.name}, y.name + "/nhwc", a);
    }
    if (!b_.graph.is_output(name)) b_.graph.outputs.push_back({name, engine::DType::f32, {}});
  }
}

KTensor ModelWalker::graph_input(const std::string& name, const json& batch_shape) {
  if (!batch_shape.is_array() || batch_shape.empty())
    throw Error(ErrorKind::unsupported, "Keras input '" + name + "': the model does not state its input shape");
  engine::Shape shape;
  for (const json& d : batch_shape) shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
  shape[0] = -1;
  const std::string input = b_.unique(name);
  b_.graph.inputs.push_back({input, engine::DType::f32, shape});
  const int rank = static_cast<int>(shape.size());
  if (rank != 4) return KTensor{input, rank};
  engine::Attributes a;  // the graph runs NCHW; the model's input stays N,H,W,C
  a.set("perm", std::vector<int64_t>{0, 3, 1, 2});
  return KTensor{b_.op("Transpose", {input}, input + "/nchw", a), 4};
}

std::vector<KTensor> ModelWalker::build(const json& model, const LayerScope& scope, const std::vector<KTensor>* inputs) {
  return class_name(model) == "Sequential" ? sequential(model, scope, inputs) : functional(model, scope, inputs);
}

std::vector<KTensor> ModelWalker::sequential(const json& model, const LayerScope& scope, const std::vector<KTensor>* inputs) {
  const json& layers = layers_of(model);
  const std::vector<std::string> keys = saving_keys(layers);
  std::vector<KTensor> x;
  if (inputs) {
    if (inputs->empty()) throw Error(ErrorKind::invalid_model, "Keras model '" + layer_name(model) + "' gets too few inputs");
    x = {inputs->front()};
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& layer = layers[i];
    if (class_name(layer) == "InputLayer") {
      if (x.empty()) x = {graph_input(layer_name(layer), batch_shape_of(field(layer, "config")))};
      continue;
    }
    if (x.empty()) {  // no InputLayer: the first layer, the model or its build config has the shape
      json shape = first_input_shape(layer);
      if (shape.is_null()) shape = field(field(model, "config"), "build_input_shape");
      if (shape.is_null()) shape = field(field(model, "build_config"), "input_shape");
      const json& name = field(field(model, "config"), "name");
      x = {graph_input((name.is_string() ? name.get<std::string>() : "input") + "_input", shape)};
    }
    x = call(layer, scope, ScopeLevel{layer_name(layer), keys[i]}, x, 0);
  }
  if (x.empty()) throw Error(ErrorKind::invalid_model, "Keras config: a Sequential model has no layers");
  return x;
}

std::vector<KTensor> ModelWalker::functional(const json& model, const LayerScope& scope, const std::vector<KTensor>* inputs) {
  const json& cfg = field(model, "config");
  const json& layers = layers_of(model);
  const std::vector<std::string> keys = saving_keys(layers);
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < layers.size(); ++i) index[layer_name(layers[i])] = i;
  // Nested models' own first node (their construction) is not saved, but Keras 2 still counts
  // it in references: a reference past the saved nodes means the one before.
  auto resolve = [&](TensorKey k) {
    auto it = index.find(std::get<0>(k));
    if (it != index.end() && is_model_class(class_name(layers[it->second]))) {
      const int saved = static_cast<int>(field(layers[it->second], "inbound_nodes").size());
      if (std::get<1>(k) >= saved && std::get<1>(k) > 0) --std::get<1>(k);
    }
    return k;
  };

  std::map<TensorKey, KTensor> ready;
  const std::vector<TensorKey> in_refs = endpoint_refs(field(cfg, "input_layers"));
  for (size_t k = 0; k < in_refs.size(); ++k) {
    const std::string& name = std::get<0>(in_refs[k]);
    if (inputs) {
      if (k >= inputs->size()) throw Error(ErrorKind::invalid_model, "Keras model '" + layer_name(model) + "' gets too few inputs");
      ready[{name, 0, 0}] = (*inputs)[k];
    } else {
      auto it = index.find(name);
      if (it == index.end()) throw Error(ErrorKind::invalid_model, "Keras config: input layer '" + name + "' is not in the model");
      ready[{name, 0, 0}] = graph_input(name, batch_shape_of(field(layers[it->second], "config")));
    }
  }

  struct Pending {
    size_t layer;
    int node;
    std::vector<TensorKey> refs;
  };
  std::vector<Pending> pending;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (class_name(layers[i]) == "InputLayer") continue;
    const json& nodes = field(layers[i], "inbound_nodes");
    for (size_t n = 0; n < nodes.size(); ++n) {
      std::vector<TensorKey> refs = node_inputs(nodes[n]);
      for (TensorKey& r : refs) r = resolve(r);
      pending.push_back({i, static_cast<int>(n), refs});
    }
  }
  // Run calls as their inputs become available (configs are topological, but cheaply checked).
  while (!pending.empty()) {
    bool progress = false;
    for (auto it = pending.begin(); it != pending.end();) {
      bool have_all = true;
      for (const TensorKey& r : it->refs) have_all = have_all && ready.count(r);
      if (!have_all) {
        ++it;
        continue;
      }
      std::vector<KTensor> args;
      for (const TensorKey& r : it->refs) args.push_back(ready.at(r));
      const json& layer = layers[it->layer];
      std::vector<KTensor> outs = call(layer, scope, ScopeLevel{layer_name(layer), keys[it->layer]}, args, it->node);
      for (size_t t = 0; t < outs.size(); ++t) ready[{layer_name(layer), it->node, static_cast<int>(t)}] = outs[t];
      it = pending.erase(it);
      progress = true;
    }
    if (!progress) {
      const Pending& p = pending.front();
      for (const TensorKey& r : p.refs)
        if (!ready.count(r)) fail_layer(layers[p.layer], "its input " + key_str(r) + " is never computed", ErrorKind::invalid_model);
    }
  }
  std::vector<KTensor> outs;
  for (const TensorKey& r : endpoint_refs(field(cfg, "output_layers"))) {
    auto it = ready.find(resolve(r));
    if (it == ready.end()) throw Error(ErrorKind::invalid_model, "Keras config: model output " + key_str(r) + " is never computed");
    outs.push_back(it->second);
  }
  if (outs.empty()) throw Error(ErrorKind::invalid_model, "Keras config: model '" + layer_name(model) + "' has no outputs");
  return outs;
}

std::vector<KTensor> ModelWalker::call(const json& layer, const LayerScope& scope, const ScopeLevel& level,
                                       const std::vector<KTensor>& inputs, int node) {
  LayerScope inner = scope;
  inner.push_back(level);
  const std::string cls = class_name(layer);
  if (is_model_class(cls)) return build(layer, inner, &inputs);

  // The output takes the layer's name; a name already used (a nested model repeating an outer
  // name) is qualified with the model path, and a shared layer's later calls get "/call<n>".
  std::string out = level.name.empty() ? snake_case(cls) : level.name;
  if (node > 0) out += "/call" + std::to_string(node);
  if (b_.taken(out) && !scope.empty()) {
    std::string path;
    for (const ScopeLevel& s : scope) path += s.name + "/";
    out = path + out;
  }
  LayerCall c;
  c.class_name = cls;
  c.layer_name = level.name;
  c.config = &field(layer, "config");
  c.inputs = inputs;
  c.out = out;
  c.keras_version = version_;
  c.keras_major = major_;
  c.b = &b_;
  c.load_weights = [this, inner] { return weights_.layer_variables(inner); };
  return {(*find_layer_converter(cls))(c)};
}

}  // namespace dermal::formats::keras
