"""Crop geometry and label transforms: one affine for the image, keypoints and dense maps; 3D labels.

Owns the geometric half of augmentation (numpy, per example, no JAX): sampling the jitter
(`sample_geometry`), the affine matrices (`frame_transform`, `crop_transform`, `compose`), warping
images and dense maps (`warp_image`, `warp_dense`, `warp_depth`), transforming points
(`apply_affine`; engines PIL or, when installed, OpenCV: `resolve_engine`), and making 3D labels
consistent (`flip_pose`, `rotate_pose`, `transform_3d`,
`flip_part_labels`).

Geometry (pixel convention of `hmrjax.render`: integer coordinates are pixel centres)
- The augmentation is a *virtual camera* change of the full frame, `frame_transform`: a horizontal
  mirror x -> 2 cx - x about the principal point (cx, cy) (= the vertical centre line W/2 by default),
  then an in-plane roll by `rot_deg` about the principal point. Both are exact for the pinhole model:
  the mirror is the camera-frame reflection X -> -X and the roll is the camera rotation Rz(theta)
  (2D: K Rz K^-1, exact also for fx != fy). 3D labels follow with the same reflection/rotation, so
  projecting the augmented `joints3d` with the unchanged intrinsics gives the augmented 2D keypoints.
- Then the crop, `crop_transform`: the square of side `bbox_scale * scale` centred on the (augmented)
  bbox centre + shift, resampled to `out_size` px: u = (p - c) S / side + (S - 1) / 2. Crop-normalised
  coordinates ([-1, 1] across the crop, `hmrjax.geometry.camera`) are (u + 0.5) 2 / S - 1.
- Positive `rot_deg` rotates the picture clockwise on screen (x right, y down), i.e. the camera-frame
  rotation Rz(+theta) of the OpenCV frame applied to the scene.

Horizontal flip of labels: joints/keypoints swap left/right via `hmrjax.body.layouts.flip_permutation`;
an axis-angle rotation r mirrored by M = diag(-1, 1, 1) is M R(r) M = R(-M r) = R((r_x, -r_y, -r_z)),
in the body-model frame and the camera frame alike (M commutes with the body->camera flip diag(1,-1,-1)).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

__all__ = ["Geometry", "sample_geometry", "frame_transform", "crop_transform", "dense_transform", "compose",
           "invert", "apply_affine", "resolve_engine", "warp_image", "warp_dense", "warp_depth", "flip_pose",
           "rotate_pose",
           "transform_3d", "flip_part_labels", "part_flip_table"]


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Sampled geometric augmentation of one example.

    scale: crop side multiplier. rot_deg: in-plane camera roll (degrees). shift: bbox-centre shift in
    units of the (scaled) crop side, (dx, dy). flip: horizontal mirror.
    """

    scale: float = 1.0
    rot_deg: float = 0.0
    shift: tuple = (0.0, 0.0)
    flip: bool = False


def sample_geometry(rng: np.random.Generator, cfg) -> Geometry:
    """Draws a `Geometry` from the config (SPIN-style ranges).

    Config keys: scale_jitter (s: scale ~ clip(1 + s N(0,1), 1 - s, 1 + s)), rot_jitter (degrees r:
    angle ~ clip(r N(0,1), -2r, 2r)), rot_prob (probability of a non-zero angle), shift_jitter (t: each
    of dx, dy ~ U(-t, t) in crop sides), flip_prob.
    """
    s, r, t = float(cfg.scale_jitter), float(cfg.rot_jitter), float(cfg.shift_jitter)
    scale = float(np.clip(1.0 + s * rng.standard_normal(), 1.0 - s, 1.0 + s)) if s > 0 else 1.0
    rot = float(np.clip(r * rng.standard_normal(), -2 * r, 2 * r)) if r > 0 and rng.random() < cfg.rot_prob else 0.0
    shift = (float(rng.uniform(-t, t)), float(rng.uniform(-t, t))) if t > 0 else (0.0, 0.0)
    flip = bool(rng.random() < cfg.flip_prob)
    return Geometry(scale=scale, rot_deg=rot, shift=shift, flip=flip)


