"""hmrjax.losses vs independent float64 numpy references (SSIM written out with a 2-D window)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import logsumexp

from hmrjax import losses

RNG = np.random.default_rng(0)


def _ssim_ref(x, y, L=1.0, k=11, sigma=1.5):
    """Wang et al. 2004 SSIM map, float64, 'valid' windows, direct 2-D Gaussian weighting."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    r = np.arange(k) - (k - 1) / 2
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    out = []
    for a, b in zip(x, y):
        pa, pb = sliding_window_view(a, (k, k)), sliding_window_view(b, (k, k))
        mu_a, mu_b = (pa * w).sum((-1, -2)), (pb * w).sum((-1, -2))
        va = (w * (pa - mu_a[..., None, None]) ** 2).sum((-1, -2))
        vb = (w * (pb - mu_b[..., None, None]) ** 2).sum((-1, -2))
        cov = (w * (pa - mu_a[..., None, None]) * (pb - mu_b[..., None, None])).sum((-1, -2))
        out.append((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2)))
    return np.stack(out)


def _weighted(per_sample, w):
    w = np.ones(len(per_sample)) if w is None else np.asarray(w, np.float64)
    return float((w * per_sample).sum() / max(w.sum(), 1e-8))


def test_ssim_map_matches_float64_reference():
    x = RNG.random((2, 20, 17))
    y = np.clip(x + 0.2 * RNG.standard_normal(x.shape), 0, 1)
    got = np.asarray(losses.ssim_map(x.astype(np.float32), y.astype(np.float32)))
    ref = _ssim_ref(x, y)
    assert got.shape == ref.shape == (2, 10, 7)
    np.testing.assert_allclose(got, ref, atol=2e-5)
    np.testing.assert_allclose(np.asarray(losses.ssim_map(x, x)), 1.0, atol=1e-5)


def test_ssim_map_rejects_small_images():
    with pytest.raises(ValueError, match="smaller than the window"):
        losses.ssim_map(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))


def _depth_batch():
    d = np.zeros((3, 16, 16))
    d[0, 3:12, 4:10] = 2.0 + RNG.random((9, 6))
    d[1, 5:9, 5:15] = 4.0 + RNG.random((4, 10))
    mask = (d > 0).astype(np.float32)
    mask[1, 5, 5:8] = 0   # mask excludes some depth pixels
    return d, mask        # image 2: no person


def test_relative_depth_target():
    d, mask = _depth_batch()
    t, fg = losses.relative_depth_target(d.astype(np.float32), mask)
    for i in range(3):
        f = (d[i] > 0) & (mask[i] > 0.5)
        ref = np.zeros((16, 16))
        if f.any():
            lo, hi = d[i][f].min(), d[i][f].max()
            ref[f] = 0.1 + 0.9 * (d[i][f] - lo) / (hi - lo)
        np.testing.assert_allclose(np.asarray(t[i]), ref, atol=1e-5)
        np.testing.assert_array_equal(np.asarray(fg[i]), f.astype(np.float32))


def test_depth_terms():
    d, mask = _depth_batch()
    target, fg = (np.asarray(a, np.float64) for a in losses.relative_depth_target(d.astype(np.float32), mask))
    pred = RNG.random(d.shape)
    w = np.array([1.0, 0.5, 1.0])
    got_l1 = float(losses.depth_l1_loss(pred.astype(np.float32), target, fg, w))
    per = np.array([(fg[i] * np.abs(pred[i] - target[i])).sum() / max(fg[i].sum(), 1) for i in range(3)])
    assert got_l1 == pytest.approx(_weighted(per, w), rel=1e-5)
    got_s = float(losses.depth_ssim_loss(pred.astype(np.float32), target, fg, w))
    s = _ssim_ref(pred, target)
    m = fg[:, 5:11, 5:11]
    per = np.array([(m[i] * (1 - s[i])).sum() / max(m[i].sum(), 1) for i in range(3)])
    assert got_s == pytest.approx(_weighted(per, w), rel=1e-4)
    got_all = float(losses.depth_ssim_loss(pred.astype(np.float32), target))
    assert got_all == pytest.approx(float((1 - s).mean()), rel=1e-4)


def test_part_seg_cross_entropy():
    logits = RNG.standard_normal((2, 5, 4, 23))
    labels = RNG.integers(0, 23, (2, 5, 4))
    w = np.array([0.0, 1.0])
    got = float(losses.part_seg_cross_entropy(logits.astype(np.float32), labels, w))
    lp = logits - logsumexp(logits, axis=-1, keepdims=True)
    nll = -np.take_along_axis(lp, labels[..., None], -1)[..., 0]
    assert got == pytest.approx(_weighted(nll.reshape(2, -1).mean(1), w), rel=1e-5)


