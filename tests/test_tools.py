"""Analysis tools under tools/: the numeric parts checked against direct numpy computations."""
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))

import spread_by_joint  # noqa: E402

RNG = np.random.default_rng(11)


def test_per_joint_spread_against_numpy():
    """Root-aligned spread = mean distance to the per-joint mean; the mode-fitted spread is unchanged by a
    random rigid motion of each hypothesis and equals the root-aligned one when no hypothesis is rotated."""
    from scipy.spatial.transform import Rotation
    b, s = 3, 12
    kp = RNG.normal(size=(b, 1, 17, 3)) * 0.3 + RNG.normal(size=(b, s, 17, 3)) * 0.02
    center = RNG.normal(size=(b, s, 1, 3)) * 0.01
    plain, aligned = (np.asarray(x) for x in spread_by_joint.per_joint_spread(kp, center))
    x = kp - center
    ref = 1000 * np.linalg.norm(x - x.mean(1, keepdims=True), axis=-1).mean(1)
    np.testing.assert_allclose(plain, ref, rtol=1e-4)
    rots = Rotation.random(b * s, random_state=2).as_matrix().reshape(b, s, 3, 3)
    moved = np.einsum("bsij,bskj->bski", rots, kp) + RNG.normal(size=(b, s, 1, 3))
    _, aligned_moved = (np.asarray(x) for x in spread_by_joint.per_joint_spread(moved, center))
    np.testing.assert_allclose(aligned_moved, aligned, rtol=1e-3, atol=1e-3)


def test_summarize_per_joint_visible_vs_hidden():
    n = 40
    spread = RNG.uniform(10, 100, size=(n, 17))
    visible = (RNG.random((n, 17)) < 0.6).astype(np.float32)
    visible[:, 0] = 1.0                                   # the nose is always visible: not compared
    spread[:, 1:] += 50 * (visible[:, 1:] <= 0)           # hidden keypoints spread more
    valid = np.ones(n, bool)
    valid[-3:] = False
    rows, summary = spread_by_joint.summarize(spread, visible, valid)
    for k, r in enumerate(rows):
        v, h = (visible[:-3, k] > 0), (visible[:-3, k] <= 0)
        assert r["n_visible"] == v.sum() and r["n_hidden"] == h.sum()
        np.testing.assert_allclose(r["visible_mm"], spread[:-3][v, k].mean())
        if h.any():
            np.testing.assert_allclose(r["hidden_mm"], spread[:-3][h, k].mean())
    assert summary["joints_compared"] == 16 and summary["joints_hidden_larger"] == 16
    ratios = [rows[k]["hidden_mm"] / rows[k]["visible_mm"] for k in range(1, 17)]
    np.testing.assert_allclose(summary["mean_ratio_hidden_over_visible"], np.mean(ratios))
