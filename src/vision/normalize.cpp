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
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(p.mean[c])) bad("mean[" + std::to_string(c) + "] is not finite");
    if (!std::isfinite(p.std[c]) || p.std[c] == 0.0) bad("std[" + std::to_string(c) + "] must be finite and non-zero");
  }
}

Image model_view(const Image& img, const Preprocess& p) {
  validate(p);
  if (img.empty()) throw Error(ErrorKind::invalid_input, "preprocessing: the image is empty");
  if (p.keep_aspect_crop) return resize(center_crop_to_aspect(img, p.width, p.height), p.width, p.height, p.resize);
  return resize(img, p.width, p.height, p.resize);
}

engine::Tensor to_input_tensor(const Image& img, const Preprocess& p) {
  const Image view = model_view(img, p);
  const int64_t h = view.height, w = view.width;
  engine::Shape shape = p.nhwc ? engine::Shape{1, h, w, 3} : engine::Shape{1, 3, h, w};
  engine::Tensor t = engine::Tensor::zeros(engine::DType::f32, shape);
  float* out = t.data<float>();
  // Per tensor channel: which RGB byte it reads, and a lookup from byte value to float.
  float lut[3][256];
  int source[3];
  for (int c = 0; c < 3; ++c) {
    source[c] = p.bgr ? 2 - c : c;
    for (int v = 0; v < 256; ++v) lut[c][v] = static_cast<float>((v * p.scale - p.mean[c]) / p.std[c]);
  }
  const int64_t plane = h * w;
  for (int64_t i = 0; i < plane; ++i) {
    const uint8_t* px = view.rgb.data() + i * 3;
    for (int c = 0; c < 3; ++c) {
      float v = lut[c][px[source[c]]];
      if (p.nhwc) out[i * 3 + c] = v;
      else out[c * plane + i] = v;
    }
  }
  return t;
}

}  // namespace dermal::vision
