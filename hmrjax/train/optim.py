"""Optax optimizer and learning-rate schedule from `config.optim` (fields listed in configs/common.py).

  name       adam (coupled L2 decay if weight_decay > 0) | adamw (decoupled decay) | sgd (momentum,
             nesterov; coupled L2 decay)
  schedule   constant | cosine | warmup_cosine (linear 0 -> lr over warmup_steps, then cosine to
             final_lr_fraction * lr over decay_steps) | step (lr * prod(factors[i] for boundaries[i] <= t))
             `warmup_steps` > 0 also adds a linear warm-up to `constant`, `cosine` and `step`.
  wd_mask    regexes of '/'-joined param paths that are decayed (others are not)
  clip_grad_norm  global-norm clipping of the (trainable) gradients, 0 = off
  frozen     regexes of param paths whose updates are exactly zero (optax.multi_transform +
             set_to_zero); their optimizer state is empty.
EMA of parameters (`ema_decay`) is kept by the trainer, not the optimizer.
"""
from __future__ import annotations

import re

import jax
import optax

from hmrjax.train.mesh import map_with_paths


def make_schedule(optim_config, total_steps: int) -> optax.Schedule:
    """The learning-rate schedule: step -> lr."""
    c = optim_config
    lr, warmup = float(c.lr), int(c.warmup_steps)
    decay_steps = int(c.decay_steps) or max(int(total_steps) - warmup, 1)
    if c.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif c.schedule in ("cosine", "warmup_cosine"):
        main = optax.cosine_decay_schedule(lr, decay_steps, alpha=float(c.final_lr_fraction))
    elif c.schedule == "step":
        if len(c.boundaries) != len(c.factors):
            raise ValueError(f"config.optim: boundaries {tuple(c.boundaries)} and factors "
                             f"{tuple(c.factors)} must have the same length")
        main = optax.piecewise_constant_schedule(
            lr, {int(b) - warmup: float(f) for b, f in zip(c.boundaries, c.factors)})
    else:
        raise ValueError(f"config.optim.schedule: unknown schedule {c.schedule!r} "
                         "(constant | cosine | warmup_cosine | step)")
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def path_mask(params, patterns) -> object:
    """Pytree of bools: True where the param's '/'-joined path matches any regex in `patterns`."""
    compiled = [re.compile(p) for p in patterns]
    return map_with_paths(lambda path, _: any(p.search(path) for p in compiled), params)


def make_optimizer(optim_config, total_steps: int) -> optax.GradientTransformation:
    """The full gradient transformation; frozen params (if any) get zero updates."""
    c = optim_config
    schedule = make_schedule(c, total_steps)
    wd = float(c.weight_decay)
    wd_mask = (lambda params: path_mask(params, c.wd_mask))
    parts = []
    if float(c.clip_grad_norm) > 0:
        parts.append(optax.clip_by_global_norm(float(c.clip_grad_norm)))
    if c.name == "adamw":
        parts.append(optax.adamw(schedule, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=wd, mask=wd_mask))
    elif c.name in ("adam", "sgd"):
        if wd > 0:
            parts.append(optax.add_decayed_weights(wd, mask=wd_mask))
        if c.name == "adam":
            parts.append(optax.adam(schedule, b1=c.b1, b2=c.b2, eps=c.eps))
        else:
            parts.append(optax.sgd(schedule, momentum=float(c.momentum) or None, nesterov=c.nesterov))
    else:
        raise ValueError(f"config.optim.name: unknown optimizer {c.name!r} (adam | adamw | sgd)")
    tx = optax.chain(*parts)
    if not c.frozen:
        return tx

    def labels(params):
        frozen = path_mask(params, c.frozen)
        return jax.tree.map(lambda f: "frozen" if f else "trainable", frozen)

    return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)
