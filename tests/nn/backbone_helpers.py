"""Shared test helpers for the backbone tests: reference layouts, cached variable shapes, random variables."""
from __future__ import annotations

import functools
import gzip
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import hmrjax.nn.backbones as bb

LAYOUT_DIR = Path(bb.__file__).parent / "layouts"
BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


@functools.lru_cache(maxsize=None)
def layout(name: str) -> dict:
    """The committed timm layout `timm_<name>.json.gz`: {'num_params', 'state_dict': [[key, shape, dtype]]}."""
    with gzip.open(LAYOUT_DIR / f"timm_{name}.json.gz", "rt") as f:
        return json.load(f)


def torch_shapes(name: str, with_stats: bool = True) -> dict[str, tuple]:
    """{key: shape} of a reference state_dict without `num_batches_tracked` (and optionally BN stats)."""
    out = {}
    for k, s, _ in layout(name)["state_dict"]:
        if k.endswith("num_batches_tracked") or (not with_stats and k.endswith(BN_STATS)):
            continue
        out[k] = tuple(s)
    return out


@functools.lru_cache(maxsize=None)
def variable_shapes(arch: str, hw: tuple = (32, 32), **kwargs):
    """jax.eval_shape of create(arch, **kwargs).init on a [1, *hw, 3] input (no allocation, cached)."""
    model = bb.create(arch, **kwargs)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *hw, 3), jnp.float32)))


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def random_variables(shapes, seed: int = 0):
    """Fill a variable shape tree with N(0, 0.1^2) (BatchNorm `var` uniform in [0.5, 1.5]) float32 arrays.

    Much cheaper than jitting `init` on the CPU test machine and gives non-trivial BN statistics.
    """
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if getattr(path[-1], "key", None) == "var":
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32))
        if getattr(path[-1], "key", None) == "scale":
            return jnp.asarray((1.0 + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32))
        return jnp.asarray((0.1 * rng.standard_normal(leaf.shape)).astype(np.float32))

    return jax.tree_util.tree_map_with_path(fill, shapes)
