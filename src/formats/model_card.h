// The model card: what a classifier's outputs mean and how its input must be prepared. It comes
// from a sidecar JSON beside the model (`x.onnx` + `x.json`), or from the ONNX metadata key
// "dermal_card" holding the same JSON. A card whose label count differs from the model's
// outputs is an error at load.
//
//   formats::LoadedModel m = formats::load_model("models/skinnet_mnv2_ham_isic224.onnx");
//   formats::ModelCard card = formats::load_model_card("models/skinnet_mnv2_ham_isic224.onnx", m);
//   card.labels[4].code == "mel";
//
// JSON fields (all but labels optional):
//   labels: [{code, name, malignant}] or ["akiec", ...]
//   input: {name, width, height, layout: "nchw" | "nhwc", channels: 1 | 3}: what the card leaves
//     out comes from the model (its declared layout, the channel axis of its input's shape)
//   preprocess: {mode: "caffe" | "tf" | "torch" | "raw"} or {resize: "bilinear" | "area" |
//     "nearest", keep_aspect, scale, mean[3], std[3], channel_order: "rgb" | "bgr"}:
//     x = (pixel * scale - mean) / std, per channel
//   explain: {layer: "auto" | tensor or node name}
//   temperature: softmax temperature (probabilities = softmax(logits / T))
//   logit_offsets: {code: b}: the card's operating point, added to the temperature-scaled logits
//     (probabilities = softmax(logits / T + b)). An offset b multiplies that class's odds by e^b,
//     as a prior shift would: {"mel": 0.4} flags melanoma more readily, for a stated recall fitted
//     on validation data. Codes must be the card's labels; classes not named get 0.
//   precision: "f32" (default) or "bf16": the convolutions' precision (engine::Precision), for a
//     model whose bf16 agreement with f32 has been measured (bench/bf16_agreement.py)
//   f32_nodes: [node names]: in bf16, these convolutions stay f32 (tools/bf16_calibrate.py)
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "formats/model_loader.h"

namespace dermal::formats {

struct LabelInfo {
  std::string code;  // "mel"
  std::string name;  // "Melanoma"
  bool malignant = false;
};

struct PreprocessSpec {
  int width = 0, height = 0;
  std::string resize = "bilinear";  // bilinear (antialiased when shrinking) | area | nearest
  bool keep_aspect = false;         // resize the short side, then centre-crop
  double scale = 1.0 / 255.0;
  std::array<double, 3> mean{0, 0, 0};
  std::array<double, 3> std{1, 1, 1};
  bool bgr = false;
  bool nhwc = false;
  int channels = 3;  // 1: grayscale (ITU-R 601 luma, as PIL's convert("L")), 3: RGB (or BGR)
};

struct ModelCard {
  std::string name;
  std::string description;
  std::string license;
  std::string source;  // where the card came from: a file path, "onnx metadata" or "defaults"
  std::vector<LabelInfo> labels;
  std::string input_name;
  std::string stated_layout;  // input.layout as the card states it; "" leaves it to the model
  int stated_channels = 0;    // input.channels as the card states it; 0 leaves it to the model
  PreprocessSpec preprocess;
  std::string explain_layer = "auto";
  double temperature = 1.0;
  std::vector<std::pair<std::string, double>> logit_offsets;  // code -> offset, as the card lists them
  std::string precision = "f32";  // f32 | bf16
  std::vector<std::string> f32_nodes;  // engine::PlanOptions::f32_nodes
  std::string metrics_json;  // as written in the card, for display
};

// What the command line can say over the card: `--labels` and `--preprocess` (a Keras mode), for
// bare Keras applications that come without one.
struct CardOverrides {
  std::vector<std::string> labels;  // codes, in output order
  std::string preprocess_mode;      // caffe | tf | torch | raw
  double temperature = 0;           // > 0: replaces the card's (e.g. 1 to see the uncalibrated model)
  std::string precision;            // f32 | bf16; empty keeps the card's
  std::optional<std::vector<std::string>> f32_nodes;  // replaces the card's when set
  // Replaces the card's when set (empty: none, to see the model without its operating point).
  std::optional<std::vector<std::pair<std::string, double>>> logit_offsets;
};

// Parses card JSON; `source` names it in error messages.
ModelCard parse_model_card(const std::string& json_text, const std::string& source);
// Applies a Keras preprocessing mode (caffe, tf, torch, raw) to spec.
void apply_preprocess_mode(PreprocessSpec& spec, const std::string& mode);
// Finds the card for a model (sidecar, then metadata, then defaults from the graph), fills what
// the card leaves out from the graph (input name and size, layout) and checks the input size
// against the graph's when fixed. The label count is checked by fit_labels once the caller has
// planned the model (Classifier::load does), so the model is planned only once.
ModelCard load_model_card(const std::string& model_path, const LoadedModel& model, const CardOverrides& overrides = {});
// Same, with an explicit card file (--card).
ModelCard load_model_card_file(const std::string& card_path, const LoadedModel& model,
                               const CardOverrides& overrides = {});
// Checks the labels against the number of logits (an error when they differ), or names the
// classes class_0... when the card gave none.
// Then checks that logit_offsets names only the card's labels.
void fit_labels(ModelCard& card, int64_t classes);
// The card's logit offsets in label order (0 for a class it does not name).
std::vector<double> logit_offsets_by_label(const ModelCard& card);

}  // namespace dermal::formats
