"""The trainer: `train_and_evaluate(config, workdir)` trains any Method (see hmrjax/methods/base.py).

Reads top to bottom: distributed start, method, mesh, data iterator, abstract state via
`jax.eval_shape`, shardings from the partition rules, `jax.jit(init, out_shardings=...)` or restore
from the newest checkpoint, `jax.jit(train_step, donate_argnums=0)`, then the loop (log, evaluate,
checkpoint, preemption). `python -m hmrjax.train.trainer --config F.py:arg --workdir W [--config.k=v]`
runs it without the CLI.

Data: `dataset` is a grain MapDataset / IterDataset of per-process batches (dicts of numpy arrays
with leading dim batch_size // process_count), or a callable (process_index, process_count) -> such
a dataset. By default it comes from `config.data.name` ('toy': `hmrjax.methods.toy.toy_dataset`;
anything else: `data_pipelines.build_train_dataset(config, process_index, process_count)`).

Non-finite loss or gradient norm: the step computes `ok = isfinite(loss) & isfinite(grad_norm)` and
keeps the old params/optimizer/state when not ok (so a bad state never exists). `nonfinite="skip"`
counts it (`nonfinite_count`) and goes on; `"stop"` raises `NonFiniteError` (checked one step behind,
so the host never waits on the step it just dispatched; always before any save). Saves already made
are left intact and the bad step is never saved.
"""
from __future__ import annotations

import os
import pathlib
import signal
import sys
import threading
import time
from typing import Any, Callable

import flax.struct
import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hmrjax import methods
from hmrjax.train import checkpoint as ckpt_lib
from hmrjax.train import distributed
from hmrjax.train import logging as log_lib
from hmrjax.train import mesh as mesh_lib
from hmrjax.train import optim
from hmrjax.train import pretrained


class NonFiniteError(FloatingPointError):
    """Raised by `nonfinite="stop"` when a step's loss or gradient norm is NaN or infinite."""


