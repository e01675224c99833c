"""Writes random but plausible body-model files in each official key layout (SMPL, SMPL-H, SMPL-X, MANO).

No licensed model is needed: sizes and kinematic trees are the official ones (kintree parents transcribed
from the released SMPL / SMPL-H / SMPL-X / MANO files' `kintree_table`, as also listed in smplx's docs), the
values are random: v_template a blob, small shape / pose blend shapes, sparse non-negative J_regressor rows
that sum to 1, skinning weights rows that sum to 1. Files: `.npz` (as released for SMPL-H / SMPL-X) and a
python-2 style `.pkl` holding fake `chumpy.ch.Ch` objects and a scipy csc J_regressor (as released for
SMPL / MANO), written with a temporary stand-in `chumpy` module that is removed afterwards.
"""
from __future__ import annotations

import contextlib
import pathlib
import pickle
import sys
import types

import numpy as np
import scipy.sparse

# Parents transcribed from the official files (independent of hmrjax.body.layouts on purpose).
_BODY = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
_LH_SMPLH = [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]
_RH_SMPLH = [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50]
_LH_SMPLX = [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
_RH_SMPLX = [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
PARENTS = {
    "smpl": _BODY + [20, 21],
    "smplh": _BODY + _LH_SMPLH + _RH_SMPLH,
    "smplx": _BODY + [15, 15, 15] + _LH_SMPLX + _RH_SMPLX,
    "mano": [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14],
}
NUM_VERTICES = {"smpl": 6890, "smplh": 6890, "smplx": 10475, "mano": 778}
# Shape columns of the released files: SMPL v1.0 10 (v1.1: 300), SMPL-H 16, SMPL-X v1.0 20 (10 + 10 expr), MANO 10.
NUM_SHAPE = {"smpl": 10, "smplh": 16, "smplx": 20, "mano": 10}
FILE_NAMES = {"smpl": "SMPL_NEUTRAL", "smplh": "SMPLH_NEUTRAL", "smplx": "SMPLX_NEUTRAL", "mano": "MANO_RIGHT"}


def make_model_arrays(model_type: str, num_vertices: int | None = None, num_shape: int | None = None,
                      seed: int = 0, posedirs: bool = True, num_landmarks: int = 51) -> dict:
    """Random arrays in the official key layout of `model_type` (float64, like the released files)."""
    rng = np.random.default_rng(seed)
    parents = np.asarray(PARENTS[model_type])
    nj = len(parents)
    nv = num_vertices or NUM_VERTICES[model_type]
    ns = num_shape or NUM_SHAPE[model_type]
    scale = 0.1 if model_type == "mano" else 1.0
    v_template = rng.normal(size=(nv, 3)) * np.array([0.25, 0.6, 0.12]) * scale
    # Joints: J_regressor rows = normalised positive weights on the 8 vertices nearest a random vertex.
    centres = v_template[rng.choice(nv, nj, replace=False)]
    d2 = ((v_template[None] - centres[:, None]) ** 2).sum(-1)  # [J, V]
    near = np.argsort(d2, axis=1)[:, :8]
    j_reg = np.zeros((nj, nv))
    w = rng.uniform(0.1, 1.0, size=near.shape)
    np.put_along_axis(j_reg, near, w / w.sum(1, keepdims=True), axis=1)
    # Skinning weights: the 4 nearest joint centres, softmax of negative distance.
    dj = np.sqrt(d2.T)  # [V, J]
    nearest = np.argsort(dj, axis=1)[:, :4]
    logits = -np.take_along_axis(dj, nearest, axis=1) / (0.05 * scale)
    soft = np.exp(logits - logits.max(1, keepdims=True))
    weights = np.zeros((nv, nj))
    np.put_along_axis(weights, nearest, soft / soft.sum(1, keepdims=True), axis=1)
    faces = np.stack([rng.choice(nv, 3, replace=False) for _ in range(min(2 * nv, 4000))]).astype(np.uint32)
    kintree = np.stack([parents, np.arange(nj)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # as in the official files (uint32 -1)
    arrays = {
        "v_template": v_template,
        "shapedirs": rng.normal(size=(nv, 3, ns)) * 0.01 * scale,
        "J_regressor": j_reg,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    if posedirs:
        arrays["posedirs"] = rng.normal(size=(nv, 3, 9 * (nj - 1))) * 0.005 * scale
    if model_type in ("smplh", "smplx"):
        for side in "lr":
            arrays[f"hands_components{side}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
            arrays[f"hands_mean{side}"] = rng.normal(size=45) * 0.2
    if model_type == "mano":
        arrays["hands_components"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
        arrays["hands_mean"] = rng.normal(size=45) * 0.2
    if model_type == "smplx":
        arrays["lmk_faces_idx"] = rng.choice(len(faces), num_landmarks, replace=False).astype(np.int64)
        bary = rng.uniform(0.05, 1.0, size=(num_landmarks, 3))
        arrays["lmk_bary_coords"] = bary / bary.sum(1, keepdims=True)
    return arrays


def write_npz(path, arrays: dict) -> pathlib.Path:
    path = pathlib.Path(path)
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


@contextlib.contextmanager
def fake_chumpy():
    """Registers a stand-in `chumpy` / `chumpy.ch` module (class `Ch` holding `x`) and removes it after."""
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            # The instance state chumpy's Ch.__getstate__ pickles: its __dict__ minus _parents / _cache.
            self.x = np.asarray(x)
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense, self._make_sparse = False, False

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch, pkg.ch, pkg.Ch = Ch, mod, Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
    try:
        yield Ch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def write_chumpy_pkl(path, arrays: dict, protocol: int = 2) -> pathlib.Path:
    """Writes `arrays` as the released SMPL / MANO `.pkl` do: chumpy arrays, sparse csc J_regressor, py2 protocol."""
    path = pathlib.Path(path)
    with fake_chumpy() as Ch:
        data = {}
        for k, v in arrays.items():
            if k == "J_regressor":
                data[k] = scipy.sparse.csc_matrix(v)
            elif k in ("v_template", "shapedirs", "posedirs", "J", "weights"):
                data[k] = Ch(v)
            else:
                data[k] = v
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=protocol)
    return path


def write_official(folder, model_type: str, **kwargs) -> pathlib.Path:
    """Writes `FOLDER/<NAME>.npz` (smplx-style file name) and returns its path."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return write_npz(folder / f"{FILE_NAMES[model_type]}.npz", make_model_arrays(model_type, **kwargs))
