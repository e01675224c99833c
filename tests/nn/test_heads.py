"""MultiLinear == a loop of separate dense layers; PARE part attention vs numpy."""
import flax.linen as nn
import jax
import numpy as np
import pytest
from scipy.special import softmax

from hmrjax.nn.heads import MultiLinear, part_soft_attention


def test_multilinear_equals_loop_of_dense_layers():
    heads, fin, fout = 5, 7, 3
    x = np.random.default_rng(0).standard_normal((4, heads, fin)).astype(np.float32)
    layer = MultiLinear(heads, fout)
    v = layer.init(jax.random.key(0), x)
    got = np.asarray(layer.apply(v, x))
    assert v["params"]["kernel"].shape == (heads, fin, fout) and v["params"]["bias"].shape == (heads, fout)
    dense = nn.Dense(fout)
    for h in range(heads):
        p = {"params": {"kernel": v["params"]["kernel"][h], "bias": v["params"]["bias"][h]}}
        np.testing.assert_allclose(got[:, h], np.asarray(dense.apply(p, x[:, h])), rtol=1e-5, atol=1e-6)
    # heads really are independent (different initial weights), and the init bound is 1/sqrt(fin)
    assert not np.allclose(v["params"]["kernel"][0], v["params"]["kernel"][1])
    assert np.abs(np.asarray(v["params"]["kernel"])).max() <= 1 / np.sqrt(fin)


def test_multilinear_rejects_wrong_head_count():
    with pytest.raises(ValueError, match="3 heads"):
        MultiLinear(3, 2).init(jax.random.key(0), np.zeros((1, 4, 5), np.float32))


def test_part_soft_attention_matches_numpy():
    rng = np.random.default_rng(1)
    f = rng.standard_normal((2, 4, 3, 6)).astype(np.float32)
    a = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    got = np.asarray(part_soft_attention(f, a))
    ref = np.zeros((2, 5, 6))
    for b in range(2):
        for p in range(5):
            w = softmax(a[b, :, :, p].astype(np.float64).ravel())
            ref[b, p] = (w[:, None] * f[b].reshape(-1, 6)).sum(0)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    with pytest.raises(ValueError, match="share"):
        part_soft_attention(f, a[:, :2])
