#include "formats/model_card.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/executor.h"

namespace dermal::formats {

using nlohmann::json;

namespace {

[[noreturn]] void bad_card(const std::string& source, const std::string& what) {
  throw Error(ErrorKind::invalid_model, "model card " + source + ": " + what);
}

std::array<double, 3> triple(const json& j, const std::string& source, const char* field) {
  if (!j.is_array() || j.size() != 3) bad_card(source, std::string(field) + " must be a list of 3 numbers");
  std::array<double, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    if (!j[i].is_number()) bad_card(source, std::string(field) + " must be a list of 3 numbers");
    out[i] = j[i].get<double>();
  }
  return out;
}

// input.width / input.height: a whole number of pixels, or 0 (from the model).
int side(const json& in, const char* field, const std::string& source) {
  if (!in.contains(field)) return 0;
  const json& v = in[field];
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 16384)
    bad_card(source, std::string("input.") + field + " must be a whole number of pixels, at most 16384");
  return static_cast<int>(v.get<int64_t>());
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(ErrorKind::invalid_model, "cannot open model card '" + path + "'");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

void apply_preprocess_mode(PreprocessSpec& spec, const std::string& mode) {
  if (mode == "caffe") {  // Keras ResNet50, VGG: BGR, ImageNet means subtracted, no scaling
    spec.bgr = true;
    spec.scale = 1.0;
    spec.mean = {103.939, 116.779, 123.68};
    spec.std = {1, 1, 1};
  } else if (mode == "tf") {  // MobileNet, Xception, Inception: x / 127.5 - 1
    spec.bgr = false;
    spec.scale = 1.0 / 127.5;
    spec.mean = {1, 1, 1};
    spec.std = {1, 1, 1};
  } else if (mode == "torch") {  // DenseNet and PyTorch models: x / 255 then ImageNet mean/std
    spec.bgr = false;
    spec.scale = 1.0 / 255.0;
    spec.mean = {0.485, 0.456, 0.406};
    spec.std = {0.229, 0.224, 0.225};
  } else if (mode == "raw") {  // EfficientNet and models with Rescaling inside: 0-255 as is
    spec.bgr = false;
    spec.scale = 1.0;
    spec.mean = {0, 0, 0};
    spec.std = {1, 1, 1};
  } else {
    throw Error(ErrorKind::invalid_input, "unknown preprocessing mode '" + mode + "' (caffe, tf, torch or raw)");
  }
}

namespace {

ModelCard card_from_json(const json& j, const std::string& source) {
  ModelCard card;
  card.source = source;
  card.name = j.value("name", "");
  card.description = j.value("description", "");
  card.license = j.value("license", "");
  if (!j.contains("labels") || !j["labels"].is_array() || j["labels"].empty()) bad_card(source, "needs a non-empty 'labels' list");
  for (const auto& l : j["labels"]) {
    LabelInfo info;
    if (l.is_string()) {
      info.code = info.name = l.get<std::string>();
    } else if (l.is_object() && l.contains("code") && l["code"].is_string()) {
      info.code = l["code"].get<std::string>();
      info.name = l.value("name", info.code);
      info.malignant = l.value("malignant", false);
    } else {
      bad_card(source, "each label must be a string or {code, name, malignant}");
    }
    card.labels.push_back(info);
  }
  if (j.contains("input")) {
    const json& in = j["input"];
    if (!in.is_object()) bad_card(source, "input must be an object");
    card.input_name = in.value("name", "");
    card.preprocess.width = side(in, "width", source);
    card.preprocess.height = side(in, "height", source);
    card.stated_layout = in.value("layout", "");
    if (!card.stated_layout.empty() && card.stated_layout != "nchw" && card.stated_layout != "nhwc")
      bad_card(source, "input.layout must be nchw or nhwc");
    card.stated_channels = in.value("channels", 0);
    if (in.contains("channels") && card.stated_channels != 1 && card.stated_channels != 3)
      bad_card(source, "input.channels must be 1 (grayscale) or 3 (RGB)");
  }
  if (j.contains("preprocess")) {
    const json& p = j["preprocess"];
    if (!p.is_object()) bad_card(source, "preprocess must be an object");
    PreprocessSpec& s = card.preprocess;
    if (p.contains("mode")) {
      try {
        apply_preprocess_mode(s, p["mode"].get<std::string>());
      } catch (const Error& e) {
        bad_card(source, e.what());
      }
    }
    s.resize = p.value("resize", s.resize);
    if (s.resize != "bilinear" && s.resize != "area" && s.resize != "nearest")
      bad_card(source, "preprocess.resize must be bilinear, area or nearest");
    s.keep_aspect = p.value("keep_aspect", s.keep_aspect);
    s.scale = p.value("scale", s.scale);
    if (p.contains("mean")) s.mean = triple(p["mean"], source, "preprocess.mean");
    if (p.contains("std")) s.std = triple(p["std"], source, "preprocess.std");
    if (!std::isfinite(s.scale)) bad_card(source, "preprocess.scale must be a finite number");
    for (double v : s.mean)
      if (!std::isfinite(v)) bad_card(source, "preprocess.mean must hold finite numbers");
    for (double v : s.std)
      if (v == 0 || !std::isfinite(v)) bad_card(source, "preprocess.std must hold finite numbers other than 0");
    std::string order = p.value("channel_order", s.bgr ? "bgr" : "rgb");
    if (order != "rgb" && order != "bgr") bad_card(source, "preprocess.channel_order must be rgb or bgr");
    s.bgr = order == "bgr";
  }
  if (j.contains("explain")) {
    if (!j["explain"].is_object()) bad_card(source, "explain must be an object");
    card.explain_layer = j["explain"].value("layer", "auto");
  }
  card.temperature = j.value("temperature", 1.0);
  if (!(card.temperature > 0) || !std::isfinite(card.temperature)) bad_card(source, "temperature must be a positive number");
  if (j.contains("logit_offsets")) {
    const json& offsets = j["logit_offsets"];
    if (!offsets.is_object()) bad_card(source, "logit_offsets must be an object of class code: number");
    for (const auto& [code, b] : offsets.items()) {
      if (!b.is_number() || !std::isfinite(b.get<double>()))
        bad_card(source, "logit_offsets['" + code + "'] must be a finite number");
      card.logit_offsets.emplace_back(code, b.get<double>());
    }
  }
  card.precision = j.value("precision", card.precision);
  if (card.precision != "f32" && card.precision != "bf16") bad_card(source, "precision must be f32 or bf16");
  if (j.contains("f32_nodes")) {
    const json& nodes = j["f32_nodes"];
    if (!nodes.is_array() || !std::all_of(nodes.begin(), nodes.end(), [](const json& n) { return n.is_string(); }))
      bad_card(source, "f32_nodes must be a list of node names");
    card.f32_nodes = nodes.get<std::vector<std::string>>();
  }
  if (j.contains("metrics")) card.metrics_json = j["metrics"].dump(-1, ' ', false, json::error_handler_t::replace);
  return card;
}

}  // namespace

ModelCard parse_model_card(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) bad_card(source, "is not a JSON object");
  try {
    return card_from_json(j, source);
  } catch (const json::exception& e) {  // a field of the wrong type ("name": 3)
    bad_card(source, std::string("a field has the wrong type (") + e.what() + ")");
  }
}

