"""hmrjax: 3D human mesh recovery from a single image, in JAX/Flax.

Submodules: `geometry` (rotations, Procrustes, cameras), `body` (SMPL-family and the free Anny body
models), `render`, `nn`, `methods`, `losses`, `metrics`, `train`. They are imported on first use so
that `import hmrjax` stays cheap.
"""
import importlib

__version__ = "0.1.0"
_SUBMODULES = ("body", "geometry", "render", "nn", "methods", "losses", "metrics", "train", "evaluate")
__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"hmrjax.{name}")
    raise AttributeError(f"module 'hmrjax' has no attribute {name!r}")
