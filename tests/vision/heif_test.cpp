// HEIC (the iPhone's format) and AVIF through libheif: files written by libheif's own encoders
// (x265, aom) decode to the colours they were made from; transparency goes over white; a big
// file is reduced while copied out and reports its own size; one that would need more than the
// decoder budget to decode whole is refused before decoding; a truncated one is refused.
#include <gtest/gtest.h>

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

int max_diff(const uint8_t* a, const uint8_t* b) {
  int d = 0;
  for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(a[c] - b[c]));
  return d;
}

void expect_quadrants(const Image& img, int tolerance) {
  ASSERT_EQ(img.width, 64);
  ASSERT_EQ(img.height, 48);
  const int at[4][2] = {{16, 12}, {48, 12}, {16, 36}, {48, 36}};
  for (int q = 0; q < 4; ++q)
    EXPECT_LE(max_diff(img.pixel(at[q][0], at[q][1]), kQuadrantColors[q]), tolerance) << "quadrant " << q;
}

TEST(Heif, HeicAndAvifDecodeToTheirColours) {
  const Image src = quadrants(64, 48);
  for (bool avif : {false, true}) {
    const Bytes file = heif_file(src, avif);
    ASSERT_EQ(vision::detect_format(file.data(), file.size()), vision::ImageFormat::heif) << avif;
    expect_quadrants(decode_image(file), 12);
  }
}

TEST(Heif, TransparencyGoesOverWhite) {
  const Image src = quadrants(64, 48);
  Bytes alpha(64 * 48, 255);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 32; ++x) alpha[y * 64 + x] = 0;  // the left half fully transparent
  const Image img = decode_image(heif_file(src, false, 90, alpha));
  const uint8_t white[3] = {255, 255, 255};
  EXPECT_LE(max_diff(img.pixel(16, 12), white), 12);
  EXPECT_LE(max_diff(img.pixel(48, 36), kQuadrantColors[3]), 12);
}

TEST(Heif, BigPhotoIsReducedAndWithinTheDecoderBudget) {
  const Image big = vision::resize(decode_image(read_bytes(ham_image("ISIC_0024306"))), 1600, 1200);
  const Bytes heic = heif_file(big, false);
  vision::SourceSize source;
  const Image reduced = decode_image(heic, {}, DecodeTarget{160, 160, 512}, &source);
  EXPECT_EQ(source.width, 1600);
  EXPECT_EQ(source.height, 1200);
  EXPECT_EQ(reduced.width, 534);  // k = 3, the largest whole factor that keeps 512 on the longer side: ceil(1600 / 3)
  EXPECT_EQ(reduced.height, 400);
  // Compared with the full decode averaged the same way (the BlockReducer's own test is the PNG's).
  const Image full = decode_image(heic);
  ASSERT_EQ(full.width, 1600);
  double diff = 0;
  const Image shrunk = vision::resize(full, 534, 400, vision::ResizeMode::area);
  for (size_t i = 0; i < shrunk.rgb.size(); ++i) diff += std::abs(shrunk.rgb[i] - reduced.rgb[i]);
  EXPECT_LT(diff / static_cast<double>(shrunk.rgb.size()), 1.5);
  // libheif decodes whole: a file that would need more than the budget is refused before it is.
  DecodeLimits limits;
  limits.max_decoder_bytes = 1600 * 1200 * 6;  // under the 7 bytes a pixel it takes
  expect_error([&] { decode_image(heic, limits, DecodeTarget{160, 160, 512}); }, {ErrorKind::too_large},
               {"1600x1200", "decoder limit"});
  // Truncated: refused, never a crash.
  const Bytes cut(heic.begin(), heic.begin() + static_cast<long>(heic.size() / 2));
  expect_error([&] { decode_image(cut); }, {ErrorKind::invalid_input, ErrorKind::too_large}, {"HEIC"});
}

TEST(Heif, CorruptedFilesNeverCrash) {
  const Image src = vision::resize(decode_image(read_bytes(ham_image("ISIC_0024306"))), 320, 240);
  auto [decoded, refused] = decode_corruptions({heif_file(src, false), heif_file(src, true)}, 100, [](const Bytes& b) {
    return decode_image(b, {}, DecodeTarget{32, 32, 100});
  });
  EXPECT_GT(refused, 0);
  EXPECT_GE(decoded + refused, 200);
}

}  // namespace
}  // namespace dermal::test
