// Decoding big images to the size that is needed (DecodeTarget): JPEG's DCT scaling picks the
// smallest M/8 that meets the target, WebP rescales while decoding, non-interlaced PNG is averaged
// in k x k blocks row by row; the limits apply to the decoded size, the source size is reported
// after orientation, and an image already small enough is decoded exactly as before.
#include <gtest/gtest.h>
#include <webp/encode.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "error_check.h"
#include "vision/decode.h"
#include "vision/image_files.h"
#include "vision/resize.h"

namespace dermal::test {
namespace {

using vision::DecodeLimits;
using vision::DecodeTarget;
using vision::decode_image;
using vision::Image;
using vision::SourceSize;

// A real lesion photo enlarged to a phone-like size (smooth, like a camera's), as RGB samples.
Image enlarged_lesion(int width, int height) {
  return vision::resize(decode_image(read_bytes(ham_image("ISIC_0024306"))), width, height);
}

// A lossy WebP, written by libwebp's own encoder.
Bytes webp_lossy(const Image& img, float quality) {
  uint8_t* out = nullptr;
  const size_t size = WebPEncodeRGB(img.rgb.data(), img.width, img.height, img.width * 3, quality, &out);
  Bytes b(out, out + size);
  WebPFree(out);
  return b;
}

double mean_abs_diff(const Image& a, const Image& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  double s = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) s += std::abs(a.rgb[i] - b.rgb[i]);
  return s / static_cast<double>(a.rgb.size());
}

TEST(ReducedDecode, JpegScalesInTheDctDomainToTheTarget) {
  const Image big = enlarged_lesion(2400, 1800);
  JpegSpec spec{2400, 1800, JpegKind::rgb, big.rgb};
  const Bytes jpeg = jpeg_file(spec);
  const Image full = decode_image(jpeg);
  ASSERT_EQ(full.width, 2400);
  // 1024 on the longer side: 2400 * M / 8 >= 1024 first holds at M = 4 (1200 x 900).
  SourceSize source;
  const Image reduced = decode_image(jpeg, {}, DecodeTarget{160, 160, 1024}, &source);
  EXPECT_EQ(reduced.width, 1200);
  EXPECT_EQ(reduced.height, 900);
  EXPECT_EQ(source.width, 2400);
  EXPECT_EQ(source.height, 1800);
  // The same picture as the full decode shrunk (within a level or two: the DCT's own filter).
  EXPECT_LT(mean_abs_diff(reduced, vision::resize(full, 1200, 900)), 1.5);
  // A target above the source decodes every pixel; so does no target.
  EXPECT_EQ(decode_image(jpeg, {}, DecodeTarget{160, 160, 4096}).width, 2400);
  // The model's input alone would allow 1/8; the longer side keeps 3/8 for 640.
  EXPECT_EQ(decode_image(jpeg, {}, DecodeTarget{160, 160, 0}).width, 300);
  EXPECT_EQ(decode_image(jpeg, {}, DecodeTarget{0, 0, 640}).width, 900);
}

TEST(ReducedDecode, LimitsApplyToTheDecodedSize) {
  const Image big = enlarged_lesion(2400, 1800);
  const Bytes jpeg = jpeg_file(JpegSpec{2400, 1800, JpegKind::rgb, big.rgb});
  DecodeLimits limits;
  limits.max_pixels = 1200 * 900;  // what the target needs: accepted, though the file is 4.3 MP
  EXPECT_EQ(decode_image(jpeg, limits, DecodeTarget{160, 160, 1024}).width, 1200);
  limits.max_pixels = 1200 * 900 - 1;
  expect_error([&] { decode_image(jpeg, limits, DecodeTarget{160, 160, 1024}); }, {ErrorKind::too_large},
               {"would decode to 1200x900"});
  expect_error([&] { decode_image(jpeg, limits); }, {ErrorKind::too_large}, {"2400x1800", "decoded at full size"});
  limits = {};
  limits.max_source_pixels = 2400 * 1800 - 1;
  expect_error([&] { decode_image(jpeg, limits, DecodeTarget{160, 160, 1024}); }, {ErrorKind::too_large}, {"2400x1800"});
  // A progressive JPEG keeps every coefficient of the full image, however small the output:
  // the decoder budget refuses it rather than the machine running out.
  JpegSpec progressive{2400, 1800, JpegKind::rgb, big.rgb};
  progressive.progressive = true;
  const Bytes pjpeg = jpeg_file(progressive);
  limits = {};
  EXPECT_EQ(decode_image(pjpeg, limits, DecodeTarget{160, 160, 1024}).width, 1200);
  limits.max_decoder_bytes = 1u << 20;
  expect_error([&] { decode_image(pjpeg, limits, DecodeTarget{160, 160, 1024}); }, {ErrorKind::too_large}, {"memory"});
}

TEST(ReducedDecode, PngAveragesWholeBlocksRowByRow) {
  // 64 x 48 RGB with distinct values everywhere; the target allows k = 4.
  Bytes samples(64 * 48 * 3);
  for (size_t i = 0; i < samples.size(); ++i) samples[i] = static_cast<uint8_t>((i * 37 + i / 191) % 256);
  const Bytes png = png_file(64, 48, 8, 2, samples);
  SourceSize source;
  const Image r = decode_image(png, {}, DecodeTarget{8, 8, 16}, &source);
  ASSERT_EQ(r.width, 16);
  ASSERT_EQ(r.height, 12);
  EXPECT_EQ(source.width, 64);
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 16; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < 4; ++dy)
          for (int dx = 0; dx < 4; ++dx) sum += samples[((y * 4 + dy) * 64 + x * 4 + dx) * 3 + c];
        ASSERT_EQ(r.pixel(x, y)[c], (sum + 8) / 16) << x << "," << y << "," << c;
      }
  // Edge blocks that do not divide evenly average what they hold: 10 x 7 by 3 gives 4 x 3.
  Bytes odd(10 * 7 * 3, 0);
  for (int y = 0; y < 7; ++y)
    for (int x = 0; x < 10; ++x) odd[(y * 10 + x) * 3] = static_cast<uint8_t>(x * 20 + y);
  const Image e = decode_image(png_file(10, 7, 8, 2, odd), {}, DecodeTarget{3, 2, 0});
  ASSERT_EQ(e.width, 4);
  ASSERT_EQ(e.height, 3);
  EXPECT_EQ(e.pixel(3, 2)[0], 180 + 6);  // the last column (x = 9) of the last row (y = 6) alone
  // Small enough already: decoded whole, exactly.
  EXPECT_EQ(decode_image(png, {}, DecodeTarget{64, 48, 64}).rgb, samples);
}

