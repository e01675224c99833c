"""Vision Transformer (Dosovitskiy et al. 2021) in the timm / ViTPose layout, plus ViTPose's heatmap head.

Owns: `VisionTransformer` (ViT-B/L/H and a tiny variant), `SimpleHeatmapDecoder` (ViTPose "classic"
decoder: two 4x4/2 deconvs + BN + ReLU and a 1x1 conv, mmpose `TopdownHeatmapSimpleHead`), and
`ViTPose` (backbone + decoder, named `backbone` / `keypoint_head` as in the ViTPose checkpoints).

ViTPose-style use: input e.g. 256x192, output a feature map [B, H/p, W/p, C] of the patch tokens (the
class token, if the weights have one, takes part in attention but not in the output). The stored
position embedding (`pos_grid`, e.g. 14x14 for timm's 224 px models) is resized bicubically to the
input grid as timm's `resample_abs_pos_embed` does (torch bicubic, antialias=True).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from hmrjax.nn.backbones.ops import batch_norm, resize

Dtype = Any

__all__ = ["VisionTransformer", "SimpleHeatmapDecoder", "ViTPose", "VIT_CONFIGS", "vit"]


def _gelu(x):
    return nn.gelu(x, approximate=False)  # torch nn.GELU default (erf)


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> tokens (a p x p / p conv, named `proj` as in timm)."""

    embed_dim: int
    patch_size: int
    padding: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        p, pad = self.patch_size, self.padding
        return nn.Conv(self.embed_dim, (p, p), strides=(p, p), padding=((pad, pad), (pad, pad)), use_bias=True,
                       dtype=self.dtype, param_dtype=jnp.float32, name="proj")(x)


