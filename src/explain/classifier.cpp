#include "explain/classifier.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "engine/executor.h"
#include "explain/layer_choice.h"
#include "explain/softmax.h"
#include "vision/normalize.h"
#include "vision/resize.h"

namespace dermal::explain {

using engine::DType;
using engine::Executor;
using engine::PlanOptions;
using engine::Shape;
using engine::Tensor;

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

namespace {

using Clock = std::chrono::steady_clock;

vision::Preprocess to_vision(const formats::PreprocessSpec& s) {
  vision::Preprocess p;
  p.width = s.width;
  p.height = s.height;
  p.resize = vision::parse_resize_mode(s.resize);  // the card has checked the name
  p.keep_aspect_crop = s.keep_aspect;
  p.scale = s.scale;
  p.mean = s.mean;
  p.std = s.std;
  p.bgr = s.bgr;
  p.nhwc = s.nhwc;
  p.channels = s.channels;
  return p;
}

// Mirrors an input tensor ([1,C,H,W] or [1,H,W,C]) left-right.
Tensor flip_width(const Tensor& t, bool nhwc) {
  Tensor out = t.clone();
  const Shape& s = t.shape();
  const int64_t rows = nhwc ? s[1] : s[1] * s[2], width = nhwc ? s[2] : s[3], pixel = nhwc ? s[3] : 1;
  const float* src = t.data<float>();
  float* dst = out.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < pixel; ++c)
        dst[(r * width + x) * pixel + c] = src[(r * width + (width - 1 - x)) * pixel + c];
  return out;
}

void flip_map_width(std::vector<float>& map, int width, int height) {
  for (int y = 0; y < height; ++y) std::reverse(map.begin() + y * width, map.begin() + (y + 1) * width);
}

// The backbone the statistics name: beside the statistics, else in the folders the front end
// gives (the bundled models). Its outputs must be the layers the statistics were fitted on.
std::unique_ptr<LesionBackbone> load_backbone(const LesionCheckStats& stats, const std::string& stats_path,
                                              const std::vector<std::string>& dirs) {
  std::vector<std::filesystem::path> candidates{std::filesystem::path(stats_path).parent_path() / stats.backbone_file};
  for (const auto& d : dirs) candidates.push_back(std::filesystem::path(d) / stats.backbone_file);
  std::error_code ec;
  for (const auto& c : candidates)
    if (std::filesystem::is_regular_file(c, ec)) return LesionBackbone::load(c.string(), stats.backbone_layers);
  throw Error(ErrorKind::invalid_model, "lesion-check statistics " + stats_path + " read the backbone " +
                                            stats.backbone_file + ", which is neither beside them nor among the bundled models");
}

}  // namespace

// Executors planned once and reused: one for predictions, one per explained layer.
struct Classifier::Plans {
  std::unique_ptr<Executor> predict;
  std::map<std::string, std::unique_ptr<Executor>> explain;  // by layer
  std::vector<engine::TensorPlanInfo> tensors;               // every tensor, graph order
};

Classifier::~Classifier() = default;

Shape Classifier::input_shape(int64_t batch) const {
  const auto& p = card_.preprocess;
  return p.nhwc ? Shape{batch, p.height, p.width, p.channels} : Shape{batch, p.channels, p.height, p.width};
}

