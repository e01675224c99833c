"""Drawing on images: a shaded semi-transparent mesh over a photo, 2-D keypoints with skeletons, and
bounding boxes. Inputs and outputs are uint8 RGB [H, W, 3]; the input image is never modified.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from hmrjax.render.colormaps import to_uint8_rgb
from hmrjax.render.raster import Camera
from hmrjax.render.scene import Mesh, render
from hmrjax.render.shading import Light

# COCO-17 skeleton (0-based), the same edges as `hmrjax.body.layouts.COCO17.edges` (kept here so that
# drawing does not import JAX; a test checks they agree).
COCO17_EDGES = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
# COCO-17 keypoint sides: 0 centre (nose), 1 left (odd indices), 2 right (even indices > 0).
_COCO17_SIDE = (0,) + tuple(1 if k % 2 else 2 for k in range(1, 17))
SIDE_COLORS = ((255, 255, 255), (255, 128, 0), (0, 160, 255))  # centre, left, right


def blend(image: np.ndarray, overlay: np.ndarray, mask: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Alpha-blend `overlay` onto `image` where `mask` is set; other pixels are returned unchanged.

    image, overlay: [H, W, 3] uint8; mask: [H, W] bool; alpha: weight of the overlay in [0, 1].
    """
    img = to_uint8_rgb(image)
    ov = to_uint8_rgb(overlay)
    m = np.asarray(mask, dtype=bool)
    if ov.shape != img.shape or m.shape != img.shape[:2]:
        raise ValueError(f"blend: image {img.shape}, overlay {ov.shape} and mask {m.shape} must agree")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = img.copy()
    mixed = (1.0 - alpha) * img[m].astype(np.float32) + alpha * ov[m].astype(np.float32)
    out[m] = np.round(mixed).astype(np.uint8)
    return out


def overlay_mesh(image: np.ndarray, vertices, faces, camera: Camera, *, color=(0.65, 0.74, 0.86),
                 alpha: float = 0.7, light: Light = Light(specular=0.2)) -> np.ndarray:
    """Draw a shaded, semi-transparent mesh over an image.

    image: [H, W, 3] uint8 with H, W = camera.image_size; vertices: [V, 3] camera-frame (m) or a list of
    such (several people); faces: [F, 3] or a list; color: RGB in [0, 1] (one for all meshes).
    Pixels outside the rendered silhouette are unchanged.
    """
    img = to_uint8_rgb(image)
    if img.shape[:2] != tuple(camera.image_size):
        raise ValueError(f"image is {img.shape[:2]} but camera.image_size is {camera.image_size}")
    if isinstance(vertices, np.ndarray) or not isinstance(vertices, (list, tuple)):
        vertices, faces = [vertices], [faces]
    meshes = [Mesh(np.asarray(v), np.asarray(f), color=tuple(color)) for v, f in zip(vertices, faces)]
    out = render(meshes, camera, light=light)
    return blend(img, out.rgb, out.mask, alpha)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, edges: Sequence[tuple[int, int]] | None = COCO17_EDGES,
                   *, radius: float = 3.0, width: int = 2, colors: Sequence[tuple[int, int, int]] | None = None,
                   visibility_threshold: float = 0.5) -> np.ndarray:
    """Draw 2-D keypoints and their skeleton.

    keypoints: [K, 2] (all visible) or [K, 3] (x, y in pixels, visibility or confidence); a keypoint
    with visibility >= `visibility_threshold` is a filled circle, otherwise a hollow circle; bones
    between two visible points are solid lines `width` wide, bones touching an invisible point are
    1 px lines. Non-finite coordinates are skipped. edges: (i, j) pairs (None: no bones); colors:
    per-keypoint RGB (default: COCO-17 sides for K == 17, else white).
    """
    img = to_uint8_rgb(image)
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be [K, 2] or [K, 3], got {kp.shape}")
    vis = kp[:, 2] >= visibility_threshold if kp.shape[1] == 3 else np.ones(len(kp), bool)
    ok = np.all(np.isfinite(kp[:, :2]), axis=1)
    if colors is None:
        colors = [SIDE_COLORS[s] for s in _COCO17_SIDE] if len(kp) == 17 else [(255, 255, 255)] * len(kp)
    if len(colors) != len(kp):
        raise ValueError(f"got {len(colors)} colours for {len(kp)} keypoints")
    pil = Image.fromarray(img.copy())
    draw = ImageDraw.Draw(pil)
    for i, j in edges or ():
        if not (0 <= i < len(kp) and 0 <= j < len(kp)):
            raise ValueError(f"edge ({i}, {j}) is out of range for {len(kp)} keypoints")
        if ok[i] and ok[j]:
            both = vis[i] and vis[j]
            draw.line([tuple(kp[i, :2]), tuple(kp[j, :2])], fill=tuple(colors[j]), width=width if both else 1)
    for k in range(len(kp)):
        if not ok[k]:
            continue
        x, y = kp[k, :2]
        box = (x - radius, y - radius, x + radius, y + radius)
        if vis[k]:
            draw.ellipse(box, fill=tuple(colors[k]), outline=(0, 0, 0))
        else:
            draw.ellipse(box, fill=None, outline=tuple(colors[k]), width=1)
    return np.asarray(pil)


def draw_bbox(image: np.ndarray, xyxy=None, *, center=None, scale=None, color=(0, 255, 0), width: int = 2,
              label: str | None = None) -> np.ndarray:
    """Draw a box given as xyxy = (x0, y0, x1, y1) pixels, or as the example schema's square person
    box (center (2,) px, scale = side length px). label: optional text above the box."""
    img = to_uint8_rgb(image)
    if xyxy is None:
        if center is None or scale is None:
            raise ValueError("draw_bbox needs xyxy, or center and scale")
        cx, cy = np.asarray(center, dtype=np.float64)
        h = float(scale) / 2
        xyxy = (cx - h, cy - h, cx + h, cy + h)
    box = tuple(float(v) for v in np.asarray(xyxy, dtype=np.float64).reshape(4))
    if not np.all(np.isfinite(box)) or box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"box must be finite with x1 >= x0 and y1 >= y0, got {box}")
    pil = Image.fromarray(img.copy())
    draw = ImageDraw.Draw(pil)
    draw.rectangle(box, outline=tuple(color), width=width)
    if label:
        draw.text((box[0] + 2, box[1] - 12), str(label), fill=tuple(color))
    return np.asarray(pil)


__all__ = ["COCO17_EDGES", "SIDE_COLORS", "blend", "draw_bbox", "draw_keypoints", "overlay_mesh"]
