// From a decoded image to the model's input tensor, per the model card's preprocessing.
//
//   Preprocess p;                               // 224x224 bilinear, x/255, RGB, NCHW
//   p.width = p.height = 192;
//   p.mean = {0.485, 0.456, 0.406};
//   p.std = {0.229, 0.224, 0.225};
//   engine::Tensor x = to_input_tensor(img, p); // f32 [1,3,192,192]
//
// Each value is (pixel * scale - mean[c]) / std[c], computed in double and rounded to float
// once. A 1-channel model gets the image's luma, as PIL's convert("L") computes it (ITU-R 601,
// rounded to a byte) before the resize, as `Image.open(f).convert("L").resize(...)` does; mean[0]
// and std[0] apply. With bgr, channel c of the tensor holds B, G, R for c = 0, 1, 2, and mean/std are read
// in that (tensor) order: Keras' 'caffe' preprocessing is bgr, scale 1,
// mean {103.939, 116.779, 123.68}, std {1, 1, 1}.
#pragma once

#include <array>

#include "engine/tensor.h"
#include "vision/image.h"
#include "vision/resize.h"

namespace dermal::vision {

struct Preprocess {
  int width = 224, height = 224;
  ResizeMode resize = ResizeMode::bilinear;
  bool keep_aspect_crop = false;  // centre-crop to the target aspect first, instead of stretching
  double scale = 1.0 / 255.0;
  std::array<double, 3> mean{0.0, 0.0, 0.0};
  std::array<double, 3> std{1.0, 1.0, 1.0};
  bool bgr = false;
  bool nhwc = false;  // [1,H,W,C] (Keras) instead of [1,C,H,W]
  int channels = 3;   // 3: RGB (or BGR); 1: grayscale
};

// The image's luma in all three channels (ITU-R 601 weights in PIL's 16-bit fixed point).
Image to_grayscale(const Image& img);

// Throws invalid_input for a size outside 1..65536, a zero or non-finite std, or NaN values.
void validate(const Preprocess& p);

// The grayscale (for 1 channel), resize and optional crop steps: the image as the model sees it.
Image model_view(const Image& img, const Preprocess& p);

// model_view, then scale/normalise into a float32 tensor, NCHW [1,C,H,W] or NHWC [1,H,W,C].
engine::Tensor to_input_tensor(const Image& img, const Preprocess& p);

}  // namespace dermal::vision
