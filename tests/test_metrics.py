"""Metrics against independent float64 numpy references."""
import numpy as np
import pytest
import jax

from hmrjax import metrics

RNG = np.random.default_rng(0)


def np_umeyama(src, dst, w):
    """float64 weighted similarity Procrustes (Umeyama 1991), reference for PA metrics."""
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, d, vt = np.linalg.svd(cov)
    s_fix = np.eye(3)
    s_fix[2, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    r = u @ s_fix @ vt
    var_s = np.sum(w * np.sum(xs**2, 1))
    scale = np.trace(np.diag(d) @ s_fix) / var_s
    return scale * src @ r.T + (mu_d - scale * r @ mu_s)


def np_mpjpe(p, g, v, root):
    p = p - p[list(root)].mean(0)
    g = g - g[list(root)].mean(0)
    e = np.linalg.norm(p - g, axis=-1)
    return 1000 * (e * v).sum() / v.sum()


def _data(b=4, j=24):
    gt = RNG.normal(size=(b, j, 3))
    pred = gt + 0.05 * RNG.normal(size=(b, j, 3))
    valid = (RNG.uniform(size=(b, j)) > 0.2).astype(np.float64)
    valid[:, :4] = 1
    return pred, gt, valid


@pytest.mark.parametrize("root", [(0,), (1, 2)])
def test_mpjpe_matches_numpy(root):
    pred, gt, valid = _data()
    with jax.enable_x64(True):
        got = np.asarray(metrics.mpjpe(pred, gt, valid, root=root))
    ref = [np_mpjpe(p, g, v, root) for p, g, v in zip(pred, gt, valid)]
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_pa_mpjpe_matches_numpy_and_removes_similarity():
    pred, gt, valid = _data()
    with jax.enable_x64(True):
        got = np.asarray(metrics.pa_mpjpe(pred, gt, valid))
        # a pure similarity transform of the ground truth has zero PA-MPJPE
        theta = 0.7
        rot = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]])
        moved = 1.3 * gt @ rot.T + np.array([0.1, -2.0, 3.0])
        zero = np.asarray(metrics.pa_mpjpe(moved, gt))
    ref = []
    for p, g, v in zip(pred, gt, valid):
        a = np_umeyama(p, g, v)
        ref.append(1000 * (np.linalg.norm(a - g, axis=-1) * v).sum() / v.sum())
    np.testing.assert_allclose(got, ref, rtol=1e-8)
    np.testing.assert_allclose(zero, 0.0, atol=1e-8)


def test_pve_root_aligned_by_joints():
    verts_gt = RNG.normal(size=(3, 50, 3))
    joints_gt = RNG.normal(size=(3, 24, 3))
    shift = RNG.normal(size=(3, 1, 3))
    with jax.enable_x64(True):
        # translating the whole prediction does not change root-aligned PVE
        got = np.asarray(metrics.pve(verts_gt + shift, verts_gt, joints_gt + shift, joints_gt, root=(0,)))
        noisy = verts_gt + 0.01 * RNG.normal(size=verts_gt.shape)
        got2 = np.asarray(metrics.pve(noisy, verts_gt, root=None))
    np.testing.assert_allclose(got, 0.0, atol=1e-9)
    np.testing.assert_allclose(got2, 1000 * np.linalg.norm(noisy - verts_gt, axis=-1).mean(-1), rtol=1e-10)


def test_mode_and_best_of_n():
    pred, gt, _ = _data(b=2, j=10)
    samples = np.stack([pred, gt + 0.001, pred + 1.0], axis=1)      # hypothesis 1 is nearly exact
    with jax.enable_x64(True):
        mode, best, per = (np.asarray(x) for x in metrics.mode_and_best(metrics.mpjpe, samples, gt, root=(0,)))
    ref = np.array([[np_mpjpe(s, g, np.ones(10), (0,)) for s in ss] for ss, g in zip(samples, gt)])
    np.testing.assert_allclose(per, ref, rtol=1e-10)
    np.testing.assert_allclose(mode, ref[:, 0], rtol=1e-10)
    np.testing.assert_allclose(best, ref.min(1), rtol=1e-10)


