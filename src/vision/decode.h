// Decodes untrusted image bytes (JPEG, PNG, WebP; the format comes from the magic bytes, never a
// file name) into 8-bit RGB with the EXIF orientation applied.
//
//   vision::DecodeLimits limits;               // 20 MiB, 40 megapixels, 200 JPEG scans, ...
//   vision::Image img = vision::decode_image(bytes.data(), bytes.size(), limits);
//
// Everything becomes RGB: grayscale is replicated, 16-bit samples keep their high byte, palettes
// are expanded, CMYK/YCCK JPEGs are converted (Adobe's inverted CMYK included), and alpha is
// composited over white (a transparent background becomes white, not black).
//
// Refusals throw dermal::Error: ErrorKind::too_large when a limit is exceeded (the file, or the
// dimensions a header declares, checked before any pixel buffer is allocated), and
// ErrorKind::invalid_input for empty, truncated, corrupt, unknown or unsupported files. Library
// errors never exit() or abort the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "vision/image.h"

namespace dermal::vision {

enum class ImageFormat { unknown, jpeg, png, webp };
const char* format_name(ImageFormat f);
ImageFormat detect_format(const uint8_t* data, size_t size);

struct DecodeLimits {
  size_t max_bytes = 20u << 20;       // encoded size: 20 MiB
  int64_t max_pixels = 40'000'000;    // width * height as declared by the header
  int max_jpeg_scans = 200;           // JPEG scans, at least 1 (progressive files have about 10)
  // PNG metadata (text, zTXt/iTXt inflated, ICC profiles, ...); pixel data (IDAT) is bounded by
  // max_pixels instead. One chunk, and all of them together; a chunk limit above the total
  // counts as the total.
  size_t max_png_chunk_bytes = 8u << 20;
  size_t max_png_metadata_bytes = 16u << 20;
};

Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits = {});
inline Image decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits = {}) {
  return decode_image(bytes.data(), bytes.size(), limits);
}

}  // namespace dermal::vision
