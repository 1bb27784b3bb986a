// PNG through libspng: errors come back as return codes, and it has limits for the chunk sizes
// and the memory that ancillary chunks (text, inflated zTXt/iTXt, ICC profiles) may take.
#include <spng.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "vision/decoders.h"
#include "vision/exif.h"

namespace dermal::vision::detail {
namespace {

struct ContextDeleter {
  void operator()(spng_ctx* ctx) const { spng_ctx_free(ctx); }
};
using Context = std::unique_ptr<spng_ctx, ContextDeleter>;

[[noreturn]] void fail_spng(int code) {
  switch (code) {
    case SPNG_EOF:
    case SPNG_IO_EOF:
      fail_invalid("PNG", "the file is truncated (its data ends before the image does)");
    case SPNG_EIDAT_TOO_SHORT:
    case SPNG_EIDAT_STREAM:
      fail_invalid("PNG", std::string("the pixel data does not match the header's size (") + spng_strerror(code) + ")");
    case SPNG_ECHUNK_LIMITS:
      throw Error(ErrorKind::too_large, "PNG image refused: a chunk or its metadata is over the size limits");
    default:
      fail_invalid("PNG", spng_strerror(code));
  }
}

void check(int code) {
  if (code != 0) fail_spng(code);
}

void check(int code);

bool has_transparency(spng_ctx* ctx, const spng_ihdr& ihdr) {
  if (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA || ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA)
    return true;
  spng_trns trns;
  int code = spng_get_trns(ctx, &trns);  // reads every chunk before IDAT, with the limits
  if (code == SPNG_ECHUNKAVAIL) return false;
  check(code);
  return true;
}

int orientation(spng_ctx* ctx) {
  spng_exif exif;
  if (spng_get_exif(ctx, &exif) != 0) return 1;
  return exif_orientation(reinterpret_cast<const uint8_t*>(exif.data), exif.length);
}

}  // namespace

Decoded decode_png(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  Context ctx(spng_ctx_new(0));
  if (!ctx) throw Error(ErrorKind::internal, "libspng could not create a context");
  check(spng_set_png_buffer(ctx.get(), data, size));
  // libspng wants chunk <= total <= 2^31 - 1.
  const size_t total = std::min<size_t>(limits.max_png_metadata_bytes, 0x7fffffff);
  check(spng_set_chunk_limits(ctx.get(), std::min(limits.max_png_chunk_bytes, total), total));

  spng_ihdr ihdr;
  check(spng_get_ihdr(ctx.get(), &ihdr));  // reads the signature and IHDR only
  check_declared_size("PNG", ihdr.width, ihdr.height, limits);

  Decoded out;
  const bool alpha = has_transparency(ctx.get(), ihdr);  // reads the chunks before IDAT
  out.orientation = orientation(ctx.get());  // eXIf precedes IDAT; nothing after IDAT is read
  const int fmt = alpha ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8;
  size_t bytes = 0;
  check(spng_decoded_image_size(ctx.get(), fmt, &bytes));
  out.image = Image::blank(static_cast<int>(ihdr.width), static_cast<int>(ihdr.height));
  if (!alpha) {
    if (bytes != out.image.rgb.size()) throw Error(ErrorKind::internal, "libspng's RGB8 size disagrees with IHDR");
    check(spng_decode_image(ctx.get(), out.image.rgb.data(), bytes, fmt, 0));
  } else {
    std::vector<uint8_t> rgba(bytes);
    if (bytes != out.image.rgb.size() / 3 * 4) throw Error(ErrorKind::internal, "libspng's RGBA8 size disagrees with IHDR");
    check(spng_decode_image(ctx.get(), rgba.data(), bytes, fmt, SPNG_DECODE_TRNS));
    composite_over_white(rgba.data(), rgba.size() / 4, out.image.rgb.data());
  }
  return out;
}

}  // namespace dermal::vision::detail
