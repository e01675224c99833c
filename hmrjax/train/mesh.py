"""Device mesh, parameter shardings from regex partition rules, and global batch assembly.

Why `jax.jit` over a `Mesh` and not `jax.pmap`: pmap is in maintenance mode upstream; jit with
`NamedSharding`s expresses data parallelism and FSDP with one code path, compiles once for any
device count, and lets XLA insert the collectives. A consequence worth knowing: inside the jitted step
every reduction over the batch (losses, BatchNorm mean/variance) is over the *global* batch, so
BatchNorm statistics are global-batch statistics (the same as on one device), not per-device ones.

Mesh axes: `data` (batch split, params replicated) and `fsdp` (batch split too, and params matched by a
partition rule split along this axis). The batch's leading dimension is sharded over both axes.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")


def mesh_shape(data: int, fsdp: int, num_devices: int) -> tuple[int, int]:
    """Resolves the (data, fsdp) sizes; one of them may be -1 (fills the remaining devices)."""
    sizes = [int(data), int(fsdp)]
    if sizes.count(-1) > 1:
        raise ValueError(f"config.mesh: at most one axis may be -1, got data={data}, fsdp={fsdp}")
    if -1 in sizes:
        known = int(np.prod([s for s in sizes if s != -1]))
        if known <= 0 or num_devices % known:
            raise ValueError(f"config.mesh: {num_devices} devices are not divisible by {known}")
        sizes[sizes.index(-1)] = num_devices // known
    if sizes[0] * sizes[1] != num_devices:
        raise ValueError(f"config.mesh: data={sizes[0]} x fsdp={sizes[1]} != {num_devices} devices")
    return sizes[0], sizes[1]


def make_mesh(mesh_config, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ('data', 'fsdp') mesh over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(mesh_config.data, mesh_config.fsdp, len(devices))
    # Auto axes: XLA's sharding propagation places intermediates (new JAX defaults to Explicit axes,
    # which would require every op in every model to state its output sharding).
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    if len(devices) == jax.device_count():
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=axis_types)


def path_str(key_path) -> str:
    """'/'-joined names of a pytree key path: ('backbone', 'Conv_0', 'kernel') -> 'backbone/Conv_0/kernel'."""
    parts = []
    for key in key_path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def map_with_paths(fn, tree):
    """tree_map where `fn(path_str, leaf)` also gets the leaf's '/'-joined path."""
    return jax.tree_util.tree_map_with_path(lambda kp, leaf: fn(path_str(kp), leaf), tree)


def match_rules(rules: Iterable[tuple[str, Any]], path: str):
    """The value of the first (regex, value) rule whose regex `re.search`es `path`, else None."""
    for pattern, value in rules:
        if re.search(pattern, path):
            return value
    return None


def spec_for(rules, path: str, shape: Sequence[int]) -> P:
    """PartitionSpec for a param: the first matching rule's spec (tuple of axis names / None), else replicated."""
    spec = match_rules(rules, path)
    if spec is None:
        return P()
    spec = tuple(spec)
    if len(spec) > len(shape):
        raise ValueError(f"partition rule for '{path}' has {len(spec)} axes but the param has shape "
                         f"{tuple(shape)}")
    return P(*spec)


def tree_shardings(mesh: Mesh, rules, abstract_tree):
    """NamedShardings for every leaf of `abstract_tree` (e.g. from `jax.eval_shape`) from `rules`."""
    return map_with_paths(lambda path, leaf: NamedSharding(mesh, spec_for(rules, path, leaf.shape)),
                          abstract_tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over both mesh axes."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(mesh: Mesh, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Assembles the global batch from this process's numpy batch (leading dim = global / processes)."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                        local_batch)
