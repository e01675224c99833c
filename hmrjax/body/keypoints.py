"""Keypoint regressors: linear maps from mesh vertices to 2D/3D keypoint sets (COCO-17, H36M-17).

Owns `keypoint_regressor(body, layout)` (a `[K, V]` matrix built once at load time, numpy) and
`regress_keypoints(regressor, vertices)` (jnp, per step). Keypoint order and left/right flips are those of
`hmrjax.body.layouts` (`layouts.COCO17`, `layouts.flip_permutation("coco17")`).

COCO-17 sources, by topology
- a model file that ships `coco17_regressor` [17, V] (the free Anny asset) -> that matrix;
- SMPL / SMPL-H (6890 vertices) and SMPL-X (10475 vertices): nose, eyes and ears are single vertices, the
  ids of smplx's vertex-joint selector (`smplx/vertex_ids.py`, keys nose/leye/reye/lear/rear; SMPL:
  332, 2800, 6260, 583, 4071; SMPL-X: 9120, 9448, 9929, 6, 616), as used by SPIN and 4D-Humans through
  smplx's OpenPose joints; shoulders, elbows, wrists, hips, knees and ankles are the model's own joints
  (SMPL joints 16/17, 18/19, 20/21, 1/2, 4/5, 7/8), written as vertex regressors by taking the matching
  rows of `J_regressor`. (Note: in SMPL, +x is the body's left; 2800/583 lie at x > 0.)
H36M-17 needs a regressor file (e.g. SPIN's `J_regressor_h36m.npy`, [17, V]): pass `path=`.
"""
from __future__ import annotations

import numpy as np

import jax.numpy as jnp

from hmrjax.body import layouts
from hmrjax.body.parts import _joint_names, _resolve, body_field

__all__ = ["FACE_VERTEX_IDS", "keypoint_regressor", "regress_keypoints"]

# COCO face keypoints -> vertex id per topology: (number of vertices, {coco name: vertex id}); the ids are
# read from hmrjax.body.layouts.VERTEX_JOINT_IDS (a copy of smplx/vertex_ids.py).
_SMPLX_KEY = {"nose": "nose", "left_eye": "left_eye", "right_eye": "right_eye", "left_ear": "left_ear",
              "right_ear": "right_ear"}


def _face_ids(model_type):
    nv, names, ids = layouts.VERTEX_JOINT_IDS[model_type]
    table = dict(zip(names, ids))
    return nv, {coco: int(table[src]) for coco, src in _SMPLX_KEY.items()}


FACE_VERTEX_IDS = {mt: _face_ids(mt) for mt in ("smpl", "smplh", "smplx")}
_BODY_FROM_JOINTS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                     "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def _check_regressor(reg, nv, k, where):
    reg = np.asarray(reg, np.float64)
    if reg.shape != (k, nv):
        raise ValueError(f"{where}: regressor must be [{k}, V] with V = {nv}, got {reg.shape}")
    if not np.all(np.isfinite(reg)):
        raise ValueError(f"{where}: regressor contains NaN or inf")
    s = reg.sum(1)
    if np.any(np.abs(s - 1) > 1e-3):
        raise ValueError(f"{where}: regressor rows must sum to 1 (an affine combination of vertices); "
                         f"row sums range {s.min():.4g}..{s.max():.4g}")
    return reg


def _shipped_coco17(body):
    """The model's own COCO-17 regressor, if it has one (file key or BodyModel extra regressor)."""
    reg = body_field(body, ("coco17_regressor",), required=False)
    if reg is not None:
        return reg
    extras = body.get("extra_regressors") if isinstance(body, dict) else getattr(body, "extra_regressors", None)
    if isinstance(extras, dict) and extras.get("coco17") is not None:
        return np.asarray(extras["coco17"])
    return None


def keypoint_regressor(body, layout: str = "coco17", path=None, dtype=np.float32) -> np.ndarray:
    """A `[K, V]` vertex -> keypoint regressor for `body` (rows sum to 1; `keypoints = R @ vertices`).

    Args:
      body: a loaded `hmrjax.body.BodyModel`, a mapping in the SMPL file layout, or a model name / path.
      layout: "coco17" (`layouts.COCO17` order) or "h36m17" (`layouts.H36M17`; needs `path`).
      path: a regressor file (.npy / .npz, [K, V]); required for h36m17, and overrides the built-in
        COCO-17 recipe when given.
    Raises ValueError naming what is missing (e.g. a topology with neither `coco17_regressor` nor known
    SMPL/SMPL-X vertex ids).
    """
    body = _resolve(body)
    v = body_field(body, ("v_template",))
    nv = v.shape[-2]
    k = layouts.get_layout(layout).num_joints
    if path is not None:
        from hmrjax.body import io

        return _check_regressor(io.load_regressor(path, nv, layout), nv, k, str(path)).astype(dtype)
    if layout == "h36m17":
        raise ValueError("the h36m17 keypoints need a regressor file for this topology (e.g. SPIN's "
                         "J_regressor_h36m.npy, [17, V]); pass keypoint_regressor(body, 'h36m17', path=...)")
    if layout != "coco17":
        raise ValueError(f"no built-in regressor for layout {layout!r}; give path= to a [K, V] regressor file")

    shipped = _shipped_coco17(body)
    if shipped is not None:
        return _check_regressor(shipped, nv, k, "coco17_regressor").astype(dtype)

    stored = body_field(body, ("model_type",), required=False)
    stored = None if stored is None else str(stored.item() if hasattr(stored, "item") else stored)
    mt = stored if stored in FACE_VERTEX_IDS else None
    if stored in (None, "", "None"):  # untyped SMPL-layout arrays: recognise the official vertex counts
        mt = {6890: "smpl", 10475: "smplx"}.get(nv)
    if mt is None or FACE_VERTEX_IDS[mt][0] != nv:
        raise ValueError(
            f"no COCO-17 regressor for this body model (model_type {stored!r}, {nv} vertices): it carries no "
            "'coco17_regressor' and is not an SMPL (6890) / SMPL-X (10475) topology. For a shipped model pass "
            "its name or file (keypoint_regressor('anny')), load it with extra_regressors={'coco17': ...}, "
            "or pass path= to a [17, V] regressor file")
    _, face = FACE_VERTEX_IDS[mt]
    jreg = body_field(body, ("J_regressor",)).astype(np.float64)
    jnames = _joint_names(body, jreg.shape[0])
    coco = layouts.COCO17.joint_names
    reg = np.zeros((k, nv))
    for i, name in enumerate(coco):
        if name in face:
            reg[i, face[name]] = 1.0
        else:
            reg[i] = jreg[jnames.index(name)]
    return _check_regressor(reg, nv, k, f"{mt} COCO-17 regressor").astype(dtype)


def regress_keypoints(regressor, vertices):
    """Keypoints `[..., K, 3]` from `vertices [..., V, 3]` with a `[K, V]` regressor (jnp; jit/grad safe)."""
    r = jnp.asarray(regressor)
    x = jnp.asarray(vertices)
    if r.ndim != 2 or x.shape[-2] != r.shape[1]:
        raise ValueError(f"regressor [K, V] = {r.shape} does not match vertices {x.shape} (V on axis -2)")
    return jnp.einsum("kv,...vc->...kc", r.astype(x.dtype), x)
