// WebP decoding, and the encoders (PNG lossless round trip, JPEG within JPEG's error).
#include <gtest/gtest.h>
#include <webp/encode.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "engine/error.h"
#include "vision/decode.h"
#include "vision/encode.h"
#include "vision/image_files.h"
#include "error_check.h"

namespace dermal::test {
namespace {

using vision::decode_image;
using vision::Image;

Image random_image(int w, int h, unsigned seed) {
  Image img = Image::blank(w, h);
  std::mt19937 rng(seed);
  for (auto& v : img.rgb) v = static_cast<uint8_t>(rng());
  return img;
}

Bytes webp_lossless(const uint8_t* pixels, int w, int h, bool alpha) {
  uint8_t* out = nullptr;
  size_t size = alpha ? WebPEncodeLosslessRGBA(pixels, w, h, w * 4, &out) : WebPEncodeLosslessRGB(pixels, w, h, w * 3, &out);
  Bytes b(out, out + size);
  WebPFree(out);
  return b;
}

TEST(Webp, LosslessRgbRoundTrip) {
  Image src = random_image(13, 7, 3);
  Bytes webp = webp_lossless(src.rgb.data(), 13, 7, false);
  ASSERT_EQ(vision::detect_format(webp.data(), webp.size()), vision::ImageFormat::webp);
  Image img = decode_image(webp);
  EXPECT_EQ(img.width, 13);
  EXPECT_EQ(img.rgb, src.rgb);
}

TEST(Webp, AlphaIsCompositedOverWhite) {
  Bytes rgba = {255, 0, 0, 255, 0, 0, 255, 0, 0, 0, 0, 128};
  Image img = decode_image(webp_lossless(rgba.data(), 3, 1, true));
  EXPECT_EQ(img.rgb, (Bytes{255, 0, 0, 255, 255, 255, 127, 127, 127}));
}

TEST(Webp, ExifOrientationInExtendedFile) {
  // An extended file by hand: VP8X (EXIF flag) + the encoder's VP8L chunk + an EXIF chunk.
  Image src = random_image(3, 2, 4);
  Bytes simple = webp_lossless(src.rgb.data(), 3, 2, false);
  Bytes vp8l(simple.begin() + 12, simple.end());  // after "RIFF" size "WEBP"
  Bytes exif = exif_block(6, false);
  Bytes payload(exif.begin() + 6, exif.end());
  Bytes body = {'W', 'E', 'B', 'P', 'V', 'P', '8', 'X', 10, 0, 0, 0, 0x08, 0, 0, 0, 2, 0, 0, 1, 0, 0};
  body.insert(body.end(), vp8l.begin(), vp8l.end());
  Bytes chunk = {'E', 'X', 'I', 'F', static_cast<uint8_t>(payload.size()), 0, 0, 0};
  body.insert(body.end(), chunk.begin(), chunk.end());
  body.insert(body.end(), payload.begin(), payload.end());
  if (payload.size() % 2) body.push_back(0);
  Bytes file = {'R', 'I', 'F', 'F'};
  for (int i = 0; i < 4; ++i) file.push_back(static_cast<uint8_t>(body.size() >> (8 * i)));
  file.insert(file.end(), body.begin(), body.end());
  Image img = decode_image(file);
  ASSERT_EQ(img.width, 2);
  ASSERT_EQ(img.height, 3);
  // Rotated clockwise: the stored bottom-left pixel is now the top-left one.
  EXPECT_EQ(Bytes(img.rgb.begin(), img.rgb.begin() + 3), Bytes(src.pixel(0, 1), src.pixel(0, 1) + 3));
}

TEST(Webp, TruncatedAndCorrupt) {
  Image src = random_image(32, 32, 5);
  Bytes webp = webp_lossless(src.rgb.data(), 32, 32, false);
  for (size_t cut : {webp.size() / 2, size_t{25}, size_t{13}}) {
    Bytes part(webp.begin(), webp.begin() + cut);
    SCOPED_TRACE("a WebP cut to " + std::to_string(cut) + " bytes");
    expect_error([&] { decode_image(part); }, {ErrorKind::invalid_input}, {"invalid WebP image"});
  }
}

TEST(Encode, PngRoundTripIsExact) {
  for (auto [w, h] : {std::pair{1, 1}, {13, 7}, {200, 3}}) {
    Image src = random_image(w, h, static_cast<unsigned>(w * h));
    Bytes png = vision::encode_png(src);
    ASSERT_EQ(vision::detect_format(png.data(), png.size()), vision::ImageFormat::png);
    Image back = decode_image(png);
    EXPECT_EQ(back.width, w);
    EXPECT_EQ(back.rgb, src.rgb);
  }
}

TEST(Encode, JpegRoundTripIsClose) {
  Image src = decode_image(read_bytes(ham_image("ISIC_0024307")));
  for (int quality : {50, 90}) {
    Bytes jpg = vision::encode_jpeg(src, quality);
    Image back = decode_image(jpg);
    ASSERT_EQ(back.width, src.width);
    double se = 0;
    for (size_t i = 0; i < src.rgb.size(); ++i) se += std::pow(src.rgb[i] - back.rgb[i], 2);
    double psnr = 10 * std::log10(255.0 * 255.0 / (se / src.rgb.size()));
    EXPECT_GT(psnr, quality == 90 ? 38.0 : 30.0) << "quality " << quality;
  }
  EXPECT_LT(vision::encode_jpeg(src, 50).size(), vision::encode_jpeg(src, 95).size());
  // A large image exercises the growing output buffer.
  Image big = random_image(400, 300, 9);
  EXPECT_EQ(decode_image(vision::encode_jpeg(big, 100)).height, 300);
}

TEST(Encode, RefusesBadArguments) {
  Image img = Image::blank(2, 2);
  EXPECT_THROW(vision::encode_jpeg(img, 0), Error);
  EXPECT_THROW(vision::encode_jpeg(img, 101), Error);
  EXPECT_THROW(vision::encode_png(Image()), Error);
  Image broken = Image::blank(4, 4);
  broken.rgb.resize(5);
  EXPECT_THROW(vision::encode_png(broken), Error);
}

}  // namespace
}  // namespace dermal::test
