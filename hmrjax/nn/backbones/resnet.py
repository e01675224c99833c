"""ResNet (He et al. 2016) in the timm / torchvision layout, NHWC, plus the residual blocks HRNet reuses.

Owns: `BasicBlock`, `Bottleneck`, `ResNet`, and the named configurations `resnet50`, `resnet101`,
`resnet_tiny`. Submodule names mirror the PyTorch `state_dict` (`layer1_0.downsample_0` <->
`layer1.0.downsample.0`) so `convert.py` maps weights by a fixed rule. Parameters are float32;
`dtype` sets the compute dtype (e.g. `jnp.bfloat16`).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from hmrjax.nn.backbones.ops import batch_norm, conv

Dtype = Any

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet50", "resnet101", "resnet_tiny", "RESNET_CONFIGS"]


class BasicBlock(nn.Module):
    """Two 3x3 convs + identity (or 1x1-conv `downsample`) shortcut; output channels = `planes`."""

    planes: int
    stride: int = 1
    downsample: bool = False
    frozen_bn: bool = False
    zero_init_last: bool = True
    dtype: Dtype = jnp.float32
    expansion = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        """x: [B, H, W, C_in] -> [B, H / stride, W / stride, planes]."""
        bn = lambda name, zero=False: batch_norm(train, self.frozen_bn, name=name, dtype=self.dtype, zero_init=zero)
        shortcut = x
        y = conv(self.planes, 3, self.stride, name="conv1", dtype=self.dtype)(x)
        y = nn.relu(bn("bn1")(y))
        y = conv(self.planes, 3, 1, name="conv2", dtype=self.dtype)(y)
        y = bn("bn2", self.zero_init_last)(y)
        if self.downsample:
            shortcut = conv(self.planes, 1, self.stride, name="downsample_0", dtype=self.dtype)(x)
            shortcut = bn("downsample_1")(shortcut)
        return nn.relu(y + shortcut)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, as timm/torchvision "ResNet v1.5") -> 1x1 conv; output = 4 * `planes`."""

    planes: int
    stride: int = 1
    downsample: bool = False
    frozen_bn: bool = False
    zero_init_last: bool = True
    dtype: Dtype = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        """x: [B, H, W, C_in] -> [B, H / stride, W / stride, 4 * planes]."""
        bn = lambda name, zero=False: batch_norm(train, self.frozen_bn, name=name, dtype=self.dtype, zero_init=zero)
        out = self.planes * self.expansion
        shortcut = x
        y = conv(self.planes, 1, 1, name="conv1", dtype=self.dtype)(x)
        y = nn.relu(bn("bn1")(y))
        y = conv(self.planes, 3, self.stride, name="conv2", dtype=self.dtype)(y)
        y = nn.relu(bn("bn2")(y))
        y = conv(out, 1, 1, name="conv3", dtype=self.dtype)(y)
        y = bn("bn3", self.zero_init_last)(y)
        if self.downsample:
            shortcut = conv(out, 1, self.stride, name="downsample_0", dtype=self.dtype)(x)
            shortcut = bn("downsample_1")(shortcut)
        return nn.relu(y + shortcut)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """ResNet with a 7x7/2 stem conv + 3x3/2 max-pool and four stages (strides 4, 8, 16, 32).

    Attributes:
      stage_sizes: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
      block: 'bottleneck' or 'basic'.
      widths: `planes` per stage (output channels = planes * expansion).
      stem_width: channels of the stem conv.
      num_classes: > 0 adds the `fc` classifier on the pooled features (timm's full model).
      frozen_bn: always use BatchNorm running statistics.
      dtype: compute dtype; parameters stay float32.
    """

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    block: str = "bottleneck"
    widths: Sequence[int] = (64, 128, 256, 512)
    stem_width: int = 64
    num_classes: int = 0
    frozen_bn: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> dict[str, jnp.ndarray]:
        """x: [B, H, W, 3] normalised image.

        Returns a dict: 'stem' [B, H/4, W/4, stem_width] (after max-pool), 'layer1'..'layer4'
        [B, H/2^(i+1), W/2^(i+1), C_i], 'features' (= 'layer4'), 'pooled' [B, C_4] (global average), and
        'logits' [B, num_classes] when `num_classes > 0`.
        """
        if x.ndim != 4:
            raise ValueError(f"ResNet expects NHWC images [B, H, W, C], got shape {x.shape}")
        block_cls = BLOCKS[self.block]
        x = x.astype(self.dtype)
        x = conv(self.stem_width, 7, 2, name="conv1", dtype=self.dtype)(x)
        x = nn.relu(batch_norm(train, self.frozen_bn, name="bn1", dtype=self.dtype)(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        out = {"stem": x}
        in_ch = self.stem_width
        for i, (n, planes) in enumerate(zip(self.stage_sizes, self.widths)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                need_ds = j == 0 and (stride != 1 or in_ch != planes * block_cls.expansion)
                x = block_cls(planes, stride, need_ds, self.frozen_bn, dtype=self.dtype,
                              name=f"layer{i + 1}_{j}")(x, train)
                in_ch = planes * block_cls.expansion
            out[f"layer{i + 1}"] = x
        out["features"] = x
        pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        out["pooled"] = pooled
        if self.num_classes > 0:
            out["logits"] = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32, name="fc")(pooled)
        return out


RESNET_CONFIGS = {
    "resnet50": dict(stage_sizes=(3, 4, 6, 3)),
    "resnet101": dict(stage_sizes=(3, 4, 23, 3)),
    # A laptop-sized bottleneck ResNet: same topology, 1 block per stage, 1/8 of the widths.
    "resnet_tiny": dict(stage_sizes=(1, 1, 1, 1), widths=(8, 16, 32, 64), stem_width=16),
}


def resnet50(**kwargs) -> ResNet:
    """timm/torchvision `resnet50` (25,557,032 parameters with `num_classes=1000`)."""
    return ResNet(**{**RESNET_CONFIGS["resnet50"], **kwargs})


def resnet101(**kwargs) -> ResNet:
    """timm/torchvision `resnet101` (44,549,160 parameters with `num_classes=1000`)."""
    return ResNet(**{**RESNET_CONFIGS["resnet101"], **kwargs})


def resnet_tiny(**kwargs) -> ResNet:
    """Tiny bottleneck ResNet (output channels 32/64/128/256) for tests and laptops."""
    return ResNet(**{**RESNET_CONFIGS["resnet_tiny"], **kwargs})
