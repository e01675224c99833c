"""HRNet (Wang et al. 2020) in the timm `hrnet_w*` / official HRNet layout, NHWC.

Owns: `HighResolutionModule`, `HRNet` and the configurations W18/W32/W40/W48/W64 + `hrnet_tiny` / `hrnet_small`.
Outputs the four parallel branches (1/4 .. 1/32 resolution) and their bilinear upsample-and-concat at
1/4 resolution (W48: 48 + 96 + 192 + 384 = 720 channels), the map D-PoSE, prob_hmr and PARE consume.
`head` selects how much of timm's classification head is built: None (the branch backbone, timm
`features_only=True, feature_location=''`), 'incre' (timm's default `features_only` model), or
'classification' (the full timm model). Submodule names mirror the PyTorch `state_dict`
(`stage2_0.fuse_layers_1_0_0_0` <-> `stage2.0.fuse_layers.1.0.0.0`).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from hmrjax.nn.backbones.ops import batch_norm, conv, resize, upsample_nearest
from hmrjax.nn.backbones.resnet import BLOCKS, Bottleneck

Dtype = Any

__all__ = ["HRNet", "HighResolutionModule", "HRNET_CONFIGS", "hrnet"]


def _stage(modules: int, blocks: Sequence[int], channels: Sequence[int], block: str = "basic") -> dict:
    return dict(num_modules=modules, num_blocks=tuple(blocks), num_channels=tuple(channels), block=block)


def _hrnet_cfg(w: int, stem_width: int = 64, stage1_channels: int = 64, stage1_blocks: int = 4,
               modules=(1, 4, 3), blocks: int = 4) -> dict:
    ch = (w, 2 * w, 4 * w, 8 * w)
    return dict(
        stem_width=stem_width,
        stage1=_stage(1, (stage1_blocks,), (stage1_channels,), "bottleneck"),
        stage2=_stage(modules[0], (blocks,) * 2, ch[:2]),
        stage3=_stage(modules[1], (blocks,) * 3, ch[:3]),
        stage4=_stage(modules[2], (blocks,) * 4, ch[:4]),
    )


HRNET_CONFIGS = {
    "hrnet_w18": _hrnet_cfg(18),
    "hrnet_w32": _hrnet_cfg(32),
    "hrnet_w40": _hrnet_cfg(40),
    "hrnet_w48": _hrnet_cfg(48),
    "hrnet_w64": _hrnet_cfg(64),
    # Same topology at laptop size: branches 8/16/32/64 (concat 120 channels), one module and block each.
    "hrnet_tiny": _hrnet_cfg(8, stem_width=16, stage1_channels=8, stage1_blocks=1, modules=(1, 1, 1), blocks=1),
    # Twice hrnet_tiny's widths (branches 16/32/64/128, concat 240): ~4x its FLOPs, for a CPU 2D detector.
    "hrnet_small": _hrnet_cfg(16, stem_width=32, stage1_channels=16, stage1_blocks=1, modules=(1, 1, 1), blocks=1),
}


class HighResolutionModule(nn.Module):
    """Parallel residual branches followed by all-to-all fusion (timm `HighResolutionModule`).

    Fusion into branch i from branch j: j > i: 1x1 conv + BN + nearest upsample by 2^(j-i);
    j < i: (i - j) stride-2 3x3 conv + BN (ReLU between); the sum goes through ReLU.
    """

    num_blocks: Sequence[int]
    num_channels: Sequence[int]
    in_channels: Sequence[int]
    block: str = "basic"
    multi_scale_output: bool = True
    frozen_bn: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, xs: Sequence[jnp.ndarray], train: bool = False) -> list[jnp.ndarray]:
        block_cls = BLOCKS[self.block]
        nb = len(self.num_channels)
        bn = lambda name: batch_norm(train, self.frozen_bn, name=name, dtype=self.dtype)
        ys = []
        for i in range(nb):
            y, in_ch = xs[i], self.in_channels[i]
            for k in range(self.num_blocks[i]):
                ds = k == 0 and in_ch != self.num_channels[i] * block_cls.expansion
                y = block_cls(self.num_channels[i], 1, ds, self.frozen_bn, dtype=self.dtype,
                              name=f"branches_{i}_{k}")(y, train)
                in_ch = self.num_channels[i] * block_cls.expansion
            ys.append(y)
        if nb == 1:
            return ys
        out_ch = [c * block_cls.expansion for c in self.num_channels]
        fused = []
        for i in range(nb if self.multi_scale_output else 1):
            total = None
            for j in range(nb):
                if j == i:
                    z = ys[j]
                elif j > i:
                    z = conv(out_ch[i], 1, 1, name=f"fuse_layers_{i}_{j}_0", dtype=self.dtype)(ys[j])
                    z = bn(f"fuse_layers_{i}_{j}_1")(z)
                    z = upsample_nearest(z, 2 ** (j - i))
                else:
                    z = ys[j]
                    for k in range(i - j):
                        last = k == i - j - 1
                        z = conv(out_ch[i] if last else out_ch[j], 3, 2, name=f"fuse_layers_{i}_{j}_{k}_0",
                                 dtype=self.dtype)(z)
                        z = bn(f"fuse_layers_{i}_{j}_{k}_1")(z)
                        if not last:
                            z = nn.relu(z)
                total = z if total is None else total + z
            fused.append(nn.relu(total))
        return fused


class HRNet(nn.Module):
    """High-Resolution Net backbone (timm `HighResolutionNet` layer for layer).

    Attributes:
      stem_width, stage1..stage4: the architecture (see `HRNET_CONFIGS`).
      head: None | 'incre' | 'classification' (see module docstring).
      num_classes: classifier size when head == 'classification' (timm: 1000; 0 = no classifier).
      upsample_align_corners: `align_corners` of the bilinear upsampling that builds 'concat' (True as in
        PARE's pose HRNet, which D-PoSE and BEDLAM-CLIFF build on).
      frozen_bn: always use BatchNorm running statistics.
      dtype: compute dtype; parameters stay float32.
    """

    stem_width: int = 64
    stage1: dict = None
    stage2: dict = None
    stage3: dict = None
    stage4: dict = None
    head: str | None = None
    num_classes: int = 1000
    upsample_align_corners: bool = True
    frozen_bn: bool = False
    dtype: Dtype = jnp.float32

    head_channels = (32, 64, 128, 256)

    def _transition(self, xs, pre, cur, name, train):
        """timm `_make_transition_layer`; new branches are made from the last (lowest-res) input."""
        bn = lambda n: batch_norm(train, self.frozen_bn, name=n, dtype=self.dtype)
        out = []
        for i in range(len(cur)):
            if i < len(pre):
                x = xs[i]
                if cur[i] != pre[i]:
                    x = conv(cur[i], 3, 1, name=f"{name}_{i}_0", dtype=self.dtype)(x)
                    x = nn.relu(bn(f"{name}_{i}_1")(x))
            else:
                x = xs[-1]
                for j in range(i + 1 - len(pre)):
                    oc = cur[i] if j == i - len(pre) else pre[-1]
                    x = conv(oc, 3, 2, name=f"{name}_{i}_{j}_0", dtype=self.dtype)(x)
                    x = nn.relu(bn(f"{name}_{i}_{j}_1")(x))
            out.append(x)
        return out

    def _stage(self, xs, cfg, in_channels, name, train):
        block_cls = BLOCKS[cfg["block"]]
        for m in range(cfg["num_modules"]):
            xs = HighResolutionModule(cfg["num_blocks"], cfg["num_channels"], tuple(in_channels), cfg["block"],
                                      True, self.frozen_bn, self.dtype, name=f"{name}_{m}")(xs, train)
            in_channels = [c * block_cls.expansion for c in cfg["num_channels"]]
        return xs, in_channels

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> dict[str, Any]:
        """x: [B, H, W, 3] normalised image (H, W divisible by 32 for exact fusion shapes).

        Returns a dict:
          'stem': [B, H/2, W/2, stem_width] (after conv1/bn1/relu, timm's first feature),
          'branches': tuple of 4 maps [B, H/2^(k+2), W/2^(k+2), C_k] (W48: C = 48, 96, 192, 384),
          'concat': [B, H/4, W/4, sum C_k] — branches bilinearly upsampled to 1/4 and concatenated,
          'features': same as 'concat';
          with head='incre' or 'classification' also 'incre' (tuple of 4 maps, 128/256/512/1024 ch);
          with head='classification': 'pooled' [B, 2048] and 'logits' [B, num_classes] if num_classes.
        """
        if x.ndim != 4:
            raise ValueError(f"HRNet expects NHWC images [B, H, W, C], got shape {x.shape}")
        if self.stage1 is None:
            raise ValueError("HRNet: stage configs missing; build it with hrnet('hrnet_w48') or HRNET_CONFIGS")
        bn = lambda n: batch_norm(train, self.frozen_bn, name=n, dtype=self.dtype)
        x = x.astype(self.dtype)
        x = nn.relu(bn("bn1")(conv(self.stem_width, 3, 2, name="conv1", dtype=self.dtype)(x)))
        out = {"stem": x}
        x = nn.relu(bn("bn2")(conv(self.stem_width, 3, 2, name="conv2", dtype=self.dtype)(x)))

        s1 = self.stage1
        block1 = BLOCKS[s1["block"]]
        in_ch = self.stem_width
        for k in range(s1["num_blocks"][0]):
            planes = s1["num_channels"][0]
            ds = k == 0 and in_ch != planes * block1.expansion
            x = block1(planes, 1, ds, self.frozen_bn, dtype=self.dtype, name=f"layer1_{k}")(x, train)
            in_ch = planes * block1.expansion

        pre = [in_ch]
        xs = [x]
        for t, stage_name in ((1, "stage2"), (2, "stage3"), (3, "stage4")):
            cfg = getattr(self, stage_name)
            cur = [c * BLOCKS[cfg["block"]].expansion for c in cfg["num_channels"]]
            xs = self._transition(xs, pre, cfg["num_channels"], f"transition{t}", train)
            xs, pre = self._stage(xs, cfg, list(cfg["num_channels"]), stage_name, train)
            assert pre == cur
        out["branches"] = tuple(xs)
        h, w = xs[0].shape[1:3]
        ups = [xs[0]] + [resize(y, (h, w), "bilinear", self.upsample_align_corners) for y in xs[1:]]
        out["concat"] = out["features"] = jnp.concatenate(ups, axis=-1)

        if self.head in ("incre", "classification"):
            incre = []
            for i, y in enumerate(xs):
                planes = self.head_channels[i]
                incre.append(Bottleneck(planes, 1, True, self.frozen_bn, dtype=self.dtype,
                                        name=f"incre_modules_{i}_0")(y, train))
            out["incre"] = tuple(incre)
            if self.head == "classification":
                y = incre[0]
                for i in range(len(incre) - 1):
                    d = conv(self.head_channels[i + 1] * 4, 3, 2, bias=True, name=f"downsamp_modules_{i}_0",
                             dtype=self.dtype)(y)
                    d = nn.relu(bn(f"downsamp_modules_{i}_1")(d))
                    y = incre[i + 1] + d
                y = conv(2048, 1, 1, bias=True, name="final_layer_0", dtype=self.dtype)(y)
                y = nn.relu(bn("final_layer_1")(y))
                pooled = jnp.mean(y.astype(jnp.float32), axis=(1, 2))
                out["pooled"] = pooled
                if self.num_classes > 0:
                    out["logits"] = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                                             name="classifier")(pooled)
        elif self.head is not None:
            raise ValueError(f"HRNet: head must be None, 'incre' or 'classification', got {self.head!r}")
        return out


def hrnet(name: str = "hrnet_w48", **kwargs) -> HRNet:
    """Build a named HRNet ('hrnet_w18' .. 'hrnet_w64', 'hrnet_tiny'); kwargs override attributes.

    Reference parameter counts (timm 1.0.31): hrnet_w48 branches 65,325,120; incre 67,119,040;
    classification 77,469,864.
    """
    if name not in HRNET_CONFIGS:
        raise ValueError(f"unknown HRNet {name!r}; choose from {sorted(HRNET_CONFIGS)}")
    return HRNet(**{**HRNET_CONFIGS[name], **kwargs})
