#include "formats/keras/keras_layer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace dermal::formats::keras {

using engine::Attributes;
using engine::DType;
using engine::Shape;
using engine::Tensor;

std::string GraphBuilder::unique(const std::string& name) {
  auto it = used_.find(name);
  if (it == used_.end()) {
    used_[name] = 0;
    return name;
  }
  for (int k = it->second + 1;; ++k) {
    std::string candidate = name + "_" + std::to_string(k);
    if (!used_.count(candidate)) {
      it->second = k;
      used_[candidate] = 0;
      return candidate;
    }
  }
}

std::string GraphBuilder::op(const std::string& type, std::vector<std::string> inputs, const std::string& out,
                             const Attributes& attrs, int opset) {
  std::string name = unique(out);
  graph.add_node(type, name, std::move(inputs), {name}, attrs, opset);
  return name;
}

std::string GraphBuilder::constant(const std::string& name, Tensor value) {
  std::string unique_name = unique(name);
  graph.constants[unique_name] = std::move(value);
  return unique_name;
}

Shape GraphBuilder::static_shape(const std::string& tensor) const {
  if (auto c = graph.constants.find(tensor); c != graph.constants.end()) return c->second.shape();
  for (const auto& in : graph.inputs)
    if (in.name == tensor) {
      Shape s = in.shape;
      if (!s.empty()) s[0] = 1;
      for (int64_t d : s)
        if (d < 0) return {};
      return s;
    }
  const engine::Node* n = graph.producer(tensor);
  if (!n) return {};
  std::vector<engine::TensorInfo> infos;
  std::vector<const Tensor*> known;
  for (const auto& name : n->inputs) {
    if (name.empty()) {
      infos.push_back({});
      known.push_back(nullptr);
      continue;
    }
    auto c = graph.constants.find(name);
    const Shape s = static_shape(name);
    if (s.empty() && c == graph.constants.end()) return {};
    infos.push_back({c != graph.constants.end() ? c->second.dtype() : DType::f32, s});
    known.push_back(c != graph.constants.end() ? &c->second : nullptr);
  }
  const auto out = n->op->infer(infos, known);
  for (size_t k = 0; k < n->outputs.size() && k < out.size(); ++k)
    if (n->outputs[k] == tensor) return out[k].shape;
  return {};
}

int stored_axis(int keras_axis, int rank) {
  const int a = keras_axis < 0 ? keras_axis + rank : keras_axis;
  if (a < 0 || a >= rank) return -1;
  static const int nchw[4] = {0, 2, 3, 1};  // N,H,W,C -> positions in N,C,H,W
  return rank == 4 ? nchw[a] : a;
}

Tensor permuted(const Tensor& t, const std::vector<int>& perm, const Shape& as_shape) {
  const Shape& in = t.shape();
  const size_t r = in.size();
  Shape out(r);
  for (size_t i = 0; i < r; ++i) out[i] = in[static_cast<size_t>(perm[i])];
  DERMAL_ASSERT(as_shape.empty() || engine::shape_numel(as_shape) == t.numel());
  Tensor dst = Tensor::zeros(DType::f32, as_shape.empty() ? out : as_shape);
  std::vector<int64_t> in_strides(r, 1);
  for (size_t i = r; i-- > 1;) in_strides[i - 1] = in_strides[i] * in[i];
  // Walk the output in order; step the matching input offset per output dim.
  std::vector<int64_t> step(r), idx(r, 0);
  for (size_t i = 0; i < r; ++i) step[i] = in_strides[static_cast<size_t>(perm[i])];
  const float* src = t.data<float>();
  float* d = dst.data<float>();
  const int64_t n = dst.numel();
  int64_t offset = 0;
  for (int64_t k = 0; k < n; ++k) {
    d[k] = src[offset];
    for (size_t i = r; i-- > 0;) {
      if (++idx[i] < out[i]) {
        offset += step[i];
        break;
      }
      offset -= step[i] * (out[i] - 1);
      idx[i] = 0;
    }
  }
  return dst;
}

