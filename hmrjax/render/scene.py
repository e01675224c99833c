"""Scenes of meshes rendered into every ground-truth map at once (`render`), and the one-call picture of
a body-frame mesh (`render_mesh_image`) used by demos.

A scene is a list of `Mesh` (camera-frame vertices, faces, optional per-vertex/per-face colours and
part labels). `render` rasterizes them with one z-buffer and returns depth, mask, triangle and mesh
ids, barycentrics, interpolated normals, part labels and a shaded RGB image.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from hmrjax.render.raster import Camera, Fragments, rasterize
from hmrjax.render.shading import Light, shade_pixels

# Body frame (x right, y up, z towards the viewer) -> OpenCV camera frame (x right, y down, z forward):
# a 180-degree rotation about x, proper, so triangle winding is preserved.
BODY_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


@dataclasses.dataclass
class Mesh:
    """One mesh of a scene. vertices: [V, 3] camera frame (m); faces: [F, 3] int.

    Colour (RGB in [0, 1]), first that is given: face_colors [F, 3], vertex_colors [V, 3], color (3,).
    Labels (int, written to `part_seg`), first that is given: face_labels [F], vertex_labels [V] (a
    pixel takes the label of the face's vertex with the largest barycentric weight), else `label`.
    smooth: interpolate vertex normals (True) or use flat face normals (False).
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float] = (0.75, 0.75, 0.75)
    vertex_colors: np.ndarray | None = None
    face_colors: np.ndarray | None = None
    vertex_labels: np.ndarray | None = None
    face_labels: np.ndarray | None = None
    label: int = 0
    smooth: bool = True


@dataclasses.dataclass(frozen=True)
class RenderOutput:
    """Every map of one rendered scene; [H, W] unless noted, background as stated.

    depth f32 metric z (0); mask bool; face_id i32 face index within its mesh (-1); mesh_id i32 (-1);
    bary [H, W, 3] f32 (0); normals [H, W, 3] f32 unit camera-frame normals as the mesh is oriented (0);
    part_seg i32 labels (`background_label`); rgb [H, W, 3] uint8 shaded colour over the background.
    """

    depth: np.ndarray
    mask: np.ndarray
    face_id: np.ndarray
    mesh_id: np.ndarray
    bary: np.ndarray
    normals: np.ndarray
    part_seg: np.ndarray
    rgb: np.ndarray


def _check_len(name, arr, n, mesh_index, width=None):
    arr = np.asarray(arr)
    want = (n,) if width is None else (n, width)
    if arr.shape != want:
        raise ValueError(f"mesh {mesh_index}: {name} must have shape {want}, got {arr.shape}")
    return arr


def _scene_tables(meshes: Sequence[Mesh]) -> dict:
    """Concatenated per-vertex / per-face colour, label and normal-mode tables of a scene."""
    t = {k: [] for k in ("verts", "faces", "flat", "vertex_color", "face_color", "color_by_face",
                         "vertex_label", "face_label", "label_by_face")}
    v_off = 0
    for i, m in enumerate(meshes):
        v = np.asarray(m.vertices)
        f = np.asarray(m.faces)
        nf, nv = f.shape[0], v.shape[0]
        t["verts"].append(v)
        t["faces"].append(f.astype(np.int64) + v_off)
        t["flat"].append(np.full(nf, not m.smooth))
        if m.face_colors is not None:
            t["face_color"].append(_check_len("face_colors", m.face_colors, nf, i, 3))
            t["vertex_color"].append(np.zeros((nv, 3), np.float32))
            t["color_by_face"].append(np.ones(nf, bool))
        elif m.vertex_colors is not None:
            t["vertex_color"].append(_check_len("vertex_colors", m.vertex_colors, nv, i, 3))
            t["face_color"].append(np.zeros((nf, 3), np.float32))
            t["color_by_face"].append(np.zeros(nf, bool))
        else:
            c = np.asarray(m.color, dtype=np.float32)
            if c.shape != (3,):
                raise ValueError(f"mesh {i}: color must be an RGB triple, got shape {c.shape}")
            t["face_color"].append(np.broadcast_to(c, (nf, 3)))
            t["vertex_color"].append(np.zeros((nv, 3), np.float32))
            t["color_by_face"].append(np.ones(nf, bool))
        if m.face_labels is not None:
            t["face_label"].append(_check_len("face_labels", m.face_labels, nf, i))
            t["vertex_label"].append(np.zeros(nv, np.int32))
            t["label_by_face"].append(np.ones(nf, bool))
        elif m.vertex_labels is not None:
            t["vertex_label"].append(_check_len("vertex_labels", m.vertex_labels, nv, i))
            t["face_label"].append(np.zeros(nf, np.int32))
            t["label_by_face"].append(np.zeros(nf, bool))
        else:
            t["face_label"].append(np.full(nf, m.label, np.int32))
            t["vertex_label"].append(np.zeros(nv, np.int32))
            t["label_by_face"].append(np.ones(nf, bool))
        v_off += nv
    if len(meshes) == 1:
        return {k: x[0] for k, x in t.items()}
    return {k: np.concatenate(x) for k, x in t.items()}


def _as_rgb_background(background, shape):
    height, width = shape
    if background is None:
        return np.zeros((height, width, 3), dtype=np.uint8)
    bg = np.asarray(background)
    if bg.shape == (3,):
        col = np.clip(np.round(bg.astype(np.float64) * (255.0 if bg.dtype.kind == "f" else 1.0)), 0, 255)
        return np.broadcast_to(col.astype(np.uint8), (height, width, 3)).copy()
    if bg.shape != (height, width, 3) or bg.dtype != np.uint8:
        raise ValueError(f"background must be None, an RGB triple or a uint8 [{height}, {width}, 3] image, "
                         f"got {bg.dtype} {bg.shape}")
    return bg.copy()