std::unique_ptr<Classifier> Classifier::load(const std::string& model_path, const std::string& card_path,
                                             const formats::CardOverrides& overrides, const LesionCheckOptions& check) {
  std::unique_ptr<Classifier> c(new Classifier());
  c->model_ = formats::load_model(model_path);
  c->card_ = card_path.empty() ? formats::load_model_card(model_path, c->model_, overrides)
                               : formats::load_model_card_file(card_path, c->model_, overrides);
  c->plans_ = std::make_unique<Plans>();

  c->check_options_ = check;
  std::string check_path = check.path;
  if (check_path.empty()) {
    std::filesystem::path beside = std::filesystem::path(model_path).replace_extension(".check.json");
    std::error_code ec;
    if (std::filesystem::is_regular_file(beside, ec)) check_path = beside.string();
  }
  if (check.fitting) {
    c->check_unavailable_ = "the lesion check is being fitted";
  } else if (check.mode == LesionCheckMode::off) {
    c->check_unavailable_ = "the lesion check is off";
  } else if (check_path.empty()) {
    c->check_unavailable_ = "this model has no lesion-check statistics (dermal fit-check makes them): the image "
                            "was not checked";
  } else {
    c->check_ = load_lesion_check(check_path);
  }
  auto not_fitting = [&](const std::string& what) {
    return Error(ErrorKind::invalid_model, "lesion-check statistics " + check_path + " do not fit this model: " + what +
                                               " (fit them again with dermal fit-check)");
  };
  if (c->check_) {
    c->content_layers_ = c->check_->content_layers;
    c->appearance_layers_ = c->check_->appearance_layers;
    for (const auto* layers : {&c->content_layers_, &c->appearance_layers_})
      for (const auto& layer : *layers)
        if (!c->model_.graph->producer(layer)) throw not_fitting("it has no layer '" + layer + "'");
    if (!c->check_->backbone_file.empty()) {
      c->backbone_ = load_backbone(*c->check_, check_path, check.backbone_dirs);
      if (c->backbone_->channels() * 2 != c->check_->backbone.dims)
        throw not_fitting("its backbone " + c->backbone_->path() + " has " + std::to_string(c->backbone_->channels()) +
                          " channels, the statistics " + std::to_string(c->check_->backbone.dims / 2));
    }
  }
  if (check.fitting && !check.fit_backbone.empty())
    c->backbone_ = LesionBackbone::load(check.fit_backbone, {});
  // One plan keeps the logits (an inner tensor when the model ends in softmax) and the layers the
  // check reads; without statistics (and not fitting them) none is kept from buffer reuse.
  auto plan = [&] {
    PlanOptions opts = c->plan_options(c->input_shape(1));
    opts.keep = {c->model_.logits};
    opts.keep.insert(opts.keep.end(), c->content_layers_.begin(), c->content_layers_.end());
    opts.keep.insert(opts.keep.end(), c->appearance_layers_.begin(), c->appearance_layers_.end());
    c->plans_->predict = std::make_unique<Executor>(c->model_.graph, opts);
    c->plans_->tensors = c->plans_->predict->tensor_infos();
  };
  plan();
  if (check.fitting && !c->backbone_) {  // the rule chooses among the planned tensors; then plan again keeping them
    c->default_lesion_layers();
    plan();
  }
  const Shape& logits = c->plans_->predict->info(c->model_.logits).shape;
  formats::fit_labels(c->card_, logits.empty() ? 1 : logits.back());
  c->logit_offsets_ = formats::logit_offsets_by_label(c->card_);
  c->resolve_layer(c->card_.explain_layer);  // a bad default layer fails at load, not on first use
  // The statistics must fit this model: as many channels as they hold, in [N,C,H,W] layers.
  if (c->check_)
    for (auto [layers, dims, per_channel] : {std::tuple{&c->content_layers_, c->check_->content.dims, 1},
                                             std::tuple{&c->appearance_layers_, c->check_->appearance.dims, 2}}) {
      int64_t channels = 0;
      for (const auto& layer : *layers) {
        const Shape& shape = c->plans_->predict->info(layer).shape;
        if (shape.size() != 4) throw not_fitting("layer '" + layer + "' is not a [N,C,H,W] tensor");
        channels += shape[1];
      }
      if (channels * per_channel != dims)
        throw not_fitting("its layers have " + std::to_string(channels) + " channels, the statistics " +
                          std::to_string(dims / per_channel));
    }
  return c;
}