Tensor broadcastable(const Tensor& param, std::vector<int> keras_axes, int rank) {
  for (int& a : keras_axes) a = a < 0 ? a + rank : a;
  Shape shape(static_cast<size_t>(rank), 1);
  if (param.numel() == 1) return Tensor::from_floats(shape, {param.data<float>()[0]});
  if (param.rank() != static_cast<int>(keras_axes.size())) return Tensor();
  // Order the parameter's dims by where their axes sit in the graph's layout.
  std::vector<int> order(keras_axes.size());
  std::iota(order.begin(), order.end(), 0);
  auto where = [&](int i) { return stored_axis(keras_axes[static_cast<size_t>(i)], rank); };
  std::sort(order.begin(), order.end(), [&](int x, int y) { return where(x) < where(y); });
  for (size_t i = 0; i < keras_axes.size(); ++i) {
    if (where(static_cast<int>(i)) < 0) return Tensor();
    shape[static_cast<size_t>(where(static_cast<int>(i)))] = param.shape()[i];
  }
  return permuted(param, order, shape);
}

// ---- LayerCall ----

void LayerCall::fail(const std::string& message, ErrorKind kind) const {
  throw Error(kind, "Keras layer '" + layer_name + "' (" + class_name + ", Keras " + keras_version + "): " + message);
}

const KTensor& LayerCall::in(size_t i) const {
  if (i >= inputs.size())
    fail("takes " + std::to_string(i + 1) + " input(s), the model gives it " + std::to_string(inputs.size()), ErrorKind::invalid_model);
  return inputs[i];
}

void LayerCall::need_rank(int rank) const {
  if (in().rank != rank)
    fail("needs a rank-" + std::to_string(rank) + " input (batch included), got rank " + std::to_string(in().rank));
}

const json& LayerCall::cfg(const std::string& key) const {
  static const json null_value;
  if (!config || !config->is_object()) return null_value;
  auto it = config->find(key);
  return it == config->end() ? null_value : *it;
}

bool LayerCall::flag(const std::string& key, bool fallback) const {
  const json& v = cfg(key);
  if (v.is_null()) return fallback;
  if (!v.is_boolean()) fail("config '" + key + "' is not true/false", ErrorKind::invalid_model);
  return v.get<bool>();
}

double LayerCall::number(const std::string& key, double fallback) const {
  const json& v = cfg(key);
  if (v.is_null()) return fallback;
  if (!v.is_number()) fail("config '" + key + "' is not a number", ErrorKind::invalid_model);
  return v.get<double>();
}

std::vector<int64_t> LayerCall::ints(const std::string& key, size_t n, std::vector<int64_t> fallback) const {
  const json& v = cfg(key);
  if (v.is_null()) return fallback;
  if (v.is_number_integer()) return std::vector<int64_t>(n, v.get<int64_t>());
  std::vector<int64_t> out;
  if (v.is_array())
    for (const json& e : v) {
      if (!e.is_number_integer()) fail("config '" + key + "' is not a list of integers", ErrorKind::invalid_model);
      out.push_back(e.get<int64_t>());
    }
  if (out.size() != n) fail("config '" + key + "' should hold " + std::to_string(n) + " integers", ErrorKind::invalid_model);
  return out;
}

std::string LayerCall::str(const std::string& key, const std::string& fallback) const {
  const json& v = cfg(key);
  if (v.is_null()) return fallback;
  if (!v.is_string()) fail("config '" + key + "' is not a string", ErrorKind::invalid_model);
  return v.get<std::string>();
}

void LayerCall::need_channels_last() const {
  const std::string format = str("data_format", "channels_last");
  if (format != "channels_last") fail("data_format '" + format + "' is not supported (only channels_last)");
}

std::vector<Tensor> LayerCall::weights(int count) const {
  loaded_ = load_weights ? load_weights() : Variables{};
  const Variables& v = loaded_;
  if (count >= 0 && static_cast<int>(v.values.size()) != count)
    fail("expects " + std::to_string(count) + " weight(s), the file has " + std::to_string(v.values.size()) +
             (v.where.empty() ? "" : " at '" + v.where + "'"),
         ErrorKind::invalid_model);
  return v.values;
}

std::string LayerCall::op(const std::string& type, std::vector<std::string> op_inputs, const std::string& name,
                          const Attributes& attrs, int opset) const {
  return b->op(type, std::move(op_inputs), name, attrs, opset);
}

std::string LayerCall::constant(const std::string& suffix, Tensor value) const {
  if (loaded_.is_view(value)) value = value.clone();  // a weight used as it is: the graph owns a copy
  return b->constant(out + "/" + suffix, std::move(value));
}

std::string LayerCall::scalar(const std::string& suffix, float v) const {
  return constant(suffix, Tensor::from_floats({}, {v}));
}

