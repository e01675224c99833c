"""Loss terms shared by the methods: one jit-able function per term, its formula in the docstring.

Owns: SSIM (`ssim_map`, Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, C1 = (0.01 L)^2,
C2 = (0.03 L)^2), the D-PoSE terms (`relative_depth_target`, `depth_l1_loss`, `depth_ssim_loss`,
`part_seg_cross_entropy`, `rotation_matrix_mse`, `betas_mse`, `joints3d_mse`, `vertices_l1`,
`keypoints2d_full_frame_mse`) and the masked mean they share (`masked_mean`).

Conventions: every term takes an optional per-sample weight `weight [B]` (e.g. a `has_*` flag times
`valid`); a term is the weighted mean over the samples that count and over the remaining axes, and is 0
(with zero gradient) when no sample counts. Results are float32 scalars.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["masked_mean", "gaussian_window", "ssim_map", "relative_depth_target", "depth_l1_loss",
           "depth_ssim_loss", "part_seg_cross_entropy", "rotation_matrix_mse", "betas_mse", "joints3d_mse",
           "vertices_l1", "keypoints2d_full_frame_mse"]


def _check(x, name: str, ndim: int | None = None, last: tuple = ()):
    x = jnp.asarray(x)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"hmrjax.losses: `{name}` must have {ndim} dims, got shape {x.shape}")
    if last and tuple(x.shape[-len(last):]) != tuple(last):
        raise ValueError(f"hmrjax.losses: `{name}` must end in {last}, got shape {x.shape}")
    return x


def masked_mean(values, weight=None):
    """sum_b w_b * mean(values_b) / max(sum_b w_b, tiny): values [B, ...], weight [B] (None: all 1)."""
    values = jnp.asarray(values, jnp.float32)
    per_sample = values.reshape(values.shape[0], -1).mean(axis=1)
    if weight is None:
        return per_sample.mean()
    w = jnp.asarray(weight, jnp.float32).reshape(-1)
    if w.shape[0] != values.shape[0]:
        raise ValueError(f"hmrjax.losses: weight has {w.shape[0]} entries for a batch of {values.shape[0]}")
    return jnp.sum(w * per_sample) / jnp.maximum(jnp.sum(w), 1e-8)


# ------------------------------------------------------------------------------------------------ SSIM
def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """1-D normalised Gaussian g_i = exp(-(i - (size-1)/2)^2 / (2 sigma^2)) / sum, [size] float64."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-x * x / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x, g):
    """Separable 'valid' correlation of [B, H, W] with the 2-D window g g^T -> [B, H-k+1, W-k+1]."""
    k = g.shape[0]
    g = jnp.asarray(g, x.dtype)
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    rows = sum(g[i] * x[:, i:i + h, :] for i in range(k))
    return sum(g[j] * rows[:, :, j:j + w] for j in range(k))


