"""Render a PNG grid of the shipped Anny body model at several shapes and poses (a visual check).

Owns: a small self-contained painter's-algorithm renderer (PIL, flat Lambert shading,
orthographic camera) so the picture does not depend on `hmrjax.render`. Rows are shapes (mean,
then -2/+2 sigma along betas 0 and 1), columns are views/poses (rest front, rest side, two
poses). Usage (in the hmrjax venv):

    python tools/anny_grid.py --model anny --out /tmp/anny_grid.png
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
from PIL import Image, ImageDraw

import hmrjax.body


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def demo_poses(num_joints: int) -> list[np.ndarray]:
    """[J, 3] axis-angle poses (SMPL joint order): zero, a walking-like pose, a reaching pose."""
    zero = np.zeros((num_joints, 3))
    walk = zero.copy()
    walk[1] = [-0.5, 0, 0.1]     # left hip flexion
    walk[2] = [0.4, 0, -0.1]     # right hip extension
    walk[4] = [0.8, 0, 0]        # left knee
    walk[16] = [0, 0, -1.1]      # left shoulder down
    walk[17] = [0, 0, 1.1]       # right shoulder down
    walk[18] = [0, -0.8, 0]      # left elbow bend
    walk[15] = [0.2, 0.3, 0]     # head turn
    reach = zero.copy()
    reach[0] = [0, 0.5, 0]       # turn the body
    reach[3] = [0.3, 0, 0]       # lean forward
    reach[16] = [0, 0.3, 0.6]    # left arm up
    reach[17] = [0, 0.8, 0]      # right arm forward
    reach[19] = [0, 1.2, 0]      # right elbow
    reach[5] = [0, 0, 0.3]       # right leg out
    return [zero, walk, reach]


def render(vertices: np.ndarray, faces: np.ndarray, size: int, view: np.ndarray,
           extent: float = 1.1) -> Image.Image:
    """Flat-shaded orthographic render. vertices [V, 3] metres (y up), faces [F, 3]; the camera
    looks along -z after rotating the mesh by ``view``; ``extent`` metres map to half the image."""
    v = vertices @ view.T
    v = v - np.array([0.0, 0.5 * (v[:, 1].max() + v[:, 1].min()), 0.0])
    tri = v[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    light = np.array([0.3, 0.4, 1.0])
    light /= np.linalg.norm(light)
    shade = np.clip(normals @ light, 0.0, 1.0) * 0.8 + 0.2
    front = normals[:, 2] > 0  # back-face culling (outward normals)
    order = np.argsort(tri[:, :, 2].mean(1))  # far to near
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    scale = size / (2 * extent)
    for f in order:
        if not front[f]:
            continue
        pts = [(size / 2 + p[0] * scale, size / 2 - p[1] * scale) for p in tri[f]]
        c = int(255 * shade[f])
        draw.polygon(pts, fill=(int(c * 0.85), int(c * 0.75), c))
    return img


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="anny")
    parser.add_argument("--out", default="anny_grid.png")
    parser.add_argument("--cell", type=int, default=256)
    args = parser.parse_args(argv)
    body = hmrjax.body.load(args.model)
    nb = body.num_betas
    shapes = [np.zeros(nb)]
    for k in (0, 1):
        for s in (-2.0, 2.0):
            b = np.zeros(nb)
            b[k] = s
            shapes.append(b)
    poses = demo_poses(body.num_joints)
    columns = [(poses[0], rot_y(0.0)), (poses[0], rot_y(np.pi / 2)), (poses[1], rot_y(0.4)),
               (poses[2], rot_y(-0.3))]
    faces = np.asarray(body.faces)
    grid = Image.new("RGB", (args.cell * len(columns), args.cell * len(shapes)), (255, 255, 255))
    for r, betas in enumerate(shapes):
        pose = np.stack([c[0] for c in columns])
        out = body(pose=pose.astype(np.float32),
                   betas=np.tile(betas, (len(columns), 1)).astype(np.float32))
        verts = np.asarray(out.vertices)
        for c, (_, view) in enumerate(columns):
            grid.paste(render(verts[c], faces, args.cell, view), (c * args.cell, r * args.cell))
    directory = os.path.dirname(os.path.abspath(args.out))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=directory)
    os.close(fd)
    grid.save(tmp, format="PNG")
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({len(shapes)} shapes x {len(columns)} views)")


if __name__ == "__main__":
    main()
