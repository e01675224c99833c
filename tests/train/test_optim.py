"""Optimizer/schedule construction checked against hand-computed optax update formulas (numpy, float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from hmrjax.train import optim


def _optim(**overrides):
    c = common.base_config().optim
    c.update(overrides)
    return c


def _params():
    rng = np.random.default_rng(0)
    return {"backbone": {"kernel": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32),
                         "bias": jnp.asarray(rng.standard_normal(2), jnp.float32)},
            "head": {"kernel": jnp.asarray(rng.standard_normal((2, 1)), jnp.float32),
                     "bias": jnp.asarray(rng.standard_normal(1), jnp.float32)}}


def _grads(seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32), _params())


def _step(tx, params, grads, state=None):
    state = tx.init(params) if state is None else state
    updates, state = tx.update(grads, state, params)
    return jax.tree.map(lambda p, u: np.asarray(p, np.float64) + np.asarray(u, np.float64), params, updates), state


def test_warmup_cosine_schedule_matches_formula():
    lr, warmup, total, alpha = 0.1, 10, 110, 0.05
    sched = optim.make_schedule(_optim(lr=lr, schedule="warmup_cosine", warmup_steps=warmup,
                                       final_lr_fraction=alpha), total)
    for t in [0, 3, 10, 35, 60, 109, 110, 200]:
        if t < warmup:
            expected = lr * t / warmup
        else:
            progress = min(t - warmup, total - warmup) / (total - warmup)
            expected = lr * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * progress)) + alpha)
        np.testing.assert_allclose(float(sched(t)), expected, rtol=1e-5, atol=1e-8, err_msg=f"step {t}")


def test_step_schedule_with_warmup_and_constant():
    sched = optim.make_schedule(_optim(lr=1.0, schedule="step", warmup_steps=4,
                                       boundaries=(10, 20), factors=(0.1, 0.5)), 100)
    expected = {0: 0.0, 2: 0.5, 4: 1.0, 9: 1.0, 10: 0.1, 19: 0.1, 20: 0.05, 99: 0.05}
    for t, value in expected.items():
        np.testing.assert_allclose(float(sched(t)), value, rtol=1e-6, err_msg=f"step {t}")
    const = optim.make_schedule(_optim(lr=0.3), 100)
    assert float(const(0)) == pytest.approx(0.3) and float(const(99)) == pytest.approx(0.3)


def test_sgd_weight_decay_mask_only_decays_kernels():
    lr, wd = 0.1, 0.01
    tx = optim.make_optimizer(_optim(name="sgd", lr=lr, momentum=0.0, weight_decay=wd), 10)
    params, grads = _params(), _grads()
    new, _ = _step(tx, params, grads)
    for module in ("backbone", "head"):
        p = {k: np.asarray(v, np.float64) for k, v in params[module].items()}
        g = {k: np.asarray(v, np.float64) for k, v in grads[module].items()}
        np.testing.assert_allclose(new[module]["kernel"], p["kernel"] - lr * (g["kernel"] + wd * p["kernel"]),
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(new[module]["bias"], p["bias"] - lr * g["bias"], rtol=1e-6, atol=1e-7)  # no decay


def test_adamw_first_step_matches_formula():
    lr, wd, eps = 0.01, 0.1, 1e-8
    tx = optim.make_optimizer(_optim(name="adamw", lr=lr, weight_decay=wd, eps=eps), 10)
    params, grads = _params(), _grads()
    new, _ = _step(tx, params, grads)
    for module in ("backbone", "head"):
        for name in ("kernel", "bias"):
            p = np.asarray(params[module][name], np.float64)
            g = np.asarray(grads[module][name], np.float64)
            m_hat, v_hat = g, g * g  # bias-corrected first moments after one step
            decay = wd * p if name == "kernel" else 0.0
            expected = p - lr * (m_hat / (np.sqrt(v_hat) + eps) + decay)
            np.testing.assert_allclose(new[module][name], expected, rtol=1e-5, atol=1e-7)


def test_frozen_subtree_gets_no_updates_over_steps():
    tx = optim.make_optimizer(_optim(name="adam", lr=0.1, frozen=(r"^backbone/",)), 10)
    params = _params()
    state = tx.init(params)
    current = params
    for seed in range(3):
        updates, state = tx.update(_grads(seed), state, current)
        current = jax.tree.map(lambda p, u: p + u, current, updates)
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(current["backbone"][name], params["backbone"][name])
        assert np.max(np.abs(np.asarray(current["head"][name]) - np.asarray(params["head"][name]))) > 1e-3


def test_clip_grad_norm_scales_to_the_limit():
    tx = optim.make_optimizer(_optim(name="sgd", lr=1.0, momentum=0.0, clip_grad_norm=1.0), 10)
    params, grads = _params(), _grads()
    norm = np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in jax.tree.leaves(grads)))
    assert norm > 1.0
    new, _ = _step(tx, params, grads)
    expected = jax.tree.map(lambda p, g: np.asarray(p, np.float64) - np.asarray(g, np.float64) / norm,
                            params, grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new, expected)


def test_bad_optimizer_fields_are_rejected():
    with pytest.raises(ValueError, match="config.optim.name"):
        optim.make_optimizer(_optim(name="adamm"), 10)
    with pytest.raises(ValueError, match="config.optim.schedule"):
        optim.make_schedule(_optim(schedule="linear"), 10)
    with pytest.raises(ValueError, match="boundaries"):
        optim.make_schedule(_optim(schedule="step", boundaries=(1, 2), factors=(0.1,)), 10)
