// dermal predict [--model M] [--top-k K] [--json] IMAGE...: the most likely lesion types.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "explain/answer.h"

namespace dermal::cli {

namespace {

struct PredictOptions {
  ModelOptions model;
  std::vector<std::string> images;
  int top_k = 3;
  bool json = false;
  bool force = false;  // show the diagnosis even when the lesion check fails
};

int run_predict(const PredictOptions& o) {
  auto clf = load_classifier(o.model);
  explain::AnswerRequest req;
  req.top_k = o.top_k;
  req.force = o.force;
  int failures = 0;
  for (const auto& path : o.images) {
    explain::Timings timings;
    try {
      auto bytes = read_file_limited(path, clf->limits().max_bytes);
      vision::SourceSize source;
      vision::Image image = clf->decode(bytes.data(), bytes.size(), timings, &source);
      const explain::Answer a = explain::answer(*clf, image, source, req, timings);
      if (o.json) {
        nlohmann::json j = explain::answer_json(a, req, timings);
        j["file"] = path;
        j["model"] = model_name(o.model);
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\n", path.c_str());
        const auto& check = a.prediction.lesion_check;
        if (a.diagnosis_withheld)
          std::printf("  not shown: the image %s (--force shows the classes anyway)\n", check.reason.c_str());
        else if (check.available && !check.passed)
          std::printf("  warning: the image %s\n", check.reason.c_str());
        else if (!check.available && check.mode != explain::LesionCheckMode::off)
          std::printf("  note: %s\n", check.reason.c_str());
        const size_t k = a.diagnosis_withheld ? 0 : std::min<size_t>(static_cast<size_t>(o.top_k), a.prediction.ranked.size());
        for (size_t i = 0; i < k; ++i) {
          const auto& c = a.prediction.ranked[i];
          std::printf("  %-6s %5.1f%%  %s%s\n", c.code.c_str(), 100 * c.probability, c.name.c_str(),
                      c.malignant ? " (malignant)" : "");
        }
        std::printf("  %.1f ms\n", explain::total_ms(timings));
      }
    } catch (const Error& e) {
      ++failures;
      if (o.json) std::printf("%s\n", nlohmann::json{{"file", path}, {"error", e.what()}}.dump().c_str());
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
