// One-channel models through the path users take. The ONNX models of tests/data/gray (NCHW, and
// NHWC read through a Transpose) against PyTorch on real photos that PIL turned to grayscale
// (tools/reference/make_gray_models.py): predict, explain and the HTTP API. The input's layout
// comes from the model, never from which axis happens to hold 1 or 3; channels other than 1 and
// 3 are refused at load, naming the input and its shape.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "error_check.h"
#include "explain/classifier.h"
#include "serve/serve_fixture.h"
#include "vision/image_files.h"
#include "vision/normalize.h"

namespace dermal::test {
namespace {

const std::string kGrayDir = std::string(DERMAL_SOURCE_DIR) + "/tests/data/gray/";

nlohmann::json gray_reference() {
  std::ifstream f(kGrayDir + "reference.json");
  return nlohmann::json::parse(f);
}

vision::Image photo(const std::string& id) {
  const Bytes b = read_bytes(ham_image(id));
  return vision::decode_image(b.data(), b.size());
}

class GrayOnnx : public ::testing::TestWithParam<std::string> {};

TEST_P(GrayOnnx, PredictMatchesPyTorchOnPilGrayscale) {
  const std::string name = GetParam();
  auto clf = explain::Classifier::load(kGrayDir + name + ".onnx");
  const auto& p = clf->card().preprocess;
  EXPECT_EQ(p.channels, 1);
  EXPECT_EQ(p.nhwc, name == "gray_nhwc");
  EXPECT_EQ(p.width, 28);
  const nlohmann::json ref = gray_reference();
  const auto& images = ref["images"];
  ASSERT_EQ(images.size(), 6u);
  double worst = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    explain::Timings t;
    const explain::Prediction pred = clf->predict(photo(images[i]), t);
    const auto expected = ref["models"][name][i].get<std::vector<double>>();
    ASSERT_EQ(pred.probabilities.size(), expected.size());
    for (size_t k = 0; k < expected.size(); ++k) worst = std::max(worst, std::abs(pred.probabilities[k] - expected[k]));
  }
  // Bytes equal to PIL's convert("L") and resize; the difference left is float32 against float64.
  EXPECT_LT(worst, 1e-5) << name;
}

TEST_P(GrayOnnx, ExplainGivesAMapOverTheImage) {
  auto clf = explain::Classifier::load(kGrayDir + GetParam() + ".onnx");
  const vision::Image img = photo(gray_reference()["images"][0]);
  explain::Timings t;
  const explain::Explanation e = clf->explain(img, {}, t);
  EXPECT_EQ(e.layer, "features");
  EXPECT_EQ(e.grid_width, 14);
  EXPECT_EQ(e.heatmap.width, img.width);
  EXPECT_EQ(e.heatmap.height, img.height);
  const auto [lo, hi] = std::minmax_element(e.cam.begin(), e.cam.end());
  EXPECT_EQ(*lo, 0.f);
  EXPECT_EQ(*hi, 1.f);  // normalised, and not flat
}

TEST_P(GrayOnnx, ServedPredictionMatchesPyTorch) {
  serve::ServeConfig c = test_config();
  c.model_path = kGrayDir + GetParam() + ".onnx";
  RunningServer s(c);
  const nlohmann::json ref = gray_reference();
  const Bytes jpeg = read_bytes(ham_image(ref["images"][1]));
  auto r = s.client().Post("/api/predict", std::string(jpeg.begin(), jpeg.end()), "image/jpeg");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const auto j = nlohmann::json::parse(r->body);
  const auto expected = ref["models"][GetParam()][1].get<std::vector<double>>();
  const std::vector<std::string> codes{"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"};
  for (size_t k = 0; k < codes.size(); ++k) EXPECT_NEAR(j["probabilities"][codes[k]].get<double>(), expected[k], 1e-5);
  EXPECT_TRUE(j["gradcam"].is_object());
  const auto health = nlohmann::json::parse(s.client().Get("/health?verbose=1")->body);
  EXPECT_EQ(health["model"]["input"]["channels"], 1);
}

INSTANTIATE_TEST_SUITE_P(Layouts, GrayOnnx, ::testing::Values("gray_nchw", "gray_nhwc"));

// Luma as PIL's convert("L"): (19595 R + 38470 G + 7471 B + 2^15) >> 16.
TEST(Grayscale, LumaIsPilsConvertL) {
  vision::Image img;
  img.width = 4;
  img.height = 1;
  img.rgb = {255, 0, 0, 0, 255, 0, 0, 0, 255, 12, 200, 77};
  const vision::Image g = vision::to_grayscale(img);
  const std::vector<uint8_t> expected{76, 150, 29, 130};  // PIL: Image.putdata(...).convert("L")
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(g.rgb[i * 3], expected[i]) << i;
    EXPECT_EQ(g.rgb[i * 3 + 1], expected[i]);
    EXPECT_EQ(g.rgb[i * 3 + 2], expected[i]);
  }
}

// A card may state the layout and channels; a statement the model contradicts is refused.
TEST(Grayscale, CardLayoutAndChannelsAreCheckedAgainstTheModel) {
  const formats::LoadedModel m = formats::load_model(kGrayDir + "gray_nchw.onnx");
  const std::string dir = ::testing::TempDir();
  auto card_file = [&](const std::string& input) {
    const std::string path = dir + "/gray_card.json";
    std::ofstream(path) << R"({"labels": ["a","b","c","d","e","f","g"], "input": )" + input + "}";
    return path;
  };
  EXPECT_EQ(formats::load_model_card_file(card_file(R"({"layout": "nchw", "channels": 1})"), m).preprocess.channels, 1);
  expect_error([&] { formats::load_model_card_file(card_file(R"({"channels": 3})"), m); }, {ErrorKind::invalid_model},
               {"input.channels 3 but the model's input 'image' has 1", "[1,1,28,28]"});
  // Told the input is NHWC, its last axis (28) is the channels: refused, naming the shape.
  expect_error([&] { formats::load_model_card_file(card_file(R"({"layout": "nhwc", "width": 1, "height": 28})"), m); },
               {ErrorKind::unsupported, ErrorKind::invalid_model}, {"input 'image'", "[1,1,28,28]"});
}

}  // namespace
}  // namespace dermal::test
