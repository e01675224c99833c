"""The example schema (ARCHITECTURE.md "Example schema") as code: fields, shapes, dtypes, `has_*` flags.

Owns what a decoded source record must look like before the grain pipeline crops and augments it:
`FIELDS` (name -> `Field`), `validate_example(ex, record_id)` (raises `SchemaError` naming the record and
the field), `complete_example(...)` (validated record -> every field present, absent ones zero-filled
with `has_* = 0`), and `decode_image` (encoded JPEG/PNG bytes -> [H, W, 3] uint8).

Conventions (shared with `hmrjax.geometry.camera`)
- `image_size` is (W, H), the same x/y order as `keypoints2d`, `bbox_center` and `focal_length` (fx, fy).
- Pixel coordinates: integer values are pixel centres (OpenCV, as `hmrjax.render`); the principal point
  is (W/2, H/2) unless a record carries `princpt` [2].
- `bbox_scale` is the side of the square crop in pixels (not SPIN's units of 200 px).
- 3D labels are in the OpenCV camera frame (metres); `pose` is model-frame axis-angle, model joint order.

Flags: every optional field `f` has a flag `has_f` (0 or 1). A record may omit the flag (then it is 1
when the field is present and 0 when not) or the field (then the flag must be 0 or absent). Fields
whose flag is 0 are ignored (not validated) and zero-filled by `complete_example`.
"""
from __future__ import annotations

import dataclasses
import io

import numpy as np

__all__ = ["Field", "FIELDS", "REQUIRED", "OPTIONAL", "DENSE_FIELDS", "NUM_KEYPOINTS", "SchemaError",
           "validate_example", "complete_example", "decode_image", "flag_name"]

NUM_KEYPOINTS = 17  # COCO-17


class SchemaError(ValueError):
    """A source record does not match the example schema (the message names the record and the field)."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One schema field.

    Attributes:
      shape: symbolic shape; ints are fixed sizes, letters are sizes fixed per record ('H', 'W': image
        height/width; 'J': model joints; 'K': betas; 'S': heatmap samples).
      kind: 'uint8' (exactly uint8) or 'float' (any floating dtype; converted to float32).
      required: the record must have it.
      label: NaN/inf values are errors (all float fields are labels or geometry).
      doc: meaning and units.
    """

    shape: tuple
    kind: str
    required: bool = False
    doc: str = ""


FIELDS: dict[str, Field] = {
    "image": Field(("H", "W", 3), "uint8", True, "full frame RGB (or encoded JPEG/PNG bytes, decoded here)"),
    "bbox_center": Field((2,), "float", True, "person box centre (x, y), full-frame px"),
    "bbox_scale": Field((), "float", True, "square crop side, px"),
    "focal_length": Field((2,), "float", False, "(fx, fy) px; default sqrt(W^2 + H^2) (CLIFF)"),
    "image_size": Field((2,), "float", False, "(W, H) px; default from the image"),
    "princpt": Field((2,), "float", False, "principal point (cx, cy) px; default (W/2, H/2)"),
    "pose": Field(("J", 3), "float", False, "axis-angle per joint (rad), model joint order"),
    "betas": Field(("K",), "float", False, "shape coefficients"),
    "transl": Field((3,), "float", False, "body-model translation in the camera frame (m)"),
    "joints3d": Field(("J", 3), "float", False, "camera-frame joints (m), model joint order"),
    "keypoints2d": Field((NUM_KEYPOINTS, 3), "float", False, "COCO-17 (x, y) full-frame px + visibility {0, 1}"),
    "depth": Field(("H", "W"), "float", False, "metric depth (m), 0 = background"),
    "mask": Field(("H", "W"), "uint8", False, "person mask {0, 1}"),
    "part_seg": Field(("H", "W"), "uint8", False, "0 = background, 1..P body parts"),
    "pseudo_depth": Field(("H", "W"), "float", False, "relative (affine-ambiguous) scene depth"),
    "heatmap_samples": Field((NUM_KEYPOINTS, "S", 2), "float", False, "2D-detector heatmap samples, full px"),
    "heatmap_conf": Field((NUM_KEYPOINTS,), "float", False, "2D-detector confidence per keypoint"),
    "heatmap_pose": Field((NUM_KEYPOINTS, 3), "float", False,
                          "2D-detector argmax pose: (x, y) full px + confidence (optional with heatmap_samples)"),
}
REQUIRED = tuple(k for k, f in FIELDS.items() if f.required)
OPTIONAL = ("pose", "betas", "transl", "joints3d", "keypoints2d", "depth", "mask", "part_seg", "pseudo_depth",
            "heatmap_samples")  # fields with a has_* flag (heatmap_conf / heatmap_pose go with heatmap_samples)
