"""HRNet: branch / concat shapes (tiny), parameter counts vs timm for W18..W64, torch-compatible resizing."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hmrjax.nn.backbones as bb
from hmrjax.nn.backbones.ops import interp_matrix, resize, upsample_nearest
from backbone_helpers import count, layout, random_variables, variable_shapes

HEAD_MODULES = ("incre_modules", "downsamp_modules", "final_layer", "classifier")


def test_tiny_branches_and_concat_shapes_non_square():
    model = bb.create("hrnet_tiny")
    variables = random_variables(variable_shapes("hrnet_tiny", (64, 64)))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 64, 32, 3)), jnp.float32)
    out = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    assert out["stem"].shape == (2, 32, 16, 16)
    assert [b.shape for b in out["branches"]] == [(2, 16, 8, 8), (2, 8, 4, 16), (2, 4, 2, 32), (2, 2, 1, 64)]
    assert out["concat"].shape == (2, 16, 8, 120)
    np.testing.assert_array_equal(out["features"], out["concat"])
    # concat = [branch0, bilinear(branch_k)]: the first 8 channels are branch 0 itself; with
    # align_corners=True (the default, as PARE) the corner pixels of an upsampled branch are its corners.
    np.testing.assert_array_equal(out["concat"][..., :8], out["branches"][0])
    for k, (c0, c1) in enumerate([(8, 24), (24, 56), (56, 120)], start=1):
        b, up = np.asarray(out["branches"][k]), np.asarray(out["concat"][..., c0:c1])
        np.testing.assert_allclose(up[:, 0, 0], b[:, 0, 0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(up[:, -1, -1], b[:, -1, -1], rtol=1e-6, atol=1e-6)
    # align_corners=False: a 2x upsample is the 0.75 / 0.25 blend of neighbours in the interior
    b1 = np.asarray(out["branches"][1], np.float64)
    up = np.asarray(resize(out["branches"][1], (16, 8), "bilinear", False), np.float64)
    np.testing.assert_allclose(up[:, 1, 1], 0.5625 * b1[:, 0, 0] + 0.1875 * (b1[:, 0, 1] + b1[:, 1, 0])
                               + 0.0625 * b1[:, 1, 1], rtol=1e-5, atol=1e-6)
    assert all(bool(jnp.isfinite(b).all()) for b in out["branches"])


def test_tiny_heads_output_shapes():
    model = bb.create("hrnet_tiny", head="classification", num_classes=5)
    shapes = variable_shapes("hrnet_tiny", (64, 64), head="classification", num_classes=5)
    out = jax.eval_shape(lambda v, x: model.apply(v, x), shapes, jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    assert [y.shape for y in out["incre"]] == [(1, 16, 16, 128), (1, 8, 8, 256), (1, 4, 4, 512), (1, 2, 2, 1024)]
    assert out["pooled"].shape == (1, 2048) and out["logits"].shape == (1, 5)
    with pytest.raises(ValueError, match="head must be"):
        jax.eval_shape(lambda v, x: bb.create("hrnet_tiny", head="bogus").apply(v, x), shapes,
                       jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))


@pytest.mark.parametrize("width", [18, 32, 40, 48, 64])
def test_parameter_counts_equal_timm(width):
    """Full model vs timm `hrnet_w*`; heads stripped vs the `_features` / `_branches` fixtures."""
    params = variable_shapes(f"hrnet_w{width}", head="classification")["params"]
    assert count(params) == layout(f"hrnet_w{width}")["num_params"]
    incre = {k: v for k, v in params.items() if not k.startswith(HEAD_MODULES[1:])}
    assert count(incre) == layout(f"hrnet_w{width}_features")["num_params"]
    if width in (32, 48, 64):
        branches = {k: v for k, v in params.items() if not k.startswith(HEAD_MODULES)}
        assert count(branches) == layout(f"hrnet_w{width}_branches")["num_params"]


@pytest.mark.parametrize("head,fixture", [(None, "hrnet_w48_branches"), ("incre", "hrnet_w48_features")])
def test_w48_backbone_builds_match_timm_feature_models(head, fixture):
    """The models the papers use (built without the classification head) count like timm's."""
    assert count(variable_shapes("hrnet_w48", head=head)["params"]) == layout(fixture)["num_params"]


