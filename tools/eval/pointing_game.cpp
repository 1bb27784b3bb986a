// dermal_pointing_game: do the class activation maps point at the lesion? For each image of a
// HAM10000 split, explain the top class at the model's default layer, take the maximum of the
// heatmap at the image's own resolution, and count a hit when the lesion mask is white there
// (the pointing game of Zhang et al., "Top-down neural attention by excitation backprop", 2016).
// Two baselines need no model: the image centre, and a uniform random point (its hit rate is
// the lesion's share of the image, so its "hits" are an expectation).
//
//   dermal_pointing_game [--model M] [--card C] [--limit N] [--scorecam-limit 100] [--json F]
//
// Score-CAM runs one masked forward per channel of the layer (1280 on the default model), so
// it is measured on the first --scorecam-limit images only, and the report says so.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "explain/classifier.h"

namespace dermal::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  cli::ModelOptions model;
  std::string data = DERMAL_DEFAULT_HAM10000;
  std::string split = "test";
  size_t limit = 0;             // 0: every image of the split
  size_t scorecam_limit = 100;  // Score-CAM on the first N images only
  std::vector<std::string> methods = explain::cam_method_names();
  std::string json;
};

// One row of the table: a method or a baseline.
struct Tally {
  std::string name;
  int images = 0;
  double hits = 0;   // a whole count, except the uniform baseline's expectation
  int flat = 0;      // maps with no maximum (all zero): counted as misses
  double ms = 0;     // explaining time, all images together
  int subset_images = 0;
  double subset_hits = 0;  // on the Score-CAM subset, to compare like with like
};

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') quoted = !quoted;
    else if (ch == ',' && !quoted) cells.emplace_back();
    else if (ch != '\r') cells.back() += ch;
  }
  return cells;
}

