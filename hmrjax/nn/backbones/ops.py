"""Small layers shared by the backbones, written to match PyTorch semantics exactly.

Owns: torch-style conv / batch-norm constructors (explicit symmetric padding, eps 1e-5, momentum 0.1),
and resizing that reproduces `torch.nn.functional.interpolate` (bilinear with either `align_corners`,
bicubic with A = -0.75, nearest with an integer scale) by static interpolation matrices, so that
converted PyTorch weights give the same features.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

Dtype = Any

__all__ = ["conv", "batch_norm", "resize", "interp_matrix", "upsample_nearest"]


def conv(features: int, kernel: int, stride: int = 1, *, bias: bool = False, name: str | None = None,
         dtype: Dtype = jnp.float32, padding: int | None = None, bias_init=nn.initializers.zeros) -> nn.Conv:
    """A 2-D NHWC convolution padded like torch's `Conv2d(k, stride, padding=k // 2)`.

    Flax's 'SAME' pads asymmetrically for stride 2 on even sizes; torch pads k // 2 on both sides.
    """
    pad = kernel // 2 if padding is None else padding
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                   use_bias=bias, dtype=dtype, param_dtype=jnp.float32, name=name, bias_init=bias_init,
                   kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))


def batch_norm(train: bool, frozen: bool, *, name: str | None = None, dtype: Dtype = jnp.float32,
               zero_init: bool = False) -> nn.BatchNorm:
    """torch `BatchNorm2d` defaults (eps 1e-5, momentum 0.1 == flax momentum 0.9).

    `frozen=True` always normalises with the running statistics (and never updates them).
    One known difference in train mode: flax updates `var` with the biased batch variance, torch with the
    unbiased one (factor n / (n - 1), n = B * H * W); normalisation itself is identical.
    """
    return nn.BatchNorm(use_running_average=(not train) or frozen, momentum=0.9, epsilon=1e-5,
                        dtype=dtype, param_dtype=jnp.float32, name=name,
                        scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones)


@functools.lru_cache(maxsize=256)
def interp_matrix(in_size: int, out_size: int, mode: str, align_corners: bool = False) -> np.ndarray:
    """[out_size, in_size] float64 matrix M with torch's 1-D interpolation y = M @ x.

    mode: 'bilinear' (linear taps), 'bicubic' (Keys cubic, A = -0.75, border indices clamped) or
    'bicubic_aa' (`antialias=True`), as `torch.nn.functional.interpolate(size=...)` (no `scale_factor`).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"interp_matrix: sizes must be >= 1, got in={in_size}, out={out_size}")
    m = np.zeros((out_size, in_size), np.float64)
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = dst * scale
    else:
        scale = in_size / out_size
        src = (dst + 0.5) * scale - 0.5
    if mode == "bilinear":
        if not align_corners:
            src = np.maximum(src, 0.0)  # torch clamps negative source coords for linear modes
        i0 = np.floor(src).astype(np.int64)
        i0 = np.minimum(i0, in_size - 1)
        i1 = np.minimum(i0 + 1, in_size - 1)
        t = src - i0
        np.add.at(m, (np.arange(out_size), i0), 1.0 - t)
        np.add.at(m, (np.arange(out_size), i1), t)
    elif mode == "bicubic":
        a = -0.75
        i0 = np.floor(src).astype(np.int64)
        t = src - i0

        def near(x):  # |x| <= 1
            return ((a + 2) * x - (a + 3)) * x * x + 1

        def far(x):  # 1 < |x| < 2
            return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

        weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
        for k, w in zip(range(-1, 3), weights):
            idx = np.clip(i0 + k, 0, in_size - 1)
            np.add.at(m, (np.arange(out_size), idx), w)
    elif mode == "bicubic_aa":
        # torch `interpolate(mode='bicubic', antialias=True)` (PIL's filter): Keys cubic with A = -0.5,
        # support widened by the scale when downsampling, taps cut at the border and renormalised.
        if align_corners:
            raise ValueError("interp_matrix: 'bicubic_aa' supports align_corners=False only (as torch)")
        a = -0.5

        def cubic(x):
            x = np.abs(x)
            return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                            np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))

        support = 2.0 * scale if scale >= 1 else 2.0
        inv = 1.0 / scale if scale >= 1 else 1.0
        for i in range(out_size):
            center = scale * (i + 0.5)
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), in_size)
            w = cubic((np.arange(lo, hi) - center + 0.5) * inv)
            m[i, lo:hi] = w / w.sum()
    else:
        raise ValueError(f"interp_matrix: unknown mode {mode!r}; use 'bilinear', 'bicubic' or 'bicubic_aa'")
    return m


def resize(x: jnp.ndarray, size: tuple[int, int], mode: str = "bilinear", align_corners: bool = False,
           axes: tuple[int, int] = (1, 2)) -> jnp.ndarray:
    """Resize the two spatial axes of `x` (NHWC by default) to `size` = (H', W') like torch interpolate.

    Implemented as two small matrix products, so it is exact w.r.t. torch up to float rounding,
    differentiable, and cheap for feature maps (H, W <= a few hundred).
    """
    h_ax, w_ax = axes
    in_h, in_w = x.shape[h_ax], x.shape[w_ax]
    out_h, out_w = int(size[0]), int(size[1])
    if (in_h, in_w) == (out_h, out_w):
        return x  # every supported mode is the identity at equal size
    mh = jnp.asarray(interp_matrix(in_h, out_h, mode, align_corners), x.dtype)
    mw = jnp.asarray(interp_matrix(in_w, out_w, mode, align_corners), x.dtype)
    x = jnp.moveaxis(x, (h_ax, w_ax), (-2, -1))
    x = jnp.einsum("oh,...hw->...ow", mh, x)
    x = jnp.einsum("pw,...hw->...hp", mw, x)
    return jnp.moveaxis(x, (-2, -1), (h_ax, w_ax))


def upsample_nearest(x: jnp.ndarray, factor: int) -> jnp.ndarray:
    """torch `nn.Upsample(scale_factor=factor, mode='nearest')` for NHWC `x` and an integer factor."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
