"""Regression heads: `MultiLinear` (one dense layer per head, one einsum) and PARE-style part soft attention.

Owns `MultiLinear` (ReFit / D-PoSE's per-joint regressor layer) and `part_soft_attention` (PARE, Kocabas et
al. 2021: each part map is turned into a spatial distribution with a softmax and pools the feature map).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["MultiLinear", "part_soft_attention"]

# torch Linear's default init (kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))), per head.
_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform", in_axis=-2, out_axis=-1,
                                                batch_axis=(0,))


class MultiLinear(nn.Module):
    """`num_heads` independent dense layers applied in one einsum: y[b, h] = x[b, h] @ W[h] + c[h].

    Equivalent to a loop over heads of `nn.Dense(features)` with kernel W[h] [in, features] and bias c[h].
    Parameters: kernel [num_heads, in, features], bias [num_heads, features]; default init as torch's
    Linear per head (U(-1/sqrt(in), 1/sqrt(in))), `kernel_init` overrides the kernel's.

    Call: x [..., num_heads, in] -> [..., num_heads, features].
    """

    num_heads: int
    features: int
    use_bias: bool = True
    kernel_init: Any = _kernel_init
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim < 2 or x.shape[-2] != self.num_heads:
            raise ValueError(f"MultiLinear({self.num_heads} heads): input must be [..., {self.num_heads}, in], "
                             f"got shape {x.shape}")
        kernel = self.param("kernel", self.kernel_init, (self.num_heads, x.shape[-1], self.features), jnp.float32)
        y = jnp.einsum("...hi,hio->...ho", x.astype(self.dtype), kernel.astype(self.dtype))
        if self.use_bias:
            bound = 1.0 / jnp.sqrt(x.shape[-1])
            bias = self.param("bias", lambda k, s: jax.random.uniform(k, s, jnp.float32, -bound, bound),
                              (self.num_heads, self.features))
            y = y + bias.astype(self.dtype)
        return y


def part_soft_attention(features: jax.Array, part_logits: jax.Array) -> jax.Array:
    """PARE part attention: f_p = sum_{ij} softmax_{ij}(a_p)[ij] F[ij] for each part p.

    Args:
      features: [B, H, W, C] feature map.
      part_logits: [B, H, W, P] one (unnormalised) attention map per part (background excluded);
        resized by the caller to the features' H, W.
    Returns:
      [B, P, C] part features (convex combinations of the feature vectors).
    """
    if features.ndim != 4 or part_logits.ndim != 4 or features.shape[:3] != part_logits.shape[:3]:
        raise ValueError(f"part_soft_attention: features [B, H, W, C] and part_logits [B, H, W, P] must share "
                         f"B, H, W; got {features.shape} and {part_logits.shape}")
    b, h, w, p = part_logits.shape
    attn = jax.nn.softmax(part_logits.reshape(b, h * w, p).astype(jnp.float32), axis=1)
    return jnp.einsum("bnp,bnc->bpc", attn.astype(features.dtype), features.reshape(b, h * w, -1))
