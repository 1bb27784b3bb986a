// HEIF through libheif: the iPhone's HEIC (HEVC, via libde265) and AVIF (AV1, via dav1d or aom).
// libheif decodes whole tiles and has no reduced-size decoding, so the declared size is held to the
// decoder budget before anything is decoded, and the RGB it returns is reduced (whole-block
// averages) while it is copied out. Its rotation and mirroring boxes (irot, imir) are applied by
// libheif; EXIF orientation does not apply to HEIF.
#include <libheif/heif.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "vision/decoders.h"

namespace dermal::vision::detail {
namespace {

struct ContextDeleter {
  void operator()(heif_context* c) const { heif_context_free(c); }
};
struct HandleDeleter {
  void operator()(heif_image_handle* h) const { heif_image_handle_release(h); }
};
struct ImageDeleter {
  void operator()(heif_image* i) const { heif_image_release(i); }
};
struct OptionsDeleter {
  void operator()(heif_decoding_options* o) const { heif_decoding_options_free(o); }
};

void check(const heif_error& e, const char* format) {
  if (e.code == heif_error_Ok) return;
  if (e.code == heif_error_Memory_allocation_error)
    throw Error(ErrorKind::too_large, std::string(format) + " image refused: decoding it needs more memory than is allowed");
  if (e.code == heif_error_Unsupported_feature || e.code == heif_error_Unsupported_filetype)
    fail_invalid(format, std::string("unsupported (") + (e.message ? e.message : "") + ")");
  fail_invalid(format, e.message ? e.message : "libheif could not decode it");
}

// What a full decode costs besides the reduced image: libheif holds the YCbCr planes (1.5 bytes a
// pixel at 4:2:0) and the interleaved RGB it converts them to (3), and libde265 its own picture
// buffers. Measured: a 4032 x 3024 HEIC (12.2 MP) raised `dermal serve`'s peak RSS by 106 MB,
// about 31 of them the rest of the request.
constexpr double kBytesPerPixel = 7;

}  // namespace

Decoded decode_heif(const uint8_t* data, size_t size, const DecodeLimits& limits, const DecodeTarget& target) {
  // 'ftypavif' files are AVIF; every other brand accepted by detect_format is HEIC.
  const char* format = size >= 12 && std::string(reinterpret_cast<const char*>(data) + 8, 3) == "avi" ? "AVIF" : "HEIC";
  std::unique_ptr<heif_context, ContextDeleter> ctx(heif_context_alloc());
  if (!ctx) throw Error(ErrorKind::internal, "libheif could not create a context");
  check(heif_context_read_from_memory_without_copy(ctx.get(), data, size, nullptr), format);
  heif_image_handle* raw_handle = nullptr;
  check(heif_context_get_primary_image_handle(ctx.get(), &raw_handle), format);
  std::unique_ptr<heif_image_handle, HandleDeleter> handle(raw_handle);
  const int width = heif_image_handle_get_width(handle.get());
  const int height = heif_image_handle_get_height(handle.get());
  check_declared_size(format, width, height, limits);
  const double needs = kBytesPerPixel * static_cast<double>(width) * height;
  if (needs > static_cast<double>(limits.max_decoder_bytes))
    throw Error(ErrorKind::too_large, std::string(format) + " image refused: decoding its " + std::to_string(width) + "x" +
                                          std::to_string(height) + " pixels whole (libheif cannot reduce while "
                                          "decoding) needs about " + std::to_string(static_cast<long long>(needs)) +
                                          " bytes, over the decoder limit of " + std::to_string(limits.max_decoder_bytes));
  const bool alpha = heif_image_handle_has_alpha_channel(handle.get()) != 0;
  std::unique_ptr<heif_decoding_options, OptionsDeleter> options(heif_decoding_options_alloc());
  heif_image* raw_image = nullptr;
  check(heif_decode_image(handle.get(), &raw_image, heif_colorspace_RGB,
                          alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, options.get()),
        format);
  std::unique_ptr<heif_image, ImageDeleter> image(raw_image);
  int stride = 0;
  const uint8_t* plane = heif_image_get_plane_readonly(image.get(), heif_channel_interleaved, &stride);
  const int w = heif_image_get_width(image.get(), heif_channel_interleaved);
  const int h = heif_image_get_height(image.get(), heif_channel_interleaved);
  if (!plane || w != width || h != height) fail_invalid(format, "the decoded image does not have its declared size");

  Decoded out;  // orientation 1: libheif has applied the file's own transformations
  out.source_width = width;
  out.source_height = height;
  const int k = reduction_factor(width, height, target);
  check_decoded_size(format, (width + k - 1) / k, (height + k - 1) / k, limits);
  BlockReducer reducer(width, height, k);
  std::vector<uint8_t> rgb(alpha ? static_cast<size_t>(width) * 3 : 0);
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = plane + static_cast<size_t>(y) * stride;
    if (alpha) composite_over_white(row, static_cast<size_t>(width), rgb.data());
    reducer.add_row(alpha ? rgb.data() : row);
  }
  out.image = reducer.take();
  return out;
}

}  // namespace dermal::vision::detail
