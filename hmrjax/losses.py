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
           "vertices_l1", "keypoints2d_full_frame_mse", "pixel_centre_grid", "part_centroid_targets",
           "part_centroid_mse"]


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


def pixel_centre_grid(h: int, w: int):
    """[h, w, 2] pixel-centre coordinates (x, y) in (-1, 1): x = (2 j + 1) / w - 1, y = (2 i + 1) / h - 1."""
    x = (2.0 * jnp.arange(w) + 1.0) / w - 1.0
    y = (2.0 * jnp.arange(h) + 1.0) / h - 1.0
    return jnp.stack(jnp.meshgrid(x, y, indexing="xy"), -1)


def part_centroid_targets(labels, num_classes: int):
    """Centroids of the labelled parts of a dense label map, in the coordinates of `dpose`'s soft centroids.

    Pixel (i, j) of an H x W map has centre x = (2 j + 1) / W - 1, y = (2 i + 1) / H - 1 (in (-1, 1)); the
    centroid of class c is the mean centre of its pixels, c_p = sum_{l(i,j) = p} (x, y) / n_p.
    Args: labels [B, H, W] ints in [0, num_classes) (0 = background).
    Returns (centroids [B, num_classes - 1, 2] (x, y) for classes 1.., zero where absent; present [B, C - 1]
    float, 1 where the class has a pixel).
    """
    labels = _check(labels, "labels", 3)
    grid = pixel_centre_grid(*labels.shape[1:])                                        # [H, W, 2]
    onehot = (labels[..., None] == jnp.arange(1, num_classes)).astype(jnp.float32)     # [B, H, W, P]
    n = onehot.sum((1, 2))
    cent = jnp.einsum("bhwp,hwc->bpc", onehot, grid) / jnp.maximum(n, 1.0)[..., None]
    return cent, (n > 0).astype(jnp.float32)


def part_centroid_mse(pred, target, present, weight=None):
    """Part-centroid MSE: per image, sum_p m_p ||c_pred,p - c_gt,p||^2 / max(sum_p m_p, 1), then the
    `weight`ed mean over images. Args: pred, target [B, P, 2]; present m [B, P]; weight [B]."""
    p = _check(pred, "pred", 3, (2,)).astype(jnp.float32)
    t = _check(target, "target", 3, (2,)).astype(jnp.float32)
    m = _check(present, "present", 2).astype(jnp.float32)
    per_image = jnp.sum(m * jnp.sum(jnp.square(p - t), -1), -1) / jnp.maximum(jnp.sum(m, -1), 1.0)
    return masked_mean(per_image, weight)


# --- Probabilistic HMR (Wehrbein et al.) ---
# Terms of "Utilizing Uncertainty in 2D Pose Detectors for Probabilistic 3D Human Mesh Recovery"
# (Wehrbein, Rudolph, Rosenhahn, Wandt; arXiv 2411.16289), checked against the authors' code
# github.com/twehrbein/humr (train/losses/losses.py, train/models/humr_model.py, configs/default_config.yaml).
# Owned by the prob_hmr area; the D-PoSE terms above are not touched. 2D coordinates are the crop-normalised
# ones the paper uses, u_n = 2 (u - bbox_center) / bbox_side in [-1, 1], unless a docstring says pixels.
__all__ += ["imq_kernel", "mmd_per_joint", "mmd_loss", "mmd_target_masks", "mmd_targets", "points_inside_mask",
            "points_inside_crop", "mask_loss", "orthonormality_loss", "flow_nll", "keypoints2d_l1",
            "camera_scale_penalty"]

MMD_BANDWIDTHS = (0.05, 0.2, 0.9)  # paper and code (`batch_mmd`)


