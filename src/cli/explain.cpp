// dermal explain [--method gradcam] [--layer auto] [--class top] [--out overlay.png] IMAGE:
// which part of the image drove the answer.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "explain/answer.h"

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

vision::ImageFormat format_for(const std::string& path) {
  auto dot = path.rfind('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == "jpg" || ext == "jpeg" ? vision::ImageFormat::jpeg : vision::ImageFormat::png;
}

int run_explain(const ExplainOptions& o) {
  auto clf = load_classifier(o.model);
  explain::AnswerRequest req;
  req.force = o.force;
  req.explain = true;
  req.cam.method = explain::parse_cam_method(o.method);
  req.cam.layer = o.layer;
  req.cam.target = o.target;
  req.cam.aug_smooth = o.aug_smooth;
  req.display_size = o.model.display_size;  // the overlay at the display size, never at a phone photo's full size
  req.include_cam = true;
  req.colormap = vision::parse_colormap(o.colormap);
  req.alpha = o.alpha;
  if (!o.out.empty()) req.overlay = format_for(o.out);
  if (!o.heatmap.empty()) req.heatmap = format_for(o.heatmap);
  explain::Timings timings;
  auto bytes = read_file_limited(o.image, clf->limits().max_bytes);
  vision::SourceSize source;
  vision::Image image = clf->decode(bytes.data(), bytes.size(), timings, &source);
  const explain::Answer a = explain::answer(*clf, image, source, req, timings);
  const auto& check = a.prediction.lesion_check;
  if (a.explanation) {  // withheld: no class, no map, no file: nothing to mistake for an answer
    if (!o.out.empty()) write_file(o.out, a.overlay);
    if (!o.heatmap.empty()) write_file(o.heatmap, a.heatmap);
  }
  if (o.json) {
    nlohmann::json j = explain::answer_json(a, req, timings);
    j["file"] = o.image;
    j["model"] = model_name(o.model);
    if (a.explanation && !o.out.empty()) j["gradcam"]["overlay_file"] = o.out;
    if (a.explanation && !o.heatmap.empty()) j["gradcam"]["heatmap_file"] = o.heatmap;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (!a.explanation) {
    std::printf("%s: not explained: the image %s (--force explains it anyway)\n", o.image.c_str(), check.reason.c_str());
    return 0;
  }
  const auto& top = a.prediction.ranked.front();
  const auto& e = *a.explanation;
  std::printf("%s: %s (%s) %.1f%%\n", o.image.c_str(), top.code.c_str(), top.name.c_str(), 100 * top.probability);
  if (check.available && !check.passed) std::printf("warning: the image %s\n", check.reason.c_str());
  std::printf("%s for class %s at layer %s (%dx%d), %.1f ms\n", e.method.c_str(), e.class_code.c_str(), e.layer.c_str(),
              e.grid_width, e.grid_height, explain::total_ms(timings));
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
  app.add_flag("--json", o->json, "Print the API's JSON, with the raw map at the layer's resolution (gradcam.cam)");
  app.add_flag("--force", o->force, "Explain even an image the lesion check refuses");
  app.add_option("image", o->image, "Image file (JPEG, PNG, WebP)")->required();
  return [o] { return run_explain(*o); };
}

}  // namespace dermal::cli
