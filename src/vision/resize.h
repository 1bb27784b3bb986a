// Resizing images and float maps.
//
//   Image small = resize(img, 192, 192, ResizeMode::bilinear);       // what the models saw
//   Image crop = resize(center_crop_to_aspect(img, 224, 224), 224, 224, ResizeMode::area);
//   FloatMap heat = upsample_bilinear(cam, img.width, img.height);   // CAM grid -> image
//
// The three modes follow Pillow 9's Image.resize exactly (the models' training used PIL):
// - bilinear: PIL's BILINEAR, a triangle filter whose support grows with the shrink factor, so
//   shrinking is antialiased (it averages every source pixel under the output pixel) and
//   enlarging is plain bilinear interpolation. Separable: horizontal pass first, 8-bit
//   intermediate, 22-bit fixed-point weights, as PIL does.
// - area: PIL's BOX, the mean of the source pixels each output pixel covers, weighted by the
//   covered fraction (OpenCV's INTER_AREA when shrinking).
// - nearest: PIL's NEAREST (what Keras' load_img uses by default): source index
//   floor((x + 0.5) * in / out), with PIL's accumulated float steps.
// Float maps use the same filters without rounding (PIL's mode "F").
#pragma once

#include <string>

#include "vision/image.h"

namespace dermal::vision {

enum class ResizeMode { bilinear, area, nearest };
const char* resize_mode_name(ResizeMode m);
ResizeMode parse_resize_mode(const std::string& name);  // "bilinear" | "area" | "nearest"

Image resize(const Image& src, int width, int height, ResizeMode mode = ResizeMode::bilinear);
FloatMap resize(const FloatMap& src, int width, int height, ResizeMode mode = ResizeMode::bilinear);

// The image shrunk (area average) so that its longer side is at most max_side, keeping its
// aspect ratio; as it is when already that small or when max_side <= 0. Overlays are drawn at this
// display size, not at the photo's.
Image fit_within(const Image& src, int max_side);

// The largest centred region of `src` whose aspect ratio is width:height (rounded to whole
// pixels). Resizing it to width x height is "keep aspect, then centre crop".
Image center_crop_to_aspect(const Image& src, int width, int height);

// Bilinear interpolation with align_corners=false semantics, as PyTorch's
// F.interpolate(mode='bilinear', align_corners=False) without antialiasing: output pixel centre
// x maps to source coordinate (x + 0.5) * in / out - 0.5, clamped at the borders. Meant for
// enlarging a coarse CAM grid to the image; it does not antialias when shrinking.
FloatMap upsample_bilinear(const FloatMap& src, int width, int height);

}  // namespace dermal::vision
