"""ViT / ViTPose: feature-map shapes (tiny), parameter counts vs timm, block and decoder numerics vs numpy."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

import hmrjax.nn.backbones as bb
from hmrjax.nn.backbones.vit import Block, SimpleHeatmapDecoder
from backbone_helpers import count, layout, random_variables, variable_shapes


def test_tiny_vitpose_style_feature_map_and_heatmaps():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 256, 192, 3)), jnp.float32)
    model = bb.create("vitpose_tiny_test")
    variables = random_variables(variable_shapes("vitpose_tiny_test", (256, 192)))
    assert variables["params"]["backbone"]["pos_embed"].shape == (1, 16 * 12 + 1, 32)
    assert "cls_token" not in variables["params"]["backbone"]
    out = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    assert out["features"].shape == (2, 16, 12, 32)
    assert out["heatmaps"].shape == (2, 64, 48, 17)
    assert bool(jnp.isfinite(out["heatmaps"]).all())


@pytest.mark.parametrize("kwargs,hw,grid", [({}, (64, 48), (4, 3)),
                                            ({"patch_size": 14, "class_token": False}, (56, 42), (4, 3))])
def test_tiny_vit_shapes_with_interpolated_positions(kwargs, hw, grid):
    model = bb.create("vit_tiny_test", num_classes=0, **kwargs)  # stored grid 4x4 -> input grid
    shapes = variable_shapes("vit_tiny_test", hw, num_classes=0, **kwargs)
    out = jax.eval_shape(lambda v, x: model.apply(v, x), shapes, jax.ShapeDtypeStruct((2, *hw, 3), jnp.float32))
    assert out["features"].shape == (2, *grid, 32)
    assert out["tokens"].shape == (2, grid[0] * grid[1], 32)
    assert ("cls" in out) == kwargs.get("class_token", True)


@pytest.mark.parametrize("name,num_classes", [("vit_base_patch16_224", 1000), ("vit_large_patch16_224", 1000),
                                              ("vit_huge_patch14_224", 0)])
def test_parameter_count_equals_timm(name, num_classes):
    shapes = variable_shapes(name, num_classes=num_classes)
    assert count(shapes["params"]) == layout(name)["num_params"]
    assert "batch_stats" not in shapes


def _np_layer_norm(x, g, b):
    m = x.mean(-1, keepdims=True)
    v = x.var(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-6) * g + b


def test_block_matches_float64_reference():
    """Pre-norm block with fused qkv: timm's Attention reshapes qkv as [B, N, 3, heads, head_dim]."""
    dim, heads, n = 16, 4, 5
    block = Block(dim, heads, mlp_ratio=2.0)
    x = np.random.default_rng(1).standard_normal((2, n, dim)).astype(np.float32)
    v = random_variables(jax.eval_shape(block.init, jax.random.PRNGKey(0), jnp.zeros((2, n, dim))), seed=2)
    y = block.apply(v, jnp.asarray(x))
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
    xd = x.astype(np.float64)
    h = _np_layer_norm(xd, p["norm1"]["scale"], p["norm1"]["bias"])
    qkv = (h @ p["attn"]["qkv"]["kernel"] + p["attn"]["qkv"]["bias"]).reshape(2, n, 3, heads, dim // heads)
    q, k, vv = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, h, N, d]
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dim // heads)
    att = np.exp(logits - logits.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    o = (att @ vv).transpose(0, 2, 1, 3).reshape(2, n, dim)
    xd = xd + o @ p["attn"]["proj"]["kernel"] + p["attn"]["proj"]["bias"]
    h = _np_layer_norm(xd, p["norm2"]["scale"], p["norm2"]["bias"])
    h = h @ p["mlp"]["fc1"]["kernel"] + p["mlp"]["fc1"]["bias"]
    h = 0.5 * h * (1 + erf(h / math.sqrt(2)))  # exact GELU (torch nn.GELU default)
    ref = xd + h @ p["mlp"]["fc2"]["kernel"] + p["mlp"]["fc2"]["bias"]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def _np_conv_transpose(x, w, stride, pad):
    """float64 torch ConvTranspose2d by its definition: out[o, i*s - p + a, j*s - p + b] += x[c, i, j] w[c, o, a, b]."""
    bsz, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    full = np.zeros((bsz, o, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for i in range(h):
        for j in range(wd):
            full[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += np.einsum("nc,cokl->nokl", x[:, :, i, j], w)
    return full[:, :, pad:full.shape[2] - pad, pad:full.shape[3] - pad]


def test_heatmap_decoder_deconv_matches_torch_definition():
    """Weights given in torch layout ([in, out, kh, kw]) and converted as the importer does."""
    rng = np.random.default_rng(3)
    dec = SimpleHeatmapDecoder(num_keypoints=3, num_filters=(4, 5))
    x = rng.standard_normal((1, 6, 2, 3)).astype(np.float64)  # NCHW
    w0, w3 = rng.standard_normal((6, 4, 4, 4)), rng.standard_normal((4, 5, 4, 4))
    wf, bf = rng.standard_normal((3, 5, 1, 1)), rng.standard_normal(3)
    bn = lambda c: ({"scale": np.ones(c), "bias": np.zeros(c)}, {"mean": np.zeros(c), "var": np.ones(c) - 1e-5})
    f32 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), t)
    params = {"deconv_layers_0": {"kernel": w0.transpose(2, 3, 1, 0)}, "deconv_layers_1": bn(4)[0],
              "deconv_layers_3": {"kernel": w3.transpose(2, 3, 1, 0)}, "deconv_layers_4": bn(5)[0],
              "final_layer": {"kernel": wf.transpose(2, 3, 1, 0), "bias": bf}}
    stats = {"deconv_layers_1": bn(4)[1], "deconv_layers_4": bn(5)[1]}
    y = dec.apply({"params": f32(params), "batch_stats": f32(stats)}, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32))
    h = np.maximum(_np_conv_transpose(x, w0, 2, 1), 0)  # BN is the identity here (var + eps = 1)
    h = np.maximum(_np_conv_transpose(h, w3, 2, 1), 0)
    ref = np.einsum("bchw,oc->bohw", h, wf[:, :, 0, 0]) + bf[None, :, None, None]
    assert y.shape == (1, 8, 12, 3)
    np.testing.assert_allclose(y, ref.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.interop
def test_decoder_matches_torch_module_via_importer():
    """mmpose TopdownHeatmapSimpleHead structure in torch (eval BN with random stats) -> importer -> same maps."""
    torch = pytest.importorskip("torch")
    from hmrjax.nn.backbones.convert import convert_state_dict
    tnn = torch.nn
    torch.manual_seed(0)
    deconv = tnn.Sequential(tnn.ConvTranspose2d(8, 6, 4, 2, 1, bias=False), tnn.BatchNorm2d(6), tnn.ReLU(),
                            tnn.ConvTranspose2d(6, 6, 4, 2, 1, bias=False), tnn.BatchNorm2d(6), tnn.ReLU())
    head = tnn.Module()
    head.deconv_layers, head.final_layer = deconv, tnn.Conv2d(6, 5, 1)
    for bn in (deconv[1], deconv[4]):
        bn.weight.data.uniform_(0.5, 1.5), bn.bias.data.normal_(), bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 1.5)
    head.eval()
    x = torch.randn(2, 8, 4, 3)
    with torch.no_grad():
        ref = head.final_layer(head.deconv_layers(x)).numpy().transpose(0, 2, 3, 1)
    dec = SimpleHeatmapDecoder(num_keypoints=5, num_filters=(6, 6))
    variables, report = convert_state_dict(dec, head.state_dict(), input_shape=(1, 4, 3, 8))
    assert report.unexpected == [] and report.missing == []
    got = dec.apply(jax.tree.map(jnp.asarray, variables), jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
