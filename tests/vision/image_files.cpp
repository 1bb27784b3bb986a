#include "vision/image_files.h"

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include <jpeglib.h>
#include <gtest/gtest.h>
#include <libheif/heif.h>

#include <random>

#include "engine/error.h"

namespace dermal::test {
namespace {

void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

// Test code only: libjpeg errors become exceptions (never expected here).
void throw_on_error(j_common_ptr cinfo) {
  char msg[JMSG_LENGTH_MAX];
  cinfo->err->format_message(cinfo, msg);
  throw std::runtime_error(std::string("test JPEG writer: ") + msg);
}

}  // namespace

const uint8_t kQuadrantColors[4][3] = {{230, 30, 30}, {30, 230, 30}, {30, 30, 230}, {240, 240, 240}};

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

std::string vision_data(const std::string& name) { return std::string(DERMAL_SOURCE_DIR) + "/tests/data/vision/" + name; }
std::string ham_image(const std::string& id) { return std::string(DERMAL_SHARED_DIR) + "/data/ham10000/images/" + id + ".jpg"; }

Bytes png_chunk(const char type[4], const Bytes& data) {
  Bytes c;
  c.reserve(data.size() + 12);  // (reserving first also keeps GCC 12's -Wstringop-overflow quiet)
  put_be32(c, static_cast<uint32_t>(data.size()));
  for (int i = 0; i < 4; ++i) c.push_back(static_cast<uint8_t>(type[i]));
  for (uint8_t b : data) c.push_back(b);
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(type), 4);
  if (!data.empty()) crc = crc32(crc, data.data(), static_cast<uInt>(data.size()));  // (a null buffer resets it)
  put_be32(c, static_cast<uint32_t>(crc));
  return c;
}

Bytes png_file(int width, int height, int bit_depth, int color_type, const Bytes& samples, const std::vector<Bytes>& extra,
               const Bytes& plte) {
  static const int kChannels[] = {1, 0, 3, 1, 2, 0, 4};
  const size_t row_bytes = (static_cast<size_t>(width) * kChannels[color_type] * bit_depth + 7) / 8;
  if (samples.size() != row_bytes * height) throw std::runtime_error("png_file: wrong sample count");
  Bytes raw;
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), samples.begin() + y * row_bytes, samples.begin() + (y + 1) * row_bytes);
  }
  uLongf zsize = compressBound(static_cast<uLong>(raw.size()));
  Bytes z(zsize);
  if (compress2(z.data(), &zsize, raw.data(), static_cast<uLong>(raw.size()), 9) != Z_OK)
    throw std::runtime_error("png_file: zlib failed");
  z.resize(zsize);

  Bytes ihdr;
  put_be32(ihdr, static_cast<uint32_t>(width));
  put_be32(ihdr, static_cast<uint32_t>(height));
  ihdr.insert(ihdr.end(), {static_cast<uint8_t>(bit_depth), static_cast<uint8_t>(color_type), 0, 0, 0});
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  auto append = [&](const Bytes& c) { png.insert(png.end(), c.begin(), c.end()); };
  append(png_chunk("IHDR", ihdr));
  if (!plte.empty()) append(png_chunk("PLTE", plte));
  for (const Bytes& c : extra) append(c);
  append(png_chunk("IDAT", z));
  append(png_chunk("IEND", {}));
  return png;
}

Bytes png_with_declared_size(Bytes png, uint32_t width, uint32_t height) {
  // Signature (8), IHDR length (4) and type (4), then width and height; CRC after 13 data bytes.
  Bytes data(png.begin() + 16, png.begin() + 29);
  for (int i = 0; i < 4; ++i) {
    data[i] = static_cast<uint8_t>(width >> (24 - 8 * i));
    data[4 + i] = static_cast<uint8_t>(height >> (24 - 8 * i));
  }
  Bytes chunk = png_chunk("IHDR", data);
  std::copy(chunk.begin(), chunk.end(), png.begin() + 8);
  return png;
}

Bytes exif_block(int orientation, bool big_endian) {
  Bytes b = {'E', 'x', 'i', 'f', 0, 0};
  b.reserve(64);
  auto u16 = [&](uint16_t v) {
    b.push_back(static_cast<uint8_t>(big_endian ? v >> 8 : v));
    b.push_back(static_cast<uint8_t>(big_endian ? v : v >> 8));
  };
  auto u32 = [&](uint32_t v) {
    if (big_endian) { u16(static_cast<uint16_t>(v >> 16)); u16(static_cast<uint16_t>(v)); }
    else { u16(static_cast<uint16_t>(v)); u16(static_cast<uint16_t>(v >> 16)); }
  };
  b.push_back(big_endian ? 'M' : 'I');
  b.push_back(big_endian ? 'M' : 'I');
  u16(42);
  u32(8);  // IFD0 right after the header
  u16(2);  // two entries: an unrelated one first (ImageWidth), then Orientation
  u16(0x0100); u16(3); u32(1); u16(40); u16(0);
  u16(0x0112); u16(3); u32(1); u16(static_cast<uint16_t>(orientation)); u16(0);
  u32(0);  // no next IFD
  return b;
}

