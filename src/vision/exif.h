// EXIF orientation: reading tag 0x0112 from a TIFF block (bounds-checked: the block is
// untrusted) and turning the stored pixels into the upright image.
//
//   int o = exif_orientation(tiff, size);      // 1..8, 1 when absent or malformed
//   Image upright = apply_orientation(std::move(img), o);
#pragma once

#include <cstddef>
#include <cstdint>

#include "vision/image.h"

namespace dermal::vision {

// `tiff` starts at the TIFF header ("II*\0" or "MM\0*"); a leading "Exif\0\0" is skipped.
int exif_orientation(const uint8_t* tiff, size_t size);

// Orientation values as EXIF defines them (what PIL's ImageOps.exif_transpose undoes):
// 1 as stored, 2 mirrored left-right, 3 rotated 180, 4 mirrored top-bottom, 5 transposed,
// 6 needs 90 degrees clockwise, 7 transversed, 8 needs 90 degrees counter-clockwise.
// Any other value leaves the image as it is.
Image apply_orientation(Image img, int orientation);

}  // namespace dermal::vision
