// Colormaps for heatmaps, with matplotlib's semantics: a value v in [0, 1] picks entry
// floor(v * 256) (255 for v = 1) of a 256-entry table whose entry i is the map at i / 255.
// Values below 0 or above 1 are clamped; NaN counts as 0.
//
//   Image heat = colorize(cam01, Colormap::jet);
//   auto [r, g, b] = colormap_rgb(Colormap::viridis, 0.5);  // floats in [0, 1]
//
// - jet: matplotlib's segment data, exact.
// - viridis, turbo: Chebyshev polynomials (degree 14 and 22) fitted by least squares to the
//   256-entry tables matplotlib publishes (viridis: van der Walt and Smith; turbo: Mikhailov,
//   Google 2019). Largest error over the table: 0.28/255 (viridis), 0.67/255 (turbo), so bytes
//   are within 1 of matplotlib's. (Google's own 6-coefficient turbo polynomial is off by up to
//   32/255 at the ends, so it is not used.)
#pragma once

#include <array>
#include <string>

#include "vision/image.h"

namespace dermal::vision {

enum class Colormap { jet, turbo, viridis };
const char* colormap_name(Colormap c);
Colormap parse_colormap(const std::string& name);  // "jet" | "turbo" | "viridis"

std::array<float, 3> colormap_rgb(Colormap c, double v);

// Each value through the colormap, as bytes rounded from the floats (matplotlib's
// cmap(v, bytes=True) truncates instead, so it can be 1 lower).
Image colorize(const FloatMap& m01, Colormap c);

}  // namespace dermal::vision
