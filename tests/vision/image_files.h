// Test-only builders of image files, written with zlib, libjpeg and libwebp directly (not with
// Dermal's encoders) so that decoder tests do not lean on the code they test.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "vision/image.h"

namespace dermal::test {

using Bytes = std::vector<uint8_t>;

Bytes read_bytes(const std::string& path);
std::string vision_data(const std::string& name);  // tests/data/vision/<name>
std::string ham_image(const std::string& id);      // shared HAM10000 JPEG path

// A PNG chunk: length, type, data, CRC.
Bytes png_chunk(const char type[4], const Bytes& data);
// A PNG from unfiltered scanline bytes (no filter byte; 16-bit samples big-endian). `extra`
// chunks go between IHDR (and PLTE, when given) and IDAT.
Bytes png_file(int width, int height, int bit_depth, int color_type, const Bytes& samples,
               const std::vector<Bytes>& extra = {}, const Bytes& plte = {});
// Rewrites IHDR's width/height (and its CRC) in an existing PNG.
Bytes png_with_declared_size(Bytes png, uint32_t width, uint32_t height);

// A TIFF block ("Exif\0\0" + TIFF) holding only an orientation tag.
Bytes exif_block(int orientation, bool big_endian);

enum class JpegKind { rgb, gray, cmyk };
struct JpegSpec {
  JpegSpec(int w, int h, JpegKind k, Bytes s) : width(w), height(h), kind(k), samples(std::move(s)) {}
  int width = 0, height = 0;
  JpegKind kind = JpegKind::rgb;
  Bytes samples;  // 3, 1 or 4 bytes a pixel (CMYK as stored: Adobe-inverted)
  int quality = 95;
  bool progressive = false;
  Bytes app1;  // written as an APP1 marker when not empty
};
Bytes jpeg_file(const JpegSpec& spec);

// Random byte flips (and every fifth trial a truncation) in each file, `trials` times: each
// decode must succeed or throw dermal::Error (invalid_input or too_large), never anything else and
// never crash (ASan watches the sanitizer build). Returns {decoded, refused}.
std::pair<int, int> decode_corruptions(const std::vector<Bytes>& files, int trials,
                                       const std::function<vision::Image(const Bytes&)>& decode);

// HEIC (HEVC, libheif's x265 encoder) or AVIF (AV1, its aom encoder) of an RGB image; with
// `alpha`, a fourth channel, the pixels' given alpha values, is written too.
Bytes heif_file(const vision::Image& img, bool avif, int quality = 90, const Bytes& alpha = {});

// Four flat quadrants (red, green / blue, near-white), what survives JPEG well.
vision::Image quadrants(int width, int height);
// The colour of each quadrant, in the order top-left, top-right, bottom-left, bottom-right.
extern const uint8_t kQuadrantColors[4][3];

}  // namespace dermal::test
