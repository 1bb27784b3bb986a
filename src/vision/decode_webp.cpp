// WebP through libwebp: WebPGetFeatures reads the declared canvas size from the first bytes, so
// a 50-byte file that declares 16383x16383 is refused before anything is decoded.
#include <webp/decode.h>

#include <algorithm>
#include <cmath>
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

Decoded decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits, const DecodeTarget& target) {
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) throw Error(ErrorKind::internal, "libwebp's decoder version does not match its headers");
  VP8StatusCode status = WebPGetFeatures(data, size, &config.input);
  if (status != VP8_STATUS_OK) fail_invalid("WebP", status_text(status));
  const WebPBitstreamFeatures& features = config.input;
  if (features.has_animation) fail_invalid("WebP", "animated WebP is not supported");
  Decoded out;
  out.orientation = orientation(data, size);
  out.source_width = features.width;
  out.source_height = features.height;
  // libwebp rescales while it decodes (row by row, area-averaging): the full-size image is never
  // held. The output keeps the aspect ratio, with its sides the smallest that meet the target.
  int width = features.width, height = features.height;
  const DecodeTarget t = stored_frame(target, out.orientation);
  if (reduction_factor(width, height, t) > 1) {
    const double scale = std::max({t.min_width / static_cast<double>(width), t.min_height / static_cast<double>(height),
                                   t.min_long_side / static_cast<double>(std::max(width, height))});
    width = std::clamp(static_cast<int>(std::ceil(features.width * scale)), 1, features.width);
    height = std::clamp(static_cast<int>(std::ceil(features.height * scale)), 1, features.height);
    config.options.use_scaling = 1;
    config.options.scaled_width = width;
    config.options.scaled_height = height;
  }
  check_declared_size("WebP", features.width, features.height, limits, config.options.use_scaling != 0);
  check_decoded_size("WebP", width, height, limits);

  out.image = Image::blank(width, height);
  const size_t pixels = static_cast<size_t>(width) * height;
  std::vector<uint8_t> rgba;
  if (features.has_alpha) rgba.resize(pixels * 4);
  config.output.colorspace = features.has_alpha ? MODE_RGBA : MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = features.has_alpha ? rgba.data() : out.image.rgb.data();
  config.output.u.RGBA.stride = width * (features.has_alpha ? 4 : 3);
  config.output.u.RGBA.size = features.has_alpha ? rgba.size() : out.image.rgb.size();
  status = WebPDecode(data, size, &config);
  WebPFreeDecBuffer(&config.output);  // external memory: frees nothing of ours
  if (status != VP8_STATUS_OK)
    fail_invalid("WebP", status == VP8_STATUS_NOT_ENOUGH_DATA ? status_text(status) : "the image data is corrupt or truncated");
  if (features.has_alpha) composite_over_white(rgba.data(), pixels, out.image.rgb.data());
  return out;
}

}  // namespace dermal::vision::detail
