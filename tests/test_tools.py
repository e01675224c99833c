"""Analysis tools under tools/: the numeric parts checked against direct numpy computations."""
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))

import facing_from_detector  # noqa: E402
import lift_probe  # noqa: E402
import pose_family_oracle  # noqa: E402
import pretrain_lifter  # noqa: E402
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


def test_facing_agreement_on_projected_bodies():
    """Shoulders and hips of a y-up body (front +z) turned by random yaws, in front of an OpenCV camera and
    projected: the ground-truth order matches the facing direction every time; a detector that swaps
    left and right on a known subset agrees with the truth on exactly the rest."""
    from scipy.spatial.transform import Rotation
    n = 200
    kp_body = np.zeros((17, 3))
    kp_body[[5, 6, 11, 12]] = [[0.2, 1.4, 0], [-0.2, 1.4, 0], [0.1, 0.9, 0], [-0.1, 0.9, 0]]  # left = +x
    yaw = RNG.uniform(-np.pi, np.pi, n)
    yaw = yaw[np.abs(np.abs(yaw) - np.pi / 2) > 0.1]          # not edge-on
    # body -> camera: 180 deg about x (y up -> y down, front +z -> -z: facing the camera), then the yaw
    flip = Rotation.from_euler("x", 180, degrees=True)
    rot = (flip * Rotation.from_euler("y", yaw[:, None])).as_matrix()
    cam = np.einsum("nij,kj->nki", rot, kp_body) + [0, 0, 5]
    kp2d = 500 * cam[..., :2] / cam[..., 2:] + 160
    swap = RNG.random(len(yaw)) < 0.3
    det = kp2d.copy()
    for left, right in facing_from_detector.PAIRS:
        det[swap, left], det[swap, right] = kp2d[swap, right], kp2d[swap, left]
    out = facing_from_detector.agreement(kp2d, det, rot)
    assert out["all"]["images"] == len(yaw)
    assert out["all"]["gt_order_matches_facing"] == 1.0
    np.testing.assert_allclose(out["all"]["detector_order_matches_gt"], 1.0 - swap.mean())
    facing = np.cos(yaw) > 0                                    # yaw 0: facing the camera
    assert np.all((facing_from_detector.lr_order(kp2d) > 0) == facing)


def _pa_numpy(p, g):
    """Float64 similarity Procrustes (Umeyama) of one [J, 3] pair -> mean joint error of the aligned p."""
    mp, mg = p.mean(0), g.mean(0)
    a, b = p - mp, g - mg
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / (a ** 2).sum()
    return np.linalg.norm(scale * a @ r + mg - g, axis=1).mean()


def test_pose_family_oracle():
    """Two families, each one repeated pose: the family means are those poses (oracle error ~0), the global
    chordal mean is neither; its errors equal a float64 numpy Procrustes of the same joints."""
    from scipy.spatial.transform import Rotation
    j = 6
    parents = np.array([-1, 0, 1, 2, 0, 4])
    offsets = RNG.normal(0, 0.2, (j, 3))

    def forward(rot, betas):                      # a small kinematic chain; betas scale the bones
        out, glob = np.zeros((j, 3)), [None] * j
        for k in range(j):
            if parents[k] < 0:
                glob[k] = rot[k]
                continue
            glob[k] = glob[parents[k]] @ rot[k]
            out[k] = out[parents[k]] + glob[parents[k]] @ offsets[k] * (1 + betas[0])
        return out

    pose_a = Rotation.from_rotvec(RNG.normal(0, 0.8, (j, 3))).as_matrix()
    pose_b = Rotation.from_rotvec(RNG.normal(0, 0.8, (j, 3))).as_matrix()
    rot = np.stack([pose_a] * 5 + [pose_b] * 5)
    fam = np.array([0] * 5 + [1] * 5)
    means = pose_family_oracle.family_means(rot, fam)
    np.testing.assert_allclose(means[0], pose_a, atol=1e-6)
    np.testing.assert_allclose(means[1], pose_b, atol=1e-6)
    from hmrjax.evaluate import chordal_mean_rotation
    glob = chordal_mean_rotation(rot)
    betas = RNG.uniform(-0.2, 0.2, (10, 1))
    g, f = pose_family_oracle.oracle_errors(forward, rot, betas, fam, means, glob)
    assert g.shape == f.shape == (10,)
    assert np.all(f < 1e-3) and np.all(g > 10.0)          # mm
    want = [1000 * _pa_numpy(forward(glob, b), forward(r, b)) for r, b in zip(rot, betas)]
    np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-2)
    # a family without a mean gives NaN, not an error
    _, f2 = pose_family_oracle.oracle_errors(forward, rot, betas, fam, {0: means[0]}, glob)
    assert np.all(np.isnan(f2[5:])) and np.all(f2[:5] < 1e-3)


