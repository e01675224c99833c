"""Body models: safe loading of SMPL / SMPL-H / SMPL-X / MANO files and shipped assets, LBS, joint layouts.

    body = hmrjax.body.load("anny")                        # shipped asset (hmrjax/body/assets/anny.npz)
    body = hmrjax.body.load("/path/SMPLX_NEUTRAL.npz")     # official files, .npz or .pkl (no chumpy needed)
    out = body(pose=pose, betas=betas)                     # BodyOutput: vertices [B, V, 3], joints [B, J, 3]

`load` is here; files are `io`, the model is `model`, joint sets are `layouts`.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from hmrjax.body import io, layouts
from hmrjax.body.io import BodyModelFileError, UnsafePickleError, convert
from hmrjax.body.model import _PARTS, BodyModel, BodyOutput, _Static, _StaticArray, tree_levels

__all__ = ["load", "from_arrays", "BodyModel", "BodyOutput", "BodyModelFileError", "UnsafePickleError", "convert",
           "io", "layouts"]

_SHAPE_SPACE = {"smpl": 300, "smplh": 300, "smplx": 300}  # smplx's SHAPE_SPACE_DIM (betas before expression)


def _infer_model_type(arrays: dict, where: str) -> str:
    nj = len(arrays["parents"])
    if arrays.get("model_type"):
        return arrays["model_type"]
    mt = io.JOINTS_TO_MODEL_TYPE.get(nj)
    if mt == "smplh" and "hands_componentsl" not in arrays:
        raise BodyModelFileError(f"{where}: 52 joints (SMPL-H) but no 'hands_componentsl' / 'hands_componentsr'")
    return mt or "custom"


def _split_shape_dirs(shapedirs: np.ndarray, model_type: str):
    """(shape dirs [V, 3, Kb], expression dirs [V, 3, Ke]) following smplx's SMPL-X convention:
    400 columns = 300 shape + 100 expression; fewer (v1.0 files: 20) = 10 shape + 10 expression."""
    if model_type != "smplx":
        return shapedirs, shapedirs[:, :, :0]
    k = shapedirs.shape[-1]
    if k >= 400:
        return shapedirs[:, :, :300], shapedirs[:, :, 300:400]
    if k >= 20:
        return shapedirs[:, :, :10], shapedirs[:, :, 10:20]
    return shapedirs, shapedirs[:, :, :0]


def from_arrays(arrays: dict, where: str = "<arrays>", num_betas: int = 10, num_expression: int = 10,
                use_pca: bool = True, num_pca_comps: int = 6, flat_hand_mean: bool = False,
                model_type: str | None = None, dtype=jnp.float32, extra_regressors: dict | None = None,
                vertex_map=None) -> BodyModel:
    """Builds a `BodyModel` from a dict of numpy arrays in the SMPL file layout (see `hmrjax.body.io`).

    Same arguments as `load`, except that `extra_regressors` values may be [K, V] arrays as well as paths
    and `vertex_map` may be a [V_out, V] array.
    """
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype=float64 needs 64-bit JAX: set jax.config.update('jax_enable_x64', True) "
                         "or use `with jax.enable_x64(True):`")
    a = io.validate_model_arrays(arrays, where)
    stored_type = a["model_type"]
    mt = model_type or _infer_model_type(a, where)
    nj = len(a["parents"])
    if mt in layouts.MODEL_TYPE_LAYOUT:
        expected = layouts.get_layout(layouts.MODEL_TYPE_LAYOUT[mt]).num_joints
        if nj != expected:
            raise BodyModelFileError(f"{where}: model_type {mt!r} needs {expected} joints, the file has {nj} "
                                     f"(kintree_table {a['kintree_table'].shape})")
    if stored_type and model_type and stored_type != model_type:
        raise BodyModelFileError(f"{where}: file says model_type {stored_type!r}, but {model_type!r} was requested")

    shape_dirs, expr_dirs = _split_shape_dirs(a["shapedirs"], mt)
    if num_betas > shape_dirs.shape[-1]:
        raise BodyModelFileError(f"{where}: num_betas={num_betas} but the file has only {shape_dirs.shape[-1]} shape "
                                 f"components (shapedirs {a['shapedirs'].shape})")
    if num_betas < 0:
        raise ValueError(f"num_betas must be >= 0, got {num_betas}")
    n_expr = 0
    if mt == "smplx":
        if num_expression > expr_dirs.shape[-1]:
            raise BodyModelFileError(f"{where}: num_expression={num_expression} but the file has only "
                                     f"{expr_dirs.shape[-1]} expression components (shapedirs {a['shapedirs'].shape})")
        n_expr = num_expression
    basis = np.concatenate([shape_dirs[:, :, :num_betas], expr_dirs[:, :, :n_expr]], axis=-1)  # [V, 3, K]
    nv = a["v_template"].shape[0]
    k = basis.shape[-1]
    shape_basis = basis.transpose(1, 0, 2).reshape(3 * nv, k)  # [3 V, K], rows c * V + v
    j_reg = a["J_regressor"]
    joint_template = j_reg @ a["v_template"]
    joint_shape_basis = np.einsum("jv,vck->kjc", j_reg, basis).reshape(k, nj * 3)
    pose_basis = None
    if "posedirs" in a:
        pose_basis = a["posedirs"].transpose(1, 0, 2).reshape(3 * nv, -1)  # [3 V, 9 (J-1)], rows c * V + v

    # Hands: PCA components and the mean pose (added to hand inputs unless flat_hand_mean).
    pose_mean = np.zeros((nj, 3))
    hand_components = {}
    sides = {"smplh": (("left_hand", "l"), ("right_hand", "r")), "smplx": (("left_hand", "l"), ("right_hand", "r")),
             "mano": (("hand", ""),)}.get(mt, ())
    for side, suffix in sides:
        comp_key, mean_key = f"hands_components{suffix}", f"hands_mean{suffix}"
        if comp_key not in a or mean_key not in a:
            raise BodyModelFileError(f"{where}: missing required key '{comp_key if comp_key not in a else mean_key}' "
                                     f"for a {mt} model")
        if use_pca:
            if not 1 <= num_pca_comps <= a[comp_key].shape[0]:
                raise BodyModelFileError(f"{where}: num_pca_comps={num_pca_comps} but '{comp_key}' has "
                                         f"{a[comp_key].shape[0]} components")
            hand_components[side] = a[comp_key][:num_pca_comps]
        if not flat_hand_mean:
            lo, hi = _PARTS[mt][side]
            pose_mean[lo:hi] = a[mean_key].reshape(15, 3)

    basis_all = shape_basis if pose_basis is None else np.concatenate([shape_basis, pose_basis], axis=1)
    faces = a["f"].astype(np.int32)
    vj_ids, vj_names = (), ()
    if mt in layouts.VERTEX_JOINT_IDS and layouts.VERTEX_JOINT_IDS[mt][0] == nv:
        _, vj_names, vj_ids = layouts.VERTEX_JOINT_IDS[mt]
    lmk_ids, lmk_bary = None, None
    if mt == "smplx" and "lmk_faces_idx" in a:
        lmk_ids = _StaticArray(faces[a["lmk_faces_idx"]])
        lmk_bary = a["lmk_bary_coords"]

    # Keypoint regressors shipped inside the model file (e.g. the Anny asset's `coco17_regressor`) are
    # extras by default, under the name without the suffix; user-given regressors override them.
    shipped = {k[: -len("_regressor")]: arrays[k] for k in arrays
               if k.endswith("_regressor") and k != "J_regressor" and arrays[k] is not None}
    extras = {}
    for name, reg in {**shipped, **(extra_regressors or {})}.items():
        if isinstance(reg, (str, os.PathLike)):
            reg = io.load_regressor(reg, nv, name)
        reg = np.asarray(reg, dtype=np.float64)
        if reg.ndim != 2 or reg.shape[1] != nv:
            raise BodyModelFileError(f"extra regressor {name!r} must be [K, V] with V = {nv}, got {reg.shape}")
        extras[name] = reg

    v_template, weights = a["v_template"], a["weights"]
    vmap_ids = vmap_w = None
    if vertex_map is not None:  # e.g. SMPL-X -> SMPL topology (smplx's smplx2smpl 'matrix' [6890, 10475])
        vmap_ids, vmap_w = _sparse_rows(io.load_vertex_map(vertex_map, nv) if not isinstance(vertex_map, np.ndarray)
                                        else _check_map(vertex_map, nv))
    names = a["joint_names"]
    if names is None:
        lay = layouts.MODEL_TYPE_LAYOUT.get(mt)
        names = layouts.get_layout(lay).joint_names if lay else tuple(f"joint_{i}" for i in range(nj))

    def to(x):
        return None if x is None else jnp.asarray(x, dtype)

    arrays_out = {
        "v_template": to(v_template), "basis": to(basis_all), "joint_template": to(joint_template),
        "joint_shape_basis": to(joint_shape_basis), "weights": to(weights),
        "J_regressor": to(j_reg), "pose_mean": to(pose_mean),
        "hand_components": {k_: to(v) for k_, v in hand_components.items()},
        "lmk_bary_coords": to(lmk_bary), "extra_regressors": {k_: to(v) for k_, v in extras.items()},
        "vertex_map_weights": to(vmap_w),
    }
    static = _Static(model_type=mt, parents=a["parents"], joint_names=tuple(names), num_betas=num_betas,
                     num_expression=n_expr, use_pca=bool(use_pca and hand_components),
                     num_pca_comps=num_pca_comps if hand_components else 0, flat_hand_mean=flat_hand_mean,
                     levels=tree_levels(a["parents"]), faces=_StaticArray(faces), vertex_joint_ids=tuple(vj_ids),
                     vertex_joint_names=tuple(vj_names), lmk_vertex_ids=lmk_ids, num_vertices=nv,
                     vertex_map_ids=None if vmap_ids is None else _StaticArray(vmap_ids),
                     num_pose_basis=0 if pose_basis is None else pose_basis.shape[1])
    return BodyModel(arrays_out, static)


def _check_map(matrix, nv: int) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != nv:
        raise BodyModelFileError(f"vertex_map must be [V_out, V] with V = {nv}, got {matrix.shape}")
    return matrix


def _sparse_rows(matrix: np.ndarray):
    """Dense [V_out, V] map -> (ids [V_out, k] int32, weights [V_out, k]) with k = max non-zeros per row."""
    nnz = (matrix != 0).sum(axis=1)
    k = max(int(nnz.max()), 1)
    ids = np.argsort(-np.abs(matrix), axis=1, kind="stable")[:, :k]
    return ids.astype(np.int32), np.take_along_axis(matrix, ids, axis=1)


def load(path_or_name, num_betas: int = 10, num_expression: int = 10, use_pca: bool = True, num_pca_comps: int = 6,
         flat_hand_mean: bool = False, model_type: str | None = None, gender: str | None = None, dtype=jnp.float32,
         extra_regressors: dict | None = None, vertex_map=None) -> BodyModel:
    """Loads a body model.

    Args:
      path_or_name: a shipped asset name ('anny', 'anny_lite', ...: `hmrjax/body/assets/NAME.npz`), an official
        SMPL / SMPL-H / SMPL-X / MANO `.npz` or `.pkl` file (pickles are read by a restricted unpickler; chumpy
        is not needed), or a folder holding official files (then `model_type` and `gender` pick the file name).
      num_betas: shape coefficients to use (error if the file has fewer).
      num_expression: SMPL-X expression coefficients to use.
      use_pca, num_pca_comps: hand poses as PCA coefficients (SMPL-H / SMPL-X / MANO).
      flat_hand_mean: if False, the file's mean hand pose is added to hand inputs (smplx default).
      model_type: 'smpl' | 'smplh' | 'smplx' | 'mano'; None = from the file (stored type or joint count).
      gender: only used to pick a file inside a folder ('neutral' | 'male' | 'female'; MANO 'right' | 'left').
      dtype: float32 (default) or float64 (needs x64).
      extra_regressors: name -> path of a [K, V] regressor (.npy / .npz, e.g. an H36M J_regressor) or array;
        outputs appear in `BodyOutput.joints_extra[name]`, regressed from the posed vertices.
      vertex_map: path (.npz with 'matrix', or smplx's smplx2smpl.pkl) or array [V_out, V]: re-expresses the
        model on another topology (e.g. SMPL-X -> SMPL vertices); faces must then come from that topology.
    Returns:
      `BodyModel`.
    """
    path = io.resolve_model_path(path_or_name, model_type=model_type, gender=gender)
    arrays = io.read_model_file(path)
    return from_arrays(arrays, str(path), num_betas=num_betas, num_expression=num_expression, use_pca=use_pca,
                       num_pca_comps=num_pca_comps, flat_hand_mean=flat_hand_mean, model_type=model_type,
                       dtype=dtype, extra_regressors=extra_regressors, vertex_map=vertex_map)
