"""Tests for the probabilistic-HMR loss terms in hmrjax.losses (Wehrbein et al.), each against an
independent float64 numpy implementation written from the formula (explicit loops)."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from scipy.spatial.transform import Rotation

from hmrjax import losses

H = (0.05, 0.2, 0.9)


# ------------------------------------------------------------------ float64 references
def np_imq(a, b, bandwidths=H):
    d2 = float(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return sum(h * h / (h * h + d2) for h in bandwidths)


def np_mmd(x, y, include_diagonal=False):
    """MMD^2 of two point sets x [n, D], y [m, D] by explicit double loops."""
    n, m = len(x), len(y)
    if include_diagonal:
        sxx = sum(np_imq(x[i], x[k]) for i in range(n) for k in range(n)) / (n * n)
        syy = sum(np_imq(y[i], y[k]) for i in range(m) for k in range(m)) / (m * m)
    else:
        sxx = sum(np_imq(x[i], x[k]) for i in range(n) for k in range(n) if i != k) / (n * (n - 1))
        syy = sum(np_imq(y[i], y[k]) for i in range(m) for k in range(m) if i != k) / (m * (m - 1))
    sxy = sum(np_imq(x[i], y[k]) for i in range(n) for k in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


def np_mask_loss(hyp, outside, invisible, targets, target_valid, inside_crop, weight):
    b_, j_, n_, _ = hyp.shape
    total = 0.0
    for b in range(b_):
        valid_t = [targets[b, t] for t in range(targets.shape[1]) if target_valid[b, t]]
        for j in range(j_):
            for s in range(n_):
                if not (invisible[b, j] and outside[b, j, s] and inside_crop[b, j, s]) or not valid_t:
                    continue
                d = min(float(np.sum(np.abs(hyp[b, j, s].astype(np.float64) - t))) for t in valid_t)
                total += weight[b] * d
    return total / (b_ * n_)


# ------------------------------------------------------------------ kernel and MMD
def test_imq_kernel_matches_numpy():
    rng = np.random.RandomState(0)
    x, y = rng.randn(2, 4, 2) * 0.3, rng.randn(2, 5, 2) * 0.3
    k = np.asarray(losses.imq_kernel(x, y))
    assert k.shape == (2, 4, 5)
    ref = np.array([[[np_imq(x[b, i], y[b, j]) for j in range(5)] for i in range(4)] for b in range(2)])
    np.testing.assert_allclose(k, ref, rtol=1e-5)
    np.testing.assert_allclose(np.diagonal(np.asarray(losses.imq_kernel(x, x)), axis1=1, axis2=2), 3.0, rtol=1e-6)


@pytest.mark.parametrize("include_diagonal", [False, True], ids=["unbiased_paper", "biased_code"])
def test_mmd_per_joint_matches_numpy(include_diagonal):
    rng = np.random.RandomState(1)
    hyp = rng.randn(2, 3, 6, 2) * 0.2
    tgt = rng.randn(2, 3, 5, 2) * 0.2 + 0.1  # n != m is allowed
    got = np.asarray(losses.mmd_per_joint(hyp, tgt, include_diagonal=include_diagonal))
    ref = np.array([[np_mmd(hyp[b, j], tgt[b, j], include_diagonal) for j in range(3)] for b in range(2)])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_mmd_biased_matches_authors_matrix_form():
    """The V-statistic equals the authors' `batch_mmd` algebra (Gram-matrix distances), in numpy."""
    rng = np.random.RandomState(2)
    x, y = rng.randn(4, 25, 2) * 0.3, rng.randn(4, 25, 2) * 0.3
    xx, yy, zz = x @ x.transpose(0, 2, 1), y @ y.transpose(0, 2, 1), x @ y.transpose(0, 2, 1)
    rx = np.repeat(np.diagonal(xx, axis1=1, axis2=2)[:, None], 25, 1)
    ry = np.repeat(np.diagonal(yy, axis1=1, axis2=2)[:, None], 25, 1)
    dxx, dyy, dxy = rx.transpose(0, 2, 1) + rx - 2 * xx, ry.transpose(0, 2, 1) + ry - 2 * yy, \
        rx.transpose(0, 2, 1) + ry - 2 * zz
    ref = sum(a ** 2 / (a ** 2 + dxx) + a ** 2 / (a ** 2 + dyy) - 2 * a ** 2 / (a ** 2 + dxy) for a in H).mean((1, 2))
    got = np.asarray(losses.mmd_per_joint(x[:, None], y[:, None], include_diagonal=True))[:, 0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_mmd_identical_and_same_distribution_sets():
    rng = np.random.RandomState(3)
    x = rng.randn(2, 4, 25, 2) * 0.1
    # Biased (code) form: exactly zero for identical sets.
    np.testing.assert_array_equal(np.asarray(losses.mmd_per_joint(x, x, include_diagonal=True)), 0.0)
    # Unbiased (paper) form on identical sets: (2/n) (mean off-diagonal k - k(x, x)) < 0, as the formula says.
    unb = np.asarray(losses.mmd_per_joint(x, x))
    off = np.array([[np.mean([np_imq(x[b, j, i], x[b, j, k]) for i in range(25) for k in range(25) if i != k])
                     for j in range(4)] for b in range(2)])
    np.testing.assert_allclose(unb, 2 / 25 * (off - 3.0), rtol=1e-4)
    # Two independent sets of one distribution: the unbiased estimate is ~0 on average (here 400 pairs),
    # while the biased one is positive by about (2/n)(k(x,x) - E k).
    a = rng.randn(400, 1, 25, 2) * 0.2
    b = rng.randn(400, 1, 25, 2) * 0.2
    unbiased = np.asarray(losses.mmd_per_joint(a, b))
    biased = np.asarray(losses.mmd_per_joint(a, b, include_diagonal=True))
    assert abs(unbiased.mean()) < 3 * unbiased.std() / math.sqrt(400)
    assert biased.mean() > 0.05 and np.all(biased >= -1e-6)


@pytest.mark.parametrize("include_diagonal", [False, True])
def test_mmd_grows_with_shift(include_diagonal):
    rng = np.random.RandomState(4)
    x = rng.randn(1, 1, 25, 2) * 0.1
    y = x + rng.randn(1, 1, 25, 2) * 0.01
    vals = [float(losses.mmd_per_joint(x, y + np.array([s, 0.0]), include_diagonal=include_diagonal)[0, 0])
            for s in (0.0, 0.05, 0.1, 0.3, 1.0)]
    assert all(b > a for a, b in zip(vals, vals[1:])), vals
    assert vals[-1] > 1.0


def test_mmd_loss_weights_normalisation_and_gradient():
    rng = np.random.RandomState(5)
    hyp = rng.randn(3, 4, 6, 2).astype(np.float32) * 0.2
    tgt = rng.randn(3, 4, 6, 2).astype(np.float32) * 0.2
    w = (rng.rand(3, 4) > 0.4).astype(np.float32)
    per = np.array([[np_mmd(hyp[b, j], tgt[b, j]) for j in range(4)] for b in range(3)])
    np.testing.assert_allclose(float(losses.mmd_loss(hyp, tgt, w)), (w * per).sum() / 12, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(losses.mmd_loss(hyp, tgt)), per.mean(), rtol=1e-4, atol=1e-6)
    # Gradients are finite even with coincident points (the kernel has no square root).
    hyp[0, 0, 1] = hyp[0, 0, 0]
    g = jax.jit(jax.grad(lambda h: losses.mmd_loss(h, tgt, w)))(jnp.asarray(hyp))
    assert bool(jnp.all(jnp.isfinite(g)))
    assert np.all(np.asarray(g)[w == 0] == 0) and float(jnp.abs(g).max()) > 0
    with pytest.raises(ValueError, match="weights"):
        losses.mmd_loss(hyp, tgt, w[:, :2])
    with pytest.raises(ValueError, match=r"\[B, J\]"):
        losses.mmd_per_joint(hyp, tgt[:, :2])


def test_mmd_target_masks_and_targets():
    max_conf = np.array([[0.1, 0.3, 0.69, 0.8, 0.4, 0.6]])
    articulated = np.array([1, 1, 1, 1, 0, 0], bool)
    inside = np.array([[1, 1, 1, 1, 1, 0]], bool)
    use, valid = losses.mmd_target_masks(max_conf, articulated, inside)
    np.testing.assert_array_equal(np.asarray(use), [[False, True, True, False, False, False]])
    # non-articulated with conf < 0.5 is not penalised; gt outside the crop never is
    np.testing.assert_array_equal(np.asarray(valid), [[True, True, True, True, False, False]])

    rng = np.random.RandomState(6)
    hm = rng.randn(1, 6, 4, 2).astype(np.float32)
    gt = rng.randn(1, 6, 2).astype(np.float32)
    t = np.asarray(losses.mmd_targets(hm, gt, use))
    for j in range(6):
        np.testing.assert_array_equal(t[0, j, 0], gt[0, j])
        expect = hm[0, j, 1:] if use[0, j] else np.repeat(gt[0, j][None], 3, 0)
        np.testing.assert_array_equal(t[0, j, 1:], expect)
    assert np.array_equal(np.asarray(losses.mmd_targets(hm, gt, use, gt_first=False))[0, 1], hm[0, 1])


# ------------------------------------------------------------------ mask loss
def test_points_inside_mask_and_crop():
    mask = np.zeros((2, 5, 6), bool)
    mask[0, 1:3, 2:4] = True
    mask[1, 4, 5] = True
    pts = np.array([[[2.0, 1.0], [3.4, 2.4], [3.6, 2.0], [1.6, 1.0], [-0.6, 1.0]],
                    [[5.0, 4.0], [5.4, 4.4], [5.6, 4.0], [4.0, 4.0], [0.0, 0.0]]], np.float32)
    ref = np.zeros((2, 5), bool)
    for b in range(2):
        for i, (u, v) in enumerate(pts[b]):
            c, r = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))
            ref[b, i] = 0 <= r < 5 and 0 <= c < 6 and mask[b, r, c]
    np.testing.assert_array_equal(np.asarray(losses.points_inside_mask(mask, pts)), ref)
    assert ref.sum() == 5 and not ref.all()
    np.testing.assert_array_equal(np.asarray(losses.points_inside_crop(pts, 6)),
                                  np.all((pts >= 0) & (pts <= 5), axis=-1))
    with pytest.raises(ValueError, match="points_px"):
        losses.points_inside_mask(mask, pts[:1])


