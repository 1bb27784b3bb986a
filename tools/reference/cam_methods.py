"""Class activation maps as their papers define them: the reference Dermal's explain/cam.cpp is
tested against. NumPy, float64; Score-CAM uses torch for the upsampling and the forward passes.

    import cam_methods
    cam = cam_methods.GRADIENT_METHODS["gradcam"](A, G)   # A, G: [C, H, W] -> [H, W]
    cam = cam_methods.eigen_cam(A)
    cam, weights = cam_methods.score_cam(probabilities, x, A, target)

A is a layer's activation for one image, G = d logit[target] / d A (the logit, not the softmax).
Maps are returned raw (not normalised), at the layer's resolution. Written from the papers, not
from any implementation shared with Dermal:

  gradcam   Selvaraju et al., "Grad-CAM", ICCV 2017, eq. 1-2:
            w_k = 1/Z sum_ij G_kij;  map = relu(sum_k w_k A_k)
  gradcam++ Chattopadhay et al., "Grad-CAM++", WACV 2018, eq. 19 with Y = exp(S):
            a_kij = G^2 / (2 G^2 + sum_ab A_kab G^3) (0 where G = 0),
            w_k = sum_ij a_kij relu(G_kij);  map = relu(sum_k w_k A_k)
            (exp(S) multiplies every weight alike, so it is left out.) The G^2 cancels:
            a = 1 / (2 + sum_ab A_kab G_kij), so no epsilon is needed.
  hirescam  Draelos & Carin, "Use HiResCAM instead of Grad-CAM", 2020:
            map = relu(sum_k G_k * A_k)  (relu as for Grad-CAM)
  xgradcam  Fu et al., "Axiom-based Grad-CAM", BMVC 2020, eq. 9:
            w_k = sum_ij (A_kij / sum_ab A_kab) G_kij;  map = relu(sum_k w_k A_k)
            (a channel whose activations sum to 0 gets weight 0)
  layercam  Jiang et al., "LayerCAM", IEEE TIP 2021, eq. 6-7:
            map = relu(sum_k relu(G_k) * A_k)
  eigencam  Muhammad & Yeasin, "Eigen-CAM", IJCNN 2020: A as an HW x C matrix, each channel
            centred, projected on its first right singular vector v (numpy SVD). v's sign is
            arbitrary; the projection of centred data always sums to 0, so its sum cannot fix it.
            We take the sign that makes the map correlate positively with the channel sum
            sum_k A_k, which is the sign of sum(v). No relu.
  scorecam  Wang et al., "Score-CAM", CVPR-W 2020, as their reference code computes it:
            M_k = A_k upsampled to the input (bilinear, align_corners=False), min-max
            normalised; channels with max == min are skipped (weight 0);
            w_k = softmax(f(x * M_k))[target];  map = relu(sum_k w_k A_k) at layer resolution.
"""

import numpy as np


def _check(A, G=None):
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 3:
        raise ValueError("activation must be [C, H, W], got %s" % (A.shape,))
    if G is None:
        return A
    G = np.asarray(G, dtype=np.float64)
    if G.shape != A.shape:
        raise ValueError("gradient %s and activation %s differ" % (G.shape, A.shape))
    return A, G


def weighted_cam(A, weights):
    """relu(sum_k w_k A_k)."""
    A = _check(A)
    w = np.asarray(weights, dtype=np.float64)
    return np.maximum(np.tensordot(w, A, axes=1), 0.0)


def grad_cam(A, G):
    A, G = _check(A, G)
    return weighted_cam(A, G.mean(axis=(1, 2)))


def grad_cam_pp(A, G):
    A, G = _check(A, G)
    sum_a = A.sum(axis=(1, 2), keepdims=True)
    # alpha = G^2 / (2 G^2 + sum_a G^3) = 1 / (2 + sum_a G) where G != 0; the paper sets 0 where
    # G == 0 (those terms are multiplied by relu(G) = 0 anyway). A zero denominator can only
    # happen when sum_a < 0 (activations not after a relu): no finite alpha exists, use 0.
    den = 2.0 + sum_a * G
    safe = (G != 0) & (den != 0)
    alpha = np.where(safe, 1.0 / np.where(safe, den, 1.0), 0.0)
    return weighted_cam(A, (alpha * np.maximum(G, 0.0)).sum(axis=(1, 2)))


def hires_cam(A, G):
    A, G = _check(A, G)
    return np.maximum((G * A).sum(axis=0), 0.0)


def xgrad_cam(A, G):
    A, G = _check(A, G)
    sum_a = A.sum(axis=(1, 2))
    num = (G * A).sum(axis=(1, 2))
    w = np.where(sum_a != 0, num / np.where(sum_a != 0, sum_a, 1.0), 0.0)
    return weighted_cam(A, w)


def layer_cam(A, G):
    A, G = _check(A, G)
    return np.maximum((np.maximum(G, 0.0) * A).sum(axis=0), 0.0)


GRADIENT_METHODS = {
    "gradcam": grad_cam,
    "gradcam++": grad_cam_pp,
    "hirescam": hires_cam,
    "xgradcam": xgrad_cam,
    "layercam": layer_cam,
}


def eigen_cam(A):
    A = _check(A)
    c, h, w = A.shape
    X = A.reshape(c, h * w).T  # HW x C
    X = X - X.mean(axis=0)
    if not np.any(X):
        return np.zeros((h, w))  # constant channels: no direction at all
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    v = vt[0]
    # projection . (X 1) = sigma_1^2 (v . 1): the map correlates with the channel sum iff
    # sum(v) > 0.
    if v.sum() < 0:
        v = -v
    return (X @ v).reshape(h, w)


def upsample_bilinear(A, size):
    """[C, h, w] -> [C, H, W] with torch's bilinear, align_corners=False (no antialiasing)."""
    import torch
    import torch.nn.functional as F
    t = torch.as_tensor(np.asarray(A, dtype=np.float64))[:, None]
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].numpy()


def score_cam(probabilities, x, A, target, batch=64):
    """probabilities: a function [B, 3, H, W] float64 array -> [B, classes] softmax array.
    x: the input [3, H, W]; A: the layer's activation [C, h, w] for x; target: class index.
    Returns (map [h, w], weights [C])."""
    A = _check(A)
    x = np.asarray(x, dtype=np.float64)
    up = upsample_bilinear(A, x.shape[1:])
    lo, hi = up.min(axis=(1, 2)), up.max(axis=(1, 2))
    live = np.flatnonzero(hi > lo)
    weights = np.zeros(A.shape[0])
    for s in range(0, len(live), batch):
        idx = live[s:s + batch]
        masks = (up[idx] - lo[idx, None, None]) / (hi - lo)[idx, None, None]
        p = probabilities(x[None] * masks[:, None])
        weights[idx] = np.asarray(p, dtype=np.float64)[:, target]
    return weighted_cam(A, weights), weights


def normalize01(cam):
    """(x - min) / (max - min); an all-constant map becomes all zero."""
    cam = np.asarray(cam, dtype=np.float64)
    rng = cam.max() - cam.min()
    return (cam - cam.min()) / rng if rng > 0 else np.zeros_like(cam)
