// PNG through libspng, JPEG through libjpeg-turbo (errors longjmp back, as in decode_jpeg.cpp).
#include "vision/encode.h"

#include <spng.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <jpeglib.h>
#include <jerror.h>

#include "engine/error.h"

namespace dermal::vision {
namespace {

void check_image(const Image& img, const char* what) {
  if (img.empty() || img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3)
    throw Error(ErrorKind::invalid_input, std::string(what) + ": the image is empty or its buffer has the wrong size");
}

struct SpngDeleter {
  void operator()(spng_ctx* ctx) const { spng_ctx_free(ctx); }
};

void spng_check(int code) {
  if (code != 0) throw Error(ErrorKind::internal, std::string("PNG encoding failed: ") + spng_strerror(code));
}

struct JpegErrors {
  jpeg_error_mgr mgr;  // first: libjpeg's pointer to it is a pointer to us
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
};

void on_jpeg_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrors*>(cinfo->err);
  cinfo->err->format_message(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// A growing malloc'd buffer that we, not libjpeg, own and free.
struct Destination {
  jpeg_destination_mgr mgr;  // first, as above
  unsigned char* data = nullptr;
  size_t capacity = 0, size = 0;
};

void dest_init(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<Destination*>(cinfo->dest);
  d->capacity = 1 << 16;
  d->data = static_cast<unsigned char*>(std::malloc(d->capacity));
  if (d->data == nullptr) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
  d->mgr.next_output_byte = d->data;
  d->mgr.free_in_buffer = d->capacity;
}

boolean dest_grow(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<Destination*>(cinfo->dest);
  auto* bigger = static_cast<unsigned char*>(std::realloc(d->data, d->capacity * 2));
  if (bigger == nullptr) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 1);
  d->data = bigger;
  d->mgr.next_output_byte = d->data + d->capacity;  // libjpeg asks for more only when full
  d->mgr.free_in_buffer = d->capacity;
  d->capacity *= 2;
  return TRUE;
}

void dest_term(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<Destination*>(cinfo->dest);
  d->size = d->capacity - d->mgr.free_in_buffer;
}

// Only references and plain values in this frame: the longjmp skips no destructor.
bool run_encoder(jpeg_compress_struct& cinfo, JpegErrors& err, Destination& dest, const Image& img, int quality) {
  if (setjmp(err.jump)) return false;
  jpeg_create_compress(&cinfo);
  cinfo.dest = &dest.mgr;
  cinfo.image_width = static_cast<JDIMENSION>(img.width);
  cinfo.image_height = static_cast<JDIMENSION>(img.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(img.pixel(0, static_cast<int>(cinfo.next_scanline)));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  return true;
}

}  // namespace

std::vector<uint8_t> encode_png(const Image& img) {
  check_image(img, "encode_png");
  std::unique_ptr<spng_ctx, SpngDeleter> ctx(spng_ctx_new(SPNG_CTX_ENCODER));
  if (!ctx) throw Error(ErrorKind::internal, "libspng could not create an encoder");
  spng_check(spng_set_option(ctx.get(), SPNG_ENCODE_TO_BUFFER, 1));
  // Overlays are photos sent once over a network: zlib's fastest level and one filter (Paeth)
  // cost a few percent in size and save most of the encoding time.
  spng_check(spng_set_option(ctx.get(), SPNG_IMG_COMPRESSION_LEVEL, 1));
  spng_check(spng_set_option(ctx.get(), SPNG_FILTER_CHOICE, SPNG_FILTER_CHOICE_PAETH));
  spng_ihdr ihdr{};
  ihdr.width = static_cast<uint32_t>(img.width);
  ihdr.height = static_cast<uint32_t>(img.height);
  ihdr.bit_depth = 8;
  ihdr.color_type = SPNG_COLOR_TYPE_TRUECOLOR;
  spng_check(spng_set_ihdr(ctx.get(), &ihdr));
  spng_check(spng_encode_image(ctx.get(), img.rgb.data(), img.rgb.size(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE));
  size_t size = 0;
  int error = 0;
  void* data = spng_get_png_buffer(ctx.get(), &size, &error);
  spng_check(error);
  std::unique_ptr<void, decltype(&std::free)> owned(data, &std::free);
  const auto* bytes = static_cast<const uint8_t*>(data);
  return std::vector<uint8_t>(bytes, bytes + size);
}

std::vector<uint8_t> encode_jpeg(const Image& img, int quality) {
  check_image(img, "encode_jpeg");
  if (quality < 1 || quality > 100)
    throw Error(ErrorKind::invalid_input, "JPEG quality " + std::to_string(quality) + " is not between 1 and 100");
  jpeg_compress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);
  JpegErrors err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = on_jpeg_error;
  Destination dest;
  std::memset(&dest.mgr, 0, sizeof dest.mgr);
  dest.mgr.init_destination = dest_init;
  dest.mgr.empty_output_buffer = dest_grow;
  dest.mgr.term_destination = dest_term;
  bool ok = run_encoder(cinfo, err, dest, img, quality);
  jpeg_destroy_compress(&cinfo);
  std::unique_ptr<unsigned char, decltype(&std::free)> owned(dest.data, &std::free);
  if (!ok) throw Error(ErrorKind::internal, std::string("JPEG encoding failed: ") + err.message);
  return std::vector<uint8_t>(dest.data, dest.data + dest.size);
}

std::vector<uint8_t> encode(const Image& img, ImageFormat format) {
  if (format == ImageFormat::jpeg) return encode_jpeg(img, kJpegQuality);
  if (format == ImageFormat::png) return encode_png(img);
  throw Error(ErrorKind::invalid_input, "Dermal writes PNG and JPEG images only");
}

const char* image_format_mime(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg: return "image/jpeg";
    case ImageFormat::png: return "image/png";
    case ImageFormat::webp: return "image/webp";
    case ImageFormat::heif: return "image/heif";
    case ImageFormat::unknown: break;
  }
  return "application/octet-stream";
}

}  // namespace dermal::vision
