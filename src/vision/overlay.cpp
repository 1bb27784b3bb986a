#include "vision/overlay.h"

#include <cmath>
#include <string>

#include "engine/error.h"
#include "vision/resize.h"

namespace dermal::vision {

Image blend(const Image& base, const Image& heat, float alpha) {
  if (base.width != heat.width || base.height != heat.height)
    throw Error(ErrorKind::invalid_input, "blend: image " + std::to_string(base.width) + "x" +
                                              std::to_string(base.height) + " and heatmap " +
                                              std::to_string(heat.width) + "x" + std::to_string(heat.height) +
                                              " differ in size");
  if (!(alpha >= 0.f && alpha <= 1.f))
    throw Error(ErrorKind::invalid_input, "blend: alpha " + std::to_string(alpha) + " is not in [0, 1]");
  Image out = Image::blank(base.width, base.height);
  // Both terms are >= 0, so adding one half and truncating rounds half up, as lround would,
  // without a library call per byte.
  const float keep = 1.f - alpha;
  for (size_t i = 0; i < out.rgb.size(); ++i)
    out.rgb[i] = static_cast<uint8_t>(keep * base.rgb[i] + alpha * heat.rgb[i] + 0.5f);
  return out;
}

Image overlay_heatmap(const Image& base, const FloatMap& map01, Colormap c, float alpha) {
  if (base.empty() || map01.width <= 0 || map01.height <= 0)
    throw Error(ErrorKind::invalid_input, "overlay: empty image or heatmap");
  return blend(base, colorize(upsample_bilinear(map01, base.width, base.height), c), alpha);
}

}  // namespace dermal::vision
