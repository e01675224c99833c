"""Method registry: config name -> Method class, resolved lazily so importing the registry is cheap.

`get_method_class("toy")` imports `hmrjax.methods.toy` only when asked. Each method module registers by
adding one line to `_REGISTRY` ("name": "module:Class"). `create(config)` builds `config.method`.
"""
from __future__ import annotations

import difflib
import importlib

from hmrjax.methods.base import Method, Prediction, split_variables

# name -> "module:Class". Later: "dpose", "prob_hmr", "d2a_hmr", "hmdiff".
_REGISTRY = {
    "toy": "hmrjax.methods.toy:ToyMethod",
    "dpose": "hmrjax.methods.dpose:DPoSE",
    "prob_hmr": "hmrjax.methods.prob_hmr:ProbHMR",
    "detector2d": "hmrjax.methods.detector2d:Detector2D",
}

__all__ = ["Method", "Prediction", "split_variables", "register", "registered", "get_method_class", "create"]


def register(name: str, target: str) -> None:
    """Registers `name` -> "module:Class" (the module is imported on first use)."""
    if ":" not in target:
        raise ValueError(f"method target must be 'module:Class', got {target!r}")
    _REGISTRY[name] = target


def registered() -> list[str]:
    """Names of all registered methods."""
    return sorted(_REGISTRY)


def get_method_class(name: str) -> type:
    """The Method class registered as `name`."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown method {name!r} (registered: {', '.join(registered())}){hint}")
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create(config) -> Method:
    """Instantiates `config.method` with the full config."""
    return get_method_class(config.method)(config)
