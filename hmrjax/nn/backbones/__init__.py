"""Image backbones the papers use, in Flax (NHWC), with PyTorch checkpoint import.

Owns the arch registry `ARCHS` / `create(name, **kwargs)`. Families: `resnet` (ResNet-50/101 + tiny),
`hrnet` (W18/W32/W40/W48/W64 + tiny; four branches + 1/4-resolution concat), `vit` (ViT-B/L/H + tiny,
ViTPose-style feature maps and `SimpleHeatmapDecoder`), `convert` (state_dict -> Flax variables).

Every backbone's `__call__(x, train=False)` takes [B, H, W, 3] images and returns a dict with at least
'features' (the final feature map [B, h, w, C]). Parameters are float32; pass `dtype=jnp.bfloat16` for
bf16 compute and `frozen_bn=True` to always normalise with BatchNorm running statistics.
"""
from __future__ import annotations

from hmrjax.nn.backbones.convert import (ConversionReport, WeightImportError, convert_checkpoint,
                                         convert_state_dict, load_torch_weights, load_variables,
                                         read_safetensors, read_state_dict, save_variables, write_safetensors)
from hmrjax.nn.backbones.hrnet import HRNET_CONFIGS, HRNet, hrnet
from hmrjax.nn.backbones.resnet import RESNET_CONFIGS, ResNet, resnet50, resnet101, resnet_tiny
from hmrjax.nn.backbones.vit import VIT_CONFIGS, SimpleHeatmapDecoder, VisionTransformer, ViTPose, vit, vitpose_kwargs

__all__ = ["ARCHS", "create", "ResNet", "HRNet", "VisionTransformer", "SimpleHeatmapDecoder", "ViTPose",
           "resnet50", "resnet101", "resnet_tiny", "hrnet", "vit", "vitpose_kwargs", "load_torch_weights",
           "convert_state_dict", "convert_checkpoint", "read_state_dict", "read_safetensors",
           "write_safetensors", "save_variables", "load_variables", "WeightImportError", "ConversionReport"]


def _vitpose(name):
    return lambda **kw: ViTPose(backbone_kwargs=vitpose_kwargs(name), **kw)


ARCHS = {
    **{n: (lambda n=n: (lambda **kw: ResNet(**{**RESNET_CONFIGS[n], **kw})))() for n in RESNET_CONFIGS},
    **{n: (lambda n=n: (lambda **kw: hrnet(n, **kw)))() for n in HRNET_CONFIGS},
    **{n: (lambda n=n: (lambda **kw: vit(n, **kw)))() for n in VIT_CONFIGS},
    "vitpose_base": _vitpose("vit_base_patch16_224"),
    "vitpose_large": _vitpose("vit_large_patch16_224"),
    "vitpose_huge": _vitpose("vit_huge_patch16_224"),
    "vitpose_tiny_test": _vitpose("vit_tiny_test"),
}


def create(name: str, **kwargs):
    """Build backbone `name` (see `ARCHS`); kwargs override module attributes.

    Defaults are the backbone without classifier (ResNet `num_classes=0`, HRNet `head=None`, ViT
    `num_classes=0`); pass `num_classes=1000` / `head='classification'` for timm's full models.
    """
    if name not in ARCHS:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(ARCHS)}")
    return ARCHS[name](**kwargs)
