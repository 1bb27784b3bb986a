// Encoding RGB images for overlays and heatmaps.
//
//   std::vector<uint8_t> png = encode_png(overlay);
//   std::vector<uint8_t> jpg = encode_jpeg(overlay, 90);   // quality 1..100, 4:2:0
#pragma once

#include <cstdint>
#include <vector>

#include "vision/image.h"

namespace dermal::vision {

std::vector<uint8_t> encode_png(const Image& img);
std::vector<uint8_t> encode_jpeg(const Image& img, int quality = 90);

}  // namespace dermal::vision
