"""Body-model files: safe reading of official SMPL / SMPL-H / SMPL-X / MANO files, validation, conversion.

Owns the restricted unpickler (official `.pkl` files are python-2 pickles holding `chumpy` objects and a
`scipy.sparse` J_regressor; they are read WITHOUT chumpy and without running arbitrary code), reading
`.pkl` / `.npz` files into plain numpy arrays (`read_model_file`), checking keys and shapes
(`validate_model_arrays`), resolving shipped asset names (`resolve_model_path`) and `convert`, which writes
a clean pickle-free `.npz` that `np.load(..., allow_pickle=False)` can read.

Canonical keys (the SMPL file layout; the free Anny asset is written in this layout too):
  v_template [V, 3], shapedirs [V, 3, K], posedirs [V, 3, 9 (J - 1)] (optional), J_regressor [J, V]
  (dense or sparse in the source), weights [V, J], kintree_table [2, J], f [F, 3];
  SMPL-H / SMPL-X: hands_componentsl/r [C, 45], hands_meanl/r [45]; MANO: hands_components [C, 45],
  hands_mean [45]; SMPL-X: lmk_faces_idx [L], lmk_bary_coords [L, 3] (optional);
  optional metadata written by `convert` / the asset exporter: model_type, joint_names (strings).
"""
from __future__ import annotations

import _compat_pickle
import os
import pathlib
import pickle
from typing import Any

import numpy as np

from hmrjax import fileio

__all__ = [
    "UnsafePickleError",
    "BodyModelFileError",
    "MODEL_SUFFIXES",
    "REQUIRED_KEYS",
    "read_model_file",
    "validate_model_arrays",
    "resolve_model_path",
    "shipped_model_names",
    "convert",
    "load_regressor",
    "load_vertex_map",
]

MODEL_SUFFIXES = (".npz", ".pkl")
REQUIRED_KEYS = ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")
# Joint counts of the official models (used to infer the model type when the file does not say).
JOINTS_TO_MODEL_TYPE = {24: "smpl", 52: "smplh", 55: "smplx", 16: "mano"}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list (possible code execution); nothing was run."""


class BodyModelFileError(ValueError):
    """A body-model file is missing, of an unknown kind, or has missing / mis-shaped fields."""


# ----------------------------------------------------------------------------------------------
# Restricted unpickler
# ----------------------------------------------------------------------------------------------
class _ChumpyStandIn:
    """Stands in for any `chumpy.*` object: records the pickled state; its value is the state's `x`."""

    def __init__(self, *args, **kwargs):  # chumpy objects are rebuilt via __new__/_reconstructor
        self.state = None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        self.state = state


class _SparseStandIn:
    """Stands in for `scipy.sparse.csc_matrix` / `csr_matrix`: records data/indices/indptr/shape only."""

    fmt = "csc"

    def __init__(self, *args, **kwargs):
        self.state = None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        self.state = state

    def to_dense(self, where: str) -> np.ndarray:
        st = self.state if isinstance(self.state, dict) else {}
        try:
            data = np.asarray(st["data"])
            indices = np.asarray(st["indices"], dtype=np.int64)
            indptr = np.asarray(st["indptr"], dtype=np.int64)
            shape = tuple(int(s) for s in st.get("_shape", st.get("shape")))
        except (KeyError, TypeError) as e:
            raise BodyModelFileError(f"{where}: sparse matrix state lacks data/indices/indptr/shape ({e})") from e
        fmt = st.get("format", self.fmt)
        if isinstance(fmt, bytes):
            fmt = fmt.decode("latin1")
        major, minor = (shape[1], shape[0]) if fmt == "csc" else (shape[0], shape[1])
        if len(indptr) != major + 1 or indptr[-1] != len(data) or len(indices) != len(data):
            raise BodyModelFileError(f"{where}: inconsistent {fmt} sparse matrix of shape {shape}")
        if len(indices) and (indices.min() < 0 or indices.max() >= minor):
            raise BodyModelFileError(f"{where}: sparse matrix indices out of range for shape {shape}")
        dense = np.zeros(shape, dtype=np.float64)
        outer = np.repeat(np.arange(major), np.diff(indptr))
        rows, cols = (indices, outer) if fmt == "csc" else (outer, indices)
        np.add.at(dense, (rows, cols), data)
        return dense


