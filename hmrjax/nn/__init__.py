"""Reusable Flax building blocks: `backbones` (ResNet, HRNet, ViT + PyTorch weight import), and the blocks
other areas add here (attention, positional encodings, decoders, heads, flows, diffusion).

Submodules are imported on first attribute access (`hmrjax.nn.backbones`) so `import hmrjax.nn` stays cheap.
"""
import importlib


def __getattr__(name):
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"hmrjax.nn.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"hmrjax.nn.{name}":
                raise
    raise AttributeError(f"module 'hmrjax.nn' has no attribute {name!r}")