def test_w48_branch_shapes_match_timm_at_224():
    shapes = jax.eval_shape(lambda v, x: bb.create("hrnet_w48").apply(v, x), variable_shapes("hrnet_w48"),
                            jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
    ref = [tuple(s) for s in layout("hrnet_w48_branches")["feature_shapes_224"]]  # NCHW, stem first
    got = [shapes["stem"].shape] + [b.shape for b in shapes["branches"]]
    assert [(n, c, h, w) for n, h, w, c in got] == ref
    assert shapes["concat"].shape == (1, 56, 56, 720)


def test_bilinear_resize_matrices():
    # align_corners=True reproduces linear ramps exactly (end points map to end points)
    ramp = np.arange(5.0)
    np.testing.assert_allclose(interp_matrix(5, 9, "bilinear", True) @ ramp, np.linspace(0, 4, 9), atol=1e-12)
    # align_corners=False, 2 -> 4: samples at source coords -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_allclose(interp_matrix(2, 4, "bilinear", False) @ np.array([0.0, 1.0]),
                               [0.0, 0.25, 0.75, 1.0], atol=1e-12)
    for mode in ("bilinear", "bicubic", "bicubic_aa"):
        for n_in, n_out in [(7, 3), (3, 7), (14, 12), (14, 16)]:
            np.testing.assert_allclose(interp_matrix(n_in, n_out, mode).sum(axis=1), 1.0, atol=1e-12)
    # Keys cubic (A = -0.75) for an exact 2x upsample, output 5: source 2.25, t = 0.25, taps on inputs 1..4
    # W(1.25), W(0.25), W(0.75), W(1.75), worked by hand from W(x) = (A+2)|x|^3 - (A+3)|x|^2 + 1 (|x| <= 1),
    # A|x|^3 - 5A|x|^2 + 8A|x| - 4A (1 < |x| < 2).
    np.testing.assert_allclose(interp_matrix(8, 16, "bicubic")[5, 1:5],
                               [-0.10546875, 0.87890625, 0.26171875, -0.03515625], atol=1e-12)


def test_resize_and_nearest_upsample_on_arrays():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    y = resize(jnp.asarray(x), (6, 8), "bilinear", False)
    ref = np.einsum("oh,bhwc,pw->bopc", interp_matrix(3, 6, "bilinear"), x, interp_matrix(4, 8, "bilinear"))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    assert resize(jnp.asarray(x), (3, 4)) is not None and np.array_equal(resize(jnp.asarray(x), (3, 4)), x)
    up = np.asarray(upsample_nearest(jnp.asarray(x), 2))
    np.testing.assert_array_equal(up[:, 1::2, ::2], x)
    np.testing.assert_array_equal(up[:, ::2, 1::2], x)


@pytest.mark.interop
def test_resize_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal((1, 3, 14, 9))
    for mode, aa, ac in [("bilinear", False, False), ("bilinear", False, True), ("bicubic", False, False),
                         ("bicubic", True, False)]:
        for size in [(16, 12), (7, 20), (28, 3)]:
            ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode=mode, antialias=aa,
                                                  align_corners=ac).numpy()
            got = resize(jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32), size,
                         "bicubic_aa" if aa else mode, ac)
            np.testing.assert_allclose(got, ref.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{mode} aa={aa} align_corners={ac} {size}")


def _hrnet_param_count(w, stem, c1, b1, modules, blocks):
    """Parameters of a timm-topology HRNet without head, counted from its layer list (an integer
    reference, independent of the flax modules): stem, bottleneck layer1, transitions, basic-block branches and
    all-to-all fusion (1x1 up, chains of stride-2 3x3 down); BN contributes scale + bias."""
    def conv_bn(ci, co, k):
        return ci * co * k * k + 2 * co
    n = conv_bn(3, stem, 3) + conv_bn(stem, stem, 3)                 # stem: two stride-2 3x3 convs
    cin = stem
    for _ in range(b1):
        n += conv_bn(cin, c1, 1) + conv_bn(c1, c1, 3) + conv_bn(c1, 4 * c1, 1)
        n += conv_bn(cin, 4 * c1, 1) if cin != 4 * c1 else 0
        cin = 4 * c1
    prev = [cin]
    for s, m in enumerate(modules):
        ch = [w * 2 ** i for i in range(s + 2)]
        n += sum(conv_bn(prev[i], c, 3) for i, c in enumerate(ch) if i < len(prev) and prev[i] != c)
        n += sum(conv_bn(prev[-1], c, 3) for c in ch[len(prev):])
        for _ in range(m):
            n += sum(blocks * 2 * conv_bn(c, c, 3) for c in ch)
            for i in range(len(ch)):
                n += sum(conv_bn(ch[j], ch[i], 1) for j in range(i + 1, len(ch)))
                n += sum((i - j - 1) * conv_bn(ch[j], ch[j], 3) + conv_bn(ch[j], ch[i], 3) for j in range(i))
        prev = ch
    return n


@pytest.mark.parametrize("name,w,stem", [("hrnet_tiny", 8, 16), ("hrnet_small", 16, 32)])
def test_laptop_hrnets_count_and_widths(name, w, stem):
    """hrnet_tiny / hrnet_small: one module and one block per stage; small doubles every width."""
    shapes = variable_shapes(name, (64, 64))
    assert count(shapes["params"]) == _hrnet_param_count(w, stem, w, 1, (1, 1, 1), 1)
    out = jax.eval_shape(lambda v, x: bb.create(name).apply(v, x), shapes,
                         jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    assert [b.shape[-1] for b in out["branches"]] == [w, 2 * w, 4 * w, 8 * w]
    assert out["concat"].shape == (1, 16, 16, 15 * w)