// The layers the check reads when fitting (docs/lesion_check.md has the study that chose them):
// content, the last spatial layer ("auto") and the last layer at the resolution before it;
// appearance, the last layers at stride 2 and at stride 4 (colour and texture, before the network
// abstracts them away). Layers that coincide in a small model are read once.
void Classifier::default_lesion_layers() {
  const auto& p = card_.preprocess;
  const int64_t input_plane = static_cast<int64_t>(p.width) * p.height;
  const std::string content = resolve_layer("auto");
  int64_t content_plane = 0;
  for (const auto& t : plans_->tensors)
    if (t.name == content) content_plane = t.info.shape[2] * t.info.shape[3];
  std::string before, stride2, stride4;
  for (const auto& t : plans_->tensors) {
    if (t.name == content) break;
    const Shape& s = t.info.shape;
    if (t.known || s.size() != 4 || model_.graph->is_input(t.name) || s[2] < 2 || s[3] < 2) continue;
    if (!model_.graph->producer(t.name) || layout_plumbing(*model_.graph, t.name)) continue;
    const int64_t plane = s[2] * s[3];  // inner tensors are NCHW
    if (plane > content_plane) before = t.name;
    if (plane * 4 >= input_plane) stride2 = t.name;
    if (plane * 16 >= input_plane) stride4 = t.name;
  }
  auto add = [](std::vector<std::string>& to, const std::string& layer) {
    if (!layer.empty() && std::find(to.begin(), to.end(), layer) == to.end()) to.push_back(layer);
  };
  content_layers_.clear();
  appearance_layers_.clear();
  add(content_layers_, content);
  add(content_layers_, before);
  add(appearance_layers_, stride2);
  add(appearance_layers_, stride4);
  if (appearance_layers_.empty()) add(appearance_layers_, content);
}

void Classifier::check_lesion(Executor& ex, const vision::Image* image, Prediction& p, Timings& timings) {
  if (!check_ && !check_options_.fitting) {
    p.lesion_check = lesion_check_unavailable(check_options_.mode, check_unavailable_);
    return;
  }
  if (backbone_ && !image) {
    p.lesion_check = lesion_check_unavailable(check_options_.mode, "the lesion check reads the image, and was given "
                                                                   "only the model's input tensor: not checked");
    return;
  }
  auto start = Clock::now();
  auto features = [&](const std::vector<std::string>& layers, bool stds) {
    std::vector<double> out;
    for (const auto& layer : layers) {
      Tensor a = ex.get(layer);
      const Shape& s = a.shape();
      auto f = stds ? channel_means_and_stds(a.data<float>(), s[1], s[2] * s[3]) : channel_means(a.data<float>(), s[1], s[2] * s[3]);
      out.insert(out.end(), f.begin(), f.end());
    }
    return out;
  };
  p.lesion_features.content = features(content_layers_, false);
  p.lesion_features.appearance = features(appearance_layers_, true);
  if (backbone_) p.lesion_features.backbone = backbone_->features(*image);
  p.lesion_check = check_ ? run_lesion_check(*check_, p.lesion_features, check_options_.mode, check_options_.threshold)
                          : lesion_check_unavailable(check_options_.mode, check_unavailable_);
  timings["lesion_check"] = ms_since(start);
}

LesionFeatures Classifier::lesion_backbone_features(const vision::Image& image) {
  if (!backbone_) throw Error(ErrorKind::internal, "the lesion check has no backbone to read");
  std::lock_guard<std::mutex> lock(mutex_);
  LesionFeatures f;
  f.backbone = backbone_->features(image);
  return f;
}

vision::Image Classifier::decode(const uint8_t* bytes, size_t size, Timings& timings, vision::SourceSize* source) const {
  auto start = Clock::now();
  vision::DecodeTarget target;
  if (working_side_ > 0) target = {card_.preprocess.width, card_.preprocess.height, working_side_};
  vision::Image img = vision::decode_image(bytes, size, limits_, target, source);
  timings["decode"] = ms_since(start);
  return img;
}

Tensor Classifier::input_tensor(const vision::Image& image) const {
  return vision::to_input_tensor(image, to_vision(card_.preprocess));
}