def test_mask_loss_matches_numpy():
    rng = np.random.RandomState(7)
    b, j, n, t = 2, 5, 4, 7
    hyp = rng.randn(b, j, n, 2).astype(np.float32)
    outside = rng.rand(b, j, n) > 0.4
    invisible = rng.rand(b, j) > 0.3
    targets = rng.randn(b, t, 2).astype(np.float32)
    tvalid = rng.rand(b, t) > 0.3
    crop = rng.rand(b, j, n) > 0.2
    w = np.array([1.0, 0.5])
    got = float(losses.mask_loss(hyp, outside, invisible, targets, tvalid, crop, w))
    ref = np_mask_loss(hyp, outside, invisible, targets, tvalid, crop, w)
    assert ref > 0
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    g = jax.grad(lambda h: losses.mask_loss(h, outside, invisible, targets, tvalid, crop, w))(jnp.asarray(hyp))
    assert bool(jnp.all(jnp.isfinite(g)))


def test_mask_loss_zero_inside_mask_and_for_visible_joints():
    rng = np.random.RandomState(8)
    hyp = rng.randn(2, 3, 4, 2).astype(np.float32)
    targets = rng.randn(2, 5, 2).astype(np.float32)
    tvalid = np.ones((2, 5), bool)
    all_inv = np.ones((2, 3), bool)
    # every hypothesis inside the person mask -> 0, with zero gradient
    inside = np.zeros((2, 3, 4), bool)
    assert float(losses.mask_loss(hyp, inside, all_inv, targets, tvalid)) == 0.0
    g = jax.grad(lambda h: losses.mask_loss(h, inside, all_inv, targets, tvalid))(jnp.asarray(hyp))
    assert float(jnp.abs(g).max()) == 0.0
    # outside the mask but the joint is visible -> 0
    outside = np.ones((2, 3, 4), bool)
    assert float(losses.mask_loss(hyp, outside, np.zeros((2, 3), bool), targets, tvalid)) == 0.0
    # outside the crop -> 0; no valid target -> 0; has_mask = 0 -> 0
    assert float(losses.mask_loss(hyp, outside, all_inv, targets, tvalid, np.zeros((2, 3, 4), bool))) == 0.0
    assert float(losses.mask_loss(hyp, outside, all_inv, targets, np.zeros((2, 5), bool))) == 0.0
    assert float(losses.mask_loss(hyp, outside, all_inv, targets, tvalid, weight=np.zeros(2))) == 0.0
    # a hypothesis exactly on a target costs nothing; moving it away costs its L1 distance / (B n)
    hyp2 = np.repeat(targets[:, :1, None], 3, 1).repeat(4, 2)  # [2, 3, 4, 2] all on target 0
    assert float(losses.mask_loss(hyp2, outside, all_inv, targets, tvalid)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="outside_mask"):
        losses.mask_loss(hyp, outside[:, :2], all_inv, targets, tvalid)


