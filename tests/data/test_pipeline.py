"""data_pipelines.pipeline: batch schema, determinism, exact resume from iterator state (also with worker
processes), per-process sharding, epochs, eval padding, and bad records (error naming the record, or skip + count)."""
import json

import numpy as np
import pytest

import data_fixtures as fx
from data_pipelines import pipeline, schema

N = 12


@pytest.fixture(scope="module")
def source():
    return fx.make_source(N)


def _equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _batches(it, n):
    return [next(it) for _ in range(n)]


def test_batch_fields_shapes_and_dtypes(source):
    config = fx.test_config()
    batch = next(pipeline.make_train_iterator(source, config, seed=0))
    b, s, d, h = 4, 32, 16, 16
    f32, i32 = np.float32, np.int32
    expected = {
        "img": ((b, s, s, 3), f32), "keypoints2d": ((b, 17, 3), f32), "keypoints2d_full": ((b, 17, 3), f32),
        "pose": ((b, 24, 3), f32), "betas": ((b, 10), f32), "transl": ((b, 3), f32), "joints3d": ((b, 24, 3), f32),
        "bbox_center": ((b, 2), f32), "bbox_scale": ((b,), f32), "focal_length": ((b, 2), f32),
        "image_size": ((b, 2), f32), "princpt": ((b, 2), f32), "cliff_bbox": ((b, 3), f32),
        "crop_transform": ((b, 2, 3), f32), "frame_transform": ((b, 2, 3), f32), "depth": ((b, d, d), f32),
        "mask": ((b, d, d), f32), "part_seg": ((b, d, d), i32), "pseudo_depth": ((b, d, d), f32),
        "heatmaps": ((b, 17, h, h), f32), "heatmap_samples": ((b, 17, 4, 2), f32), "heatmap_conf": ((b, 17), f32),
        "heatmap_pose": ((b, 17, 3), f32), "record_index": ((b,), i32), "valid": ((b,), f32),
    }
    expected.update({schema.flag_name(k): ((b,), f32) for k in schema.OPTIONAL})
    assert set(batch) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == shape and batch[key].dtype == dtype, (key, batch[key].shape, batch[key].dtype)
    assert np.isfinite(batch["img"]).all() and -3 < batch["img"].mean() < 3
    assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
    assert (batch["keypoints2d"][..., 2] <= fx.make_example(0)["keypoints2d"][:, 2].max()).all()
    assert np.all(batch["valid"] == 1) and np.all(batch["has_pose"] == 1)
    # optional outputs switched off
    config = fx.test_config(heatmaps=False, num_heatmap_samples=0)
    batch = next(pipeline.make_train_iterator(source, config, seed=0))
    assert not {"heatmaps", "heatmap_samples", "heatmap_conf", "heatmap_pose", "has_heatmap_samples"} & set(batch)


def test_two_fresh_iterators_give_the_same_batches_and_seeds_differ(source):
    config = fx.test_config(read_threads=2)
    a = _batches(pipeline.make_train_iterator(source, config, seed=3), 3)
    b = _batches(pipeline.make_train_iterator(source, fx.test_config(), seed=3), 3)  # threads do not change data
    for x, y in zip(a, b):
        _equal(x, y)
    c = next(pipeline.make_train_iterator(source, config, seed=4))
    assert not np.array_equal(a[0]["img"], c["img"])


def test_restore_from_state_gives_the_exact_next_batch(source):
    config = fx.test_config(read_threads=2)
    it = pipeline.make_train_iterator(source, config, seed=1)
    _batches(it, 2)
    state = json.loads(json.dumps(it.get_state()))   # as the checkpoint stores it
    expected = _batches(it, 4)                      # crosses the epoch boundary (12 records, batch 4)
    fresh = pipeline.make_train_iterator(source, config, seed=1)
    fresh.set_state(state)
    for want in expected:
        _equal(next(fresh), want)


def test_epochs_are_reshuffled_permutations(source):
    config = fx.test_config(read_threads=0)
    it = pipeline.make_train_iterator(source, config, seed=0)
    epochs = [np.concatenate([b["record_index"] for b in _batches(it, 3)]) for _ in range(2)]
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), np.arange(N))
    assert not np.array_equal(epochs[0], epochs[1])


def test_processes_get_disjoint_shards_covering_the_source(source):
    config = fx.test_config()
    seen = []
    for p in range(3):
        ds = pipeline.make_train_dataset(source, config, seed=0, process_index=p, process_count=3, batch_size=6,
                                         num_epochs=1)
        idx = np.concatenate([b["record_index"] for b in ds])
        np.testing.assert_array_equal(np.sort(idx), np.arange(p, N, 3))
        seen.append(idx)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(N))
    with pytest.raises(ValueError, match="not divisible by process_count"):
        pipeline.make_train_dataset(source, config, seed=0, process_index=0, process_count=3, batch_size=4)