def test_keypoint_error_2d_mode_and_mean():
    gt = RNG.uniform(0, 200, size=(3, 17, 2))
    pred = gt[:, None] + RNG.normal(0, 3, size=(3, 5, 17, 2))
    valid = (RNG.uniform(size=(3, 17)) > 0.3).astype(np.float64)
    valid[:, 0] = 1
    with jax.enable_x64(True):
        mode, mean = (np.asarray(x) for x in metrics.keypoint_error_2d(pred, gt, valid))
    err = np.linalg.norm(pred - gt[:, None], axis=-1)
    per = (err * valid[:, None]).sum(-1) / valid.sum(-1)[:, None]
    np.testing.assert_allclose(mode, per[:, 0], rtol=1e-10)
    np.testing.assert_allclose(mean, per.mean(1), rtol=1e-10)


def test_pck_threshold_and_normalizer():
    gt = np.zeros((2, 4, 2))
    pred = np.array([[[1, 0], [2, 0], [3, 0], [10, 0]], [[1, 0], [2, 0], [3, 0], [10, 0]]], float)
    got = np.asarray(metrics.pck(pred, gt, threshold=0.1, normalizer=np.array([25.0, 100.0])))
    np.testing.assert_allclose(got, [0.5, 1.0])          # radius 2.5 px and 10 px


def test_keypoint_spread_visible_vs_invisible():
    b, s, j = 2, 50, 6
    base = RNG.normal(size=(b, 1, j, 3))
    noise = RNG.normal(size=(b, s, j, 3)) * np.array([0.001, 0.001, 0.001, 0.05, 0.05, 0.05])[None, None, :, None]
    samples = base + noise
    vis = np.array([[1, 1, 1, 0, 0, 0]] * b, float)
    with jax.enable_x64(True):
        sv, si = (np.asarray(x) for x in metrics.keypoint_spread(samples, vis))
    per_joint = 1000 * np.linalg.norm(samples - samples.mean(1, keepdims=True), axis=-1).mean(1)
    np.testing.assert_allclose(sv, per_joint[:, :3].mean(1), rtol=1e-10)
    np.testing.assert_allclose(si, per_joint[:, 3:].mean(1), rtol=1e-10)
    assert np.all(si > 10 * sv)


def test_aligned_keypoint_spread_removes_global_rotation():
    """Hypotheses = one articulation noise per joint + a random global rotation and translation each: the plain
    spread is dominated by the rotations, the aligned spread equals a float64 numpy Kabsch reference and is
    invariant to those rotations; only the noisy (invisible) joints keep a large spread."""
    from scipy.spatial.transform import Rotation
    b, s, j = 2, 20, 8
    base = RNG.normal(size=(b, 1, j, 3))
    sigma = np.array([0.0005] * 5 + [0.05] * 3)[None, None, :, None]
    art = base + RNG.normal(size=(b, s, j, 3)) * sigma
    rots = Rotation.random(b * s, random_state=3).as_matrix().reshape(b, s, 3, 3)
    samples = np.einsum("bsij,bskj->bski", rots, art) + RNG.normal(size=(b, s, 1, 3))
    vis = np.array([[1] * 5 + [0] * 3] * b, float)

    def kabsch(x, y):   # rigid least squares x -> y, float64
        mx, my = x.mean(0), y.mean(0)
        u, _, vt = np.linalg.svd((y - my).T @ (x - mx))
        d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
        return (x - mx) @ (u @ d @ vt).T + my
    ref = np.stack([[kabsch(samples[i, k], samples[i, 0]) for k in range(s)] for i in range(b)])
    per_joint = 1000 * np.linalg.norm(ref - ref.mean(1, keepdims=True), axis=-1).mean(1)
    with jax.enable_x64(True):
        sv, si = (np.asarray(x) for x in metrics.aligned_keypoint_spread(samples, vis))
        pv, pi = (np.asarray(x) for x in metrics.keypoint_spread(samples, vis))
        sv2, si2 = (np.asarray(x) for x in metrics.aligned_keypoint_spread(art, vis))
    np.testing.assert_allclose(sv, per_joint[:, :5].mean(1), rtol=1e-8)
    np.testing.assert_allclose(si, per_joint[:, 5:].mean(1), rtol=1e-8)
    np.testing.assert_allclose(si, si2, rtol=1e-8)      # the global rotations do not matter
    # the fit over all joints passes some of the noisy joints' error on to the others, but the ordering holds,
    # while the unaligned spread is the rotations' and about equal for both groups
    assert np.all(si > 2 * sv) and np.all(pv > 20 * si) and np.all(np.abs(pv - pi) < 0.25 * pv)


