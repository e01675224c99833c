"""Schema examples for the pipeline tests: a drawn person blob with labels that agree with each other.

`make_example(seed)` builds one record: a pinhole camera (fx != fy on purpose), 24 camera-frame
joints in front of it, COCO-17 keypoints = projections of 17 of those joints (`KP_FROM_JOINT`, same
side for left/right names), an elliptical person blob (mask), depth inside the blob, a part map whose
left/right halves carry mirrored labels, pseudo-depth, heatmap samples around the keypoints.
`make_source(n)` is a list of them (an in-memory random-access source).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from hmrjax.body import layouts

J = 24
NAMES = layouts.get_layout("smpl24").joint_names
# COCO-17 keypoint k is the projection of joint KP_FROM_JOINT[k] (left -> left_*, right -> right_*).
_COCO_TO_SMPL = {"nose": "head", "left_eye": "left_hand", "right_eye": "right_hand", "left_ear": "left_foot",
                 "right_ear": "right_foot", "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
                 "left_elbow": "left_elbow", "right_elbow": "right_elbow", "left_wrist": "left_wrist",
                 "right_wrist": "right_wrist", "left_hip": "left_hip", "right_hip": "right_hip",
                 "left_knee": "left_knee", "right_knee": "right_knee", "left_ankle": "left_ankle",
                 "right_ankle": "right_ankle"}
KP_FROM_JOINT = np.array([NAMES.index(_COCO_TO_SMPL[n]) for n in layouts.get_layout("coco17").joint_names])
LEFT_PART = NAMES.index("left_shoulder") + 1   # part_seg labels: part p -> p + 1
RIGHT_PART = NAMES.index("right_shoulder") + 1


def project(points, focal, princpt):
    p = np.asarray(points, np.float64)
    return p[..., :2] / p[..., 2:3] * np.asarray(focal, np.float64) + np.asarray(princpt, np.float64)


def make_example(seed: int = 0, height: int = 96, width: int = 128, num_samples: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    focal = np.array([110.0, 120.0]) * rng.uniform(0.9, 1.1)
    princpt = np.array([width / 2, height / 2])
    root = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2), rng.uniform(3.0, 4.0)])
    joints = root + rng.normal(0, 1, (J, 3)) * np.array([0.25, 0.45, 0.1])
    joints[0] = root
    transl = root + rng.normal(0, 0.05, 3)
    kp = np.concatenate([project(joints[KP_FROM_JOINT], focal, princpt), np.ones((17, 1))], axis=1)
    kp[rng.random(17) < 0.2, 2] = 0.0

    cx, cy = project(root, focal, princpt)
    ax, ay = rng.uniform(12, 18), rng.uniform(25, 32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    inside = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (40 + 100 * xx / width).astype(np.uint8)
    image[..., 1] = (60 + 80 * yy / height).astype(np.uint8)
    image[..., 2] = 90
    image[inside] = (200, 150, 120)
    depth = np.where(inside, root[2] + 0.02 * (xx - cx) / ax, 0.0).astype(np.float32)
    part = np.where(inside, np.where(xx < cx, RIGHT_PART, LEFT_PART), 0).astype(np.uint8)  # image left = body right
    samples = kp[:, None, :2] + rng.normal(0, 2.0, (17, num_samples, 2))
    return {
        "image": image,
        "bbox_center": np.array([cx, cy], np.float32),
        "bbox_scale": np.float32(2.4 * ay),
        "focal_length": focal.astype(np.float32),
        "image_size": np.array([width, height], np.float32),
        "pose": rng.normal(0, 0.3, (J, 3)).astype(np.float32),
        "betas": rng.normal(0, 1, 10).astype(np.float32),
        "transl": transl.astype(np.float32),
        "joints3d": joints.astype(np.float32),
        "keypoints2d": kp.astype(np.float32),
        "depth": depth,
        "mask": inside.astype(np.uint8),
        "part_seg": part,
        "pseudo_depth": (1.0 / (1.0 + yy / height)).astype(np.float32),
        "heatmap_samples": samples.astype(np.float32),
        "heatmap_conf": rng.uniform(0.2, 1.0, 17).astype(np.float32),
        "has_pose": np.float32(1), "has_betas": np.float32(1),
    }


def make_source(n: int, **kwargs) -> list:
    return [make_example(i, **kwargs) for i in range(n)]


def jpeg_bytes(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_config(**data_overrides):
    """A small pipeline config: 32 px crops, 16 px dense maps, batch 4."""
    import ml_collections

    from data_pipelines import pipeline
    config = ml_collections.ConfigDict({"batch_size": 4, "seed": 0})
    config.data = pipeline.default_config()
    config.data.image_size = 32
    config.data.dense_size = 16
    config.data.read_threads = 0
    config.data.num_heatmap_samples = 4
    config.data.heatmaps = True
    config.data.heatmap_size = 16
    for key, value in data_overrides.items():
        target = config.data
        *path, last = key.split(".")
        for p in path:
            target = target[p]
        target[last] = value
    return config
