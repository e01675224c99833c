"""The train loop on one device: logs, evaluation, checkpoints, SIGTERM, resume, non-finite handling,
mixed precision and EMA. Multi-device and kill -9 runs are in test_distributed.py."""
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from hmrjax import methods
from hmrjax.methods.toy import toy_dataset
from hmrjax.train import optim, trainer
from hmrjax.train.checkpoint import Checkpointer
from hmrjax.train.config_flags import load_config

TOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "toy.py")


def _config(steps, every=2, **overrides):
    config = load_config(f"{TOY}:tiny")
    config.total_steps = steps
    config.log_every = 1
    config.checkpoint.every_steps = every
    config.checkpoint.keep = 10
    config.update(overrides)
    return config


def _lines(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _with_nan_at(config, index):
    def poison(i, batch):
        if i == index:
            batch = dict(batch, image=np.full_like(batch["image"], np.nan))
        return batch
    return toy_dataset(config).map_with_index(poison)


def test_logs_eval_sigterm_save_then_resume(tmp_path):
    config = _config(8, eval_every=2)

    def evaluate(state):
        step = int(jax.device_get(state.step))
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # preemption notice: save and return
        return {"score": float(step)}

    state = trainer.train_and_evaluate(config, tmp_path, evaluate_fn=evaluate)
    assert int(jax.device_get(state.step)) == 4
    assert Checkpointer(tmp_path / "checkpoints", 2, 10).manager.all_steps() == [2, 4]
    assert json.loads((tmp_path / "config.json").read_text())["optim"]["lr"] == config.optim.lr
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    lines = _lines(tmp_path)
    assert [l["step"] for l in lines if "loss" in l] == [1, 2, 3, 4]
    assert [(l["step"], l["eval/score"]) for l in lines if "eval/score" in l] == [(2, 2.0), (4, 4.0)]
    assert all(l["nonfinite_count"] == 0 and l["images_per_s"] > 0 for l in lines if "loss" in l)

    # Same command again: resumes at step 4, runs to the end, keeps the data order.
    state = trainer.train_and_evaluate(config, tmp_path, evaluate_fn=lambda s: {})
    assert int(jax.device_get(state.step)) == 8
    steps = [l["step"] for l in _lines(tmp_path) if "loss" in l]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]
    expected_targets = [float(np.mean(toy_dataset(config)[i]["target"], dtype=np.float64)) for i in range(8)]
    np.testing.assert_allclose([l["target_mean"] for l in _lines(tmp_path) if "loss" in l], expected_targets,
                               rtol=1e-5, atol=1e-8)


def test_nonfinite_stop_raises_and_keeps_last_good_checkpoint(tmp_path):
    config = _config(8, every=2)
    with pytest.raises(trainer.NonFiniteError,
                       match=r"non-finite loss at step 4 .*Last good checkpoint: step 2"):
        trainer.train_and_evaluate(config, tmp_path, dataset=_with_nan_at(config, 3))
    manager = Checkpointer(tmp_path / "checkpoints", 2, 10).manager
    assert manager.all_steps() == [2]
    restored = manager.restore(2, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    assert int(restored.state["step"]) == 2
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored.state["params"]))


def test_nonfinite_skip_counts_and_leaves_params_unchanged(tmp_path):
    config = _config(4, every=1, nonfinite="skip")
    # Frozen sub-tree (empty optimizer state) and EMA also go through the checkpoint round trip here.
    config.optim.update(frozen=(r"^backbone/Conv_1/",), ema_decay=0.5)
    state = trainer.train_and_evaluate(config, tmp_path, dataset=_with_nan_at(config, 3))  # step 4 is bad
    assert int(jax.device_get(state.nonfinite_count)) == 1
    last = _lines(tmp_path)[-1]
    assert last["step"] == 4 and last["nonfinite_count"] == 1 and last["loss"] == "nan"
    manager = Checkpointer(tmp_path / "checkpoints", 1, 10).manager
    before = manager.restore(3, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params), before["params"])
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.state), before["state"])
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.ema_params), before["ema_params"])
    first = manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
    np.testing.assert_array_equal(before["params"]["backbone"]["Conv_1"]["kernel"],
                                  first["params"]["backbone"]["Conv_1"]["kernel"])  # frozen


def test_bfloat16_compute_keeps_float32_params_and_ema_formula():
    config = _config(2, compute_dtype="float32")
    config.optim.update(name="sgd", momentum=0.0, lr=0.1, ema_decay=0.25)
    method = methods.create(config)
    tx = optim.make_optimizer(config.optim, config.total_steps)
    batch = jax.tree.map(jnp.asarray, toy_dataset(config)[0])
    state = jax.jit(trainer.make_init_fn(method, tx, config))(jax.random.PRNGKey(0), batch)
    new32, m32 = jax.jit(trainer.make_train_step(method, tx, config))(state, batch)
    config.compute_dtype = "bfloat16"
    new16, m16 = jax.jit(trainer.make_train_step(method, tx, config))(state, batch)
    np.testing.assert_allclose(float(m16["loss"]), float(m32["loss"]), rtol=3e-2)
    assert m16["loss"].dtype == jnp.float32
    for tree in (new16.params, new16.state, new16.ema_params):
        assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(tree))
    # EMA after one step: decay * p0 + (1 - decay) * p1 (p0: initial params = initial EMA).
    expected = jax.tree.map(lambda p0, p1: 0.25 * np.asarray(p0, np.float64) + 0.75 * np.asarray(p1, np.float64),
                            state.params, new32.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), new32.ema_params, expected)


def test_time_budget_checkpoints_evaluates_and_stops(tmp_path, monkeypatch):
    """config.max_train_minutes: once the budget is spent the loop saves, evaluates and returns early."""
    config = _config(50, every=100, max_train_minutes=1.0)
    calls = []
    clock = {"t": 1000.0}

    def fake_clock():  # every call advances 7 s: the 60 s budget runs out after a handful of steps
        clock["t"] += 7.0
        return clock["t"]

    monkeypatch.setattr(trainer.time, "perf_counter", fake_clock)
    state = trainer.train_and_evaluate(config, tmp_path, evaluate_fn=lambda s: calls.append(
        int(jax.device_get(s.step))) or {"score": 1.0})
    step = int(jax.device_get(state.step))
    assert 0 < step < 50
    assert Checkpointer(tmp_path / "checkpoints", 100, 10).manager.all_steps() == [step]
    assert calls == [step]
    assert [l["step"] for l in _lines(tmp_path) if "eval/score" in l] == [step]
