"""data_pipelines.transforms / heatmaps and `pipeline.prepare_example` geometry: image, keypoints, dense maps,
3D labels and CLIFF features agree with each other and with `hmrjax.geometry.camera` (float64 references)."""
import numpy as np
import pytest

import data_fixtures as fx
from data_pipelines import heatmaps, pipeline, schema
from data_pipelines import transforms as tf


def _complete(ex, index=0):
    valid = schema.validate_example(ex, index, num_joints=24, num_betas=10)
    return schema.complete_example(valid, num_joints=24, num_betas=10, num_samples=4)


ENGINES = ["pil"] + (["cv2"] if tf.resolve_engine("auto") == "cv2" else [])  # cv2: optional dependency


def _cfg(**over):
    base = {"augment.enabled": False, "geometry.rot_prob": 1.0, "geometry.rot_jitter": 25.0,
            "geometry.flip_prob": 0.5, "geometry.scale_jitter": 0.3, "geometry.shift_jitter": 0.1}
    base.update(over)
    return fx.test_config(**base).data


def _dot_image(h, w, xy, sigma=1.5):
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-((xx - xy[0]) ** 2 + (yy - xy[1]) ** 2) / (2 * sigma ** 2))
    return np.repeat((255 * g).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img):
    w = img[..., 0].astype(np.float64)
    w = np.where(w > 0.2 * w.max(), w, 0)
    yy, xx = np.mgrid[0:w.shape[0], 0:w.shape[1]]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


def _random_affine(rng, scale):
    th = rng.uniform(-np.pi, np.pi)
    lin = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    if rng.random() < 0.5:
        lin = lin @ np.diag([-1.0, 1.0])
    return lin


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("scale", [2.0, 0.8, 0.3])  # upsampling, mild and strong (antialiased) downsampling
def test_warp_image_moves_a_dot_like_apply_affine(scale, engine):
    rng = np.random.default_rng(int(scale * 10))
    for _ in range(5):
        h, w, out = 120, 140, 48
        dot = rng.uniform([40, 40], [100, 80])
        lin = _random_affine(rng, scale)
        m = np.concatenate([lin, ((out - 1) / 2 - lin @ dot + rng.uniform(-5, 5, 2))[:, None]], axis=1)
        sigma = 1.5 if scale >= 0.5 else 5.0
        warped = tf.warp_image(_dot_image(h, w, dot, sigma), m, out, engine=engine)
        np.testing.assert_allclose(_centroid(warped), tf.apply_affine(m, dot), atol=0.15)


def test_affine_helpers_against_float64_formulas():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    p = rng.normal(size=(5, 2))
    hom = lambda m: np.vstack([m, [0, 0, 1]])  # noqa: E731
    np.testing.assert_allclose(tf.compose(a, b), (hom(a) @ hom(b))[:2], atol=1e-12)
    np.testing.assert_allclose(tf.invert(a), np.linalg.inv(hom(a))[:2], atol=1e-10)
    np.testing.assert_allclose(tf.apply_affine(a, p), (hom(a) @ np.c_[p, np.ones(5)].T).T[:, :2], atol=1e-12)


def test_crop_matches_geometry_camera_convention():
    from hmrjax.geometry import camera
    c, side, size = np.array([50.0, 40.0]), 64.0, 32
    m = tf.crop_transform(c, side, size)
    pts = np.array([[18.0, 8.0], [82.0, 72.0], [50.0, 40.0], [61.3, 22.9]])
    norm = np.asarray(camera.full_to_crop_keypoints(pts[None], c, side))[0]
    # crop px with integer pixel centres: crop-normalised n -> (n + 1) S / 2 - 0.5
    np.testing.assert_allclose(tf.apply_affine(m, pts), (norm + 1) * size / 2 - 0.5, atol=1e-4)


