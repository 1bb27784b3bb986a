// Reading the PyTorch reference that tools/reference/make_model_reference.py writes (run by the
// torch_reference CTest fixture): its manifest and its raw little-endian float32 files.
#pragma once

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "engine/tensor.h"

namespace dermal::test::torch_reference {

inline const std::string& dir() {
  static const std::string d = DERMAL_REFERENCE_DIR;
  return d;
}

inline nlohmann::json manifest() {
  std::ifstream f(dir() + "/manifest.json");
  if (!f) throw std::runtime_error("no reference at " + dir() + ": run the torch_reference test first");
  return nlohmann::json::parse(f);
}

// A manifest entry {file, shape} as a float32 tensor.
inline engine::Tensor read_f32(const nlohmann::json& entry) {
  engine::Tensor t = engine::Tensor::zeros(engine::DType::f32, entry["shape"].get<engine::Shape>());
  std::ifstream f(dir() + "/" + entry["file"].get<std::string>(), std::ios::binary);
  f.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.bytes()));
  if (f.gcount() != static_cast<std::streamsize>(t.bytes())) throw std::runtime_error("short reference file");
  return t;
}

// Rows [begin, begin + count) of the leading dimension, as an owning tensor.
inline engine::Tensor rows(const engine::Tensor& t, int64_t begin, int64_t count) {
  engine::Shape s = t.shape();
  const int64_t row = t.numel() / s[0];
  s[0] = count;
  engine::Tensor out = engine::Tensor::zeros(engine::DType::f32, s);
  std::copy(t.data<float>() + begin * row, t.data<float>() + (begin + count) * row, out.data<float>());
  return out;
}

}  // namespace dermal::test::torch_reference
