// Loads a model file into an engine graph ready to plan, whatever its format (detected from the
// bytes, not the file name), and applies the load-time graph passes.
//
//   formats::LoadedModel m = formats::load_model("models/skinnet_mnv2_ham_isic224.onnx");
//   engine::Executor ex(m.graph, opts);
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "engine/graph.h"

namespace dermal::formats {

struct LoadedModel {
  std::shared_ptr<const engine::Graph> graph;
  std::string format;    // "onnx", "keras" (.keras zip), "hdf5" (legacy Keras .h5) or "tfjs" (model.json)
  std::string producer;  // e.g. "pytorch 1.13", "keras 3.6.0"
  // How the format lays out an image input: "nhwc" for Keras ([-1, H, W, C]; the input's shape
  // gives the size the model was built for, -1 where it does not say); for ONNX, "nchw" by the
  // operators' convention, which image_layout refines per input from the graph.
  std::string input_layout = "nchw";
  int opset = 0;
  std::map<std::string, std::string> metadata;
  // The tensor holding class logits. When the model ends in a softmax, its input: gradients for
  // explanations must start from the logit, never from the saturating probability.
  std::string logits;
  bool output_is_probability = false;  // the graph's output is a softmax of `logits`
  int folded_batchnorms = 0;
  int removed_identities = 0;
  int held_weights = 0;  // convolution weights their ops hold packed (engine::hold_weights_in_ops)
  double load_ms = 0;
};

LoadedModel load_model(const std::string& path);
// The same for a file known to be ONNX (formats/onnx_model.cpp: no Keras, no HDF5).
LoadedModel load_onnx_model(const std::string& path);
// The load-time passes every format goes through, in order: Identity/Dropout removal, BatchNorm
// folding, weights handed to their ops, the logits found (find_logits); then m.graph and m.load_ms.
void finish_loading(engine::Graph g, LoadedModel& m, std::chrono::steady_clock::time_point start);
// How `input` holds an image, "nchw" or "nhwc", as the model declares it: Keras by its format; an
// ONNX graph by what first reads the input (a Transpose with perm [0,3,1,2], as converters from
// TensorFlow write, makes it NHWC; a Conv or pooling, NCHW), through elementwise steps such as a
// Cast or a normalising Sub/Div; and only when nothing decides, by which axis holds 1 or 3.
std::string image_layout(const LoadedModel& m, const std::string& input);
// Sets m.logits / m.output_is_probability from the graph's first output.
void find_logits(const engine::Graph& g, LoadedModel& m);

}  // namespace dermal::formats