def test_eval_crop_keypoints_and_cliff_features_match_camera():
    from hmrjax.geometry import camera
    ex = _complete(fx.make_example(3))
    out = pipeline.prepare_example(ex, None, _cfg(), train=False)
    ref = np.asarray(camera.full_to_crop_keypoints(ex["keypoints2d"][None], ex["bbox_center"], ex["bbox_scale"]))[0]
    np.testing.assert_allclose(out["keypoints2d"][:, :2], ref[:, :2], atol=1e-5)
    inside = np.all(np.abs(ref[:, :2]) <= 1, axis=1)
    np.testing.assert_array_equal(out["keypoints2d"][:, 2], ex["keypoints2d"][:, 2] * inside)
    np.testing.assert_allclose(out["keypoints2d_full"], ex["keypoints2d"], atol=1e-4)
    cliff = camera.cliff_bbox_features(out["bbox_center"], out["bbox_scale"], out["image_size"], out["focal_length"][0])
    np.testing.assert_allclose(out["cliff_bbox"], np.asarray(cliff), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(6))
def test_augmented_3d_labels_project_onto_augmented_keypoints(seed):
    ex = _complete(fx.make_example(seed))
    out = pipeline.prepare_example(ex, np.random.default_rng(seed), _cfg(**{"geometry.flip_prob": float(seed % 2)}))
    proj = fx.project(out["joints3d"][fx.KP_FROM_JOINT], out["focal_length"], out["princpt"])
    np.testing.assert_allclose(out["keypoints2d_full"][:, :2], proj, atol=2e-3)
    # keypoints2d (crop-normalised) = crop_transform applied to keypoints2d_full
    crop_px = tf.apply_affine(out["crop_transform"], out["keypoints2d_full"][:, :2])
    np.testing.assert_allclose(out["keypoints2d"][:, :2], (crop_px + 0.5) * 2 / 32 - 1, atol=1e-5)
    # heatmap samples go through the same transforms (and the same left/right swap) as the keypoints
    from hmrjax.body import layouts
    kp_perm = layouts.flip_permutation("coco17") if seed % 2 else np.arange(17)
    full = tf.apply_affine(out["frame_transform"], ex["heatmap_samples"][kp_perm])
    crop = tf.apply_affine(out["crop_transform"], full)
    np.testing.assert_allclose(out["heatmap_samples"], (crop + 0.5) * 2 / 32 - 1, atol=1e-4)
    np.testing.assert_array_equal(out["heatmap_conf"], ex["heatmap_conf"][kp_perm])
    np.testing.assert_allclose(tf.apply_affine(out["frame_transform"], ex["keypoints2d"][kp_perm, :2]),
                               out["keypoints2d_full"][:, :2], atol=1e-4)
    assert out["has_transl"] == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_keypoints_land_on_the_dots_in_the_augmented_crop(seed):
    """Draw a dot at each keypoint, run the full geometric augmentation, find the dot again."""
    cfg = _cfg(**{"image_size": 64, "geometry.flip_prob": float(seed % 2), "geometry.scale_jitter": 0.2,
                  "warp_engine": ENGINES[seed % len(ENGINES)]})
    ex = _complete(fx.make_example(seed))
    base = pipeline.prepare_example(ex, np.random.default_rng(100 + seed), cfg)
    kp_perm = np.arange(17)
    if seed % 2:
        from hmrjax.body import layouts
        kp_perm = layouts.flip_permutation("coco17")
    checked = 0
    for i in range(17):
        xy = ex["keypoints2d"][kp_perm[i], :2]
        crop_xy = (base["keypoints2d"][i, :2] + 1) * 64 / 2 - 0.5
        if np.any(np.abs(base["keypoints2d"][i, :2]) > 0.8):
            continue
        dotted = dict(ex, image=_dot_image(96, 128, xy, sigma=2.0))
        out = pipeline.prepare_example(dotted, np.random.default_rng(100 + seed), cfg)
        img = out["img"] * np.float32(np.asarray(cfg.std) * 255) + np.float32(np.asarray(cfg.mean) * 255)
        np.testing.assert_allclose(_centroid(img), crop_xy, atol=0.25)
        checked += 1
    assert checked >= 5


