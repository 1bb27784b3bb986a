// The EXIF orientation reader (vision/exif.cpp) on an untrusted TIFF block, and the orientation
// it finds applied to a small image (the pixels must all survive, transposed or not).
#include "fuzz/fuzz_common.h"
#include "vision/exif.h"

using namespace dermal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int o = vision::exif_orientation(data, size);
  if (o < 1 || o > 8) fuzz::finding("exif_orientation returned " + std::to_string(o));
  vision::Image img = vision::Image::blank(5, 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>(i);
  vision::Image out = vision::apply_orientation(img, o);
  const bool transposed = o >= 5;
  if (out.width != (transposed ? 3 : 5) || out.height != (transposed ? 5 : 3) || out.rgb.size() != img.rgb.size())
    fuzz::finding("orientation " + std::to_string(o) + " gave a " + std::to_string(out.width) + "x" + std::to_string(out.height) + " image");
  return 0;
}
