"""PyTorch checkpoint import for the backbones: state_dict -> Flax variables, and a torch-free .safetensors reader.

Owns: `load_torch_weights`, `convert_state_dict`, `convert_checkpoint` (CLI entry), `read_state_dict`,
`read_safetensors` / `write_safetensors`, `save_variables` / `load_variables`.

Key rule: a Flax path maps to a PyTorch key by turning `_<digits>` in module names into `.<digits>`
(`stage2_0/fuse_layers_1_0_0_0/kernel` -> `stage2.0.fuse_layers.1.0.0.0.weight`), because the backbones
name their submodules after the torch `state_dict`. Leaves: conv kernel OIHW -> HWIO (also used for
ConvTranspose, whose torch [in, out, kh, kw] weight becomes Flax's transposed-kernel [kh, kw, out, in]),
linear (out, in) -> (in, out), BN/LN weight -> scale, BN running_mean/var -> the `batch_stats`
collection; the fused `qkv` projection stays fused (same q, k, v order as timm).
Layouts: timm (ResNet, HRNet, ViT), torchvision ResNet, official HRNet (classification and pose repos:
same names), ViTPose/mmpose (`backbone.` prefix, `last_norm`, `keypoint_head.deconv_layers`).
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from hmrjax import fileio

__all__ = ["load_torch_weights", "convert_state_dict", "convert_checkpoint", "read_state_dict",
           "read_safetensors", "write_safetensors", "save_variables", "load_variables",
           "flax_to_torch_key", "expected_torch_layout", "WeightImportError", "ConversionReport"]

_IGNORED_SUFFIXES = ("num_batches_tracked",)
# Classification / pose heads that a backbone-only model may legitimately not have.
_HEAD_PATTERNS = (r"^fc\.", r"^head\.", r"^classifier\.", r"^incre_modules\.", r"^downsamp_modules\.",
                  r"^final_layer\.", r"^keypoint_head\.", r"^fc_norm\.")


class WeightImportError(ValueError):
    """Raised when a checkpoint does not fit the model; the message lists every offending key."""


@dataclass
class ConversionReport:
    """What a conversion did: keys filled, dropped (known heads), unexpected, missing, mis-shaped."""

    filled: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, expected torch shape, got

    def error_message(self) -> str:
        lines = []
        if self.missing:
            lines.append(f"{len(self.missing)} model parameters have no checkpoint entry (missing): "
                         + ", ".join(self.missing))
        if self.unexpected:
            lines.append(f"{len(self.unexpected)} checkpoint entries match no model parameter (unexpected): "
                         + ", ".join(self.unexpected))
        for k, exp, got in self.mismatched:
            hint = ""
            if k.endswith("pos_embed") and len(got) == 3:
                n = got[1] - 1
                r = int(round(n ** 0.5))
                hint = (f" (the checkpoint's position grid has {got[1]} slots; build the ViT with the matching "
                        f"pos_grid, e.g. ({r}, {r}) if square)") if r * r == n else ""
            lines.append(f"shape mismatch for {k}: model expects torch shape {tuple(exp)}, checkpoint has "
                         f"{tuple(got)}{hint}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# safetensors (no torch): 8-byte little-endian header length, JSON header, raw little-endian tensor bytes.
_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NP_TO_ST = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
             np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
             np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 stored as uint16 bit patterns -> float32 (the upper half of the float32 word)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a .safetensors file into numpy arrays (BF16 is widened to float32). No torch needed."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise WeightImportError(f"{path}: too short for a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise WeightImportError(f"{path}: header length {n} exceeds the file size {len(data)}")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightImportError(f"{path}: safetensors header is not valid JSON ({e})") from None
    buf = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info.get("dtype")
        if dt not in _ST_DTYPES:
            raise WeightImportError(f"{path}: tensor {name!r} has unsupported dtype {dt!r}")
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(o) for o in info["data_offsets"])
        np_dt = np.dtype(_ST_DTYPES[dt]).newbyteorder("<")
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= begin <= end <= len(buf)) or end - begin != count * np_dt.itemsize:
            raise WeightImportError(f"{path}: tensor {name!r} ({dt}, shape {shape}) has bad data_offsets "
                                    f"[{begin}, {end}] for a {len(buf)}-byte buffer")
        arr = np.frombuffer(buf[begin:end], dtype=np_dt).reshape(shape)
        arr = bf16_to_float32(arr) if dt == "BF16" else arr.astype(np_dt.newbyteorder("="))
        out[name] = arr
    return out


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None) -> None:
    """Write numpy arrays as .safetensors (atomic: temp file then rename). Used by tests and tools."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype not in _NP_TO_ST:
            raise ValueError(f"write_safetensors: unsupported dtype {a.dtype} for {name!r}")
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _NP_TO_ST[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    fileio.write_bytes(path, struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


# ----------------------------------------------------------------------------------------------------------
def _unwrap(sd: Mapping) -> Mapping:
    """Unwrap {'state_dict': ...} / {'model': ...} checkpoint containers (mmpose, HRNet repos)."""
    for key in ("state_dict", "model", "model_state", "module"):
        inner = sd.get(key) if hasattr(sd, "get") else None
        if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
            return _unwrap(inner)
    return sd


def read_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Load a state_dict as {name: numpy array}.

    source: a Mapping of arrays/tensors, a `.safetensors` file (read without torch), a `.npz`, or a
    `.pth`/`.pt`/`.bin`/`.ckpt` file (needs torch; loaded with `weights_only=True`).
    """
    if isinstance(source, Mapping):
        sd = _unwrap(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".safetensors":
            sd = read_safetensors(path)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                sd = {k: z[k] for k in z.files}
        else:
            try:
                import torch
            except ImportError:
                raise WeightImportError(f"{path}: reading a PyTorch pickle needs torch; install torch or convert "
                                        "the checkpoint to .safetensors") from None
            sd = _unwrap(torch.load(path, map_location="cpu", weights_only=True))
    out = {}
    for k, v in sd.items():
        if hasattr(v, "detach"):  # torch tensor
            v = v.detach().cpu()
            if str(v.dtype) == "torch.bfloat16":
                v = v.float()
            v = v.numpy()
        out[str(k)] = np.asarray(v)
    return out


def flax_to_torch_key(path: Iterable[str], collection: str) -> tuple[str, str]:
    """Map a Flax variable path to (torch key, transform), transform in {'conv', 'linear', 'copy'}."""
    path = list(path)
    *mods, leaf = path
    mods = [re.sub(r"_(\d+)", r".\1", m) for m in mods]
    if collection == "batch_stats":
        name = {"mean": "running_mean", "var": "running_var"}[leaf]
        return ".".join(mods + [name]), "copy"
    if leaf == "kernel":
        return ".".join(mods + ["weight"]), "kernel"
    if leaf == "scale":
        return ".".join(mods + ["weight"]), "copy"
    return ".".join(mods + [leaf]), "copy"


def _torch_shape(flax_shape: tuple, transform: str) -> tuple:
    if transform == "kernel" and len(flax_shape) == 4:
        h, w, i, o = flax_shape
        return (o, i, h, w)
    if transform == "kernel" and len(flax_shape) == 2:
        return tuple(reversed(flax_shape))
    return tuple(flax_shape)


def _from_torch(a: np.ndarray, transform: str, ndim: int) -> np.ndarray:
    if transform == "kernel" and ndim == 4:
        return np.transpose(a, (2, 3, 1, 0))
    if transform == "kernel" and ndim == 2:
        return a.T
    return a


def _flatten(tree: Mapping, prefix=()) -> dict[tuple, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def _unflatten(flat: Mapping[tuple, Any]) -> dict:
    tree: dict = {}
    for path, v in flat.items():
        d = tree
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = v
    return tree


def _model_and_shapes(model, input_shape=None):
    """Resolve an arch name to a Module and get its variable shapes via jax.eval_shape (no allocation)."""
    import jax
    import jax.numpy as jnp

    if isinstance(model, str):
        from hmrjax.nn.backbones import create
        model = create(model)
    shape = input_shape or (1, 64, 64, 3)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape, jnp.float32)))
    return model, shapes


def expected_torch_layout(model, input_shape=None) -> dict[str, tuple]:
    """{torch key: torch shape} the model expects (arch name or Module), BN running stats included."""
    _, shapes = _model_and_shapes(model, input_shape)
    return expected_torch_layout_from_shapes(shapes)


def expected_torch_layout_from_shapes(shapes) -> dict[str, tuple]:
    """{torch key: torch shape} for a variables shape tree from `jax.eval_shape(model.init, ...)`."""
    out = {}
    for col in ("params", "batch_stats"):
        for path, leaf in _flatten(shapes.get(col, {})).items():
            key, tr = flax_to_torch_key(path, col)
            out[key] = _torch_shape(tuple(leaf.shape), tr)
    return out


def _normalise_keys(sd: dict[str, np.ndarray], expected: Iterable[str]) -> dict[str, np.ndarray]:
    """Strip DataParallel 'module.' and (for a bare backbone) ViTPose's 'backbone.' prefix; last_norm -> norm."""
    expected = set(expected)
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    wants_backbone = any(k.startswith("backbone.") for k in expected)
    if not wants_backbone and any(k.startswith("backbone.") for k in sd):
        sd = {(k[len("backbone."):] if k.startswith("backbone.") else k): v for k, v in sd.items()}
    return {re.sub(r"(^|\.)last_norm\.", r"\1norm.", k): v for k, v in sd.items()}


def convert_state_dict(model, state_dict: Mapping[str, np.ndarray], *, strict: bool = True,
                       init_variables: Mapping | None = None, drop_unused_heads: bool = True,
                       input_shape=None) -> tuple[dict, ConversionReport]:
    """Convert a torch-layout state_dict into Flax variables for `model` (a Module or arch name).

    strict: every model parameter must be filled and every checkpoint entry used (except
      `num_batches_tracked` and, with `drop_unused_heads`, classification/pose heads the model lacks);
      shape mismatches are always errors. With strict=False, missing entries keep their values from
      `init_variables` (required then) and unexpected entries are ignored (listed in the report).
    Returns ({'params': ..., 'batch_stats': ...} as float32 numpy arrays, ConversionReport).
    """
    model, shapes = _model_and_shapes(model, input_shape)
    sd = _normalise_keys(dict(state_dict), expected_torch_layout_from_shapes(shapes))
    report = ConversionReport()
    used, _filled_from_init = set(), set()
    flat_init = {}
    if init_variables is not None:
        for col in ("params", "batch_stats"):
            flat_init.update({(col,) + p: v for p, v in _flatten(init_variables.get(col, {})).items()})
    out = {}
    for col in ("params", "batch_stats"):
        for path, leaf in _flatten(shapes.get(col, {})).items():
            key, tr = flax_to_torch_key(path, col)
            want = _torch_shape(tuple(leaf.shape), tr)
            if key not in sd:
                report.missing.append(key)
                if (col,) + path in flat_init:
                    out[(col,) + path] = np.asarray(flat_init[(col,) + path], np.float32)
                    _filled_from_init.add(key)
                continue
            used.add(key)
            got = tuple(np.shape(sd[key]))
            if got != want:
                report.mismatched.append((key, want, got))
                continue
            out[(col,) + path] = np.ascontiguousarray(_from_torch(np.asarray(sd[key]), tr, len(want)),
                                                      dtype=np.float32)
            report.filled.append(key)
    for k in sd:
        if k in used or k.endswith(_IGNORED_SUFFIXES):
            continue
        if drop_unused_heads and any(re.match(p, k) for p in _HEAD_PATTERNS):
            report.dropped.append(k)
        else:
            report.unexpected.append(k)
    name = type(model).__name__
    if report.mismatched or (strict and (report.missing or report.unexpected)):
        raise WeightImportError(f"checkpoint does not fit {name}:\n" + report.error_message())
    unfilled = [k for k in report.missing if k not in _filled_from_init]
    if unfilled:
        raise WeightImportError(f"checkpoint does not fit {name} (strict=False needs init_variables holding "
                                f"the missing entries):\n" + report.error_message())
    return _unflatten(out), report


def load_torch_weights(model, source, *, strict: bool = True, init_variables: Mapping | None = None,
                       drop_unused_heads: bool = True, input_shape=None) -> dict:
    """Load a PyTorch checkpoint into Flax variables {'params', 'batch_stats'} for `model`.

    model: a backbone Module or an arch name from `hmrjax.nn.backbones.ARCHS` (e.g. 'resnet50',
      'hrnet_w48', 'vit_base_patch16_224', 'vitpose_base').
    source: path to .pth/.pt (torch, weights_only=True), .safetensors (no torch), .npz, or a dict of arrays.
    See `convert_state_dict` for `strict` / `init_variables` / `drop_unused_heads`.
    """
    variables, _ = convert_state_dict(model, read_state_dict(source), strict=strict,
                                      init_variables=init_variables, drop_unused_heads=drop_unused_heads,
                                      input_shape=input_shape)
    return variables


# ----------------------------------------------------------------------------------------------------------
def save_variables(variables: Mapping, dst: str | os.PathLike) -> None:
    """Write Flax variables to .npz (keys 'params/a/b/kernel') or .msgpack (flax serialization), atomically."""
    dst = Path(dst)
    if dst.suffix == ".npz":
        flat = {"/".join(p): np.asarray(v) for p, v in _flatten(variables).items()}
        fileio.savez(dst, flat)
    elif dst.suffix == ".msgpack":
        from flax import serialization
        fileio.write_bytes(dst, serialization.msgpack_serialize(
            {k: {"/".join(p): np.asarray(v) for p, v in _flatten(t).items()} for k, t in variables.items()}))
    else:
        raise ValueError(f"save_variables: destination must end in .npz or .msgpack, got {dst}")


def load_variables(src: str | os.PathLike) -> dict:
    """Read variables written by `save_variables` back into a nested dict of numpy arrays."""
    src = Path(src)
    if src.suffix == ".npz":
        with np.load(src, allow_pickle=False) as z:
            return _unflatten({tuple(k.split("/")): z[k] for k in z.files})
    if src.suffix == ".msgpack":
        from flax import serialization
        raw = serialization.msgpack_restore(src.read_bytes())
        return {col: _unflatten({tuple(k.split("/")): np.asarray(v) for k, v in t.items()}) for col, t in raw.items()}
    raise ValueError(f"load_variables: expected a .npz or .msgpack file, got {src}")


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, arch: str, *, strict: bool = True,
                       **model_kwargs) -> ConversionReport:
    """CLI entry: convert the PyTorch checkpoint `src` for backbone `arch` and write `dst` (.npz / .msgpack).

    With strict=False, entries missing from the checkpoint are filled from a fresh init (seed 0).
    Returns the ConversionReport (the CLI can print counts of filled / dropped / unexpected keys).
    """
    import jax
    import jax.numpy as jnp

    from hmrjax.nn.backbones import create

    model = create(arch, **model_kwargs)
    init = None
    if not strict:
        init = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3), jnp.float32)))()
    variables, report = convert_state_dict(model, read_state_dict(src), strict=strict, init_variables=init)
    save_variables(variables, dst)
    return report