TEST(ReducedDecode, WebpRescalesWhileDecoding) {
  const Image big = enlarged_lesion(1600, 1200);
  const Bytes webp = webp_lossy(big, 90);
  SourceSize source;
  const Image r = decode_image(webp, {}, DecodeTarget{160, 160, 400}, &source);
  EXPECT_EQ(r.width, 400);
  EXPECT_EQ(r.height, 300);
  EXPECT_EQ(source.width, 1600);
  EXPECT_LT(mean_abs_diff(r, vision::resize(decode_image(webp), 400, 300)), 2.0);
}

TEST(ReducedDecode, TargetFollowsTheExifOrientation) {
  // Stored 2400 x 1600 with orientation 6 (a quarter turn): shown 1600 x 2400. A target of 1000 x
  // 1500 is met in the stored frame by 1500 x 1000 (M = 5), not by 1000 x 667.
  const Image big = enlarged_lesion(2400, 1600);
  JpegSpec spec{2400, 1600, JpegKind::rgb, big.rgb};
  spec.app1 = exif_block(6, false);
  const Bytes jpeg = jpeg_file(spec);
  SourceSize source;
  const Image r = decode_image(jpeg, {}, DecodeTarget{1000, 1500, 0}, &source);
  EXPECT_EQ(source.width, 1600);
  EXPECT_EQ(source.height, 2400);
  EXPECT_EQ(r.width, 1000);
  EXPECT_EQ(r.height, 1500);
}

// The reduced paths (DCT scaling, libwebp's rescaler, PNG rows into the BlockReducer) on corrupted
// files: refused or decoded, never a crash.
TEST(ReducedDecode, CorruptedFilesNeverCrash) {
  const Image big = enlarged_lesion(640, 480);
  const Bytes webp = webp_lossy(big, 80);
  JpegSpec progressive{640, 480, JpegKind::rgb, big.rgb};
  progressive.progressive = true;
  const std::vector<Bytes> files = {jpeg_file(JpegSpec{640, 480, JpegKind::rgb, big.rgb}), jpeg_file(progressive), webp,
                                    png_file(640, 480, 8, 2, big.rgb)};
  auto [decoded, refused] =
      decode_corruptions(files, 100, [](const Bytes& b) { return decode_image(b, {}, DecodeTarget{32, 32, 100}); });
  EXPECT_GT(decoded, 0);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace dermal::test
