"""Per-vertex body-part labels from skinning weights: the 24 SMPL parts and the 22-part SMPL-X body grouping.

Owns the part schemes (`PART_NAMES`, `NUM_PARTS`), the joint -> group tables, `part_labels(body, scheme)`,
`face_part_labels` (for rasterised part-id images) and the body-model field lookup `body_field` shared with
`keypoints` and `geometry.mesh.build_coarse_levels_for`.

Label images (the `part_seg` field of a dataset example) use 0 for background and `part + 1` for parts, so a
scheme with P parts gives values 0..P; `NUM_CLASSES[scheme] = P + 1`.

Schemes
- "smpl24": one part per SMPL joint, in SMPL joint order (`layouts.SMPL24`); a vertex belongs to the joint
  with the largest skinning weight. For SMPL-H / SMPL-X / MANO-style skeletons with more joints, see below.
- "smplx22": the SMPL-X body joints 0..21 (`layouts.SMPLX22` order): hand and finger joints merge into
  their wrist (SMPL 'left_hand' 22 -> 'left_wrist' 20; SMPL-H / SMPL-X fingers -> wrist) and SMPL-X 'jaw'
  and the eyes merge into 'head'. This is the 22-part body segmentation D-PoSE supervises
  (github.com/nvasilik/D-PoSE: `part-segm.json`, n_parts = 22): Meshcapade's SMPL-X vertex segmentation
  with 'leftEye'/'rightEye'/'eyeballs' in 'head' and 'leftHandIndex1'/'rightHandIndex1' in the hands,
  i.e. exactly the 22 body joints. D-PoSE orders its labels by that file's keys;
  `SMPLX22_TO_DPOSE` converts our labels to that order. Our labels come from skinning weights (argmax,
  then grouped), not from Meshcapade's hand-painted file, so borders differ slightly.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hmrjax.body import layouts

__all__ = ["SCHEMES", "PART_NAMES", "NUM_PARTS", "NUM_CLASSES", "BACKGROUND", "SMPL24_TO_SMPLX22",
           "SMPLH52_TO_SMPLX22", "SMPLX55_TO_SMPLX22", "SMPLX22_BODY_PARTS", "DPOSE22_NAMES", "SMPLX22_TO_DPOSE",
           "joint_to_part", "smpl24_part_labels", "part_labels", "face_part_labels", "body_field"]

SCHEMES = ("smpl24", "smplx22")
BACKGROUND = 0
PART_NAMES = {"smpl24": layouts.SMPL24.joint_names, "smplx22": layouts.SMPLX22.joint_names}
NUM_PARTS = {k: len(v) for k, v in PART_NAMES.items()}           # {'smpl24': 24, 'smplx22': 22}
NUM_CLASSES = {k: n + 1 for k, n in NUM_PARTS.items()}             # + background


def _group_of(joint_name: str) -> str:
    """The smplx22 body group (a body-joint name) of any SMPL-family joint name."""
    if joint_name in PART_NAMES["smplx22"]:
        return joint_name
    if joint_name in ("jaw", "left_eye_smplhf", "right_eye_smplhf", "left_eye", "right_eye"):
        return "head"
    for side in ("left", "right"):
        if joint_name.startswith(side + "_"):                      # 'left_hand', 'left_index1', ... -> wrist
            return f"{side}_wrist"
    raise ValueError(f"joint {joint_name!r} has no smplx22 body group")


def _table(layout_name: str) -> np.ndarray:
    body22 = PART_NAMES["smplx22"]
    return np.asarray([body22.index(_group_of(n)) for n in layouts.get_layout(layout_name).joint_names], np.int64)


# Joint index -> smplx22 group index, for each SMPL-family skeleton.
SMPL24_TO_SMPLX22 = _table("smpl24")      # 0..21, then left_hand -> 20, right_hand -> 21
SMPLH52_TO_SMPLX22 = _table("smplh52")    # 0..21, then 15 left fingers -> 20, 15 right fingers -> 21
SMPLX55_TO_SMPLX22 = _table("smplx55")    # 0..21, jaw/eyes -> 15 (head), fingers -> wrists
SMPLX22_BODY_PARTS = {"smpl24": SMPL24_TO_SMPLX22, "smplh52": SMPLH52_TO_SMPLX22, "smplx55": SMPLX55_TO_SMPLX22}

# D-PoSE's part order (the keys of its part-segm.json, Mixamo-style names from Meshcapade's segmentation)
# and the SMPL body joint each name denotes (Mixamo 'spine' = SMPL 'spine1', 'leftArm' = 'left_shoulder', ...).
DPOSE22_NAMES = ("rightHand", "rightUpLeg", "leftArm", "head", "leftLeg", "leftToeBase", "leftFoot", "spine1",
                 "spine2", "leftShoulder", "rightShoulder", "rightFoot", "rightArm", "rightLeg", "leftForeArm",
                 "rightForeArm", "neck", "rightToeBase", "spine", "leftUpLeg", "leftHand", "hips")
_MIXAMO_TO_SMPL = {"hips": "pelvis", "leftUpLeg": "left_hip", "rightUpLeg": "right_hip", "spine": "spine1",
                   "leftLeg": "left_knee", "rightLeg": "right_knee", "spine1": "spine2", "leftFoot": "left_ankle",
                   "rightFoot": "right_ankle", "spine2": "spine3", "leftToeBase": "left_foot",
                   "rightToeBase": "right_foot", "neck": "neck", "leftShoulder": "left_collar",
                   "rightShoulder": "right_collar", "head": "head", "leftArm": "left_shoulder",
                   "rightArm": "right_shoulder", "leftForeArm": "left_elbow", "rightForeArm": "right_elbow",
                   "leftHand": "left_wrist", "rightHand": "right_wrist"}
# our smplx22 index -> D-PoSE index: `dpose_labels = SMPLX22_TO_DPOSE[labels]`
SMPLX22_TO_DPOSE = np.asarray([[_MIXAMO_TO_SMPL[n] for n in DPOSE22_NAMES].index(name)
                               for name in PART_NAMES["smplx22"]], np.int64)


# ----------------------------------------------------------------------------------------------
# Body-model field lookup (BodyModel, a dict in the SMPL file layout, or a model name / path)
# ----------------------------------------------------------------------------------------------

def _resolve(body):
    """A model name or path becomes the file's arrays (read without pickle execution by `body.io`)."""
    if isinstance(body, (str, bytes)) or hasattr(body, "__fspath__"):
        from hmrjax.body import io

        path = io.resolve_model_path(body)
        arrays = dict(io.read_model_file(path))
        arrays.setdefault("_where", str(path))
        return arrays
    return body


