// dermal fit-check [--model M] --images DIR... [--out FILE] [--pass-rate P] [--ood DIR...]
//                  [--backbone FILE|model]: fits the lesion check for a model from the user's own
// in-domain images (docs/lesion_check.md). By default it reads the bundled ImageNet-pretrained
// backbone; `--backbone model` reads the classifier's own layers instead.
//
// One image in five (chosen by a hash of its name, so the split is the same on every run) is held
// back to set the threshold; the others give the means and covariances. Classes are the model's own
// top classes, so the images need no labels. Each --images argument counts as one source (a
// clinic, a camera): the threshold lets --pass-rate of each source's held-back images pass.
// --ood folders are only measured, never fitted on.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "cli/commands.h"
#include "cli/common.h"

namespace dermal::cli {

namespace {

namespace fs = std::filesystem;

struct FitCheckOptions {
  ModelOptions model;
  std::vector<std::string> images;
  std::vector<std::string> ood;
  std::string out;
  double pass_rate = 0.99;
  int limit = 0;
  std::string backbone;  // empty: the bundled one; "model": the classifier's own layers
};

constexpr const char* kBundledBackbone = "lesion_backbone_mnv2_112.onnx";

struct Listed {
  std::string path;
  int source = 0;
};

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto& known = image_extensions();
  return std::find(known.begin(), known.end(), ext) != known.end();
}

// Image files under each argument (a folder, searched recursively, or a file), sorted; at most
// `limit` from each argument, spread evenly over it.
std::vector<Listed> list_images(const std::vector<std::string>& args, int limit) {
  std::vector<Listed> out;
  for (const auto& a : args) {
    std::vector<std::string> found;
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      for (auto it = fs::recursive_directory_iterator(a, fs::directory_options::skip_permission_denied, ec);
           it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec) && is_image_file(it->path())) found.push_back(it->path().string());
    } else if (fs::is_regular_file(a, ec)) {
      found.push_back(a);
    } else {
      throw Error(ErrorKind::invalid_input, "'" + a + "' is neither a folder nor a file");
    }
    std::sort(found.begin(), found.end());
    if (limit > 0 && found.size() > static_cast<size_t>(limit)) {
      std::vector<std::string> spread;
      for (int i = 0; i < limit; ++i) spread.push_back(found[found.size() * i / limit]);
      found.swap(spread);
    }
    for (auto& f : found) out.push_back({std::move(f), static_cast<int>(&a - args.data())});
  }
  return out;
}

// The folders' own names, not where they happened to be on the machine that fitted.
std::vector<std::string> folder_names(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) out.push_back(fs::path(a).lexically_normal().filename().string().empty()
                                               ? fs::path(a).lexically_normal().parent_path().filename().string()
                                               : fs::path(a).lexically_normal().filename().string());
  return out;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

struct Measured {
  explain::LesionFeatures features;
  int top_class = 0;
  int source = 0;  // which --images argument it came from
};


// Reads the check's features of every image (the backbone's, or the model's layers and top class);
// unreadable ones are counted and named, not fatal.
std::vector<Measured> measure(explain::Classifier& clf, const std::vector<Listed>& paths, const char* what) {
  std::vector<Measured> out;
  int failed = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    try {
      explain::Timings t;
      auto bytes = read_file_limited(paths[i].path, clf.limits().max_bytes);
      const vision::Image image = clf.decode(bytes.data(), bytes.size(), t);
      if (clf.lesion_backbone()) {  // the backbone alone: its part needs no classes, so no forward pass
        out.push_back({clf.lesion_backbone_features(image), 0, paths[i].source});
      } else {
        explain::Prediction p = clf.predict(image, t);
        out.push_back({p.lesion_features, p.ranked.front().index, paths[i].source});
      }
    } catch (const Error& e) {
      if (++failed <= 5) std::fprintf(stderr, "dermal: skipped %s: %s\n", paths[i].path.c_str(), e.what());
    }
    if ((i + 1) % 500 == 0) std::fprintf(stderr, "  %s: %zu of %zu images\n", what, i + 1, paths.size());
  }
  if (failed > 5) std::fprintf(stderr, "dermal: skipped %d unreadable images in all\n", failed);
  return out;
}

