// The two real Keras files in ../shared/models/keras_real (a Keras 3.6 .keras and a Keras 2.4
// .h5) against TensorFlow.js running the same config and weights (committed references made by
// tools/keras_reference/make_real_reference.sh).
#include "formats/keras_check.h"

namespace dermal::test::keras {
namespace {

const std::string kShared = DERMAL_SHARED_DIR;
const std::string kData = std::string(DERMAL_SOURCE_DIR) + "/tests/data/keras";

struct RealFile {
  const char* file;
  const char* reference;
  const char* format;
  const char* producer;
  const char* output;  // the last Dense layer's name: the output tensor
};

class KerasRealFile : public ::testing::TestWithParam<RealFile> {};

TEST_P(KerasRealFile, LoadsAndMatchesTfjs) {
  const RealFile& p = GetParam();
  formats::LoadedModel m = formats::load_model(kShared + "/models/keras_real/" + p.file);
  EXPECT_EQ(m.format, p.format);
  EXPECT_EQ(m.producer, p.producer);
  EXPECT_EQ(m.input_layout, "nhwc");
  ASSERT_EQ(m.graph->inputs.size(), 1u);
  EXPECT_EQ(m.graph->inputs[0].shape, (engine::Shape{-1, 28, 28, 3}));
  ASSERT_EQ(m.graph->outputs.size(), 1u);
  EXPECT_EQ(m.graph->outputs[0].name, p.output);
  // A final softmax is bypassed for gradients.
  EXPECT_TRUE(m.output_is_probability);
  EXPECT_EQ(m.logits, std::string(p.output) + "/preact");
  expect_matches_reference(m, read_json(kData + "/" + p.reference), p.file);
}

INSTANTIATE_TEST_SUITE_P(Real, KerasRealFile,
                         ::testing::Values(RealFile{"small_cnn_28.keras", "small_cnn_28_keras_reference.json", "keras",
                                                    "keras 3.6.0", "dense_8"},
                                           RealFile{"small_cnn_28.h5", "small_cnn_28_h5_reference.json", "hdf5",
                                                    "keras 2.4.0", "dense_2"}),
                         [](const auto& info) { return std::string(info.param.format); });

// Keras layer names are tensor names: an inner layer can be read (and explained) by its name.
TEST(KerasRealFileNames, LayerOutputsAreNamedAfterLayers) {
  formats::LoadedModel m = formats::load_model(kShared + "/models/keras_real/small_cnn_28.h5");
  json ref = read_json(kData + "/small_cnn_28_h5_reference.json");
  Tensor input = tensor_of(ref["input"]);
  engine::PlanOptions opts;
  opts.input_shapes = {{m.graph->inputs[0].name, input.shape()}};
  opts.keep = {"conv2d_3", "max_pooling2d_1", "flatten"};
  engine::Executor ex(m.graph, opts);
  EXPECT_EQ(ex.info("conv2d_3").shape, (engine::Shape{2, 64, 11, 11}));  // NCHW inside the graph
  EXPECT_EQ(ex.info("max_pooling2d_1").shape, (engine::Shape{2, 64, 6, 6}));
  EXPECT_EQ(ex.info("flatten").shape, (engine::Shape{2, 2304}));
}

}  // namespace
}  // namespace dermal::test::keras
