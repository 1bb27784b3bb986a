#include "serve/model_host.h"

#include <chrono>
#include <filesystem>

#include "engine/error.h"

namespace dermal::serve {

ModelHost::ModelHost(const ServeConfig& config) : card_path_(config.card_path) {
  if (config.model_path.empty()) throw Error(ErrorKind::invalid_input, "MODEL_PATH is empty: no model to serve");
  path_ = config.model_path;
  name_ = std::filesystem::path(path_).stem().string();
  limits_.max_bytes = config.max_upload_bytes();
  limits_.max_pixels = config.max_image_pixels;
  limits_.max_source_pixels = config.max_source_pixels;
  limits_.max_decoder_bytes = static_cast<size_t>(config.max_decoder_mb * 1024 * 1024);
  display_size_ = config.display_size;
  if (config.precision != "card") overrides_.precision = config.precision;
  check_ = {explain::parse_lesion_check_mode(config.lesion_check), config.lesion_check_file, config.lesion_check_threshold,
            config.bundled_model_dirs, false, ""};
}

explain::Classifier& ModelHost::get() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (classifier_) return *classifier_;
  }
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<explain::Classifier> c;
  try {
    c = explain::Classifier::load(path_, card_path_, overrides_, check_);
  } catch (const Error& e) {
    std::lock_guard<std::mutex> lock(mutex_);
    snapshot_.load_error = e.what();
    throw;
  }
  c->limits() = limits_;
  c->set_working_side(display_size_);
  Snapshot s;
  s.loaded = true;
  s.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const auto& card = c->card();
  s.labels = card.labels;
  s.input_name = card.input_name;
  s.layout = card.preprocess.nhwc ? "nhwc" : "nchw";
  s.input_width = card.preprocess.width;
  s.input_height = card.preprocess.height;
  s.input_channels = card.preprocess.channels;
  s.format = c->model().format;
  s.producer = c->model().producer;
  s.explain_layer = c->resolve_layer(card.explain_layer);
  s.temperature = card.temperature;
  s.logit_offsets = card.logit_offsets;
  s.weight_bytes = c->model().graph->weight_bytes();
  s.planned_activation_bytes = c->planned_activation_bytes();
  s.precision = c->precision();
  const explain::LesionCheckStats* stats = c->lesion_check();
  s.lesion_check = {{"mode", explain::lesion_check_mode_name(check_.mode)}, {"available", stats != nullptr}};
  if (stats) {
    s.lesion_check["file"] = stats->source;
    s.lesion_check["threshold"] = check_.threshold > 0 ? check_.threshold : stats->threshold;
    s.lesion_check["fitted_threshold"] = stats->threshold;
    s.lesion_check["statistics_bytes"] = stats->bytes();
    s.lesion_check["layers"] = {{"content", stats->content_layers}, {"appearance", stats->appearance_layers},
                                {"backbone", stats->backbone_layers}};
    if (const explain::LesionBackbone* b = c->lesion_backbone()) {
      s.lesion_check["backbone"] = b->path();
      s.lesion_check["backbone_weight_bytes"] = b->weight_bytes();
    }
    s.lesion_check["fitted"] = stats->fitted;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  classifier_ = std::move(c);
  snapshot_ = s;
  return *classifier_;
}

ModelHost::Snapshot ModelHost::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return snapshot_;
}

bool ModelHost::loaded() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return classifier_ != nullptr;
}

}  // namespace dermal::serve