def test_parameter_terms():
    w = np.array([1.0, 0.0, 1.0])
    a, b = RNG.standard_normal((3, 24, 3, 3)), RNG.standard_normal((3, 24, 3, 3))
    assert float(losses.rotation_matrix_mse(a, b, w)) == pytest.approx(
        _weighted(((a - b) ** 2).reshape(3, -1).mean(1), w), rel=1e-5)
    a, b = RNG.standard_normal((3, 10)), RNG.standard_normal((3, 10))
    assert float(losses.betas_mse(a, b)) == pytest.approx(((a - b) ** 2).mean(), rel=1e-5)
    a, b = RNG.standard_normal((3, 24, 3)), RNG.standard_normal((3, 24, 3))
    assert float(losses.joints3d_mse(a, b, w)) == pytest.approx(
        _weighted(((a - b) ** 2).reshape(3, -1).mean(1), w), rel=1e-5)
    a, b = RNG.standard_normal((3, 50, 3)), RNG.standard_normal((3, 50, 3))
    assert float(losses.vertices_l1(a, b, w)) == pytest.approx(
        _weighted(np.abs(a - b).reshape(3, -1).mean(1), w), rel=1e-5)


def test_keypoints2d_full_frame_mse():
    B, K = 2, 17
    size = np.array([[640.0, 480.0], [300.0, 500.0]])
    b = np.array([150.0, 220.0])
    gt = RNG.random((B, K, 2)) * size[:, None]
    pred = gt + 10 * RNG.standard_normal((B, K, 2))
    vis = (RNG.random((B, K)) > 0.3).astype(np.float64)
    got = float(losses.keypoints2d_full_frame_mse(pred, gt, vis, size, b))
    # written as the authors' code computes it: normalise to [-1, 1] by the image, MSE, times size / (200 s)
    n = lambda u: 2 * u / size[:, None] - 1
    ref = (vis[..., None] * (n(pred) - n(gt)) ** 2 * (size / b[:, None])[:, None]).mean()
    assert got == pytest.approx(ref, rel=1e-5)


def test_part_centroid_targets_and_mse():
    """Centroids against a float64 loop over pixels (pixel centres (2 j + 1) / W - 1); absent classes flagged;
    the MSE against a direct per-image sum over present parts."""
    b, h, w, c = 3, 6, 8, 5
    labels = RNG.integers(0, c, (b, h, w))
    labels[0][labels[0] == 3] = 0                      # class 3 absent in image 0
    cent, present = losses.part_centroid_targets(jnp.asarray(labels), c)
    assert cent.shape == (b, c - 1, 2) and present.shape == (b, c - 1)
    for i in range(b):
        for p in range(1, c):
            ys, xs = np.nonzero(labels[i] == p)
            assert present[i, p - 1] == (len(xs) > 0)
            if len(xs):
                want = [np.mean((2 * xs + 1) / w - 1), np.mean((2 * ys + 1) / h - 1)]
                np.testing.assert_allclose(cent[i, p - 1], want, rtol=1e-6, atol=1e-6)
    assert present[0, 2] == 0 and np.all(np.asarray(cent[0, 2]) == 0)
    pred = RNG.uniform(-1, 1, (b, c - 1, 2))
    wt = np.array([1.0, 0.0, 2.0])
    got = losses.part_centroid_mse(jnp.asarray(pred), cent, present, jnp.asarray(wt))
    m = np.asarray(present, np.float64)
    per = (m * ((pred - np.asarray(cent, np.float64)) ** 2).sum(-1)).sum(-1) / np.maximum(m.sum(-1), 1)
    np.testing.assert_allclose(got, _weighted(per, wt), rtol=1e-5)


def test_masked_mean_all_zero_weight_is_zero_with_finite_grad():
    x = jnp.ones((2, 3))
    f = lambda x: losses.joints3d_mse(x[..., None].repeat(3, -1), jnp.zeros((2, 3, 3)), jnp.zeros(2))
    assert float(f(x)) == 0.0
    assert bool(jnp.all(jnp.isfinite(jax.grad(f)(x))))


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="pred_rotmat"):
        losses.rotation_matrix_mse(np.zeros((2, 24, 9)), np.zeros((2, 24, 3, 3)))
    with pytest.raises(ValueError, match="labels"):
        losses.part_seg_cross_entropy(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 5), np.int32))
