// Decoding: real photos against PIL, every colour layout, and the bad inputs an upload server
// meets (truncated, lying, bombs, empty, text). Each bad input gives a clear error, none crashes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "engine/error.h"
#include "vision/decode.h"
#include "vision/image_files.h"
#include "error_check.h"

namespace dermal::test {
namespace {

using vision::decode_image;
using vision::DecodeLimits;
using vision::Image;

uint64_t fnv1a64(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

int max_diff(const uint8_t* a, const uint8_t* b) {
  int d = 0;
  for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(a[c] - b[c]));
  return d;
}

TEST(Decode, RealJpegsEqualPilsDecode) {
  auto manifest = nlohmann::json::parse(read_bytes(vision_data("manifest.json")));
  ASSERT_EQ(manifest["images"].size(), 3u);
  for (auto& [id, info] : manifest["images"].items()) {
    Image img = decode_image(read_bytes(ham_image(id)));
    EXPECT_EQ(img.width, info["width"].get<int>());
    EXPECT_EQ(img.height, info["height"].get<int>());
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(img.rgb)));
    EXPECT_EQ(hex, info["fnv1a64"].get<std::string>()) << id << ": decoded bytes differ from PIL's";
  }
}

TEST(Decode, DetectsFormatFromBytesOnly) {
  EXPECT_EQ(vision::detect_format(read_bytes(ham_image("ISIC_0024306")).data(), 100), vision::ImageFormat::jpeg);
  Bytes png = png_file(1, 1, 8, 0, {7});
  EXPECT_EQ(vision::detect_format(png.data(), png.size()), vision::ImageFormat::png);
  const uint8_t riff[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
  EXPECT_EQ(vision::detect_format(riff, sizeof riff), vision::ImageFormat::webp);
  const uint8_t wav[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E'};
  EXPECT_EQ(vision::detect_format(wav, sizeof wav), vision::ImageFormat::unknown);
  EXPECT_EQ(vision::detect_format(riff, 11), vision::ImageFormat::unknown);
}

TEST(BadInput, EmptyFile) {
  expect_error([] { decode_image(nullptr, 0); }, {ErrorKind::invalid_input}, {"empty"});
  Bytes none;
  expect_error([&] { decode_image(none); }, {ErrorKind::invalid_input}, {"0 bytes"});
}

TEST(BadInput, TextFile) {
  std::string text = "image_id,dx,age\nISIC_0024306,nv,45\n";
  Bytes bytes(text.begin(), text.end());
  expect_error([&] { decode_image(bytes); }, {ErrorKind::invalid_input}, {"look like text"});
}

TEST(BadInput, UnknownBinaryAndOtherFormatsAreNamed) {
  Bytes junk = {0x00, 0x01, 0x02, 0xfe, 0xff, 0x10};
  expect_error([&] { decode_image(junk); }, {ErrorKind::invalid_input}, {"first bytes: 00 01 02 fe ff 10"});
  Bytes gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0};
  expect_error([&] { decode_image(gif); }, {ErrorKind::invalid_input}, {"GIF images are not supported"});
  Bytes magic_only = {0xFF, 0xD8, 0xFF};
  expect_error([&] { decode_image(magic_only); }, {ErrorKind::invalid_input}, {"invalid JPEG"});
}

TEST(BadInput, TruncatedJpeg) {
  Bytes full = read_bytes(ham_image("ISIC_0024306"));
  // Cut inside the entropy-coded data, inside the headers, and just before the end.
  for (size_t cut : {full.size() / 2, full.size() * 9 / 10, size_t{600}, size_t{20}, full.size() - 50}) {
    Bytes part(full.begin(), full.begin() + cut);
    expect_error([&] { decode_image(part); }, {ErrorKind::invalid_input}, {"invalid JPEG image"});
  }
  Bytes half(full.begin(), full.begin() + full.size() / 2);
  expect_error([&] { decode_image(half); }, {ErrorKind::invalid_input}, {"truncated"});
}

TEST(BadInput, TruncatedPngAndWebp) {
  Bytes samples(32 * 32 * 3);
  std::mt19937 rng(1);
  for (auto& s : samples) s = static_cast<uint8_t>(rng());
  Bytes png = png_file(32, 32, 8, 2, samples);
  for (size_t cut : {png.size() / 2, size_t{40}, size_t{12}}) {
    Bytes part(png.begin(), png.begin() + cut);
    expect_error([&] { decode_image(part); }, {ErrorKind::invalid_input}, {"invalid PNG image"});
  }
}

TEST(BadInput, PngHeaderLiesAboutItsSize) {
  Bytes samples(8 * 8 * 3, 100);
  Bytes honest = png_file(8, 8, 8, 2, samples);
  ASSERT_EQ(decode_image(honest).height, 8);
  // Same pixel data, but IHDR claims 100 times more rows than the data holds.
  Bytes lying = png_with_declared_size(honest, 8, 800);
  expect_error([&] { decode_image(lying); }, {ErrorKind::invalid_input}, {"invalid PNG image"});
  // A header whose CRC does not match (edited without fixing it) is refused too.
  Bytes tampered = honest;
  tampered[19] = 200;  // height's low byte
  expect_error([&] { decode_image(tampered); }, {ErrorKind::invalid_input}, {"invalid PNG image"});
}

TEST(BadInput, PngDecompressionBombIsRefusedBeforeAllocating) {
  // A valid 30000x30000 IHDR in front of a tiny IDAT: decoding it would need 2.7 GB.
  Bytes bomb = png_with_declared_size(png_file(4, 4, 8, 2, Bytes(48, 0)), 30000, 30000);
  EXPECT_LT(bomb.size(), 200u);
  auto start = std::chrono::steady_clock::now();
  expect_error([&] { decode_image(bomb); }, {ErrorKind::too_large}, {"30000x30000"});
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 50.0) << "the refusal must come from the header, before any decoding";
}