DENSE_FIELDS = ("depth", "mask", "part_seg", "pseudo_depth")


def flag_name(field: str) -> str:
    return f"has_{field}"


def decode_image(data, record_id) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ...) -> [H, W, 3] uint8; a corrupt file raises `SchemaError`."""
    from PIL import Image
    try:
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        with Image.open(io.BytesIO(raw)) as im:
            im.load()  # forces the full decode: truncated / corrupt data fails here, not later
            return np.asarray(im.convert("RGB"))
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError ... for bad data
        raise SchemaError(f"record {record_id}: field 'image': cannot decode the encoded image "
                          f"({type(err).__name__}: {err})") from err


def _fmt(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _flag(ex, field: str, record_id) -> bool:
    name = flag_name(field)
    if name not in ex:
        return field in ex
    value = np.asarray(ex[name])
    if value.size != 1 or not np.isfinite(value.astype(np.float64)).all() or float(value) not in (0.0, 1.0):
        raise SchemaError(f"record {record_id}: field {name!r} must be a scalar 0 or 1, got {ex[name]!r}")
    if float(value) and field not in ex:
        raise SchemaError(f"record {record_id}: {name} = 1 but field {field!r} is missing")
    return bool(float(value))


def _check_field(ex, name: str, record_id, sizes: dict) -> np.ndarray:
    spec = FIELDS[name]
    value = np.asarray(ex[name])
    if spec.kind == "uint8" and value.dtype != np.uint8:
        raise SchemaError(f"record {record_id}: field {name!r} must be uint8, got {value.dtype}")
    if spec.kind == "float" and not np.issubdtype(value.dtype, np.floating):
        raise SchemaError(f"record {record_id}: field {name!r} must be floating point, got {value.dtype}")
    ok = value.ndim == len(spec.shape)
    if ok:
        for dim, s in zip(value.shape, spec.shape):
            if isinstance(s, int):
                ok &= dim == s
            elif s in sizes:
                ok &= dim == sizes[s]
            else:
                sizes[s] = dim
    if not ok:
        known = tuple(sizes.get(s, s) if isinstance(s, str) else s for s in spec.shape)
        raise SchemaError(f"record {record_id}: field {name!r} must have shape {_fmt(known)} "
                          f"({_fmt(spec.shape)}), got {_fmt(value.shape)}")
    if spec.kind == "float" and not np.isfinite(value).all():
        bad = np.argwhere(~np.isfinite(value))[0]
        raise SchemaError(f"record {record_id}: field {name!r} has a non-finite value "
                          f"({value[tuple(bad)]} at index {tuple(int(i) for i in bad)})")
    return value


def validate_example(ex, record_id, *, num_joints: int | None = None, num_betas: int | None = None) -> dict:
    """Checks one decoded record against the schema; returns {field: array} of the fields in use.

    Args:
      ex: mapping of field name -> numpy array (the image may still be encoded bytes).
      record_id: named in every error (e.g. the source index).
      num_joints, num_betas: expected J and K (None: any).
    Returns:
      dict of the present, flagged-on fields as numpy arrays (image decoded), plus their `has_*` flags
      (floats). Raises `SchemaError` for a missing required field, a wrong shape or dtype, a non-finite
      value, a bad flag, or an `image_size` that disagrees with the image.
    """
    if not hasattr(ex, "keys"):
        raise SchemaError(f"record {record_id}: expected a dict of arrays, got {type(ex).__name__}")
    missing = [k for k in REQUIRED if k not in ex]
    if missing:
        raise SchemaError(f"record {record_id}: missing required field(s) {missing} (has {sorted(ex.keys())})")
    ex = dict(ex)
    image = ex["image"]
    encoded_array = isinstance(image, np.ndarray) and (image.dtype.kind in "SO" or
                                                       (image.ndim == 1 and image.dtype == np.uint8))
    if isinstance(image, (bytes, bytearray, np.bytes_)) or encoded_array:
        if isinstance(image, np.ndarray) and image.dtype.kind == "O":
            image = image.item()
        ex["image"] = decode_image(image, record_id)
    sizes = {"J": num_joints, "K": num_betas}
    sizes = {k: v for k, v in sizes.items() if v is not None}
    out = {}
    for name in ("image", "bbox_center", "bbox_scale", "focal_length", "image_size", "princpt"):
        if name in ex:
            out[name] = _check_field(ex, name, record_id, sizes)
    h, w = out["image"].shape[:2]
    if "image_size" in out and not np.allclose(out["image_size"], (w, h)):
        raise SchemaError(f"record {record_id}: field 'image_size' = {out['image_size'].tolist()} (W, H) does not "
                          f"match the image shape {list(out['image'].shape)} (H, W, 3)")
    if float(out["bbox_scale"]) <= 0:
        raise SchemaError(f"record {record_id}: field 'bbox_scale' must be > 0, got {float(out['bbox_scale'])}")
    if "focal_length" in out and (out["focal_length"] <= 0).any():
        raise SchemaError(f"record {record_id}: field 'focal_length' must be > 0, got {out['focal_length'].tolist()}")
    for field in OPTIONAL:
        on = _flag(ex, field, record_id)
        out[flag_name(field)] = np.float32(on)
        if on:
            out[field] = _check_field(ex, field, record_id, sizes)
            if field == "heatmap_samples":
                if "heatmap_conf" not in ex:
                    raise SchemaError(f"record {record_id}: 'heatmap_samples' given without 'heatmap_conf'")
                out["heatmap_conf"] = _check_field(ex, "heatmap_conf", record_id, sizes)
                if "heatmap_pose" in ex:
                    out["heatmap_pose"] = _check_field(ex, "heatmap_pose", record_id, sizes)
    if "keypoints2d" in out:
        vis = out["keypoints2d"][:, 2]
        if not np.isin(vis, (0.0, 1.0)).all():
            raise SchemaError(f"record {record_id}: field 'keypoints2d' visibility (column 2) must be 0 or 1, "
                              f"got {np.unique(vis).tolist()}")
    return out


def complete_example(valid: dict, *, num_joints: int, num_betas: int, num_samples: int = 0,
                     record_id=None) -> dict:
    """A validated record (`validate_example`'s output) with every field present and float32.

    Absent optional fields are zero-filled (dense maps at the image size) with `has_* = 0`;
    `image_size` defaults to (W, H), `focal_length` to sqrt(W^2 + H^2) (CLIFF), `princpt` to (W/2, H/2).
    `heatmap_samples` is [17, num_samples, 2] (records with another S are an error; num_samples = 0: the
    samples are dropped and `has_heatmap_samples` is 0). `heatmap_pose` [17, 3] is the record's, or, for a
    record with samples but no argmax pose, the per-joint mean of all its samples with `heatmap_conf`.
    """
    h, w = valid["image"].shape[:2]
    out = {"image": valid["image"]}
    size = np.asarray((w, h), np.float32)
    out["image_size"] = size
    out["bbox_center"] = np.asarray(valid["bbox_center"], np.float32)
    out["bbox_scale"] = np.asarray(valid["bbox_scale"], np.float32)
    f = valid.get("focal_length")
    out["focal_length"] = (np.asarray(f, np.float32) if f is not None
                           else np.full(2, np.sqrt(float(w) ** 2 + float(h) ** 2), np.float32))
    out["princpt"] = np.asarray(valid.get("princpt", size / 2), np.float32)
    zeros = {"pose": ((num_joints, 3), np.float32), "betas": ((num_betas,), np.float32),
             "transl": ((3,), np.float32), "joints3d": ((num_joints, 3), np.float32),
             "keypoints2d": ((NUM_KEYPOINTS, 3), np.float32), "depth": ((h, w), np.float32),
             "mask": ((h, w), np.uint8), "part_seg": ((h, w), np.uint8), "pseudo_depth": ((h, w), np.float32),
             "heatmap_samples": ((NUM_KEYPOINTS, num_samples, 2), np.float32)}
    for field, (shape, dtype) in zeros.items():
        flag = flag_name(field)
        out[flag] = np.float32(valid.get(flag, 0.0))
        if field == "heatmap_samples" and num_samples == 0:
            out[flag] = np.float32(0.0)  # not used by this config
        if out[flag]:
            value = np.asarray(valid[field], dtype)
            if value.shape != shape:
                raise SchemaError(f"record {record_id}: field {field!r}: expected shape {list(shape)} (config), got "
                                  f"{list(value.shape)}")
            out[field] = value
        else:
            out[field] = np.zeros(shape, dtype)
    out["heatmap_conf"] = (np.asarray(valid["heatmap_conf"], np.float32) if out["has_heatmap_samples"]
                           else np.zeros(NUM_KEYPOINTS, np.float32))
    if not out["has_heatmap_samples"]:
        out["heatmap_pose"] = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    elif "heatmap_pose" in valid:
        out["heatmap_pose"] = np.asarray(valid["heatmap_pose"], np.float32)
    else:
        mean = np.asarray(valid["heatmap_samples"], np.float32).mean(axis=1)
        out["heatmap_pose"] = np.concatenate([mean, out["heatmap_conf"][:, None]], axis=-1)
    return out
