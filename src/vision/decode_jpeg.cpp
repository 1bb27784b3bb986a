// JPEG through libjpeg-turbo. libjpeg reports errors through a callback that must not return;
// ours longjmps back to run_decoder(), which holds no C++ object that needs destroying, and the
// caller turns the failure into a dermal::Error once libjpeg's frames are gone.
#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <jerror.h>

#include "engine/error.h"
#include "vision/decoders.h"
#include "vision/exif.h"

namespace dermal::vision::detail {
namespace {

struct ErrorState {
  jpeg_error_mgr mgr;  // first, so libjpeg's pointer to it is a pointer to us
  std::jmp_buf jump;
  ErrorKind kind = ErrorKind::invalid_input;
  char message[JMSG_LENGTH_MAX] = {};
};

struct ScanLimit {
  jpeg_progress_mgr mgr;  // first, as above
  int max_scans = 0;
};

[[noreturn]] void jump_out(j_common_ptr cinfo, ErrorKind kind) {
  auto* err = reinterpret_cast<ErrorState*>(cinfo->err);
  err->kind = kind;
  std::longjmp(err->jump, 1);
}

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorState*>(cinfo->err);
  if (cinfo->err->msg_code == JERR_NO_BACKING_STORE) {
    std::snprintf(err->message, sizeof err->message, "decoding it needs more memory than the decoder limit allows (a progressive JPEG holds the coefficients of the whole image)");
    jump_out(cinfo, ErrorKind::too_large);
  }
  cinfo->err->format_message(cinfo, err->message);
  jump_out(cinfo, ErrorKind::invalid_input);
}

// Warnings: running out of data means the file is truncated, which we refuse (as PIL does).
// Other warnings (stray bytes before a marker, a corrupt data segment) are tolerated like every
// browser does; their number is bounded by the file size.
void on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace output
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
    auto* err = reinterpret_cast<ErrorState*>(cinfo->err);
    std::snprintf(err->message, sizeof err->message, "the file is truncated (its data ends before the image does)");
    jump_out(cinfo, ErrorKind::invalid_input);
  }
  cinfo->err->num_warnings++;
}

// libjpeg calls this at each scan start and while it consumes input: a progressive file can
// hold thousands of tiny scans, each costing a pass over the whole coefficient buffer.
void on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  auto* limit = reinterpret_cast<ScanLimit*>(cinfo->progress);
  int scan = reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number;
  if (scan > limit->max_scans) {
    auto* err = reinterpret_cast<ErrorState*>(cinfo->err);
    std::snprintf(err->message, sizeof err->message, "it has more than %d progressive scans (the limit)",
                  limit->max_scans);
    jump_out(cinfo, ErrorKind::too_large);
  }
}

int orientation_from_markers(j_decompress_ptr cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo->marker_list; m != nullptr; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0)
      return exif_orientation(m->data + 6, m->data_length - 6);
  }
  return 1;
}

// CMYK as Photoshop writes it (Adobe marker) is stored inverted: 255 means no ink.
void cmyk_to_rgb(const uint8_t* cmyk, int width, bool inverted, uint8_t* rgb) {
  for (int x = 0; x < width; ++x) {
    const uint8_t* s = cmyk + x * 4;
    unsigned k = inverted ? s[3] : 255 - s[3];
    for (int c = 0; c < 3; ++c) {
      unsigned v = inverted ? s[c] : 255 - s[c];
      rgb[x * 3 + c] = static_cast<uint8_t>((v * k + 127) / 255);
    }
  }
}

bool meets(unsigned width, unsigned height, const DecodeTarget& t, unsigned source_long) {
  const unsigned long_side = std::min<unsigned>(static_cast<unsigned>(std::max(0, t.min_long_side)), source_long);
  return width >= static_cast<unsigned>(std::max(0, t.min_width)) &&
         height >= static_cast<unsigned>(std::max(0, t.min_height)) && std::max(width, height) >= long_side;
}

