"""Shared config pieces: `parse_arg` for `file.py:arg` strings and `base_config()`, the trainer's fields.

Every `configs/<method>.py` does

    from configs import common
    def get_config(arg=None):
        arg = common.parse_arg(arg, variant="tiny")
        config = common.base_config()
        ...

Fields of `base_config()` (the trainer reads these; a method adds `model`, `loss`, `data`):
  seed, method, total_steps, batch_size (global, over all processes)
  max_train_minutes                    wall-clock budget of the training loop (0: none); when spent the
                                       run checkpoints, evaluates (if periodic eval is on) and stops
  mesh.data, mesh.fsdp                 device-mesh axis sizes; -1 fills the remaining devices
  partition_rules                      ((regex on '/'-joined param path, PartitionSpec as tuple), ...);
                                       first match wins, unmatched params are replicated
  optim.*                              see hmrjax/train/optim.py
  compute_dtype                        float32 | bfloat16 (parameters stay float32)
  nonfinite                            stop | skip
  init.weights, .module, .strict        start sub-module `module` (default 'backbone', the encoder) from a
                                       variables file (`hmrjax weights convert` / `hmrjax weights export`)
                                       on a fresh start; see hmrjax/train/pretrained.py
  init.more                            'module=path,...': more files grafted into other sub-modules
  checkpoint.every_steps, .keep, .async
  log_every, eval_every                steps (eval_every 0: only at the end)
  eval_max_examples                    examples of config.data.eval_split per periodic evaluation (0: all)
"""
from __future__ import annotations

import difflib

import ml_collections

from hmrjax.train.config_flags import cast_value


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses `"tiny,depth=False"` into a ConfigDict over `defaults`, cast to the defaults' types.

    A bare token sets a boolean default to True (`depth`) or, if no such boolean exists, becomes the
    value of the `variant` default (`tiny`). Unknown keys are errors that suggest close matches.
    """
    result = dict(defaults)
    for token in (arg or "").split(","):
        token = token.strip()
        if not token:
            continue
        key, sep, value = token.partition("=")
        key = key.strip()
        if not sep:
            if isinstance(defaults.get(key), bool):
                result[key] = True
                continue
            if "variant" in defaults:
                result["variant"] = key
                continue
            key, value = key, "true"
        if key not in defaults:
            close = difflib.get_close_matches(key, defaults, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown config arg {key!r} (known: {', '.join(sorted(defaults))}){hint}")
        result[key] = cast_value(key, value, defaults[key])
    return ml_collections.ConfigDict(result)


def base_config() -> ml_collections.ConfigDict:
    """The trainer's fields with their defaults (see the module docstring)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.method = ""
    c.total_steps = 1000
    c.max_train_minutes = 0.0
    c.batch_size = 32

    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1})
    c.partition_rules = ()

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adamw"          # adam | adamw | sgd
    c.optim.lr = 1e-3
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.momentum = 0.9          # sgd only (0: plain SGD)
    c.optim.nesterov = False
    c.optim.schedule = "constant"   # constant | cosine | warmup_cosine | step
    c.optim.warmup_steps = 0
    c.optim.decay_steps = 0         # cosine length after warm-up; 0: total_steps - warmup_steps
    c.optim.final_lr_fraction = 0.0  # cosine end value, as a fraction of lr
    c.optim.boundaries = ()         # step schedule: steps at which lr is multiplied ...
    c.optim.factors = ()            # ... by these factors
    c.optim.weight_decay = 0.0
    c.optim.wd_mask = (r"(^|/)kernel$", r"(^|/)embedding$")  # param paths that are decayed
    c.optim.clip_grad_norm = 0.0    # 0: off
    c.optim.frozen = ()             # regexes of param paths that get zero updates
    c.optim.ema_decay = 0.0         # 0: no parameter EMA

    c.compute_dtype = "float32"
    c.nonfinite = "stop"

    c.init = ml_collections.ConfigDict({"weights": "", "module": "backbone", "strict": True, "more": ""})
    c.checkpoint = ml_collections.ConfigDict({"every_steps": 1000, "keep": 3, "async": True})
    c.log_every = 50
    c.eval_every = 0
    c.eval_max_examples = 0
    return c
