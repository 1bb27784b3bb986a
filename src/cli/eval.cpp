// dermal eval --images DIR --labels CSV [--split test]: accuracy, balanced accuracy, per-class
// recall/precision/AUC, confusion matrix and calibration of a model on labelled images.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "explain/evaluation.h"

namespace dermal::cli {

namespace {

namespace fs = std::filesystem;

struct EvalOptions {
  ModelOptions model;
  std::string images, labels, split;
  size_t limit = 0;
  int bootstrap = 1000;
  bool json = false;
};

struct Row {
  std::string image, label;
};

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') quoted = !quoted;
    else if (ch == ',' && !quoted) {
      out.push_back(cell);
      cell.clear();
    } else if (ch != '\r') cell += ch;
  }
  out.push_back(cell);
  return out;
}

// Columns: image (image_id, image, file) and label (dx, label); split filters on a split column.
std::vector<Row> read_labels(const std::string& path, const std::string& split) {
  std::ifstream f(path);
  if (!f) throw Error(ErrorKind::invalid_input, "cannot open labels file '" + path + "'");
  std::string line;
  std::getline(f, line);
  auto header = split_csv_line(line);
  auto find = [&](std::initializer_list<const char*> names) -> int {
    for (const char* n : names)
      for (size_t i = 0; i < header.size(); ++i)
        if (header[i] == n) return static_cast<int>(i);
    return -1;
  };
  const int image_col = find({"image_id", "image", "file", "filename"});
  const int label_col = find({"dx", "label", "class"});
  const int split_col = find({"split", "isic2017_split"});
  if (image_col < 0 || label_col < 0)
    throw Error(ErrorKind::invalid_input, "'" + path + "' needs an image column (image_id, image, file) and a label column (dx, label)");
  if (!split.empty() && split_col < 0) throw Error(ErrorKind::invalid_input, "'" + path + "' has no split column for --split");
  std::vector<Row> rows;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    auto cells = split_csv_line(line);
    if (static_cast<int>(cells.size()) <= std::max({image_col, label_col, split_col})) continue;
    if (!split.empty() && cells[split_col] != split) continue;
    rows.push_back({cells[image_col], cells[label_col]});
  }
  return rows;
}

std::string image_path(const std::string& dir, const std::string& image) {
  fs::path p = fs::path(dir) / image;
  if (p.has_extension() && fs::exists(p)) return p.string();
  for (const std::string& ext : image_extensions()) {
    std::string upper = ext;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const std::string& e : {ext, upper})
      if (fs::exists(p.string() + e)) return p.string() + e;
  }
  return p.string();
}

void progress(size_t done, size_t total, bool tty) {
  if (tty) {
    const int width = 30, filled = static_cast<int>(width * done / std::max<size_t>(total, 1));
    std::fprintf(stderr, "\r[%s%s] %zu/%zu", std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), done, total);
    if (done == total) std::fprintf(stderr, "\n");
  } else if (done == total || done % std::max<size_t>(total / 10, 1) == 0) {
    std::fprintf(stderr, "eval: %zu/%zu images\n", done, total);
  }
}

std::string pct(double v) {
  if (std::isnan(v)) return "   -  ";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%5.1f%%", 100 * v);
  return buf;
}

nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

nlohmann::json offsets_json(const formats::ModelCard& card) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [code, b] : card.logit_offsets) j[code] = b;
  return j;
}

