// The one path every front end (CLI, HTTP API, web page) takes: image bytes in; class
// probabilities and, on request, a class activation map out, with the time each stage took.
//
//   auto clf = explain::Classifier::load("models/skinnet_mnv2_ham_isic224.onnx");
//   vision::Image img = clf->decode(bytes, timings);
//   explain::Prediction p = clf->predict(img, timings);
//   explain::ExplainRequest req;            // Grad-CAM, auto layer, top class
//   explain::Explanation e = clf->explain(img, req, timings);
//   // e.cam: the map at the layer's resolution, in [0, 1]; e.heatmap: upsampled to the image.
//
// Methods are serialised: one inference at a time on all the cores oneDNN is given.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "explain/cam.h"
#include "explain/lesion_backbone.h"
#include "explain/lesion_check.h"
#include "formats/model_card.h"
#include "vision/decode.h"
#include "vision/image.h"

namespace dermal::engine {
class Executor;
struct PlanOptions;
}

namespace dermal::explain {

using Timings = std::map<std::string, double>;  // stage -> milliseconds
// Milliseconds from `start` to now (what each stage adds to Timings).
double ms_since(std::chrono::steady_clock::time_point start);

struct ClassScore {
  int index = 0;
  std::string code, name;
  bool malignant = false;
  double probability = 0;
  double logit = 0;
};

struct Prediction {
  std::vector<double> logits;
  std::vector<double> probabilities;  // softmax(logits / temperature + the card's logit offsets), in label order
  std::vector<ClassScore> ranked;     // every class, most probable first
  LesionCheckResult lesion_check;     // is this a skin-lesion image at all? (front ends withhold
                                      // the diagnosis when lesion_check.withholds_diagnosis())
  LesionFeatures lesion_features;     // what the check read (dermal fit-check fits on these)
};

// Where the lesion check's statistics come from and how it acts.
struct LesionCheckOptions {
  LesionCheckMode mode = LesionCheckMode::on;
  std::string path;      // empty: `<model stem>.check.json` beside the model, when it exists
  double threshold = 0;  // > 0: replaces the fitted threshold
  // Where to look for the backbone the statistics name, after the statistics' own folder (the
  // bundled models' folder: front ends know where it is; the engine does not).
  std::vector<std::string> backbone_dirs;
  bool fitting = false;       // dermal fit-check: ignore any statistics, read the default layers
  std::string fit_backbone;   // when fitting: read this backbone instead of the classifier's layers
};

struct ExplainRequest {
  CamMethod method = CamMethod::gradcam;
  std::string layer = "auto";         // "auto", a tensor name or a node name
  std::string target = "top";         // "top", a label code, or a class index
  bool aug_smooth = false;            // average with the maps of the flipped image
  int score_cam_batch = 8;            // masked images per forward (Score-CAM): its plan's memory is this
                                      // many images' activations (the bundled model: 7 MB each)
};

struct Explanation {
  Prediction prediction;
  std::string method;
  std::string layer;                  // the tensor the map was computed on
  int class_index = 0;
  std::string class_code;
  int grid_width = 0, grid_height = 0;
  std::vector<float> cam;             // grid_height x grid_width, in [0, 1]
  vision::FloatMap heatmap;           // the cam upsampled to the original image, in [0, 1]
};

// The precision the card asks for and what the plans run (engine::Precision): a CPU without
// native bf16 runs f32, and the note says why.
struct PrecisionStatus {
  std::string asked, running, note;
  int bf16_convolutions = 0;
};

class Classifier {
 public:
  // card_path empty: the sidecar beside the model, then its metadata, then defaults.
  static std::unique_ptr<Classifier> load(const std::string& model_path, const std::string& card_path = "",
                                          const formats::CardOverrides& overrides = {},
                                          const LesionCheckOptions& check = {});
  ~Classifier();