class Attention(nn.Module):
    """Multi-head self-attention with a fused `qkv` projection (timm layout: q, k, v stacked on out dim)."""

    dim: int
    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, n, c = x.shape
        h = self.num_heads
        qkv = nn.Dense(3 * c, dtype=self.dtype, param_dtype=jnp.float32, name="qkv")(x)
        qkv = qkv.reshape(b, n, 3, h, c // h)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, N, h, d]
        att = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (c // h) ** -0.5
        att = nn.softmax(att.astype(jnp.float32), axis=-1).astype(self.dtype)
        y = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, n, c)
        return nn.Dense(c, dtype=self.dtype, param_dtype=jnp.float32, name="proj")(y)


class Mlp(nn.Module):
    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = _gelu(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32, name="fc1")(x))
        return nn.Dense(c, dtype=self.dtype, param_dtype=jnp.float32, name="fc2")(x)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)); x + mlp(norm2(x)); LayerNorm eps 1e-6."""

    dim: int
    num_heads: int
    mlp_ratio: float = 4.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        ln = lambda name: nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32, name=name)
        x = x + Attention(self.dim, self.num_heads, self.dtype, name="attn")(ln("norm1")(x))
        return x + Mlp(int(self.dim * self.mlp_ratio), self.dtype, name="mlp")(ln("norm2")(x))


class VisionTransformer(nn.Module):
    """ViT encoder.

    Attributes:
      patch_size, embed_dim, depth, num_heads, mlp_ratio: the architecture.
      pos_grid: (rows, cols) of the stored position embedding (timm 224 px / p16: (14, 14)).
      class_token: prepend a learned `cls_token` (timm); False for ViTPose checkpoints.
      pos_embed_cls: the stored `pos_embed` has a leading class-token slot (timm and ViTPose both do).
        Without a class token that slot is added to every patch token, as ViTPose does.
      patch_padding: padding of the patch conv (timm 0; ViTPose's own PatchEmbed pads 2 for p16 ratio 1
        -- set it when loading such weights; see `vitpose_kwargs`).
      pos_interp: how the stored position grid is resized to the input grid: 'bicubic_aa' (timm's
        `resample_abs_pos_embed`, torch bicubic with antialias=True) or 'bicubic' (mmpose/ViTPose).
      num_classes: > 0 adds timm's `head` on the class token.
      dtype: compute dtype; parameters stay float32.
    """

    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    pos_grid: tuple[int, int] = (14, 14)
    class_token: bool = True
    pos_embed_cls: bool = True
    patch_padding: int = 0
    pos_interp: str = "bicubic_aa"
    num_classes: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> dict[str, jnp.ndarray]:
        """x: [B, H, W, 3] normalised image. `train` is accepted for API symmetry (no dropout here).

        Returns a dict: 'features' [B, H/p, W/p, C] (final-norm patch tokens as a map), 'tokens'
        [B, N, C] (same, flattened row-major), 'cls' [B, C] when `class_token`, 'logits' when
        `num_classes > 0`.
        """
        if x.ndim != 4:
            raise ValueError(f"VisionTransformer expects NHWC images [B, H, W, C], got shape {x.shape}")
        c = self.embed_dim
        x = PatchEmbed(c, self.patch_size, self.patch_padding, self.dtype, name="patch_embed")(x.astype(self.dtype))
        b, gh, gw, _ = x.shape
        x = x.reshape(b, gh * gw, c)
        n_stored = self.pos_grid[0] * self.pos_grid[1] + int(self.pos_embed_cls)
        pos = self.param("pos_embed", nn.initializers.truncated_normal(0.02), (1, n_stored, c), jnp.float32)
        pos_cls, pos_patch = (pos[:, :1], pos[:, 1:]) if self.pos_embed_cls else (None, pos)
        pos_patch = pos_patch.reshape(1, *self.pos_grid, c)
        pos_patch = resize(pos_patch, (gh, gw), self.pos_interp, align_corners=False).reshape(1, gh * gw, c)
        x = x + pos_patch.astype(self.dtype)
        if self.class_token:
            cls = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, c), jnp.float32)
            cls = cls + pos_cls if pos_cls is not None else cls
            x = jnp.concatenate([jnp.broadcast_to(cls.astype(self.dtype), (b, 1, c)), x], axis=1)
        elif pos_cls is not None:
            x = x + pos_cls.astype(self.dtype)  # ViTPose: x + pos_embed[:, 1:] + pos_embed[:, :1]
        for i in range(self.depth):
            x = Block(c, self.num_heads, self.mlp_ratio, self.dtype, name=f"blocks_{i}")(x)
        x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32, name="norm")(x)
        out = {}
        if self.class_token:
            out["cls"], x = x[:, 0], x[:, 1:]
        out["tokens"] = x
        out["features"] = x.reshape(b, gh, gw, c)
        if self.num_classes > 0:
            if not self.class_token:
                raise ValueError("VisionTransformer: num_classes > 0 needs class_token=True")
            out["logits"] = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                                     name="head")(out["cls"])
        return out


class SimpleHeatmapDecoder(nn.Module):
    """ViTPose classic decoder: 2 x [ConvTranspose 4x4/2 (no bias) + BN + ReLU] then a 1x1 conv.

    [B, h, w, C] -> heatmaps [B, 4h, 4w, num_keypoints] (256x192 input, p16: 16x12 -> 64x48).
    Names mirror mmpose `deconv_layers.{0,1,3,4}` and `final_layer`.
    """

    num_keypoints: int = 17
    num_filters: tuple[int, ...] = (256, 256)
    frozen_bn: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        for i, f in enumerate(self.num_filters):
            # torch ConvTranspose2d(k=4, s=2, p=1) == dilated conv with padding k - 1 - p = 2 and a flipped
            # kernel; transpose_kernel=True does the flip and stores [kh, kw, out, in].
            x = nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=False,
                                 transpose_kernel=True, dtype=self.dtype, param_dtype=jnp.float32,
                                 kernel_init=nn.initializers.normal(0.001), name=f"deconv_layers_{3 * i}")(x)
            x = batch_norm(train, self.frozen_bn, name=f"deconv_layers_{3 * i + 1}", dtype=self.dtype)(x)
            x = nn.relu(x)
        return nn.Conv(self.num_keypoints, (1, 1), dtype=self.dtype, param_dtype=jnp.float32,
                       kernel_init=nn.initializers.normal(0.001), name="final_layer")(x)


class ViTPose(nn.Module):
    """ViTPose top-down pose model: `backbone` (ViT) + `keypoint_head` (SimpleHeatmapDecoder)."""

    backbone_kwargs: dict = None
    num_keypoints: int = 17
    frozen_bn: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> dict[str, jnp.ndarray]:
        """x: [B, H, W, 3] -> {'features': [B, H/p, W/p, C], 'heatmaps': [B, 4H/p, 4W/p, K]}."""
        kw = dict(self.backbone_kwargs or {})
        feats = VisionTransformer(**kw, dtype=self.dtype, name="backbone")(x, train)["features"]
        hm = SimpleHeatmapDecoder(self.num_keypoints, frozen_bn=self.frozen_bn, dtype=self.dtype,
                                  name="keypoint_head")(feats, train)
        return {"features": feats, "heatmaps": hm}


VIT_CONFIGS = {
    "vit_base_patch16_224": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16_224": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    "vit_huge_patch14_224": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16, pos_grid=(16, 16)),
    "vit_huge_patch16_224": dict(patch_size=16, embed_dim=1280, depth=32, num_heads=16),
    "vit_tiny_test": dict(patch_size=16, embed_dim=32, depth=2, num_heads=2, pos_grid=(4, 4)),
}


def vit(name: str = "vit_base_patch16_224", **kwargs) -> VisionTransformer:
    """Build a named ViT; kwargs override attributes (e.g. `num_classes=1000` for timm's full model)."""
    if name not in VIT_CONFIGS:
        raise ValueError(f"unknown ViT {name!r}; choose from {sorted(VIT_CONFIGS)}")
    return VisionTransformer(**{**VIT_CONFIGS[name], **kwargs})


def vitpose_kwargs(name: str = "vit_base_patch16_224", image_size: tuple[int, int] = (256, 192)) -> dict:
    """Backbone kwargs for ViTPose checkpoints (no class token, pos grid at the training crop, pad 2).

    ViTPose's PatchEmbed uses padding 4 + 2 * (ratio // 2 - 1) = 2 for ratio 1; with 256x192 and p16
    that still gives a 16x12 grid.
    """
    cfg = dict(VIT_CONFIGS[name])
    p = cfg["patch_size"]
    pad = 2
    grid = ((image_size[0] + 2 * pad - p) // p + 1, (image_size[1] + 2 * pad - p) // p + 1)
    return {**cfg, "class_token": False, "pos_embed_cls": True, "patch_padding": pad, "pos_grid": grid,
            "pos_interp": "bicubic"}
