// The one oneDNN CPU engine and stream the kernels share, and small helpers to describe our
// tensors to oneDNN.
//
//   auto md = dnnl_util::desc(tensor_info_shape, Layout::nhwc);
//   dnnl::memory m = dnnl_util::memory(md, tensor.raw());
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "engine/tensor.h"

namespace dermal::engine::dnnl_util {

dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();  // one per thread

dnnl::memory::dims dims(const Shape& shape);
// f32 memory descriptor for a logical shape in the given layout (plain = row-major).
dnnl::memory::desc desc(const Shape& shape, Layout layout = Layout::plain);
dnnl::memory memory(const dnnl::memory::desc& md, void* data);
// Runs a primitive on the shared stream and waits.
void execute(dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args);
// Copies src (any format) into a new buffer of format `to`, owned by the returned memory.
dnnl::memory reorder(const dnnl::memory& src, const dnnl::memory::desc& to);
// Copies src (any format) into dst (any format, same logical dims).
void reorder_into(const dnnl::memory& src, const dnnl::memory& dst);

// Number of threads oneDNN (OpenMP) uses.
void set_threads(int threads);
int threads();

}  // namespace dermal::engine::dnnl_util