TEST(BadInput, PngTextBombIsBounded) {
  // A zTXt chunk that inflates 64 MiB of 'Z' from about 64 KB: over the metadata limit.
  Bytes text(64u << 20, 'Z');
  uLongf zsize = compressBound(static_cast<uLong>(text.size()));
  Bytes z(zsize);
  ASSERT_EQ(compress2(z.data(), &zsize, text.data(), static_cast<uLong>(text.size()), 9), Z_OK);
  z.resize(zsize);
  Bytes ztxt = {'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 0};  // keyword, NUL, compression method 0
  ztxt.insert(ztxt.end(), z.begin(), z.end());
  Bytes png = png_file(2, 2, 8, 2, Bytes(12, 50), {png_chunk("zTXt", ztxt)});
  EXPECT_LT(png.size(), 200'000u);
  expect_error([&] { decode_image(png); }, {ErrorKind::too_large}, {"limits"});
  // The same chunk with a small text is read and ignored.
  Bytes small_text = {'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 0};
  Bytes hello(1000, 'a');
  uLongf hsize = compressBound(1000);
  Bytes hz(hsize);
  ASSERT_EQ(compress2(hz.data(), &hsize, hello.data(), 1000, 9), Z_OK);
  small_text.insert(small_text.end(), hz.begin(), hz.begin() + hsize);
  EXPECT_EQ(decode_image(png_file(2, 2, 8, 2, Bytes(12, 50), {png_chunk("zTXt", small_text)})).rgb[0], 50);
}

TEST(BadInput, WebpDeclaring16383x16383In50Bytes) {
  // RIFF header, then a VP8L chunk whose 14-bit width-1 and height-1 fields are all ones.
  Bytes webp = {'R', 'I', 'F', 'F', 42, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'L', 30, 0, 0, 0, 0x2f};
  const uint32_t bits = (16383 - 1) | (16383 - 1) << 14;  // alpha 0, version 0
  for (int i = 0; i < 4; ++i) webp.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  webp.resize(50, 0);
  auto start = std::chrono::steady_clock::now();
  expect_error([&] { decode_image(webp); }, {ErrorKind::too_large}, {"16383x16383"});
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 50.0);
}

TEST(BadInput, FileAndPixelLimits) {
  Bytes png = png_file(10, 10, 8, 0, Bytes(100, 9));
  DecodeLimits limits;
  limits.max_pixels = 100;
  EXPECT_EQ(decode_image(png, limits).width, 10);
  limits.max_pixels = 99;
  expect_error([&] { decode_image(png, limits); }, {ErrorKind::too_large}, {"over the limit of 99 pixels"});
  limits = {};
  limits.max_bytes = png.size() - 1;
  expect_error([&] { decode_image(png, limits); }, {ErrorKind::too_large}, {"bytes is over the limit"});
  // JPEG's dimensions are checked after its header, before decoding.
  Bytes jpeg = read_bytes(ham_image("ISIC_0024306"));
  limits = {};
  limits.max_pixels = 200 * 150 - 1;
  expect_error([&] { decode_image(jpeg, limits); }, {ErrorKind::too_large}, {"200x150"});
}

TEST(Decode, CmykJpegBecomesRgb) {
  // Ink amounts per quadrant: red (M+Y), green (C+Y), blue (C+M), white (no ink); stored
  // inverted, as Adobe's CMYK JPEGs are (libjpeg writes the Adobe marker for CMYK).
  const uint8_t ink[4][4] = {{0, 255, 255, 0}, {255, 0, 255, 0}, {255, 255, 0, 0}, {0, 0, 0, 0}};
  const uint8_t expect[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
  JpegSpec spec{32, 32, JpegKind::cmyk, Bytes(32 * 32 * 4)};
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 4; ++c) spec.samples[(y * 32 + x) * 4 + c] = 255 - ink[(y >= 16) * 2 + (x >= 16)][c];
  Image img = decode_image(jpeg_file(spec));
  ASSERT_EQ(img.width, 32);
  const int at[4][2] = {{4, 4}, {27, 4}, {4, 27}, {27, 27}};
  for (int q = 0; q < 4; ++q)
    EXPECT_LE(max_diff(img.pixel(at[q][0], at[q][1]), expect[q]), 6) << "quadrant " << q;
  // Also a darker tone: K = 50% on white gives mid grey.
  JpegSpec grey{8, 8, JpegKind::cmyk, Bytes(8 * 8 * 4)};
  for (size_t i = 0; i < grey.samples.size(); i += 4) {
    grey.samples[i] = grey.samples[i + 1] = grey.samples[i + 2] = 255;
    grey.samples[i + 3] = 128;
  }
  Image g = decode_image(jpeg_file(grey));
  const uint8_t mid[3] = {128, 128, 128};
  EXPECT_LE(max_diff(g.pixel(3, 3), mid), 3);
}

TEST(Decode, GrayscaleJpegAndPng) {
  JpegSpec spec{16, 8, JpegKind::gray, Bytes(16 * 8)};
  for (size_t i = 0; i < spec.samples.size(); ++i) spec.samples[i] = static_cast<uint8_t>(i % 16 < 8 ? 40 : 200);
  Image j = decode_image(jpeg_file(spec));
  ASSERT_EQ(j.width, 16);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 16; ++x) {
      const uint8_t* p = j.pixel(x, y);
      EXPECT_TRUE(p[0] == p[1] && p[1] == p[2]);
      EXPECT_NEAR(p[0], x < 8 ? 40 : 200, 12);
    }
  // PNG: 8-bit and 2-bit grayscale, exact.
  Bytes gray8(5 * 3);
  for (size_t i = 0; i < gray8.size(); ++i) gray8[i] = static_cast<uint8_t>(i * 17);
  Image p = decode_image(png_file(5, 3, 8, 0, gray8));
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(p.rgb[i * 3], i * 17);
    EXPECT_EQ(p.rgb[i * 3 + 2], i * 17);
  }
  Image p2 = decode_image(png_file(4, 1, 2, 0, {0b00011011}));  // values 0, 1, 2, 3 -> 0, 85, 170, 255
  EXPECT_EQ(p2.rgb, (Bytes{0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255}));
}

