// Internal to vision: one decoder per format, and what they share. decode_image() is the API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "vision/decode.h"
#include "vision/image.h"

namespace dermal::vision::detail {

struct Decoded {
  Image image;          // as stored, before orientation
  int orientation = 1;  // EXIF orientation found in the file's metadata
};

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeLimits& limits);
Decoded decode_png(const uint8_t* data, size_t size, const DecodeLimits& limits);
Decoded decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits);

// Refuses declared dimensions that are zero, absurd or over limits.max_pixels. Called by every
// decoder after reading the header and before allocating pixels.
void check_declared_size(const char* format, int64_t width, int64_t height, const DecodeLimits& limits);

[[noreturn]] void fail_invalid(const char* format, const std::string& why);

// RGBA -> RGB over a white background: out = (c * a + 255 * (255 - a)) / 255, rounded.
void composite_over_white(const uint8_t* rgba, size_t pixels, uint8_t* rgb);

}  // namespace dermal::vision::detail