def test_eval_is_padded_ordered_and_unaugmented(source):
    config = fx.test_config()
    batches = list(pipeline.make_eval_iterator(source, config, process_index=1, process_count=2, batch_size=8))
    idx = np.concatenate([b["record_index"] for b in batches])
    valid = np.concatenate([b["valid"] for b in batches])
    np.testing.assert_array_equal(idx, [1, 3, 5, 7, 9, 11, -1, -1])   # 6 records, padded to a batch of 4
    np.testing.assert_array_equal(valid, [1, 1, 1, 1, 1, 1, 0, 0])
    ex = schema.complete_example(schema.validate_example(source[3], 3), num_joints=24, num_betas=10, num_samples=4)
    ex["record_index"] = 3
    want = pipeline.prepare_example(ex, None, config.data, train=False)
    got = {k: v[1] for k, v in batches[0].items()}
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_eval_bad_record_becomes_padding_in_skip_mode(source):
    src = _bad_source(source, "nan")
    config = fx.test_config(on_bad_record="skip")
    batches = list(pipeline.make_eval_iterator(src, config, batch_size=6))
    idx = np.concatenate([b["record_index"] for b in batches])
    np.testing.assert_array_equal(idx, [0, 1, 2, 3, 4, -1, 6, 7, 8, 9, 10, 11])
    np.testing.assert_array_equal(np.concatenate([b["valid"] for b in batches]), (idx >= 0).astype(np.float32))
    blank = {k: v[5] for k, v in batches[0].items()}
    assert all(blank[schema.flag_name(k)] == 0 for k in schema.OPTIONAL)
    assert not blank["joints3d"].any() and not blank["mask"].any()
    with pytest.raises(pipeline.BadRecordError, match="record 5"):
        list(pipeline.make_eval_iterator(src, fx.test_config(), batch_size=6))


