"""Camera models: pinhole projection, weak perspective, CLIFF crop <-> full-frame cameras, crops.

Owns every conversion between camera parameterisations and between image/crop coordinates, and
the explicit change from a body-model frame (SMPL: y up) to the camera frame.

Conventions (ARCHITECTURE.md)
- Camera frame: OpenCV, x right, y down, z forward (points in front of the camera have z > 0).
- 2D: continuous pixel coordinates (x right, y down) in the full image; `image_size` is (W, H).
- Crops are square, centred on `bbox_center`, side `bbox_scale` pixels (NOTE: CLIFF / SPIN code
  stores `scale` in units of 200 px; pass `200 * scale` here). Crop-normalised coordinates are
  in [-1, 1] across the crop: -1 is the crop's left/top edge, +1 its right/bottom edge.
- Weak-perspective camera `cam = (s, tx, ty)`: crop-normalised x = s (X + tx), y = s (Y + ty).
All functions are pure jnp, batched over leading dims, jit/vmap/grad safe, dtype preserving.
"""
from __future__ import annotations

import jax.numpy as jnp

__all__ = [
    "BODY_TO_CAMERA",
    "perspective_projection",
    "default_focal_length",
    "weak_perspective_to_translation",
    "translation_to_weak_perspective",
    "cliff_crop_cam_to_full_translation",
    "cliff_full_translation_to_crop_cam",
    "cliff_bbox_features",
    "body_to_camera_frame",
    "camera_to_body_frame",
    "body_to_camera_rotation",
    "crop_to_full_keypoints",
    "full_to_crop_keypoints",
]

