// What the subcommands share: finding the default model, reading files within limits, loading
// the classifier with the options every command takes.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "explain/classifier.h"

namespace dermal::cli {

struct ModelOptions {
  std::string model;  // empty: the bundled default
  std::string card;   // empty: beside the model
  int threads = 0;    // 0: every core
  std::string labels;      // --labels: a file with one code per line, or "a,b,c"
  std::string preprocess;  // --preprocess: caffe | tf | torch | raw
  double temperature = 0;  // --temperature: 0 keeps the card's
  std::string logit_offsets;  // --logit-offsets: "mel=0.4,...", "none"; empty keeps the card's
  std::string precision;   // --precision: f32 | bf16; empty keeps the card's
  std::string lesion_check = "on";  // --lesion-check: on | warn | off
  std::string check_file;           // --check: statistics file (default: <model stem>.check.json)
  double check_threshold = 0;       // --check-threshold: 0 keeps the fitted one
  bool fitting_check = false;       // set by fit-check: read the check's layers, load no statistics
  std::string fit_backbone;         // set by fit-check: the backbone to read instead (empty: the model's layers)
  int display_size = explain::Classifier::kDefaultWorkingSide;  // --display-size: decode and overlay size
};

// eval passes labels_flag = false: its --labels is the CSV of true labels.
void add_model_options(CLI::App& app, ModelOptions& o, bool labels_flag = true);
// MODEL_PATH, then models/ beside the executable (build tree or install), then ./models.
std::string default_model_path();
// The file name extensions of the image formats Dermal reads, lower case with the dot (".jpg", ...).
const std::vector<std::string>& image_extensions();

// The folders holding the bundled models (where the lesion check's backbone is found too).
std::vector<std::string> bundled_model_dirs();
std::string model_path(const ModelOptions& o);  // --model, else the bundled default
std::string model_name(const ModelOptions& o);  // its file's stem, as the API's "model" says
std::unique_ptr<explain::Classifier> load_classifier(const ModelOptions& o);
// The whole file, refused when larger than max_bytes (before reading it).
std::vector<uint8_t> read_file_limited(const std::string& path, size_t max_bytes);
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace dermal::cli
