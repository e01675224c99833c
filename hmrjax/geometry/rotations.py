"""Rotation representations and conversions: axis-angle, matrices, quaternions, 6D.

Owns every conversion between rotation representations used in hmrjax, plus `geodesic_distance`.
All functions are pure `jax.numpy`, batched over arbitrary leading dims `[...]`, and safe under
`jit`, `vmap` and `grad` (including exactly-zero angles). They keep the input's floating dtype
(float32 by default; float64 when x64 is enabled and the inputs are float64).

Conventions
- Rotation matrices act on column vectors: `x' = R @ x`.
- Axis-angle `aa [..., 3]` = unit axis * angle (radians), angle = |aa|.
- Quaternions are `[..., 4]` in **(w, x, y, z)** order (scalar first), Hamilton product,
  `quaternion_to_matrix(q1 * q2) == quaternion_to_matrix(q1) @ quaternion_to_matrix(q2)`.
  scipy's `Rotation.as_quat()` uses (x, y, z, w) by default: reorder when comparing.
- 6D (Zhou et al., CVPR 2019) = the first two *columns* of R. Default layout `"columns"` flattens
  them column-major, `[R00, R10, R20, R01, R11, R21]` (ARCHITECTURE.md convention: the two column
  vectors are contiguous). `layout="interleaved"` is `R[..., :, :2].reshape(..., 6)` =
  `[R00, R01, R10, R11, R20, R21]`, the layout of SPIN / HMR2.0 / PARE code (`x.view(-1, 3, 2)`),
  for loading weights trained with those codebases. (PyTorch3D's `matrix_to_rotation_6d` uses the
  first two *rows* instead, i.e. the 6D of R^T; it is not supported here.)
"""
from __future__ import annotations

import jax.numpy as jnp

__all__ = [
    "skew",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "quaternion_multiply",
    "quaternion_conjugate",
    "quaternion_invert",
    "standardize_quaternion",
    "matrix_to_rot6d",
    "rot6d_to_matrix",
    "geodesic_distance",
    "project_to_so3",
    "mirror_rotations",
]

# Below this squared angle (rad^2) the trigonometric ratios use Taylor series. With terms up to
# theta^4 the truncation error is < theta^6 / 5040 ~ 2e-16 at theta = 1e-2, i.e. exact in float64.
_SMALL_ANGLE_SQ = 1e-4
_ROT6D_LAYOUTS = ("columns", "interleaved")


