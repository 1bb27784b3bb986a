#include "cli/common.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "engine/dnnl_util.h"

namespace dermal::cli {

namespace fs = std::filesystem;

namespace {
constexpr const char* kDefaultModel = "skinnet_mnv2_ham_isic224.onnx";
}

void add_model_options(CLI::App& app, ModelOptions& o, bool labels_flag) {
  app.add_option("--model,-m", o.model, "Model file (.onnx, .keras, .h5, TensorFlow.js model.json); default: the bundled " + std::string(kDefaultModel));
  app.add_option("--card", o.card, "Model card JSON (default: the model's sidecar .json or metadata)");
  app.add_option("--threads", o.threads, "Compute threads (default: all cores)")->check(CLI::Range(1, 256));
  if (labels_flag)
    app.add_option("--labels", o.labels, "Class codes in output order: a file with one per line, or a,b,c (overrides the card)");
  app.add_option("--preprocess", o.preprocess, "Keras preprocessing: caffe, tf, torch or raw (overrides the card)")
      ->check(CLI::IsMember({"caffe", "tf", "torch", "raw"}));
  app.add_option("--temperature", o.temperature, "Softmax temperature (overrides the card's; 1: uncalibrated)")
      ->check(CLI::PositiveNumber);
  app.add_option("--logit-offsets", o.logit_offsets,
                 "The operating point: CODE=NUMBER,... added to the temperature-scaled logits (overrides the card's; "
                 "none: without it)");
  app.add_option("--precision", o.precision,
                 "Convolutions in f32 or bf16 (about twice as fast on CPUs with AVX-512 BF16; f32 elsewhere); "
                 "default: the card's, else f32")
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--lesion-check", o.lesion_check,
                 "Is it a skin-lesion image? on: withhold the diagnosis when not (default), warn: show it anyway, off")
      ->check(CLI::IsMember({"on", "warn", "off"}));
  app.add_option("--check", o.check_file, "Lesion-check statistics (default: the model's sidecar .check.json)");
  app.add_option("--check-threshold", o.check_threshold, "Lesion-check threshold (default: the fitted one, 1)")
      ->check(CLI::PositiveNumber);
  app.add_option("--display-size", o.display_size,
                 "Decode big images down to this longer side (never below the model's input) and draw overlays at "
                 "most this size; 0: every pixel (default 1024)")
      ->check(CLI::Range(0, 65536));
}

namespace {

// "a, b,c" -> {"a", "b", "c"}: cells trimmed, empty ones dropped.
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string cell;
  for (char ch : text + ",") {
    if (ch == ',') {
      while (!cell.empty() && std::isspace(static_cast<unsigned char>(cell.back()))) cell.pop_back();
      size_t start = cell.find_first_not_of(" \t\r");
      if (start != std::string::npos) out.push_back(cell.substr(start));
      cell.clear();
    } else {
      cell += ch;
    }
  }
  return out;
}

std::vector<std::string> parse_labels(const std::string& arg) {
  std::string text = arg;
  if (fs::is_regular_file(arg)) {
    std::ifstream f(arg);
    text.assign(std::istreambuf_iterator<char>(f), {});
    for (char& ch : text)
      if (ch == '\n') ch = ',';
  }
  return split_list(text);
}

// --logit-offsets: "mel=0.4,bcc=0.1", or "none" for no offsets; "" keeps the card's.
std::optional<std::vector<std::pair<std::string, double>>> parse_logit_offsets(const std::string& arg) {
  if (arg.empty()) return std::nullopt;
  std::vector<std::pair<std::string, double>> out;
  if (arg == "none") return out;
  for (const auto& cell : split_list(arg)) {
    const size_t eq = cell.find('=');
    const std::string code = cell.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : cell.substr(eq + 1);
    char* end = nullptr;
    const double b = std::strtod(value.c_str(), &end);
    if (code.empty() || value.empty() || *end != '\0' || !std::isfinite(b))
      throw Error(ErrorKind::invalid_input, "--logit-offsets: '" + cell + "' is not CODE=NUMBER (e.g. mel=0.4, or none)");
    for (const auto& [seen, unused] : out)
      if (seen == code) throw Error(ErrorKind::invalid_input, "--logit-offsets names '" + code + "' twice");
    out.emplace_back(code, b);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> extensions{".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif"};
  return extensions;
}

std::vector<std::string> bundled_model_dirs() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) {
    fs::path dir = exe.parent_path();
    candidates = {dir / "models", dir.parent_path() / "models", dir.parent_path() / "share" / "dermal" / "models"};
  }
  candidates.push_back(fs::current_path(ec) / "models");
  std::vector<std::string> out;
  for (const auto& c : candidates)
    if (fs::exists(c / kDefaultModel, ec)) out.push_back(c.string());
  return out;
}

std::string default_model_path() {
  if (const char* env = std::getenv("MODEL_PATH"); env && *env) return env;
  const auto dirs = bundled_model_dirs();
  if (!dirs.empty()) return (fs::path(dirs.front()) / kDefaultModel).string();
  throw Error(ErrorKind::invalid_input, std::string("no model given and the bundled ") + kDefaultModel +
                                            " was not found: pass --model or set MODEL_PATH");
}

std::string model_path(const ModelOptions& o) { return o.model.empty() ? default_model_path() : o.model; }

std::string model_name(const ModelOptions& o) { return fs::path(model_path(o)).stem().string(); }

std::unique_ptr<explain::Classifier> load_classifier(const ModelOptions& o) {
  if (o.threads > 0) engine::dnnl_util::set_threads(o.threads);
  formats::CardOverrides overrides{parse_labels(o.labels), o.preprocess, o.temperature, o.precision, std::nullopt,
                                   parse_logit_offsets(o.logit_offsets)};
  explain::LesionCheckOptions check{explain::parse_lesion_check_mode(o.lesion_check), o.check_file, o.check_threshold,
                                    bundled_model_dirs(), o.fitting_check, o.fit_backbone};
  auto clf = explain::Classifier::load(model_path(o), o.card, overrides, check);
  clf->set_working_side(o.display_size);
  return clf;
}

std::vector<uint8_t> read_file_limited(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(ErrorKind::invalid_input, "'" + path + "' is not a readable file");
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error(ErrorKind::invalid_input, "cannot read '" + path + "'");
  if (size > max_bytes)
    throw Error(ErrorKind::too_large, "'" + path + "' is " + std::to_string(size) + " bytes; the limit is " +
                                          std::to_string(max_bytes));
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes(size);
  if (!f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw Error(ErrorKind::invalid_input, "cannot read '" + path + "'");
  return bytes;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  if (!f || !f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
    throw Error(ErrorKind::invalid_input, "cannot write '" + path + "'");
}

}  // namespace dermal::cli
