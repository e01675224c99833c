"""Dense decoders on multi-resolution backbone features: D-PoSE's light U-Net (depth / part segmentation).

Owns `UNetDecoder`: from the lowest-resolution branch up to the highest, each stage upsamples x2
(bilinear) -> 1x1 conv-BN-ReLU to the skip's width -> concat with the skip -> `num_blocks` residual
(basic) blocks; then a 3x3 conv-BN-ReLU and a 1x1 conv to `out_channels` (Vasilikopoulos et al., D-PoSE).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hmrjax.nn.backbones.ops import batch_norm, conv, resize
from hmrjax.nn.backbones.resnet import BasicBlock

__all__ = ["UNetDecoder"]


class UNetDecoder(nn.Module):
    """U-Net-like decoder over HRNet branches.

    Attributes:
      out_channels: channels of the output map (depth: 1; part segmentation: 1 + parts).
      num_blocks: residual blocks per stage (paper: 4).
      frozen_bn: always use BatchNorm running statistics.
      out_bias: initial bias of the final 1x1 conv, one value per output channel (empty: zeros); e.g. the
        log class frequencies for a segmentation head, so training starts at the class prior.
      min_width: each stage (and the final 3x3 conv) is at least this wide (0: the skip's width, as the
        paper). A narrow backbone (hrnet_tiny: 8 channels at 1/4) otherwise leaves a 23-class segmentation
        head 8 channels to work with.
      dtype: compute dtype (parameters float32).

    Call: branches (tuple of [B, H/2^k, W/2^k, C_k], highest resolution first, e.g. HRNet's
    'branches'), train -> (output [B, H, W, out_channels] at the first branch's resolution,
    features [B, H, W, max(C_0, min_width)] (the map before the final 1x1 conv; D-PoSE pools it as depth features)).
    """

    out_channels: int
    num_blocks: int = 4
    frozen_bn: bool = False
    out_bias: Sequence[float] = ()
    dtype: Any = jnp.float32
    min_width: int = 0

    @nn.compact
    def __call__(self, branches: Sequence[jax.Array], train: bool = False):
        if len(branches) < 2:
            raise ValueError(f"UNetDecoder needs >= 2 branches, got {len(branches)}")
        bn = lambda name: batch_norm(train, self.frozen_bn, name=name, dtype=self.dtype)
        x = branches[-1].astype(self.dtype)
        for s, skip in enumerate(reversed(branches[:-1])):
            width = max(skip.shape[-1], self.min_width)
            x = resize(x, skip.shape[1:3], "bilinear", align_corners=False)
            x = nn.relu(bn(f"up{s}_bn")(conv(width, 1, name=f"up{s}_conv", dtype=self.dtype)(x)))
            x = jnp.concatenate([x, skip.astype(self.dtype)], axis=-1)
            for k in range(self.num_blocks):
                x = BasicBlock(width, 1, k == 0, self.frozen_bn, dtype=self.dtype, name=f"stage{s}_block{k}")(
                    x, train)
        width = max(branches[0].shape[-1], self.min_width)
        feats = nn.relu(bn("final_bn")(conv(width, 3, name="final_conv", dtype=self.dtype)(x)))
        bias_init = nn.initializers.zeros
        if len(self.out_bias):
            if len(self.out_bias) != self.out_channels:
                raise ValueError(f"UNetDecoder: out_bias has {len(self.out_bias)} values for "
                                 f"{self.out_channels} output channels")
            bias_init = lambda *_: jnp.asarray(self.out_bias, jnp.float32)
        out = conv(self.out_channels, 1, bias=True, name="out_conv", dtype=self.dtype, bias_init=bias_init)(feats)
        return out.astype(jnp.float32), feats
