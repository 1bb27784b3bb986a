// What the Conv op offers to graph passes: folding an inference-mode BatchNormalization into the
// convolution that feeds it.
//
//   auto [w, b] = ops::fold_batchnorm_weights(W, has_bias ? &B : nullptr, scale, bn_bias, mean, var, eps);
//   // conv(x, w, b) == BatchNormalization(conv(x, W, B), scale, bn_bias, mean, var, eps)
#pragma once

#include <utility>

#include "engine/tensor.h"

namespace dermal::engine::ops {

// Returns new (W, B) such that conv(x, W', B') == bn(conv(x, W, B)). W is [OC, IC/group, k...];
// B (optional) and the four BatchNormalization tensors hold OC values. The results have W's dtype.
// Throws Error(invalid_model) naming the shapes when they do not fit together.
std::pair<Tensor, Tensor> fold_batchnorm_weights(const Tensor& W, const Tensor* B, const Tensor& scale,
                                                 const Tensor& bn_bias, const Tensor& mean, const Tensor& var,
                                                 double epsilon);

}  // namespace dermal::engine::ops