namespace {

void apply_overrides(ModelCard& card, const CardOverrides& o) {
  if (!o.labels.empty()) {
    card.labels.clear();
    for (const auto& code : o.labels) card.labels.push_back({code, code, false});
    card.source += " + --labels";
  }
  if (!o.preprocess_mode.empty()) {
    apply_preprocess_mode(card.preprocess, o.preprocess_mode);
    card.source += " + --preprocess " + o.preprocess_mode;
  }
  if (o.temperature > 0) {
    card.temperature = o.temperature;
    card.source += " + --temperature";
  }
  if (!o.precision.empty() && o.precision != card.precision) {
    card.precision = engine::precision_name(engine::parse_precision(o.precision));  // refuses a bad name
    card.source += " + --precision " + o.precision;
  }
  if (o.f32_nodes) {
    card.f32_nodes = *o.f32_nodes;
    card.source += " + f32_nodes";
  }
  if (o.logit_offsets) {
    card.logit_offsets = *o.logit_offsets;
    card.source += " + --logit-offsets";
  }
}

// Completes the card from the graph and checks the two agree.
void reconcile(ModelCard& card, const LoadedModel& model) {
  const engine::Graph& g = *model.graph;
  if (g.inputs.empty()) throw Error(ErrorKind::invalid_model, "the model has no inputs");
  const engine::ValueInfo* input = &g.inputs[0];
  if (!card.input_name.empty()) {
    input = nullptr;
    for (const auto& in : g.inputs)
      if (in.name == card.input_name) input = &in;
    if (!input) bad_card(card.source, "input '" + card.input_name + "' is not an input of the model");
  }
  card.input_name = input->name;
  if (input->shape.size() != 4)
    throw Error(ErrorKind::unsupported, "input '" + input->name + "' has shape " + engine::shape_str(input->shape) +
                                            ": an image model needs a 4-D input");
  PreprocessSpec& p = card.preprocess;
  // The layout as the model declares it (or the card states it), never guessed from sizes alone:
  // a guess can put the channels on the width axis.
  const engine::Shape& s = input->shape;
  const std::string layout = card.stated_layout.empty() ? image_layout(model, input->name) : card.stated_layout;
  p.nhwc = layout == "nhwc";
  const int64_t channels = p.nhwc ? s[3] : s[1];
  if (card.stated_channels && channels > 0 && channels != card.stated_channels)
    bad_card(card.source, "input.channels " + std::to_string(card.stated_channels) + " but the model's input '" + input->name +
                              "' has " + std::to_string(channels) + " (shape " + engine::shape_str(s) + ", " + layout + ")");
  p.channels = card.stated_channels ? card.stated_channels : channels > 0 ? static_cast<int>(channels) : 3;
  if (p.channels != 1 && p.channels != 3)
    throw Error(ErrorKind::unsupported, "input '" + input->name + "' has shape " + engine::shape_str(s) + ", read as " + layout +
                                            ": " + std::to_string(p.channels) +
                                            " channels, and Dermal feeds images with 1 (grayscale) or 3 (RGB); if the "
                                            "channels are on the other axis, say input.layout in the model card");
  const int64_t h = p.nhwc ? s[1] : s[2], w = p.nhwc ? s[2] : s[3];
  if (h > 0) {
    if (p.height && p.height != h) bad_card(card.source, "input height " + std::to_string(p.height) + " but the model takes " + std::to_string(h));
    p.height = static_cast<int>(h);
  }
  if (w > 0) {
    if (p.width && p.width != w) bad_card(card.source, "input width " + std::to_string(p.width) + " but the model takes " + std::to_string(w));
    p.width = static_cast<int>(w);
  }
  if (p.width <= 0 || p.height <= 0) bad_card(card.source, "the model's input size is dynamic: give input.width and input.height");
  if (card.name.empty()) card.name = std::filesystem::path(card.source).stem().string();
  for (const auto& name : card.f32_nodes)
    if (!g.node(name)) bad_card(card.source, "f32_nodes names '" + name + "', which is no node of the model");
}

}  // namespace