TEST(Decode, SixteenBitPngKeepsTheHighByte) {
  // RGB16: samples 0x12AB, 0xFF01, 0x0080 -> 0x12, 0xFF, 0x00.
  Bytes rgb16 = {0x12, 0xAB, 0xFF, 0x01, 0x00, 0x80, 0xFF, 0xFF, 0x00, 0x00, 0x80, 0x00};
  Image a = decode_image(png_file(2, 1, 16, 2, rgb16));
  EXPECT_EQ(a.rgb, (Bytes{0x12, 0xFF, 0x00, 0xFF, 0x00, 0x80}));
  // Gray16.
  Image g = decode_image(png_file(3, 1, 16, 0, {0xAB, 0xCD, 0x01, 0xFF, 0xFF, 0xFF}));
  EXPECT_EQ(g.rgb, (Bytes{0xAB, 0xAB, 0xAB, 0x01, 0x01, 0x01, 0xFF, 0xFF, 0xFF}));
  // RGBA16, opaque and fully transparent (-> white).
  Bytes rgba16 = {0x40, 0, 0x80, 0, 0xC0, 0, 0xFF, 0xFF, 0x40, 0, 0x80, 0, 0xC0, 0, 0, 0};
  Image t = decode_image(png_file(2, 1, 16, 6, rgba16));
  EXPECT_EQ(t.rgb, (Bytes{0x40, 0x80, 0xC0, 255, 255, 255}));
}

