"""The engine's test method: a tiny conv net (with BatchNorm) regressing a few numbers from an image.

NOT a paper method. It exists so the trainer, sharding, checkpointing and benchmarks can be tested on
a real model in seconds: it has parameters in two sub-trees (`backbone/...`, `head/...`) for frozen /
weight-decay-mask tests, a BatchNorm layer (non-param state) for global-batch-statistics tests, and an
MSE loss. It also provides `toy_dataset`, an in-memory grain dataset of random images whose targets
are a fixed function of the image (so the loss can go down).

Batch: image [B, H, W, 3] float32, target [B, 3 * num_joints] float32.
`predict` reports the regressed numbers as `joints` [B, 1, J, 3] (and, for the contract's sake, the
same points as `vertices`); they are not a body mesh.
"""
from __future__ import annotations

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np

from hmrjax.methods.base import Method, Prediction


class ToyBackbone(nn.Module):
    """conv(stride 2, no bias) -> BatchNorm -> relu -> conv(stride 2) -> relu -> global average pool."""

    width: int = 8

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(self.width, (3, 3), strides=(2, 2), use_bias=False)(x)  # BN supplies the bias
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        x = nn.relu(nn.Conv(self.width, (3, 3), strides=(2, 2))(x))
        return x.mean(axis=(1, 2))


class ToyNet(nn.Module):
    """image [B, H, W, 3] -> [B, num_outputs]."""

    num_outputs: int
    width: int = 8

    @nn.compact
    def __call__(self, image, train: bool = False):
        features = ToyBackbone(self.width, name="backbone")(image, train)
        return nn.Dense(self.num_outputs, name="head")(features)


class ToyMethod(Method):
    """MSE regression of `target` from `image` (see module docstring). Reads `config.model.{width,num_joints}`."""

    def __init__(self, config):
        super().__init__(config)
        self.num_joints = int(config.model.num_joints)
        self.model = ToyNet(num_outputs=3 * self.num_joints, width=int(config.model.width))

    def init(self, rng, batch):
        return self.model.init(rng, batch["image"], train=False)

    def loss(self, params, state, batch, rng):
        del rng  # deterministic model
        pred, updates = self.model.apply({"params": params, **state}, batch["image"], train=True,
                                         mutable=["batch_stats"])
        target = batch["target"].astype(pred.dtype)
        mse = jnp.mean(jnp.square(pred - target))
        # `target_mean` fingerprints the batch so tests can check the data order.
        metrics = {"mse": mse, "target_mean": jnp.mean(batch["target"])}
        return mse, (metrics, dict(updates))

    def predict(self, variables, batch, rng, num_samples=1):
        del rng
        pred = self.model.apply(variables, batch["image"], train=False)
        joints = pred.reshape(pred.shape[0], 1, self.num_joints, 3)
        joints = jnp.repeat(joints, num_samples, axis=1)
        return Prediction(vertices=joints, joints=joints)


def toy_examples(num_examples: int, image_size: int, num_joints: int, seed: int = 0) -> list[dict]:
    """Random images [H, W, 3] in [0, 1) and targets [3J] = fixed random projection of channel means."""
    rng = np.random.default_rng(seed)
    images = rng.random((num_examples, image_size, image_size, 3), dtype=np.float32)
    projection = np.random.default_rng(12345).standard_normal((3, 3 * num_joints)).astype(np.float32)
    targets = (images.mean(axis=(1, 2)) - 0.5) @ projection * 4.0
    return [{"image": images[i], "target": targets[i].astype(np.float32)} for i in range(num_examples)]


def toy_dataset(config, process_index: int = 0, process_count: int = 1) -> grain.MapDataset:
    """Infinite grain dataset of per-process batches for `config` (config.data.*, config.batch_size).

    Global order: the examples shuffled with `config.seed`, repeated forever; process p reads every
    process_count-th example starting at p, in batches of batch_size // process_count. So the union of
    the processes' step-t batches is the same global batch for any process count.
    """
    if config.batch_size % process_count:
        raise ValueError(f"config.batch_size={config.batch_size} is not divisible by "
                         f"process_count={process_count}")
    examples = toy_examples(int(config.data.num_examples), int(config.model.image_size),
                            int(config.model.num_joints), seed=int(config.data.seed))
    ds = grain.MapDataset.source(examples).shuffle(seed=int(config.seed)).repeat(None)
    ds = ds[process_index::process_count]
    return ds.batch(config.batch_size // process_count, drop_remainder=True)
