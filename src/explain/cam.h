// Class activation maps: how each method turns a layer's activations A (C x H x W) and the
// gradient G of the target class's logit with respect to them into an H x W map. Each function
// follows its paper's definition; tests compare them with independent NumPy implementations.
//
//   std::vector<float> cam = explain::cam_from_gradients(CamMethod::gradcam, A, G);
//   explain::normalize01(cam);
//
// Score-CAM needs forward passes: the classifier gives score_cam a function that runs them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dermal::explain {

enum class CamMethod { gradcam, gradcampp, hirescam, xgradcam, layercam, eigencam, scorecam };

CamMethod parse_cam_method(const std::string& name);  // "gradcam", "gradcam++", ...
std::string cam_method_name(CamMethod m);
std::vector<std::string> cam_method_names();
bool needs_gradient(CamMethod m);  // false for Eigen-CAM and Score-CAM

// A and G: [1, C, H, W] or [C, H, W], float32 plain. Returns H*W values, row-major.
//  gradcam   (Selvaraju et al. 2017): w_k = mean_ij G_kij;            relu(sum_k w_k A_k)
//  gradcam++ (Chattopadhay et al. 2018): a_kij = G^2 / (2 G^2 + sum_ab A_kab G^3),
//            w_k = sum_ij a_kij relu(G_kij);                          relu(sum_k w_k A_k)
//  hirescam  (Draelos & Carin 2020):                                  relu(sum_k G_k * A_k)
//  xgradcam  (Fu et al. 2020): w_k = sum_ij G_kij A_kij / sum_ij A_kij; relu(sum_k w_k A_k)
//  layercam  (Jiang et al. 2021):                                     relu(sum_k relu(G_k) * A_k)
std::vector<float> cam_from_gradients(CamMethod m, const engine::Tensor& A, const engine::Tensor& G);

// Eigen-CAM (Muhammad & Yeasin 2020): A as HW x C, centred per channel, projected on its first
// principal component. The component's sign is arbitrary; we pick the one that correlates
// positively with the channel sum, so the map points where the layer is most active.
std::vector<float> eigen_cam(const engine::Tensor& A);

// relu(sum_k w_k A_k) for given channel weights.
std::vector<float> weighted_cam(const engine::Tensor& A, const std::vector<float>& weights);

// Score-CAM (Wang et al. 2020, as their reference implementation computes it): the weight of
// channel k is the target class's softmax probability for the input x multiplied by the channel's
// activation, upsampled to the input and min-max normalised; relu(sum_k w_k A_k). A constant
// channel masks nothing and gets weight 0, as in the reference. `logits_of` runs the model on a
// batch of `batch` masked inputs (x's layout, NHWC when `nhwc`) and returns [batch, classes]
// (in the last batch, the rows past the channels left are ignored).
std::vector<float> score_cam(const engine::Tensor& x, bool nhwc, const engine::Tensor& A, int class_index, int batch,
                             const std::function<engine::Tensor(const engine::Tensor&)>& logits_of);

// Scales to [0, 1] by (x - min) / (max - min); a constant map becomes all zeros, never NaN.
void normalize01(std::vector<float>& map);

}  // namespace dermal::explain