  // Decodes to the size that is needed (vision::DecodeTarget): at least the model's input, and
  // `working_side()` pixels on the longer side, so that a 50 MP photo is never held at full size
  // and an image already that small is decoded whole. `source`: the size the file holds.
  vision::Image decode(const uint8_t* bytes, size_t size, Timings& timings, vision::SourceSize* source = nullptr) const;
  Prediction predict(const vision::Image& image, Timings& timings);
  // The heatmap at heatmap_width x heatmap_height (0: the image's size), e.g. a display size.
  Explanation explain(const vision::Image& image, const ExplainRequest& request, Timings& timings,
                      int heatmap_width = 0, int heatmap_height = 0);
  // The same from an input tensor already prepared per the card ([1,3,H,W] or [1,H,W,3]); the
  // heatmap is upsampled to heatmap_width x heatmap_height. A check that reads a backbone needs
  // the image: from a tensor alone it is reported unavailable, never passed.
  Prediction predict_input(const engine::Tensor& input, Timings& timings);
  Explanation explain_input(const engine::Tensor& input, int heatmap_width, int heatmap_height,
                            const ExplainRequest& request, Timings& timings);
  engine::Tensor input_tensor(const vision::Image& image) const;

  // The tensor a layer request resolves to ("auto": the last spatial tensor before global
  // pooling). Throws invalid_input naming close matches when the name is unknown.
  std::string resolve_layer(const std::string& request) const;
  int resolve_class(const std::string& target, const Prediction& p) const;

  const formats::ModelCard& card() const { return card_; }
  // The lesion check's statistics (null when the model has none) and the layers it reads: the
  // fitted ones, or for fitting, those default_lesion_layers() chooses.
  const LesionCheckStats* lesion_check() const { return check_ ? &*check_ : nullptr; }
  const LesionCheckOptions& lesion_check_options() const { return check_options_; }
  const std::vector<std::string>& content_layers() const { return content_layers_; }
  const std::vector<std::string>& appearance_layers() const { return appearance_layers_; }
  const LesionBackbone* lesion_backbone() const { return backbone_.get(); }
  // The check's features of an image from its backbone alone, without the classifier's forward
  // pass: all that fitting a backbone check reads. Throws internal without a backbone.
  LesionFeatures lesion_backbone_features(const vision::Image& image);
  const formats::LoadedModel& model() const { return model_; }
  vision::DecodeLimits& limits() { return limits_; }
  // The longer side decoding keeps (kDefaultWorkingSide unless set; 0: every pixel).
  int working_side() const { return working_side_; }
  void set_working_side(int pixels) { working_side_ = pixels; }
  static constexpr int kDefaultWorkingSide = 1024;
  size_t planned_activation_bytes() const;
  PrecisionStatus precision() const;

 private:
  Classifier() = default;
  struct Plans;
  Prediction to_prediction(const engine::Tensor& logits) const;
  std::vector<int64_t> input_shape(int64_t batch) const;  // the card's input, NCHW or NHWC
  engine::PlanOptions plan_options(const engine::Shape& input) const;  // the card's input and precision
  Prediction predict_tensor(const engine::Tensor& input, const vision::Image* image, Timings& timings);
  Explanation explain_tensor(const engine::Tensor& input, const vision::Image* image, int heatmap_width,
                             int heatmap_height, const ExplainRequest& request, Timings& timings);
  // Reads the check's features from an executor that kept its layers (and from the backbone, on
  // the image), and runs the check.
  void check_lesion(engine::Executor& ex, const vision::Image* image, Prediction& p, Timings& timings);
  void default_lesion_layers();
  std::vector<float> score_cam(const engine::Tensor& input, const engine::Tensor& activation, int class_index,
                               int batch);

  formats::LoadedModel model_;
  formats::ModelCard card_;
  std::vector<double> logit_offsets_;  // the card's, in label order
  vision::DecodeLimits limits_;
  int working_side_ = kDefaultWorkingSide;
  std::optional<LesionCheckStats> check_;
  LesionCheckOptions check_options_;
  std::string check_unavailable_;  // why, when check_ is empty
  std::vector<std::string> content_layers_, appearance_layers_;
  std::unique_ptr<LesionBackbone> backbone_;
  std::unique_ptr<Plans> plans_;
  std::mutex mutex_;
};

}  // namespace dermal::explain
