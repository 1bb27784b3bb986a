#include "vision/normalize.h"

#include <cmath>
#include <string>

#include "engine/error.h"

namespace dermal::vision {

void validate(const Preprocess& p) {
  auto bad = [](const std::string& why) { throw Error(ErrorKind::invalid_input, "preprocessing: " + why); };
  if (p.width < 1 || p.height < 1 || p.width > (1 << 16) || p.height > (1 << 16))
    bad("input size " + std::to_string(p.width) + "x" + std::to_string(p.height) + " is not between 1 and 65536");
  if (!std::isfinite(p.scale)) bad("scale is not finite");
  if (p.channels != 1 && p.channels != 3) bad(std::to_string(p.channels) + " channels (1 or 3 are fed)");
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(p.mean[c])) bad("mean[" + std::to_string(c) + "] is not finite");
    if (!std::isfinite(p.std[c]) || p.std[c] == 0.0) bad("std[" + std::to_string(c) + "] must be finite and non-zero");
  }
}

Image to_grayscale(const Image& img) {
  Image out = img;
  for (size_t i = 0; i + 2 < out.rgb.size(); i += 3) {
    const uint8_t* px = img.rgb.data() + i;
    const auto luma = static_cast<uint8_t>((px[0] * 19595u + px[1] * 38470u + px[2] * 7471u + 0x8000u) >> 16);
    out.rgb[i] = out.rgb[i + 1] = out.rgb[i + 2] = luma;
  }
  return out;
}

Image model_view(const Image& img, const Preprocess& p) {
  validate(p);
  if (img.empty()) throw Error(ErrorKind::invalid_input, "preprocessing: the image is empty");
  // Not `cond ? to_grayscale(img) : img`: that conditional is a new Image, a copy of every RGB
  // image too.
  auto view = [&p](const Image& source) {
    if (p.keep_aspect_crop) return resize(center_crop_to_aspect(source, p.width, p.height), p.width, p.height, p.resize);
    return resize(source, p.width, p.height, p.resize);
  };
  return p.channels == 1 ? view(to_grayscale(img)) : view(img);
}

engine::Tensor to_input_tensor(const Image& img, const Preprocess& p) {
  const Image view = model_view(img, p);
  const int64_t h = view.height, w = view.width;
  const int channels = p.channels;
  engine::Shape shape = p.nhwc ? engine::Shape{1, h, w, channels} : engine::Shape{1, channels, h, w};
  engine::Tensor t = engine::Tensor::zeros(engine::DType::f32, shape);
  float* out = t.data<float>();
  // Per tensor channel: which RGB byte it reads (grayscale: all three hold the luma), and a
  // lookup from byte value to float.
  float lut[3][256];
  int source[3];
  for (int c = 0; c < channels; ++c) {
    source[c] = p.bgr && channels == 3 ? 2 - c : c;
    for (int v = 0; v < 256; ++v) lut[c][v] = static_cast<float>((v * p.scale - p.mean[c]) / p.std[c]);
  }
  const int64_t plane = h * w;
  for (int64_t i = 0; i < plane; ++i) {
    const uint8_t* px = view.rgb.data() + i * 3;
    for (int c = 0; c < channels; ++c) {
      float v = lut[c][px[source[c]]];
      if (p.nhwc) out[i * channels + c] = v;
      else out[c * plane + i] = v;
    }
  }
  return t;
}

}  // namespace dermal::vision
