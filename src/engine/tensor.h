// Tensors: a dtype, a logical shape (ONNX order, e.g. N,C,H,W), a physical layout and the data.
//
//   Tensor x = Tensor::zeros(DType::f32, {1, 3, 192, 192});
//   float* p = x.data<float>();
//   Tensor y = x.to_layout(Layout::nhwc);      // same logical tensor, channels-last in memory
//   auto s = y.strides();                       // element strides in logical dim order
//
// A tensor either owns its buffer (shared, so copies are cheap and alias) or views memory owned
// elsewhere (the executor's activation arena).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dermal::engine {

// bf16: bfloat16 (f32's top 16 bits), only as a stored activation between convolutions in
// bf16 plans (PlanOptions::precision); kernels compute in f32 or f64.
enum class DType : uint8_t { f32, f64, i64, bf16 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);

// An uninitialized buffer of `bytes` (at least one), 64-byte aligned, freed with its last owner.
// From 2 MiB up it is mapped at a 2 MiB boundary and advised for transparent huge pages (Linux's
// THP "madvise" mode, Debian's default; elsewhere the advice is ignored): loading ResNet-18's
// 45 MB of weights then takes 17 huge-page faults (/proc/vmstat thp_fault_alloc) where 4 KB pages
// took about 11,000, most of what a load cost.
std::shared_ptr<void> allocate_buffer(size_t bytes);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

// plain: row-major in logical order. nhwc: a rank-4 tensor whose logical dims are N,C,H,W,
// stored as N,H,W,C (what oneDNN's convolutions run fastest on). nchw16c: oneDNN's blocked
// nChw16c (C a multiple of 16), N, C/16, H, W, then 16 channels: what its Winograd convolutions
// run on, carried between them inside a plan (it has no per-dimension strides).
enum class Layout : uint8_t { plain, nhwc, nchw16c };

class Tensor {
 public:
  Tensor() = default;  // undefined: no dtype, shape or data
  static Tensor zeros(DType dtype, Shape shape, Layout layout = Layout::plain);
  // For a buffer the caller fills at once: skips zeroing (and touching) every page twice.
  static Tensor uninitialized(DType dtype, Shape shape, Layout layout = Layout::plain);
  static Tensor view(DType dtype, Shape shape, void* data, Layout layout = Layout::plain);
  // Takes over a buffer someone else allocated (an importer's bytes): `owner` keeps `data` alive.
  static Tensor adopt(DType dtype, Shape shape, void* data, std::shared_ptr<void> owner);
  static Tensor scalar(float v);
  static Tensor from_floats(const Shape& shape, const std::vector<float>& values);
  static Tensor from_doubles(const Shape& shape, const std::vector<double>& values);
  static Tensor from_ints(const Shape& shape, const std::vector<int64_t>& values);

  bool defined() const { return defined_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  Layout layout() const { return layout_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw() const { return data_; }
  // Owns its buffer and no other tensor shares it: writing the data changes no one else's.
  bool sole_owner() const { return owner_ && owner_.use_count() == 1; }
  template <class T> T* data() const;  // checks that T matches the dtype

  // Element strides of the buffer, indexed by logical dimension (plain and nhwc only).
  std::vector<int64_t> strides() const;

  Tensor clone() const;                   // owning deep copy, same layout
  Tensor to_layout(Layout layout) const;  // owning copy in the given layout (or *this if equal)
  Tensor to_dtype(DType dtype) const;     // owning, plain copy converted to dtype
  std::vector<double> to_doubles() const; // values in logical row-major order
  std::vector<int64_t> to_ints() const;   // values in logical row-major order (integral dtypes
                                          // and floats holding integers)
  // Writes the data (the handle is const): same shape and dtype, or f32 <-> bf16 (rounded to
  // nearest even).
  void copy_from(const Tensor& src) const;
  void fill_zero() const;

 private:
  bool defined_ = false;
  DType dtype_ = DType::f32;
  Layout layout_ = Layout::plain;
  Shape shape_;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
};

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };

void check_dtype(const Tensor& t, DType expected);

template <class T> T* Tensor::data() const {
  check_dtype(*this, dtype_of<T>::value);
  return static_cast<T*>(data_);
}

}  // namespace dermal::engine
