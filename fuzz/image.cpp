// Image decoders (vision/decode*.cpp) on untrusted bytes, as an upload reaches them: whole, and
// reduced while decoding as the classifier asks (the path every upload takes). Built once per
// format (FUZZ_FORMAT: jpeg, png, webp, heif); other formats' inputs are left to their targets.
#include <cstdint>

#include "fuzz/fuzz_common.h"
#include "vision/decode.h"

using namespace dermal;

namespace {

void check(const vision::Image& img, const vision::DecodeLimits& limits) {
  if (img.empty() || img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3)
    fuzz::finding("a decoded image with no pixels or the wrong buffer size");
  if (static_cast<int64_t>(img.width) * img.height > limits.max_pixels) fuzz::finding("a decoded image over max_pixels");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (vision::detect_format(data, size) != vision::ImageFormat::FUZZ_FORMAT) return -1;  // not kept in the corpus
  // The service's limits, smaller where a size only costs time: 4 MP decoded instead of 16.
  vision::DecodeLimits limits;
  limits.max_pixels = 4'000'000;
  fuzz::refusals_allowed([&] { check(vision::decode_image(data, size, limits), limits); });
  fuzz::refusals_allowed([&] {
    vision::SourceSize source;
    const vision::DecodeTarget target{48, 48, 64};
    vision::Image img = vision::decode_image(data, size, limits, target, &source);
    check(img, limits);
    if (img.width > source.width || img.height > source.height) fuzz::finding("reduced decoding made the image larger");
  });
  return 0;
}