def ssim_map(x, y, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5):
    """Structural similarity map (Wang, Bovik, Sheikh, Simoncelli 2004), 'valid' windows (no padding).

    With Gaussian-weighted local statistics mu_x = G * x, sigma_x^2 = G * x^2 - mu_x^2,
    sigma_xy = G * (x y) - mu_x mu_y (G: `window_size` x `window_size` Gaussian, std `sigma`):
      SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
      C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = data_range.

    Args:
      x, y: [B, H, W] images (H, W >= window_size).
    Returns:
      [B, H - window_size + 1, W - window_size + 1]; window (i, j) is centred on pixel
      (i + window_size // 2, j + window_size // 2).
    """
    x = _check(x, "x", 3).astype(jnp.float32)
    y = _check(y, "y", 3).astype(jnp.float32)
    if x.shape != y.shape:
        raise ValueError(f"hmrjax.losses.ssim_map: x {x.shape} and y {y.shape} differ")
    if min(x.shape[1:]) < window_size:
        raise ValueError(f"hmrjax.losses.ssim_map: images {x.shape[1:]} smaller than the window {window_size}")
    g = gaussian_window(window_size, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mx * mx
    syy = _filter_valid(y * y, g) - my * my
    sxy = _filter_valid(x * y, g) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


# ------------------------------------------------------------------------------------------ D-PoSE terms
def relative_depth_target(depth, mask=None, near: float = 0.1, far: float = 1.0):
    """D-PoSE's person-only relative depth: background 0, foreground min-max normalised to [near, far].

    For each image with foreground F (mask > 0.5 and depth > 0; `mask=None`: depth > 0):
      t = near + (far - near) (d - min_F d) / max(max_F d - min_F d, 1e-6) on F, t = 0 elsewhere,
    so the nearest visible person point gets `near` (0.1) and the farthest `far` (1.0).

    Args:
      depth: [B, H, W] metric depth (m), 0 = background.  mask: optional [B, H, W] person mask.
    Returns:
      (target [B, H, W] float32, foreground [B, H, W] float32 in {0, 1}).
    """
    d = _check(depth, "depth", 3).astype(jnp.float32)
    fg = d > 0
    if mask is not None:
        fg = fg & (_check(mask, "mask", 3) > 0.5)
    has = jnp.any(fg, axis=(1, 2), keepdims=True)
    dmin = jnp.where(has, jnp.min(jnp.where(fg, d, jnp.inf), axis=(1, 2), keepdims=True), 0.0)
    dmax = jnp.where(has, jnp.max(jnp.where(fg, d, -jnp.inf), axis=(1, 2), keepdims=True), 1.0)
    t = near + (far - near) * (d - dmin) / jnp.maximum(dmax - dmin, 1e-6)
    return jnp.where(fg, t, 0.0), fg.astype(jnp.float32)


def depth_l1_loss(pred, target, pixel_weight=None, weight=None):
    """Depth L1: per image sum_p m_p |pred_p - target_p| / max(sum_p m_p, 1), then `masked_mean` over images.

    Args:
      pred, target: [B, H, W].  pixel_weight: [B, H, W] region m (D-PoSE: the person foreground; None: all 1).
      weight: [B] per-image weight (has_depth).
    """
    pred = _check(pred, "pred", 3).astype(jnp.float32)
    target = _check(target, "target", 3).astype(jnp.float32)
    m = jnp.ones_like(pred) if pixel_weight is None else _check(pixel_weight, "pixel_weight", 3).astype(jnp.float32)
    per_image = jnp.sum(m * jnp.abs(pred - target), axis=(1, 2)) / jnp.maximum(jnp.sum(m, axis=(1, 2)), 1.0)
    return masked_mean(per_image, weight)


def depth_ssim_loss(pred, target, pixel_weight=None, weight=None, data_range: float = 1.0,
                    window_size: int = 11, sigma: float = 1.5):
    """Depth structural term 1 - SSIM, averaged over the windows whose centre pixel is in the region m.

    Per image: sum_w m_c(w) (1 - SSIM_w) / max(sum_w m_c(w), 1) with `ssim_map` ('valid' windows,
    L = data_range = 1 for the [0, 1] relative depth); `masked_mean` over images with `weight [B]`.
    """
    s = ssim_map(pred, target, data_range, window_size, sigma)
    if pixel_weight is None:
        m = jnp.ones_like(s)
    else:
        r = window_size // 2
        m = _check(pixel_weight, "pixel_weight", 3).astype(jnp.float32)
        m = m[:, r:r + s.shape[1], r:r + s.shape[2]]
    per_image = jnp.sum(m * (1.0 - s), axis=(1, 2)) / jnp.maximum(jnp.sum(m, axis=(1, 2)), 1.0)
    return masked_mean(per_image, weight)


def part_seg_cross_entropy(logits, labels, weight=None):
    """Pixel-wise cross-entropy -log softmax(logits)[label], mean over pixels, then over images (`weight`).

    Args:
      logits: [B, H, W, C] (class 0 = background).  labels: [B, H, W] ints in [0, C).
    """
    logits = _check(logits, "logits", 4).astype(jnp.float32)
    labels = _check(labels, "labels", 3)
    if labels.shape != logits.shape[:3]:
        raise ValueError(f"hmrjax.losses: labels {labels.shape} do not match logits {logits.shape[:3]}")
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, labels.astype(jnp.int32)[..., None], axis=-1)[..., 0]
    return masked_mean(nll, weight)


