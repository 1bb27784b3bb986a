// Conv's kernels, used by the Conv op (conv.cpp) only: the plain-loop f64 reference and the f32
// oneDNN kernel. Both take their weights and bias either as constants known at plan time (read
// once; oneDNN's packed copy is cached per op), as the op's own held W (oneDNN kernel only: the
// reference gets it as a known plain copy), or as the kernel's inputs 1 and 2, read again on
// every forward and backward.
//
//   ConvParams p{.known_w = cfg.known[1], .has_bias = true, .known_b = nullptr};  // B at run time
//   auto k = make_reference_conv_kernel(geometry, p, cfg.post_eltwise);
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "engine/op.h"

namespace dermal::engine::ops::conv_detail {

// One convolution's sizes, 1-D folded into 2-D (H = 1, kernel height 1, no pads on H).
struct Geometry {
  int64_t n = 0, c = 0, h = 0, w = 0;         // input
  int64_t oc = 0, group = 1, kh = 0, kw = 0;  // weights: [oc, c / group, kh, kw]
  int64_t oh = 0, ow = 0;                     // output
  int64_t sh = 1, sw = 1, dh = 1, dw = 1;     // strides, dilations (ONNX: 1 = dense)
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;     // pads: top, left, bottom, right
  int spatial_rank = 2;                       // as in the model
  Shape out_shape() const { return spatial_rank == 1 ? Shape{n, oc, ow} : Shape{n, oc, oh, ow}; }
};

// Where W and B come from. held_w: W is the op's own, in its PackedWeights. Otherwise a null
// known_w (known_b) means W (B) is the kernel's input 1 (2) and may change between calls.
// Kernels keep their own copies or handles of known tensors.
struct ConvParams {
  bool held_w = false;
  const Tensor* known_w = nullptr;
  bool has_bias = false;
  const Tensor* known_b = nullptr;
  bool residual = false;  // input kResidualInput is added before the activation (a fused Add)
  // How X, Y and the residual are stored (oneDNN kernel): f32, or bf16 in bf16 plans. X in bf16
  // makes the convolution bf16 (W packed in bf16, sums in f32); backward stays f32.
  DType x_dtype = DType::f32, y_dtype = DType::f32, residual_dtype = DType::f32;
  size_t winograd_max_weight_bytes = 0;  // KernelConfig's
};

// Known weights reordered into the formats oneDNN asks for, shared by all kernels of one op
// (and so by all plans). It may also hold the op's own W, handed over at load: then the packed
// copies are the only copy once a kernel has asked for one.
class PackedWeights {
 public:
  // Takes W over (f32, plain). When no other tensor shares its buffer, the first format a kernel
  // asks for is packed into that buffer (when the format allows): W is never held twice. A bf16
  // format is packed into a new buffer of half the size, and the f32 one freed.
  void hold(Tensor w);
  bool holds() const;
  // W in format `wanted`: the held W when w is null, else the known tensor *w. plain describes W
  // plain (oihw or goihw).
  dnnl::memory get(const Tensor* w, const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted);
  // The held W as a plain f32 tensor: the handed-over one while no kernel has packed it, else a
  // copy reordered back from a packed format.
  Tensor held_plain() const;

 private:
  struct Entry {
    const void* key;        // the source's data; null for the held W
    Tensor source, data;    // kept alive: the source (its address is the key), the f32 buffer a plain `packed` points into
    dnnl::memory packed;
  };
  mutable std::mutex mutex_;
  Tensor held_;                    // the held W while nothing is packed
  Shape held_shape_;               // empty when nothing is held
  dnnl::memory::desc held_md_;  // how a kernel described the held W plain
  std::vector<Entry> entries_;
};

std::unique_ptr<Kernel> make_reference_conv_kernel(const Geometry& g, const ConvParams& p,
                                                   std::optional<EltwiseSpec> act);
// src and dst keep `layout` (the layout X arrives in); runtime W arrives plain.
std::unique_ptr<Kernel> make_dnnl_conv_kernel(const Geometry& g, Layout layout, const ConvParams& p,
                                              std::optional<EltwiseSpec> act, std::shared_ptr<PackedWeights> packed);

}  // namespace dermal::engine::ops::conv_detail