int run_eval(const EvalOptions& o) {
  auto clf = load_classifier(o.model);
  std::vector<Row> rows = read_labels(o.labels, o.split);
  if (o.limit && rows.size() > o.limit) rows.resize(o.limit);
  if (rows.empty()) throw Error(ErrorKind::invalid_input, "no labelled images to evaluate");
  std::vector<std::string> codes;
  for (const auto& l : clf->card().labels) codes.push_back(l.code);
  explain::EvalAccumulator acc(codes);
  std::map<std::string, int> unknown_labels;
  int failed = 0;
  const bool tty = isatty(STDERR_FILENO);
  for (size_t i = 0; i < rows.size(); ++i) {
    auto it = std::find(codes.begin(), codes.end(), rows[i].label);
    if (it == codes.end()) {
      ++unknown_labels[rows[i].label];
    } else {
      try {
        explain::Timings t;
        auto bytes = read_file_limited(image_path(o.images, rows[i].image), clf->limits().max_bytes);
        auto p = clf->predict(clf->decode(bytes.data(), bytes.size(), t), t);
        acc.add(static_cast<int>(it - codes.begin()), p.probabilities);
      } catch (const Error& e) {
        ++failed;
        std::fprintf(stderr, "%sdermal: %s: %s\n", tty ? "\n" : "", rows[i].image.c_str(), e.what());
      }
    }
    progress(i + 1, rows.size(), tty);
  }
  for (const auto& [label, n] : unknown_labels)
    std::fprintf(stderr, "dermal: skipped %d images labelled '%s' (not a class of this model)\n", n, label.c_str());
  explain::EvalReport r = acc.report();
  const explain::EvalIntervals ci = acc.bootstrap(o.bootstrap);
  auto interval = [&](const explain::Interval& i) {
    return o.bootstrap > 0 ? nlohmann::json::array({number_or_null(i.low), number_or_null(i.high)}) : nlohmann::json(nullptr);
  };
  if (o.json) {
    nlohmann::json j{{"model", clf->card().name}, {"images", r.images}, {"failed", failed},
                     {"accuracy", r.accuracy}, {"balanced_accuracy", number_or_null(r.balanced_accuracy)},
                     {"ece", r.ece}, {"confusion", r.confusion}, {"labels", r.labels},
                     {"temperature", clf->card().temperature}, {"logit_offsets", offsets_json(clf->card())},
                     {"bootstrap_resamples", o.bootstrap},
                     {"ci95", {{"accuracy", interval(ci.accuracy)}, {"balanced_accuracy", interval(ci.balanced_accuracy)},
                               {"ece", interval(ci.ece)}}}};
    for (size_t c = 0; c < r.labels.size(); ++c) {
      j["per_class"][r.labels[c]] = {{"support", r.support[c]}, {"recall", number_or_null(r.recall[c])},
                                     {"precision", number_or_null(r.precision[c])}, {"auc", number_or_null(r.auc[c])}};
      if (o.bootstrap > 0) {
        j["per_class"][r.labels[c]]["recall_ci95"] = interval(ci.recall[c]);
        j["per_class"][r.labels[c]]["auc_ci95"] = interval(ci.auc[c]);
      }
    }
    std::printf("%s\n", j.dump(2).c_str());
    return failed ? 2 : 0;
  }
  std::printf("model %s, %d images%s\n\n", clf->card().name.c_str(), r.images,
              failed ? (" (" + std::to_string(failed) + " failed)").c_str() : "");
  const bool with_ci = o.bootstrap > 0;
  auto pct_ci = [&](const explain::Interval& i) {
    return with_ci && !std::isnan(i.low) ? "  [" + pct(i.low) + ", " + pct(i.high) + "]" : std::string();
  };
  auto fixed3 = [](double v) { return std::isnan(v) ? std::string("  -  ") : std::to_string(v).substr(0, 5); };
  auto fixed3_ci = [&](const explain::Interval& i) {
    return with_ci ? "[" + fixed3(i.low) + ", " + fixed3(i.high) + "]" : std::string();
  };
  std::printf("temperature         %.4g%s\n", clf->card().temperature, with_ci ? "   (95% bootstrap intervals in brackets)" : "");
  for (const auto& [code, b] : clf->card().logit_offsets) std::printf("logit offset        %s %+.4g\n", code.c_str(), b);
  std::printf("accuracy            %s%s\nbalanced accuracy   %s%s\nECE (15 bins)       %.3f%s\n\n", pct(r.accuracy).c_str(),
              pct_ci(ci.accuracy).c_str(), pct(r.balanced_accuracy).c_str(), pct_ci(ci.balanced_accuracy).c_str(), r.ece,
              with_ci ? ("  " + fixed3_ci(ci.ece)).c_str() : "");
  std::printf("%-8s %7s %8s %18s %9s %7s %14s\n", "class", "images", "recall", with_ci ? "recall 95%" : "", "precision",
              "AUC", with_ci ? "AUC 95%" : "");
  for (size_t c = 0; c < r.labels.size(); ++c)
    std::printf("%-8s %7d %8s %18s %9s %7s %14s\n", r.labels[c].c_str(), r.support[c], pct(r.recall[c]).c_str(),
                pct_ci(ci.recall[c]).c_str(), pct(r.precision[c]).c_str(), fixed3(r.auc[c]).c_str(),
                std::isnan(ci.auc[c].low) ? "" : fixed3_ci(ci.auc[c]).c_str());
  std::printf("\nconfusion (rows: true, columns: predicted)\n%-8s", "");
  for (const auto& l : r.labels) std::printf(" %6s", l.c_str());
  std::printf("\n");
  for (size_t t = 0; t < r.labels.size(); ++t) {
    std::printf("%-8s", r.labels[t].c_str());
    for (size_t p = 0; p < r.labels.size(); ++p) std::printf(" %6d", r.confusion[t][p]);
    std::printf("\n");
  }
  return failed ? 2 : 0;
}

}  // namespace

Command add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  add_model_options(app, o->model, /*labels_flag=*/false);
  app.add_option("--images", o->images, "Folder of images")->required();
  app.add_option("--labels", o->labels, "CSV with an image column (image_id) and a label column (dx)")->required();
  app.add_option("--split", o->split, "Only rows whose split column has this value (e.g. test)");
  app.add_option("--limit", o->limit, "At most this many images");
  app.add_option("--bootstrap", o->bootstrap, "Resamples for the 95% bootstrap intervals (0: none)")->check(CLI::Range(0, 100000));
  app.add_flag("--json", o->json, "Print JSON");
  return [o] { return run_eval(*o); };
}

}  // namespace dermal::cli