def test_lift_probe_corruptions_against_loops():
    """hide_invisible zeroes exactly the invisible keypoints' (x, y); swap_left_right relabels the chosen rows'
    keypoints (coordinates and flags) through the COCO-17 left/right pairs and leaves the others alone."""
    from hmrjax.body import layouts
    kp = RNG.uniform(-300, 300, (40, 17, 3))
    kp[..., 2] = RNG.random((40, 17)) < 0.6
    x = lift_probe.keypoint_inputs(kp, RNG.uniform(-10, 10, (40, 2)), RNG.uniform(80, 120, 40))
    hidden = lift_probe.hide_invisible(x)
    for n in range(40):
        for k in range(17):
            want = x[n, 2 * k:2 * k + 2] if kp[n, k, 2] else np.zeros(2)
            np.testing.assert_array_equal(hidden[n, 2 * k:2 * k + 2], want)
    np.testing.assert_array_equal(hidden[:, 34:], x[:, 34:])
    names = list(layouts.COCO17.joint_names)
    partner = [names.index(j.replace("left", "right")) if "left" in j else
               names.index(j.replace("right", "left")) if "right" in j else i for i, j in enumerate(names)]
    swapped, rows = lift_probe.swap_left_right(x, 0.5, np.random.default_rng(0))
    assert 5 < rows.sum() < 35
    for n in range(40):
        for k in range(17):
            src = partner[k] if rows[n] else k
            np.testing.assert_array_equal(swapped[n, 2 * k:2 * k + 2], x[n, 2 * src:2 * src + 2])
            assert swapped[n, 34 + k] == x[n, 34 + src]


def test_pretrain_lifter_end_to_end(tmp_path):
    """tools/pretrain_lifter.py on a 2-step 2D detector of a tiny synthetic build: the augmented labels are
    `geometric_labels` of the records; the written lifter grafts into D-PoSE's `keypoint_lifter` (lifter_pose),
    whose starting pose then equals the standalone lifter's on the same keypoints; the JSON has the curve and
    the error pool of the validation split."""
    import json

    import jax
    import jax.numpy as jnp

    from configs import detector2d as det_config
    from configs import dpose as dpose_config
    from data_pipelines.synthetic import builder
    from hmrjax.methods import create, dpose
    from hmrjax.train import pretrained, trainer
    root = tmp_path / "data"
    mini = builder.SynthConfig("lift_test", (64, 64), (("train", 6), ("validation", 4), ("test", 3)),
                               examples_per_shard=8, seed=3)
    builder.build(mini, root, num_workers=0, progress=False)
    cfg = det_config.get_config("tiny")
    cfg.model.backbone = "vit_tiny_test"
    cfg.data.image_size, cfg.data.heatmap_size = 32, 8
    cfg.data.name, cfg.data.data_dir, cfg.data.read_threads = "synthetic_humans/lift_test", str(root), 0
    cfg.batch_size, cfg.total_steps, cfg.log_every = 2, 2, 1
    cfg.checkpoint.every_steps, cfg.checkpoint["async"] = 2, False
    trainer.train_and_evaluate(cfg, tmp_path / "det")

    rng = np.random.default_rng(0)
    kp, rot, betas = pretrain_lifter.augmented_labels(cfg.data.name, str(root), cfg.data, 2, rng)
    assert kp.shape == (12, 17, 3) and rot.shape == (12, 24, 3, 3) and betas.shape[0] == 12
    from data_pipelines import open_source, pipeline
    from data_pipelines import transforms as tf
    src, rng = open_source(cfg.data.name, "train", str(root)), np.random.default_rng(0)
    ex = pipeline.load_record(src, 0, cfg.data)
    for copy in range(2):
        lab = pipeline.geometric_labels(ex, tf.sample_geometry(rng, cfg.data.geometry), 32,
                                        pipeline.flip_tables(cfg.data))
        np.testing.assert_array_equal(kp[copy], lab["keypoints2d"])

    weights, out = tmp_path / "lifter.npz", tmp_path / "lift.json"
    pretrain_lifter.main(["--detector", str(tmp_path / "det"), "--steps", "3", "--batch", "4", "--width", "16",
                          "--augment", "2", "--weights", str(weights), "--out", str(out)])
    rec = json.loads(out.read_text())
    assert rec["train_label_sets"] == 12 and rec["curve"][-1]["step"] == 3
    assert sum(v["count"] for v in rec["error_pool"].values()) == 4 * 17
    assert np.isfinite(rec["curve"][-1]["test_pa_mpjpe"])

    dcfg = dpose_config.get_config("tiny")
    dcfg.data.image_size, dcfg.data.dense_size = 64, 16
    dcfg.model.update(decoder_blocks=1, keypoint_lifter=16, keypoint_head_width=8, init_from_data=False,
                      part_prior_init=False, lifter_pose=True, keypoint_heatmaps=True)
    method = create(dcfg)
    img = np.zeros((1, 64, 64, 3), np.float32)
    variables = method.model.init(jax.random.key(0), img, np.zeros((1, 3), np.float32))
    params, state, report = pretrained.graft(variables["params"], {}, pretrained.read_weights(weights),
                                             module="keypoint_lifter", source=str(weights))
    assert len(report.loaded) == len(jax.tree_util.tree_leaves(variables["params"]["keypoint_lifter"]))
    out_net = method.model.apply({"params": params, **{k: v for k, v in variables.items() if k != "params"}},
                                 img, np.zeros((1, 3), np.float32))
    maps = jnp.transpose(out_net["keypoint_maps"], (0, 3, 1, 2))
    conf = np.asarray(maps.max(axis=(2, 3)))                      # the heatmap maxima the lifter reads
    kp_in = pretrain_lifter.lifter_inputs(np.asarray(out_net["keypoints2d"]), conf)
    _, want = dpose.KeypointLifter(16, 24).apply(pretrained.read_weights(weights), kp_in)
    np.testing.assert_allclose(np.asarray(out_net["lifter_pose6d"]), np.asarray(want), atol=1e-5)
