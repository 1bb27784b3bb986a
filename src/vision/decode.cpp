#include "vision/decode.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>

#include "engine/error.h"
#include "vision/decoders.h"
#include "vision/exif.h"

namespace dermal::vision {
namespace {

bool starts_with(const uint8_t* data, size_t size, const char* magic, size_t n, size_t at = 0) {
  return size >= at + n && std::memcmp(data + at, magic, n) == 0;
}

bool looks_like_text(const uint8_t* data, size_t size) {
  size_t n = std::min<size_t>(size, 512);
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = data[i];
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') return false;
    if (c == 0x7f) return false;
  }
  return true;
}

// Names formats people upload by mistake, so the message says what the file is.
const char* other_format_name(const uint8_t* data, size_t size) {
  if (starts_with(data, size, "GIF8", 4)) return "GIF";
  if (starts_with(data, size, "BM", 2)) return "BMP";
  if (starts_with(data, size, "II*\0", 4) || starts_with(data, size, "MM\0*", 4)) return "TIFF";
  if (starts_with(data, size, "%PDF", 4)) return "PDF";
  return nullptr;
}

[[noreturn]] void refuse_unknown(const uint8_t* data, size_t size) {
  if (const char* other = other_format_name(data, size))
    throw Error(ErrorKind::invalid_input, std::string(other) +
                                              " images are not supported: send JPEG, PNG, WebP, HEIC or AVIF");
  if (looks_like_text(data, size)) {
    std::string head(reinterpret_cast<const char*>(data), std::min<size_t>(size, 24));
    for (char& c : head)
      if (!std::isprint(static_cast<unsigned char>(c))) c = ' ';
    throw Error(ErrorKind::invalid_input, "not an image: the " + std::to_string(size) +
                                              " bytes look like text (\"" + head + "\")");
  }
  std::string hex;
  for (size_t i = 0; i < std::min<size_t>(size, 8); ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%02x ", data[i]);
    hex += b;
  }
  if (!hex.empty()) hex.pop_back();
  throw Error(ErrorKind::invalid_input, "unknown image format (first bytes: " + hex +
                                            "): JPEG, PNG, WebP, HEIC and AVIF are supported");
}

}  // namespace

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::jpeg: return "JPEG";
    case ImageFormat::png: return "PNG";
    case ImageFormat::webp: return "WebP";
    case ImageFormat::heif: return "HEIF";
    case ImageFormat::unknown: break;
  }
  return "unknown";
}

ImageFormat detect_format(const uint8_t* data, size_t size) {
  if (data == nullptr) return ImageFormat::unknown;
  if (starts_with(data, size, "\xFF\xD8\xFF", 3)) return ImageFormat::jpeg;
  if (starts_with(data, size, "\x89PNG\r\n\x1a\n", 8)) return ImageFormat::png;
  if (starts_with(data, size, "RIFF", 4) && starts_with(data, size, "WEBP", 4, 8)) return ImageFormat::webp;
  // HEIF (the iPhone's HEIC) and AVIF: an ISO-BMFF 'ftyp' box with one of their major brands.
  if (starts_with(data, size, "ftyp", 4, 4))
    for (const char* brand : {"heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif", "avis"})
      if (starts_with(data, size, brand, 4, 8)) return ImageFormat::heif;
  return ImageFormat::unknown;
}

Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits, const DecodeTarget& target,
                   SourceSize* source) {
  if (data == nullptr || size == 0) throw Error(ErrorKind::invalid_input, "empty image: the file has 0 bytes");
  if (size > limits.max_bytes)
    throw Error(ErrorKind::too_large, "image file of " + std::to_string(size) + " bytes is over the limit of " +
                                          std::to_string(limits.max_bytes) + " bytes");
  detail::Decoded d;
  switch (detect_format(data, size)) {
    case ImageFormat::jpeg: d = detail::decode_jpeg(data, size, limits, target); break;
    case ImageFormat::png: d = detail::decode_png(data, size, limits, target); break;
    case ImageFormat::webp: d = detail::decode_webp(data, size, limits, target); break;
    case ImageFormat::heif: d = detail::decode_heif(data, size, limits, target); break;
    case ImageFormat::unknown: refuse_unknown(data, size);
  }
  if (source) {
    const bool turned = d.orientation >= 5 && d.orientation <= 8;
    source->width = turned ? d.source_height : d.source_width;
    source->height = turned ? d.source_width : d.source_height;
  }
  return apply_orientation(std::move(d.image), d.orientation);
}