def imq_kernel(x, y, bandwidths=MMD_BANDWIDTHS):
    """Inverse multiquadric kernel mixture k(x, y) = sum_h h^2 / (h^2 + ||x - y||^2).

    The form of the authors' `batch_mmd` (squared Euclidean distance, power -1, summed over bandwidths
    h in {0.05, 0.2, 0.9}); k(x, x) = number of bandwidths. Smooth at x = y (no square root).
    Args: x [..., n, D], y [..., m, D] (same leading dims). Returns [..., n, m].
    """
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    d2 = jnp.sum(jnp.square(x[..., :, None, :] - y[..., None, :, :]), axis=-1)
    return sum(h * h / (h * h + d2) for h in bandwidths)


def mmd_per_joint(hyp, target, bandwidths=MMD_BANDWIDTHS, include_diagonal: bool = False):
    """Squared maximum mean discrepancy per (sample, joint) between hypotheses and target points.

    With X = {x_i} (n projected hypotheses), Y = {y_j} (m targets) and k = `imq_kernel`:
      include_diagonal=False (paper; unbiased U-statistic, Gretton et al. 2012, eq. 3):
        MMD^2 = 1/(n(n-1)) sum_{i != i'} k(x_i, x_i') + 1/(m(m-1)) sum_{j != j'} k(y_j, y_j')
                - 2/(n m) sum_{i, j} k(x_i, y_j)
      include_diagonal=True (the authors' code `batch_mmd`; biased V-statistic):
        MMD^2 = mean_{i,i'} k(x_i, x_i') + mean_{j,j'} k(y_j, y_j') - 2 mean_{i,j} k(x_i, y_j)  (>= 0)
    The unbiased form is ~0 in expectation for two independent sets from one distribution and can be
    negative; the biased form is exactly 0 for identical sets.
    Args: hyp [B, J, n, 2]; target [B, J, m, 2] (n, m >= 2 for the unbiased form). Returns [B, J].
    """
    x = _check(hyp, "hyp", 4)
    y = _check(target, "target", 4)
    if x.shape[:2] != y.shape[:2] or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"hmrjax.losses.mmd_per_joint: `hyp` {x.shape} and `target` {y.shape} must share "
                         f"[B, J] and the point size")
    n, m = x.shape[2], y.shape[2]
    kxx, kyy, kxy = (imq_kernel(a, b, bandwidths) for a, b in ((x, x), (y, y), (x, y)))
    if include_diagonal:
        return kxx.mean((-2, -1)) + kyy.mean((-2, -1)) - 2.0 * kxy.mean((-2, -1))
    if n < 2 or m < 2:
        raise ValueError(f"hmrjax.losses.mmd_per_joint: the unbiased estimator needs >= 2 points per set, "
                         f"got n={n}, m={m}")
    k0 = float(len(tuple(bandwidths)))  # k(x, x): every bandwidth term is h^2 / h^2 = 1
    sxx = (kxx.sum((-2, -1)) - n * k0) / (n * (n - 1))
    syy = (kyy.sum((-2, -1)) - m * k0) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.mean((-2, -1))


def mmd_loss(hyp, target, weights=None, bandwidths=MMD_BANDWIDTHS, include_diagonal: bool = False):
    """L_MMD = 1/(B J) sum_{b, j} w_bj MMD^2_bj (see `mmd_per_joint`).

    The normalisation by all B J entries (not by sum w) is the authors' `(mmd * valid_target).mean()`, which
    the paper's weight (5e-2) was tuned with. As in their code, `hyp` holds the random hypotheses only
    (n = 25; the mode, z = 0, is left out) and `target` the `mmd_targets` (m = 25).
    Args: hyp [B, J, n, 2], target [B, J, m, 2] (normalised coordinates), weights [B, J] (valid_target;
    None: all 1). Returns a scalar.
    """
    mmd = mmd_per_joint(hyp, target, bandwidths, include_diagonal)
    if weights is None:
        return mmd.mean()
    w = jnp.asarray(weights, jnp.float32)
    if w.shape != mmd.shape:
        raise ValueError(f"hmrjax.losses.mmd_loss: `weights` must have shape {mmd.shape}, got {w.shape}")
    return jnp.mean(w * mmd)