# ------------------------------------------------------------------ orthonormality and NLL
def test_orthonormality_loss():
    rots = Rotation.random(12, random_state=0).as_matrix().reshape(3, 4, 3, 3)
    cols = np.concatenate([rots[..., :, 0], rots[..., :, 1]], -1)  # hmrjax "columns" layout
    assert float(losses.orthonormality_loss(cols)) < 1e-12
    inter = rots[..., :, :2].reshape(3, 4, 6)
    assert float(losses.orthonormality_loss(inter, layout="interleaved")) < 1e-12

    rng = np.random.RandomState(9)
    x = rng.randn(3, 4, 6)
    a1, a2 = x[..., :3], x[..., 3:]
    per = ((np.sum(a1 * a1, -1) - 1) ** 2 + (np.sum(a2 * a2, -1) - 1) ** 2 + 2 * np.sum(a1 * a2, -1) ** 2) / 4
    np.testing.assert_allclose(float(losses.orthonormality_loss(x)), per.mean(), rtol=1e-5)
    w = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(float(losses.orthonormality_loss(x, w)), per[[0, 2]].mean(), rtol=1e-5)
    xi = np.stack([a1, a2], -1).reshape(3, 4, 6)  # the same vectors, interleaved
    np.testing.assert_allclose(float(losses.orthonormality_loss(xi, layout="interleaved")), per.mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="layout"):
        losses.orthonormality_loss(x, layout="rows")
    with pytest.raises(ValueError, match="rot6d"):
        losses.orthonormality_loss(x[..., :5])