void fit_labels(ModelCard& card, int64_t classes) {
  if (card.labels.empty()) {
    for (int64_t i = 0; i < classes; ++i) card.labels.push_back({"class_" + std::to_string(i), "class " + std::to_string(i), false});
  } else if (static_cast<int64_t>(card.labels.size()) != classes) {
    bad_card(card.source, "lists " + std::to_string(card.labels.size()) + " labels but the model outputs " +
                              std::to_string(classes) + " classes");
  }
  logit_offsets_by_label(card);  // names only the card's labels
}

std::vector<double> logit_offsets_by_label(const ModelCard& card) {
  std::vector<double> by_label(card.labels.size(), 0.0);
  for (const auto& offset : card.logit_offsets) {
    const std::string& code = offset.first;
    const double b = offset.second;
    auto it = std::find_if(card.labels.begin(), card.labels.end(), [&](const LabelInfo& l) { return l.code == code; });
    if (it == card.labels.end()) {
      std::string codes;
      for (const auto& l : card.labels) codes += (codes.empty() ? "" : ", ") + l.code;
      bad_card(card.source, "logit_offsets names '" + code + "', which is not one of its labels (" + codes + ")");
    }
    if (!std::isfinite(b)) bad_card(card.source, "logit_offsets['" + code + "'] must be a finite number");
    by_label[it - card.labels.begin()] = b;
  }
  return by_label;
}