def _as_float(x, name: str, trailing: tuple[int, ...]):
    """Converts `x` to a floating jnp array and checks its trailing shape."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    n = len(trailing)
    if x.ndim < n or tuple(x.shape[x.ndim - n:]) != trailing:
        expected = "[..., " + ", ".join(str(t) for t in trailing) + "]"
        raise ValueError(f"hmrjax.geometry.rotations: `{name}` must have shape {expected}, got {x.shape}")
    return x


def skew(v):
    """Cross-product (hat) matrix: `skew(v) @ u == cross(v, u)`.

    Args:
      v: `[..., 3]`.
    Returns:
      `[..., 3, 3]` = [[0, -vz, vy], [vz, 0, -vx], [-vy, vx, 0]].
    """
    v = _as_float(v, "v", (3,))
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = jnp.zeros_like(x)
    return jnp.stack(
        [jnp.stack([zero, -z, y], -1), jnp.stack([z, zero, -x], -1), jnp.stack([-y, x, zero], -1)], -2
    )


def axis_angle_to_matrix(aa):
    """Rodrigues' formula: axis-angle -> rotation matrix.

    R = I + a(theta) K + b(theta) K^2, with K = skew(aa) (not normalised), theta = |aa|,
    a = sin(theta) / theta, b = (1 - cos(theta)) / theta^2 = 2 sin^2(theta / 2) / theta^2.
    For theta^2 < 1e-4 both ratios use their Taylor series (a = 1 - t2/6 + t2^2/120,
    b = 1/2 - t2/24 + t2^2/720), and the trigonometric branch is fed a safe dummy angle there
    (double-where), so values are exact near zero and gradients are finite everywhere; at
    aa = 0, dR/d aa_k is the k-th skew generator.

    Args:
      aa: `[..., 3]` axis * angle (radians).
    Returns:
      `[..., 3, 3]` rotation matrices, same dtype as `aa`.
    """
    aa = _as_float(aa, "aa", (3,))
    t2 = jnp.sum(aa * aa, axis=-1)
    small = t2 < _SMALL_ANGLE_SQ
    theta = jnp.sqrt(jnp.where(small, jnp.ones_like(t2), t2))
    a_big = jnp.sin(theta) / theta
    half_sinc = jnp.sin(0.5 * theta) / theta  # b = 2 * half_sinc^2 avoids 1 - cos cancellation
    b_big = 2.0 * half_sinc * half_sinc
    a = jnp.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, a_big)
    b = jnp.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, b_big)
    k = skew(aa)
    eye = jnp.eye(3, dtype=aa.dtype)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def axis_angle_to_quaternion(aa):
    """Axis-angle -> unit quaternion (w, x, y, z).

    q = (cos(theta/2), aa * sin(theta/2) / theta); Taylor series below theta^2 = 1e-4
    (cos(theta/2) = 1 - t2/8 + t2^2/384, sin(theta/2)/theta = 1/2 - t2/48 + t2^2/3840).
    The result has w >= 0 for theta <= pi.

    Args:
      aa: `[..., 3]`.
    Returns:
      `[..., 4]` quaternions, (w, x, y, z).
    """
    aa = _as_float(aa, "aa", (3,))
    t2 = jnp.sum(aa * aa, axis=-1)
    small = t2 < _SMALL_ANGLE_SQ
    theta = jnp.sqrt(jnp.where(small, jnp.ones_like(t2), t2))
    w = jnp.where(small, 1.0 - t2 / 8.0 + t2 * t2 / 384.0, jnp.cos(0.5 * theta))
    s = jnp.where(small, 0.5 - t2 / 48.0 + t2 * t2 / 3840.0, jnp.sin(0.5 * theta) / theta)
    return jnp.concatenate([w[..., None], aa * s[..., None]], axis=-1)


def quaternion_to_axis_angle(q):
    """Quaternion (w, x, y, z) -> axis-angle with angle in [0, pi].

    The sign of q is first made w >= 0 (q and -q are the same rotation); then
    angle = 2 atan2(|v|, w) and aa = v * angle / |v|. For |v|^2 < 1e-4 w^2 the factor
    angle/|v| uses the atan series 2/w (1 - r/3 + r^2/5 - r^3/7), r = |v|^2 / w^2. Both
    branches are invariant to the norm of q, so q need not be normalised. The zero quaternion
    maps to 0. Gradients are finite everywhere (double-where).

    Args:
      q: `[..., 4]`.
    Returns:
      `[..., 3]`.
    """
    q = _as_float(q, "q", (4,))
    q = jnp.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    n2 = jnp.sum(v * v, axis=-1)
    w2 = w * w
    small = n2 <= _SMALL_ANGLE_SQ * w2  # includes the zero quaternion (w = n = 0)
    n = jnp.sqrt(jnp.where(small, jnp.ones_like(n2), n2))
    w_safe = jnp.where(small & (w > 0), w, jnp.ones_like(w))
    r = n2 / (w_safe * w_safe)
    factor_small = 2.0 / w_safe * (1.0 - r / 3.0 + r * r / 5.0 - r * r * r / 7.0)
    factor_small = jnp.where(w > 0, factor_small, jnp.zeros_like(w))
    factor_big = 2.0 * jnp.arctan2(n, w) / n
    factor = jnp.where(small, factor_small, factor_big)
    return v * factor[..., None]


def quaternion_to_matrix(q):
    """Quaternion (w, x, y, z) -> rotation matrix.

    Uses s = 2 / |q|^2 so non-unit quaternions give the rotation of q / |q|:
    R = [[1 - s(y^2+z^2), s(xy - wz), s(xz + wy)],
         [s(xy + wz), 1 - s(x^2+z^2), s(yz - wx)],
         [s(xz - wy), s(yz + wx), 1 - s(x^2+y^2)]].

    Args:
      q: `[..., 4]` (nonzero).
    Returns:
      `[..., 3, 3]`.
    """
    q = _as_float(q, "q", (4,))
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    s = 2.0 / jnp.sum(q * q, axis=-1)
    rows = [
        [1.0 - s * (y * y + z * z), s * (x * y - w * z), s * (x * z + w * y)],
        [s * (x * y + w * z), 1.0 - s * (x * x + z * z), s * (y * z - w * x)],
        [s * (x * z - w * y), s * (y * z + w * x), 1.0 - s * (x * x + y * y)],
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def standardize_quaternion(q):
    """Returns the representative of {q, -q} with w >= 0. `[..., 4]` -> `[..., 4]`."""
    q = _as_float(q, "q", (4,))
    return jnp.where(q[..., :1] < 0, -q, q)


def matrix_to_quaternion(R, standardize: bool = True):
    """Rotation matrix -> unit quaternion (w, x, y, z), Shepperd's method.

    With m = (4w^2, 4x^2, 4y^2, 4z^2) = (1 + R00 + R11 + R22, 1 + R00 - R11 - R22,
    1 - R00 + R11 - R22, 1 - R00 - R11 + R22) (these sum to 4, so max(m) >= 1), the branch of the
    largest m_i is used: q = row_i / (2 sqrt(m_i)) where row_i holds 4 q_i q_j computed from
    off-diagonal sums/differences (e.g. 4wx = R21 - R12, 4xy = R10 + R01). This is accurate for
    every angle including pi. The result is normalised (so slightly non-orthogonal input is
    tolerated) and, if `standardize`, has w >= 0 (only the sign of q is ambiguous).

    Args:
      R: `[..., 3, 3]` rotation matrices.
      standardize: make w >= 0.
    Returns:
      `[..., 4]`.
    """
    R = _as_float(R, "R", (3, 3))
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    m = jnp.stack(
        [1.0 + r00 + r11 + r22, 1.0 + r00 - r11 - r22, 1.0 - r00 + r11 - r22, 1.0 - r00 - r11 + r22],
        axis=-1,
    )
    # candidates[..., i, :] = (4 q_i q_w, 4 q_i q_x, 4 q_i q_y, 4 q_i q_z)
    candidates = jnp.stack(
        [
            jnp.stack([m[..., 0], r21 - r12, r02 - r20, r10 - r01], axis=-1),
            jnp.stack([r21 - r12, m[..., 1], r10 + r01, r02 + r20], axis=-1),
            jnp.stack([r02 - r20, r10 + r01, m[..., 2], r21 + r12], axis=-1),
            jnp.stack([r10 - r01, r02 + r20, r21 + r12, m[..., 3]], axis=-1),
        ],
        axis=-2,
    )
    # Floor at 0.1 only matters for unselected branches (selected m_i >= 1); keeps them finite.
    denom = 2.0 * jnp.sqrt(jnp.maximum(m, 0.1))
    candidates = candidates / denom[..., None]
    best = jnp.argmax(m, axis=-1)
    q = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / jnp.sqrt(jnp.sum(q * q, axis=-1, keepdims=True))
    if standardize:
        q = standardize_quaternion(q)
    return q


def matrix_to_axis_angle(R):
    """Rotation matrix -> axis-angle (angle in [0, pi]) via `matrix_to_quaternion`.

    Going through Shepperd's quaternion keeps the axis accurate at angles near and exactly pi
    (where R - R^T vanishes); the small-angle series in `quaternion_to_axis_angle` keeps it
    accurate near 0. At exactly pi, aa and -aa are the same rotation; either may be returned.

    Args:
      R: `[..., 3, 3]`.
    Returns:
      `[..., 3]`.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(R, standardize=True))


