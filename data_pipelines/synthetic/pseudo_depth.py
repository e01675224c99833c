"""Scene depth behind the person and the monocular-estimator-like `pseudo_depth` of a synthetic example.

Owns `background_geometry` (a ground plane under the person's lowest point and a back wall, as per-pixel
metric depth, analytically ray-cast) and `pseudo_depth` (relative inverse depth of the whole scene: people,
occluders, floor and wall -> normalised, blurred, noisy, affine-ambiguous values in [0, 1]; near = high,
as MiDaS / Depth-Anything style estimators output).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["pixel_rays", "background_geometry", "pseudo_depth"]


def pixel_rays(focal: float, principal, image_size) -> np.ndarray:
    """[H, W, 3] camera-frame rays (x, y, 1) through the pixel centres; image_size is (W, H)."""
    w, h = int(image_size[0]), int(image_size[1])
    cx, cy = principal
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.stack([(u - cx) / focal, (v - cy) / focal, np.ones_like(u)], -1)


def background_geometry(focal: float, principal, image_size, up: np.ndarray, floor_point: np.ndarray,
                        wall_depth: float):
    """Depth of a floor plane and a fronto-parallel back wall, per pixel.

    up: (3,) unit world-up vector in the camera frame; floor_point: (3,) a camera-frame point on the floor
    (the person's lowest point along `up`); wall_depth: z of the wall (m). The floor is used only when the
    camera is at least 0.2 m above it.
    Returns (depth [H, W] float64 metric z, floor_mask [H, W] bool, floor_uv [H, W, 2] metres along two
    orthogonal floor directions (texture coordinates; 0 off the floor)).
    """
    rays = pixel_rays(focal, principal, image_size)
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    c = float(up @ np.asarray(floor_point, np.float64))      # floor: up . X = c (c < 0: floor below the camera)
    depth = np.full(rays.shape[:2], float(wall_depth))
    floor_mask = np.zeros(rays.shape[:2], bool)
    uv = np.zeros(rays.shape[:2] + (2,))
    if c < -0.2:
        denom = rays @ up                                     # ray X = t * ray, z = t
        with np.errstate(divide="ignore", invalid="ignore"):
            t = c / denom
        floor_mask = (denom < 0) & (t > 0) & (t < wall_depth)
        depth = np.where(floor_mask, t, depth)
        pts = rays * np.where(floor_mask, t, 0.0)[..., None]
        e1 = np.cross(up, [0.0, 0.0, 1.0])
        e1 = e1 / max(np.linalg.norm(e1), 1e-9)
        e2 = np.cross(up, e1)
        uv = np.stack([pts @ e1, pts @ e2], -1) * floor_mask[..., None]
    return depth, floor_mask, uv


def pseudo_depth(scene_depth: np.ndarray, rng: np.random.Generator, blur_sigma: tuple = (0.8, 2.5),
                 noise: tuple = (0.01, 0.04), bias: tuple = (0.02, 0.08), levels: int = 1024) -> np.ndarray:
    """Metric depth of every pixel [H, W] (> 0 everywhere) -> relative inverse depth [H, W] float32 in [0, 1].

    Steps: inverse depth 1/z normalised by its min/max; a smooth multiplicative bias field (amplitude
    ~U[bias]); white noise (std ~U[noise]) then a Gaussian blur (sigma ~U[blur_sigma] px at 256 px, scaled
    with the image), so the noise is spatially correlated and edges bleed like an estimator's; renormalised to
    [0, 1]; then a random affine map a x + b (a ~U[0.75, 1], b ~U[0, 1 - a]) so absolute values carry no
    metric meaning; quantised to `levels` steps (a 10-bit estimator output; it also keeps the stored
    float32 maps compressible).
    """
    z = np.asarray(scene_depth, np.float64)
    if z.ndim != 2 or not np.all(np.isfinite(z)) or (z <= 0).any():
        raise ValueError(f"scene_depth must be a finite positive [H, W] map, got shape {z.shape}")
    h, w = z.shape
    inv = 1.0 / z
    x = (inv - inv.min()) / max(inv.max() - inv.min(), 1e-12)
    from data_pipelines.synthetic.scene import upsample
    field = upsample(rng.uniform(-1, 1, (6, 6)), h, w)
    x = x * (1.0 + rng.uniform(*bias) * field)
    x = x + rng.normal(0.0, rng.uniform(*noise), x.shape)   # before the blur: spatially correlated noise
    x = ndimage.gaussian_filter(x, rng.uniform(*blur_sigma) * max(h, w) / 256.0, mode="nearest")
    x = (x - x.min()) / max(x.max() - x.min(), 1e-12)
    a = rng.uniform(0.75, 1.0)
    b = rng.uniform(0.0, 1.0 - a)
    x = np.clip(a * x + b, 0.0, 1.0)
    return (np.round(x * (levels - 1)) / (levels - 1)).astype(np.float32)
