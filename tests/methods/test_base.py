"""Method contract pieces: Prediction pytree, variable splitting, the registry, and the toy method."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hmrjax import methods
from hmrjax.methods import Prediction
from hmrjax.methods.toy import ToyMethod, toy_dataset


def _toy_config():
    return ml_collections.ConfigDict(dict(
        method="toy", seed=0, batch_size=4, model=dict(image_size=16, width=4, num_joints=2),
        data=dict(name="toy", num_examples=16, seed=0)))


def test_prediction_is_a_pytree_with_optional_fields():
    pred = Prediction(vertices=jnp.ones((2, 3, 5, 3)), joints=jnp.zeros((2, 3, 4, 3)),
                      log_prob=jnp.arange(6.0).reshape(2, 3))
    leaves, treedef = jax.tree.flatten(pred)
    assert len(leaves) == 3  # None fields are empty subtrees
    doubled = jax.jit(lambda p: jax.tree.map(lambda x: 2 * x, p))(pred)
    assert isinstance(doubled, Prediction) and doubled.betas is None
    np.testing.assert_array_equal(doubled.log_prob, 2 * np.arange(6.0).reshape(2, 3))
    assert pred.num_samples == 3
    mode = pred.mode()
    assert mode.vertices.shape == (2, 1, 5, 3) and mode.log_prob.shape == (2, 1)
    np.testing.assert_array_equal(mode.log_prob[:, 0], [0.0, 3.0])


def test_prediction_check_rejects_wrong_shapes_but_transforms_work():
    with pytest.raises(ValueError, match=r"Prediction.joints must have shape \[B, S, N, 3\], got \(2, 4, 3\)"):
        Prediction(vertices=jnp.ones((2, 1, 5, 3)), joints=jnp.ones((2, 4, 3))).check()
    with pytest.raises(ValueError, match=r"disagree on \[B, S\]"):
        Prediction(vertices=jnp.ones((2, 1, 5, 3)), joints=jnp.ones((2, 2, 4, 3))).check()
    pred = Prediction(vertices=jnp.ones((2, 1, 5, 3)), joints=jnp.ones((2, 1, 4, 3))).check()
    means = jax.tree.map(jnp.mean, pred)  # rebuilt with scalar leaves: allowed
    per_example = jax.vmap(lambda p: jax.tree.map(jnp.sum, p))(pred)
    assert means.joints.shape == () and per_example.vertices.shape == (2,)


def test_split_variables_and_registry():
    params, state = methods.split_variables({"params": {"w": 1}, "batch_stats": {"m": 2}})
    assert params == {"w": 1} and state == {"batch_stats": {"m": 2}}
    with pytest.raises(ValueError, match="'params' collection"):
        methods.split_variables({"batch_stats": {}})
    assert "toy" in methods.registered()
    assert methods.get_method_class("toy") is ToyMethod
    with pytest.raises(KeyError, match="unknown method 'tyo'.*did you mean 'toy'"):
        methods.get_method_class("tyo")
    with pytest.raises(ValueError, match="module:Class"):
        methods.register("x", "no_colon")


def test_toy_method_contract_against_numpy_mse():
    config = _toy_config()
    method = methods.create(config)
    batch = jax.tree.map(jnp.asarray, toy_dataset(config)[0])
    assert batch["image"].shape == (4, 16, 16, 3) and batch["target"].shape == (4, 6)
    variables = jax.jit(method.init)(jax.random.PRNGKey(0), batch)
    params, state = methods.split_variables(variables)
    assert set(params) == {"backbone", "head"} and set(state) == {"batch_stats"}
    loss, (metrics, new_state) = jax.jit(method.loss)(params, state, batch, jax.random.PRNGKey(1))
    # Independent recomputation of the training-mode forward pass and the MSE in float64.
    pred, _ = jax.jit(lambda v, x: method.model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, batch["image"])
    expected = np.mean((np.asarray(pred, np.float64) - np.asarray(batch["target"], np.float64)) ** 2)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    np.testing.assert_allclose(float(metrics["target_mean"]), np.mean(np.asarray(batch["target"], np.float64)),
                               rtol=1e-6)
    # BatchNorm running mean moved towards the batch mean with momentum 0.9 (from zeros).
    assert np.max(np.abs(np.asarray(new_state["batch_stats"]["backbone"]["BatchNorm_0"]["mean"]))) > 0
    pred = jax.jit(method.predict, static_argnames="num_samples")(variables, batch, jax.random.PRNGKey(2),
                                                                  num_samples=2)
    assert pred.joints.shape == (4, 2, 2, 3) and pred.vertices.shape == (4, 2, 2, 3)


def test_toy_dataset_process_shards_union_is_the_global_batch():
    config = _toy_config()
    whole = toy_dataset(config)
    shards = [toy_dataset(config, p, 2) for p in range(2)]
    for step in (0, 5):  # step 5 wraps around the 16 examples (repeat)
        union = np.concatenate([s[step]["target"] for s in shards])
        np.testing.assert_array_equal(np.sort(union, axis=0), np.sort(whole[step]["target"], axis=0))
    with pytest.raises(ValueError, match="not divisible by process_count=3"):
        toy_dataset(config, 0, 3)