namespace detail {

DecodeTarget stored_frame(const DecodeTarget& t, int orientation) {
  if (orientation < 5 || orientation > 8) return t;
  return {t.min_height, t.min_width, t.min_long_side};
}

void check_declared_size(const char* format, int64_t width, int64_t height, const DecodeLimits& limits, bool reducing) {
  if (width <= 0 || height <= 0)
    fail_invalid(format, "the header declares an empty image (" + std::to_string(width) + "x" +
                             std::to_string(height) + ")");
  // Both factors are below 2^31 in every format, so the product cannot overflow.
  const int64_t limit = reducing ? limits.max_source_pixels : limits.max_pixels;
  if (width * height > limit)
    throw Error(ErrorKind::too_large,
                std::string(format) + " image declares " + std::to_string(width) + "x" + std::to_string(height) +
                    " pixels, over the limit of " + std::to_string(limit) + " pixels" +
                    (reducing ? "" : " for an image decoded at full size"));
}

void check_decoded_size(const char* format, int64_t width, int64_t height, const DecodeLimits& limits) {
  if (width * height > limits.max_pixels)
    throw Error(ErrorKind::too_large, std::string(format) + " image would decode to " + std::to_string(width) + "x" +
                                          std::to_string(height) + " pixels, over the limit of " +
                                          std::to_string(limits.max_pixels) + " pixels");
}

BlockReducer::BlockReducer(int width, int height, int k)
    : width_(width), k_(k), sums_(static_cast<size_t>((width + k - 1) / k) * 3, 0),
      out_(Image::blank((width + k - 1) / k, (height + k - 1) / k)) {}

void BlockReducer::add_row(const uint8_t* px) {
  uint32_t* sum = sums_.data();
  for (int x0 = 0; x0 < width_; x0 += k_, sum += 3) {  // one output column's block at a time
    uint32_t r = 0, g = 0, b = 0;
    for (const uint8_t* p = px + x0 * 3; p < px + std::min(x0 + k_, width_) * 3; p += 3) {
      r += p[0];
      g += p[1];
      b += p[2];
    }
    sum[0] += r;
    sum[1] += g;
    sum[2] += b;
  }
  if (++rows_in_block_ == k_) flush();
}

void BlockReducer::flush() {
  for (int x = 0; x < out_.width; ++x) {
    const uint32_t n = static_cast<uint32_t>(std::min(k_, width_ - x * k_) * rows_in_block_);
    for (int c = 0; c < 3; ++c) out_.pixel(x, out_y_)[c] = static_cast<uint8_t>((sums_[x * 3 + c] + n / 2) / n);
  }
  std::fill(sums_.begin(), sums_.end(), 0);
  rows_in_block_ = 0;
  ++out_y_;
}

Image BlockReducer::take() {
  if (rows_in_block_ > 0) flush();
  return std::move(out_);
}

int reduction_factor(int width, int height, const DecodeTarget& t) {
  if (t.full_size()) return 1;
  const int by_width = t.min_width > 0 ? width / t.min_width : width;
  const int by_height = t.min_height > 0 ? height / t.min_height : height;
  const int by_long = t.min_long_side > 0 ? std::max(width, height) / t.min_long_side : std::max(width, height);
  return std::max(1, std::min({by_width, by_height, by_long}));
}

void fail_invalid(const char* format, const std::string& why) {
  throw Error(ErrorKind::invalid_input, std::string("invalid ") + format + " image: " + why);
}

void composite_over_white(const uint8_t* rgba, size_t pixels, uint8_t* rgb) {
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* s = rgba + i * 4;
    unsigned a = s[3];
    for (int c = 0; c < 3; ++c) rgb[i * 3 + c] = static_cast<uint8_t>((s[c] * a + 255 * (255 - a) + 127) / 255);
  }
}

}  // namespace detail
}  // namespace dermal::vision