// Everything libjpeg may jump out of happens here. Only references and plain values live in
// this frame, so the longjmp skips no destructor; every C++ exception thrown here (a limit, a
// failed allocation) is thrown from this frame, never through libjpeg's.
bool run_decoder(jpeg_decompress_struct& cinfo, ErrorState& err, ScanLimit& scans, const uint8_t* data,
                 size_t size, const DecodeLimits& limits, const DecodeTarget& target, Decoded& out,
                 std::vector<uint8_t>& row) {
  if (setjmp(err.jump)) return false;
  jpeg_create_decompress(&cinfo);
  // libjpeg's own buffers (a progressive image keeps all coefficients of the full-size image,
  // however small the output): beyond this it asks for a backing store, which this build
  // refuses with an error.
  cinfo.mem->max_memory_to_use = static_cast<long>(std::min<size_t>(limits.max_decoder_bytes, size_t{1} << 40));
  cinfo.progress = &scans.mgr;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  out.orientation = orientation_from_markers(&cinfo);
  out.source_width = static_cast<int>(cinfo.image_width);
  out.source_height = static_cast<int>(cinfo.image_height);

  bool cmyk = false;
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB: cinfo.out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; cmyk = true; break;
    default:
      fail_invalid("JPEG", "unsupported color space with " + std::to_string(cinfo.num_components) + " components");
  }
  // The smallest DCT scale M/8 whose output still meets the target (libjpeg-turbo's scaled
  // inverse DCTs: the full-size image is never reconstructed). M = 8 decodes every pixel.
  const DecodeTarget t = stored_frame(target, out.orientation);
  const unsigned source_long = std::max(cinfo.image_width, cinfo.image_height);
  cinfo.scale_denom = 8;
  for (unsigned m = t.full_size() ? 8 : 1;; ++m) {
    cinfo.scale_num = m;
    jpeg_calc_output_dimensions(&cinfo);
    if (m == 8 || meets(cinfo.output_width, cinfo.output_height, t, source_long)) break;
  }
  check_declared_size("JPEG", cinfo.image_width, cinfo.image_height, limits, cinfo.scale_num < 8);
  check_decoded_size("JPEG", cinfo.output_width, cinfo.output_height, limits);
  jpeg_start_decompress(&cinfo);
  const int width = static_cast<int>(cinfo.output_width);
  out.image = Image::blank(width, static_cast<int>(cinfo.output_height));
  if (cmyk) row.resize(static_cast<size_t>(width) * 4);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* dst = out.image.pixel(0, static_cast<int>(cinfo.output_scanline));
    JSAMPROW target = cmyk ? row.data() : dst;
    if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) fail_invalid("JPEG", "no scanline could be read");
    if (cmyk) cmyk_to_rgb(row.data(), width, cinfo.saw_Adobe_marker, dst);
  }
  // No jpeg_finish_decompress(): every pixel is read, and what follows (an EOI marker, or
  // trailing junk) cannot change them.
  return true;
}

// Frees libjpeg's memory however run_decoder() ends.
struct Destroyer {
  jpeg_decompress_struct* cinfo;
  ~Destroyer() { jpeg_destroy_decompress(cinfo); }
};

}  // namespace

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeLimits& limits, const DecodeTarget& target) {
  Decoded out;
  std::vector<uint8_t> row;
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);  // jpeg_destroy is a no-op until created
  ErrorState err;
  ScanLimit scans;
  std::memset(&scans.mgr, 0, sizeof scans.mgr);
  scans.mgr.progress_monitor = on_progress;
  scans.max_scans = limits.max_jpeg_scans;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = on_error;
  err.mgr.emit_message = on_message;
  Destroyer destroy{&cinfo};
  if (!run_decoder(cinfo, err, scans, data, size, limits, target, out, row)) {
    if (err.kind == ErrorKind::too_large) throw Error(ErrorKind::too_large, std::string("JPEG image refused: ") + err.message);
    fail_invalid("JPEG", err.message);
  }
  return out;
}

}  // namespace dermal::vision::detail