// The image ids of one split of metadata.csv, in file order.
std::vector<std::string> read_split(const std::string& csv, const std::string& split) {
  std::ifstream f(csv);
  if (!f) throw Error(ErrorKind::invalid_input, "cannot open '" + csv + "'");
  std::string line;
  std::getline(f, line);
  const auto header = split_csv_line(line);
  auto column = [&](const char* name) {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw Error(ErrorKind::invalid_input, "'" + csv + "' has no '" + name + "' column");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t id_col = column("image_id"), split_col = column("split");
  std::vector<std::string> ids;
  while (std::getline(f, line)) {
    const auto cells = split_csv_line(line);
    if (cells.size() > std::max(id_col, split_col) && cells[split_col] == split) ids.push_back(cells[id_col]);
  }
  return ids;
}

// 95% Wilson score interval of hits out of n.
std::pair<double, double> wilson(double hits, int n) {
  if (n == 0) return {0, 1};
  const double z = 1.959963984540054, p = hits / n, z2n = z * z / n;
  const double centre = (p + z2n / 2) / (1 + z2n);
  const double half = z / (1 + z2n) * std::sqrt(p * (1 - p) / n + z2n / (4.0 * n));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

// The lesion mask as booleans, scaled to sample it at a point of a width x height image.
struct Mask {
  vision::Image pixels;
  bool lesion_at(int x, int y, int width, int height) const {
    const int mx = static_cast<int>(static_cast<int64_t>(x) * pixels.width / width);
    const int my = static_cast<int>(static_cast<int64_t>(y) * pixels.height / height);
    return pixels.pixel(mx, my)[0] >= 128;  // white = lesion; grayscale decodes as R = G = B
  }
  double lesion_share() const {
    int64_t white = 0;
    for (int y = 0; y < pixels.height; ++y)
      for (int x = 0; x < pixels.width; ++x) white += pixels.pixel(x, y)[0] >= 128;
    return static_cast<double>(white) / (static_cast<double>(pixels.width) * pixels.height);
  }
};

// First maximum in row-major order; false when the map is constant (no point to play).
bool argmax(const vision::FloatMap& map, int& x, int& y) {
  auto [lo, hi] = std::minmax_element(map.values.begin(), map.values.end());
  if (map.values.empty() || *lo == *hi) return false;
  const auto at = hi - map.values.begin();
  x = static_cast<int>(at % map.width);
  y = static_cast<int>(at / map.width);
  return true;
}

std::string percent_row(const Tally& t) {
  auto [lo, hi] = wilson(t.hits, t.images);
  char buf[160];
  const bool whole = t.hits == std::floor(t.hits);
  std::snprintf(buf, sizeof buf, "| %s | %d | %.*f | %.1f%% (%.1f-%.1f) |", t.name.c_str(), t.images, whole ? 0 : 1,
                t.hits, t.images ? 100 * t.hits / t.images : 0.0, 100 * lo, 100 * hi);
  return buf;
}

int run(const Options& o) {
  auto clf = cli::load_classifier(o.model);
  std::vector<std::string> ids = read_split(o.data + "/metadata.csv", o.split);
  if (o.limit && ids.size() > o.limit) ids.resize(o.limit);
  if (ids.empty()) throw Error(ErrorKind::invalid_input, "no images in split '" + o.split + "'");
  const size_t subset = std::min(o.scorecam_limit, ids.size());

  std::vector<Tally> methods;
  for (const auto& m : o.methods) methods.push_back({explain::cam_method_name(explain::parse_cam_method(m))});
  Tally centre{"centre prior (baseline)"}, uniform{"uniform random point (baseline, expected hits)"};
  std::vector<std::string> failures;
  const bool tty = isatty(STDERR_FILENO);
  const auto start = Clock::now();

  for (size_t i = 0; i < ids.size(); ++i) {
    try {
      explain::Timings timings;
      auto bytes = cli::read_file_limited(o.data + "/images/" + ids[i] + ".jpg", clf->limits().max_bytes);
      const vision::Image image = clf->decode(bytes.data(), bytes.size(), timings);
      auto mask_bytes = cli::read_file_limited(o.data + "/masks/" + ids[i] + ".png", clf->limits().max_bytes);
      const Mask mask{vision::decode_image(mask_bytes.data(), mask_bytes.size(), clf->limits())};
      const engine::Tensor x = clf->input_tensor(image);
      const bool in_subset = i < subset;
      auto score = [&](Tally& t, double hit) {
        ++t.images, t.hits += hit;
        if (in_subset) ++t.subset_images, t.subset_hits += hit;
      };
      score(centre, mask.lesion_at(image.width / 2, image.height / 2, image.width, image.height));
      score(uniform, mask.lesion_share());
      for (Tally& t : methods) {
        explain::ExplainRequest req;
        req.method = explain::parse_cam_method(t.name);
        if (req.method == explain::CamMethod::scorecam && !in_subset) continue;
        auto t0 = Clock::now();
        explain::Explanation e = clf->explain_input(x, image.width, image.height, req, timings);
        t.ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        int px = 0, py = 0;
        const bool pointed = argmax(e.heatmap, px, py);
        t.flat += !pointed;
        score(t, pointed && mask.lesion_at(px, py, image.width, image.height));
      }
    } catch (const Error& e) {
      failures.push_back(ids[i] + ": " + e.what());
    }
    const size_t done = i + 1;
    if (tty || done == ids.size() || done % 50 == 0) {
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      std::fprintf(stderr, tty ? "\rpointing game: %zu/%zu images, %.0f s" : "pointing game: %zu/%zu images, %.0f s\n",
                   done, ids.size(), s);
      if (tty && done == ids.size()) std::fprintf(stderr, "\n");
    }
  }

  const auto& card = clf->card();
  std::printf("Pointing game: %s, HAM10000 %s split (%zu images), top class, layer %s\n\n", card.name.c_str(),
              o.split.c_str(), ids.size(), clf->resolve_layer(card.explain_layer).c_str());
  std::printf("| method | images | hits | pointing accuracy (95%% Wilson CI) |\n|---|---|---|---|\n");
  for (const Tally& t : methods) std::printf("%s\n", percent_row(t).c_str());
  std::printf("%s\n%s\n\n", percent_row(centre).c_str(), percent_row(uniform).c_str());
  std::printf("A hit: the heatmap's maximum (at the image's resolution, first in row order on ties) lies on a white\n"
              "mask pixel. Centre prior: the mask at the image centre. Uniform random point: the lesion's share\n"
              "of the image, averaged (an expectation; its interval is a binomial approximation).\n");
  for (const Tally& t : methods) {
    if (t.name == "scorecam")
      std::printf("Score-CAM: the first %zu images only (one forward per channel of the layer; --scorecam-limit).\n",
                  subset);
    if (t.flat) std::printf("%s: %d constant map(s), counted as misses.\n", t.name.c_str(), t.flat);
  }
  if (subset < ids.size()) {
    std::printf("On those first %zu images:", subset);
    for (const Tally& t : methods) std::printf(" %s %.0f,", t.name.c_str(), t.subset_hits);
    std::printf(" centre %.0f, uniform %.1f hits.\n", centre.subset_hits, uniform.subset_hits);
  }
  std::printf("Explaining time per image:");
  for (const Tally& t : methods) std::printf(" %s %.0f ms%s", t.name.c_str(), t.images ? t.ms / t.images : 0.0,
                                             &t == &methods.back() ? ".\n" : ",");
  for (const auto& f : failures) std::fprintf(stderr, "skipped %s\n", f.c_str());

  if (!o.json.empty()) {
    nlohmann::json j{{"model", card.name}, {"split", o.split}, {"images", ids.size()},
                     {"layer", clf->resolve_layer(card.explain_layer)}, {"scorecam_images", subset},
                     {"skipped", failures}};
    auto entry = [](const Tally& t) {
      auto [lo, hi] = wilson(t.hits, t.images);
      return nlohmann::json{{"method", t.name}, {"images", t.images}, {"hits", t.hits},
                            {"accuracy", t.images ? t.hits / t.images : 0.0}, {"ci95", {lo, hi}},
                            {"constant_maps", t.flat}, {"ms_per_image", t.images ? t.ms / t.images : 0.0},
                            {"subset_images", t.subset_images}, {"subset_hits", t.subset_hits}};
    };
    for (const Tally& t : methods) j["methods"].push_back(entry(t));
    j["baselines"] = {entry(centre), entry(uniform)};
    j["baselines"][0]["method"] = "centre";
    j["baselines"][1]["method"] = "uniform";
    std::ofstream f(o.json);
    if (!(f << j.dump(2) << "\n")) throw Error(ErrorKind::invalid_input, "cannot write '" + o.json + "'");
  }
  return failures.size() == ids.size() ? 1 : 0;
}

}  // namespace
}  // namespace dermal::tools

int main(int argc, char** argv) {
  using namespace dermal;
  tools::Options o;
  CLI::App app{"Pointing game: how often each CAM method's maximum falls on the lesion (HAM10000 masks)"};
  cli::add_model_options(app, o.model);
  app.add_option("--data", o.data, "HAM10000 folder: metadata.csv, images/, masks/");
  app.add_option("--split", o.split, "Split of metadata.csv to use");
  app.add_option("--limit", o.limit, "Only the first N images of the split (0: all)");
  app.add_option("--scorecam-limit", o.scorecam_limit, "Score-CAM on the first N images only");
  app.add_option("--methods", o.methods, "Methods to measure (default: all seven)");
  app.add_option("--json", o.json, "Also write the results as JSON to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return tools::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dermal_pointing_game: %s\n", e.what());
    return 2;
  }
}
