// Encoding RGB images for overlays and heatmaps.
//
//   std::vector<uint8_t> png = encode_png(overlay);
//   std::vector<uint8_t> jpg = encode_jpeg(overlay, 90);   // quality 1..100, 4:2:0
//   std::vector<uint8_t> any = encode(overlay, ImageFormat::jpeg);  // at kJpegQuality
#pragma once

#include <cstdint>
#include <vector>

#include "vision/image.h"

namespace dermal::vision {

std::vector<uint8_t> encode_png(const Image& img);
std::vector<uint8_t> encode_jpeg(const Image& img, int quality = 90);

// Overlays are photos: at quality 90 a JPEG is about a tenth of the PNG's bytes.
constexpr int kJpegQuality = 90;
// ImageFormat::png or ::jpeg (at kJpegQuality); other formats are refused (invalid_input).
std::vector<uint8_t> encode(const Image& img, ImageFormat format);
const char* image_format_mime(ImageFormat format);  // "image/png", "image/jpeg", ...

}  // namespace dermal::vision
