"""Independent float64 references for the renderer tests: per-pixel ray casting (Moller-Trumbore) and
the screen-space distance of each pixel centre to projected triangle edges."""
import numpy as np


def pixel_rays(height, width, fx, fy, cx, cy):
    """[H, W, 3] float64 rays through pixel centres (u = j, v = i), z component 1."""
    jj, ii = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return np.stack([(jj - cx) / fx, (ii - cy) / fy, np.ones_like(jj)], axis=-1)


def ray_cast(vertices, faces, height, width, fx, fy, cx, cy, z_near=0.0):
    """Nearest hit of every pixel ray. Returns depth [H, W] (0 = miss), face [H, W] (-1), bary [H, W, 3]."""
    rays = pixel_rays(height, width, fx, fy, cx, cy).reshape(-1, 3)
    v = np.asarray(vertices, dtype=np.float64)
    depth = np.full(rays.shape[0], np.inf)
    face = np.full(rays.shape[0], -1)
    bary = np.zeros((rays.shape[0], 3))
    for k, (a, b, c) in enumerate(np.asarray(faces)):
        e1, e2 = v[b] - v[a], v[c] - v[a]
        p = np.cross(rays, e2)
        det = p @ e1
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inv = 1.0 / det
            s = -v[a]                                  # ray origin is the camera centre
            u = (p @ s) * inv
            q = np.cross(s, e1)
            w = (rays * q).sum(-1) * inv
            t = (q @ e2) * inv                         # ray z = 1, so t is the metric depth z
            hit = (np.abs(det) > 1e-15) & (u >= 0) & (w >= 0) & (u + w <= 1) & (t >= z_near) & (t < depth)
        depth[hit] = t[hit]
        face[hit] = k
        bary[hit] = np.stack([1 - u[hit] - w[hit], u[hit], w[hit]], -1)
    depth[~np.isfinite(depth)] = 0.0
    return depth.reshape(height, width), face.reshape(height, width), bary.reshape(height, width, 3)


def edge_distance(vertices, faces, height, width, fx, fy, cx, cy):
    """[H, W] screen distance (px) from each pixel centre to the nearest projected edge of any face
    (all vertices must be in front of the camera)."""
    v = np.asarray(vertices, dtype=np.float64)
    uv = np.stack([fx * v[:, 0] / v[:, 2] + cx, fy * v[:, 1] / v[:, 2] + cy], -1)
    jj, ii = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pts = np.stack([jj, ii], -1)
    best = np.full((height, width), np.inf)
    for tri in np.asarray(faces):
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            d = uv[b] - uv[a]
            t = np.clip(((pts - uv[a]) @ d) / max(d @ d, 1e-300), 0, 1)
            dist = np.linalg.norm(pts - (uv[a] + t[..., None] * d), axis=-1)
            best = np.minimum(best, dist)
    return best