def test_mask_plausibility_against_bruteforce():
    mask = np.zeros((1, 40, 30), np.uint8)
    mask[0, 10:30, 8:20] = 1
    dist = metrics.mask_distance_map(mask)
    ys, xs = np.nonzero(mask[0])
    pts = RNG.uniform([0, 0], [29, 39], size=(1, 8, 5, 2)).round()
    perc, mind = (np.asarray(x) for x in metrics.mask_plausibility(pts, dist))
    inside = mask[0][pts[..., 1].astype(int), pts[..., 0].astype(int)] > 0
    d = np.array([np.min(np.hypot(xs - x, ys - y)) for x, y in pts.reshape(-1, 2)]).reshape(inside.shape)
    np.testing.assert_allclose(perc, inside.mean(), rtol=1e-6)
    np.testing.assert_allclose(mind, d[~inside].mean(), rtol=1e-5)


def test_part_seg_iou_and_depth_error():
    gt = RNG.integers(0, 4, size=(2, 16, 16))
    pred = gt.copy()
    pred[0, :8] = 0
    got = np.asarray(metrics.part_seg_iou(pred, gt, num_classes=4))
    ref = []
    for p, g in zip(pred, gt):
        ious = [((p == c) & (g == c)).sum() / ((p == c) | (g == c)).sum() for c in range(1, 4) if ((p == c) | (g == c)).any()]
        ref.append(np.mean(ious))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert got[1] == pytest.approx(1.0)

    d_gt = RNG.uniform(1, 3, size=(2, 8, 8))
    d_pr = d_gt + RNG.normal(0, 0.1, size=d_gt.shape)
    m = RNG.uniform(size=d_gt.shape) > 0.5
    got = np.asarray(metrics.depth_error(d_pr, d_gt, m))
    np.testing.assert_allclose(got, [np.abs(a - b)[k].mean() for a, b, k in zip(d_pr, d_gt, m)], rtol=1e-5)


def test_root_conventions_errors():
    assert metrics.root_indices("smpl24", "hips") == (1, 2)
    with pytest.raises(ValueError, match="no root convention"):
        metrics.root_indices("smpl24", "nose")


def test_rotation_error_deg_matches_scipy_and_masks():
    """Geodesic angle vs scipy's magnitude of R_gt^T R_pred (float64), per joint, averaged over valid joints."""
    import jax.numpy as jnp
    from scipy.spatial.transform import Rotation
    rng = np.random.default_rng(4)
    gt = Rotation.random(2 * 5, random_state=rng)
    delta = Rotation.from_rotvec(rng.normal(size=(10, 3)) * np.array([[0.1], [1.0]] * 5))
    pred = delta * gt
    expected = np.degrees((gt.inv() * pred).magnitude()).reshape(2, 5)
    got = metrics.rotation_error_deg(jnp.asarray(pred.as_matrix().reshape(2, 5, 3, 3), jnp.float32),
                               jnp.asarray(gt.as_matrix().reshape(2, 5, 3, 3), jnp.float32))
    np.testing.assert_allclose(np.asarray(got), expected.mean(1), atol=0.05)
    valid = np.array([[1, 1, 0, 0, 0], [0, 0, 0, 1, 1]], np.float32)
    got = metrics.rotation_error_deg(jnp.asarray(pred.as_matrix().reshape(2, 5, 3, 3), jnp.float32),
                               jnp.asarray(gt.as_matrix().reshape(2, 5, 3, 3), jnp.float32), valid)
    np.testing.assert_allclose(np.asarray(got), (expected * valid).sum(1) / valid.sum(1), atol=0.05)
    # identical and half-turn rotations: 0 and 180 (the clipped arccos stays finite at both ends)
    eye = jnp.broadcast_to(jnp.eye(3), (1, 2, 3, 3))
    flip = jnp.asarray(Rotation.from_rotvec([[np.pi, 0, 0], [0, np.pi, 0]]).as_matrix()[None], jnp.float32)
    np.testing.assert_allclose(np.asarray(metrics.rotation_error_deg(eye, eye)), [0.0], atol=0.05)
    np.testing.assert_allclose(np.asarray(metrics.rotation_error_deg(flip, eye)), [180.0], atol=0.05)