@flax.struct.dataclass
class TrainState:
    """Everything that is checkpointed except the data position.

    step: [] int32 steps taken. params: f32 master parameters. opt_state: optax state.
    state: non-param variable collections (e.g. {'batch_stats': ...}). rng: [2] uint32 key.
    ema_params: EMA of params or None. nonfinite_count: [] int32 skipped steps.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    state: Any
    rng: jax.Array
    ema_params: Any
    nonfinite_count: jax.Array


def _cast_floats(tree, dtype):
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def make_init_fn(method, tx, config) -> Callable:
    """(rng [2] uint32, batch) -> TrainState with fresh variables."""

    def init(rng, batch):
        init_rng, train_rng = jax.random.split(rng)
        params, state = methods.split_variables(method.init(init_rng, batch))
        ema = params if float(config.optim.ema_decay) > 0 else None
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                          state=state, rng=train_rng, ema_params=ema,
                          nonfinite_count=jnp.zeros((), jnp.int32))

    return init


def make_train_step(method, tx, config) -> Callable:
    """(TrainState, global batch) -> (TrainState, metrics of scalars). Pure; jit it."""
    compute_dtype = jnp.dtype(config.compute_dtype)
    schedule = optim.make_schedule(config.optim, config.total_steps)
    ema_decay = float(config.optim.ema_decay)

    def loss_fn(params, state, batch, rng):
        if compute_dtype != jnp.float32:  # mixed precision: f32 master params, compute in bf16
            params, batch = _cast_floats(params, compute_dtype), _cast_floats(batch, compute_dtype)
        loss, (metrics, new_state) = method.loss(params, state, batch, rng)
        return loss.astype(jnp.float32), (metrics, new_state)

    def train_step(ts: TrainState, batch):
        rng, step_rng = jax.random.split(ts.rng)
        (loss, (metrics, new_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            ts.params, ts.state, batch, step_rng)
        new_state = jax.tree.map(lambda new, old: new.astype(old.dtype), new_state, ts.state)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        loss_ok, grads_ok = jnp.isfinite(loss), jnp.isfinite(grad_norm)
        ok = loss_ok & grads_ok

        def keep_if_bad(new, old):
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

        ema = ts.ema_params
        if ema is not None:
            ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
        new_ts = TrainState(
            step=ts.step + 1, params=keep_if_bad(params, ts.params),
            opt_state=keep_if_bad(opt_state, ts.opt_state), state=keep_if_bad(new_state, ts.state),
            rng=rng, ema_params=None if ema is None else keep_if_bad(ema, ts.ema_params),
            nonfinite_count=ts.nonfinite_count + (~ok).astype(jnp.int32))
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        metrics.update(loss=loss, grad_norm=grad_norm, lr=jnp.asarray(schedule(ts.step), jnp.float32),
                       nonfinite_count=new_ts.nonfinite_count, loss_finite=loss_ok, grads_finite=grads_ok)
        return new_ts, metrics

    return train_step


def state_shardings(mesh, rules, abstract_state: TrainState):
    """NamedShardings for a TrainState: rules match param paths; optimizer/EMA leaves with the same
    path suffix follow them (leaves of lower rank than a rule's spec are replicated)."""

    def one(path: str, leaf):
        field, _, rest = path.partition("/")
        spec = mesh_lib.match_rules(rules, rest) if field in ("params", "opt_state", "ema_params") else None
        if spec is None or (field != "params" and len(tuple(spec)) > len(leaf.shape)):
            return mesh_lib.replicated(mesh)
        return jax.sharding.NamedSharding(mesh, mesh_lib.spec_for(rules, rest, leaf.shape))

    return mesh_lib.map_with_paths(one, abstract_state)


# ------------------------------------------------------------------------------------------ data
def resolve_dataset(config, dataset=None):
    """The per-process grain dataset (see module docstring)."""
    p, n = jax.process_index(), jax.process_count()
    if dataset is None:
        name = config.data.name if "data" in config and "name" in config.data else None
        if name == "toy":
            from hmrjax.methods.toy import toy_dataset
            dataset = toy_dataset(config, p, n)
        else:
            try:
                import data_pipelines
                build = data_pipelines.build_train_dataset
            except (ImportError, AttributeError) as err:
                raise ValueError(f"config.data.name={name!r}: no dataset given and no "
                                 f"data_pipelines.build_train_dataset ({err})") from None
            dataset = build(config, p, n)
    elif not isinstance(dataset, (grain.MapDataset, grain.IterDataset)) and callable(dataset):
        dataset = dataset(p, n)
    if isinstance(dataset, grain.MapDataset):
        dataset = dataset.to_iter_dataset()
    if not isinstance(dataset, grain.IterDataset):
        raise TypeError(f"dataset must be a grain MapDataset/IterDataset, got {type(dataset).__name__}")
    return dataset


def _check_local_batch(local, expected: int, step: int):
    for key, value in local.items():
        if np.shape(value)[:1] != (expected,):
            raise ValueError(f"batch field {key!r} at step {step} has shape {np.shape(value)}; expected "
                             f"leading dim {expected} (= batch_size / process_count)")


# ------------------------------------------------------------------------------------------ loop helpers
class _Preemption:
    """SIGTERM sets a flag; the loop saves a checkpoint and returns at the next step boundary."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def should_stop(self, step: int) -> bool:
        if jax.process_count() > 1:  # all processes must agree on the step; JAX's preemption service
            from jax.experimental import multihost_utils
            return self.requested or multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _budget_spent(start: float, budget_s: float) -> bool:
    """True once `budget_s` seconds have passed since `start` (on every process: process 0 decides, so
    that all processes stop at the same step)."""
    spent = time.perf_counter() - start >= budget_s
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        spent = bool(multihost_utils.broadcast_one_to_all(np.asarray(spent)))
    return spent


def _raise_if_nonfinite(config, step: int, host_metrics: dict, checkpointer):
    if config.nonfinite != "stop" or (host_metrics["loss_finite"] and host_metrics["grads_finite"]):
        return
    which = "loss" if not host_metrics["loss_finite"] else "gradients"
    checkpointer.wait()
    last = checkpointer.latest_step()
    raise NonFiniteError(
        f"non-finite {which} at step {step} (loss={host_metrics['loss']}, grad_norm="
        f"{host_metrics['grad_norm']}); training stopped without applying or saving that step. "
        f"Last good checkpoint: {'none' if last is None else f'step {last}'} in {checkpointer.directory}. "
        "Set --config.nonfinite=skip to skip such steps instead.")


def train_and_evaluate(config, workdir: str | os.PathLike, *, dataset=None,
                       evaluate_fn: Callable[[TrainState], dict] | None = None,
                       devices=None) -> TrainState:
    """Trains `config.method` for `config.total_steps` steps in `workdir`, resuming if it has checkpoints.

    evaluate_fn(state) -> {name: scalar} runs every `config.eval_every` steps (and at the end);
    results are logged as `eval/<name>`. `devices` restricts the mesh (default: all devices).
    Returns the final TrainState.
    """
    if config.nonfinite not in ("stop", "skip"):
        raise ValueError(f"config.nonfinite must be 'stop' or 'skip', got {config.nonfinite!r}")
    distributed.initialize()
    workdir = pathlib.Path(workdir)
    primary = jax.process_index() == 0
    if primary:
        workdir.mkdir(parents=True, exist_ok=True)
        log_lib.write_json_atomic(workdir / "config.json", config.to_dict())

    method = methods.create(config)
    tx = optim.make_optimizer(config.optim, config.total_steps)
    mesh = mesh_lib.make_mesh(config.mesh, devices)
    if config.batch_size % jax.process_count():
        raise ValueError(f"config.batch_size={config.batch_size} not divisible by {jax.process_count()} processes")
    local_batch_size = config.batch_size // jax.process_count()

    data = resolve_dataset(config, dataset)
    data_iter = iter(data)
    example = next(iter(data))  # a fresh iterator: shapes only, data_iter's position is untouched
    _check_local_batch(example, local_batch_size, 0)
    example = mesh_lib.global_batch(mesh, example)

    init_fn = make_init_fn(method, tx, config)
    rng = jax.random.PRNGKey(config.seed)
    abstract = jax.eval_shape(init_fn, rng, example)
    shardings = state_shardings(mesh, config.partition_rules, abstract)
    batch_shardings = jax.tree.map(lambda _: mesh_lib.batch_sharding(mesh), example)

    checkpointer = ckpt_lib.Checkpointer(workdir / "checkpoints", config.checkpoint.every_steps,
                                         config.checkpoint.keep, config.checkpoint["async"])
    start = checkpointer.latest_step()
    if start is not None:
        state = checkpointer.restore(start, ckpt_lib.abstract_with_shardings(abstract, shardings), data_iter)
    else:
        state = jax.jit(init_fn, out_shardings=shardings)(rng, example)
        state, reports = pretrained.load_into_train_state(state, config)
        for module, path, report in reports if primary else ():
            print(f"init: {path} -> {module!r}: {report.summary()}", file=sys.stderr)
    step = int(jax.device_get(state.step))

    train_step = jax.jit(make_train_step(method, tx, config), in_shardings=(shardings, batch_shardings),
                         out_shardings=(shardings, mesh_lib.replicated(mesh)), donate_argnums=0)
    logger = log_lib.MetricLogger(workdir, enabled=primary)
    progress = log_lib.Progress(config.total_steps, step, enabled=primary)
    pending = None  # (step, device metrics) of the last step, checked one step behind
    saved_step = start
    timer_step, timer_t = step, time.perf_counter()

    def settle():
        nonlocal pending
        if pending is not None:
            done_step, device_metrics = pending
            pending = None
            host = jax.device_get(device_metrics)
            _raise_if_nonfinite(config, done_step, host, checkpointer)
            return done_step, host
        return None, None

    budget_s = 60.0 * float(config.get("max_train_minutes", 0) or 0)
    loop_start = time.perf_counter()
    try:
        with _Preemption() as preemption:
            while step < config.total_steps:
                if budget_s and _budget_spent(loop_start, budget_s):
                    settle()
                    if saved_step != step:
                        checkpointer.save(step, state, data_iter, force=True)
                        saved_step = step
                    print(f"time budget of {budget_s / 60:g} min reached: saved step {step} in "
                          f"{checkpointer.directory}", file=sys.stderr)
                    if evaluate_fn is not None:
                        logger.write(step, {f"eval/{k}": v for k, v in evaluate_fn(state).items()})
                    break
                if preemption.should_stop(step):
                    settle()
                    if saved_step != step:
                        checkpointer.save(step, state, data_iter, force=True)
                    print(f"preemption signal: saved step {step} in {checkpointer.directory}", file=sys.stderr)
                    break
                local = next(data_iter)
                _check_local_batch(local, local_batch_size, step)
                batch = mesh_lib.global_batch(mesh, local)
                with jax.transfer_guard("disallow"):  # a hidden host<->device copy in a step is a bug
                    state, device_metrics = train_step(state, batch)
                settle()
                step += 1
                pending = (step, device_metrics)

                if step % config.log_every == 0 or step == config.total_steps:
                    _, host = settle()
                    now = time.perf_counter()
                    images_per_s = (step - timer_step) * config.batch_size / max(now - timer_t, 1e-9)
                    timer_step, timer_t = step, now
                    logger.write(step, {**host, "images_per_s": images_per_s})
                    progress.update(0, float(host["loss"]), images_per_s)
                progress.update(1)
                if evaluate_fn is not None and ((config.eval_every and step % config.eval_every == 0)
                                                or step == config.total_steps):
                    settle()
                    logger.write(step, {f"eval/{k}": v for k, v in evaluate_fn(state).items()})
                if step % config.checkpoint.every_steps == 0 or step == config.total_steps:
                    settle()
                    if checkpointer.save(step, state, data_iter, force=step == config.total_steps):
                        saved_step = step
            settle()
    finally:
        progress.close()
        logger.close()
        checkpointer.close()  # waits for async saves: the last good checkpoint is complete
    return state


def main(argv=None) -> int:
    """`python -m hmrjax.train.trainer --config F.py[:arg] --workdir W [--config.key=value ...]`."""
    from hmrjax.train.config_flags import parse_config_flags

    from hmrjax.train.config_flags import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config, rest = parse_config_flags(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if len(rest) != 2 or rest[0] != "--workdir":
        if len(rest) == 1 and rest[0].startswith("--workdir="):
            rest = ["--workdir", rest[0].split("=", 1)[1]]
        else:
            raise SystemExit(f"usage: --config F.py[:arg] --workdir W [--config.k=v ...]; got extra {rest}")
    train_and_evaluate(config, rest[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