TEST(Decode, AlphaIsCompositedOverWhite) {
  // RGBA: opaque red, transparent red, half-transparent black.
  Image a = decode_image(png_file(3, 1, 8, 6, {255, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 128}));
  EXPECT_EQ(a.rgb, (Bytes{255, 0, 0, 255, 255, 255, 127, 127, 127}));
  // Gray + alpha.
  Image ga = decode_image(png_file(2, 1, 8, 4, {10, 255, 10, 0}));
  EXPECT_EQ(ga.rgb, (Bytes{10, 10, 10, 255, 255, 255}));
  // Palette with a tRNS entry making index 1 transparent.
  Bytes plte = {200, 10, 20, 5, 6, 7};
  Image pal = decode_image(png_file(3, 1, 8, 3, {0, 1, 0}, {png_chunk("tRNS", {255, 0})}, plte));
  EXPECT_EQ(pal.rgb, (Bytes{200, 10, 20, 255, 255, 255, 200, 10, 20}));
  // Palette without transparency, 4 bits a pixel.
  Image pal4 = decode_image(png_file(3, 1, 4, 3, {0x10, 0x00}, {}, plte));
  EXPECT_EQ(pal4.rgb, (Bytes{5, 6, 7, 200, 10, 20, 200, 10, 20}));
}

TEST(Decode, ProgressiveJpegScanLimit) {
  Image src = quadrants(48, 32);
  JpegSpec spec{48, 32, JpegKind::rgb, src.rgb};
  spec.progressive = true;
  Bytes jpeg = jpeg_file(spec);  // libjpeg's standard progression: 10 scans for YCbCr
  Image ok = decode_image(jpeg);
  EXPECT_LE(max_diff(ok.pixel(5, 5), kQuadrantColors[0]), 8);
  DecodeLimits limits;
  limits.max_jpeg_scans = 9;
  expect_error([&] { decode_image(jpeg, limits); }, {ErrorKind::too_large}, {"more than 9 progressive scans"});
  limits.max_jpeg_scans = 10;
  EXPECT_EQ(decode_image(jpeg, limits).width, 48);
}

// The last scan of a progressive file (SOS marker to EOI), repeated: a small file with many
// scans, each of which libjpeg would otherwise process over the whole image.
Bytes with_repeated_last_scan(const Bytes& jpeg, int copies) {
  size_t last_sos = 0;
  for (size_t i = 0; i + 1 < jpeg.size(); ++i)
    if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xDA) last_sos = i;
  size_t eoi = jpeg.size() - 2;
  Bytes out(jpeg.begin(), jpeg.begin() + eoi);
  for (int c = 0; c < copies; ++c) out.insert(out.end(), jpeg.begin() + last_sos, jpeg.begin() + eoi);
  out.insert(out.end(), {0xFF, 0xD9});
  return out;
}

