// Decodes untrusted image bytes (JPEG, PNG, WebP, HEIC/AVIF; the format comes from the magic bytes,
// never a file name) into 8-bit RGB with the EXIF orientation applied (HEIF: its own rotation and
// mirroring boxes).
//
//   vision::DecodeLimits limits;               // 20 MiB, 16 megapixels decoded, 120 declared, ...
//   vision::Image img = vision::decode_image(bytes.data(), bytes.size(), limits);
//   vision::DecodeTarget need{160, 160, 1024}; // reduce while decoding, down to this size
//   vision::SourceSize source;                 // the size as stored, whatever was decoded
//   vision::Image small = vision::decode_image(bytes.data(), bytes.size(), limits, need, &source);
//
// Decoding to the size that is needed: a big photo never exists in memory at full size. JPEG
// reduces in the DCT domain (libjpeg-turbo's scale_num / 8, the smallest that meets the target),
// WebP with libwebp's rescaler while decoding, non-interlaced PNG row by row with an integer box
// (area) reduction; images that already fit the target are decoded whole, as before. HEIF cannot
// be decoded at reduced size (libheif decodes the whole image): it is held to the decoder budget
// (about 7 bytes a pixel: 5.4 MP with the default 36 MiB) and reduced while copied out.
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

const char* format_name(ImageFormat f);
ImageFormat detect_format(const uint8_t* data, size_t size);

struct DecodeLimits {
  size_t max_bytes = 20u << 20;       // encoded size: 20 MiB
  // width * height of the decoded image (after any reduction): the working image's memory.
  int64_t max_pixels = 16'000'000;
  // width * height a header may declare when the decoder reduces while decoding; an image it must
  // decode whole is held to max_pixels instead.
  int64_t max_source_pixels = 120'000'000;
  // What a decoder may allocate besides the decoded image (a progressive JPEG keeps every DCT
  // coefficient of the full-size image: about 3 bytes a pixel; libheif about 7).
  size_t max_decoder_bytes = 36u << 20;
  int max_jpeg_scans = 200;           // JPEG scans, at least 1 (progressive files have about 10)
  // PNG metadata (text, zTXt/iTXt inflated, ICC profiles, ...); pixel data (IDAT) is bounded by
  // max_pixels instead. One chunk, and all of them together; a chunk limit above the total
  // counts as the total.
  size_t max_png_chunk_bytes = 8u << 20;
  size_t max_png_metadata_bytes = 16u << 20;
};

// The smallest decoded size the caller can use (after EXIF orientation): both sides at least
// min_width x min_height, and the longer side at least min_long_side; never more than the source.
// All zero: the full size.
struct DecodeTarget {
  int min_width = 0, min_height = 0;
  int min_long_side = 0;
  bool full_size() const { return min_width <= 0 && min_height <= 0 && min_long_side <= 0; }
};

struct SourceSize {
  int width = 0, height = 0;  // as stored, after EXIF orientation
};

Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits = {}, const DecodeTarget& target = {},
                   SourceSize* source = nullptr);
inline Image decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits = {},
                          const DecodeTarget& target = {}, SourceSize* source = nullptr) {
  return decode_image(bytes.data(), bytes.size(), limits, target, source);
}

}  // namespace dermal::vision