def rotation_matrix_mse(pred_rotmat, target_rotmat, weight=None):
    """Pose MSE on rotation matrices: mean over joints and the 9 entries of (R_pred - R_gt)^2.

    Args: pred_rotmat, target_rotmat [B, J, 3, 3]; weight [B] (has_pose).
    """
    p = _check(pred_rotmat, "pred_rotmat", 4, (3, 3))
    t = _check(target_rotmat, "target_rotmat", 4, (3, 3))
    return masked_mean(jnp.square(p - t), weight)


def betas_mse(pred_betas, target_betas, weight=None):
    """Shape MSE: mean_k (beta_pred,k - beta_gt,k)^2. Args: [B, K]; weight [B] (has_betas)."""
    p = _check(pred_betas, "pred_betas", 2)
    t = _check(target_betas, "target_betas", 2)
    return masked_mean(jnp.square(p - t), weight)


def joints3d_mse(pred_joints, target_joints, weight=None):
    """3D joints MSE: mean over joints and xyz of (X_pred - X_gt)^2 (m^2). Args: [B, J, 3]; weight [B]."""
    p = _check(pred_joints, "pred_joints", 3, (3,))
    t = _check(target_joints, "target_joints", 3, (3,))
    return masked_mean(jnp.square(p - t), weight)


def vertices_l1(pred_vertices, target_vertices, weight=None):
    """Vertex L1: mean over vertices and xyz of |V_pred - V_gt| (m). Args: [B, V, 3]; weight [B]."""
    p = _check(pred_vertices, "pred_vertices", 3, (3,))
    t = _check(target_vertices, "target_vertices", 3, (3,))
    return masked_mean(jnp.abs(p - t), weight)


def keypoints2d_full_frame_mse(pred_px, target_px, visibility, image_size, bbox_scale, weight=None):
    """CLIFF-style 2D keypoint MSE in the full frame, normalised as D-PoSE's released code does.

    Both pixel positions are mapped to [-1, 1] by the image size, n(u) = 2 u / (W, H) - 1; the squared
    error per axis is rescaled by (W, H) / b (b = bbox side, px) so that a person's error does not shrink
    with its size in the frame; i.e. per keypoint k and axis a:
      e_ka = v_k (n(u_pred) - n(u_gt))_a^2 * size_a / b = v_k 4 (u_pred - u_gt)_a^2 / (size_a b),
    averaged over keypoints and both axes (visibility-weighted sum / (K * 2), as torch's MSE mean).

    Args:
      pred_px, target_px: [B, K, 2] full-frame pixels.  visibility: [B, K] in [0, 1].
      image_size: [B, 2] (W, H).  bbox_scale: [B] crop side b, pixels.  weight: [B].
    """
    p = _check(pred_px, "pred_px", 3, (2,)).astype(jnp.float32)
    t = _check(target_px, "target_px", 3, (2,)).astype(jnp.float32)
    v = _check(visibility, "visibility", 2).astype(jnp.float32)
    size = _check(image_size, "image_size", 2, (2,)).astype(jnp.float32)[:, None, :]
    b = jnp.asarray(bbox_scale, jnp.float32).reshape(-1)[:, None, None]
    err = jnp.square(2.0 * p / size - 2.0 * t / size) * (size / b)
    return masked_mean(v[..., None] * err, weight)