TEST(BadInput, TinyJpegWithThousandsOfScans) {
  Image src = quadrants(16, 16);
  JpegSpec spec{16, 16, JpegKind::rgb, src.rgb};
  spec.progressive = true;
  Bytes many = with_repeated_last_scan(jpeg_file(spec), 5000);
  EXPECT_LT(many.size(), 200'000u);
  expect_error([&] { decode_image(many); }, {ErrorKind::too_large}, {"more than 200 progressive scans"});
}

TEST(Decode, ExifRotatedJpeg) {
  // Stored 40x24; orientation 6 means "rotate 90 degrees clockwise to display".
  Image src = quadrants(40, 24);
  for (bool big_endian : {false, true}) {
    JpegSpec spec{40, 24, JpegKind::rgb, src.rgb};
    spec.app1 = exif_block(6, big_endian);
    Image img = decode_image(jpeg_file(spec));
    ASSERT_EQ(img.width, 24);
    ASSERT_EQ(img.height, 40);
    // Clockwise: the stored bottom-left (blue) comes to the top-left, top-left (red) to the top-right.
    EXPECT_LE(max_diff(img.pixel(2, 2), kQuadrantColors[2]), 8);
    EXPECT_LE(max_diff(img.pixel(21, 2), kQuadrantColors[0]), 8);
    EXPECT_LE(max_diff(img.pixel(2, 37), kQuadrantColors[3]), 8);
    EXPECT_LE(max_diff(img.pixel(21, 37), kQuadrantColors[1]), 8);
  }
  // Every orientation: 5..8 swap the sides.
  for (int o = 1; o <= 8; ++o) {
    JpegSpec spec{40, 24, JpegKind::rgb, src.rgb};
    spec.app1 = exif_block(o, o % 2 == 0);
    Image img = decode_image(jpeg_file(spec));
    EXPECT_EQ(img.width, o >= 5 ? 24 : 40) << o;
  }
}

TEST(Decode, ExifJpegWrittenByPilMatchesPil) {
  Image ours = decode_image(read_bytes(vision_data("exif6.jpg")));
  Image pil = decode_image(read_bytes(vision_data("exif6.pil.png")));
  ASSERT_EQ(ours.width, pil.width);
  ASSERT_EQ(ours.height, pil.height);
  EXPECT_EQ(ours.width, 24);
  EXPECT_EQ(ours.rgb, pil.rgb);
}

TEST(Decode, PngExifOrientation) {
  Bytes gray = {1, 2, 3, 4, 5, 6};  // 3x2
  Bytes exif = exif_block(8, true);
  Bytes tiff(exif.begin() + 6, exif.end());  // eXIf holds the TIFF block without "Exif\0\0"
  Image img = decode_image(png_file(3, 2, 8, 0, gray, {png_chunk("eXIf", tiff)}));
  ASSERT_EQ(img.width, 2);
  // Orientation 8 rotates counter-clockwise: the stored top-right pixel (3) comes to the top-left.
  EXPECT_EQ(img.rgb[0], 3);
  EXPECT_EQ(img.rgb[3], 6);
}

TEST(Decode, CorruptedFilesNeverCrash) {
  // Random byte flips in real files of each format: each decode succeeds or throws
  // dermal::Error; nothing else escapes and nothing crashes (run under ASan for leaks).
  std::vector<Bytes> files = {read_bytes(ham_image("ISIC_0024306")), read_bytes(vision_data("synthetic.png"))};
  JpegSpec prog{24, 16, JpegKind::rgb, quadrants(24, 16).rgb};
  prog.progressive = true;
  files.push_back(jpeg_file(prog));
  auto [decoded, refused] = decode_corruptions(files, 150, [](const Bytes& b) { return decode_image(b); });
  EXPECT_GT(refused, 0);
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace dermal::test