def _bad_source(source, kind):
    src = list(source)
    bad = dict(src[5])
    if kind == "jpeg":
        data = fx.jpeg_bytes(bad["image"])
        bad["image"] = data[: len(data) // 3]
    else:
        bad["joints3d"] = bad["joints3d"].copy()
        bad["joints3d"][2, 1] = np.nan
    src[5] = bad
    return src


@pytest.mark.parametrize("kind, match", [("jpeg", r"record 5: field 'image': cannot decode"),
                                         ("nan", r"record 5: field 'joints3d' has a non-finite value")])
def test_bad_record_raises_naming_it(source, kind, match):
    it = pipeline.make_train_iterator(_bad_source(source, kind), fx.test_config(), seed=0)
    with pytest.raises(pipeline.BadRecordError, match=match):
        _batches(it, 3)   # one epoch: record 5 comes up


@pytest.mark.parametrize("kind", ["jpeg", "nan"])
def test_bad_record_skipped_and_counted(source, kind):
    config = fx.test_config(on_bad_record="skip")
    it = pipeline.make_train_iterator(_bad_source(source, kind), config, seed=0)
    batches = _batches(it, 11)   # 44 good examples = 4 epochs of 11 good records
    idx = np.concatenate([b["record_index"] for b in batches])
    assert 5 not in idx and len(idx) == 44
    np.testing.assert_array_equal(np.sort(idx), np.sort(np.tile(np.delete(np.arange(N), 5), 4)))
    state = it.get_state()
    assert pipeline.num_skipped(state) == state["seen"] - 44 and pipeline.num_skipped(state) >= 3


def test_too_many_bad_records_stop_the_skip_mode(source):
    src = [dict(ex, bbox_scale=np.float32(-1.0)) if i % 2 else ex for i, ex in enumerate(source)]
    config = fx.test_config(on_bad_record="skip", max_skipped_fraction=0.3)
    it = pipeline.make_train_iterator(src, config, seed=0)
    with pytest.raises(pipeline.BadRecordError, match=r"records were bad \(more than max_skipped_fraction=0.3\)"):
        _batches(it, 40)


def test_two_workers_deterministic_resume_and_errors(source):
    """Worker processes: exact resume (a fresh iterator set to a saved state), skip counts, named errors."""
    config = fx.test_config(num_workers=2, on_bad_record="skip")
    src = _bad_source(source, "nan")
    it = pipeline.make_train_iterator(src, config, seed=2)
    _batches(it, 3)
    state = json.loads(json.dumps(it.get_state()))
    expected = _batches(it, 3)
    assert pipeline.num_skipped(it.get_state()) >= 1   # 6 batches x 4 = 24 examples: 2 epochs' worth
    idx = np.concatenate([b["record_index"] for b in expected])
    assert 5 not in idx
    del it
    again = pipeline.make_train_iterator(src, config, seed=2)
    again.set_state(state)
    for want in expected:
        _equal(next(again), want)
    del again
    strict = pipeline.make_train_iterator(src, fx.test_config(num_workers=2), seed=2)
    with pytest.raises(Exception, match=r"record 5: field 'joints3d' has a non-finite value"):
        _batches(strict, 6)


@pytest.mark.parametrize("flip", [False, True])
def test_heatmap_pose_follows_the_keypoints_through_flip_and_roll(flip):
    """A detector pose equal to the ground-truth keypoints stays equal to them in the crop after the
    flip (joint order swapped) and roll augmentations, and keeps its confidences."""
    import ml_collections
    ex = fx.make_example(1)
    conf = np.linspace(0.1, 0.9, 17).astype(np.float32)
    ex["heatmap_pose"] = np.concatenate([ex["keypoints2d"][:, :2], conf[:, None]], -1)
    ex["heatmap_conf"] = conf
    cfg = fx.test_config().data
    ex = schema.complete_example(schema.validate_example(ex, 0), num_joints=24, num_betas=10,
                                 num_samples=cfg.num_heatmap_samples)
    cfg.augment.enabled = False
    cfg.geometry = ml_collections.ConfigDict({"enabled": True, "scale_jitter": 0.1, "rot_jitter": 30.0,
                                              "rot_prob": 1.0, "shift_jitter": 0.05, "flip_prob": float(flip)})
    for seed in range(3):
        out = pipeline.prepare_example(ex, np.random.default_rng(seed), cfg, train=True)
        inside = out["keypoints2d"][:, 2] > 0
        assert inside.sum() >= 5
        np.testing.assert_allclose(out["heatmap_pose"][inside, :2], out["keypoints2d"][inside, :2], atol=1e-4)
        np.testing.assert_allclose(out["heatmap_pose"][:, 2], out["heatmap_conf"])
        perm = pipeline.flip_tables(cfg)["keypoints"] if flip else np.arange(17)
        np.testing.assert_allclose(out["heatmap_conf"], conf[perm])


def _gaussian_reference(xy_norm, size, sigma):
    """float64 Gaussian on an [size, size] grid of pixel centres, xy in crop-normalised [-1, 1] units."""
    px = (np.asarray(xy_norm, np.float64) + 1.0) * 0.5 * size - 0.5
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.exp(-((xx - px[0]) ** 2 + (yy - px[1]) ** 2) / (2.0 * sigma ** 2))


@pytest.mark.parametrize("mode", ["visible", "in_crop"])
def test_heatmap_targets_for_occluded_keypoints(mode):
    """'visible': a Gaussian only at keypoints that are visible and inside the crop; 'in_crop' (amodal): also at
    the occluded keypoints inside the crop, at their true position; keypoints outside the crop get a zero map in
    both. Checked against a float64 Gaussian at the crop-frame keypoints the pipeline emits."""
    ex = fx.make_example(3)
    ex["keypoints2d"][::3, 2] = 0.0                      # occlude every third keypoint
    ex["keypoints2d"][1, :2] = (-500.0, -500.0)          # and put one far outside any crop
    cfg = fx.test_config(heatmaps=True, heatmap_size=16, heatmap_sigma=2.0, heatmap_keypoints=mode).data
    cfg.augment.enabled = False
    ex = schema.complete_example(schema.validate_example(ex, 0), num_joints=24, num_betas=10,
                                 num_samples=cfg.num_heatmap_samples)
    out = pipeline.prepare_example(ex, np.random.default_rng(0), cfg, train=False)
    kp = out["keypoints2d"]
    inside = np.all(np.abs(kp[:, :2]) <= 1.0, axis=1)
    occluded_inside = inside & (ex["keypoints2d"][:, 2] == 0)
    assert occluded_inside.sum() >= 2 and not inside[1]
    for k in range(17):
        on = inside[k] and (mode == "in_crop" or kp[k, 2] > 0)
        ref = _gaussian_reference(kp[k, :2], 16, 2.0) if on else np.zeros((16, 16))
        np.testing.assert_allclose(out["heatmaps"][k], ref, atol=1e-6, err_msg=f"{mode} keypoint {k}")
    assert np.all(out["keypoints2d"][occluded_inside, 2] == 0)   # visibility flags unchanged by the mode


def test_heatmap_keypoints_mode_is_checked():
    ex = fx.make_example(0)
    cfg = fx.test_config(heatmaps=True, heatmap_keypoints="all").data
    ex = schema.complete_example(schema.validate_example(ex, 0), num_joints=24, num_betas=10,
                                 num_samples=cfg.num_heatmap_samples)
    with pytest.raises(ValueError, match=r"config.data.heatmap_keypoints='all'"):
        pipeline.prepare_example(ex, np.random.default_rng(0), cfg, train=False)


def test_geometric_labels_against_the_3d_camera_and_prepare_example():
    """`geometric_labels` (the pixel-free labels of prepare_example): its crop keypoints equal the fixture's 3D
    keypoints mirrored (X -> -X, labels swapped) and rolled (Rz) in the camera frame, projected and normalised
    by the augmented box (float64 reference; the box centre back-projected, transformed and projected too), its
    root is Rz times the mirrored root (scipy), and prepare_example emits the same labels for the same draw."""
    import ml_collections
    from scipy.spatial.transform import Rotation

    from data_pipelines import transforms as tf
    cfg = fx.test_config().data
    cfg.augment.enabled = False
    cfg.geometry = ml_collections.ConfigDict({"enabled": True, "scale_jitter": 0.2, "rot_jitter": 30.0,
                                              "rot_prob": 1.0, "shift_jitter": 0.05, "flip_prob": 0.5})
    tables = pipeline.flip_tables(cfg)
    size = int(cfg.image_size)
    raw = fx.make_example(2)
    ex = schema.complete_example(schema.validate_example(raw, 0), num_joints=24, num_betas=10,
                                 num_samples=cfg.num_heatmap_samples)
    f, pp = np.asarray(raw["focal_length"], np.float64), np.asarray(ex["princpt"], np.float64)
    flips = []
    for seed in range(6):
        geo = tf.sample_geometry(np.random.default_rng(seed), cfg.geometry)
        flips.append(geo.flip)
        lab = pipeline.geometric_labels(ex, geo, size, tables)
        th = np.deg2rad(geo.rot_deg)
        rz = np.array([[np.cos(th), -np.sin(th), 0.0], [np.sin(th), np.cos(th), 0.0], [0.0, 0.0, 1.0]])
        m = np.diag([-1.0, 1.0, 1.0]) if geo.flip else np.eye(3)
        cam = lambda p: (rz @ m @ np.asarray(p, np.float64).T).T
        perm = tables["keypoints"] if geo.flip else np.arange(17)
        kp3 = cam(raw["joints3d"][fx.KP_FROM_JOINT])[perm]
        c3 = np.append((np.asarray(raw["bbox_center"], np.float64) - pp) / f, 1.0) * 4.0
        side = float(raw["bbox_scale"]) * geo.scale
        centre = fx.project(cam(c3[None]), f, pp)[0] + side * np.asarray(geo.shift)
        want = 2.0 * (fx.project(kp3, f, pp) - centre) / side
        np.testing.assert_allclose(lab["keypoints2d"][:, :2], want, atol=2e-4, err_msg=f"seed {seed}")
        inside = np.all(np.abs(want) <= 1.0, axis=1)
        np.testing.assert_array_equal(lab["keypoints2d"][:, 2], raw["keypoints2d"][perm, 2] * inside)
        np.testing.assert_allclose(lab["bbox_center"], centre, atol=1e-3)
        pose = raw["pose"][tables["joints"]] * [1, -1, -1] if geo.flip else raw["pose"]
        root = Rotation.from_matrix(rz) * Rotation.from_rotvec(np.asarray(pose[0], np.float64))
        np.testing.assert_allclose(Rotation.from_rotvec(lab["pose"][0]).as_matrix(), root.as_matrix(), atol=1e-5)
        np.testing.assert_allclose(lab["pose"][1:], pose[1:], atol=1e-6)

        out = pipeline.prepare_example(ex, np.random.default_rng(seed), cfg, train=True, tables=tables)
        for key in ("keypoints2d", "keypoints2d_full", "pose", "bbox_center", "bbox_scale"):
            np.testing.assert_array_equal(out[key], lab[key], err_msg=key)
    assert any(flips) and not all(flips)
    flipped = next(tf.sample_geometry(np.random.default_rng(s), cfg.geometry) for s in range(6) if flips[s])
    with pytest.raises(ValueError, match="left/right tables"):
        pipeline.geometric_labels(ex, flipped, size)
