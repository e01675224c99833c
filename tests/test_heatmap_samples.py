"""Detector heatmap samples: multinomial statistics vs the thresholded heatmap mass, mask distances vs
`scipy.ndimage.distance_transform_edt` / brute force, heatmap px -> full px through the crop, the ArrayRecord
store, and write -> join -> grain pipeline batch fields (a 1-step detector run on a 64x64 synthetic build)."""
import json
import os

import numpy as np
import pytest
from scipy import ndimage

import data_pipelines
from data_pipelines import heatmap_samples as hs
from data_pipelines import transforms as tf


def test_sampling_frequencies_match_thresholded_mass():
    rng = np.random.default_rng(0)
    h, w = 6, 5
    hm = rng.random((1, 2, h, w)) * 0.3
    hm[0, 0, 2, 3] = 1.0
    hm[0, 0, 0, :] = 0.04              # below min_conf: never sampled
    hm[0, 0, 1, 0] = -0.2              # negative: never sampled
    hm[0, 1] = 0.01                    # nothing >= min_conf: uniform
    n = 200_000
    xy, values = hs.sample_heatmaps(hm, n, 0.05, np.random.default_rng(1))
    assert xy.shape == (1, 2, n, 2) and values.shape == (1, 2, n)
    for k in range(2):
        counts = np.zeros((h, w))
        np.add.at(counts, (xy[0, k, :, 1], xy[0, k, :, 0]), 1)
        mass = np.where(hm[0, k] >= 0.05, hm[0, k], 0.0) if k == 0 else np.ones((h, w))
        p = mass / mass.sum()
        sd = np.sqrt(p * (1 - p) / n)
        np.testing.assert_array_less(np.abs(counts / n - p), 5 * sd + 1e-12)
        np.testing.assert_allclose(values[0, k], hm[0, k][xy[0, k, :, 1], xy[0, k, :, 0]], rtol=1e-6)
    assert np.all(values[0, 0] >= 0.05)
    again, _ = hs.sample_heatmaps(hm, 50, 0.05, np.random.default_rng(1))
    np.testing.assert_array_equal(again, hs.sample_heatmaps(hm, 50, 0.05, np.random.default_rng(1))[0])
    with pytest.raises(ValueError, match=r"\[N, K, h, w\]"):
        hs.sample_heatmaps(hm[0], 5, 0.05, rng)


def test_mask_distances_vs_edt_and_brute_force():
    rng = np.random.default_rng(2)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:12, 8:15] = 1
    mask[15, 25] = 1
    edt = ndimage.distance_transform_edt(mask == 0)
    pix = np.stack([rng.integers(0, 30, 50), rng.integers(0, 20, 50)], -1).astype(np.float64)
    np.testing.assert_allclose(hs.mask_distances(pix, mask), edt[pix[:, 1].astype(int), pix[:, 0].astype(int)])
    # points outside the image: brute force over mask pixels from the clamped pixel, plus the offset to it
    pts = np.array([[-3.2, 4.0], [35.0, 25.0], [10.0, -1.6]])
    ys, xs = np.nonzero(mask)
    clamped = np.stack([np.clip(np.rint(pts[:, 0]), 0, 29), np.clip(np.rint(pts[:, 1]), 0, 19)], -1)
    ref = (np.min(np.hypot(clamped[:, None, 0] - xs, clamped[:, None, 1] - ys), axis=1)
           + np.hypot(*(pts - clamped).T))
    np.testing.assert_allclose(hs.mask_distances(pts, mask), ref, rtol=1e-12)
    assert np.all(hs.mask_distances(pix, np.zeros_like(mask)) == np.inf)


def test_heatmap_px_to_full_inverts_the_crop():
    crop = tf.crop_transform(np.array([140.0, 90.0]), 120.0, 64)
    hm_px = np.array([[0, 0], [15, 15], [3, 11]], np.float64)
    full = hs.heatmap_px_to_full(hm_px, (16, 16), 64, crop)
    back = tf.apply_affine(crop, full)
    np.testing.assert_allclose(back, (hm_px + 0.5) * 4 - 0.5, atol=1e-9)


def test_store_round_trip_and_atomic_write(tmp_path):
    rng = np.random.default_rng(3)
    recs = [dict(keypoints=rng.random((17, 3)), samples=rng.random((17, 7, 2)) * 100,
                 sample_conf=rng.random((17, 7)), mask_dist=rng.random((17, 7)) * 5) for _ in range(3)]
    path = tmp_path / "heatmaps_x" / "test.array_record"
    assert hs.write_split(path, (hs.encode_record(**r) for r in recs)) == 3
    with pytest.raises(FileNotFoundError, match="info.json"):
        hs.SampleStore(path.parent, "test")
    (path.parent / "info.json").write_text(json.dumps({"num_samples": 7, "splits": {"test": {"records": 3}}}))
    store = hs.SampleStore(path.parent, "test")
    assert len(store) == 3
    got = store[2]
    np.testing.assert_array_equal(got["samples"], recs[2]["samples"].astype(np.float32))
    np.testing.assert_allclose(got["sample_conf"], recs[2]["sample_conf"], atol=1e-3)

    def failing():
        yield hs.encode_record(**recs[0])
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        hs.write_split(path, failing())
    assert len(hs.SampleStore(path.parent, "test")) == 3          # the old file is untouched
    assert sorted(os.listdir(path.parent)) == ["info.json", "test.array_record"]
    with pytest.raises(ValueError, match="num_heatmap_samples"):
        hs.JoinedSource([{}] * 3, store, 8)
    with pytest.raises(ValueError, match="hold 3 records"):
        hs.JoinedSource([{}] * 4, store, 5)