Prediction Classifier::to_prediction(const Tensor& logits_tensor) const {
  Prediction p;
  p.logits = logits_tensor.to_doubles();
  if (p.logits.size() != card_.labels.size())
    throw Error(ErrorKind::internal, "the model gave " + std::to_string(p.logits.size()) + " logits for " +
                                         std::to_string(card_.labels.size()) + " labels");
  p.probabilities = softmax(p.logits, card_.temperature, logit_offsets_);
  for (size_t i = 0; i < p.logits.size(); ++i) {
    const auto& label = card_.labels[i];
    p.ranked.push_back({static_cast<int>(i), label.code, label.name, label.malignant, p.probabilities[i], p.logits[i]});
  }
  std::stable_sort(p.ranked.begin(), p.ranked.end(),
                   [](const ClassScore& a, const ClassScore& b) { return a.probability > b.probability; });
  return p;
}

Prediction Classifier::predict(const vision::Image& image, Timings& timings) {
  auto start = Clock::now();
  Tensor x = input_tensor(image);
  timings["preprocess"] = ms_since(start);
  return predict_tensor(x, &image, timings);
}

Prediction Classifier::predict_input(const Tensor& x, Timings& timings) { return predict_tensor(x, nullptr, timings); }

Prediction Classifier::predict_tensor(const Tensor& x, const vision::Image* image, Timings& timings) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto start = Clock::now();
  Executor& ex = *plans_->predict;
  ex.set_input(card_.input_name, x);
  ex.forward();
  Prediction p = to_prediction(ex.get(model_.logits));
  timings["infer"] = ms_since(start);
  check_lesion(ex, image, p, timings);
  return p;
}

std::string Classifier::resolve_layer(const std::string& request) const {
  return choose_layer(*model_.graph, plans_->tensors, model_.logits, request);
}

int Classifier::resolve_class(const std::string& target, const Prediction& p) const {
  if (target.empty() || target == "top") return p.ranked.front().index;
  for (size_t i = 0; i < card_.labels.size(); ++i)
    if (card_.labels[i].code == target) return static_cast<int>(i);
  // Bytes above 127 from a query string must not reach isdigit as negative chars (undefined).
  const bool digits = std::all_of(target.begin(), target.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits && target.size() < 6) {
    int index = std::stoi(target);
    if (index < static_cast<int>(card_.labels.size())) return index;
  }
  std::string codes;
  for (const auto& l : card_.labels) codes += (codes.empty() ? "" : ", ") + l.code;
  throw Error(ErrorKind::invalid_input, "unknown class '" + target + "' (one of: top, " + codes + ")");
}

std::vector<float> Classifier::score_cam(const Tensor& x, const Tensor& activation, int class_index, int batch) {
  // A plan for the masked batch, made per call and dropped after it: kept, its activations (batch x
  // one image's) would stay resident in an idle server; planning costs milliseconds, Score-CAM seconds.
  std::unique_ptr<Executor> ex;
  auto logits_of = [&](const Tensor& masked) {
    if (!ex) {
      PlanOptions opts = plan_options(masked.shape());
      opts.keep = {model_.logits};
      ex = std::make_unique<Executor>(model_.graph, opts);
    }
    ex->set_input(card_.input_name, masked);
    ex->forward();
    return ex->get(model_.logits);
  };
  return explain::score_cam(x, card_.preprocess.nhwc, activation, class_index, batch, logits_of);
}

Explanation Classifier::explain(const vision::Image& image, const ExplainRequest& request, Timings& timings,
                                int heatmap_width, int heatmap_height) {
  auto start = Clock::now();
  Tensor x = input_tensor(image);
  timings["preprocess"] = ms_since(start);
  const bool given = heatmap_width > 0 && heatmap_height > 0;
  return explain_tensor(x, &image, given ? heatmap_width : image.width, given ? heatmap_height : image.height, request,
                        timings);
}

Explanation Classifier::explain_input(const Tensor& x, int heatmap_width, int heatmap_height,
                                      const ExplainRequest& request, Timings& timings) {
  return explain_tensor(x, nullptr, heatmap_width, heatmap_height, request, timings);
}

