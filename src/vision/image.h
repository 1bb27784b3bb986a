// The vision part's two value types: an 8-bit RGB image and a float map (a CAM, a heatmap).
//
//   Image img = decode_image(bytes.data(), bytes.size());
//   const uint8_t* p = img.pixel(x, y);        // p[0], p[1], p[2] = R, G, B
//   Image canvas = Image::blank(640, 480);      // zeros
//   FloatMap cam{6, 6, values};                // plain aggregates; values row-major, cam.at(x, y)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dermal::vision {

// 8-bit RGB, interleaved, rows top to bottom, no padding.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;

  static Image blank(int w, int h) { return {w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3)}; }
  bool empty() const { return width <= 0 || height <= 0; }
  uint8_t* pixel(int x, int y) { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
  const uint8_t* pixel(int x, int y) const {
    return rgb.data() + (static_cast<size_t>(y) * width + x) * 3;
  }
};

// Image file formats: the ones decode_image reads; encode writes png and jpeg.
enum class ImageFormat { unknown, jpeg, png, webp, heif };  // heif: HEIC and AVIF

// One float per pixel, row-major.
struct FloatMap {
  int width = 0, height = 0;
  std::vector<float> values;

  static FloatMap filled(int w, int h, float v = 0.f) { return {w, h, std::vector<float>(static_cast<size_t>(w) * h, v)}; }
  float& at(int x, int y) { return values[static_cast<size_t>(y) * width + x]; }
  float at(int x, int y) const { return values[static_cast<size_t>(y) * width + x]; }
};

}  // namespace dermal::vision