def mmd_target_masks(max_conf, articulated, gt_inside_crop, min_conf: float = 0.15, max_conf_th: float = 0.7,
                     visible_conf: float = 0.5):
    """Which joints take detector heatmap samples as MMD targets, and which joints count at all.

    Authors' rule (losses.py; thresholds `HM_SAMPLE_MIN_TH` 0.15, `HM_SAMPLE_MAX_TH` 0.70):
      use_samples = min_conf < c < max_conf_th  and  articulated  and  gt inside the crop
      valid       = gt inside the crop  and  not (not articulated and c < visible_conf)
    (their extra `coco_gt_bbox_inside` flag is folded into `gt_inside_crop` by the caller).
    Args: max_conf [B, J] heatmap max confidence; articulated [J] or [B, J] bool (elbows, wrists, knees,
    ankles); gt_inside_crop [B, J] bool. Returns (use_samples [B, J] bool, valid [B, J] bool).
    """
    c = _check(max_conf, "max_conf", 2)
    art = jnp.broadcast_to(jnp.asarray(articulated, bool), c.shape)
    inside = jnp.asarray(gt_inside_crop, bool)
    use = (c > min_conf) & (c < max_conf_th) & art & inside
    valid = inside & ~(~art & (c < visible_conf))
    return use, valid


def mmd_targets(heatmap_samples, gt_points, use_samples, gt_first: bool = True):
    """MMD target sets: heatmap samples where `use_samples`, else the ground truth repeated n times.

    As in the authors' code the ground truth always replaces target 0 (`gt_first`), so every set contains
    the annotated position. Args: heatmap_samples [B, J, n, 2]; gt_points [B, J, 2]; use_samples [B, J]
    bool. Returns [B, J, n, 2].
    """
    hm = _check(heatmap_samples, "heatmap_samples", 4, (2,)).astype(jnp.float32)
    gt = _check(gt_points, "gt_points", 3, (2,)).astype(jnp.float32)
    use = jnp.asarray(use_samples, bool)
    if gt.shape[:2] != hm.shape[:2] or use.shape != hm.shape[:2]:
        raise ValueError(f"hmrjax.losses.mmd_targets: shapes disagree: heatmap_samples {hm.shape}, "
                         f"gt_points {gt.shape}, use_samples {use.shape}")
    out = jnp.where(use[..., None, None], hm, gt[:, :, None, :])
    if gt_first:
        out = out.at[:, :, 0].set(gt)
    return out


def points_inside_mask(mask, points_px):
    """Whether 2D points fall on person pixels: mask[round(v), round(u)] (False outside the image).

    Pixel (r, c) is the unit square centred on (u, v) = (c, r). The authors' test (distance to the nearest
    mask-pixel centre < 0.71 px) agrees except within ~0.01 px of pixel corners.
    Args: mask [B, H, W] (bool or 0/1); points_px [B, ..., 2] (u, v) pixels of that mask.
    Returns [B, ...] bool.
    """
    mk = _check(mask, "mask", 3).astype(bool)
    p = _check(points_px, "points_px", None, (2,))
    if p.ndim < 2 or p.shape[0] != mk.shape[0]:
        raise ValueError(f"hmrjax.losses.points_inside_mask: `points_px` must be [B, ..., 2] with B = "
                         f"{mk.shape[0]}, got {p.shape}")
    h, w = mk.shape[1:]
    flat = p.reshape(p.shape[0], -1, 2)
    c = jnp.round(flat[..., 0]).astype(jnp.int32)
    r = jnp.round(flat[..., 1]).astype(jnp.int32)
    in_img = (c >= 0) & (c < w) & (r >= 0) & (r < h)
    hit = jnp.take_along_axis(mk.reshape(mk.shape[0], -1), jnp.clip(r, 0, h - 1) * w + jnp.clip(c, 0, w - 1),
                              axis=1)
    return (hit & in_img).reshape(p.shape[:-1])