Explanation Classifier::explain_tensor(const Tensor& x, const vision::Image* image, int heatmap_width,
                                       int heatmap_height, const ExplainRequest& request, Timings& timings) {
  auto start = Clock::now();
  const std::string layer = resolve_layer(request.layer == "auto" ? card_.explain_layer : request.layer);
  std::lock_guard<std::mutex> lock(mutex_);
  auto planned = plans_->explain.find(layer);
  if (planned == plans_->explain.end()) {
    if (plans_->explain.size() >= 4) plans_->explain.clear();  // bound the plans callers can make us hold
    PlanOptions opts = plan_options(input_shape(1));
    opts.keep = {layer, model_.logits};
    opts.keep.insert(opts.keep.end(), content_layers_.begin(), content_layers_.end());
    opts.keep.insert(opts.keep.end(), appearance_layers_.begin(), appearance_layers_.end());
    opts.backward_from = {model_.logits};
    opts.backward_to = {layer};
    planned = plans_->explain.emplace(layer, std::make_unique<Executor>(model_.graph, opts)).first;
  }
  Executor& ex = *planned->second;

  Explanation e;
  e.method = cam_method_name(request.method);
  e.layer = layer;
  // One pass: the map for input `in`, the prediction when asked.
  auto map_for = [&](const Tensor& in, Prediction* prediction, double& infer_ms) {
    auto t0 = Clock::now();
    ex.set_input(card_.input_name, in);
    ex.forward();
    Tensor logits = ex.get(model_.logits);
    Tensor activation = ex.get(layer);
    infer_ms += ms_since(t0);
    if (prediction) {
      *prediction = to_prediction(logits);
      e.class_index = resolve_class(request.target, *prediction);
      check_lesion(ex, image, *prediction, timings);
    }
    if (request.method == CamMethod::eigencam) return eigen_cam(activation);
    if (request.method == CamMethod::scorecam) return score_cam(in, activation, e.class_index, request.score_cam_batch);
    Tensor seed = Tensor::zeros(DType::f32, logits.shape());
    seed.data<float>()[e.class_index] = 1.f;  // the logit, never the softmax
    Tensor grad = ex.backward(model_.logits, seed, {layer})[0];
    return cam_from_gradients(request.method, activation, grad);
  };
  double infer_ms = 0;
  start = Clock::now();
  std::vector<float> cam = map_for(x, &e.prediction, infer_ms);
  const Shape& as = ex.info(layer).shape;
  e.grid_height = static_cast<int>(as[2]);
  e.grid_width = static_cast<int>(as[3]);
  if (request.aug_smooth) {
    std::vector<float> flipped = map_for(flip_width(x, card_.preprocess.nhwc), nullptr, infer_ms);
    flip_map_width(flipped, e.grid_width, e.grid_height);
    for (size_t i = 0; i < cam.size(); ++i) cam[i] = 0.5f * (cam[i] + flipped[i]);
  }
  normalize01(cam);
  e.cam = cam;
  e.class_code = card_.labels[e.class_index].code;
  timings["infer"] = infer_ms;
  const auto checked = timings.find("lesion_check");  // absent when the model is unchecked
  timings["explain"] = ms_since(start) - infer_ms - (checked == timings.end() ? 0.0 : checked->second);
  start = Clock::now();
  e.heatmap = vision::upsample_bilinear(vision::FloatMap{e.grid_width, e.grid_height, e.cam}, heatmap_width, heatmap_height);
  timings["explain"] += ms_since(start);
  return e;
}

size_t Classifier::planned_activation_bytes() const { return plans_->predict->stats().arena_bytes; }

PlanOptions Classifier::plan_options(const Shape& input) const {
  PlanOptions opts;
  opts.input_shapes[card_.input_name] = input;
  opts.precision = engine::parse_precision(card_.precision);
  opts.f32_nodes = card_.f32_nodes;
  return opts;
}

PrecisionStatus Classifier::precision() const {
  const engine::PlanStats& s = plans_->predict->stats();
  return {card_.precision, engine::precision_name(s.precision), s.precision_note,
          static_cast<int>(s.bf16_convolutions.size())};
}

}  // namespace dermal::explain
