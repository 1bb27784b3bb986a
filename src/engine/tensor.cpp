#include "engine/tensor.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "engine/error.h"

namespace dermal::engine {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i64: return 8;
    case DType::bf16: return 2;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i64: return "int64";
    case DType::bf16: return "bfloat16";
  }
  return "?";
}

std::shared_ptr<void> allocate_buffer(size_t bytes) {
  constexpr size_t kHugePage = size_t{2} << 20, kPage = 4096;
  auto out_of_memory = [&] {
    return Error(ErrorKind::invalid_input, "out of memory allocating " + std::to_string(bytes) + " bytes");
  };
  if (bytes < kHugePage) {
    void* p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
    if (!p) throw out_of_memory();
    return std::shared_ptr<void>(p, std::free);
  }
  // Map one huge page more than needed, then unmap the slack before and after the aligned start.
  const size_t length = (bytes + kPage - 1) / kPage * kPage;
  void* mapped = ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw out_of_memory();
  const auto base = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t start = (base + kHugePage - 1) / kHugePage * kHugePage;
  if (start > base) ::munmap(mapped, start - base);
  if (const size_t tail = base + length + kHugePage - (start + length)) ::munmap(reinterpret_cast<void*>(start + length), tail);
  void* p = reinterpret_cast<void*>(start);
  ::madvise(p, length, MADV_HUGEPAGE);  // advice only: without THP the buffer simply has small pages
  return std::shared_ptr<void>(p, [length](void* q) { ::munmap(q, length); });
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

void check_dtype(const Tensor& t, DType expected) {
  if (!t.defined() || t.dtype() != expected)
    throw Error(ErrorKind::internal, std::string("tensor of dtype ") +
                                         (t.defined() ? dtype_name(t.dtype()) : "undefined") +
                                         " accessed as " + dtype_name(expected));
}

Tensor Tensor::uninitialized(DType dtype, Shape shape, Layout layout) {
  for (int64_t d : shape)
    if (d < 0) throw Error(ErrorKind::invalid_input, "negative dimension in shape " + shape_str(shape));
  if (layout != Layout::plain && shape.size() != 4)
    throw Error(ErrorKind::internal, "a channel layout needs a rank-4 shape, got " + shape_str(shape));
  if (layout == Layout::nchw16c && shape[1] % 16)
    throw Error(ErrorKind::internal, "nchw16c needs channels in sixteens, got " + shape_str(shape));
  Tensor t;
  t.defined_ = true;
  t.dtype_ = dtype;
  t.layout_ = layout;
  t.shape_ = std::move(shape);
  // 64-byte alignment suits AVX-512 loads; at least one byte so data() is never null.
  t.owner_ = allocate_buffer(t.bytes());
  t.data_ = t.owner_.get();
  return t;
}

Tensor Tensor::zeros(DType dtype, Shape shape, Layout layout) {
  Tensor t = uninitialized(dtype, std::move(shape), layout);
  std::memset(t.data_, 0, std::max<size_t>(t.bytes(), 1));
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, void* data, Layout layout) {
  Tensor t;
  t.defined_ = true;
  t.dtype_ = dtype;
  t.layout_ = layout;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::adopt(DType dtype, Shape shape, void* data, std::shared_ptr<void> owner) {
  Tensor t = view(dtype, std::move(shape), data);
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::scalar(float v) { return from_floats({}, {v}); }

Tensor Tensor::from_floats(const Shape& shape, const std::vector<float>& values) {
  Tensor t = zeros(DType::f32, shape);
  if (static_cast<int64_t>(values.size()) != t.numel())
    throw Error(ErrorKind::internal, "from_floats: value count does not match shape " + shape_str(shape));
  if (t.bytes()) std::memcpy(t.data_, values.data(), t.bytes());
  return t;
}

Tensor Tensor::from_doubles(const Shape& shape, const std::vector<double>& values) {
  Tensor t = zeros(DType::f64, shape);
  if (static_cast<int64_t>(values.size()) != t.numel())
    throw Error(ErrorKind::internal, "from_doubles: value count does not match shape " + shape_str(shape));
  if (t.bytes()) std::memcpy(t.data_, values.data(), t.bytes());
  return t;
}

Tensor Tensor::from_ints(const Shape& shape, const std::vector<int64_t>& values) {
  Tensor t = zeros(DType::i64, shape);
  if (static_cast<int64_t>(values.size()) != t.numel())
    throw Error(ErrorKind::internal, "from_ints: value count does not match shape " + shape_str(shape));
  if (t.bytes()) std::memcpy(t.data_, values.data(), t.bytes());
  return t;
}

int64_t Tensor::dim(int i) const {
  int r = rank();
  if (i < 0) i += r;
  if (i < 0 || i >= r) throw Error(ErrorKind::internal, "dim index out of range for shape " + shape_str(shape_));
  return shape_[i];
}

std::vector<int64_t> Tensor::strides() const {
  if (layout_ == Layout::nchw16c) throw Error(ErrorKind::internal, "nchw16c has no per-dimension strides");
  std::vector<int64_t> st(shape_.size(), 1);
  if (layout_ == Layout::nhwc) {
    // physical order N,H,W,C
    int64_t C = shape_[1], H = shape_[2], W = shape_[3];
    st[1] = 1;
    st[3] = C;
    st[2] = C * W;
    st[0] = C * W * H;
    return st;
  }
  for (int i = static_cast<int>(shape_.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * shape_[i + 1];
  return st;
}

namespace {

float bf16_to_float(uint16_t v) {
  const uint32_t bits = uint32_t{v} << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, as oneDNN does; a NaN stays a (quiet) NaN.
uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

template <class To, class From>
To convert_element(From v) {
  if constexpr (std::is_same_v<To, From>) return v;
  else if constexpr (std::is_same_v<To, uint16_t>) return float_to_bf16(v);
  else return bf16_to_float(v);
}

// Where element (n, c, h, w) of a rank-4 tensor lies in its buffer.
class Offsets4 {
 public:
  explicit Offsets4(const Tensor& t) : blocked_(t.layout() == Layout::nchw16c), shape_(t.shape()) {
    if (!blocked_) strides_ = t.strides();
  }
  int64_t operator()(int64_t n, int64_t c, int64_t h, int64_t w) const {
    if (blocked_) return (((n * (shape_[1] / 16) + c / 16) * shape_[2] + h) * shape_[3] + w) * 16 + c % 16;
    return n * strides_[0] + c * strides_[1] + h * strides_[2] + w * strides_[3];
  }

 private:
  bool blocked_;
  Shape shape_;
  std::vector<int64_t> strides_;
};

// Copies between layouts of the same logical tensor (plain, nhwc, nchw16c), converting S to D.
template <class D, class S = D>
void copy_strided(const Tensor& src, const Tensor& dst) {
  const S* s = static_cast<const S*>(src.raw());
  D* d = static_cast<D*>(dst.raw());
  if (src.layout() == dst.layout()) {
    if constexpr (std::is_same_v<D, S>) {
      if (src.bytes()) std::memcpy(d, s, src.bytes());
    } else {
      for (int64_t i = 0; i < src.numel(); ++i) d[i] = convert_element<D>(s[i]);
    }
    return;
  }
  const Shape& sh = src.shape();
  const Offsets4 from(src), to(dst);
  for (int64_t n = 0; n < sh[0]; ++n)
    for (int64_t c = 0; c < sh[1]; ++c)
      for (int64_t h = 0; h < sh[2]; ++h)
        for (int64_t w = 0; w < sh[3]; ++w) d[to(n, c, h, w)] = convert_element<D>(s[from(n, c, h, w)]);
}

}  // namespace

void Tensor::copy_from(const Tensor& src) const {
  const bool convert = (src.dtype() == DType::bf16 && dtype_ == DType::f32) || (src.dtype() == DType::f32 && dtype_ == DType::bf16);
  if ((src.dtype() != dtype_ && !convert) || src.shape() != shape_)
    throw Error(ErrorKind::internal, "copy_from: " + std::string(dtype_name(src.dtype())) + shape_str(src.shape()) +
                                         " into " + dtype_name(dtype_) + shape_str(shape_));
  if (convert && dtype_ == DType::f32) copy_strided<float, uint16_t>(src, *this);
  else if (convert) copy_strided<uint16_t, float>(src, *this);
  else if (dtype_ == DType::f32) copy_strided<float>(src, *this);
  else if (dtype_ == DType::bf16) copy_strided<uint16_t>(src, *this);
  else copy_strided<int64_t>(src, *this);  // f64 and i64 are both 8 bytes: a bit copy is exact
}

void Tensor::fill_zero() const {
  if (data_) std::memset(data_, 0, bytes());
}

Tensor Tensor::clone() const {
  Tensor t = zeros(dtype_, shape_, layout_);
  if (bytes()) std::memcpy(t.data_, data_, bytes());
  return t;
}

Tensor Tensor::to_layout(Layout layout) const {
  if (layout == layout_) return *this;
  Tensor t = zeros(dtype_, shape_, layout);
  t.copy_from(*this);
  return t;
}

std::vector<double> Tensor::to_doubles() const {
  Tensor p = to_layout(Layout::plain);
  std::vector<double> out(static_cast<size_t>(numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (dtype_) {
      case DType::f32: out[i] = static_cast<const float*>(p.data_)[i]; break;
      case DType::f64: out[i] = static_cast<const double*>(p.data_)[i]; break;
      case DType::i64: out[i] = static_cast<double>(static_cast<const int64_t*>(p.data_)[i]); break;
      case DType::bf16: out[i] = bf16_to_float(static_cast<const uint16_t*>(p.data_)[i]); break;
    }
  }
  return out;
}

std::vector<int64_t> Tensor::to_ints() const {
  if (dtype_ == DType::i64) {
    Tensor p = to_layout(Layout::plain);
    const int64_t* d = static_cast<const int64_t*>(p.data_);
    return std::vector<int64_t>(d, d + numel());
  }
  std::vector<int64_t> out;
  for (double v : to_doubles()) out.push_back(static_cast<int64_t>(v));
  return out;
}

Tensor Tensor::to_dtype(DType dtype) const {
  Tensor p = to_layout(Layout::plain);
  if (dtype == dtype_) return p.clone();
  Tensor t = zeros(dtype, shape_);
  if ((dtype_ == DType::bf16 && dtype == DType::f32) || (dtype_ == DType::f32 && dtype == DType::bf16)) {
    t.copy_from(p);
    return t;
  }
  if (dtype_ == DType::i64 && dtype != DType::i64) {
    const int64_t* s = static_cast<const int64_t*>(p.data_);
    for (int64_t i = 0; i < numel(); ++i) {
      if (dtype == DType::f32) static_cast<float*>(t.data_)[i] = static_cast<float>(s[i]);
      else static_cast<double*>(t.data_)[i] = static_cast<double>(s[i]);
    }
    return t;
  }
  std::vector<double> v = p.to_doubles();
  for (size_t i = 0; i < v.size(); ++i) {
    switch (dtype) {
      case DType::f32: static_cast<float*>(t.data_)[i] = static_cast<float>(v[i]); break;
      case DType::f64: static_cast<double*>(t.data_)[i] = v[i]; break;
      case DType::i64: static_cast<int64_t*>(t.data_)[i] = static_cast<int64_t>(v[i]); break;
      case DType::bf16: static_cast<uint16_t*>(t.data_)[i] = float_to_bf16(static_cast<float>(v[i])); break;
    }
  }
  return t;
}

}  // namespace dermal::engine
