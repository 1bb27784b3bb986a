// dermal explain [--method gradcam] [--layer auto] [--class top] [--out overlay.png] IMAGE:
// which part of the image drove the answer.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "vision/colormap.h"
#include "vision/encode.h"
#include "vision/overlay.h"

namespace dermal::cli {

namespace {

struct ExplainOptions {
  ModelOptions model;
  std::string image;
  std::string method = "gradcam";
  std::string layer = "auto";
  std::string target = "top";
  std::string out, heatmap;
  std::string colormap = "jet";
  float alpha = 0.4f;
  bool aug_smooth = false;
  bool json = false;
  bool force = false;  // explain even an image the lesion check refuses
};

bool is_jpeg_name(const std::string& path) {
  auto dot = path.rfind('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == "jpg" || ext == "jpeg";
}

std::vector<uint8_t> encode_for(const std::string& path, const vision::Image& img) {
  return is_jpeg_name(path) ? vision::encode_jpeg(img, 90) : vision::encode_png(img);
}

int run_explain(const ExplainOptions& o) {
  auto clf = load_classifier(o.model);
  explain::ExplainRequest req;
  req.method = explain::parse_cam_method(o.method);
  req.layer = o.layer;
  req.target = o.target;
  req.aug_smooth = o.aug_smooth;
  vision::Colormap cmap = vision::parse_colormap(o.colormap);
  explain::Timings timings;
  auto bytes = read_file_limited(o.image, clf->limits().max_bytes);
  vision::Image image = clf->decode(bytes.data(), bytes.size(), timings);
  // The overlay at the display size (--display-size), never at a phone photo's full size.
  const vision::Image display = vision::fit_within(image, o.model.display_size);
  explain::Explanation e = clf->explain(image, req, timings, display.width, display.height);
  const auto& check = e.prediction.lesion_check;
  if (check.withholds_diagnosis() && !o.force) {  // no class, no map, no file: nothing to mistake for an answer
    if (o.json) {
      nlohmann::json j{{"image", o.image}, {"lesion_check", explain::lesion_check_json(check)}, {"diagnosis_withheld", true}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s: not explained: the image %s (--force explains it anyway)\n", o.image.c_str(), check.reason.c_str());
    }
    return 0;
  }
  if (!o.out.empty() || !o.heatmap.empty()) {
    auto start = std::chrono::steady_clock::now();
    vision::Image heat = vision::colorize(e.heatmap, cmap);
    if (!o.heatmap.empty()) write_file(o.heatmap, encode_for(o.heatmap, heat));
    if (!o.out.empty()) write_file(o.out, encode_for(o.out, vision::blend(display, heat, o.alpha)));
    timings["encode"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  const auto& top = e.prediction.ranked.front();
  double total = 0;
  for (const auto& [stage, ms] : timings) total += ms;
  if (o.json) {
    nlohmann::json j{{"image", o.image}, {"method", e.method}, {"layer", e.layer}, {"class", e.class_code}};
    j["lesion_check"] = explain::lesion_check_json(check);
    j["diagnosis_withheld"] = false;
    j["class_probability"] = e.prediction.probabilities[e.class_index];
    j["top"] = {{"label", top.code}, {"name", top.name}, {"probability", top.probability}};
    nlohmann::json rows = nlohmann::json::array();
    for (int y = 0; y < e.grid_height; ++y)
      rows.push_back(std::vector<float>(e.cam.begin() + y * e.grid_width, e.cam.begin() + (y + 1) * e.grid_width));
    j["cam"] = rows;
    for (const auto& [stage, ms] : timings) j["timings_ms"][stage] = ms;
    j["timings_ms"]["total"] = total;
    if (!o.out.empty()) j["overlay"] = o.out;
    if (!o.heatmap.empty()) j["heatmap"] = o.heatmap;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%s: %s (%s) %.1f%%\n", o.image.c_str(), top.code.c_str(), top.name.c_str(), 100 * top.probability);
  if (check.available && !check.passed) std::printf("warning: the image %s\n", check.reason.c_str());
  std::printf("%s for class %s at layer %s (%dx%d), %.1f ms\n", e.method.c_str(), e.class_code.c_str(), e.layer.c_str(),
              e.grid_width, e.grid_height, total);
  if (!o.out.empty()) std::printf("overlay: %s\n", o.out.c_str());
  if (!o.heatmap.empty()) std::printf("heatmap: %s\n", o.heatmap.c_str());
  return 0;
}

}  // namespace

Command add_explain(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  add_model_options(app, o->model);
  std::string methods;
  for (const auto& m : explain::cam_method_names()) methods += (methods.empty() ? "" : ", ") + m;
  app.add_option("--method", o->method, "One of: " + methods);
  app.add_option("--layer", o->layer, "Layer to explain: auto, a tensor or node name (dermal inspect lists them)");
  app.add_option("--class", o->target, "Class to explain: top, or a label code such as mel");
  app.add_option("--out,-o", o->out, "Write the overlay here (.png or .jpg)");
  app.add_option("--heatmap", o->heatmap, "Write the coloured heatmap here (.png or .jpg)");
  app.add_option("--colormap", o->colormap, "jet, turbo or viridis");
  app.add_option("--alpha", o->alpha, "Heatmap opacity in the overlay")->check(CLI::Range(0.0, 1.0));
  app.add_flag("--aug-smooth", o->aug_smooth, "Average with the map of the mirrored image");
  app.add_flag("--json", o->json, "Print JSON, with the raw map at the layer's resolution");
  app.add_flag("--force", o->force, "Explain even an image the lesion check refuses");
  app.add_option("image", o->image, "Image file (JPEG, PNG, WebP)")->required();
  return [o] { return run_explain(*o); };
}

}  // namespace dermal::cli