namespace {

// "relu", or a Keras 3 serialized function {"class_name": "function", "config": "relu"}.
std::string activation_name(const json& act) {
  if (act.is_null()) return "linear";
  if (act.is_string()) return act.get<std::string>();
  if (act.is_object()) {
    const json& c = act.contains("config") ? act["config"] : json();
    if (c.is_string()) return c.get<std::string>();
    if (c.is_object() && c.contains("name") && c["name"].is_string()) return c["name"].get<std::string>();
    if (act.contains("class_name") && act["class_name"].is_string()) return act["class_name"].get<std::string>();
  }
  return "?";
}

Attributes attrs_of(std::initializer_list<std::pair<const char*, engine::AttrValue>> values) {
  Attributes a;
  for (const auto& [k, v] : values) a.set(k, v);
  return a;
}

}  // namespace

std::string LayerCall::main_out(const json& act) const {
  const std::string name = activation_name(act);
  return name == "linear" ? out : out + "/preact";
}

KTensor LayerCall::activation(const KTensor& x, const json& act) const {
  const std::string name = activation_name(act);
  const std::vector<std::string> in1 = {x.name};
  auto unary = [&](const char* type, const Attributes& a = {}, int opset = 13) {
    return KTensor{op(type, in1, out, a, opset), x.rank};
  };
  if (name == "linear") return x;
  if (name == "relu") return unary("Relu");
  if (name == "relu6") return unary("Clip", attrs_of({{"min", 0.0}, {"max", 6.0}}), 6);
  if (name == "sigmoid") return unary("Sigmoid");
  if (name == "tanh") return unary("Tanh");
  if (name == "elu") return unary("Elu", attrs_of({{"alpha", 1.0}}));
  if (name == "selu") return unary("Selu");
  if (name == "softplus") return unary("Softplus");
  if (name == "exponential") return unary("Exp");
  if (name == "leaky_relu") return unary("LeakyRelu", attrs_of({{"alpha", 0.2}}));
  // Keras 3 changed hard_sigmoid from 0.2x + 0.5 to relu6(x + 3) / 6.
  if (name == "hard_sigmoid")
    return unary("HardSigmoid", attrs_of({{"alpha", keras_major >= 3 ? 1.0 / 6.0 : 0.2}, {"beta", 0.5}}));
  if (name == "hard_swish" || name == "hard_silu") return unary("HardSwish");
  if (name == "softmax" || name == "log_softmax")
    return unary(name == "softmax" ? "Softmax" : "LogSoftmax", attrs_of({{"axis", int64_t{stored_axis(-1, x.rank)}}}));
  if (name == "swish" || name == "silu") {
    std::string s = op("Sigmoid", in1, out + "/sigmoid");
    return KTensor{op("Mul", {x.name, s}, out), x.rank};
  }
  if (name == "gelu") {  // exact form: x/2 * (1 + erf(x / sqrt(2)))
    std::string t = op("Mul", {x.name, scalar("inv_sqrt2", static_cast<float>(1.0 / std::sqrt(2.0)))}, out + "/scaled");
    std::string e = op("Erf", {t}, out + "/erf");
    std::string a = op("Add", {e, scalar("one", 1.0f)}, out + "/erf_plus_1");
    std::string m = op("Mul", {x.name, a}, out + "/x_times");
    return KTensor{op("Mul", {m, scalar("half", 0.5f)}, out), x.rank};
  }
  fail("activation '" + name + "' is not supported (supported: linear, relu, relu6, sigmoid, hard_sigmoid, swish/silu, "
       "hard_swish, gelu, tanh, elu, selu, softplus, exponential, leaky_relu, softmax, log_softmax)");
}

// ---- the table ----

namespace {

std::map<std::string, LayerConverter>& table() {
  static std::map<std::string, LayerConverter> t;
  return t;
}

}  // namespace

// A class registered twice is a programming error, refused like a duplicate op (OpRegistry::add):
// the table would keep whichever file's static initialiser ran last. Nothing is added unless
// every entry is new.
LayerRegistration::LayerRegistration(std::initializer_list<std::pair<const char*, LayerConverter>> entries) {
  std::set<std::string> names;
  for (const auto& entry : entries)
    if (table().count(entry.first) != 0 || !names.insert(entry.first).second)
      throw Error(ErrorKind::internal, std::string("internal error: Keras layer class '") + entry.first +
                                           "' is registered twice");
  for (const auto& [name, fn] : entries) table()[name] = fn;
}

const LayerConverter* find_layer_converter(const std::string& class_name) {
  auto it = table().find(class_name);
  return it == table().end() ? nullptr : &it->second;
}

std::vector<std::string> supported_layer_classes() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : table()) names.push_back(name);
  return names;
}

}  // namespace dermal::formats::keras
