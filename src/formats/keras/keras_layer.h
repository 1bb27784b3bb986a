// What a Keras layer's converter sees, and the table of converters (one small function per
// Keras layer class, in keras_layers*.cpp).
//
// Keras tensors are channels-last; the engine runs NCHW. A rank-4 Keras tensor (N,H,W,C) is
// held as NCHW in the graph; every other rank keeps Keras' order. Converters map Keras axes
// with stored_axis() and name their output tensor `call.out` (the layer's name), helper tensors
// `call.out + "/what"`.
//
//   KTensor dense(LayerCall& c) {
//     auto w = c.weights(c.flag("use_bias", true) ? 2 : 1);
//     ...
//     return c.activation(y, c.cfg("activation"));
//   }
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "formats/keras/keras_weights.h"

namespace dermal::formats::keras {

using nlohmann::json;

// A tensor of the Keras model, as held in the graph.
struct KTensor {
  std::string name;
  int rank = 0;  // Keras rank, batch included
};

// Adds nodes and constants to the graph with unique names.
class GraphBuilder {
 public:
  explicit GraphBuilder(engine::Graph& g) : graph(g) {}
  // One node with one output named `out` (made unique); returns the output's name.
  std::string op(const std::string& type, std::vector<std::string> inputs, const std::string& out,
                 const engine::Attributes& attrs = {}, int opset = 13);
  std::string constant(const std::string& name, engine::Tensor value);
  std::string unique(const std::string& name);  // `name`, or `name_1`, `name_2`... if taken
  bool taken(const std::string& name) const { return used_.count(name) != 0; }
  // A tensor's shape in the graph built so far (batch 1), from the inputs' stated shapes through
  // each op's own shape rule; empty when a dimension other than the batch is not stated. For
  // layers whose nodes depend on the size of their input (CenterCrop, crop_to_aspect_ratio).
  engine::Shape static_shape(const std::string& tensor) const;
  void reserve(const std::string& name) { used_.insert({name, 0}); }

  engine::Graph& graph;

 private:
  std::map<std::string, int> used_;
};

// Keras axis (negative counts from the end) -> the axis in the graph's layout.
int stored_axis(int keras_axis, int rank);
// A per-axis parameter (shape = the sizes of `keras_axes`, in Keras order) reshaped and permuted
// so that it broadcasts against a tensor of `rank` in the graph's layout.
engine::Tensor broadcastable(const engine::Tensor& param, std::vector<int> keras_axes, int rank);
// Transposes a weight into a new tensor: out dim i = in dim perm[i]; `as_shape`, when given, is
// the result's shape instead (same element order: a reshape for free).
engine::Tensor permuted(const engine::Tensor& t, const std::vector<int>& perm, const engine::Shape& as_shape = {});

struct LayerCall {
  std::string class_name;
  std::string layer_name;
  const json* config = nullptr;
  std::vector<KTensor> inputs;
  std::string out;  // the name the layer's output takes
  std::string keras_version;
  int keras_major = 3;
  GraphBuilder* b = nullptr;
  std::function<Variables()> load_weights;

  [[noreturn]] void fail(const std::string& message, ErrorKind kind = ErrorKind::unsupported) const;
  const KTensor& in(size_t i = 0) const;
  void need_rank(int rank) const;  // the input has this Keras rank
  // Config values. int/ints accept a number or a list ("kernel_size": 3 or [3, 3]).
  const json& cfg(const std::string& key) const;  // null when absent
  bool has(const std::string& key) const { return !cfg(key).is_null(); }
  bool flag(const std::string& key, bool fallback) const;
  double number(const std::string& key, double fallback) const;
  std::vector<int64_t> ints(const std::string& key, size_t n, std::vector<int64_t> fallback) const;
  std::string str(const std::string& key, const std::string& fallback) const;
  void need_channels_last() const;  // data_format must be channels_last
  // The layer's variables (views, valid while this layer converts: constant() copies them);
  // fails unless there are `count` of them (or any count when -1).
  std::vector<engine::Tensor> weights(int count) const;
  // Applies a Keras activation (a name, or a serialized function) to x; the result is `out`.
  // x should be named `out + "/preact"` unless the activation is linear (see main_out).
  KTensor activation(const KTensor& x, const json& act) const;
  std::string main_out(const json& act) const;
  // Shorthands that name the node after this layer.
  std::string op(const std::string& type, std::vector<std::string> inputs, const std::string& out,
                 const engine::Attributes& attrs = {}, int opset = 13) const;
  std::string constant(const std::string& suffix, engine::Tensor value) const;
  std::string scalar(const std::string& suffix, float v) const;

 private:
  mutable Variables loaded_;  // keeps the scratch range of the views weights() returned
};

using LayerConverter = std::function<KTensor(LayerCall&)>;
// The converter for a Keras class, or nullptr.
const LayerConverter* find_layer_converter(const std::string& class_name);
std::vector<std::string> supported_layer_classes();

// Registration: each keras_layers*.cpp file adds its converters to the table.
struct LayerRegistration {
  LayerRegistration(std::initializer_list<std::pair<const char*, LayerConverter>> entries);
};

}  // namespace dermal::formats::keras
