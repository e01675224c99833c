"""Per-pixel attributes from `Fragments`: mesh normals, interpolated normals, part labels, and the
Lambert + ambient + Blinn-Phong specular shading model with one directional light.

`shade` is the readable numpy statement of the model; `shade_pixels` is the numba kernel that the
renderer runs (one pass over the covered pixels producing normals, labels and colour) and is tested
against the numpy functions. Outputs are float32; background pixels are left as the caller set them.
"""
from __future__ import annotations

import dataclasses

import numba
import numpy as np

from hmrjax.render.raster import Camera, Fragments


@dataclasses.dataclass(frozen=True)
class Light:
    """One directional light plus ambient term, in the camera frame.

    direction: (3,) direction the light travels (camera frame; (0, 0, 1) shines from the camera into
    the scene, +y component = from above since y points down); normalised internally.
    intensity: diffuse/specular scale; ambient: constant term; specular: Blinn-Phong weight (0 = off);
    shininess: Blinn-Phong exponent; color: (3,) RGB of the light in [0, 1].
    """

    direction: tuple[float, float, float] = (0.3, 0.5, 1.0)
    intensity: float = 0.8
    ambient: float = 0.3
    specular: float = 0.0
    shininess: float = 32.0
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self):
        d = np.asarray(self.direction, dtype=np.float64)
        if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
            raise ValueError(f"Light.direction must be a non-zero finite (3,) vector, got {self.direction!r}")
        for name in ("intensity", "ambient", "specular", "shininess"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"Light.{name} must be finite and >= 0, got {getattr(self, name)!r}")


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3], [F, 3] -> [F, 3] float32 unit normals (counter-clockwise winding; zero for degenerate faces)."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[np.asarray(faces)]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return (n / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3], [F, 3] -> [V, 3] float32 unit vertex normals, the area-weighted mean of adjacent face
    normals (zero for isolated vertices)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    idx = f.reshape(-1)
    out = np.stack([np.bincount(idx, np.repeat(n[:, c], 3), minlength=v.shape[0]) for c in range(3)], -1)
    norm = np.linalg.norm(out, axis=-1, keepdims=True)
    return (out / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def interpolate(frags: Fragments, faces: np.ndarray, vertex_values: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of per-vertex values over covered pixels.

    frags: from `rasterize`; faces: [F_total, 3] indices into `vertex_values` (the concatenation of all
    meshes' faces with vertex offsets applied); vertex_values: [V_total, C].
    Returns [H, W, C] float32, 0 on background.
    """
    vals = np.asarray(vertex_values, dtype=np.float32)
    out = np.zeros(frags.depth.shape + vals.shape[1:], dtype=np.float32)
    m = frags.mask
    gf = frags.global_face_id[m]
    fv = faces[gf]
    out[m] = np.einsum("nk,nkc->nc", frags.bary[m], vals[fv])
    return out


def pixel_rays(camera: Camera) -> np.ndarray:
    """[H, W, 3] float32 camera-frame rays (u - cx) / fx, (v - cy) / fy, 1 through pixel centres, so
    that the 3-D point at metric depth z is z * ray."""
    height, width = camera.image_size
    (fx, fy), (cx, cy) = camera.focal, camera.principal
    u = (np.arange(width, dtype=np.float64) - cx) / fx
    v = (np.arange(height, dtype=np.float64) - cy) / fy
    rays = np.empty((height, width, 3), dtype=np.float32)
    rays[..., 0] = u[None, :]
    rays[..., 1] = v[:, None]
    rays[..., 2] = 1.0
    return rays


def shade(normals: np.ndarray, albedo: np.ndarray, view_dirs: np.ndarray, light: Light) -> np.ndarray:
    """Lambert + ambient + Blinn-Phong colour, two-sided.

    normals: [N, 3] unit surface normals; albedo: [N, 3] base colour in [0, 1]; view_dirs: [N, 3] unit
    vectors from the surface point towards the camera; light: the light.
    Normals facing away from the viewer are flipped (back faces are lit like front faces).
    Returns [N, 3] float32 in [0, 1]:
      c = albedo * (ambient + intensity * max(0, n.l)) * light.color + specular * intensity * max(0, n.h)^shininess
    with l = -light.direction (towards the light) and h = normalise(l + view).
    """
    n = np.asarray(normals, dtype=np.float32)
    view = np.asarray(view_dirs, dtype=np.float32)
    flip = np.sum(n * view, axis=-1, keepdims=True) < 0
    n = np.where(flip, -n, n)
    to_light = -np.asarray(light.direction, dtype=np.float32)
    to_light = to_light / np.linalg.norm(to_light)
    lamb = np.clip(n @ to_light, 0.0, None)[:, None]
    lcol = np.asarray(light.color, dtype=np.float32)
    col = np.asarray(albedo, dtype=np.float32) * (light.ambient + light.intensity * lamb) * lcol
    if light.specular > 0:
        h = view + to_light
        h = h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-12)
        spec = np.clip(np.sum(n * h, axis=-1), 0.0, None) ** light.shininess
        col = col + (light.specular * light.intensity * spec)[:, None] * lcol
    return np.clip(col, 0.0, 1.0).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _vertex_normals_kernel(verts, faces, out):
    out[:] = 0.0
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = verts[b, 0] - verts[a, 0], verts[b, 1] - verts[a, 1], verts[b, 2] - verts[a, 2]
        e2x, e2y, e2z = verts[c, 0] - verts[a, 0], verts[c, 1] - verts[a, 1], verts[c, 2] - verts[a, 2]
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        for k in range(3):
            v = faces[f, k]
            out[v, 0] += nx
            out[v, 1] += ny
            out[v, 2] += nz
    for v in range(out.shape[0]):
        n = np.sqrt(out[v, 0] ** 2 + out[v, 1] ** 2 + out[v, 2] ** 2)
        if n > 0:
            out[v, 0] /= n
            out[v, 1] /= n
            out[v, 2] /= n


@numba.njit(cache=True, nogil=True)
def _shade_kernel(face_g, bary, depth, verts, faces, vnormals, flat, vcolor, fcolor, color_by_face,
                  vlabel, flabel, label_by_face, rays_u, rays_v, to_light, light_rgb, ambient, intensity,
                  specular, shininess, normals_out, part_out, rgb_out):
    height, width = face_g.shape
    for i in range(height):
        for j in range(width):
            f = face_g[i, j]
            if f < 0:
                continue
            b0, b1, b2 = bary[i, j, 0], bary[i, j, 1], bary[i, j, 2]
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            if flat[f]:
                e1x, e1y, e1z = verts[b, 0] - verts[a, 0], verts[b, 1] - verts[a, 1], verts[b, 2] - verts[a, 2]
                e2x, e2y, e2z = verts[c, 0] - verts[a, 0], verts[c, 1] - verts[a, 1], verts[c, 2] - verts[a, 2]
                nx = e1y * e2z - e1z * e2y
                ny = e1z * e2x - e1x * e2z
                nz = e1x * e2y - e1y * e2x
            else:
                nx = b0 * vnormals[a, 0] + b1 * vnormals[b, 0] + b2 * vnormals[c, 0]
                ny = b0 * vnormals[a, 1] + b1 * vnormals[b, 1] + b2 * vnormals[c, 1]
                nz = b0 * vnormals[a, 2] + b1 * vnormals[b, 2] + b2 * vnormals[c, 2]
            nn = np.sqrt(nx * nx + ny * ny + nz * nz)
            if nn > 0:
                nx, ny, nz = nx / nn, ny / nn, nz / nn
            normals_out[i, j, 0] = nx
            normals_out[i, j, 1] = ny
            normals_out[i, j, 2] = nz
            if label_by_face[f]:
                part_out[i, j] = flabel[f]
            else:
                k = a if (b0 >= b1 and b0 >= b2) else (b if b1 >= b2 else c)
                part_out[i, j] = vlabel[k]
            z = depth[i, j]
            px, py = rays_u[j] * z, rays_v[i] * z
            pn = np.sqrt(px * px + py * py + z * z)
            vx, vy, vz = -px / pn, -py / pn, -z / pn
            if nx * vx + ny * vy + nz * vz < 0:  # two-sided lighting
                nx, ny, nz = -nx, -ny, -nz
            lamb = max(0.0, nx * to_light[0] + ny * to_light[1] + nz * to_light[2])
            spec = 0.0
            if specular > 0:
                hx, hy, hz = vx + to_light[0], vy + to_light[1], vz + to_light[2]
                hn = max(np.sqrt(hx * hx + hy * hy + hz * hz), 1e-12)
                spec = specular * intensity * max(0.0, (nx * hx + ny * hy + nz * hz) / hn) ** shininess
            for ch in range(3):
                if color_by_face[f]:
                    alb = fcolor[f, ch]
                else:
                    alb = b0 * vcolor[a, ch] + b1 * vcolor[b, ch] + b2 * vcolor[c, ch]
                val = (alb * (ambient + intensity * lamb) + spec) * light_rgb[ch]
                val = min(max(val, 0.0), 1.0)
                rgb_out[i, j, ch] = np.uint8(np.floor(val * 255.0 + 0.5))


def shade_pixels(face_g, bary, depth, camera: Camera, verts, faces, *, light: Light, flat, vertex_color,
                 face_color, color_by_face, vertex_label, face_label, label_by_face, normals_out, part_out,
                 rgb_out) -> None:
    """Compiled per-pixel shading of a rasterized scene (writes only covered pixels of the outputs).

    face_g [H, W] global face ids (-1 background), bary [H, W, 3], depth [H, W]; verts [V, 3] and
    faces [F, 3] of the whole scene (global indices); flat [F] bool (face normal instead of
    interpolated vertex normal); vertex_color [V, 3] / face_color [F, 3] with color_by_face [F] bool;
    vertex_label [V] / face_label [F] with label_by_face [F] bool (vertex labels: the vertex with the
    largest barycentric weight); outputs normals_out [H, W, 3] f32, part_out [H, W] i32,
    rgb_out [H, W, 3] uint8. Same formulas as `shade` (specular is white light times light.color).
    """
    verts = np.ascontiguousarray(verts, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    vnormals = np.empty_like(verts)
    _vertex_normals_kernel(verts, faces, vnormals)
    (fx, fy), (cx, cy) = camera.focal, camera.principal
    height, width = camera.image_size
    rays_u = (np.arange(width, dtype=np.float64) - cx) / fx
    rays_v = (np.arange(height, dtype=np.float64) - cy) / fy
    to_light = -np.asarray(light.direction, dtype=np.float64)
    to_light /= np.linalg.norm(to_light)
    c = np.ascontiguousarray  # one compiled signature: C-contiguous arrays of fixed dtypes
    _shade_kernel(c(face_g, np.int32), c(bary, np.float32), c(depth, np.float32), verts, faces, vnormals,
                  c(flat, np.bool_), c(vertex_color, np.float32), c(face_color, np.float32),
                  c(color_by_face, np.bool_), c(vertex_label, np.int32), c(face_label, np.int32),
                  c(label_by_face, np.bool_), rays_u, rays_v, to_light, c(light.color, np.float64),
                  float(light.ambient), float(light.intensity), float(light.specular), float(light.shininess),
                  normals_out, part_out, rgb_out)


__all__ = ["Light", "shade_pixels", "face_normals", "vertex_normals", "interpolate", "pixel_rays", "shade"]
