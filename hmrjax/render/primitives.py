"""Procedural triangle meshes: ellipsoids, boxes, and a "capsule man" stand-in body.

Used as occluder objects in scenes, as test meshes, and as the benchmark body when the free body
model's assets are not installed. All meshes are counter-clockwise seen from outside (outward normals).
"""
from __future__ import annotations

import numpy as np


def ellipsoid(center=(0.0, 0.0, 0.0), radii=(1.0, 1.0, 1.0), rings: int = 16, segments: int = 24):
    """UV ellipsoid. Returns (vertices [(rings - 1) * segments + 2, 3] float32, faces [F, 3] int32).

    rings: latitude bands (>= 2); segments: longitude divisions (>= 3); axis of the poles is y.
    """
    if rings < 2 or segments < 3:
        raise ValueError(f"ellipsoid needs rings >= 2 and segments >= 3, got {rings}, {segments}")
    theta = np.pi * np.arange(1, rings) / rings                  # polar angle from +y
    phi = 2 * np.pi * np.arange(segments) / segments
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring = np.stack([st * np.sin(phi), np.broadcast_to(ct, (rings - 1, segments)), st * np.cos(phi)], -1)
    unit = np.concatenate([[[0.0, 1.0, 0.0]], ring.reshape(-1, 3), [[0.0, -1.0, 0.0]]])
    verts = unit * np.asarray(radii, dtype=np.float64) + np.asarray(center, dtype=np.float64)
    faces = []
    idx = lambda r, s: 1 + r * segments + (s % segments)  # noqa: E731 - tiny index helper
    south = 1 + (rings - 1) * segments
    for s in range(segments):
        faces.append((0, idx(0, s), idx(0, s + 1)))
        faces.append((south, idx(rings - 2, s + 1), idx(rings - 2, s)))
        for r in range(rings - 2):
            a, b, c, d = idx(r, s), idx(r, s + 1), idx(r + 1, s), idx(r + 1, s + 1)
            faces.append((a, c, d))
            faces.append((a, d, b))
    return verts.astype(np.float32), np.asarray(faces, dtype=np.int32)


def box(center=(0.0, 0.0, 0.0), size=(1.0, 1.0, 1.0)):
    """Axis-aligned box. Returns (vertices [8, 3] float32, faces [12, 3] int32)."""
    c = np.asarray(center, dtype=np.float64)
    h = np.asarray(size, dtype=np.float64) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [t for a, b, c_, d in quads for t in ((a, b, c_), (a, c_, d))]
    return (corners * h + c).astype(np.float32), np.asarray(faces, dtype=np.int32)


# (centre, radii) of the capsule man's parts in a y-up body frame, feet at y = 0, T-pose.
_PARTS = (
    ("head", (0.0, 1.62, 0.0), (0.095, 0.12, 0.105)),
    ("torso", (0.0, 1.28, 0.0), (0.17, 0.24, 0.11)),
    ("pelvis", (0.0, 0.97, 0.0), (0.16, 0.11, 0.10)),
    ("l_upper_arm", (0.33, 1.44, 0.0), (0.15, 0.05, 0.05)),
    ("r_upper_arm", (-0.33, 1.44, 0.0), (0.15, 0.05, 0.05)),
    ("l_forearm", (0.61, 1.44, 0.0), (0.14, 0.04, 0.04)),
    ("r_forearm", (-0.61, 1.44, 0.0), (0.14, 0.04, 0.04)),
    ("l_thigh", (0.09, 0.68, 0.0), (0.075, 0.23, 0.075)),
    ("r_thigh", (-0.09, 0.68, 0.0), (0.075, 0.23, 0.075)),
    ("l_shin", (0.09, 0.25, 0.0), (0.055, 0.24, 0.055)),
    ("r_shin", (-0.09, 0.25, 0.0), (0.055, 0.24, 0.055)),
)
CAPSULE_MAN_PARTS = tuple(name for name, _, _ in _PARTS)


def capsule_man(rings: int = 31, segments: int = 40):
    """A 1.74 m humanoid of 11 ellipsoids in a y-up body frame (feet at y = 0, facing +z).

    The defaults give 13,222 vertices / 26,400 faces (close to the free body model's full mesh);
    `capsule_man(14, 20)` gives 2,882 / 5,720 (close to its decimated mesh).
    Returns (vertices [V, 3] float32, faces [F, 3] int32, vertex_labels [V] int32 in 1..11, the
    1-based index into `CAPSULE_MAN_PARTS`).
    """
    verts, faces, labels = [], [], []
    offset = 0
    for k, (_, center, radii) in enumerate(_PARTS):
        v, f = ellipsoid(center, radii, rings, segments)
        verts.append(v)
        faces.append(f + offset)
        labels.append(np.full(len(v), k + 1, dtype=np.int32))
        offset += len(v)
    return np.concatenate(verts), np.concatenate(faces), np.concatenate(labels)


__all__ = ["CAPSULE_MAN_PARTS", "box", "capsule_man", "ellipsoid"]
