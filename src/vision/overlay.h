// Heatmap overlays at the original image's resolution.
//
//   Image over = overlay_heatmap(img, cam01, Colormap::jet, 0.4f);
//   // = blend(img, colorize(upsample_bilinear(cam01, img.width, img.height), jet), 0.4)
#pragma once

#include "vision/colormap.h"
#include "vision/image.h"

namespace dermal::vision {

// out = (1 - alpha) * base + alpha * heat, per byte, rounded. Same sizes; alpha in [0, 1].
Image blend(const Image& base, const Image& heat, float alpha = 0.4f);

// Upsamples a [0,1] map to the image (bilinear, align_corners=false), colours it, blends it.
Image overlay_heatmap(const Image& base, const FloatMap& map01, Colormap c = Colormap::jet, float alpha = 0.4f);

}  // namespace dermal::vision
