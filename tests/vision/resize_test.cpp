// Resizing against PIL 9's Image.resize (the models were trained on it) and PyTorch's
// F.interpolate, from the committed references of tools/reference/make_vision_reference.py.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "vision/decode.h"
#include "vision/image_files.h"
#include "vision/resize.h"

namespace dermal::test {
namespace {

using vision::FloatMap;
using vision::Image;
using vision::ResizeMode;

struct DiffStats {
  int max = 0;
  size_t differing = 0;  // values
};

DiffStats compare(const Image& a, const Image& b) {
  DiffStats s;
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  if (a.rgb.size() != b.rgb.size()) return {255, std::max(a.rgb.size(), b.rgb.size())};
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    int d = std::abs(a.rgb[i] - b.rgb[i]);
    s.max = std::max(s.max, d);
    s.differing += d != 0;
  }
  return s;
}

FloatMap read_floats(const std::string& name, int w, int h) {
  Bytes b = read_bytes(vision_data(name));
  EXPECT_EQ(b.size(), static_cast<size_t>(w) * h * 4) << name;
  FloatMap m = FloatMap::filled(w, h);
  std::memcpy(m.values.data(), b.data(), std::min(b.size(), m.values.size() * 4));
  return m;
}

nlohmann::json manifest() { return nlohmann::json::parse(read_bytes(vision_data("manifest.json"))); }

TEST(Resize, RealPhotosMatchPil) {
  auto refs = manifest()["resize"];
  ASSERT_GE(refs.size(), 7u);
  for (const auto& r : refs) {
    Image src = vision::decode_image(read_bytes(ham_image(r["image"])));
    ResizeMode mode = vision::parse_resize_mode(r["mode"]);
    Image ours = vision::resize(src, r["width"], r["height"], mode);
    Image pil = vision::decode_image(read_bytes(vision_data(r["file"])));
    DiffStats s = compare(ours, pil);
    SCOPED_TRACE(r["file"].get<std::string>() + " (" + vision::resize_mode_name(mode) + ")");
    // Same algorithm, same fixed-point arithmetic in every mode: the bytes are identical (a
    // looser bound here would never be the one to fail).
    EXPECT_EQ(s.differing, 0u) << "of " << ours.rgb.size() << " values; max diff " << s.max;
  }
}

TEST(Resize, SyntheticEnlargeAndShrinkMatchPilExactly) {
  Image src = vision::decode_image(read_bytes(vision_data("synthetic.png")));
  ASSERT_EQ(src.width, 13);
  ASSERT_EQ(src.height, 9);
  const auto refs = manifest()["synthetic"];  // a copy: the temporary dies before the loop
  ASSERT_FALSE(refs.empty());
  for (const auto& r : refs) {
    Image ours = vision::resize(src, r["width"], r["height"], vision::parse_resize_mode(r["mode"]));
    Image pil = vision::decode_image(read_bytes(vision_data(r["file"])));
    EXPECT_EQ(compare(ours, pil).max, 0) << r["file"];
  }
}

TEST(Resize, FloatMapsMatchPilModeF) {
  FloatMap src = read_floats("floatmap.f32", 7, 5);
  const auto refs = manifest()["floatmap"];  // a copy: the temporary dies before the loop
  ASSERT_FALSE(refs.empty());
  for (const auto& r : refs) {
    int w = r["width"], h = r["height"];
    FloatMap ours = vision::resize(src, w, h, vision::parse_resize_mode(r["mode"]));
    FloatMap pil = read_floats(r["file"], w, h);
    ASSERT_EQ(ours.values.size(), pil.values.size()) << r["file"];
    double max_err = 0;
    for (size_t i = 0; i < pil.values.size(); ++i) max_err = std::max(max_err, std::fabs(double(ours.values[i]) - pil.values[i]));
    EXPECT_LE(max_err, 1e-6) << r["file"];
  }
}

TEST(Resize, UpsampleMatchesTorchAlignCornersFalse) {
  FloatMap src = read_floats("floatmap.f32", 7, 5);
  const auto refs = manifest()["torch_bilinear"];  // a copy: the temporary dies before the loop
  ASSERT_FALSE(refs.empty());
  for (const auto& r : refs) {
    int w = r["width"], h = r["height"];
    FloatMap ours = vision::upsample_bilinear(src, w, h);
    FloatMap torch = read_floats(r["file"], w, h);
    ASSERT_EQ(ours.values.size(), torch.values.size()) << r["file"];
    double max_err = 0;
    for (size_t i = 0; i < torch.values.size(); ++i)
      max_err = std::max(max_err, std::fabs(double(ours.values[i]) - torch.values[i]));
    EXPECT_LE(max_err, 1e-6) << r["file"];
  }
}

TEST(Resize, ConstantStaysConstantInEveryMode) {
  Image flat = Image::blank(37, 23);
  for (size_t i = 0; i < flat.rgb.size(); ++i) flat.rgb[i] = static_cast<uint8_t>(i % 3 == 0 ? 77 : i % 3 == 1 ? 0 : 255);
  for (ResizeMode m : {ResizeMode::bilinear, ResizeMode::area, ResizeMode::nearest})
    for (auto [w, h] : {std::pair{5, 3}, {100, 71}, {37, 1}, {1, 23}}) {
      Image out = vision::resize(flat, w, h, m);
      for (int i = 0; i < w * h; ++i)
        ASSERT_TRUE(out.rgb[i * 3] == 77 && out.rgb[i * 3 + 1] == 0 && out.rgb[i * 3 + 2] == 255)
            << vision::resize_mode_name(m) << " " << w << "x" << h;
    }
}

TEST(Resize, AreaIsTheMeanOfCoveredPixels) {
  // 4x2 -> 2x1: each output pixel averages a 2x2 block.
  Image src = Image::blank(4, 2);
  const uint8_t v[8] = {0, 10, 20, 30, 40, 50, 60, 70};
  for (int i = 0; i < 8; ++i) src.rgb[i * 3] = src.rgb[i * 3 + 1] = src.rgb[i * 3 + 2] = v[i];
  Image out = vision::resize(src, 2, 1, ResizeMode::area);
  EXPECT_EQ(out.rgb[0], 25);  // (0 + 10 + 40 + 50) / 4
  EXPECT_EQ(out.rgb[3], 45);  // (20 + 30 + 60 + 70) / 4
}

TEST(Resize, CenterCropToAspect) {
  Image src = Image::blank(200, 150);
  for (int y = 0; y < 150; ++y)
    for (int x = 0; x < 200; ++x) {
      src.pixel(x, y)[0] = static_cast<uint8_t>(x);
      src.pixel(x, y)[1] = static_cast<uint8_t>(y);
    }
  Image sq = vision::center_crop_to_aspect(src, 192, 192);
  EXPECT_EQ(sq.width, 150);
  EXPECT_EQ(sq.height, 150);
  EXPECT_EQ(sq.pixel(0, 0)[0], 25);  // (200 - 150) / 2 columns dropped on the left
  Image tall = vision::center_crop_to_aspect(src, 10, 30);
  EXPECT_EQ(tall.width, 50);
  EXPECT_EQ(tall.height, 150);
  EXPECT_EQ(tall.pixel(0, 0)[0], 75);
  Image wide = vision::center_crop_to_aspect(src, 40, 10);
  EXPECT_EQ(wide.width, 200);
  EXPECT_EQ(wide.height, 50);
  EXPECT_EQ(wide.pixel(0, 0)[1], 50);
  EXPECT_EQ(vision::center_crop_to_aspect(src, 4, 3).rgb, src.rgb);
}

TEST(Resize, RefusesBadSizes) {
  Image img = Image::blank(4, 4);
  EXPECT_THROW(vision::resize(img, 0, 4), Error);
  EXPECT_THROW(vision::resize(img, 4, -1), Error);
  EXPECT_THROW(vision::resize(Image(), 4, 4), Error);
  EXPECT_THROW(vision::upsample_bilinear(FloatMap(), 4, 4), Error);
  EXPECT_THROW(vision::parse_resize_mode("bicubic"), Error);
  EXPECT_EQ(vision::resize(img, 4, 4).rgb, img.rgb);
}

}  // namespace
}  // namespace dermal::test
