// The classifier the server uses, loaded at startup (PRELOAD_MODEL=true) or by the first request
// that needs it. Only the inference worker calls get(); any thread may read the snapshot.
//
//   ModelHost host(config);
//   explain::Classifier& clf = host.get();     // loads now if needed; throws the load error
//   ModelHost::Snapshot s = host.snapshot();    // loaded?, labels, sizes, for health routes
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "explain/classifier.h"
#include "serve/config.h"

namespace dermal::serve {

class ModelHost {
 public:
  struct Snapshot {
    bool loaded = false;
    std::string load_error;  // the last failed load's message, empty when none
    double load_ms = 0;
    std::vector<formats::LabelInfo> labels;
    std::string input_name, layout;  // "nchw" | "nhwc"
    int input_width = 0, input_height = 0, input_channels = 3;
    std::string format, producer, explain_layer;
    double temperature = 1;
    std::vector<std::pair<std::string, double>> logit_offsets;  // the card's operating point
    size_t weight_bytes = 0, planned_activation_bytes = 0;
    explain::PrecisionStatus precision;
    nlohmann::json lesion_check;  // mode, whether statistics are loaded, their file, threshold, size
  };

  explicit ModelHost(const ServeConfig& config);

  explain::Classifier& get();
  Snapshot snapshot() const;
  bool loaded() const;
  const std::string& name() const { return name_; }  // the model file's stem, known before loading
  const std::string& path() const { return path_; }

 private:
  std::string path_, card_path_, name_;
  explain::LesionCheckOptions check_;
  formats::CardOverrides overrides_;
  vision::DecodeLimits limits_;
  int display_size_ = 0;
  mutable std::mutex mutex_;
  std::unique_ptr<explain::Classifier> classifier_;
  Snapshot snapshot_;
};

}  // namespace dermal::serve