def test_generate_join_pipeline(tmp_path):
    """A 1-step detector run -> `hmrjax data heatmaps` -> open_source joins -> eval batch fields in the crop."""
    from configs import detector2d as det_config
    from configs import dpose as dpose_config
    from data_pipelines.synthetic import builder
    from hmrjax import cli
    from hmrjax.train import trainer
    root = tmp_path / "data"
    mini = builder.SynthConfig("hm_test", (64, 64), (("train", 4), ("test", 3)), examples_per_shard=8, seed=3)
    builder.build(mini, root, num_workers=0, progress=False)
    cfg = det_config.get_config("tiny")
    cfg.model.backbone = "vit_tiny_test"
    cfg.data.image_size, cfg.data.heatmap_size, cfg.data.read_threads = 32, 8, 0
    cfg.data.name, cfg.data.data_dir = "synthetic_humans/hm_test", str(root)
    cfg.batch_size, cfg.total_steps, cfg.checkpoint["async"] = 2, 1, False
    workdir = tmp_path / "det"
    trainer.train_and_evaluate(cfg, workdir)
    assert cli.main(["data", "heatmaps", "--detector-workdir", str(workdir), "--data-dir", str(root),
                     "--config", "hm_test", "--splits", "test", "train", "--num-samples", "20",
                     "--batch-size", "2"]) == 0
    folder = builder.dataset_path("hm_test", root) / "heatmaps_det"
    info = json.loads((folder / "info.json").read_text())
    assert info["splits"]["test"]["records"] == 3 and info["num_samples"] == 20 and info["detector_step"] == 1

    source = data_pipelines.open_source("synthetic_humans/hm_test", "test", str(root))
    store = hs.SampleStore(folder, "test")
    rec = store[1]
    assert rec["samples"].shape == (17, 20, 2) and rec["keypoints"].shape == (17, 3)
    raw = source[1]
    mask = np.asarray(raw["mask"])
    np.testing.assert_allclose(rec["mask_dist"], hs.mask_distances(rec["samples"], mask), rtol=2e-3, atol=2e-2)
    # samples lie on heatmap-pixel centres of the record's crop (eval crop: bbox centre / scale)
    crop = tf.crop_transform(np.asarray(raw["bbox_center"]), float(raw["bbox_scale"]), 32)
    hm_px = (tf.apply_affine(crop, rec["samples"]) + 0.5) / 4 - 0.5
    np.testing.assert_allclose(hm_px, np.rint(hm_px), atol=1e-3)

    c = dpose_config.get_config("tiny")
    c.data.name, c.data.data_dir, c.data.read_threads = "synthetic_humans/hm_test", str(root), 0
    c.data.heatmap_samples_name, c.data.num_heatmap_samples, c.batch_size = "det", 5, 3
    batch = next(iter(data_pipelines.build_eval_dataset(c, "test")))
    assert batch["heatmap_samples"].shape == (3, 17, 5, 2) and np.all(batch["has_heatmap_samples"] == 1)
    s = c.data.image_size
    expected = (tf.apply_affine(tf.crop_transform(np.asarray(raw["bbox_center"]), float(raw["bbox_scale"]), s),
                                rec["samples"][:, :5]) + 0.5) * 2 / s - 1
    np.testing.assert_allclose(batch["heatmap_samples"][1], expected, atol=1e-4)
    np.testing.assert_allclose(batch["heatmap_conf"][1], rec["keypoints"][:, 2], rtol=1e-6)
    # the stored argmax pose is joined and mapped into the crop like the samples (prob_hmr's 2D-pose input)
    expected_pose = (tf.apply_affine(tf.crop_transform(np.asarray(raw["bbox_center"]), float(raw["bbox_scale"]), s),
                                     rec["keypoints"][:, :2]) + 0.5) * 2 / s - 1
    assert batch["heatmap_pose"].shape == (3, 17, 3)
    np.testing.assert_allclose(batch["heatmap_pose"][1, :, :2], expected_pose, atol=1e-4)
    np.testing.assert_allclose(batch["heatmap_pose"][1, :, 2], rec["keypoints"][:, 2], rtol=1e-6)
    c.data.num_heatmap_samples = 0
    with pytest.raises(ValueError, match="num_heatmap_samples"):
        data_pipelines.open_config_source(c, "test")