class _CsrStandIn(_SparseStandIn):
    fmt = "csr"


def _safe_reconstructor(cls, base, state):
    """`copyreg._reconstructor` restricted to the stand-in classes (protocol 0/1 object pickles)."""
    if cls in (_ChumpyStandIn, _SparseStandIn, _CsrStandIn) and base is object and state is None:
        return cls.__new__(cls)
    raise UnsafePickleError(f"copyreg._reconstructor called with a disallowed class {cls!r}")


def _numpy_global(name: str):
    try:
        from numpy._core import multiarray as ma, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma, numeric
    return {"_reconstruct": ma._reconstruct, "scalar": ma.scalar, "_frombuffer": numeric._frombuffer}[name]


_NUMPY_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")  # protocol-5 array pickles
def _safe_codecs_encode(obj, encoding="utf-8", errors="strict"):
    """`_codecs.encode` as python-3 protocol-2 pickles use it for bytes (str -> bytes only)."""
    if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "utf-8", "ascii"):
        raise UnsafePickleError(f"_codecs.encode called with disallowed arguments ({type(obj).__name__}, {encoding!r})")
    return obj.encode(encoding, errors)


_HARMLESS_BUILTINS = {"set": set, "frozenset": frozenset, "object": object, "complex": complex, "slice": slice}


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` admits only numpy arrays/dtypes/scalars, scipy csc/csr matrices
    (as inert stand-ins), `chumpy.*` (as inert stand-ins) and a few constructor-only builtins."""

    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")
        self._where = where

    def find_class(self, module: str, name: str):
        # Python-2 names (__builtin__, copy_reg, ...) -> python-3 names, as the default find_class does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if module in _NUMPY_MULTIARRAY and name in ("_reconstruct", "scalar"):
            return _numpy_global(name)
        if module in _NUMPY_NUMERIC and name == "_frombuffer":
            return _numpy_global(name)
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix"):
            return _SparseStandIn if name == "csc_matrix" else _CsrStandIn
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return _safe_reconstructor
        if module == "_codecs" and name == "encode":
            return _safe_codecs_encode
        if module in ("builtins", "__builtin__") and name in _HARMLESS_BUILTINS:
            return _HARMLESS_BUILTINS[name]
        raise UnsafePickleError(
            f"{self._where}: refusing to load global '{module}.{name}' from this pickle (only numpy arrays, "
            "scipy.sparse csc/csr matrices and chumpy arrays are allowed in body-model files)"
        )


def _unwrap(value: Any, where: str):
    """Replaces stand-ins by plain numpy arrays (chumpy -> its `x`, sparse -> dense)."""
    if isinstance(value, _ChumpyStandIn):
        st = value.state if isinstance(value.state, dict) else {}
        if "x" not in st:
            raise BodyModelFileError(f"{where}: a chumpy object without a stored value 'x' (a lazy expression)")
        return _unwrap(st["x"], where)
    if isinstance(value, _SparseStandIn):
        return value.to_dense(where)
    return value


def _read_pickle(path: pathlib.Path) -> dict:
    with open(path, "rb") as fh:
        try:
            obj = RestrictedUnpickler(fh, str(path)).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated / not a pickle at all
            raise BodyModelFileError(f"{path}: not a readable body-model pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise BodyModelFileError(f"{path}: expected a pickled dict of arrays, got {type(obj).__name__}")
    return {str(k): _unwrap(v, f"{path}[{k!r}]") for k, v in obj.items()}


def _read_npz(path: pathlib.Path) -> dict:
    out = {}
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:
        raise BodyModelFileError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e
    with npz:
        for key in npz.files:
            try:
                out[key] = npz[key]
            except ValueError:
                # Object arrays (e.g. SMPL-X's 'joint2num' / 'part2num' dicts) need pickle: skip them, the
                # model never needs them. Everything numeric is read without pickle.
                continue
    # Sparse J_regressor stored by `convert` as data/indices/indptr/shape.
    if "J_regressor" not in out and "J_regressor_data" in out:
        sp = _SparseStandIn()
        sp.state = {"data": out.pop("J_regressor_data"), "indices": out.pop("J_regressor_indices"),
                    "indptr": out.pop("J_regressor_indptr"), "_shape": out.pop("J_regressor_shape"),
                    "format": str(out.pop("J_regressor_format", "csr"))}
        out["J_regressor"] = sp.to_dense(f"{path}[J_regressor]")
    return out


def read_model_file(path) -> dict[str, np.ndarray]:
    """Reads a body-model `.npz` or `.pkl` into a dict of plain numpy arrays (no validation of the content).

    `.pkl` files go through `RestrictedUnpickler` (no chumpy needed, no arbitrary code); `.npz` files are
    read with `allow_pickle=False` (object entries are skipped).
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise BodyModelFileError(f"body-model file does not exist: {path}")
    if path.is_dir():
        raise BodyModelFileError(f"{path} is a directory; pass a model file (.npz / .pkl)")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        return _read_pickle(path)
    if suffix == ".npz":
        return _read_npz(path)
    raise BodyModelFileError(f"{path}: unknown body-model file extension {path.suffix!r} (expected one of {MODEL_SUFFIXES})")


def _as_str(value) -> str | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind in "US" and arr.ndim == 0:
        v = arr.item()
        return v.decode("latin1") if isinstance(v, bytes) else str(v)
    return None


def validate_model_arrays(arrays: dict, where: str = "<model>") -> dict:
    """Checks keys, shapes and index ranges; returns a new dict with canonical dtypes.

    Raises `BodyModelFileError` naming the file, the field and the shapes at fault. Output keys:
    the canonical ones (see module docstring) as float64 / int64 arrays, `parents` (tuple, root = -1),
    `model_type` (str or None, as stored) and `joint_names` (tuple or None, as stored), plus the optional
    extras present in the input.
    """
    if not isinstance(arrays, dict) or not any(k in arrays for k in REQUIRED_KEYS):
        raise BodyModelFileError(f"{where}: not a body-model file (none of the keys {REQUIRED_KEYS} found)")
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise BodyModelFileError(f"{where}: missing required key '{key}' (present: {sorted(arrays)})")

    def num(key, ndim, dtype=np.float64):
        try:
            a = np.asarray(arrays[key], dtype=dtype)
        except (TypeError, ValueError) as e:
            raise BodyModelFileError(f"{where}: field '{key}' is not numeric ({e})") from e
        if a.ndim != ndim:
            raise BodyModelFileError(f"{where}: field '{key}' must have {ndim} dims, got shape {a.shape}")
        if not np.all(np.isfinite(a)) and dtype == np.float64:
            raise BodyModelFileError(f"{where}: field '{key}' contains non-finite values")
        return a

    out: dict[str, Any] = {}
    v_template = num("v_template", 2)
    if v_template.shape[1] != 3:
        raise BodyModelFileError(f"{where}: 'v_template' must be [V, 3], got {v_template.shape}")
    nv = v_template.shape[0]
    shapedirs = np.asarray(arrays["shapedirs"], dtype=np.float64)
    if shapedirs.ndim == 2 and shapedirs.shape == (nv, 3):
        shapedirs = shapedirs[:, :, None]
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (nv, 3):
        raise BodyModelFileError(f"{where}: 'shapedirs' must be [V, 3, K] with V = {nv} (v_template {v_template.shape}), "
                                 f"got {shapedirs.shape}")
    kintree = np.asarray(arrays["kintree_table"]).astype(np.int64)
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise BodyModelFileError(f"{where}: 'kintree_table' must be [2, J], got {kintree.shape}")
    nj = kintree.shape[1]
    j_reg = num("J_regressor", 2)
    if j_reg.shape != (nj, nv):
        raise BodyModelFileError(f"{where}: 'J_regressor' must be [J, V] = [{nj}, {nv}] (kintree_table {kintree.shape}, "
                                 f"v_template {v_template.shape}), got {j_reg.shape}")
    weights = num("weights", 2)
    if weights.shape != (nv, nj):
        raise BodyModelFileError(f"{where}: 'weights' must be [V, J] = [{nv}, {nj}]; got weights {weights.shape} "
                                 f"with v_template {v_template.shape} and kintree_table {kintree.shape}")
    faces = np.asarray(arrays["f"])
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
        raise BodyModelFileError(f"{where}: 'f' must be an integer [F, 3] array, got {faces.shape} {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise BodyModelFileError(f"{where}: 'f' has vertex indices outside [0, {nv}) (min {faces.min()}, max {faces.max()})")

    # Parents: the root's entry is -1 or uint32 max (4294967295) in the official files.
    ids = kintree[1]
    if not np.array_equal(ids, np.arange(nj)):
        raise BodyModelFileError(f"{where}: 'kintree_table[1]' must be 0..J-1 in order, got {ids[:8]}...")
    parents = kintree[0].copy()
    parents[(parents < 0) | (parents >= nj)] = -1
    parents[0] = -1
    for j in range(1, nj):
        if parents[j] < 0 or parents[j] >= j:
            raise BodyModelFileError(f"{where}: 'kintree_table' parent of joint {j} is {kintree[0, j]}; parents must "
                                     "precede their children (root first)")

    out.update(v_template=v_template, shapedirs=shapedirs, J_regressor=j_reg, weights=weights,
               kintree_table=np.stack([parents, np.arange(nj)]), f=faces, parents=tuple(int(p) for p in parents))
    if arrays.get("posedirs") is not None:
        posedirs = np.asarray(arrays["posedirs"], dtype=np.float64)
        if posedirs.ndim == 2 and posedirs.shape[0] == nv * 3:  # already flattened [V*3, P]
            posedirs = posedirs.reshape(nv, 3, -1)
        if posedirs.shape != (nv, 3, 9 * (nj - 1)):
            raise BodyModelFileError(f"{where}: 'posedirs' must be [V, 3, 9 (J - 1)] = [{nv}, 3, {9 * (nj - 1)}], "
                                     f"got {posedirs.shape}")
        out["posedirs"] = posedirs
    for side in ("l", "r", ""):
        comp_key, mean_key = f"hands_components{side}", f"hands_mean{side}"
        if comp_key in arrays:
            comp = num(comp_key, 2)
            if comp.shape[1] != 45:
                raise BodyModelFileError(f"{where}: '{comp_key}' must be [C, 45], got {comp.shape}")
            out[comp_key] = comp
        if mean_key in arrays:
            mean = np.asarray(arrays[mean_key], dtype=np.float64).reshape(-1)
            if mean.shape != (45,):
                raise BodyModelFileError(f"{where}: '{mean_key}' must have 45 values, got {np.shape(arrays[mean_key])}")
            out[mean_key] = mean
    if "lmk_faces_idx" in arrays and "lmk_bary_coords" in arrays:
        idx = np.asarray(arrays["lmk_faces_idx"]).astype(np.int64).reshape(-1)
        bary = np.asarray(arrays["lmk_bary_coords"], dtype=np.float64)
        if bary.shape != (idx.shape[0], 3):
            raise BodyModelFileError(f"{where}: 'lmk_bary_coords' must be [L, 3] with L = {idx.shape[0]} "
                                     f"(lmk_faces_idx), got {bary.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(faces)):
            raise BodyModelFileError(f"{where}: 'lmk_faces_idx' out of range for {len(faces)} faces")
        out["lmk_faces_idx"], out["lmk_bary_coords"] = idx, bary
    out["model_type"] = _as_str(arrays.get("model_type"))
    names = arrays.get("joint_names")
    if names is not None:
        names = tuple(str(n) for n in np.asarray(names).reshape(-1))
        if len(names) != nj:
            raise BodyModelFileError(f"{where}: 'joint_names' has {len(names)} names for {nj} joints")
    out["joint_names"] = names
    return out


# ----------------------------------------------------------------------------------------------
# Names and paths
# ----------------------------------------------------------------------------------------------
def _assets_dir():
    import importlib.resources

    return importlib.resources.files("hmrjax.body") / "assets"


def shipped_model_names() -> list[str]:
    """Names of the body models shipped in `hmrjax/body/assets/` (`NAME.npz`)."""
    try:
        return sorted(p.name[:-4] for p in _assets_dir().iterdir() if p.name.endswith(".npz"))
    except (FileNotFoundError, NotADirectoryError):
        return []


_DIR_FILE_PREFIX = {"smpl": "SMPL", "smplh": "SMPLH", "smplx": "SMPLX", "mano": "MANO"}


def resolve_model_path(path_or_name, model_type: str | None = None, gender: str | None = None) -> pathlib.Path:
    """Turns a shipped name (`"anny"`), a model file or a folder of official files into a file path.

    A folder is searched like smplx does: `DIR/[model_type/]PREFIX_GENDER.{npz,pkl}` with PREFIX one of
    SMPL / SMPLH / SMPLX / MANO (MANO uses RIGHT / LEFT for the gender) and gender defaulting to NEUTRAL
    (RIGHT for MANO).
    """
    text = os.fspath(path_or_name)
    looks_like_name = os.sep not in text and "/" not in text and not pathlib.Path(text).suffix
    if looks_like_name and not pathlib.Path(text).exists():
        asset = _assets_dir() / f"{text}.npz"
        if asset.is_file():
            return pathlib.Path(str(asset))
        names = shipped_model_names()
        raise BodyModelFileError(
            f"unknown body model {text!r}: not a file path and not a shipped asset (hmrjax/body/assets/{text}.npz). "
            f"Shipped names: {names if names else 'none installed'}"
        )
    path = pathlib.Path(text).expanduser()
    if not path.exists():
        raise BodyModelFileError(f"body-model file does not exist: {path}")
    if path.is_dir():
        if model_type not in _DIR_FILE_PREFIX:
            raise BodyModelFileError(f"{path} is a directory: pass a model file, or model_type= one of "
                                     f"{sorted(_DIR_FILE_PREFIX)} to pick the official file name in it")
        g = (gender or ("right" if model_type == "mano" else "neutral")).upper()
        tried = []
        for folder in (path / model_type, path):
            for ext in MODEL_SUFFIXES:
                cand = folder / f"{_DIR_FILE_PREFIX[model_type]}_{g}{ext}"
                tried.append(str(cand))
                if cand.is_file():
                    return cand
        raise BodyModelFileError(f"no {model_type} model file in {path}; tried: {tried}")
    return path


def load_regressor(path, num_vertices: int, name: str = "regressor") -> np.ndarray:
    """Reads an extra joint regressor `[K, V]` from `.npy` / `.npz` (first array, or key `J_regressor`)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise BodyModelFileError(f"extra regressor {name!r}: file does not exist: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            reg = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                key = "J_regressor" if "J_regressor" in npz.files else npz.files[0]
                reg = npz[key]
        else:
            raise BodyModelFileError(f"extra regressor {name!r}: {path} must be .npy or .npz")
    except BodyModelFileError:
        raise
    except Exception as e:
        raise BodyModelFileError(f"extra regressor {name!r}: cannot read {path} ({type(e).__name__}: {e})") from e
    reg = np.asarray(reg, dtype=np.float64)
    if reg.ndim != 2 or reg.shape[1] != num_vertices:
        raise BodyModelFileError(f"extra regressor {name!r} in {path} must be [K, V] with V = {num_vertices}, got {reg.shape}")
    return reg


def load_vertex_map(path, num_vertices: int) -> np.ndarray:
    """Reads a vertex map [V_out, V] (smplx's `smplx2smpl.pkl` layout: key 'matrix'; or an .npz / .npy)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise BodyModelFileError(f"vertex_map: file does not exist: {path}")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        data = _read_pickle(path)
    elif suffix == ".npz":
        data = _read_npz(path)
    elif suffix == ".npy":
        data = {"matrix": np.load(path, allow_pickle=False)}
    else:
        raise BodyModelFileError(f"vertex_map: {path} must be .pkl, .npz or .npy")
    if "matrix" not in data:
        raise BodyModelFileError(f"vertex_map: {path} has no key 'matrix' (present: {sorted(data)})")
    matrix = np.asarray(data["matrix"], dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != num_vertices:
        raise BodyModelFileError(f"vertex_map: 'matrix' in {path} must be [V_out, V] with V = {num_vertices}, "
                                 f"got {matrix.shape}")
    return matrix


# ----------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------
def _to_plain(value):
    """Plain numpy array (numeric or '<U' strings) or None when the value cannot be stored without pickle."""
    if isinstance(value, (str, bytes)):
        return np.asarray(value.decode("latin1") if isinstance(value, bytes) else value, dtype=str)
    try:
        arr = np.asarray(value)
    except Exception:
        return None
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "latin1").astype(str)
    if arr.dtype.kind in "biufcU":
        return arr
    return None


def write_npz_atomic(dst, arrays: dict) -> pathlib.Path:
    """Writes `arrays` to `dst` (.npz, compressed) through a temporary file in the same folder + `os.replace`."""
    dst = pathlib.Path(dst)
    if dst.suffix.lower() != ".npz":
        raise BodyModelFileError(f"destination must end in .npz, got {dst}")
    return fileio.savez(dst, arrays, compressed=True)


def convert(src, dst, model_type: str | None = None) -> pathlib.Path:
    """Converts an official `.pkl` / `.npz` body model into a clean pickle-free `.npz`.

    Every stored entry is a plain numpy array (numbers, or '<U' strings); chumpy values become arrays and a
    sparse J_regressor is densified. Entries that cannot be stored without pickle (e.g. SMPL-X's
    'joint2num' dict) are dropped. `model_type` (inferred from the joint count when not given) and the file
    is validated first, so a broken source never produces an output. Written via temp file + `os.replace`.

    Returns the destination path.
    """
    src_path = resolve_model_path(src)
    raw = read_model_file(src_path)
    valid = validate_model_arrays(raw, str(src_path))
    out = {}
    for key, value in raw.items():
        plain = _to_plain(value)
        if plain is not None:
            out[key] = plain
    # Canonical, validated versions of the core fields (dense J_regressor, parents with root = -1).
    for key in ("v_template", "shapedirs", "J_regressor", "weights"):
        out[key] = np.asarray(valid[key])
    out["kintree_table"] = np.asarray(valid["kintree_table"], dtype=np.int64)
    out["f"] = np.asarray(valid["f"], dtype=np.int64)
    if "posedirs" in valid:
        out["posedirs"] = valid["posedirs"]
    mt = model_type or valid["model_type"] or JOINTS_TO_MODEL_TYPE.get(len(valid["parents"]))
    if mt is not None:
        out["model_type"] = np.asarray(mt, dtype=str)
    return write_npz_atomic(dst, out)
