// Helpers for the Keras importer's tests: reference JSON from TensorFlow.js (tools/keras_reference),
// running a loaded Keras model on an N,H,W,C input, and comparisons.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/executor.h"
#include "formats/model_loader.h"

namespace dermal::test::keras {

using nlohmann::json;
using engine::Tensor;

inline json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  return json::parse(f);
}

// A file of the keras_reference fixture (CTest runs tools/keras_reference/make_test_models.sh
// before the KerasRef suites): DIR/<model>/<file>.
inline std::string model_file(const std::string& model, const std::string& file) {
  const std::string path = std::string(DERMAL_KERAS_REFERENCE_DIR) + "/" + model + "/" + file;
  if (!std::filesystem::exists(path)) throw std::runtime_error(path + " is missing: run the keras_reference test first");
  return path;
}

// {"shape": [...], "data": [...]} -> f32 tensor
inline Tensor tensor_of(const json& j) {
  return Tensor::from_floats(j["shape"].get<engine::Shape>(), j["data"].get<std::vector<float>>());
}

struct RunResult {
  Tensor output;  // the graph's first output
  Tensor logits;  // the tensor before a final softmax (== output when there is none)
};

// Runs the model on `input` (N,H,W,C like Keras), reading the output and the logits.
inline RunResult run(const formats::LoadedModel& m, const Tensor& input, std::vector<std::string> keep = {}) {
  engine::PlanOptions opts;
  opts.input_shapes = {{m.graph->inputs.at(0).name, input.shape()}};
  keep.push_back(m.logits);
  opts.keep = keep;
  engine::Executor ex(m.graph, opts);
  ex.set_input(m.graph->inputs[0].name, input);
  ex.forward();
  return {ex.get(m.graph->outputs.at(0).name), ex.get(m.logits)};
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_doubles(), y = b.to_doubles();
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

inline double max_abs(const Tensor& a) {
  double m = 0;
  for (double v : a.to_doubles()) m = std::max(m, std::abs(v));
  return m;
}

inline double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxy / std::sqrt(sxx * syy);
}

// The model matches the reference's output (and logits, when the reference has them) within
// 1e-4, relative to the logits' scale for the logits.
inline void expect_matches_reference(const formats::LoadedModel& m, const json& ref, const std::string& what) {
  RunResult r = run(m, tensor_of(ref["input"]));
  const Tensor expected = tensor_of(ref["output"]);
  EXPECT_LE(max_abs_diff(r.output, expected), 1e-4) << what << ": output";
  EXPECT_GT(max_abs(expected), 1e-3) << what << ": the reference output is (almost) all zeros";
  if (ref.contains("logits")) {
    const Tensor logits = tensor_of(ref["logits"]);
    EXPECT_LE(max_abs_diff(r.logits, logits), 1e-4 * std::max(1.0, max_abs(logits))) << what << ": logits";
  }
}

}  // namespace dermal::test::keras
