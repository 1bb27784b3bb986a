#include "engine/dnnl_util.h"

#include <omp.h>

#include "engine/error.h"

namespace dermal::engine::dnnl_util {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

dnnl::memory::dims dims(const Shape& shape) { return dnnl::memory::dims(shape.begin(), shape.end()); }

dnnl::memory::data_type data_type(DType dtype) {
  DERMAL_ASSERT(dtype == DType::f32 || dtype == DType::bf16);
  return dtype == DType::bf16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

dnnl::memory::desc desc(const Shape& shape, Layout layout, DType dtype) {
  using tag = dnnl::memory::format_tag;
  if (layout != Layout::plain) {
    DERMAL_ASSERT(shape.size() == 4);
    return dnnl::memory::desc(dims(shape), data_type(dtype), layout == Layout::nhwc ? tag::nhwc : tag::nChw16c);
  }
  // Row-major strides; a scalar becomes a one-element 1-D tensor.
  Shape s = shape.empty() ? Shape{1} : shape;
  dnnl::memory::dims strides(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * s[i + 1];
  return dnnl::memory::desc(dims(s), data_type(dtype), strides);
}

dnnl::memory memory(const dnnl::memory::desc& md, void* data) { return dnnl::memory(md, cpu_engine(), data); }

void execute(dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args) {
  p.execute(cpu_stream(), args);
  cpu_stream().wait();
}

dnnl::memory reorder(const dnnl::memory& src, const dnnl::memory::desc& to) {
  dnnl::memory dst(to, cpu_engine());
  reorder_into(src, dst);
  return dst;
}

void reorder_into(const dnnl::memory& src, const dnnl::memory& dst) {
  dnnl::reorder r(src, dst);
  r.execute(cpu_stream(), const_cast<dnnl::memory&>(src), const_cast<dnnl::memory&>(dst));
  cpu_stream().wait();
}

bool cpu_has_bf16() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

std::string cpu_isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    default: return "other";
  }
}

void set_threads(int threads) {
  if (threads < 1) throw Error(ErrorKind::invalid_input, "thread count must be at least 1");
  omp_set_num_threads(threads);
}

int threads() { return omp_get_max_threads(); }

}  // namespace dermal::engine::dnnl_util