def compose(a, b) -> np.ndarray:
    """2x3 affines: `compose(a, b)` applies b then a."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.concatenate([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2] + a[:, 2])[:, None]], axis=1)


def invert(m) -> np.ndarray:
    """Inverse of a 2x3 affine."""
    m = np.asarray(m, np.float64)
    lin = np.linalg.inv(m[:, :2])
    return np.concatenate([lin, (-lin @ m[:, 2])[:, None]], axis=1)


def apply_affine(m, points) -> np.ndarray:
    """points [..., 2] (x, y) -> m @ (x, y, 1), float64."""
    m = np.asarray(m, np.float64)
    p = np.asarray(points, np.float64)
    return p @ m[:, :2].T + m[:, 2]


def frame_transform(rot_deg: float, flip: bool, princpt, focal_length) -> np.ndarray:
    """Original full-frame px -> augmented (virtual camera) full-frame px, [2, 3] float64.

    Mirror about the principal point (if `flip`), then K Rz(theta) K^-1 about it.
    """
    cx, cy = (float(v) for v in np.asarray(princpt).reshape(2))
    fx, fy = (float(v) for v in np.asarray(focal_length).reshape(2))
    mirror = np.array([[-1.0, 0.0, 2 * cx], [0.0, 1.0, 0.0]]) if flip else np.array([[1.0, 0, 0], [0, 1.0, 0]])
    th = np.deg2rad(rot_deg)
    c, s = np.cos(th), np.sin(th)
    lin = np.array([[c, -s * fx / fy], [s * fy / fx, c]])
    pp = np.array([cx, cy])
    roll = np.concatenate([lin, (pp - lin @ pp)[:, None]], axis=1)
    return compose(roll, mirror)


def crop_transform(center, side: float, out_size: int) -> np.ndarray:
    """Full-frame px -> crop px for the square of `side` px centred on `center`, resampled to out_size."""
    k = out_size / float(side)
    c = np.asarray(center, np.float64).reshape(2)
    off = (out_size - 1) / 2.0
    return np.array([[k, 0.0, off - k * c[0]], [0.0, k, off - k * c[1]]])


def dense_transform(crop_size: int, dense_size: int) -> np.ndarray:
    """Crop px (crop_size) -> dense-map px (dense_size) covering the same square."""
    k = dense_size / float(crop_size)
    return np.array([[k, 0.0, 0.5 * k - 0.5], [0.0, k, 0.5 * k - 0.5]])


def _pil_coeffs(m) -> tuple:
    """PIL's AFFINE data for `m` (input px -> output px, centre convention): PIL maps output to input in
    the pixel-edge convention (centres at i + 0.5)."""
    inv = invert(m)
    lin, t = inv[:, :2], inv[:, 2]
    t = t + 0.5 - lin @ np.array([0.5, 0.5])
    return (lin[0, 0], lin[0, 1], t[0], lin[1, 0], lin[1, 1], t[1])


def _resample_factor(m) -> float:
    """Source pixels per output pixel (the larger singular value of the inverse)."""
    return float(np.linalg.svd(invert(m)[:, :2], compute_uv=False).max())


def _source_window(shape, m, out_size: int, margin: int):
    """The part of a [H, W, ...] source that an out_size x out_size warp by `m` reads: (x0, y0, x1, y1) and the
    affine from that window's pixels to the output; None when the output lies entirely outside the source."""
    h, w = shape[:2]
    corners = apply_affine(invert(m), [[-0.5, -0.5], [out_size - 0.5, -0.5], [-0.5, out_size - 0.5],
                                       [out_size - 0.5, out_size - 0.5]])
    x0, y0 = np.floor(corners.min(0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(0)).astype(int) + margin + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    shift = np.array([[1.0, 0.0, float(x0)], [0.0, 1.0, float(y0)]])  # window px -> source px
    return (int(x0), int(y0), int(x1), int(y1)), compose(np.asarray(m, np.float64), shift)


def _windowed(arr: np.ndarray, m, out_size: int, margin: int = 2):
    """(the source window as a contiguous array, the affine from it) -- PIL then converts only that window."""
    win = _source_window(arr.shape, m, out_size, margin)
    if win is None:
        return None, None
    (x0, y0, x1, y1), m_win = win
    return np.ascontiguousarray(arr[y0:y1, x0:x1]), m_win


@functools.lru_cache(maxsize=None)
def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    cv2.setNumThreads(1)  # one thread per example: grain workers / threads provide the parallelism
    return cv2


def resolve_engine(engine: str) -> str:
    """'auto' -> 'cv2' when opencv is importable, else 'pil'; 'pil' / 'cv2' as given (cv2 must be installed)."""
    if engine == "auto":
        return "cv2" if _cv2() is not None else "pil"
    if engine == "cv2" and _cv2() is None:
        raise ImportError("warp engine 'cv2' needs opencv-python-headless (pip install opencv-python-headless); "
                          "use 'pil' or 'auto'")
    if engine not in ("pil", "cv2"):
        raise ValueError(f"warp engine must be 'auto', 'pil' or 'cv2', got {engine!r}")
    return engine


def _affine(src: np.ndarray, m, out_size: int, bilinear: bool, engine: str) -> np.ndarray:
    """One resampling call: [h, w(, C)] -> [S, S(, C)], outside = 0, pixel centres at integers (both engines)."""
    if engine == "cv2":
        cv2 = _cv2()
        return cv2.warpAffine(src, np.asarray(m, np.float64), (out_size, out_size),
                              flags=cv2.INTER_LINEAR if bilinear else cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    im = Image.fromarray(src)
    out = im.transform((out_size, out_size), Image.AFFINE, _pil_coeffs(m),
                       resample=Image.BILINEAR if bilinear else Image.NEAREST)
    return np.asarray(out)


def warp_image(image: np.ndarray, m, out_size: int, antialias: bool = True, engine: str = "pil") -> np.ndarray:
    """Bilinear warp of [H, W, C] uint8 by `m` (input px -> output px) to [S, S, C]; outside = 0.

    Only the window of the source that the output reads is resampled. When shrinking by a factor
    k >= 2 that window is first box-reduced by the integer factor k (PIL `reduce` / cv2 INTER_AREA),
    so strong downscaling does not alias. engine: 'pil' | 'cv2' | 'auto' (`resolve_engine`).
    """
    engine = resolve_engine(engine)
    m = np.asarray(m, np.float64)
    k = int(_resample_factor(m)) if antialias else 1
    window, m = _windowed(image, m, out_size, margin=2 * max(k, 1))
    if window is None:
        return np.zeros((out_size, out_size) + image.shape[2:], image.dtype)
    if k >= 2:
        h, w = window.shape[:2]
        if h >= k and w >= k:
            window = np.ascontiguousarray(window[: h // k * k, : w // k * k])
            if engine == "cv2":
                window = _cv2().resize(window, (w // k, h // k), interpolation=_cv2().INTER_AREA)
            else:
                window = np.asarray(Image.fromarray(window).reduce(k))
            # reduced pixel centre j is the mean of window pixels j k .. j k + k - 1
            to_reduced = np.array([[1.0 / k, 0.0, 0.5 / k - 0.5], [0.0, 1.0 / k, 0.5 / k - 0.5]])
            m = compose(m, invert(to_reduced))
    return _affine(window, m, out_size, True, engine)


def warp_dense(label: np.ndarray, m, out_size: int, engine: str = "pil") -> np.ndarray:
    """Nearest-neighbour warp of a [H, W] uint8 label map (mask, part ids); outside = 0."""
    engine = resolve_engine(engine)
    window, m = _windowed(np.asarray(label, np.uint8), m, out_size)
    if window is None:
        return np.zeros((out_size, out_size), np.uint8)
    return _affine(window, m, out_size, False, engine)


def warp_depth(depth: np.ndarray, m, out_size: int, background_is_zero: bool = True, engine: str = "pil") -> np.ndarray:
    """Bilinear warp of a [H, W] float map; outside = 0.

    With `background_is_zero` (metric depth, 0 = no surface) the interpolation is normalised by the
    interpolated validity (depth > 0), so edge pixels get the depth of the surface, never a blend with
    the background's 0; pixels whose bilinear footprint is less than half valid become 0.
    """
    engine = resolve_engine(engine)
    depth, m = _windowed(np.asarray(depth, np.float32), m, out_size)
    if depth is None:
        return np.zeros((out_size, out_size), np.float32)
    if not background_is_zero:
        return _affine(depth, m, out_size, True, engine)
    valid = (depth > 0).astype(np.float32)
    num = _affine(np.where(valid > 0, depth, np.float32(0.0)), m, out_size, True, engine)
    den = _affine(valid, m, out_size, True, engine)
    return np.where(den >= 0.5, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def flip_pose(pose: np.ndarray, perm) -> np.ndarray:
    """Mirror axis-angle poses [J, 3] through x -> -x: swap left/right joints, negate y and z."""
    pose = np.asarray(pose)
    return pose[np.asarray(perm)] * np.asarray([1.0, -1.0, -1.0], pose.dtype)


def rotate_pose(pose: np.ndarray, rot_deg: float) -> np.ndarray:
    """Applies the camera roll Rz(theta) (OpenCV frame) to the root orientation of camera-frame poses [J, 3].

    Schema convention (as in HMR2.0/SPIN labels and `synthetic_humans`): the body-to-camera rotation is part
    of the root orientation, so X_cam = X_body(pose) + transl. Rolling the camera maps X_cam -> Rz X_cam,
    hence R_root' = Rz(theta) R_root (and `transform_3d` moves transl so the root joint turns in place).
    """
    if rot_deg == 0.0:
        return pose
    pose = np.array(pose, copy=True)
    root = Rotation.from_rotvec([0.0, 0.0, np.deg2rad(rot_deg)]) * Rotation.from_rotvec(pose[0].astype(np.float64))
    pose[0] = root.as_rotvec()
    return pose


def _rz(rot_deg: float) -> np.ndarray:
    th = np.deg2rad(rot_deg)
    c, s = np.cos(th), np.sin(th)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def transform_3d(joints3d, transl, rot_deg: float, flip: bool, perm, has_joints3d: bool = True):
    """Camera-frame joints [J, 3] and body translation [3] under the mirror (x -> -x) then the roll Rz.

    The body is placed as X_cam = X_body(pose) + transl (the root orientation is in the camera frame), and
    X_body keeps the root joint fixed under the root rotation, so the root joint P0 = joints3d[0] stays put while the body turns about it:
    transl' = Rz transl_m + (Rz - I) (P0_m - transl_m) = transl_m + Rz P0_m - P0_m (m: after the mirror).
    For the mirror, transl_m = M transl holds when the model's rest root joint is on its symmetry plane.
    Returns (joints3d', transl', transl_valid): without joints3d a rolled transl cannot be computed
    (P0 unknown) and `transl_valid` is False.
    """
    j = np.asarray(joints3d, np.float64)
    t = np.asarray(transl, np.float64)
    if flip:
        mirror = np.array([-1.0, 1.0, 1.0])
        j = j[np.asarray(perm)] * mirror
        t = t * mirror
    valid = True
    if rot_deg != 0.0:
        rz = _rz(rot_deg)
        p0 = j[0]
        t = t + rz @ p0 - p0
        j = j @ rz.T
        valid = bool(has_joints3d)
    return j.astype(np.float32), t.astype(np.float32), valid


@functools.lru_cache(maxsize=None)
def part_flip_table(scheme: str) -> np.ndarray:
    """[256] uint8 lookup table: part label -> label of the mirrored part (0 and labels > P unchanged)."""
    from hmrjax.body import layouts
    perm = layouts.flip_permutation(scheme)
    table = np.arange(256, dtype=np.uint8)
    table[1:len(perm) + 1] = perm.astype(np.uint8) + 1
    return table


def flip_part_labels(part_seg: np.ndarray, scheme: str) -> np.ndarray:
    """Swaps left/right body-part labels (0 = background, label p + 1 = part p of `scheme`)."""
    return part_flip_table(scheme)[part_seg]
