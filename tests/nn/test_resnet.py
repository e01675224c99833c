"""ResNet: output shapes (tiny), parameter counts vs timm, torch-style padding / pooling / BatchNorm numerics."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hmrjax.nn.backbones as bb
from hmrjax.nn.backbones.ops import batch_norm, conv
from backbone_helpers import count, layout, random_variables, variable_shapes


def _np_conv_nchw(x, w, stride, pad):
    """float64 reference of torch Conv2d (no bias): x [B, C, H, W], w [O, C, kh, kw], symmetric padding."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    o, c, kh, kw = w.shape
    hout = (x.shape[2] - kh) // stride + 1
    wout = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], o, hout, wout))
    for i in range(hout):
        for j in range(wout):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("bchw,ochw->bo", patch, w)
    return out


@pytest.fixture(scope="module")
def tiny():
    model = bb.create("resnet_tiny")
    shapes = variable_shapes("resnet_tiny", (64, 64))
    return model, random_variables(shapes)


def test_tiny_output_shapes_eval_and_train(tiny):
    model, variables = tiny
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 64, 64, 3)), jnp.float32)
    out = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    expected = {"stem": (2, 16, 16, 16), "layer1": (2, 16, 16, 32), "layer2": (2, 8, 8, 64),
                "layer3": (2, 4, 4, 128), "layer4": (2, 2, 2, 256), "features": (2, 2, 2, 256), "pooled": (2, 256)}
    assert {k: v.shape for k, v in out.items()} == expected
    np.testing.assert_allclose(out["pooled"], out["layer4"].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert all(bool(jnp.isfinite(v).all()) for v in out.values())
    # train mode updates batch statistics; frozen BN keeps them and matches eval mode exactly.
    _, upd = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), upd["batch_stats"], variables["batch_stats"])
    assert all(jax.tree.leaves(changed))
    frozen = bb.create("resnet_tiny", frozen_bn=True)
    out_f, upd_f = jax.jit(lambda v, x: frozen.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    np.testing.assert_array_equal(out_f["features"], out["features"])
    jax.tree.map(np.testing.assert_array_equal, upd_f["batch_stats"], variables["batch_stats"])


def test_bf16_compute_keeps_float32_params(tiny):
    _, variables = tiny
    model = bb.create("resnet_tiny", dtype=jnp.bfloat16)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 32, 32, 3)), jnp.float32)
    out = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    assert out["features"].dtype == jnp.bfloat16
    ref = jax.jit(lambda v, x: bb.create("resnet_tiny").apply(v, x))(variables, x)
    np.testing.assert_allclose(np.asarray(out["features"], np.float32), ref["features"], atol=0.1, rtol=0.1)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variable_shapes("resnet_tiny", (64, 64))))


@pytest.mark.parametrize("name", ["resnet50", "resnet101"])
def test_parameter_count_equals_timm(name):
    shapes = variable_shapes(name, num_classes=1000)
    assert count(shapes["params"]) == layout(name)["num_params"]
    # batch_stats hold exactly the torch running_mean/var buffers
    n_stats = sum(int(np.prod(s)) for k, s, _ in layout(name)["state_dict"] if k.endswith(("running_mean", "running_var")))
    assert count(shapes["batch_stats"]) == n_stats
    assert count(variable_shapes(name)["params"]) == layout(name)["num_params"] - 2048 * 1000 - 1000


@pytest.mark.parametrize("size,kernel,stride", [(9, 3, 2), (10, 3, 2), (11, 7, 2), (8, 1, 2), (6, 3, 1)])
def test_conv_pads_like_torch(size, kernel, stride):
    rng = np.random.default_rng(size)
    x = rng.standard_normal((1, 2, size, size + 1))
    w = rng.standard_normal((3, 2, kernel, kernel))
    layer = conv(3, kernel, stride)
    y = layer.apply({"params": {"kernel": jnp.asarray(w.transpose(2, 3, 1, 0), jnp.float32)}},
                    jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32))
    ref = _np_conv_nchw(x, w, stride, kernel // 2).transpose(0, 2, 3, 1)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_stem_max_pool_pads_with_minus_infinity():
    # torch MaxPool2d(3, 2, padding=1) ignores padding: an all-negative map keeps its own maxima.
    x = -1.0 - np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    y = nn.max_pool(jnp.asarray(x), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    ref = np.array([[max(x[0, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2, 0].ravel()) for j in (0, 2, 4)]
                    for i in (0, 2, 4)])
    np.testing.assert_array_equal(y[0, :, :, 0], ref)


def test_batch_norm_matches_torch_formulas():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5, 2)).astype(np.float32) * 2 + 1
    scale, bias = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    mean0, var0 = rng.standard_normal(2), rng.uniform(0.5, 2, 2)
    variables = {"params": {"scale": jnp.asarray(scale, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)},
                 "batch_stats": {"mean": jnp.asarray(mean0, jnp.float32), "var": jnp.asarray(var0, jnp.float32)}}
    xd = x.astype(np.float64)
    # eval: (x - running_mean) / sqrt(running_var + 1e-5) * weight + bias
    y = batch_norm(train=False, frozen=False).apply(variables, jnp.asarray(x))
    np.testing.assert_allclose(y, (xd - mean0) / np.sqrt(var0 + 1e-5) * scale + bias, rtol=1e-5, atol=1e-5)
    # train: batch statistics (biased variance), running mean updated with torch momentum 0.1
    y, upd = batch_norm(train=True, frozen=False).apply(variables, jnp.asarray(x), mutable=["batch_stats"])
    m, v = xd.mean(axis=(0, 1, 2)), xd.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (xd - m) / np.sqrt(v + 1e-5) * scale + bias, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.9 * mean0 + 0.1 * m, rtol=1e-5)
