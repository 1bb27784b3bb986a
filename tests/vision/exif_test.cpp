// EXIF orientation: the parser on well-formed and hostile TIFF blocks, and the transposes
// against PIL's ImageOps.exif_transpose (tests/data/vision/orientation.json).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

#include "vision/exif.h"
#include "vision/image_files.h"

namespace dermal::test {
namespace {

using vision::Image;

TEST(Exif, ReadsOrientationInBothByteOrders) {
  for (int o = 1; o <= 8; ++o)
    for (bool be : {false, true}) {
      Bytes b = exif_block(o, be);
      EXPECT_EQ(vision::exif_orientation(b.data(), b.size()), o);
      EXPECT_EQ(vision::exif_orientation(b.data() + 6, b.size() - 6), o) << "without the Exif prefix";
    }
}

TEST(Exif, HostileBlocksGiveOrientationOne) {
  Bytes good = exif_block(6, true);
  // Every truncation of a valid block: either the full answer or 1, never a read past the end.
  for (size_t n = 0; n < good.size(); ++n) {
    Bytes part(good.begin(), good.begin() + n);  // exact-size buffer so ASan sees overreads
    int o = vision::exif_orientation(part.empty() ? nullptr : part.data(), part.size());
    EXPECT_TRUE(o == 1 || (o == 6 && n >= good.size() - 6)) << n;  // the next-IFD field may be cut
  }
  // Out-of-range value, a wrong count, an IFD offset past the end, a bad byte-order mark.
  Bytes bad_value = exif_block(9, false);
  EXPECT_EQ(vision::exif_orientation(bad_value.data(), bad_value.size()), 1);
  Bytes far = exif_block(6, false);
  far[10] = 0xF0;  // IFD0 offset low byte
  EXPECT_EQ(vision::exif_orientation(far.data(), far.size()), 1);
  Bytes mark = exif_block(6, false);
  mark[6] = 'X';
  EXPECT_EQ(vision::exif_orientation(mark.data(), mark.size()), 1);
  // Random garbage after a valid header: any answer in 1..8, no crash.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 2000; ++trial) {
    Bytes b = exif_block(static_cast<int>(rng() % 8 + 1), trial % 2);
    for (size_t i = 8; i < b.size(); ++i)
      if (rng() % 4 == 0) b[i] = static_cast<uint8_t>(rng());
    b.resize(rng() % b.size() + 1);
    int o = vision::exif_orientation(b.data(), b.size());
    EXPECT_TRUE(o >= 1 && o <= 8);
  }
}

TEST(Exif, TransposesMatchPil) {
  auto ref = nlohmann::json::parse(read_bytes(vision_data("orientation.json")));
  Image src = Image::blank(3, 2);
  for (int i = 0; i < 6; ++i) src.rgb[i * 3] = static_cast<uint8_t>(i);
  for (int o = 1; o <= 8; ++o) {
    const auto& r = ref[std::to_string(o)];
    Image out = vision::apply_orientation(src, o);
    ASSERT_EQ(out.width, r["width"].get<int>()) << o;
    ASSERT_EQ(out.height, r["height"].get<int>()) << o;
    std::vector<int> ids;
    for (int i = 0; i < out.width * out.height; ++i) ids.push_back(out.rgb[i * 3]);
    EXPECT_EQ(ids, r["ids"].get<std::vector<int>>()) << "orientation " << o;
  }
  EXPECT_EQ(vision::apply_orientation(src, 0).rgb, src.rgb);
  EXPECT_EQ(vision::apply_orientation(src, 42).rgb, src.rgb);
}

}  // namespace
}  // namespace dermal::test
