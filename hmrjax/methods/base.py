"""The Method contract every hmrjax method implements, and `Prediction`, what methods output.

One trainer (`hmrjax.train.trainer`) and one evaluator serve every method through this contract:

    class Method:
        model: flax.linen.Module
        def init(self, rng, batch) -> variables            # {'params': ..., other collections}
        def loss(self, params, state, batch, rng) -> (loss, (metrics: dict, new_state))
        def predict(self, variables, batch, rng, num_samples=1) -> Prediction

`state` is every non-parameter variable collection (e.g. {'batch_stats': ...}); methods without any
return `{}`. A method is constructed from the full experiment config: `MethodClass(config)`; it reads
its own fields (conventionally `config.model` and `config.loss`). All four functions must be pure and
jit-able; the trainer calls `loss` inside `jax.jit` over the global (sharded) batch.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import flax.struct
import jax

PyTree = Any
Batch = Mapping[str, jax.Array]


@flax.struct.dataclass
class Prediction:
    """What a method predicts for a batch of B crops, with S hypotheses each (index 0 is the mode).

    Required:
      vertices: [B, S, V, 3] mesh vertices, metres, camera frame (OpenCV axes).
      joints:   [B, S, J, 3] 3D joints, metres, camera frame, the body model's joint order.
    Optional (None when the method does not predict them):
      pose:       [B, S, J, 3, 3] per-joint local rotation matrices, or [B, S, J, 3] axis-angle.
      betas:      [B, S, K] shape coefficients.
      cam:        [B, S, 3] weak-perspective camera (s, tx, ty) or translation, as the method documents.
      log_prob:   [B, S] log-likelihood of each hypothesis (probabilistic methods).
      depth:      [B, H, W] predicted depth map (metres).
      part_seg:   [B, H, W, P] part-segmentation logits.
      heatmaps:   [B, K, H, W] 2D keypoint heatmaps.
      silhouette: [B, H, W] person-mask logits.
    A pytree: it passes through jit, vmap and device_get unchanged.
    """

    vertices: jax.Array
    joints: jax.Array
    pose: Optional[jax.Array] = None
    betas: Optional[jax.Array] = None
    cam: Optional[jax.Array] = None
    log_prob: Optional[jax.Array] = None
    depth: Optional[jax.Array] = None
    part_seg: Optional[jax.Array] = None
    heatmaps: Optional[jax.Array] = None
    silhouette: Optional[jax.Array] = None

    def check(self) -> "Prediction":
        """Raises ValueError naming the field if vertices/joints are not [B, S, N, 3]; returns self.

        Not run on construction: pytree transforms (vmap, tree_map to scalars) rebuild Predictions
        whose leaves legitimately have other shapes.
        """
        for name in ("vertices", "joints"):
            shape = tuple(getattr(getattr(self, name), "shape", ()))
            if len(shape) != 4 or shape[-1] != 3:
                raise ValueError(f"Prediction.{name} must have shape [B, S, N, 3], got {shape}")
        batch = {getattr(self, name).shape[:2] for name in ("vertices", "joints")}
        if len(batch) != 1:
            raise ValueError(f"Prediction.vertices and .joints disagree on [B, S]: {sorted(batch)}")
        return self

    @property
    def num_samples(self) -> int:
        """S, the number of hypotheses per example."""
        return int(self.vertices.shape[1])

    def mode(self) -> "Prediction":
        """The first hypothesis only (S = 1); per-image fields are kept as they are."""
        per_sample = ("vertices", "joints", "pose", "betas", "cam", "log_prob")
        return self.replace(**{k: getattr(self, k)[:, :1] for k in per_sample
                               if getattr(self, k) is not None})


class Method:
    """Base class documenting the contract; subclasses set `model` and implement the three functions."""

    model: Any = None
    # True when `predict` honours `config.model.flip_test` (averages with the mirrored crop's prediction).
    supports_flip_test: bool = False

    def __init__(self, config):
        self.config = config

    def init(self, rng: jax.Array, batch: Batch) -> PyTree:
        """Returns the variables {'params': ..., other collections} for a batch like `batch`."""
        raise NotImplementedError

    def loss(self, params: PyTree, state: PyTree, batch: Batch, rng: jax.Array):
        """Returns (scalar loss, (metrics dict of scalars, new_state)) for a training batch."""
        raise NotImplementedError

    def predict(self, variables: PyTree, batch: Batch, rng: jax.Array, num_samples: int = 1) -> Prediction:
        """Returns a `Prediction` (inference mode: running statistics, no dropout)."""
        raise NotImplementedError


def split_variables(variables: Mapping[str, PyTree]) -> tuple[PyTree, dict]:
    """Splits `init`'s variables into (params, state) where state holds every other collection."""
    variables = dict(variables)
    if "params" not in variables:
        raise ValueError(f"variables must contain a 'params' collection, got {sorted(variables)}")
    params = variables.pop("params")
    return params, variables
