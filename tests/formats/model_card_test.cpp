// The model card reader (formats/model_card.h) on cards as docs/model-card.md describes them, and
// on the malformed ones fuzzing produced (fuzz/model_card.cpp): a field of the wrong type, a size
// or number out of range. Every refusal is an invalid_model error that names the card and the field.
#include <gtest/gtest.h>

#include "error_check.h"
#include "formats/model_card.h"

namespace dermal::test {
namespace {

TEST(ModelCard, ReadsEveryField) {
  const formats::ModelCard c = formats::parse_model_card(R"({
    "name": "skinnet", "labels": ["akiec", {"code": "mel", "name": "Melanoma", "malignant": true}],
    "input": {"name": "input", "width": 224, "height": 192, "layout": "nhwc", "channels": 1},
    "preprocess": {"mode": "torch", "resize": "area", "keep_aspect": true, "channel_order": "bgr"},
    "explain": {"layer": "features.18"}, "temperature": 0.9, "logit_offsets": {"mel": 0.4}, "precision": "bf16", "f32_nodes": ["m2/head", "m2/project"], "metrics": {"balanced_accuracy": 0.7}})",
                                                         "card.json");
  ASSERT_EQ(c.labels.size(), 2u);
  EXPECT_EQ(c.labels[1].code, "mel");
  EXPECT_EQ(c.labels[1].name, "Melanoma");
  EXPECT_TRUE(c.labels[1].malignant);
  EXPECT_EQ(c.preprocess.width, 224);
  EXPECT_EQ(c.preprocess.height, 192);
  EXPECT_EQ(c.stated_layout, "nhwc");  // the model's own layout and channels are reconciled at load
  EXPECT_EQ(c.stated_channels, 1);
  EXPECT_TRUE(c.preprocess.bgr);
  EXPECT_EQ(c.preprocess.resize, "area");
  EXPECT_DOUBLE_EQ(c.preprocess.std[0], 0.229);
  EXPECT_EQ(c.explain_layer, "features.18");
  EXPECT_DOUBLE_EQ(c.temperature, 0.9);
  EXPECT_EQ(c.logit_offsets, (std::vector<std::pair<std::string, double>>{{"mel", 0.4}}));
  EXPECT_EQ(formats::logit_offsets_by_label(c), (std::vector<double>{0.0, 0.4}));  // akiec gets none
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_EQ(c.f32_nodes, (std::vector<std::string>{"m2/head", "m2/project"}));
  EXPECT_EQ(c.metrics_json, R"({"balanced_accuracy":0.7})");
}

TEST(ModelCard, MalformedCardsAreRefusedNamingTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"labels": ["a"], "name": 3})", "a field has the wrong type"},
      {R"({"labels": ["a"], "input": [224, 224]})", "input must be an object"},
      {R"({"labels": ["a"], "input": {"width": 1e300}})", "input.width must be a whole number of pixels, at most 16384"},
      {R"({"labels": ["a"], "input": {"height": -3}})", "input.height must be a whole number"},
      {R"({"labels": ["a"], "input": {"width": 100000}})", "input.width"},
      {R"({"labels": ["a"], "input": {"layout": "hwc"}})", "input.layout must be nchw or nhwc"},
      {R"({"labels": ["a"], "input": {"channels": 4}})", "input.channels must be 1 (grayscale) or 3 (RGB)"},
      {R"({"labels": ["a"], "preprocess": 7})", "preprocess must be an object"},
      {R"({"labels": ["a"], "preprocess": {"mode": 1}})", "a field has the wrong type"},
      {R"({"labels": ["a"], "preprocess": {"mean": [0, 0, 1e999]}})", "is not a JSON object"},
      {R"({"labels": ["a"], "preprocess": {"std": [1, 0, 1]}})", "preprocess.std must hold finite numbers other than 0"},
      {R"({"labels": ["a"], "explain": "conv"})", "explain must be an object"},
      {R"({"labels": ["a"], "temperature": -1})", "temperature must be a positive number"},
      {R"({"labels": ["a"], "temperature": "hot"})", "a field has the wrong type"},
      {R"({"labels": ["a"], "logit_offsets": [0.4]})", "logit_offsets must be an object of class code: number"},
      {R"({"labels": ["a"], "logit_offsets": {"a": "high"}})", "logit_offsets['a'] must be a finite number"},
      {R"({"labels": ["a"], "precision": "f16"})", "precision must be f32 or bf16"},
      {R"({"labels": ["a"], "f32_nodes": "conv"})", "f32_nodes must be a list of node names"},
      {R"({"labels": ["a"], "f32_nodes": ["conv", 3]})", "f32_nodes must be a list of node names"},
      {R"({"labels": [1, 2]})", "each label must be a string or {code, name, malignant}"},
      {R"({"labels": []})", "needs a non-empty 'labels' list"},
  };
  for (const auto& [text, says] : cases)
    expect_error([&] { formats::parse_model_card(text, "c.json"); }, {ErrorKind::invalid_model}, {"model card c.json", says});
}

// Offsets are named by code, so they are checked once the labels are final (after --labels).
TEST(ModelCard, LogitOffsetsMustNameTheCardsLabels) {
  formats::ModelCard c = formats::parse_model_card(R"({"labels": ["nv", "mel"], "logit_offsets": {"mell": 0.4}})", "c.json");
  expect_error([&] { formats::fit_labels(c, 2); }, {ErrorKind::invalid_model},
               {"model card c.json", "logit_offsets names 'mell', which is not one of its labels (nv, mel)"});
  c.logit_offsets = {{"mel", 0.4}};
  formats::fit_labels(c, 2);
  EXPECT_EQ(formats::logit_offsets_by_label(c), (std::vector<double>{0.0, 0.4}));
}

}  // namespace
}  // namespace dermal::test
