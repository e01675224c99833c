"""Mesh files: write triangle meshes as Wavefront `.obj` and binary `.ply` (atomic writes).

Used by the demo, `hmrjax predict` and any tool that saves a posed body. Reading is included for
round-trip tests and for users who want to load a saved prediction back.
"""
from __future__ import annotations

import pathlib

import numpy as np

from hmrjax import fileio


def _check_mesh(vertices, faces, colors=None):
    v = np.asarray(vertices)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got shape {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must be [F, 3], got shape {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces index vertices outside [0, {len(v)}): min {f.min()}, max {f.max()}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices contain NaN or inf")
    c = None
    if colors is not None:
        c = np.asarray(colors)
        if c.shape != (len(v), 3):
            raise ValueError(f"colors must be [V, 3] like vertices {v.shape}, got {c.shape}")
        if c.dtype != np.uint8:
            c = np.clip(np.round(c * 255.0 if c.max() <= 1.0 else c), 0, 255).astype(np.uint8)
    return v.astype(np.float32), f.astype(np.int32), c


def write_obj(path, vertices, faces, colors=None):
    """Write `vertices [V,3]` (m) and `faces [F,3]` (0-based) as `.obj`; optional per-vertex `colors [V,3]`."""
    v, f, c = _check_mesh(vertices, faces, colors)
    lines = []
    if c is None:
        lines.extend(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v)
    else:
        cf = c.astype(np.float32) / 255.0
        lines.extend(f"v {x:.6f} {y:.6f} {z:.6f} {r:.4f} {g:.4f} {b:.4f}" for (x, y, z), (r, g, b) in zip(v, cf))
    lines.extend(f"f {a + 1} {b + 1} {d + 1}" for a, b, d in f)
    return fileio.write_bytes(path, ("\n".join(lines) + "\n").encode())


def write_ply(path, vertices, faces, colors=None):
    """Write a binary little-endian `.ply` with float32 vertices, uint8 colours (optional), int32 faces."""
    v, f, c = _check_mesh(vertices, faces, colors)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(v)}",
              "property float x", "property float y", "property float z"]
    vdtype = [("xyz", "<f4", 3)]
    if c is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        vdtype.append(("rgb", "u1", 3))
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    vert = np.empty(len(v), dtype=vdtype)
    vert["xyz"] = v
    if c is not None:
        vert["rgb"] = c
    face = np.empty(len(f), dtype=[("n", "u1"), ("idx", "<i4", 3)])
    face["n"] = 3
    face["idx"] = f
    data = ("\n".join(header) + "\n").encode() + vert.tobytes() + face.tobytes()
    return fileio.write_bytes(path, data)


def read_ply(path):
    """Read a `.ply` written by `write_ply` (binary LE, triangles). Returns (vertices, faces, colors|None)."""
    raw = pathlib.Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file")
    header = raw[:end].decode().splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: only binary_little_endian PLY is supported")
    nv = int(next(h.split()[-1] for h in header if h.startswith("element vertex")))
    nf = int(next(h.split()[-1] for h in header if h.startswith("element face")))
    has_rgb = any(h.endswith(" red") for h in header)
    vdtype = [("xyz", "<f4", 3)] + ([("rgb", "u1", 3)] if has_rgb else [])
    body = raw[end + len(b"end_header\n"):]
    vert = np.frombuffer(body, dtype=vdtype, count=nv)
    face = np.frombuffer(body, dtype=[("n", "u1"), ("idx", "<i4", 3)], count=nf, offset=vert.nbytes)
    if nf and not np.all(face["n"] == 3):
        raise ValueError(f"{path}: only triangle faces are supported")
    return vert["xyz"].copy(), face["idx"].copy(), (vert["rgb"].copy() if has_rgb else None)


def read_obj(path):
    """Read vertices and triangle faces from a `.obj` (positions and `f a b c` / `f a/.. b/.. c/..`)."""
    verts, faces = [], []
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(tok.split("/")[0]) - 1 for tok in line.split()[1:]]
            if len(idx) != 3:
                raise ValueError(f"{path}: only triangle faces are supported, got {len(idx)} indices")
            faces.append(idx)
    return np.asarray(verts, np.float32).reshape(-1, 3), np.asarray(faces, np.int32).reshape(-1, 3)