def points_inside_crop(points_px, size):
    """0 <= u <= size - 1 and 0 <= v <= size - 1 (authors' `inside_img`). points_px [..., 2] -> [...] bool."""
    p = _check(points_px, "points_px", None, (2,))
    return jnp.all((p >= 0) & (p <= size - 1), axis=-1)


def mask_loss(hyp, outside_mask, invisible, targets, target_valid, inside_crop=None, weight=None):
    """Person-mask loss: pulls hypotheses of invisible joints that land off the person back onto it.

    For every hypothesis x_bjs of joint j: active = invisible_bj and outside_mask_bjs and inside_crop_bjs;
      d_bjs = min_{t : target_valid_bt} ||x_bjs - t_bt||_1      (L1, as the authors' `torch.cdist(p=1)`)
      L_mask = 1/(B n) sum_{b, j, s} w_b active_bjs d_bjs        (sum over joints, mean over batch and
                                                                 hypotheses: the authors' normalisation)
    Targets are points known to lie on the person: the detector's heatmap samples that fall inside the
    mask, of every joint, plus the ground-truth 2D joints (the code's proxy for "nearest mask pixel").
    Zero for hypotheses inside the mask, for visible joints and outside the crop. The caller drops the
    mode hypothesis (the code penalises only the random samples).
    Args: hyp [B, J, n, 2] normalised coordinates; outside_mask [B, J, n] bool; invisible [B, J] bool
    (max conf < 0.5 or gt outside the crop); targets [B, T, 2] (same coordinates); target_valid [B, T] bool;
    inside_crop [B, J, n] bool (None: all); weight [B] (has_mask; None: all 1). Returns a scalar.
    """
    x = _check(hyp, "hyp", 4, (2,)).astype(jnp.float32)
    t = _check(targets, "targets", 3, (2,)).astype(jnp.float32)
    b, j, n, _ = x.shape
    out = jnp.asarray(outside_mask, bool)
    inv = jnp.asarray(invisible, bool)
    tv = jnp.asarray(target_valid, bool)
    if out.shape != (b, j, n) or inv.shape != (b, j) or t.shape[0] != b or tv.shape != t.shape[:2]:
        raise ValueError(f"hmrjax.losses.mask_loss: expected outside_mask [B, J, n] = {(b, j, n)}, invisible "
                         f"[B, J], targets [B, T, 2], target_valid [B, T]; got {out.shape}, {inv.shape}, "
                         f"{t.shape}, {tv.shape}")
    active = out & inv[..., None]
    if inside_crop is not None:
        active = active & jnp.asarray(inside_crop, bool)
    l1 = jnp.sum(jnp.abs(x.reshape(b, -1, 1, 2) - t[:, None]), axis=-1)  # [B, J n, T]
    big = jnp.asarray(1e6, jnp.float32)  # invalid targets never win the min (the code's 1e6 trick)
    d = jnp.min(jnp.where(tv[:, None, :], l1, big), axis=-1).reshape(b, j, n)
    d = jnp.where(active & jnp.any(tv, axis=-1)[:, None, None], d, 0.0)
    per_sample = d.sum(axis=(1, 2)) / n
    if weight is not None:
        w = jnp.asarray(weight, jnp.float32).reshape(-1)
        if w.shape[0] != b:
            raise ValueError(f"hmrjax.losses.mask_loss: weight has {w.shape[0]} entries for a batch of {b}")
        per_sample = w * per_sample
    return per_sample.mean()