int run_fit_check(FitCheckOptions o) {
  o.model.fitting_check = true;  // fit on the layers the rule chooses, whatever file exists
  if (o.backbone.empty()) {
    const auto dirs = bundled_model_dirs();
    if (dirs.empty() || !fs::exists(fs::path(dirs.front()) / kBundledBackbone))
      throw Error(ErrorKind::invalid_input, std::string("the bundled lesion-check backbone ") + kBundledBackbone +
                                                " was not found: pass --backbone FILE, or --backbone model");
    o.backbone = (fs::path(dirs.front()) / kBundledBackbone).string();
  }
  if (o.backbone != "model") o.model.fit_backbone = o.backbone;
  auto clf = load_classifier(o.model);
  const std::string model_file = cli::model_path(o.model);
  const auto start = std::chrono::steady_clock::now();
  std::vector<Listed> fit_paths, calibration_paths;
  for (auto& p : list_images(o.images, o.limit))
    (fnv1a(fs::path(p.path).filename().string()) % 5 == 0 ? calibration_paths : fit_paths).push_back(p);
  std::fprintf(stderr, "fit-check: %zu images to fit, %zu to set the threshold\n", fit_paths.size(), calibration_paths.size());
  const std::vector<Measured> fit = measure(*clf, fit_paths, "fit");
  const std::vector<Measured> calibration = measure(*clf, calibration_paths, "threshold");
  std::vector<explain::LesionFeatures> fit_features, calibration_features;
  std::vector<int> classes, sources;
  for (const auto& m : fit) {
    fit_features.push_back(m.features);
    classes.push_back(m.top_class);
  }
  for (const auto& m : calibration) {
    calibration_features.push_back(m.features);
    sources.push_back(m.source);
  }
  explain::LesionCheckStats stats =
      explain::fit_lesion_check(fit_features, classes, calibration_features, sources, o.pass_rate);
  stats.content_layers = clf->content_layers();
  stats.appearance_layers = clf->appearance_layers();
  if (const explain::LesionBackbone* b = clf->lesion_backbone()) {
    stats.backbone_file = fs::path(b->path()).filename().string();
    stats.backbone_layers = b->layers();
  }

  auto pass_rate = [&](const std::vector<Measured>& ms) {
    size_t passed = 0;
    for (const auto& m : ms)
      passed += explain::run_lesion_check(stats, m.features, explain::LesionCheckMode::on).passed;
    return ms.empty() ? 0.0 : static_cast<double>(passed) / static_cast<double>(ms.size());
  };
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  nlohmann::json fitted{{"model", fs::path(model_file).filename().string()},
                        {"date", date},
                        {"images_fitted", fit.size()},
                        {"images_for_threshold", calibration.size()},
                        {"folders", folder_names(o.images)},
                        {"pass_rate_target", o.pass_rate},
                        {"pass_rate_threshold_images", pass_rate(calibration)}};
  auto joined = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
  };
  std::printf("lesion check for %s\n", model_file.c_str());
  for (auto [name, model, layers] : {std::tuple{"backbone", &stats.backbone, &stats.backbone_layers},
                                     std::tuple{"content", &stats.content, &stats.content_layers},
                                     std::tuple{"appearance", &stats.appearance, &stats.appearance_layers}})
    if (!layers->empty())
      std::printf("  %-11s %d features from %s%s\n", name, model->dims, joined(*layers).c_str(),
                  model == &stats.backbone ? (" of " + clf->lesion_backbone()->path()).c_str() : "");
  std::printf("  fitted on %zu images; %zu held back pass at %.1f%%\n", fit.size(), calibration.size(),
              100 * pass_rate(calibration));
  for (size_t i = 0; i < o.images.size(); ++i) {
    std::vector<Measured> part;
    for (const auto& m : calibration)
      if (m.source == static_cast<int>(i)) part.push_back(m);
    std::printf("    %-40s %5zu held back, %5.1f%% pass\n", o.images[i].c_str(), part.size(), 100 * pass_rate(part));
  }
  for (const auto& dir : o.ood) {
    const std::vector<Measured> ood = measure(*clf, list_images({dir}, 0), "out-of-domain");
    const double refused = 1 - pass_rate(ood);
    fitted["refused_out_of_domain"][fs::path(dir).filename().string()] = {{"images", ood.size()}, {"refused", refused}};
    std::printf("  out of domain %-30s %5zu images, %5.1f%% refused\n", dir.c_str(), ood.size(), 100 * refused);
  }
  stats.fitted = fitted;
  const std::string out = o.out.empty() ? fs::path(model_file).replace_extension(".check.json").string() : o.out;
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  f << explain::lesion_check_to_json(stats);
  if (!f) throw Error(ErrorKind::invalid_input, "cannot write '" + out + "'");
  std::printf("  wrote %s (%zu bytes of statistics in memory) in %.0f s\n", out.c_str(), stats.bytes(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

}  // namespace

Command add_fit_check(CLI::App& app) {
  auto o = std::make_shared<FitCheckOptions>();
  add_model_options(app, o->model);
  app.add_option("--images", o->images, "In-domain images: folders (searched recursively) or files")->required();
  app.add_option("--ood", o->ood, "Out-of-domain folders to measure (never fitted on)");
  app.add_option("--out,-o", o->out, "Where to write the statistics (default: <model stem>.check.json beside it)");
  app.add_option("--pass-rate", o->pass_rate, "Share of held-back in-domain images that must pass (default 0.99)")
      ->check(CLI::Range(0.51, 0.9999));
  app.add_option("--backbone", o->backbone,
                 std::string("The network the check reads: an ONNX file whose outputs are feature maps, or 'model' for "
                             "the classifier's own layers (default: the bundled ") + kBundledBackbone + ")");
  app.add_option("--limit", o->limit, "At most this many images from each --images argument")->check(CLI::PositiveNumber);
  return [o] { return run_fit_check(*o); };
}

}  // namespace dermal::cli
