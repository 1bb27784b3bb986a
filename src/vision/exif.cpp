#include "vision/exif.h"

#include <cstring>
#include <utility>

namespace dermal::vision {
namespace {

// Reads integers of either byte order, refusing any read past the end.
struct TiffReader {
  const uint8_t* p;
  size_t size;
  bool little;

  bool u16(size_t at, uint32_t& v) const {
    if (at > size || size - at < 2) return false;
    v = little ? p[at] | p[at + 1] << 8 : p[at] << 8 | p[at + 1];
    return true;
  }
  bool u32(size_t at, uint32_t& v) const {
    if (at > size || size - at < 4) return false;
    uint32_t b0 = p[at], b1 = p[at + 1], b2 = p[at + 2], b3 = p[at + 3];
    v = little ? b0 | b1 << 8 | b2 << 16 | b3 << 24 : b0 << 24 | b1 << 16 | b2 << 8 | b3;
    return true;
  }
};

constexpr uint32_t kOrientationTag = 0x0112;
constexpr uint32_t kTypeShort = 3, kTypeLong = 4;

}  // namespace

int exif_orientation(const uint8_t* tiff, size_t size) {
  if (tiff == nullptr) return 1;
  if (size >= 6 && std::memcmp(tiff, "Exif\0\0", 6) == 0) {
    tiff += 6;
    size -= 6;
  }
  if (size < 8) return 1;
  TiffReader r{tiff, size, false};
  if (tiff[0] == 'I' && tiff[1] == 'I') r.little = true;
  else if (!(tiff[0] == 'M' && tiff[1] == 'M')) return 1;
  uint32_t magic = 0, ifd = 0, count = 0;
  if (!r.u16(2, magic) || magic != 42 || !r.u32(4, ifd) || !r.u16(ifd, count)) return 1;
  for (uint32_t i = 0; i < count; ++i) {
    size_t entry = static_cast<size_t>(ifd) + 2 + static_cast<size_t>(i) * 12;
    uint32_t tag = 0, type = 0, n = 0, value = 0;
    if (!r.u16(entry, tag) || !r.u16(entry + 2, type) || !r.u32(entry + 4, n)) return 1;
    if (tag != kOrientationTag) continue;
    if (n != 1) return 1;
    bool ok = type == kTypeShort ? r.u16(entry + 8, value) : type == kTypeLong && r.u32(entry + 8, value);
    return ok && value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

Image apply_orientation(Image img, int orientation) {
  if (orientation < 2 || orientation > 8) return img;
  const int w = img.width, h = img.height;
  const bool swaps = orientation >= 5;
  Image out = Image::blank(swaps ? h : w, swaps ? w : h);
  // For each output pixel, the stored pixel it shows.
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        case 8: sx = w - 1 - y; sy = x; break;
      }
      std::memcpy(out.pixel(x, y), img.pixel(sx, sy), 3);
    }
  }
  return out;
}

}  // namespace dermal::vision