def orthonormality_loss(rot6d, weight=None, layout: str = "columns"):
    """Orthonormality penalty of raw 6D rotations: mean over rotations of mean_entries (A A^T - I_2)^2.

    A = [a1; a2] holds the two 3-vectors of the 6D representation (layout "columns": x = [a1, a2], the
    hmrjax convention; "interleaved": x = [a1_0, a2_0, a1_1, a2_1, a1_2, a2_2]). Per rotation
      (A A^T - I)^2 averaged over its 4 entries = ((|a1|^2 - 1)^2 + (|a2|^2 - 1)^2 + 2 (a1 . a2)^2) / 4,
    as the authors' code (`loss_pose_6d`, a mean over all entries); zero iff a1, a2 are orthonormal.
    Args: rot6d [B, ..., 6]; weight [B] (None: all 1). Returns a scalar (see `masked_mean`).
    """
    x = _check(rot6d, "rot6d", None, (6,)).astype(jnp.float32)
    if x.ndim < 2:
        raise ValueError(f"hmrjax.losses.orthonormality_loss: `rot6d` must be [B, ..., 6], got {x.shape}")
    if layout == "columns":
        a = x.reshape(x.shape[:-1] + (2, 3))
    elif layout == "interleaved":
        a = jnp.swapaxes(x.reshape(x.shape[:-1] + (3, 2)), -1, -2)
    else:
        raise ValueError(f"hmrjax.losses.orthonormality_loss: layout must be 'columns' or 'interleaved', "
                         f"got {layout!r}")
    gram = jnp.einsum("...ik,...jk->...ij", a, a)
    return masked_mean(jnp.square(gram - jnp.eye(2, dtype=gram.dtype)), weight)


def flow_nll(log_prob, dim: int, weight=None):
    """Negative log-likelihood per dimension of ground-truth poses: mean_b w_b (-log p(x_b | c_b)) / D.

    `log_prob` comes from `hmrjax.nn.flows.ConditionalRealNVP.log_prob` (full standard-normal density).
    The authors divide by D as well but drop the constant 0.5 log(2 pi) ~ 0.919 (torch `gaussian_nll_loss`),
    so their value is ours minus 0.919; gradients are identical.
    Args: log_prob [B] or [B, ...] nats; dim D (e.g. 132); weight [B] (has_pose). Returns a scalar.
    """
    lp = jnp.asarray(log_prob, jnp.float32)
    if lp.ndim < 1:
        raise ValueError(f"hmrjax.losses.flow_nll: `log_prob` must be [B, ...], got {lp.shape}")
    return masked_mean(-lp / dim, weight)


def keypoints2d_l1(pred, target, confidence, weight=None):
    """2D reprojection loss of the mode: 1/B sum_b w_b sum_{k, a} c_bk |u_pred - u_gt|_bka.

    Sum over keypoints and both axes, mean over the batch: the authors' `Keypoint2DLoss(l1)` on the mode
    hypothesis (`loss_keypoints_2d[:, 0].sum() / batch_size`), on crop-normalised coordinates.
    Args: pred, target [B, K, 2]; confidence [B, K] (visibility / confidence); weight [B] (None: all 1).
    Returns a scalar.
    """
    p = _check(pred, "pred", 3, (2,)).astype(jnp.float32)
    t = _check(target, "target", 3, (2,)).astype(jnp.float32)
    c = _check(confidence, "confidence", 2).astype(jnp.float32)
    if t.shape != p.shape or c.shape != p.shape[:2]:
        raise ValueError(f"hmrjax.losses.keypoints2d_l1: pred {p.shape}, target {t.shape} and confidence "
                         f"{c.shape} must be [B, K, 2], [B, K, 2], [B, K]")
    per_sample = jnp.sum(c[..., None] * jnp.abs(p - t), axis=(1, 2))
    if weight is not None:
        per_sample = jnp.asarray(weight, jnp.float32).reshape(-1) * per_sample
    return per_sample.mean()


def camera_scale_penalty(pred_cam, factor: float = 10.0):
    """mean (exp(-factor * s))^2 over the weak-perspective scales s = pred_cam[..., 0].

    In the authors' code (`loss_cam`, unweighted, added to the total) but not in the paper's loss list: it
    keeps the predicted scale positive early in training. Use it only behind an explicit config switch.
    Args: pred_cam [..., 3] (s, tx, ty). Returns a scalar.
    """
    cam = _check(pred_cam, "pred_cam", None, (3,)).astype(jnp.float32)
    return jnp.mean(jnp.square(jnp.exp(-factor * cam[..., 0])))
