// Colormaps against matplotlib's published values, and the overlay arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engine/error.h"
#include "vision/colormap.h"
#include "vision/overlay.h"

namespace dermal::test {
namespace {

using vision::Colormap;
using vision::FloatMap;
using vision::Image;

struct Expected {
  double v;
  float r, g, b;
};

void expect_map(Colormap c, const std::vector<Expected>& values, float tol) {
  for (const Expected& e : values) {
    auto rgb = vision::colormap_rgb(c, e.v);
    EXPECT_NEAR(rgb[0], e.r, tol) << vision::colormap_name(c) << "(" << e.v << ") red";
    EXPECT_NEAR(rgb[1], e.g, tol) << vision::colormap_name(c) << "(" << e.v << ") green";
    EXPECT_NEAR(rgb[2], e.b, tol) << vision::colormap_name(c) << "(" << e.v << ") blue";
  }
}

TEST(Colormap, JetMatchesMatplotlib) {
  // matplotlib.cm.jet(v)[:3]; v = 0.5 and 0.25 pick table entries 128 and 64 (x = 128/255, 64/255).
  expect_map(Colormap::jet,
             {{0.0, 0, 0, 0.5f},
              {1.0, 0.5f, 0, 0},
              {0.5, 0.490196f, 1.0f, 0.477546f},
              {0.25, 0, 0.503922f, 1.0f},
              {0.75, 1.0f, 0.581699f, 0}},
             1e-5f);
}

TEST(Colormap, ViridisAndTurboMatchMatplotlibTables) {
  // Entries 0, 64, 128, 192, 255 of matplotlib's _viridis_data and _turbo_data.
  expect_map(Colormap::viridis,
             {{0.0, 0.267004f, 0.004874f, 0.329415f},
              {0.25, 0.229739f, 0.322361f, 0.545706f},
              {0.5, 0.127568f, 0.566949f, 0.550556f},
              {0.75, 0.369214f, 0.788888f, 0.382914f},
              {1.0, 0.993248f, 0.906157f, 0.143936f}},
             0.3f / 255);
  expect_map(Colormap::turbo,
             {{0.0, 0.18995f, 0.07176f, 0.23217f},
              {0.25, 0.15844f, 0.73551f, 0.92305f},
              {0.5, 0.64362f, 0.98999f, 0.23356f},
              {0.75, 0.98360f, 0.49291f, 0.12849f},
              {1.0, 0.47960f, 0.01583f, 0.01055f}},
             0.7f / 255);
}

TEST(Colormap, ClampsAndTreatsNanAsZero) {
  for (Colormap c : {Colormap::jet, Colormap::turbo, Colormap::viridis}) {
    EXPECT_EQ(vision::colormap_rgb(c, -3.0), vision::colormap_rgb(c, 0.0));
    EXPECT_EQ(vision::colormap_rgb(c, 7.0), vision::colormap_rgb(c, 1.0));
    EXPECT_EQ(vision::colormap_rgb(c, std::numeric_limits<double>::quiet_NaN()), vision::colormap_rgb(c, 0.0));
    EXPECT_EQ(vision::parse_colormap(vision::colormap_name(c)), c);
  }
  EXPECT_THROW(vision::parse_colormap("rainbow"), Error);
}

TEST(Colormap, ColorizeRoundsTheTable) {
  FloatMap m = FloatMap::filled(3, 1);
  m.values = {0.0f, 0.5f, 1.0f};
  Image img = vision::colorize(m, Colormap::jet);
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{0, 0, 128, 125, 255, 122, 128, 0, 0}));
}

TEST(Overlay, BlendIsTheWeightedMean) {
  Image base = Image::blank(2, 1), heat = Image::blank(2, 1);
  base.rgb = {0, 100, 200, 255, 255, 255};
  heat.rgb = {255, 0, 100, 0, 0, 0};
  Image out = vision::blend(base, heat, 0.4f);
  EXPECT_EQ(out.rgb, (std::vector<uint8_t>{102, 60, 160, 153, 153, 153}));
  EXPECT_EQ(vision::blend(base, heat, 0.0f).rgb, base.rgb);
  EXPECT_EQ(vision::blend(base, heat, 1.0f).rgb, heat.rgb);
  EXPECT_THROW(vision::blend(base, Image::blank(3, 1), 0.4f), Error);
  EXPECT_THROW(vision::blend(base, heat, 1.5f), Error);
}

TEST(Overlay, HeatmapIsUpsampledToTheImage) {
  Image base = Image::blank(40, 30);
  std::fill(base.rgb.begin(), base.rgb.end(), 200);
  FloatMap cam = FloatMap::filled(2, 2);
  cam.values = {0.f, 0.f, 0.f, 1.f};  // hot in the bottom-right cell only
  Image out = vision::overlay_heatmap(base, cam, Colormap::jet, 0.5f);
  ASSERT_EQ(out.width, 40);
  ASSERT_EQ(out.height, 30);
  // Top-left: jet(0) = dark blue; bottom-right: jet(1) = dark red.
  EXPECT_EQ(out.pixel(0, 0)[0], 100);
  EXPECT_EQ(out.pixel(0, 0)[2], 164);
  EXPECT_EQ(out.pixel(39, 29)[0], 164);
  EXPECT_EQ(out.pixel(39, 29)[2], 100);
}

}  // namespace
}  // namespace dermal::test
