"""Colour maps and image utilities for visualisation: turbo/viridis lookup tables, depth and part-seg
colouring, image grids with labels, and atomic PNG writing.

Every function returns uint8 RGB images ([H, W, 3]); background (depth <= 0, label 0) is black.
"""
from __future__ import annotations

import os
import pathlib
from typing import Sequence

import numpy as np

from hmrjax import fileio
from PIL import Image, ImageDraw, ImageFont

# Polynomial fits of the two maps (turbo: A. Mikhailov's map, fit by R. Du; viridis: fit by M. Zucker),
# evaluated once into 256-entry tables. Coefficients are for powers x^0 .. x^6 (turbo up to x^5).
_TURBO = np.array([
    [0.13572138, 0.09140261, 0.10667330],
    [4.61539260, 2.19418839, 12.64194608],
    [-42.66032258, 4.84296658, -60.58204836],
    [132.13108234, -14.18503333, 110.36276771],
    [-152.94239396, 4.27729857, -89.90310912],
    [59.28637943, 2.82956604, 27.34824973],
])
_VIRIDIS = np.array([
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832],
])


def _lut(coeffs: np.ndarray) -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    powers = x[:, None] ** np.arange(coeffs.shape[0])[None, :]
    return np.round(np.clip(powers @ coeffs, 0.0, 1.0) * 255.0).astype(np.uint8)


COLORMAPS = {"turbo": _lut(_TURBO), "viridis": _lut(_VIRIDIS)}


def apply_colormap(values: np.ndarray, name: str = "turbo") -> np.ndarray:
    """[...] values in [0, 1] (clipped; NaN -> 0) -> [..., 3] uint8 colours from the 256-entry table."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose from {sorted(COLORMAPS)}")
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    idx = np.round(np.clip(v, 0.0, 1.0) * 255.0).astype(np.int64)
    return COLORMAPS[name][idx]


def depth_to_rgb(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                 cmap: str = "turbo", near_is_high: bool = True) -> np.ndarray:
    """[H, W] metric depth (0 or non-finite = background) -> [H, W, 3] uint8, background black.

    vmin/vmax default to the foreground's range; with near_is_high the nearest surface takes the top
    of the map (red for turbo, yellow for viridis).
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be [H, W], got shape {d.shape}")
    fg = np.isfinite(d) & (d > 0)
    out = np.zeros(d.shape + (3,), dtype=np.uint8)
    if not fg.any():
        return out
    lo = float(d[fg].min()) if vmin is None else float(vmin)
    hi = float(d[fg].max()) if vmax is None else float(vmax)
    t = (d[fg] - lo) / max(hi - lo, 1e-12)
    out[fg] = apply_colormap(1.0 - t if near_is_high else t, cmap)
    return out


def part_palette(num_parts: int) -> np.ndarray:
    """[num_parts + 1, 3] uint8 colours: row 0 (background) black, rows 1..P distinct bright colours
    (golden-angle hue steps with alternating saturation/value so neighbours differ)."""
    if num_parts < 0:
        raise ValueError(f"num_parts must be >= 0, got {num_parts}")
    k = np.arange(num_parts, dtype=np.float64)
    hue = (k * 0.618033988749895) % 1.0
    sat = np.where(k % 2 == 0, 0.85, 0.6)
    val = np.where(k % 3 == 2, 0.75, 1.0)
    # HSV -> RGB
    h6 = hue * 6.0
    i = np.floor(h6).astype(np.int64) % 6
    frac = h6 - np.floor(h6)
    p, q, t = val * (1 - sat), val * (1 - sat * frac), val * (1 - sat * (1 - frac))
    rgb = np.select([i[:, None] == n for n in range(6)],
                    [np.stack(c, -1) for c in ((val, t, p), (q, val, p), (p, val, t), (p, q, val),
                                               (t, p, val), (val, p, q))])
    out = np.zeros((num_parts + 1, 3), dtype=np.uint8)
    out[1:] = np.round(rgb * 255.0).astype(np.uint8)
    return out


def parts_to_rgb(labels: np.ndarray, num_parts: int | None = None) -> np.ndarray:
    """[H, W] int part labels (0 = background, 1..P) -> [H, W, 3] uint8 with `part_palette`."""
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"part labels must be integers, got {lab.dtype}")
    if lab.size and lab.min() < 0:
        raise ValueError(f"part labels must be >= 0, got minimum {lab.min()}")
    p = int(lab.max()) if num_parts is None and lab.size else int(num_parts or 0)
    if lab.size and lab.max() > p:
        raise ValueError(f"part label {lab.max()} exceeds num_parts={p}")
    return part_palette(p)[lab]


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """[H, W], [H, W, 1], [H, W, 3] or [H, W, 4] uint8, bool, or float in [0, 1] -> [H, W, 3] uint8."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise ValueError(f"image must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {img.shape}")
    img = img[..., :3]
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating):
        return np.round(np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"image dtype must be uint8, bool or float in [0, 1], got {img.dtype}")


def make_grid(images: Sequence[np.ndarray], nrow: int, labels: Sequence[str] | None = None,
              pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images into one uint8 [H', W', 3] picture, `nrow` images per row (row-major).

    images: any mix accepted by `to_uint8_rgb`; smaller ones are placed top-left in a cell of the
    largest size. labels: optional caption per image, drawn top-left on a dark box.
    """
    if len(images) == 0:
        raise ValueError("make_grid needs at least one image")
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images")
    tiles = [to_uint8_rgb(im) for im in images]
    ch = max(t.shape[0] for t in tiles)
    cw = max(t.shape[1] for t in tiles)
    ncol = min(nrow, len(tiles))
    nrows = -(-len(tiles) // ncol)
    grid = np.full((pad + nrows * (ch + pad), pad + ncol * (cw + pad), 3), pad_value, dtype=np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, ncol)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        grid[y:y + t.shape[0], x:x + t.shape[1]] = t
    if labels is not None:
        pil = Image.fromarray(grid)
        draw = ImageDraw.Draw(pil)
        font = ImageFont.load_default()
        for k, text in enumerate(labels):
            if not text:
                continue
            r, c = divmod(k, ncol)
            y, x = pad + r * (ch + pad), pad + c * (cw + pad)
            box = draw.textbbox((x + 2, y + 1), str(text), font=font)
            draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
            draw.text((x + 2, y + 1), str(text), fill=(255, 255, 255), font=font)
        grid = np.asarray(pil)
    return grid


def save_png(path: str | os.PathLike, image: np.ndarray) -> pathlib.Path:
    """Write an image (anything `to_uint8_rgb` accepts) as PNG: temporary file in the target folder,
    then an atomic rename, so a reader never sees a partial file. Creates parent folders."""
    img = Image.fromarray(to_uint8_rgb(image))
    with fileio.atomic_open(path, "wb") as fh:
        img.save(fh, format="PNG")
    return pathlib.Path(path)


__all__ = ["COLORMAPS", "apply_colormap", "depth_to_rgb", "make_grid", "part_palette", "parts_to_rgb",
           "save_png", "to_uint8_rgb"]