ModelCard load_model_card_file(const std::string& card_path, const LoadedModel& model, const CardOverrides& overrides) {
  ModelCard card = parse_model_card(read_text(card_path), card_path);
  apply_overrides(card, overrides);
  reconcile(card, model);
  return card;
}

namespace {

// The card beside a model: x.json for x.onnx / x.keras / x.h5, or x.card.json (which a TF.js
// model.json needs, being a .json itself).
std::string sidecar_card(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const char* extension : {".json", ".card.json"}) {
    const fs::path candidate = fs::path(model_path).replace_extension(extension);
    if (fs::is_regular_file(candidate, ec) && !fs::equivalent(candidate, model_path, ec)) return candidate.string();
  }
  return "";
}

// Teachable Machine exports model.json with a metadata.json beside it naming the classes. Its
// image models take the centre square, as x / 127 - 1 (@teachablemachine/image's capture()).
bool teachable_machine_card(const std::string& model_path, ModelCard& card) {
  const std::filesystem::path metadata = std::filesystem::path(model_path).parent_path() / "metadata.json";
  std::ifstream f(metadata);
  if (!f) return false;
  const json j = json::parse(f, nullptr, false);
  if (!j.is_object() || !j.contains("labels") || !j["labels"].is_array() || j["labels"].empty()) return false;
  std::vector<LabelInfo> labels;  // the card is changed only if every label is a name
  for (const auto& l : j["labels"]) {
    if (!l.is_string()) return false;
    labels.push_back({l.get<std::string>(), l.get<std::string>(), false});
  }
  card.labels = std::move(labels);
  const bool image_model = j.contains("packageName") && j["packageName"] == "@teachablemachine/image";
  if (image_model) {
    card.preprocess.keep_aspect = true;
    card.preprocess.scale = 1.0 / 127;
    card.preprocess.mean = {1, 1, 1};
  }
  card.source = metadata.string() + (image_model ? " (Teachable Machine: labels, centre square, x / 127 - 1)"
                                                 : " (its labels; pixels scaled to 0-1)");
  return true;
}

}  // namespace

ModelCard load_model_card(const std::string& model_path, const LoadedModel& model, const CardOverrides& overrides) {
  if (const std::string sidecar = sidecar_card(model_path); !sidecar.empty())
    return load_model_card_file(sidecar, model, overrides);
  ModelCard card;
  if (auto it = model.metadata.find("dermal_card"); it != model.metadata.end()) {
    card = parse_model_card(it->second, model_path + " (metadata 'dermal_card')");
  } else if (!(model.format == "tfjs" && teachable_machine_card(model_path, card))) {
    card.source = model_path + " (no card: generic labels, pixels scaled to 0-1)";
  }
  apply_overrides(card, overrides);
  reconcile(card, model);
  if (card.name.empty() || card.name.find('(') != std::string::npos)
    card.name = std::filesystem::path(model_path).stem().string();
  return card;
}

}  // namespace dermal::formats