# Rotation by 180 degrees about x: maps a y-up, z-towards-viewer body frame (SMPL, OpenGL) to the
# OpenCV camera frame (y down, z forward). It is its own inverse.
BODY_TO_CAMERA = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def _float(x, name: str, trailing: tuple[int, ...] = ()):
    """Converts to a floating jnp array and checks the trailing shape (None = any size)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    n = len(trailing)
    if n and (x.ndim < n or any(t is not None and s != t for s, t in zip(x.shape[x.ndim - n:], trailing))):
        expected = "[..., " + ", ".join("D" if t is None else str(t) for t in trailing) + "]"
        raise ValueError(f"hmrjax.geometry.camera: `{name}` must have shape {expected}, got {x.shape}")
    return x


def _focal_xy(focal_length):
    """Scalar -> as is; [..., 1] or [..., 2] (fx, fy) -> [..., 1, 1|2] to broadcast over points."""
    f = _float(focal_length, "focal_length")
    if f.ndim == 0:
        return f
    if f.shape[-1] not in (1, 2):
        raise ValueError(
            "hmrjax.geometry.camera: `focal_length` must be a scalar, [..., 1] or [..., 2] (fx, fy), "
            f"got {f.shape}; pass a per-sample scalar [B] as focal_length[..., None]"
        )
    return f[..., None, :]


def perspective_projection(points, focal_length, principal_point=None, rotation=None, translation=None,
                           min_depth: float = 1e-4):
    """Pinhole projection of 3D points to pixels.

    p = R X + t (camera frame, OpenCV), u = fx p_x / z + cx, v = fy p_y / z + cy with
    z = p_z where |p_z| >= min_depth, else z = sign(p_z) * min_depth (sign(0) = +). The clamp only
    keeps values and gradients finite for points at the camera centre; points behind the camera
    (z < 0) are projected point-reflected as the pinhole model does, so mask them if needed.

    Args:
      points: `[..., N, 3]` metres.
      focal_length: pixels; scalar, `[..., 1]` or `[..., 2]` (fx, fy) broadcasting with the leading
        dims of `points` (a per-sample scalar `[B]` must be passed as `[B, 1]`).
      principal_point: `[..., 2]` pixels (cx, cy); None = (0, 0), i.e. coordinates relative to
        the principal point.
      rotation: optional `[..., 3, 3]` world-to-camera rotation R.
      translation: optional `[..., 3]` translation t (metres), applied after the rotation.
      min_depth: depth clamp (metres).
    Returns:
      `[..., N, 2]` pixels.
    """
    points = _float(points, "points", (None, 3))
    if rotation is not None:
        rotation = _float(rotation, "rotation", (3, 3))
        points = jnp.einsum("...ij,...nj->...ni", rotation, points)
    if translation is not None:
        translation = _float(translation, "translation", (3,))
        points = points + translation[..., None, :]
    z = points[..., 2:3]
    z = jnp.where(z >= 0, jnp.maximum(z, min_depth), jnp.minimum(z, -min_depth))
    uv = _focal_xy(focal_length) * points[..., :2] / z
    if principal_point is not None:
        uv = uv + _float(principal_point, "principal_point", (2,))[..., None, :]
    return uv.astype(points.dtype)


def default_focal_length(image_size):
    """Focal length used when intrinsics are unknown (CLIFF convention): f = sqrt(W^2 + H^2).

    This corresponds to a diagonal field of view of 2 atan(1/2) ~ 53 degrees.

    Args:
      image_size: `[..., 2]` (W, H) pixels.
    Returns:
      `[...]` pixels.
    """
    size = _float(image_size, "image_size", (2,))
    return jnp.sqrt(jnp.sum(size * size, axis=-1))


def weak_perspective_to_translation(cam, focal_length, crop_size, eps: float = 1e-9):
    """Weak-perspective crop camera (s, tx, ty) -> camera translation for a perspective camera.

    t = (tx, ty, 2 f / (crop_size * s + eps)) (SPIN / HMR convention): a point X at depth ~ t_z
    then projects to crop pixels u = f (X + tx) / t_z + crop_size / 2, i.e. crop-normalised
    (u - crop_size/2) / (crop_size/2) = s (X + tx).

    Args:
      cam: `[..., 3]` (s, tx, ty).
      focal_length: `[...]` focal length of the crop camera, in crop pixels (e.g. 5000 for 224 px).
      crop_size: `[...]` crop side in pixels.
      eps: keeps t_z finite when s = 0.
    Returns:
      `[..., 3]` translation (metres).
    """
    cam = _float(cam, "cam", (3,))
    f = _float(focal_length, "focal_length")
    crop = _float(crop_size, "crop_size")
    tz = 2.0 * f / (crop * cam[..., 0] + eps)
    return jnp.stack(jnp.broadcast_arrays(cam[..., 1], cam[..., 2], tz), axis=-1).astype(cam.dtype)


def translation_to_weak_perspective(translation, focal_length, crop_size, eps: float = 1e-9,
                                    min_depth: float = 1e-6):
    """Inverse of `weak_perspective_to_translation`: s = (2 f / t_z - eps) / crop_size.

    Args:
      translation: `[..., 3]` (tx, ty, tz) metres; tz is clamped to >= `min_depth`.
      focal_length: `[...]` crop-camera focal length, crop pixels.
      crop_size: `[...]` crop side, pixels.
    Returns:
      `[..., 3]` (s, tx, ty).
    """
    t = _float(translation, "translation", (3,))
    f = _float(focal_length, "focal_length")
    crop = _float(crop_size, "crop_size")
    s = (2.0 * f / jnp.maximum(t[..., 2], min_depth) - eps) / crop
    return jnp.stack(jnp.broadcast_arrays(s, t[..., 0], t[..., 1]), axis=-1).astype(t.dtype)


def _cliff_inputs(bbox_center, bbox_scale, image_size, focal_length):
    c = _float(bbox_center, "bbox_center", (2,))
    b = _float(bbox_scale, "bbox_scale")
    size = _float(image_size, "image_size", (2,))
    f = _float(focal_length, "focal_length")
    return c[..., 0] - 0.5 * size[..., 0], c[..., 1] - 0.5 * size[..., 1], b, f


def cliff_crop_cam_to_full_translation(cam_crop, bbox_center, bbox_scale, image_size, focal_length,
                                       eps: float = 1e-9):
    """CLIFF: weak-perspective crop camera -> translation of the full-image perspective camera.

    As CLIFF's `cam_crop_to_full` (also BEDLAM-CLIFF, 4D-Humans) with b = bbox_scale in pixels:
      bs = b * s + eps,  tz = 2 f / bs,
      tx = tx_crop + 2 (cx - W/2) / bs,  ty = ty_crop + 2 (cy - H/2) / bs.
    Geometry: with principal point (W/2, H/2), a point X of the plane X_z = 0 (body frame at the
    root depth) projects to exactly the full-image pixel of its crop weak-perspective projection,
    bbox_center + (b/2) s (X_xy + (tx, ty)_crop); other points differ by the perspective effect.

    Args:
      cam_crop: `[..., 3]` (s, tx, ty) predicted for the crop.
      bbox_center: `[..., 2]` (cx, cy) full-image pixels.
      bbox_scale: `[...]` crop side b, pixels.
      image_size: `[..., 2]` (W, H) pixels.
      focal_length: `[...]` full-image focal length, pixels (one value; fx = fy).
    Returns:
      `[..., 3]` translation (metres) in the full-image camera frame.
    """
    cam = _float(cam_crop, "cam_crop", (3,))
    dx, dy, b, f = _cliff_inputs(bbox_center, bbox_scale, image_size, focal_length)
    bs = b * cam[..., 0] + eps
    tz = 2.0 * f / bs
    tx = cam[..., 1] + 2.0 * dx / bs
    ty = cam[..., 2] + 2.0 * dy / bs
    return jnp.stack(jnp.broadcast_arrays(tx, ty, tz), axis=-1).astype(cam.dtype)


def cliff_full_translation_to_crop_cam(translation, bbox_center, bbox_scale, image_size, focal_length,
                                       eps: float = 1e-9, min_depth: float = 1e-6):
    """Inverse of `cliff_crop_cam_to_full_translation` (e.g. to build crop-camera targets).

    From bs = 2 f / tz: s = (2 f / tz - eps) / b, tx = tx_full - (cx - W/2) tz / f,
    ty = ty_full - (cy - H/2) tz / f (tz clamped to >= `min_depth`).

    Args:
      translation: `[..., 3]` full-image camera translation (metres).
      bbox_center, bbox_scale, image_size, focal_length: as in `cliff_crop_cam_to_full_translation`.
    Returns:
      `[..., 3]` (s, tx, ty).
    """
    t = _float(translation, "translation", (3,))
    dx, dy, b, f = _cliff_inputs(bbox_center, bbox_scale, image_size, focal_length)
    tz = jnp.maximum(t[..., 2], min_depth)
    s = (2.0 * f / tz - eps) / b
    tx = t[..., 0] - dx * tz / f
    ty = t[..., 1] - dy * tz / f
    return jnp.stack(jnp.broadcast_arrays(s, tx, ty), axis=-1).astype(t.dtype)


def cliff_bbox_features(bbox_center, bbox_scale, image_size, focal_length):
    """CLIFF bounding-box features [cx - W/2, cy - H/2, b] / f (CLIFF paper, Eq. 5).

    This is the ARCHITECTURE.md convention. The released CLIFF code (and code derived from it)
    further rescales them with H36M statistics: the first two entries are multiplied by 2.8 and
    the third is (b - 0.24 f) / (0.06 f) instead of b / f (its comment says the plain Eq. 5 is
    fine too); weights trained with that code expect the rescaled version.

    Args:
      bbox_center: `[..., 2]` pixels.  bbox_scale: `[...]` crop side, pixels.
      image_size: `[..., 2]` (W, H).  focal_length: `[...]` pixels.
    Returns:
      `[..., 3]`.
    """
    dx, dy, b, f = _cliff_inputs(bbox_center, bbox_scale, image_size, focal_length)
    return jnp.stack(jnp.broadcast_arrays(dx / f, dy / f, b / f), axis=-1)


def _flip_yz(x, name):
    x = _float(x, name, (3,))
    return x * jnp.asarray([1.0, -1.0, -1.0], dtype=x.dtype)


def body_to_camera_frame(points):
    """Body-model frame (y up, z towards the viewer; SMPL) -> OpenCV camera frame.

    Rotation by 180 degrees about x: (x, y, z) -> (x, -y, -z). Applies to points and vectors
    `[..., 3]` about the origin; apply it before adding a camera-frame translation.
    """
    return _flip_yz(points, "points")


def camera_to_body_frame(points):
    """OpenCV camera frame -> body-model frame; the same 180-degree x rotation (self-inverse)."""
    return _flip_yz(points, "points")


def body_to_camera_rotation(rotation):
    """Expresses a rotation (e.g. SMPL global orient) in the camera frame: R_cam = F R, F = diag(1, -1, -1).

    Then `body_to_camera_frame(R @ x) == R_cam @ x`. Args: `[..., 3, 3]`; returns `[..., 3, 3]`.
    """
    r = _float(rotation, "rotation", (3, 3))
    return r * jnp.asarray([1.0, -1.0, -1.0], dtype=r.dtype)[:, None]


def crop_to_full_keypoints(keypoints, bbox_center, bbox_scale):
    """Crop-normalised [-1, 1] keypoints -> full-image pixels: p = center + kp * b / 2.

    Args:
      keypoints: `[..., K, D]`, D >= 2; only the first two channels are transformed, the others
        (e.g. visibility) pass through.
      bbox_center: `[..., 2]` pixels.  bbox_scale: `[...]` crop side b, pixels.
    Returns:
      `[..., K, D]`.
    """
    kp = _float(keypoints, "keypoints", (None, None))
    if kp.shape[-1] < 2:
        raise ValueError(f"hmrjax.geometry.camera: `keypoints` must have shape [..., K, D>=2], got {kp.shape}")
    c = _float(bbox_center, "bbox_center", (2,))[..., None, :]
    b = _float(bbox_scale, "bbox_scale")[..., None, None]
    xy = c + kp[..., :2] * (0.5 * b)
    return jnp.concatenate([xy.astype(kp.dtype), kp[..., 2:]], axis=-1)


def full_to_crop_keypoints(keypoints, bbox_center, bbox_scale):
    """Full-image pixels -> crop-normalised [-1, 1]: kp = (p - center) * 2 / b.

    Args and returns as in `crop_to_full_keypoints` (extra channels pass through).
    """
    kp = _float(keypoints, "keypoints", (None, None))
    if kp.shape[-1] < 2:
        raise ValueError(f"hmrjax.geometry.camera: `keypoints` must have shape [..., K, D>=2], got {kp.shape}")
    c = _float(bbox_center, "bbox_center", (2,))[..., None, :]
    b = _float(bbox_scale, "bbox_scale")[..., None, None]
    xy = (kp[..., :2] - c) * (2.0 / b)
    return jnp.concatenate([xy.astype(kp.dtype), kp[..., 2:]], axis=-1)
