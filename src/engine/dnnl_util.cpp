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

dnnl::memory::desc desc(const Shape& shape, Layout layout) {
  using tag = dnnl::memory::format_tag;
  if (layout == Layout::nhwc) {
    DERMAL_ASSERT(shape.size() == 4);
    return dnnl::memory::desc(dims(shape), dnnl::memory::data_type::f32, tag::nhwc);
  }
  // Row-major strides; a scalar becomes a one-element 1-D tensor.
  Shape s = shape.empty() ? Shape{1} : shape;
  dnnl::memory::dims strides(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * s[i + 1];
  return dnnl::memory::desc(dims(s), dnnl::memory::data_type::f32, strides);
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

void set_threads(int threads) {
  if (threads < 1) throw Error(ErrorKind::invalid_input, "thread count must be at least 1");
  omp_set_num_threads(threads);
}

int threads() { return omp_get_max_threads(); }

}  // namespace dermal::engine::dnnl_util