Bytes jpeg_file(const JpegSpec& spec) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jerr.error_exit = throw_on_error;
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = spec.width;
  cinfo.image_height = spec.height;
  const int channels = spec.kind == JpegKind::rgb ? 3 : spec.kind == JpegKind::gray ? 1 : 4;
  cinfo.input_components = channels;
  cinfo.in_color_space = spec.kind == JpegKind::rgb ? JCS_RGB : spec.kind == JpegKind::gray ? JCS_GRAYSCALE : JCS_CMYK;
  jpeg_set_defaults(&cinfo);  // CMYK: stored as CMYK with an Adobe marker, samples as given
  jpeg_set_quality(&cinfo, spec.quality, TRUE);
  if (spec.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  if (!spec.app1.empty()) jpeg_write_marker(&cinfo, JPEG_APP0 + 1, spec.app1.data(), static_cast<unsigned>(spec.app1.size()));
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(spec.samples.data() + static_cast<size_t>(cinfo.next_scanline) * spec.width * channels);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  Bytes out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

vision::Image quadrants(int width, int height) {
  vision::Image img = vision::Image::blank(width, height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      int q = (y >= height / 2) * 2 + (x >= width / 2);
      std::memcpy(img.pixel(x, y), kQuadrantColors[q], 3);
    }
  return img;
}

namespace {

heif_error write_bytes(heif_context*, const void* data, size_t size, void* userdata) {
  auto* out = static_cast<Bytes*>(userdata);
  out->insert(out->end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  return heif_error{heif_error_Ok, heif_suberror_Unspecified, "ok"};
}

void heif_check(const heif_error& e) {
  if (e.code != heif_error_Ok) throw std::runtime_error(std::string("libheif: ") + e.message);
}

}  // namespace

std::pair<int, int> decode_corruptions(const std::vector<Bytes>& files, int trials,
                                       const std::function<vision::Image(const Bytes&)>& decode) {
  std::mt19937 rng(42);
  int decoded = 0, refused = 0;
  for (const Bytes& original : files) {
    for (int trial = 0; trial < trials; ++trial) {
      Bytes b = original;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f) b[rng() % b.size()] = static_cast<uint8_t>(rng());
      if (trial % 5 == 0) b.resize(rng() % b.size() + 1);
      try {
        vision::Image img = decode(b);
        EXPECT_EQ(img.rgb.size(), static_cast<size_t>(img.width) * img.height * 3);
        ++decoded;
      } catch (const Error& e) {
        EXPECT_TRUE(e.kind() == ErrorKind::invalid_input || e.kind() == ErrorKind::too_large) << e.what();
        ++refused;
      }
    }
  }
  return {decoded, refused};
}

Bytes heif_file(const vision::Image& img, bool avif, int quality, const Bytes& alpha) {
  heif_context* ctx = heif_context_alloc();
  heif_image* image = nullptr;
  const bool with_alpha = !alpha.empty();
  heif_check(heif_image_create(img.width, img.height, heif_colorspace_RGB,
                               with_alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, &image));
  heif_check(heif_image_add_plane(image, heif_channel_interleaved, img.width, img.height, 8));
  int stride = 0;
  uint8_t* plane = heif_image_get_plane(image, heif_channel_interleaved, &stride);
  const int channels = with_alpha ? 4 : 3;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      uint8_t* d = plane + static_cast<size_t>(y) * stride + x * channels;
      std::memcpy(d, img.pixel(x, y), 3);
      if (with_alpha) d[3] = alpha[static_cast<size_t>(y) * img.width + x];
    }
  heif_encoder* encoder = nullptr;
  heif_check(heif_context_get_encoder_for_format(ctx, avif ? heif_compression_AV1 : heif_compression_HEVC, &encoder));
  heif_check(heif_encoder_set_lossy_quality(encoder, quality));
  heif_check(heif_context_encode_image(ctx, image, encoder, nullptr, nullptr));
  heif_encoder_release(encoder);
  heif_image_release(image);
  Bytes out;
  heif_writer writer{1, write_bytes};
  heif_check(heif_context_write(ctx, &writer, &out));
  heif_context_free(ctx);
  return out;
}

}  // namespace dermal::test
