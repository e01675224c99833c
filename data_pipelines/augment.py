"""Photometric augmentation of a crop (albumentations-style, numpy + PIL, seeded by a numpy Generator).

Owns `photometric(img, rng, cfg)`: synthetic occlusion, colour jitter (brightness, contrast,
saturation, hue as one 3x3 colour matrix + offset), Gaussian blur, Gaussian noise and JPEG
re-compression, each applied with its configured probability, in that order. Every random draw comes
from the `rng` grain's `random_map` passes, so a seed reproduces the batch exactly.

Occluders only change pixels: keypoint visibility always comes from the ground truth (a keypoint
behind a synthetic occluder keeps visibility 1: the model should still predict it, as under real
occlusion where the annotation says where the joint is).

Config keys (`default_config()`): color_prob, brightness, contrast, saturation (factor 1 + U(-a, a)),
hue (degrees, U(-a, a)), blur_prob, blur_sigma (lo, hi) px, noise_prob, noise_std (lo, hi) in 0..255
units, jpeg_prob, jpeg_quality (lo, hi), occlusion_prob, occlusion_max (count 1..max),
occlusion_size (lo, hi) as fractions of the crop side.
"""
from __future__ import annotations

import io

import ml_collections
import numpy as np
from PIL import Image, ImageFilter

__all__ = ["default_config", "photometric", "color_matrix", "occlude", "jpeg_recompress"]

_GRAY = np.array([0.299, 0.587, 0.114])
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def default_config() -> ml_collections.ConfigDict:
    """Photometric augmentation settings (train defaults; set `enabled=False` for none)."""
    return ml_collections.ConfigDict({
        "enabled": True,
        "color_prob": 0.8, "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 10.0,
        "blur_prob": 0.1, "blur_sigma": (0.5, 1.5),
        "noise_prob": 0.1, "noise_std": (2.0, 8.0),
        "jpeg_prob": 0.2, "jpeg_quality": (30, 90),
        "occlusion_prob": 0.3, "occlusion_max": 2, "occlusion_size": (0.1, 0.4),
    })


def color_matrix(brightness: float, contrast: float, saturation: float, hue_deg: float, mean_gray: float):
    """(A [3, 3], b [3]) with x' = A x + b doing brightness, contrast, saturation, then hue on RGB x.

    brightness: x b. contrast: (x - m) c + m, m = mean gray level after brightness (`mean_gray` is the
    input's). saturation: g + s (x - g), g = gray(x) (Rec. 601 weights). hue: rotation by hue_deg of the
    chroma (I, Q) plane of YIQ, which keeps the luma.
    """
    eye = np.eye(3)
    a = brightness * eye
    b = np.zeros(3)
    m = brightness * mean_gray
    a, b = contrast * a, contrast * b + (1.0 - contrast) * m
    sat = np.outer(np.ones(3), _GRAY) * (1.0 - saturation) + saturation * eye
    a, b = sat @ a, sat @ b
    th = np.deg2rad(hue_deg)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(th), -np.sin(th)], [0.0, np.sin(th), np.cos(th)]])
    hue = np.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ
    return hue @ a, hue @ b


def occlude(img: np.ndarray, rng: np.random.Generator, count: int, size_range) -> np.ndarray:
    """Draws `count` random rectangles / ellipses (flat colour or noise texture) on [S, S, 3] uint8."""
    out = np.array(img, copy=True)
    h, w = out.shape[:2]
    for _ in range(count):
        rh = max(int(rng.uniform(*size_range) * h), 1)
        rw = max(int(rng.uniform(*size_range) * w), 1)
        y0 = int(rng.integers(0, max(h - rh, 0) + 1))
        x0 = int(rng.integers(0, max(w - rw, 0) + 1))
        if rng.random() < 0.5:
            fill = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (rh, rw, 3))
        else:
            base = rng.integers(0, 256, 3).astype(np.float32)
            fill = np.clip(base + rng.normal(0.0, 40.0, (rh, rw, 3)), 0, 255).astype(np.uint8)
        region = out[y0:y0 + rh, x0:x0 + rw]
        if rng.random() < 0.5:  # rectangle
            region[...] = fill
        else:  # ellipse inscribed in the box
            yy = (np.arange(rh)[:, None] + 0.5) / rh * 2 - 1
            xx = (np.arange(rw)[None, :] + 0.5) / rw * 2 - 1
            inside = yy ** 2 + xx ** 2 <= 1.0
            region[inside] = fill[inside]
    return out


def jpeg_recompress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encodes [H, W, 3] uint8 as JPEG at `quality` and decodes it again (PIL)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def photometric(img: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
    """Augments a [S, S, 3] uint8 crop; returns uint8 of the same shape."""
    if not cfg.enabled:
        return img
    if cfg.occlusion_prob > 0 and rng.random() < cfg.occlusion_prob:
        img = occlude(img, rng, int(rng.integers(1, int(cfg.occlusion_max) + 1)), cfg.occlusion_size)
    if cfg.color_prob > 0 and rng.random() < cfg.color_prob:
        b = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
        c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        s = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
        hue = rng.uniform(-cfg.hue, cfg.hue)
        # contrast reference: mean gray level over every 4th row/column (1/16 of the pixels, ~10x cheaper)
        mean_gray = float(img[::4, ::4].reshape(-1, 3).mean(0) @ _GRAY)
        a, off = color_matrix(b, c, s, hue, mean_gray)
        x = img.astype(np.float32) @ a.T.astype(np.float32)
        x += (off + 0.5).astype(np.float32)  # + 0.5: the uint8 cast below then rounds
        img = np.clip(x, 0, 255, out=x).astype(np.uint8)
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        sigma = rng.uniform(*cfg.blur_sigma)
        img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=float(sigma))))
    if cfg.noise_prob > 0 and rng.random() < cfg.noise_prob:
        std = rng.uniform(*cfg.noise_std)
        x = rng.standard_normal(img.shape, dtype=np.float32)
        x *= np.float32(std)
        x += img
        x += np.float32(0.5)
        img = np.clip(x, 0, 255, out=x).astype(np.uint8)
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        img = jpeg_recompress(img, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return img