def shade_fragments(frags: Fragments, meshes: Sequence[Mesh], camera: Camera, light: Light = Light(),
                    background=None, background_label: int = 0) -> RenderOutput:
    """Normals, part labels and shaded colour for `frags` rasterized from `meshes` with `camera`."""
    tables = _scene_tables(meshes)
    height, width = camera.image_size
    normals = np.zeros((height, width, 3), dtype=np.float32)
    part = np.full((height, width), background_label, dtype=np.int32)
    rgb = _as_rgb_background(background, (height, width))
    shade_pixels(frags.global_face_id, frags.bary, frags.depth, camera, tables.pop("verts"),
                 tables.pop("faces"), light=light, normals_out=normals, part_out=part, rgb_out=rgb, **tables)
    return RenderOutput(depth=frags.depth, mask=frags.mask, face_id=frags.face_id, mesh_id=frags.mesh_id,
                        bary=frags.bary, normals=normals, part_seg=part, rgb=rgb)


def render(meshes: Mesh | Sequence[Mesh], camera: Camera, *, light: Light = Light(), background=None,
           background_label: int = 0, z_near: float = 0.01, cull: str = "none") -> RenderOutput:
    """Render a scene of camera-frame meshes into every map (see `RenderOutput`).

    meshes: one `Mesh` or a list (an occluder is just another mesh; the mesh id map tells them apart);
    camera: intrinsics and image size; light: shading light; background: None (black), an RGB triple
    (floats in [0, 1] or ints in [0, 255]) or a uint8 [H, W, 3] image under the meshes;
    background_label: part_seg value where no mesh is; z_near, cull: as in `rasterize`.
    """
    if isinstance(meshes, Mesh):
        meshes = [meshes]
    meshes = list(meshes)
    if not meshes:
        raise ValueError("render needs at least one mesh")
    frags = rasterize([m.vertices for m in meshes], [m.faces for m in meshes], camera, z_near=z_near,
                      cull=cull)
    return shade_fragments(frags, meshes, camera, light, background, background_label)


def render_mesh_image(vertices: np.ndarray, faces: np.ndarray, image_size: tuple[int, int] = (512, 512),
                      focal: float | None = None, cam_t: np.ndarray | None = None,
                      color=(0.65, 0.74, 0.86), yaw_deg: float = 0.0, background=(1.0, 1.0, 1.0),
                      light: Light = Light(specular=0.2), supersample: int = 2) -> np.ndarray:
    """Picture of a body-frame mesh (x right, y up, z towards the viewer, metres) as uint8 [H, W, 3].

    The mesh is turned by `yaw_deg` about its vertical axis (around its bounding-box centre), rotated
    into the OpenCV camera frame (v_cam = BODY_TO_CAMERA @ v + cam_t) and seen by a pinhole camera with
    focal length `focal` px (default max(H, W) * 1.5) and principal point at the image centre.
    cam_t: (3,) camera-frame translation (m); by default it centres the mesh's bounding box and sets the
    distance so the mesh fills about 80% of the image along its limiting side. color: RGB in [0, 1], or
    [V, 3] per-vertex colours. supersample: k renders k x k samples per pixel and averages them
    (anti-aliased edges); 1 gives the plain rasterization.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got {v.shape}")
    height, width = int(image_size[0]), int(image_size[1])
    f = float(max(height, width) * 1.5 if focal is None else focal)
    lo, hi = v.min(axis=0), v.max(axis=0)
    centre = (lo + hi) / 2
    yaw = np.deg2rad(yaw_deg)
    rot_y = np.array([[np.cos(yaw), 0.0, np.sin(yaw)], [0.0, 1.0, 0.0], [-np.sin(yaw), 0.0, np.cos(yaw)]])
    v_rot = (v - centre) @ rot_y.T + centre
    if cam_t is None:
        v_cam = (v_rot - centre) @ BODY_TO_CAMERA.T
        extent = np.ptp(v_cam[:, :2], axis=0)                  # (width, height) in metres
        dist = max(f * extent[0] / (0.8 * width), f * extent[1] / (0.8 * height), 1e-3)
        v_cam = v_cam + np.array([0.0, 0.0, dist + np.ptp(v_cam[:, 2]) / 2])
    else:
        cam_t = np.asarray(cam_t, dtype=np.float64)
        if cam_t.shape != (3,):
            raise ValueError(f"cam_t must be (3,), got {cam_t.shape}")
        v_cam = v_rot @ BODY_TO_CAMERA.T + cam_t
    col = np.asarray(color, dtype=np.float32)
    mesh = Mesh(v_cam, np.asarray(faces), color=tuple(col) if col.shape == (3,) else (0.7, 0.7, 0.7),
                vertex_colors=col if col.ndim == 2 else None)
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    k = int(supersample)
    # k x k samples per output pixel: pixel centre u of the output is u * k + (k - 1) / 2 in the big image
    cam = Camera(focal=(f * k, f * k), image_size=(height * k, width * k),
                 principal=(width / 2 * k + (k - 1) / 2, height / 2 * k + (k - 1) / 2))
    big = render(mesh, cam, light=light, background=background).rgb
    if k == 1:
        return big
    small = big.reshape(height, k, width, k, 3).astype(np.float32).mean(axis=(1, 3))
    return np.round(small).astype(np.uint8)


__all__ = ["BODY_TO_CAMERA", "Mesh", "RenderOutput", "render", "render_mesh_image", "shade_fragments"]
