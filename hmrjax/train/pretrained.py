"""Starting a run from pretrained weights of one sub-module (the encoder) and exporting them from a run.

HMR methods start their encoder from weights trained on another task: PARE, CLIFF and D-PoSE start HRNet-W48
from a COCO 2D-pose checkpoint, HMR 2.0 its ViT from ViTPose. hmrjax writes such weights as one file of
Flax variables of the sub-module alone ({'params': {...}, 'batch_stats': {...}}, `.npz` or `.msgpack`):

  * `hmrjax weights convert SRC DST --arch NAME`  a PyTorch / safetensors checkpoint (timm, HRNet, ViTPose);
  * `hmrjax weights export --workdir RUN DST`     the encoder of a run trained here (e.g. the 2D detector
                                                 `configs/detector2d.py` on the synthetic training split).

A training run reads the file through `config.init.weights` (path; "" = fresh init) into the sub-module
`config.init.module` (default 'backbone', the name every method gives its encoder), and each 'module=path' of
the comma-separated `config.init.more` into that sub-module, on a fresh start only: a
run resumed from its own checkpoint keeps what it trained. Every array of the sub-module must be in the file
with the same shape (errors name the file, the key and both shapes); `config.init.strict=False` keeps the
fresh values of arrays the file lacks and ignores extra ones (the report lists both).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Mapping

import jax
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

__all__ = ["LoadReport", "graft", "init_sources", "load_into_train_state", "export_submodule", "read_weights"]


@dataclasses.dataclass
class LoadReport:
    """What `graft` did: '/'-joined keys per outcome."""
    loaded: list
    kept_fresh: list      # in the model, not in the file (strict=False only)
    ignored: list         # in the file, not in the model (strict=False only)

    def summary(self) -> str:
        return (f"{len(self.loaded)} arrays loaded, {len(self.kept_fresh)} kept from the fresh init, "
                f"{len(self.ignored)} in the file unused")


def read_weights(path: str | os.PathLike) -> dict:
    """The variables in `path` (.npz / .msgpack as written by `save_variables`): {'params': ..., ...}."""
    from hmrjax.nn.backbones import convert
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config.init.weights: {path} does not exist (write it with `hmrjax weights "
                                f"convert` or `hmrjax weights export`)")
    variables = convert.load_variables(path)
    if "params" not in variables:
        raise ValueError(f"config.init.weights: {path} has no 'params' collection (has {sorted(variables)}); "
                         f"expected the variables of one sub-module as written by `hmrjax weights export`")
    return variables


def graft(params: Mapping, state: Mapping, weights: Mapping, *, module: str = "backbone", strict: bool = True,
          source: str = "weights", place=None) -> tuple[dict, dict, LoadReport]:
    """Replaces the arrays of sub-module `module` in `params` / `state` (the non-param collections, e.g.
    {'batch_stats': ...}) by those in `weights` ({'params': {...}, 'batch_stats': {...}} of the sub-module).

    Values keep the target's dtype; shapes must match (only `.shape` / `.dtype` of the targets are read, so
    they may be sharded device arrays). `place(target_leaf, value)` makes the new leaf (default: the numpy
    value). Returns new (params, state, LoadReport); the inputs are not modified. `source` names the file in
    errors.
    """
    collections = {"params": params, **dict(state)}
    if module not in params:
        raise ValueError(f"{source}: the model has no sub-module {module!r} to load into "
                         f"(top-level params: {sorted(params)}); set config.init.module")
    loaded, kept, ignored = [], [], []
    new = dict(collections)
    for col, tree in collections.items():
        if not isinstance(tree, Mapping) or module not in tree:
            continue
        target = flatten_dict(tree[module])
        given = flatten_dict(weights.get(col, {}))
        merged = {}
        for key, value in target.items():
            name = f"{col}/{'/'.join(key)}"
            if key not in given:
                if strict:
                    raise ValueError(f"{source}: {name} of sub-module {module!r} is missing from the file "
                                     f"(config.init.strict=False keeps the fresh value)")
                kept.append(name)
                merged[key] = value
                continue
            arr = np.asarray(given[key])
            if tuple(arr.shape) != tuple(value.shape):
                raise ValueError(f"{source}: {name} has shape {tuple(arr.shape)} in the file, the model's "
                                 f"{module!r} expects {tuple(value.shape)}")
            arr = arr.astype(value.dtype)
            merged[key] = place(value, arr) if place is not None else arr
            loaded.append(name)
        for key in given.keys() - target.keys():
            name = f"{col}/{'/'.join(key)}"
            if strict:
                raise ValueError(f"{source}: {name} is in the file but not in the model's {module!r} "
                                 f"(another architecture or width?)")
            ignored.append(name)
        new[col] = {**tree, module: unflatten_dict(merged)}
    for col in weights:
        if col not in collections or (isinstance(collections[col], Mapping) and module not in collections[col]):
            entries = [f"{col}/{'/'.join(k)}" for k in flatten_dict(weights[col])]
            if strict and entries:
                raise ValueError(f"{source}: the file has collection {col!r} for {module!r}, the model has none "
                                 f"(e.g. frozen batch norm)")
            ignored.extend(entries)
    params_out = new.pop("params")
    return params_out, new, LoadReport(loaded, kept, ignored)


def init_sources(config) -> list:
    """[(module, path)] to graft on a fresh start: `config.init.weights` into `config.init.module`, then each
    'module=path' entry of the comma-separated `config.init.more` (e.g. a 2D detector's head into a method's
    keypoint branch). Empty paths are skipped."""
    init = config.get("init", None)
    if init is None:
        return []
    path = str(init.get("weights", ""))
    out = [(str(init.get("module", "backbone")), path)] if path else []
    for item in str(init.get("more", "")).split(","):
        if not item.strip():
            continue
        module, sep, p = item.partition("=")
        if not sep or not module.strip() or not p.strip():
            raise ValueError(f"config.init.more: entry {item.strip()!r} must be 'module=path'")
        out.append((module.strip(), p.strip()))
    return out


def load_into_train_state(ts, config):
    """The TrainState `ts` with each file of `init_sources(config)` grafted into its sub-module (params, EMA
    params and non-param state; the optimizer state is a fresh one's, which does not depend on the values).
    Returns (state, [(module, path, LoadReport)]); no sources: (ts, [])."""
    sources = init_sources(config)
    if not sources:
        return ts, []

    def place(old, value):  # every process reads the file: works for arrays sharded over hosts too
        if isinstance(old, jax.Array):
            return jax.make_array_from_callback(value.shape, old.sharding, lambda index: value[index])
        return value

    params, state, reports = ts.params, ts.state, []
    for module, path in sources:
        params, state, report = graft(params, state, read_weights(path), module=module,
                                      strict=bool(config.init.get("strict", True)), source=path, place=place)
        reports.append((module, path, report))
    replace: dict[str, Any] = {"params": params, "state": state}
    if ts.ema_params is not None:
        replace["ema_params"] = params
    return ts.replace(**replace), reports


def export_submodule(workdir: str | os.PathLike, dst: str | os.PathLike, *, module: str = "backbone",
                     step: int | None = None, use_ema: bool | None = None) -> dict:
    """Writes sub-module `module` of the run in `workdir` (latest or `step` checkpoint) to `dst` (.npz /
    .msgpack) in the format `config.init.weights` reads. Returns {'step', 'arrays', 'collections'}.

    A comma-separated `module` ('head_conv_0,head_bn_0,final_layer') writes those top-level modules as the
    children of one file, to be grafted into a sub-module that has children of the same names (how the 2D
    detector's HRNet head becomes D-PoSE's `keypoint_branch`)."""
    from hmrjax import evaluate
    from hmrjax.nn.backbones import convert
    variables, step = evaluate.restore_variables(workdir, step=step, use_ema=use_ema)
    names = [m.strip() for m in module.split(",") if m.strip()]
    missing = [m for m in names if m not in variables["params"]]
    if missing or not names:
        bad = ", ".join(map(repr, missing or [module]))
        raise ValueError(f"{workdir}: the run's params have no sub-module {bad} "
                         f"(top level: {sorted(variables['params'])})")
    out = {}
    for col, tree in variables.items():
        part = {m: jax.device_get(tree[m]) for m in names if isinstance(tree, Mapping) and m in tree}
        if part:   # one module: its contents; several: each as a child
            out[col] = part[names[0]] if len(names) == 1 else part
    convert.save_variables(out, dst)
    return {"step": int(step), "arrays": sum(len(flatten_dict(t)) for t in out.values()), "collections": sorted(out)}