def quaternion_multiply(q1, q2):
    """Hamilton product q1 * q2 (rotation q2 first, then q1). `[..., 4]` x `[..., 4]` -> `[..., 4]`.

    (w1, v1) * (w2, v2) = (w1 w2 - v1.v2, w1 v2 + w2 v1 + v1 x v2). Leading dims broadcast.
    """
    q1 = _as_float(q1, "q1", (4,))
    q2 = _as_float(q2, "q2", (4,))
    w1, v1 = q1[..., :1], q1[..., 1:]
    w2, v2 = q2[..., :1], q2[..., 1:]
    w = w1 * w2 - jnp.sum(v1 * v2, axis=-1, keepdims=True)
    v = w1 * v2 + w2 * v1 + jnp.cross(v1, v2)
    return jnp.concatenate([w, v], axis=-1)


def quaternion_conjugate(q):
    """(w, x, y, z) -> (w, -x, -y, -z). For unit q this is the inverse rotation. `[..., 4]`."""
    q = _as_float(q, "q", (4,))
    return q * jnp.asarray([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def quaternion_invert(q):
    """Multiplicative inverse conj(q) / |q|^2 (equals the conjugate for unit q). `[..., 4]`."""
    q = _as_float(q, "q", (4,))
    return quaternion_conjugate(q) / jnp.sum(q * q, axis=-1, keepdims=True)


def _check_layout(layout: str):
    if layout not in _ROT6D_LAYOUTS:
        raise ValueError(f"hmrjax.geometry.rotations: `layout` must be one of {_ROT6D_LAYOUTS}, got {layout!r}")


def matrix_to_rot6d(R, layout: str = "columns"):
    """Rotation matrix -> 6D representation (first two columns of R, Zhou et al. 2019).

    Args:
      R: `[..., 3, 3]`.
      layout: `"columns"` (default, ARCHITECTURE.md): `[R00, R10, R20, R01, R11, R21]`;
        `"interleaved"` (SPIN / HMR2.0 / PARE): `[R00, R01, R10, R11, R20, R21]`.
    Returns:
      `[..., 6]`.
    """
    _check_layout(layout)
    R = _as_float(R, "R", (3, 3))
    cols = R[..., :, :2]  # [..., 3, 2]
    if layout == "columns":
        cols = jnp.swapaxes(cols, -1, -2)  # [..., 2, 3]: one column per row
    return cols.reshape(cols.shape[:-2] + (6,))


def _normalize(v, eps):
    """v / max(|v|, eps) along the last axis; gradient finite at v = 0."""
    n2 = jnp.sum(v * v, axis=-1, keepdims=True)
    return v / jnp.sqrt(jnp.maximum(n2, eps * eps))


def rot6d_to_matrix(x, layout: str = "columns", eps: float = 1e-12):
    """6D representation -> rotation matrix by Gram–Schmidt (Zhou et al. 2019).

    b1 = normalize(a1); b2 = normalize(a2 - <b1, a2> b1); b3 = b1 x b2; R = [b1 | b2 | b3] (columns),
    where normalize(v) = v / max(|v|, eps) (as torch.nn.functional.normalize; finite at v = 0).

    Args:
      x: `[..., 6]` with a1, a2 the two (unnormalised) columns, laid out as in `matrix_to_rot6d`.
      layout: `"columns"` (default) or `"interleaved"`; see the module docstring.
      eps: norm floor for the normalisation.
    Returns:
      `[..., 3, 3]`.
    """
    _check_layout(layout)
    x = _as_float(x, "x", (6,))
    if layout == "columns":
        a1, a2 = x[..., 0:3], x[..., 3:6]
    else:
        a1, a2 = x[..., 0::2], x[..., 1::2]
    b1 = _normalize(a1, eps)
    b2 = _normalize(a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1, eps)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-1)


def geodesic_distance(R1, R2):
    """Angle (radians, in [0, pi]) of the relative rotation R1^T R2.

    With M = R1^T R2: cos(angle) = (tr M - 1) / 2 and sin(angle) = |vee(M - M^T)| / 2, and
    angle = atan2(sin, cos). This equals arccos(clip((tr M - 1) / 2, -1, 1)) for rotations, but
    unlike arccos it is accurate near 0 and pi and has finite gradients everywhere (at M = I the
    norm uses a double-where, giving gradient 0 there, a valid subgradient of the kink).

    Args:
      R1, R2: `[..., 3, 3]` (leading dims broadcast).
    Returns:
      `[...]`.
    """
    R1 = _as_float(R1, "R1", (3, 3))
    R2 = _as_float(R2, "R2", (3, 3))
    M = jnp.swapaxes(R1, -1, -2) @ R2
    cos = 0.5 * (M[..., 0, 0] + M[..., 1, 1] + M[..., 2, 2] - 1.0)
    vee = jnp.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], -1)
    s2 = jnp.sum(vee * vee, axis=-1)
    pos = s2 > 0
    sin = 0.5 * jnp.where(pos, jnp.sqrt(jnp.where(pos, s2, jnp.ones_like(s2))), jnp.zeros_like(s2))
    return jnp.arctan2(sin, cos)


