"""An empirical model of a 2D detector's errors, to train a 2D -> 3D lifting network on ground-truth keypoints.

A lifter trained on a detector's keypoints of the *training* images learns the detector's training-set
errors, which are smaller than its errors on new images (it was fitted to those images), and sees each
image's keypoints once per pass. Training it on the ground-truth keypoints of the training split instead, with
errors drawn from the detector's errors on *held-out* images (the validation split), gives it test-like inputs
and as many samples as wanted (SimpleBaseline-style lifting is trained the other way: on detections).

The model is per keypoint k and per state s of the ground truth (`keypoint_states`): 0 visible, 1 occluded but
inside the crop, 2 outside the crop. For every held-out (image, k) pair it stores the detector's error
relative to the ground truth clipped to the crop, d - clip(g, -1, 1), and the detector's confidence (the
heatmap maximum). `sample_detections` gives a ground-truth keypoint g of state s the detection
clip(g, -1, 1) + e and the confidence c of a uniformly drawn stored pair (e, c) of its (k, s); errors and
confidences keep their joint distribution, heavy tails and all. An empty (k, s) group borrows the pairs of
state s of all keypoints, and a state no held-out keypoint had borrows keypoint k's pairs of every state.
All coordinates are crop-normalised (x, y in [-1, 1] over the crop, the data's `keypoints2d`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

STATES = ("visible", "occluded", "outside")


def keypoint_states(keypoints) -> np.ndarray:
    """Crop keypoints [..., K, 3] (x, y, visibility) -> state [..., K] int: 0 visible, 1 occluded inside the crop,
    2 outside the crop (|x| > 1 or |y| > 1, whatever the flag)."""
    kp = np.asarray(keypoints)
    if kp.shape[-1] != 3:
        raise ValueError(f"keypoint_states: keypoints must be [..., K, 3] (x, y, visibility), got {kp.shape}")
    inside = np.all(np.abs(kp[..., :2]) <= 1.0, axis=-1)
    return np.where(~inside, 2, np.where(kp[..., 2] > 0, 0, 1)).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class ErrorPool:
    """The stored errors [M, 2], confidences [M], keypoint index [M] and state [M] of held-out detections
    (M = N images x K keypoints, image-major: pair i is image i // K, keypoint i % K)."""

    errors: np.ndarray
    conf: np.ndarray
    keypoint: np.ndarray
    state: np.ndarray
    num_keypoints: int
    groups: dict = dataclasses.field(default_factory=dict)   # (keypoint, state) -> pair indices, with fallbacks

    def image_states(self) -> np.ndarray:
        """[N, K] states of the stored images."""
        return self.state.reshape(-1, self.num_keypoints)

    def summary(self) -> dict:
        """{state: {'count', 'rms_error' (crop units), 'mean_conf'}} for the record."""
        out = {}
        for s, name in enumerate(STATES):
            m = self.state == s
            out[name] = {"count": int(m.sum()),
                         "rms_error": float(np.sqrt(np.mean(np.sum(self.errors[m] ** 2, -1)))) if m.any() else None,
                         "mean_conf": float(self.conf[m].mean()) if m.any() else None}
        return out


def error_pool(detected, conf, ground_truth) -> ErrorPool:
    """Held-out detections [N, K, 2], their confidences [N, K] and the ground truth [N, K, 3] (all crop-normalised)
    -> the `ErrorPool` of every (image, keypoint) pair."""
    det = np.asarray(detected, np.float64)
    gt = np.asarray(ground_truth, np.float64)
    c = np.asarray(conf, np.float64)
    if det.ndim != 3 or det.shape[-1] != 2 or gt.shape != det.shape[:2] + (3,) or c.shape != det.shape[:2]:
        raise ValueError(f"error_pool: detected {det.shape} must be [N, K, 2], conf {c.shape} [N, K] and "
                         f"ground_truth {gt.shape} [N, K, 3]")
    n, k = det.shape[:2]
    err = det - np.clip(gt[..., :2], -1.0, 1.0)
    keypoint, state = np.tile(np.arange(k), n), keypoint_states(gt).reshape(-1)
    groups = {}
    for j in range(k):
        for s in range(len(STATES)):
            idx = np.nonzero((keypoint == j) & (state == s))[0]
            if not idx.size:
                idx = np.nonzero(state == s)[0]
            if not idx.size:
                idx = np.nonzero(keypoint == j)[0]
            groups[j, s] = idx
    return ErrorPool(errors=err.reshape(-1, 2), conf=c.reshape(-1), keypoint=keypoint, state=state,
                     num_keypoints=k, groups=groups)


def sample_detections(pool: ErrorPool, ground_truth, rng: np.random.Generator, nearest_images: int = 0):
    """Ground-truth crop keypoints [B, K, 3] -> simulated detections ([B, K, 2], confidences [B, K]).

    nearest_images = 0: each keypoint independently, from its (keypoint, state) group (module docstring).
    nearest_images = n > 0: per sample, all K errors and confidences of one stored image, drawn uniformly among
    the n stored images whose states are closest to the sample's (fewest keypoints in another state; ties
    broken at random), which keeps the errors' correlation within an image (a facing mistake moves every
    left/right pair at once) and their dependence on the occlusion pattern."""
    gt = np.asarray(ground_truth)
    if gt.ndim != 3 or gt.shape[1:] != (pool.num_keypoints, 3):
        raise ValueError(f"sample_detections: ground_truth must be [B, {pool.num_keypoints}, 3], got {gt.shape}")
    states = keypoint_states(gt)
    xy = np.clip(gt[..., :2], -1.0, 1.0).astype(np.float64)
    if nearest_images:
        stored = pool.image_states()
        dist = (states[:, None, :] != stored[None]).sum(-1) + rng.random((len(gt), len(stored)))   # random ties
        n = min(int(nearest_images), len(stored))
        near = np.argpartition(dist, n - 1, axis=1)[:, :n]
        pick = near[np.arange(len(gt)), rng.integers(0, n, len(gt))]
        k = pool.num_keypoints
        err = pool.errors.reshape(-1, k, 2)[pick]
        return (xy + err).astype(np.float32), pool.conf.reshape(-1, k)[pick].astype(np.float32)
    conf = np.zeros(states.shape, np.float64)
    for k in range(pool.num_keypoints):
        for s in range(len(STATES)):
            rows = np.nonzero(states[:, k] == s)[0]
            if not rows.size:
                continue
            idx = pool.groups[k, s]
            if not idx.size:
                raise ValueError(f"sample_detections: the pool has no pairs of keypoint {k}")
            pick = idx[rng.integers(0, idx.size, rows.size)]
            xy[rows, k] += pool.errors[pick]
            conf[rows, k] = pool.conf[pick]
    return xy.astype(np.float32), conf.astype(np.float32)
