// Base64 (RFC 4648, standard alphabet, padded) for PNGs in JSON and BYTES tensors in OIP requests.
//
//   std::string text = base64_encode(png.data(), png.size());
//   std::vector<uint8_t> bytes = base64_decode(text);   // throws invalid_input on bad input
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dermal::serve {

std::string base64_encode(const uint8_t* data, size_t size);
// Accepts padded or unpadded text; whitespace is skipped; anything else outside the alphabet is
// an error.
std::vector<uint8_t> base64_decode(const std::string& text);

}  // namespace dermal::serve