def project_to_so3(M):
    """Nearest rotation (Frobenius norm) to each 3x3 matrix: U diag(1, 1, det(U V^T)) V^T from M = U S V^T.

    Applied to the arithmetic mean of rotation matrices this is their chordal L2 mean (the rotation
    minimising the summed squared Frobenius distances; Hartley et al., "Rotation averaging", 2013).

    Args:
      M: `[..., 3, 3]`.
    Returns:
      `[..., 3, 3]` rotation matrices (det +1).
    """
    M = _as_float(M, "M", (3, 3))
    U, _, Vt = jnp.linalg.svd(M)
    d = jnp.sign(jnp.linalg.det(U @ Vt))   # +-1: U and V are orthogonal
    U = U.at[..., :, 2].multiply(d[..., None])
    return U @ Vt


def mirror_rotations(R, perm):
    """Rotations of the mirror image through x -> -x: joint j takes the mirrored rotation of joint perm[j].

    With M = diag(-1, 1, 1), the mirrored rotation is M R M (axis-angle (x, y, z) -> (x, -y, -z), as
    `data_pipelines.transforms.flip_pose`); `perm` (e.g. `hmrjax.body.layouts.flip_permutation`) swaps the
    left and right joints. The map is its own inverse.

    Args:
      R: `[..., J, 3, 3]`; perm: `[J]` ints.
    Returns:
      `[..., J, 3, 3]`.
    """
    R = _as_float(R, "R", (3, 3))
    sign = jnp.asarray([-1.0, 1.0, 1.0], R.dtype)
    R = jnp.take(R, jnp.asarray(perm), axis=-3)
    return R * sign[:, None] * sign[None, :]
