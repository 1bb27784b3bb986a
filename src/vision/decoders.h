// Internal to vision: one decoder per format, and what they share. decode_image() is the API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vision/decode.h"
#include "vision/image.h"

namespace dermal::vision::detail {

struct Decoded {
  Image image;          // as stored, before orientation (reduced when the target allowed it)
  int orientation = 1;  // EXIF orientation found in the file's metadata
  int source_width = 0, source_height = 0;  // as stored, before orientation and reduction
};

// The target in the stored frame: orientations 5-8 turn the image a quarter, so its sides swap.
DecodeTarget stored_frame(const DecodeTarget& t, int orientation);

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeLimits& limits, const DecodeTarget& target);
Decoded decode_png(const uint8_t* data, size_t size, const DecodeLimits& limits, const DecodeTarget& target);
Decoded decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits, const DecodeTarget& target);
Decoded decode_heif(const uint8_t* data, size_t size, const DecodeLimits& limits, const DecodeTarget& target);

// Refuses declared dimensions that are zero, absurd or over the limit that applies: max_source_pixels
// when the decoder will reduce while decoding (`reducing`), max_pixels when it decodes whole. Called
// by every decoder after reading the header and before allocating pixels.
void check_declared_size(const char* format, int64_t width, int64_t height, const DecodeLimits& limits,
                         bool reducing = false);
// Refuses a reduced size over max_pixels (a target larger than the limit allows).
void check_decoded_size(const char* format, int64_t width, int64_t height, const DecodeLimits& limits);
// The largest whole factor k (1 = none) by which a width x height image can be shrunk while
// meeting the target: both sides and the longer side stay at least the target's.
int reduction_factor(int width, int height, const DecodeTarget& target);

[[noreturn]] void fail_invalid(const char* format, const std::string& why);

// Averages whole k x k blocks of RGB rows given one at a time, top to bottom, into a
// ceil(width / k) x ceil(height / k) image (blocks at the right and bottom edges average what they
// hold): an area reduction that holds k rows' sums, never the full-size image.
class BlockReducer {
 public:
  BlockReducer(int width, int height, int k);
  void add_row(const uint8_t* rgb);  // `width` RGB pixels
  Image take();

 private:
  void flush();
  int width_, k_, rows_in_block_ = 0, out_y_ = 0;
  std::vector<uint32_t> sums_;
  Image out_;
};

// RGBA -> RGB over a white background: out = (c * a + 255 * (255 - a)) / 255, rounded.
void composite_over_white(const uint8_t* rgba, size_t pixels, uint8_t* rgb);

}  // namespace dermal::vision::detail
