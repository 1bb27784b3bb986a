#include "explain/answer.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "vision/overlay.h"
#include "vision/resize.h"

namespace dermal::explain {

using json = nlohmann::json;

namespace {

double round_us(double ms) { return std::round(ms * 1000) / 1000; }

json class_json(const ClassScore& c) {
  return {{"label", c.code}, {"name", c.name}, {"malignant", c.malignant}, {"probability", c.probability}};
}

}  // namespace

Answer answer(Classifier& clf, const vision::Image& image, const vision::SourceSize& source, const AnswerRequest& req,
              Timings& timings) {
  Answer a;
  a.source = source;
  a.decoded_width = image.width;
  a.decoded_height = image.height;
  if (!req.explain) {
    a.prediction = clf.predict(image, timings);
    a.diagnosis_withheld = a.prediction.lesion_check.withholds_diagnosis() && !req.force;
    return a;
  }
  auto start = std::chrono::steady_clock::now();
  const vision::Image display = req.display_size > 0 ? vision::fit_within(image, req.display_size) : image;
  timings["display"] = ms_since(start);
  Explanation e = clf.explain(image, req.cam, timings, display.width, display.height);
  a.prediction = e.prediction;
  a.diagnosis_withheld = a.prediction.lesion_check.withholds_diagnosis() && !req.force;
  if (a.diagnosis_withheld) return a;  // no map, no picture: nothing to mistake for an answer
  a.display_width = display.width;
  a.display_height = display.height;
  if (req.overlay || req.heatmap) {
    start = std::chrono::steady_clock::now();
    const vision::Image heat = vision::colorize(e.heatmap, req.colormap);
    if (req.overlay) a.overlay = vision::encode(vision::blend(display, heat, req.alpha), *req.overlay);
    if (req.heatmap) a.heatmap = vision::encode(heat, *req.heatmap);
    timings["encode"] = ms_since(start);
  }
  a.explanation = std::move(e);
  return a;
}

double total_ms(const Timings& timings) {
  double total = 0;
  for (const auto& [stage, ms] : timings) total += ms;
  return total;
}

json timings_json(const Timings& timings) {
  json j = json::object();
  for (const auto& [stage, ms] : timings) j[stage] = round_us(ms);
  j["total"] = round_us(total_ms(timings));
  return j;
}

json answer_json(const Answer& a, const AnswerRequest& req, const Timings& timings) {
  const Prediction& p = a.prediction;
  json j;
  j["image"] = {{"width", a.source.width},
                {"height", a.source.height},
                {"decoded", {{"width", a.decoded_width}, {"height", a.decoded_height}}}};
  j["lesion_check"] = lesion_check_json(p.lesion_check);
  j["diagnosis_withheld"] = a.diagnosis_withheld;
  j["top"] = json::array();
  j["probabilities"] = nullptr;
  j["gradcam"] = nullptr;
  if (!a.diagnosis_withheld) {
    const size_t k = std::min<size_t>(static_cast<size_t>(std::max(req.top_k, 0)), p.ranked.size());
    for (size_t i = 0; i < k; ++i) j["top"].push_back(class_json(p.ranked[i]));
    j["probabilities"] = json::object();
    for (const auto& c : p.ranked) j["probabilities"][c.code] = c.probability;
  }
  if (a.explanation) {
    const Explanation& e = *a.explanation;
    const auto& target = *std::find_if(p.ranked.begin(), p.ranked.end(),
                                       [&](const ClassScore& c) { return c.index == e.class_index; });
    json g{{"method", e.method},
           {"layer", e.layer},
           {"class", e.class_code},
           {"class_name", target.name},
           {"class_probability", target.probability},
           {"alpha", std::round(static_cast<double>(req.alpha) * 1000) / 1000},
           {"colormap", vision::colormap_name(req.colormap)},
           {"width", a.display_width},
           {"height", a.display_height}};
    if (req.include_cam) {
      json rows = json::array();
      for (int y = 0; y < e.grid_height; ++y)
        rows.push_back(std::vector<float>(e.cam.begin() + y * e.grid_width, e.cam.begin() + (y + 1) * e.grid_width));
      g["cam"] = std::move(rows);
    }
    j["gradcam"] = std::move(g);
  }
  j["timings_ms"] = timings_json(timings);
  return j;
}

}  // namespace dermal::explain
