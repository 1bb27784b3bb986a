// From image to model input: layouts, channel order, normalisation, and end to end against the
// PyTorch reference batch (PIL decode + resize, ImageNet mean/std) when it has been generated.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/error.h"
#include "vision/decode.h"
#include "vision/image_files.h"
#include "vision/normalize.h"

namespace dermal::test {
namespace {

using vision::Image;
using vision::Preprocess;

Image gradient_image(int w, int h) {
  Image img = Image::blank(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.pixel(x, y);
      p[0] = static_cast<uint8_t>(x * 10);
      p[1] = static_cast<uint8_t>(y * 20);
      p[2] = static_cast<uint8_t>(100 + x + y);
    }
  return img;
}

TEST(Normalize, NchwAndNhwcHoldTheSameValues) {
  Image img = gradient_image(5, 3);
  Preprocess p;
  p.width = 5;
  p.height = 3;  // no resize
  p.mean = {0.5, 0.25, 0.125};
  p.std = {2.0, 4.0, 0.5};
  engine::Tensor nchw = vision::to_input_tensor(img, p);
  p.nhwc = true;
  engine::Tensor nhwc = vision::to_input_tensor(img, p);
  ASSERT_EQ(nchw.shape(), (engine::Shape{1, 3, 3, 5}));
  ASSERT_EQ(nhwc.shape(), (engine::Shape{1, 3, 5, 3}));
  const float* a = nchw.data<float>();
  const float* b = nhwc.data<float>();
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c) {
        float expected = static_cast<float>((img.pixel(x, y)[c] / 255.0 - p.mean[c]) / p.std[c]);
        EXPECT_FLOAT_EQ(a[(c * 3 + y) * 5 + x], expected);
        EXPECT_FLOAT_EQ(b[(y * 5 + x) * 3 + c], expected);
      }
}

TEST(Normalize, CaffeStyleBgrWithMeansInBgrOrder) {
  Image img = Image::blank(1, 1);
  img.rgb = {10, 20, 30};
  Preprocess p;
  p.width = p.height = 1;
  p.scale = 1.0;
  p.bgr = true;
  p.mean = {103.939, 116.779, 123.68};
  engine::Tensor t = vision::to_input_tensor(img, p);
  const float* v = t.data<float>();
  EXPECT_FLOAT_EQ(v[0], static_cast<float>(30 - 103.939));  // B
  EXPECT_FLOAT_EQ(v[1], static_cast<float>(20 - 116.779));  // G
  EXPECT_FLOAT_EQ(v[2], static_cast<float>(10 - 123.68));   // R
}

TEST(Normalize, ResizesAndCropsFirst) {
  Image img = gradient_image(20, 10);
  Preprocess p;
  p.width = p.height = 4;
  p.resize = vision::ResizeMode::nearest;
  EXPECT_EQ(vision::model_view(img, p).rgb, vision::resize(img, 4, 4, vision::ResizeMode::nearest).rgb);
  p.keep_aspect_crop = true;
  Image view = vision::model_view(img, p);
  ASSERT_EQ(view.width, 4);
  // The crop keeps the centre 10x10: columns 5..14, so the leftmost sample comes from x >= 5.
  EXPECT_GE(view.pixel(0, 0)[0], 50);
  EXPECT_LE(view.pixel(3, 0)[0], 140);
  engine::Tensor t = vision::to_input_tensor(img, p);
  EXPECT_EQ(t.shape(), (engine::Shape{1, 3, 4, 4}));
}

TEST(Normalize, RefusesBadSettings) {
  Image img = Image::blank(2, 2);
  Preprocess p;
  p.std = {1, 0, 1};
  EXPECT_THROW(vision::to_input_tensor(img, p), Error);
  p = {};
  p.width = 0;
  EXPECT_THROW(vision::to_input_tensor(img, p), Error);
  p = {};
  p.mean[2] = std::nan("");
  EXPECT_THROW(vision::to_input_tensor(img, p), Error);
  EXPECT_THROW(vision::to_input_tensor(Image(), Preprocess{}), Error);
}

// The baseline models' preprocessing, end to end: JPEG bytes -> tensor, against the batch that
// tools/reference/make_model_reference.py computed with PIL and float64 (ctest's torch_reference;
// this case runs in the models_vs_pytorch entry, after it).
TEST(Normalize, MatchesTheModelReferenceInputs) {
  // A missing reference fails, never skips: ctest orders this case after the torch_reference
  // fixture (FIXTURES_REQUIRED in tests/CMakeLists.txt); run by hand, it needs that step first.
  const std::string dir = DERMAL_REFERENCE_DIR;
  ASSERT_TRUE(std::filesystem::is_regular_file(dir + "/manifest.json"))
      << dir << "/manifest.json is missing: it is written by ctest's torch_reference step "
      << "(ctest -R 'torch_reference|models_vs_pytorch')";
  auto manifest = nlohmann::json::parse(read_bytes(dir + "/manifest.json"));
  Bytes inputs = read_bytes(dir + "/" + manifest["inputs"]["file"].get<std::string>());
  Preprocess p;
  p.width = p.height = 192;
  p.mean = {0.485, 0.456, 0.406};
  p.std = {0.229, 0.224, 0.225};
  const size_t per_image = 3 * 192 * 192;
  const auto& ids = manifest["images"];
  ASSERT_FALSE(ids.empty()) << "no images in " << dir << "/manifest.json";
  ASSERT_EQ(inputs.size(), ids.size() * per_image * 4);
  double max_err = 0;
  for (size_t i = 0; i < std::min<size_t>(ids.size(), 20); ++i) {
    engine::Tensor t = vision::to_input_tensor(vision::decode_image(read_bytes(ham_image(ids[i]))), p);
    std::vector<float> ref(per_image);
    std::memcpy(ref.data(), inputs.data() + i * per_image * 4, per_image * 4);
    const float* ours = t.data<float>();
    for (size_t k = 0; k < per_image; ++k) max_err = std::max(max_err, std::fabs(double(ours[k]) - ref[k]));
  }
  EXPECT_LE(max_err, 1e-6) << "the preprocessing differs from the models' training pipeline";
}

}  // namespace
}  // namespace dermal::test