def _plane(xy):
    return 2.0 + 0.01 * xy[..., 0] - 0.02 * xy[..., 1]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(3))
def test_dense_maps_use_the_image_transform(seed, engine):
    cfg = _cfg(**{"geometry.flip_prob": float(seed % 2), "warp_engine": engine})
    ex = fx.make_example(seed)
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float64)
    ex["depth"] = _plane(np.stack([xx, yy], -1)).astype(np.float32)   # a plane: bilinear warps it exactly
    ex["pseudo_depth"] = (xx / 128).astype(np.float32)
    ex["mask"] = (xx > 60.0).astype(np.uint8)                           # a half plane
    ex = _complete(ex)
    out = pipeline.prepare_example(ex, np.random.default_rng(seed), cfg)
    d = 16
    # reference: dense pixel centre -> crop-normalised -> augmented full px (camera.crop_to_full) -> original px
    from hmrjax.geometry import camera
    jj, ii = np.meshgrid(np.arange(d), np.arange(d))
    norm = np.stack([(jj + 0.5) * 2 / d - 1, (ii + 0.5) * 2 / d - 1], -1).reshape(-1, 2)
    aug = np.asarray(camera.crop_to_full_keypoints(norm[None], out["bbox_center"], out["bbox_scale"]), np.float64)[0]
    orig = tf.apply_affine(tf.invert(out["frame_transform"]), aug).reshape(d, d, 2)
    inside = (orig[..., 0] > 0.5) & (orig[..., 0] < 126.5) & (orig[..., 1] > 0.5) & (orig[..., 1] < 94.5)
    assert inside.sum() > 100
    np.testing.assert_allclose(out["depth"][inside], _plane(orig)[inside], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(out["pseudo_depth"][inside], (orig[..., 0] / 128)[inside], atol=2e-3)
    far = inside & (np.abs(orig[..., 0] - 60.0) > 1.0)
    np.testing.assert_array_equal(out["mask"][far], (orig[..., 0] > 60.0)[far].astype(np.float32))
    outside = (orig[..., 0] < -1.5) | (orig[..., 0] > 128.5) | (orig[..., 1] < -1.5) | (orig[..., 1] > 96.5)
    assert not out["depth"][outside].any() and not out["mask"][outside].any()


@pytest.mark.parametrize("engine", ENGINES)
def test_depth_edges_never_blend_with_background(engine):
    depth = np.zeros((40, 40), np.float32)
    depth[10:30, 12:28] = np.linspace(3.0, 3.5, 16, dtype=np.float32)[None]
    rng = np.random.default_rng(0)
    for _ in range(5):
        lin = _random_affine(rng, rng.uniform(0.5, 2.0))
        m = np.concatenate([lin, (15.5 - lin @ np.array([20.0, 20.0]))[:, None]], axis=1)
        out = tf.warp_depth(depth, m, 32, engine=engine)
        nz = out[out > 0]
        assert nz.size > 20 and nz.min() >= 3.0 - 1e-5 and nz.max() <= 3.5 + 1e-5


def test_part_labels_swap_sides_under_flip():
    ex = _complete(fx.make_example(2))
    cfg = _cfg(**{"geometry.flip_prob": 1.0, "geometry.rot_prob": 0.0, "geometry.scale_jitter": 0.0,
                  "geometry.shift_jitter": 0.0})
    plain = pipeline.prepare_example(ex, None, cfg, train=False)["part_seg"]
    flipped = pipeline.prepare_example(ex, np.random.default_rng(0), cfg)["part_seg"]
    # image left half shows the body's right side: after the mirror it shows the (relabelled) left side
    assert set(np.unique(plain)) == {0, fx.LEFT_PART, fx.RIGHT_PART}
    for seg in (plain, flipped):
        assert (seg[:, :8] == fx.RIGHT_PART).sum() > 5 and not (seg[:, :8] == fx.LEFT_PART).any()
        assert (seg[:, 8:] == fx.LEFT_PART).sum() > 5 and not (seg[:, 8:] == fx.RIGHT_PART).any()
    table = tf.part_flip_table("smpl24")
    assert table[fx.LEFT_PART] == fx.RIGHT_PART and table[fx.RIGHT_PART] == fx.LEFT_PART and table[0] == 0
    assert table[1 + 0] == 1 and table[1 + 1] == 1 + 2  # pelvis stays, left_hip -> right_hip
    np.testing.assert_array_equal(table[table], np.arange(256))


def test_rotate_pose_root_against_rotation_matrices():
    from hmrjax.geometry import rotations
    rng = np.random.default_rng(1)
    pose = rng.normal(0, 0.7, (24, 3)).astype(np.float32)
    for deg in (17.0, -40.0, 90.0):
        out = tf.rotate_pose(pose, deg)
        r0 = np.asarray(rotations.axis_angle_to_matrix(pose[0]), np.float64)
        r1 = np.asarray(rotations.axis_angle_to_matrix(out[0]), np.float64)
        th = np.deg2rad(deg)
        rz = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
        # schema poses carry the camera-frame root orientation: the roll left-multiplies it
        np.testing.assert_allclose(r1, rz @ r0, atol=1e-5)
        np.testing.assert_array_equal(out[1:], pose[1:])


def test_flip_pose_is_the_mirror_conjugate():
    from hmrjax.geometry import rotations
    from hmrjax.body import layouts
    perm = layouts.flip_permutation("smpl24")
    rng = np.random.default_rng(2)
    pose = rng.normal(0, 0.8, (24, 3)).astype(np.float32)
    out = tf.flip_pose(pose, perm)
    m = np.diag([-1.0, 1.0, 1.0])
    r_in = np.asarray(rotations.axis_angle_to_matrix(pose), np.float64)
    r_out = np.asarray(rotations.axis_angle_to_matrix(out), np.float64)
    np.testing.assert_allclose(r_out, m @ r_in[perm] @ m, atol=1e-5)
    np.testing.assert_allclose(tf.flip_pose(out, perm), pose, atol=0)


def test_gaussian_heatmaps_against_direct_formula():
    kp = np.array([[0.1, -0.3, 1.0], [-0.95, 0.9, 1.0], [0.5, 0.5, 0.0]])
    h, w, sigma = 12, 10, 1.7
    out = heatmaps.gaussian_heatmaps(kp, (h, w), sigma)
    assert out.shape == (3, h, w) and out.dtype == np.float32
    ref = np.zeros((3, h, w))
    for k in range(3):
        x = (kp[k, 0] + 1) / 2 * w - 0.5   # pixel j covers normalised [(2j/w) - 1, (2(j+1)/w) - 1]
        y = (kp[k, 1] + 1) / 2 * h - 0.5
        for i in range(h):
            for j in range(w):
                ref[k, i, j] = kp[k, 2] * np.exp(-((j - x) ** 2 + (i - y) ** 2) / (2 * sigma ** 2))
    np.testing.assert_allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_crops_outside_the_frame_are_zero(engine):
    img = np.full((20, 30, 3), 200, np.uint8)
    m = tf.crop_transform((500.0, 500.0), 40.0, 16)   # far outside
    assert not tf.warp_image(img, m, 16, engine=engine).any()
    assert not tf.warp_dense(np.ones((20, 30), np.uint8), m, 16, engine=engine).any()
    assert not tf.warp_depth(np.ones((20, 30), np.float32), m, 16, engine=engine).any()
    half = tf.warp_image(img, tf.crop_transform((30.0, 10.0), 20.0, 20), 20, engine=engine)   # right half outside
    assert (half[:-1, :8] == 200).all() and not half[:, 11:].any()   # last row/col: half outside


def test_unknown_or_missing_engine_is_a_clear_error():
    with pytest.raises(ValueError, match="warp engine must be 'auto', 'pil' or 'cv2'"):
        tf.resolve_engine("skimage")
    if "cv2" not in ENGINES:
        with pytest.raises(ImportError, match="needs opencv-python-headless"):
            tf.resolve_engine("cv2")