def body_field(body, names, required=True):
    """The first of `names` that `body` has, as a numpy array (or None when not required).

    `body` is a loaded `hmrjax.body.BodyModel`, a mapping in the SMPL file layout (`v_template`, `f`,
    `weights`, `J_regressor`, ...), or a model name / file path.
    """
    body = _resolve(body)
    for n in names:
        if isinstance(body, Mapping):
            if n in body and body[n] is not None:
                return np.asarray(body[n])
        else:
            try:
                val = getattr(body, n)
            except AttributeError:
                continue
            if val is not None:
                return np.asarray(val)
    if required:
        have = sorted(body) if isinstance(body, Mapping) else type(body).__name__
        raise ValueError(f"body model has none of the fields {tuple(names)} (has: {have})")
    return None




def _joint_names(body, num_joints):
    names = body_field(body, ("joint_names",), required=False)
    if names is not None:
        names = tuple(str(n) for n in np.asarray(names).reshape(-1))
        if len(names) == num_joints:
            return names
    lay = {24: "smpl24", 52: "smplh52", 55: "smplx55"}.get(num_joints)
    if lay is None:
        raise ValueError(f"cannot name the {num_joints} joints of this body model (no 'joint_names' field)")
    return layouts.get_layout(lay).joint_names


# ----------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------

def smpl24_part_labels(weights) -> np.ndarray:
    """Part of each vertex = argmax skinning weight: `weights [V, 24]` -> `[V]` int64 in 0..23.

    Ties go to the lower joint index (numpy argmax). Raises if weights are not [V, 24] or a vertex has
    no positive weight.
    """
    w = np.asarray(weights, np.float64)
    if w.ndim != 2 or w.shape[1] != 24:
        raise ValueError(f"weights must be [V, 24] (SMPL joints), got shape {w.shape}")
    return _argmax_labels(w)


def _argmax_labels(w):
    if not np.all(np.isfinite(w)):
        raise ValueError("skinning weights contain NaN or inf")
    bad = w.max(axis=1) <= 0
    if bad.any():
        raise ValueError(f"{int(bad.sum())} vertices have no positive skinning weight (first: {int(np.argmax(bad))})")
    return np.argmax(w, axis=1).astype(np.int64)


def joint_to_part(joint_names, scheme: str) -> np.ndarray:
    """Joint index -> part index `[J]` for a skeleton with `joint_names` under `scheme`."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown part scheme {scheme!r}; known: {SCHEMES}")
    joint_names = tuple(joint_names)
    if scheme == "smplx22":
        return np.asarray([PART_NAMES["smplx22"].index(_group_of(n)) for n in joint_names], np.int64)
    smpl = PART_NAMES["smpl24"]
    out = []
    for n in joint_names:
        if n in smpl:
            out.append(smpl.index(n))
            continue
        g = _group_of(n)                                           # SMPL-H/SMPL-X extras: fingers -> hand
        if g in ("left_wrist", "right_wrist"):
            out.append(smpl.index(g.replace("wrist", "hand")))
        else:
            out.append(smpl.index(g))
    return np.asarray(out, np.int64)


def part_labels(body, scheme: str = "smpl24") -> np.ndarray:
    """Per-vertex part labels `[V]` int64 in 0..P-1 (P = `NUM_PARTS[scheme]`) of a body model.

    `body`: a loaded `BodyModel`, a mapping in the SMPL file layout, or a model name / path. Each vertex takes
    the joint with the largest skinning weight, then that joint's part under `scheme` ("smpl24" or
    "smplx22"). For SMPL-X (55 joints) under "smpl24", fingers go to SMPL's hand parts and jaw/eyes to head.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown part scheme {scheme!r}; known: {SCHEMES}")
    w = body_field(body, ("weights", "lbs_weights", "skinning_weights")).astype(np.float64)
    if w.ndim != 2:
        raise ValueError(f"skinning weights must be [V, J], got shape {w.shape}")
    table = joint_to_part(_joint_names(body, w.shape[1]), scheme)
    return table[_argmax_labels(w)]


def face_part_labels(faces, vertex_labels) -> np.ndarray:
    """Per-face part `[F]` from per-vertex labels: the label at least two corners share, else corner 0's."""
    f = np.asarray(faces)
    lab = np.asarray(vertex_labels)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must be [F, 3], got {f.shape}")
    if f.size and f.max() >= len(lab):
        raise ValueError(f"faces index vertex {f.max()} but only {len(lab)} vertex labels were given")
    a, b, c = lab[f[:, 0]], lab[f[:, 1]], lab[f[:, 2]]
    return np.where((b == c) & (a != b), b, a)
