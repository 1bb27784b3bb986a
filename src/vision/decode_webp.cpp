// WebP through libwebp: WebPGetFeatures reads the declared canvas size from the first bytes, so
// a 50-byte file that declares 16383x16383 is refused before anything is decoded.
#include <webp/decode.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/error.h"
#include "vision/decoders.h"
#include "vision/exif.h"

namespace dermal::vision::detail {
namespace {

const char* status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "the file is truncated (its data ends before the image does)";
  }
  return "unknown error";
}

uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

// Walks the RIFF chunks of an extended (VP8X) file for its EXIF chunk; bounds-checked.
int orientation(const uint8_t* data, size_t size) {
  size_t at = 12;  // "RIFF" size "WEBP"
  while (at + 8 <= size) {
    uint32_t len = le32(data + at + 4);
    const uint8_t* payload = data + at + 8;
    size_t available = size - (at + 8);
    if (len > available) return 1;
    if (std::memcmp(data + at, "EXIF", 4) == 0) return exif_orientation(payload, len);
    at += 8 + static_cast<size_t>(len) + (len & 1);
  }
  return 1;
}

}  // namespace

Decoded decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  WebPBitstreamFeatures features;
  VP8StatusCode status = WebPGetFeatures(data, size, &features);
  if (status != VP8_STATUS_OK) fail_invalid("WebP", status_text(status));
  check_declared_size("WebP", features.width, features.height, limits);
  if (features.has_animation) fail_invalid("WebP", "animated WebP is not supported");

  Decoded out;
  out.image = Image::blank(features.width, features.height);
  const int stride = features.width * (features.has_alpha ? 4 : 3);
  const size_t pixels = static_cast<size_t>(features.width) * features.height;
  if (features.has_alpha) {
    std::vector<uint8_t> rgba(pixels * 4);
    if (!WebPDecodeRGBAInto(data, size, rgba.data(), rgba.size(), stride))
      fail_invalid("WebP", "the image data is corrupt or truncated");
    composite_over_white(rgba.data(), pixels, out.image.rgb.data());
  } else if (!WebPDecodeRGBInto(data, size, out.image.rgb.data(), out.image.rgb.size(), stride)) {
    fail_invalid("WebP", "the image data is corrupt or truncated");
  }
  out.orientation = orientation(data, size);
  return out;
}

}  // namespace dermal::vision::detail
