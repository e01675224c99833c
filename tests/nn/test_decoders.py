"""UNetDecoder: output / feature shapes on HRNet-like branches, train-mode BatchNorm state."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hmrjax.nn.decoders import UNetDecoder


def _branches(b=2, s=16, widths=(8, 16, 32, 64)):
    rng = np.random.default_rng(0)
    return tuple(jnp.asarray(rng.standard_normal((b, s >> k, s >> k, w)), jnp.float32) for k, w in enumerate(widths))


def test_unet_decoder_shapes(out_channels=23, blocks=2):
    br = _branches()
    dec = UNetDecoder(out_channels, num_blocks=blocks)
    v = jax.jit(lambda x: dec.init(jax.random.key(0), x))(br)
    out, feats = jax.jit(dec.apply)(v, br)
    assert out.shape == (2, 16, 16, out_channels) and out.dtype == jnp.float32
    assert feats.shape == (2, 16, 16, 8)
    p = v["params"]
    assert {f"stage{s}_block{k}" for s in range(3) for k in range(blocks)} <= set(p)
    assert f"stage0_block{blocks}" not in p
    (out2, _), upd = jax.jit(lambda v, x: dec.apply(v, x, train=True, mutable=["batch_stats"]))(v, br)
    assert out2.shape == out.shape and "batch_stats" in upd
    assert bool(jnp.all(jnp.isfinite(out2)))


def test_unet_decoder_min_width():
    """min_width widens the narrow stages only: 8 / 16 -> 24, 32 stays 32; the final features follow."""
    br = _branches()
    dec = UNetDecoder(23, num_blocks=1, min_width=24)
    v = jax.jit(lambda x: dec.init(jax.random.key(0), x))(br)
    out, feats = jax.jit(dec.apply)(v, br)
    assert out.shape == (2, 16, 16, 23) and feats.shape == (2, 16, 16, 24)
    k = lambda name: v["params"][name]["kernel"].shape
    assert k("up0_conv")[-1] == 32 and k("up1_conv")[-1] == 24 and k("up2_conv")[-1] == 24
    assert k("final_conv") == (3, 3, 24, 24) and k("out_conv") == (1, 1, 24, 23)


def test_unet_decoder_needs_two_branches():
    with pytest.raises(ValueError, match=">= 2 branches"):
        UNetDecoder(1).init(jax.random.key(0), _branches()[:1])
