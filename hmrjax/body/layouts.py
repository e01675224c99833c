"""Named joint sets: joint names, kinematic trees / skeleton edges, left-right flips and index maps.

Owns every joint-order table in hmrjax: `smpl24`, `smplh52`, `smplx55`, `smplx22` (SMPL-X body), `mano16`,
`coco17`, `h36m17`, `lsp14`; `flip_permutation(layout)` for horizontal-flip augmentation;
`joint_map(src, dst)` index maps between sets where they are defined; and the vertex ids of smplx's
vertex-joint selector (face, feet and finger-tip keypoints taken from mesh vertices).
Sources are given next to each table.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Layout", "LAYOUTS", "get_layout", "flip_permutation", "joint_map", "VERTEX_JOINT_IDS"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """A named joint set.

    Attributes:
      name: e.g. 'smpl24'.
      joint_names: tuple of K names ('left_*' / 'right_*' mark sides).
      parents: tuple of K parent indices (root -1) when the set is a kinematic tree, else None.
      edges: tuple of (i, j) skeleton edges for drawing (the tree's (parent, child) pairs when a tree).
    """

    name: str
    joint_names: tuple
    parents: tuple | None = None
    edges: tuple = ()

    def __post_init__(self):
        if self.parents is not None:
            if len(self.parents) != len(self.joint_names):
                raise ValueError(f"layout {self.name}: {len(self.parents)} parents for {len(self.joint_names)} names")
            if not self.edges:
                object.__setattr__(self, "edges", tuple((p, j) for j, p in enumerate(self.parents) if p >= 0))

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        return self.joint_names.index(name)


# SMPL body joints 0..21 and kinematic tree: the official SMPL model's kintree_table (identical in SMPL-H and
# SMPL-X); names as in smplx/joint_names.py (SMPL_JOINT_NAMES).
_BODY22 = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
           "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
           "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
_BODY22_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
# Finger joints in MANO / SMPL-H / SMPL-X order (index, middle, pinky, ring, thumb; 3 each).
_FINGERS = tuple(f"{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3))


def _hand_parents(wrist: int, first: int) -> tuple:
    """Parents of 15 finger joints numbered from `first`, chains of 3 hanging from `wrist`."""
    return tuple(wrist if k % 3 == 0 else first + k - 1 for k in range(15))


SMPL24 = Layout("smpl24", _BODY22 + ("left_hand", "right_hand"), _BODY22_PARENTS + (20, 21))
SMPLH52 = Layout(
    "smplh52",
    _BODY22 + tuple(f"left_{f}" for f in _FINGERS) + tuple(f"right_{f}" for f in _FINGERS),
    _BODY22_PARENTS + _hand_parents(20, 22) + _hand_parents(21, 37),
)
# SMPL-X: body 0..21, jaw 22, eyes 23/24 (children of head, 15), left hand 25..39, right hand 40..54.
SMPLX55 = Layout(
    "smplx55",
    _BODY22 + ("jaw", "left_eye_smplhf", "right_eye_smplhf") + tuple(f"left_{f}" for f in _FINGERS)
    + tuple(f"right_{f}" for f in _FINGERS),
    _BODY22_PARENTS + (15, 15, 15) + _hand_parents(20, 25) + _hand_parents(21, 40),
)
SMPLX22 = Layout("smplx22", _BODY22, _BODY22_PARENTS)
# MANO (Romero et al. 2017): wrist + 15 finger joints, official kintree_table.
MANO16 = Layout("mano16", ("wrist",) + _FINGERS, (-1,) + _hand_parents(0, 1))

# COCO-17 keypoints and skeleton: the COCO keypoint annotation format (cocodataset.org, person_keypoints
# 'skeleton' field, converted from 1-based to 0-based).
COCO17 = Layout(
    "coco17",
    ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
     "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
     "left_ankle", "right_ankle"),
    None,
    ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
     (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
)
# Human3.6M 17-joint set in the common order of VideoPose3D / SPIN's J_regressor_h36m (pelvis, right leg,
# left leg, spine, thorax, neck/nose, head, left arm, right arm); tree from VideoPose3D's h36m skeleton.
H36M17 = Layout(
    "h36m17",
    ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
     "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
     "right_wrist"),
    (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
)
# Leeds Sports Pose 14 joints (Johnson & Everingham 2010), in the dataset's order; edges as drawn by HMR/SPIN.
LSP14 = Layout(
    "lsp14",
    ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
     "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top"),
    None,
    ((0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (9, 10), (10, 11), (2, 8), (3, 9), (2, 3), (8, 12),
     (9, 12), (12, 13)),
)

LAYOUTS = {l.name: l for l in (SMPL24, SMPLH52, SMPLX55, SMPLX22, MANO16, COCO17, H36M17, LSP14)}
# Default joint set of each SMPL-family model type.
MODEL_TYPE_LAYOUT = {"smpl": "smpl24", "smplh": "smplh52", "smplx": "smplx55", "mano": "mano16"}


def get_layout(layout) -> Layout:
    """A `Layout` from itself or its name."""
    if isinstance(layout, Layout):
        return layout
    if layout not in LAYOUTS:
        raise KeyError(f"unknown joint layout {layout!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[layout]


def _mirror_name(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if name.startswith(a + "_"):
            return b + name[len(a):]
        if f"_{a}_" in name:
            return name.replace(f"_{a}_", f"_{b}_")
    return name


def flip_permutation(layout) -> np.ndarray:
    """Index permutation that swaps left and right joints: `flipped = joints[..., perm, :]`.

    Built from the 'left_' / 'right_' names (joints without a side map to themselves); SMPL-X's
    'left_eye_smplhf' / 'right_eye_smplhf' swap too. Returns int32 [K].
    """
    lay = get_layout(layout)
    names = lay.joint_names
    where = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        mirrored = _mirror_name(n)
        if mirrored not in where:
            raise ValueError(f"layout {lay.name}: joint {n!r} has no mirrored counterpart {mirrored!r}")
        perm.append(where[mirrored])
    return np.asarray(perm, dtype=np.int32)


# Explicit maps where the joints are the same anatomical points (others: `valid` False).
# smplx55 -> smpl24: the 22 body joints are the same joints of the same tree (SMPL-X was built on SMPL's body
#   skeleton); SMPL's 'left_hand' / 'right_hand' (22, 23) have no SMPL-X counterpart (SMPL-X has fingers).
# smpl24 -> lsp14: same-named limb joints; LSP 'neck' = SMPL 'neck' (12), as SPIN/HMR's SMPL-joint
#   evaluation does; LSP 'head_top' has no SMPL joint (use a vertex / regressor instead).
_EXPLICIT = {
    ("smplx55", "smpl24"): tuple(range(22)) + (-1, -1),
    ("smpl24", "lsp14"): (8, 5, 2, 1, 4, 7, 21, 19, 17, 16, 18, 20, 12, -1),
}


def joint_map(src, dst) -> tuple[np.ndarray, np.ndarray]:
    """Indices into `src` for each joint of `dst`, where defined.

    Returns `(index int32 [K_dst], valid bool [K_dst])`; `x_dst = x_src[..., index, :]` and entries with
    `valid` False must be ignored (index 0 there). Uses the documented tables above, else exact name matches.
    """
    s, d = get_layout(src), get_layout(dst)
    if (s.name, d.name) in _EXPLICIT:
        table = np.asarray(_EXPLICIT[(s.name, d.name)], dtype=np.int64)
    else:
        where = {n: i for i, n in enumerate(s.joint_names)}
        table = np.asarray([where.get(n, -1) for n in d.joint_names], dtype=np.int64)
    valid = table >= 0
    if not valid.any():
        raise ValueError(f"no joint map defined from {s.name} to {d.name}")
    return np.where(valid, table, 0).astype(np.int32), valid


# Vertex ids of smplx's VertexJointSelector (smplx/vertex_ids.py; MPI-IS): face (nose, eyes, ears), feet
# (big toe, small toe, heel) and finger tips, in the order smplx appends them to `joints`.
_SMPLH_VERTS = {"nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583,
                "LBigToe": 3216, "LSmallToe": 3226, "LHeel": 3387, "RBigToe": 6617, "RSmallToe": 6624, "RHeel": 6787,
                "lthumb": 2746, "lindex": 2319, "lmiddle": 2445, "lring": 2556, "lpinky": 2673,
                "rthumb": 6191, "rindex": 5782, "rmiddle": 5905, "rring": 6016, "rpinky": 6133}
_SMPLX_VERTS = {"nose": 9120, "reye": 9929, "leye": 9448, "rear": 616, "lear": 6,
                "LBigToe": 5770, "LSmallToe": 5780, "LHeel": 8846, "RBigToe": 8463, "RSmallToe": 8474, "RHeel": 8635,
                "lthumb": 5361, "lindex": 4933, "lmiddle": 5058, "lring": 5169, "lpinky": 5286,
                "rthumb": 8079, "rindex": 7669, "rmiddle": 7794, "rring": 7905, "rpinky": 8022}
_MANO_VERTS = {"thumb": 744, "index": 320, "middle": 443, "ring": 554, "pinky": 671}
_EXTRA_NAMES = ("nose", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
                "left_heel", "right_big_toe", "right_small_toe", "right_heel", "left_thumb", "left_index",
                "left_middle", "left_ring", "left_pinky", "right_thumb", "right_index", "right_middle",
                "right_ring", "right_pinky")
# model type -> (number of vertices the ids are valid for, names, vertex ids)
VERTEX_JOINT_IDS = {
    "smpl": (6890, _EXTRA_NAMES, tuple(_SMPLH_VERTS.values())),
    "smplh": (6890, _EXTRA_NAMES, tuple(_SMPLH_VERTS.values())),
    "smplx": (10475, _EXTRA_NAMES, tuple(_SMPLX_VERTS.values())),
    "mano": (778, ("thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip"), tuple(_MANO_VERTS.values())),
}
