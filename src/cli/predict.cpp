// dermal predict [--model M] [--top-k K] [--json] IMAGE...: the most likely lesion types.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"

namespace dermal::cli {

namespace {

struct PredictOptions {
  ModelOptions model;
  std::vector<std::string> images;
  int top_k = 3;
  bool json = false;
  bool force = false;  // show the diagnosis even when the lesion check fails
};

nlohmann::json timings_json(const explain::Timings& t) {
  nlohmann::json j = nlohmann::json::object();
  double total = 0;
  for (const auto& [stage, ms] : t) {
    j[stage] = ms;
    total += ms;
  }
  j["total"] = total;
  return j;
}

int run_predict(const PredictOptions& o) {
  auto clf = load_classifier(o.model);
  int failures = 0;
  for (const auto& path : o.images) {
    explain::Timings timings;
    try {
      auto bytes = read_file_limited(path, clf->limits().max_bytes);
      vision::Image image = clf->decode(bytes.data(), bytes.size(), timings);
      explain::Prediction p = clf->predict(image, timings);
      const bool withheld = p.lesion_check.withholds_diagnosis() && !o.force;
      const size_t k = withheld ? 0 : std::min<size_t>(static_cast<size_t>(o.top_k), p.ranked.size());
      if (o.json) {
        nlohmann::json j{{"image", path}, {"lesion_check", explain::lesion_check_json(p.lesion_check)}};
        j["diagnosis_withheld"] = withheld;
        j["top"] = nlohmann::json::array();
        for (size_t i = 0; i < k; ++i)
          j["top"].push_back({{"label", p.ranked[i].code},
                              {"name", p.ranked[i].name},
                              {"malignant", p.ranked[i].malignant},
                              {"probability", p.ranked[i].probability}});
        if (withheld) j["probabilities"] = nullptr;
        else
          for (const auto& c : p.ranked) j["probabilities"][c.code] = c.probability;
        j["timings_ms"] = timings_json(timings);
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\n", path.c_str());
        const auto& check = p.lesion_check;
        if (withheld)
          std::printf("  not shown: the image %s (--force shows the classes anyway)\n", check.reason.c_str());
        else if (check.available && !check.passed)
          std::printf("  warning: the image %s\n", check.reason.c_str());
        else if (!check.available && check.mode != explain::LesionCheckMode::off)
          std::printf("  note: %s\n", check.reason.c_str());
        for (size_t i = 0; i < k; ++i)
          std::printf("  %-6s %5.1f%%  %s%s\n", p.ranked[i].code.c_str(), 100 * p.ranked[i].probability,
                      p.ranked[i].name.c_str(), p.ranked[i].malignant ? " (malignant)" : "");
        std::printf("  %.1f ms\n", timings_json(timings)["total"].get<double>());
      }
    } catch (const Error& e) {
      ++failures;
      if (o.json) std::printf("%s\n", nlohmann::json{{"image", path}, {"error", e.what()}}.dump().c_str());
      else std::fprintf(stderr, "dermal: %s: %s\n", path.c_str(), e.what());
    }
    std::fflush(stdout);
  }
  return failures == 0 ? 0 : 2;
}

}  // namespace

Command add_predict(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  add_model_options(app, o->model);
  app.add_option("--top-k,-k", o->top_k, "How many classes to show")->check(CLI::Range(1, 1000));
  app.add_flag("--json", o->json, "One JSON object per image and line");
  app.add_flag("--force", o->force, "Show the classes even for an image the lesion check refuses");
  app.add_option("images", o->images, "Image files (JPEG, PNG, WebP)")->required();
  return [o] { return run_predict(*o); };
}

}  // namespace dermal::cli
