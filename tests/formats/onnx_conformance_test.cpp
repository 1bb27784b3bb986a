// ONNX's own conformance data (Debian libonnx-testdata, data/node/*): every test whose graph
// uses only ops we register must reproduce ONNX's expected outputs at ONNX's tolerances
// (rtol 1e-3, atol 1e-7). Tests that use other ops, or attributes and dtypes we refuse at load,
// are skipped with the reason the importer gave; that list is written to
// onnx_conformance_skipped.txt beside the test binary, so it is generated, never hand-written.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "engine/executor.h"
#include "engine/op_check.h"
#include "formats/onnx_importer.h"

namespace dermal::test {
namespace {

namespace fs = std::filesystem;
using engine::Executor;
using engine::PlanOptions;

std::vector<std::string> list_node_tests() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(DERMAL_ONNX_TESTDATA, ec))
    if (entry.is_directory() && fs::exists(entry.path() / "model.onnx")) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void record_skip(const std::string& test, const std::string& reason) {
  static std::mutex mutex;
  static bool first = true;
  std::lock_guard<std::mutex> lock(mutex);
  std::ofstream out("onnx_conformance_skipped.txt", first ? std::ios::trunc : std::ios::app);
  first = false;
  out << test << "\t" << reason << "\n";
}

std::vector<std::string> sorted_pb(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) files.push_back(e.path().string());
  // input_10.pb sorts after input_9.pb
  std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return files;
}

// Does every node reading `tensor` read it at an input position gradients do not flow through?
bool only_argument(const engine::Graph& g, const std::string& tensor) {
  const auto readers = g.consumers(tensor);
  if (readers.empty()) return false;
  for (const engine::Node* n : readers)
    for (size_t i = 0; i < n->inputs.size(); ++i)
      if (n->inputs[i] == tensor && n->op->differentiable(i)) return false;
  return true;
}

class OnnxConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxConformance, MatchesExpectedOutputs) {
  const std::string name = GetParam();
  const fs::path dir = fs::path(DERMAL_ONNX_TESTDATA) / name;
  engine::Graph graph;
  try {
    graph = formats::load_onnx((dir / "model.onnx").string());
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::unsupported) FAIL() << "load failed: " << e.what();
    record_skip(name, e.what());
    GTEST_SKIP() << e.what();
  }
  auto shared = std::make_shared<engine::Graph>(std::move(graph));
  int sets = 0;
  for (const auto& set : fs::directory_iterator(dir)) {
    if (!set.is_directory() || set.path().filename().string().rfind("test_data_set", 0) != 0) continue;
    auto inputs = sorted_pb(set.path(), "input_");
    auto outputs = sorted_pb(set.path(), "output_");
    ASSERT_LE(inputs.size(), shared->inputs.size()) << "more input files than graph inputs";
    PlanOptions opts;
    std::vector<std::pair<std::string, Tensor>> feeds;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Tensor t = formats::load_tensor_pb(inputs[i]);
      const std::string& in_name = shared->inputs[i].name;
      // Integer inputs are shape arguments (Reshape's shape, Gather's indices), and so are float
      // inputs that every reader takes as an argument rather than data (Resize's scales): bound
      // by value, as a model's constants would be.
      if (t.dtype() == DType::i64 || only_argument(*shared, in_name)) opts.input_values[in_name] = t;
      else {
        opts.input_shapes[in_name] = t.shape();
        feeds.emplace_back(in_name, t);
      }
    }
    std::unique_ptr<Executor> ex;
    try {
      ex = std::make_unique<Executor>(shared, opts);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::unsupported) FAIL() << "planning failed: " << e.what();
      record_skip(name, e.what());
      GTEST_SKIP() << e.what();
    }
    for (auto& [in_name, t] : feeds) ex->set_input(in_name, t);
    ex->forward();
    ASSERT_EQ(outputs.size(), shared->outputs.size());
    for (size_t k = 0; k < outputs.size(); ++k) {
      Tensor expected = formats::load_tensor_pb(outputs[k]);
      Tensor actual = ex->get(shared->outputs[k].name);
      EXPECT_EQ(compare(actual, expected, 1e-7, 1e-3), "")
          << name << " " << set.path().filename() << " output " << shared->outputs[k].name;
    }
    ++sets;
  }
  ASSERT_GT(sets, 0) << "no test_data_set in " << dir;
}

INSTANTIATE_TEST_SUITE_P(Node, OnnxConformance, ::testing::ValuesIn(list_node_tests()),
                         [](const auto& info) { return info.param; });

// The suite above skips what we refuse; this makes sure the ops the issue names are not among
// the refused, so a registry or importer regression cannot pass by skipping everything.
TEST(OnnxConformanceData, TheCnnOpsAreNotSkipped) {
  const char* must_load[] = {
      "test_add_bcast", "test_averagepool_2d_ceil", "test_averagepool_2d_pads_count_include_pad",
      "test_batchnorm_example", "test_cast_FLOAT_to_DOUBLE", "test_clip", "test_concat_2d_axis_0", "test_constant",
      "test_conv_with_strides_padding", "test_div", "test_dropout_default", "test_edge_pad", "test_elu", "test_erf",
      "test_flatten_axis0", "test_gather_0", "test_gemm_default_no_bias", "test_globalaveragepool",
      "test_globalmaxpool", "test_hardsigmoid", "test_hardswish", "test_identity", "test_leakyrelu",
      "test_logsoftmax_axis_1", "test_matmul_4d", "test_maxpool_2d_ceil", "test_maxpool_2d_pads", "test_mul",
      "test_pow", "test_prelu_broadcast", "test_reduce_mean_keepdims_example", "test_reflect_pad", "test_relu",
      "test_reshape_negative_dim", "test_selu", "test_shape", "test_sigmoid", "test_slice", "test_softmax_axis_0",
      "test_softplus", "test_sqrt", "test_squeeze", "test_sub", "test_tanh", "test_transpose_default",
      "test_unsqueeze_axis_0"};
  for (const char* name : must_load) {
    const fs::path model = fs::path(DERMAL_ONNX_TESTDATA) / name / "model.onnx";
    EXPECT_NO_THROW(formats::load_onnx(model.string())) << name;
  }
}

TEST(OnnxConformanceData, IsInstalled) {
  // Without the data the suite above would be empty and prove nothing.
  ASSERT_GT(list_node_tests().size(), 100u) << "install libonnx-testdata (" << DERMAL_ONNX_TESTDATA << ")";
}

}  // namespace
}  // namespace dermal::test