def test_flow_nll_matches_scipy():
    rng = np.random.RandomState(10)
    x = rng.randn(4, 132)
    lp = scipy.stats.norm.logpdf(x).sum(-1)
    np.testing.assert_allclose(float(losses.flow_nll(lp, 132)), np.mean(-lp / 132), rtol=1e-6)
    w = np.array([1, 1, 0, 0.0])
    np.testing.assert_allclose(float(losses.flow_nll(lp, 132, w)), np.mean(-lp[:2] / 132), rtol=1e-6)
    # The authors' torch gaussian_nll_loss value (no 0.5 log 2 pi) is ours minus that constant.
    authors = np.mean((0.5 * np.sum(x * x, -1)) / 132)
    np.testing.assert_allclose(float(losses.flow_nll(lp, 132)) - 0.5 * math.log(2 * math.pi), authors, rtol=1e-6)


def test_keypoints2d_l1_and_camera_scale_penalty():
    rng = np.random.RandomState(11)
    p, t = rng.randn(3, 5, 2), rng.randn(3, 5, 2)
    c = rng.rand(3, 5)
    ref = np.mean([sum(c[b, k] * (abs(p[b, k, 0] - t[b, k, 0]) + abs(p[b, k, 1] - t[b, k, 1])) for k in range(5))
                   for b in range(3)])
    np.testing.assert_allclose(float(losses.keypoints2d_l1(p, t, c)), ref, rtol=1e-5)
    w = np.array([1.0, 0.0, 2.0])
    ref_w = np.mean([w[b] * np.sum(c[b, :, None] * np.abs(p[b] - t[b])) for b in range(3)])
    np.testing.assert_allclose(float(losses.keypoints2d_l1(p, t, c, w)), ref_w, rtol=1e-5)
    with pytest.raises(ValueError, match="confidence"):
        losses.keypoints2d_l1(p, t, c[:, :4])
    cam = rng.randn(2, 4, 3) * 0.3
    np.testing.assert_allclose(float(losses.camera_scale_penalty(cam)), np.mean(np.exp(-10 * cam[..., 0]) ** 2),
                               rtol=1e-5)
