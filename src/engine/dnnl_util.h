// The one oneDNN CPU engine and stream the kernels share, and small helpers to describe our
// tensors to oneDNN.
//
//   auto md = dnnl_util::desc(tensor_info_shape, Layout::nhwc);
//   dnnl::memory m = dnnl_util::memory(md, tensor.raw());
#pragma once

#include <string>

#include <oneapi/dnnl/dnnl.hpp>

#include "engine/tensor.h"

namespace dermal::engine::dnnl_util {

dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();  // one per thread

dnnl::memory::dims dims(const Shape& shape);
dnnl::memory::data_type data_type(DType dtype);  // f32 or bf16
// Memory descriptor for a logical shape in the given layout (plain = row-major).
dnnl::memory::desc desc(const Shape& shape, Layout layout = Layout::plain, DType dtype = DType::f32);
dnnl::memory memory(const dnnl::memory::desc& md, void* data);
// Runs a primitive on the shared stream and waits.
void execute(dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args);
// Copies src (any format) into a new buffer of format `to`, owned by the returned memory.
dnnl::memory reorder(const dnnl::memory& src, const dnnl::memory::desc& to);
// Copies src (any format) into dst (any format, same logical dims).
void reorder_into(const dnnl::memory& src, const dnnl::memory& dst);

// Does this CPU compute bf16 natively (AVX-512 BF16 or AMX), as oneDNN sees it? Without it oneDNN
// would emulate bf16, slower than f32. ONEDNN_MAX_CPU_ISA can lower what oneDNN sees.
bool cpu_has_bf16();
// oneDNN's name for the instruction set it uses ("avx512_core_bf16", ...).
std::string cpu_isa_name();

// Number of threads oneDNN (OpenMP) uses.
void set_threads(int threads);
int threads();

}  // namespace dermal::engine::dnnl_util
