"""Gaussian 2D heatmap targets for keypoints (numpy, per example).

Owns `gaussian_heatmaps`: one unnormalised Gaussian exp(-d^2 / (2 sigma^2)) (peak 1) per keypoint on an
[h, w] grid covering the crop, zero for invisible keypoints. Pixel convention as in `transforms`:
integer heatmap coordinates are pixel centres, and crop-normalised (-1, 1) are the grid's outer edges.
"""
from __future__ import annotations

import numpy as np

__all__ = ["gaussian_heatmaps", "normalized_to_heatmap_px"]


def normalized_to_heatmap_px(xy, size: tuple[int, int]) -> np.ndarray:
    """Crop-normalised [-1, 1] (x, y) [..., 2] -> heatmap pixels for a (h, w) grid."""
    h, w = size
    xy = np.asarray(xy, np.float64)
    return np.stack([(xy[..., 0] + 1.0) * 0.5 * w - 0.5, (xy[..., 1] + 1.0) * 0.5 * h - 0.5], axis=-1)


def gaussian_heatmaps(keypoints, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Heatmaps [K, h, w] float32 from crop-normalised keypoints [K, 3] (x, y in [-1, 1], visibility).

    H_k(y, x) = v_k exp(-((x - x_k)^2 + (y - y_k)^2) / (2 sigma^2)), sigma in heatmap pixels; computed
    separably as an outer product of two 1D Gaussians.
    """
    kp = np.asarray(keypoints, np.float64)
    h, w = size
    px = normalized_to_heatmap_px(kp[:, :2], size)
    gx = np.exp(-((np.arange(w)[None, :] - px[:, 0:1]) ** 2) / (2.0 * sigma ** 2))  # [K, w]
    gy = np.exp(-((np.arange(h)[None, :] - px[:, 1:2]) ** 2) / (2.0 * sigma ** 2))  # [K, h]
    vis = (kp[:, 2] > 0).astype(np.float64)
    return (vis[:, None, None] * gy[:, :, None] * gx[:, None, :]).astype(np.float32)
