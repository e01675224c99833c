"""hmrjax.lifting: the detector-error model used to pretrain D-PoSE's lifter on ground-truth keypoints."""
import numpy as np
import pytest

from hmrjax import lifting


def test_keypoint_states():
    kp = np.asarray([[[0.2, -0.3, 1.0], [0.5, 0.5, 0.0], [1.2, 0.0, 1.0], [0.0, -1.5, 0.0], [1.0, -1.0, 1.0]]])
    np.testing.assert_array_equal(lifting.keypoint_states(kp), [[0, 1, 2, 2, 0]])
    with pytest.raises(ValueError, match=r"\[..., K, 3\]"):
        lifting.keypoint_states(kp[..., :2])


def test_error_pool_and_sampling_against_a_loop():
    """Each simulated detection is clip(g) + e with (e, c) one stored pair of the same keypoint and state
    (checked pair by pair with a loop over the pool), every pair of a group gets drawn, and the fallbacks
    (a group empty for one keypoint; a state no keypoint had) borrow as documented."""
    rng = np.random.default_rng(0)
    n, k = 40, 3
    gt = np.concatenate([rng.uniform(-0.9, 0.9, (n, k, 2)), (rng.random((n, k, 1)) > 0.4)], -1)
    gt[:5, 1, :2] = 1.4                          # keypoint 1 outside the crop in 5 images
    gt[:, 2, 2] = 1.0                            # keypoint 2 never occluded in the pool
    det = gt[..., :2] + 0.05 * rng.standard_normal((n, k, 2))
    conf = rng.random((n, k))
    pool = lifting.error_pool(det, conf, gt)
    assert pool.errors.shape == (n * k, 2) and pool.summary()["outside"]["count"] == 5
    np.testing.assert_allclose(pool.errors[1 * k + 1], det[1, 1] - 1.0)     # clipped reference (1, 1)
    assert not np.any((pool.keypoint == 0) & (pool.state == 2))              # keypoint 0 never outside

    query = np.zeros((600, k, 3), np.float32)
    query[:, :, 2] = 1.0
    query[:200, 0, 2] = 0.0                      # occluded keypoint 0: its own occluded pairs
    query[200:400, 0, :2] = -1.3                 # keypoint 0 outside: no own pairs -> state 2 of all keypoints
    query[:300, 2, 2] = 0.0                      # keypoint 2 occluded: none in its group -> state 1 of all
    xy, c = lifting.sample_detections(pool, query, np.random.default_rng(1))
    states = lifting.keypoint_states(query)
    e = xy - np.clip(query[..., :2], -1, 1)
    for b in range(len(query)):
        for j in range(k):
            own = (pool.keypoint == j) & (pool.state == states[b, j])
            group = own if own.any() else (pool.state == states[b, j])
            hits = np.nonzero(group & np.all(np.abs(pool.errors - e[b, j]) < 1e-6, -1)
                              & (np.abs(pool.conf - c[b, j]) < 1e-6))[0]
            assert hits.size >= 1, (b, j)
    vis0 = (pool.keypoint == 0) & (pool.state == 0)
    drawn = {int(np.argmin(np.abs(pool.errors - v).sum(-1) + 10.0 * ~vis0)) for v in e[400:, 0]}
    assert drawn == set(np.nonzero(vis0)[0].tolist())                   # 200 draws cover its ~24 pairs
    with pytest.raises(ValueError, match=r"\[B, 3, 3\]"):
        lifting.sample_detections(pool, query[:, :2], np.random.default_rng(1))
    with pytest.raises(ValueError, match="error_pool"):
        lifting.error_pool(det[..., :1], conf, gt)


def test_nearest_image_sampling_takes_one_images_whole_error_vector():
    """nearest_images = n: every sample's errors and confidences are all K of one stored image, and that image
    is among the n whose states differ from the sample's in the fewest keypoints (checked by brute force)."""
    rng = np.random.default_rng(4)
    n, k = 30, 5
    gt = np.concatenate([rng.uniform(-0.9, 0.9, (n, k, 2)), (rng.random((n, k, 1)) > 0.5)], -1)
    pool = lifting.error_pool(gt[..., :2] + 0.1 * rng.standard_normal((n, k, 2)), rng.random((n, k)), gt)
    query = np.concatenate([rng.uniform(-0.9, 0.9, (50, k, 2)), (rng.random((50, k, 1)) > 0.5)], -1)
    xy, c = lifting.sample_detections(pool, query, np.random.default_rng(2), nearest_images=3)
    err = (xy - query[..., :2]).reshape(50, -1)
    stored_err = pool.errors.reshape(n, -1)
    dist = (lifting.keypoint_states(query)[:, None] != pool.image_states()[None]).sum(-1)
    for b in range(50):
        img = int(np.argmin(np.abs(stored_err - err[b]).sum(-1)))
        np.testing.assert_allclose(err[b], stored_err[img], atol=1e-6)
        np.testing.assert_allclose(c[b], pool.conf.reshape(n, k)[img], atol=1e-6)
        assert dist[b, img] <= np.sort(dist[b])[2]
