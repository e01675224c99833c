"""Synthetic scenes (data_pipelines/synthetic): labels checked against independent references.

References: the JAX body model (`hmrjax.body.load`) and the model's COCO-17 regressor for joints and keypoints,
a float64 numpy ray caster (Moller-Trumbore) for depth and visibility, scipy Euler decompositions for the
joint limits, analytic ray/plane depth for the floor, and the schema validator for fields and dtypes.
Examples are rendered at 128 x 128 to keep the file fast.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_pipelines import schema
from data_pipelines.synthetic import poses, pseudo_depth, render_example, scene

SIZE = (128, 128)
CASES = [("train", i) for i in range(4)] + [("test_occluded", i) for i in range(3)] + [("test_ood", i) for i in range(2)]


@functools.lru_cache(maxsize=None)
def _example(split, index):
    return render_example.render_example(7, split, index, SIZE)


@functools.lru_cache(maxsize=1)
def _jax_body():
    import hmrjax.body
    return hmrjax.body.load("anny_lite")


@functools.lru_cache(maxsize=None)
def _posed(split, index):
    """Camera-frame vertices [V, 3] and joints [J, 3] from the JAX body model (float64), stored transl added."""
    ex = _example(split, index)
    out = _jax_body()(pose=ex["pose"][None], betas=ex["betas"][None])
    t = ex["transl"].astype(np.float64)
    return np.asarray(out.vertices[0], np.float64) + t, np.asarray(out.joints[0], np.float64) + t


def _project(ex, pts):
    f = ex["focal_length"].astype(np.float64)
    w, h = ex["image_size"].astype(np.float64)
    return pts[:, :2] / pts[:, 2:] * f + np.array([w / 2, h / 2])


def _ray_depth(verts, faces, rays):
    """Nearest hit depth (z) of camera rays [R, 3] with the mesh, float64 Moller-Trumbore (inf: miss)."""
    tri = verts[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    out = np.full(len(rays), np.inf)
    for r, d in enumerate(rays):
        p = np.cross(d, e2)
        det = (e1 * p).sum(1)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = -tri[:, 0]
        u = (s * p).sum(1) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        t = (e2 * q).sum(1) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        if hit.any():
            out[r] = (t[hit] * d[2]).min()
    return out


def _pixel_rays(ex, cols, rows):
    f = float(ex["focal_length"][0])
    w, h = ex["image_size"]
    return np.stack([(cols - w / 2) / f, (rows - h / 2) / f, np.ones(len(cols))], -1)


# ------------------------------------------------------------------------------------------ fields
@pytest.mark.parametrize("split,index", CASES)
def test_schema_fields_and_dtypes(split, index):
    ex = _example(split, index)
    valid = schema.validate_example(ex, f"{split}[{index}]", num_joints=24, num_betas=10)
    h, w = SIZE[1], SIZE[0]
    want = {"image": ((h, w, 3), np.uint8), "mask": ((h, w), np.uint8), "part_seg": ((h, w), np.uint8),
            "depth": ((h, w), np.float32), "pseudo_depth": ((h, w), np.float32), "pose": ((24, 3), np.float32),
            "betas": ((10,), np.float32), "transl": ((3,), np.float32), "joints3d": ((24, 3), np.float32),
            "keypoints2d": ((17, 3), np.float32), "bbox_center": ((2,), np.float32), "bbox_scale": ((), np.float32),
            "focal_length": ((2,), np.float32), "image_size": ((2,), np.float32)}
    for key, (shape, dtype) in want.items():
        assert np.shape(ex[key]) == shape and np.asarray(ex[key]).dtype == dtype, key
    for flag in ("has_pose", "has_betas", "has_transl", "has_joints3d", "has_keypoints2d", "has_depth", "has_mask",
                 "has_part_seg", "has_pseudo_depth"):
        assert valid[flag] == 1.0
    assert set(np.unique(ex["mask"])) <= {0, 1}
    assert ex["part_seg"].max() <= 24 and np.array_equal(ex["part_seg"] > 0, ex["mask"] > 0)
    assert np.array_equal(ex["depth"] > 0, ex["mask"] > 0)
    assert 0.0 <= ex["pseudo_depth"].min() and ex["pseudo_depth"].max() <= 1.0
    assert np.all(np.abs(ex["betas"]) <= render_example.BETA_CLIP)
    assert ex["focal_length"][0] == ex["focal_length"][1]
    assert np.array_equal(ex["image_size"], [w, h])


def test_bbox_is_the_padded_box_of_the_projected_mesh():
    for split, index in CASES[:4]:
        ex = _example(split, index)
        uv = _project(ex, _posed(split, index)[0])
        lo, hi = uv.min(0), uv.max(0)
        np.testing.assert_allclose(ex["bbox_center"], (lo + hi) / 2, atol=0.05)
        np.testing.assert_allclose(ex["bbox_scale"], 1.2 * (hi - lo).max(), rtol=1e-4)


# ------------------------------------------------------------------------------------------ 3D / 2D labels
@pytest.mark.parametrize("split,index", CASES)
def test_joints3d_equal_body_model_joints_plus_transl(split, index):
    ex = _example(split, index)
    _, joints = _posed(split, index)
    np.testing.assert_allclose(ex["joints3d"], joints, atol=2e-5)


@pytest.mark.parametrize("split,index", CASES)
def test_keypoints2d_are_projected_mesh_regressed_coco17(split, index):
    from hmrjax.body import keypoints
    ex = _example(split, index)
    verts, _ = _posed(split, index)
    reg = keypoints.keypoint_regressor("anny_lite", "coco17", dtype=np.float64)
    uv = _project(ex, reg @ verts)
    assert np.abs(uv - ex["keypoints2d"][:, :2]).max() < 0.5
    assert set(np.unique(ex["keypoints2d"][:, 2])) <= {0.0, 1.0}


def test_numpy_body_matches_jax_body_model():
    from data_pipelines.synthetic.lbs import NumpyBody
    body = NumpyBody("anny_lite")
    rng = np.random.default_rng(3)
    pose = rng.normal(0, 0.4, (24, 3))
    betas = rng.normal(0, 1, 10)
    v, j = body.forward(pose, betas)
    out = _jax_body()(pose=pose[None].astype(np.float32), betas=betas[None].astype(np.float32))
    np.testing.assert_allclose(v, np.asarray(out.vertices[0]), atol=2e-5)
    np.testing.assert_allclose(j, np.asarray(out.joints[0]), atol=2e-5)


# ------------------------------------------------------------------------------------------ depth and visibility
@pytest.mark.parametrize("split,index", [("train", 0), ("train", 1), ("test_occluded", 0)])
def test_depth_equals_raycast_person_depth(split, index):
    ex = _example(split, index)
    verts, _ = _posed(split, index)
    faces = _jax_body().faces
    rows, cols = np.nonzero(ex["depth"] > 0)
    pick = np.random.default_rng(0).choice(len(rows), min(150, len(rows)), replace=False)
    rows, cols = rows[pick], cols[pick]
    ref = _ray_depth(verts, np.asarray(faces), _pixel_rays(ex, cols.astype(float), rows.astype(float)))
    hit = np.isfinite(ref)      # a pixel centre within 1/256 px of the silhouette may miss (vertex snapping)
    assert hit.mean() > 0.97
    np.testing.assert_allclose(ex["depth"][rows, cols][hit], ref[hit], atol=2e-3)
    if ex["num_occluders"] == 0:  # no occluder: a pixel without person depth is one the person does not cover
        r0, c0 = np.nonzero(ex["depth"] == 0)
        pick = np.random.default_rng(1).choice(len(r0), 300, replace=False)
        miss = _ray_depth(verts, np.asarray(faces), _pixel_rays(ex, c0[pick].astype(float), r0[pick].astype(float)))
        assert np.isinf(miss).mean() > 0.99


def test_depth_at_visible_vertex_pixels_equals_vertex_depth():
    """Vertices the ray caster sees (nothing nearer on their own ray), away from the silhouette: the depth
    map at their pixel equals their depth up to the surface slope across < 0.71 px."""
    ex = _example("train", 2)
    verts, _ = _posed("train", 2)
    faces = np.asarray(_jax_body().faces)
    uv = _project(ex, verts)
    col, row = np.round(uv).astype(int).T
    h, w = ex["depth"].shape
    inside = (col >= 1) & (col < w - 1) & (row >= 1) & (row < h - 1)
    m = ex["mask"] > 0
    interior = np.zeros_like(inside)
    interior[inside] = (m[row[inside], col[inside]] & m[row[inside] - 1, col[inside]] & m[row[inside] + 1, col[inside]]
                        & m[row[inside], col[inside] - 1] & m[row[inside], col[inside] + 1])
    ids = np.nonzero(interior)[0]
    ids = np.random.default_rng(0).choice(ids, min(200, len(ids)), replace=False)
    rays = verts[ids] / verts[ids, 2:]
    first = _ray_depth(verts, faces, rays)
    seen = ids[first >= verts[ids, 2] - 1e-4]
    assert len(seen) > 30
    diff = np.abs(ex["depth"][row[seen], col[seen]] - verts[seen, 2])
    assert np.median(diff) < 0.01 and np.percentile(diff, 90) < 0.03


@pytest.mark.parametrize("split,index", CASES)
def test_keypoint_visibility_agrees_with_depth_buffer(split, index):
    """visible <=> inside the image, the person is the first surface at the keypoint's pixel, and that surface
    is within tol_k (2 x the keypoint's depth under the rest surface + 4 cm, from the asset) of the keypoint."""
    from hmrjax.body import keypoints
    ex = _example(split, index)
    verts, _ = _posed(split, index)
    reg = keypoints.keypoint_regressor("anny_lite", "coco17", dtype=np.float64)
    kp3 = reg @ verts
    from hmrjax.body import io
    rest = io.read_model_file(io.resolve_model_path("anny_lite"))["v_template"].astype(np.float64)
    kp_rest = reg @ rest
    tol = 2 * np.sqrt(((kp_rest[:, None] - rest[None]) ** 2).sum(-1)).min(1) + 0.04
    uv = _project(ex, kp3)
    h, w = ex["depth"].shape
    for k in range(17):
        c, r = int(np.round(uv[k, 0])), int(np.round(uv[k, 1]))
        inside = 0 <= c < w and 0 <= r < h
        d = ex["depth"][r, c] if inside else 0.0
        expected = inside and d > 0 and d >= kp3[k, 2] - tol[k]
        assert ex["keypoints2d"][k, 2] == float(expected), (k, inside, d, kp3[k, 2], tol[k])


def test_occluded_split_hides_more_keypoints_and_has_occluders():
    occ = [render_example.render_example(11, "test_occluded", i, (96, 96)) for i in range(6)]
    plain = [render_example.render_example(11, "train", i, (96, 96)) for i in range(6)]
    assert all(ex["num_occluders"] >= 1 for ex in occ)
    assert np.mean([ex["keypoints2d"][:, 2].mean() for ex in occ]) < np.mean(
        [ex["keypoints2d"][:, 2].mean() for ex in plain])


def test_frontal_standing_person_has_visible_front_keypoints():
    """A person facing the camera, unoccluded: the face, shoulders, hips, knees and ankles are all visible."""
    from hmrjax.render.raster import Camera, rasterize
    body = render_example.get_body()
    pose = np.zeros((24, 3))
    pose[0] = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0])).as_rotvec()  # face the camera (body +z -> camera -z)
    pose[16], pose[17] = [0, 0, -1.2], [0, 0, 1.2]              # arms down
    verts, _ = body.forward(pose, np.zeros(10))
    verts = verts + [0.0, 0.0, 3.0]
    cam = Camera(focal=(300.0, 300.0), image_size=(256, 256))
    frags = rasterize([verts], [body.faces], cam)
    kp = body.keypoints(verts)
    vis = render_example.keypoint_visibility(cam.project(kp), kp[:, 2], np.where(frags.mask, frags.depth, 0),
                                             render_example.keypoint_tolerances(body))
    assert vis[[0, 1, 2, 5, 6, 11, 12, 13, 14, 15, 16]].all(), vis


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_example_and_different_index_differs():
    a = render_example.render_example(5, "train", 3, (64, 64))
    b = render_example.render_example(5, "train", 3, (64, 64))
    c = render_example.render_example(5, "train", 4, (64, 64))
    d = render_example.render_example(5, "validation", 3, (64, 64))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["pose"], c["pose"]) and not np.array_equal(a["pose"], d["pose"])


# ------------------------------------------------------------------------------------------ pose prior
@pytest.mark.parametrize("family", poses.FAMILIES)
def test_poses_respect_joint_limits(family):
    rng = np.random.default_rng(0)
    for _ in range(15):
        pose, _ = poses.sample_pose(rng, family)
        e = Rotation.from_rotvec(pose[1:]).as_euler("XYZ")      # independent decomposition (scipy, |b| <= 90)
        # the other Euler triple of the same rotation: (a + 180, 180 - b, c + 180), wrapped
        alt = np.stack([e[:, 0] + np.pi, np.pi - e[:, 1], e[:, 2] + np.pi], -1)
        alt = (alt + np.pi) % (2 * np.pi) - np.pi
        lo, hi = poses.JOINT_LIMITS[1:, :, 0] - 1e-6, poses.JOINT_LIMITS[1:, :, 1] + 1e-6
        ok = np.all((e >= lo) & (e <= hi), 1) | np.all((alt >= lo) & (alt <= hi), 1)
        assert ok.all(), [poses.JOINTS[j + 1] for j in np.nonzero(~ok)[0]]


@pytest.mark.parametrize("family", poses.COMMON_FAMILIES)
def test_common_families_do_not_self_intersect(family):
    body = render_example.get_body()
    rng = np.random.default_rng(1)
    for _ in range(10):
        pose, tries = poses.sample_pose(rng, family, forward_joints=lambda p: body.forward(p, np.zeros(10))[1])
        assert not poses.self_intersects(body.forward(pose, np.zeros(10))[1])


def test_self_intersection_detector():
    body = render_example.get_body()
    rest = np.zeros((24, 3))
    assert not poses.self_intersects(body.forward(rest, np.zeros(10))[1])
    # left arm swung forward and across, elbow fully bent: the hand ends inside the chest
    e = np.zeros((24, 3))
    e[16] = np.deg2rad([0, -80, 0])         # left arm forward
    e[18] = np.deg2rad([0, -150, 0])
    pose = poses.euler_to_axis_angle(e)
    joints = body.forward(pose, np.zeros(10))[1]
    hand = joints[poses.J["left_wrist"]]
    torso = joints[[poses.J["pelvis"], poses.J["neck"]]]
    assert abs(hand[0] - torso[0, 0]) < 0.15   # the construction really puts the wrist at the body's midline
    assert poses.self_intersects(joints)


def test_euler_convention_signs():
    """The documented signs: left hip flexion (a < 0) moves the knee forward (+z), knee flexion (a > 0) moves
    the ankle back, lowering the left arm (c < 0) moves the elbow down."""
    body = render_example.get_body()
    for joint, euler, moved, axis, sign in ((1, [-0.8, 0, 0], 4, 2, +1), (4, [1.0, 0, 0], 7, 2, -1),
                                            (16, [0, 0, -1.0], 18, 1, -1)):
        e = np.zeros((24, 3))
        e[joint] = euler
        rest = body.forward(np.zeros((24, 3)), np.zeros(10))[1]
        posed = body.forward(poses.euler_to_axis_angle(e), np.zeros(10))[1]
        assert sign * (posed[moved, axis] - rest[moved, axis]) > 0.05


# ------------------------------------------------------------------------------------------ depth maps
def test_floor_depth_matches_analytic_plane():
    f, size = 200.0, (64, 48)
    up = np.array([0.0, -1.0, 0.0])                       # level camera, 1.5 m above the floor
    depth, floor, _ = pseudo_depth.background_geometry(f, (32.0, 24.0), size, up, np.array([0.0, 1.5, 4.0]), 30.0)
    rows = np.arange(48, dtype=np.float64)
    expect = np.where(rows > 24, 1.5 * f / np.maximum(rows - 24, 1e-9), np.inf)
    expect = np.where(expect < 30.0, expect, 30.0)
    np.testing.assert_allclose(depth[:, 10], expect, rtol=1e-9)
    assert floor[45, 10] and not floor[30, 10] and not floor[10, 10]   # row 30: the floor is beyond the wall


def test_pseudo_depth_is_relative_inverse_depth():
    z = np.full((64, 64), 10.0)
    z[20:44, 20:44] = 2.0
    ramp = np.tile(np.linspace(2.0, 20.0, 64), (64, 1))
    for depth in (z, ramp):
        out = pseudo_depth.pseudo_depth(depth, np.random.default_rng(0))
        assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    out = pseudo_depth.pseudo_depth(z, np.random.default_rng(0))
    assert out[28:36, 28:36].mean() > out[:10, :10].mean() + 0.3    # near = high
    out = pseudo_depth.pseudo_depth(ramp, np.random.default_rng(1))
    from scipy.stats import spearmanr
    assert spearmanr(out.mean(0), 1.0 / ramp[0]).statistic > 0.95
    with pytest.raises(ValueError, match="finite positive"):
        pseudo_depth.pseudo_depth(np.zeros((4, 4)), np.random.default_rng(0))


def test_motion_blur_keeps_flat_images_and_spreads_an_impulse():
    flat = np.full((32, 32, 3), 100, np.uint8)
    np.testing.assert_array_equal(scene.motion_blur(flat, 7, 0.3), flat)
    imp = np.zeros((33, 33, 3), np.uint8)
    imp[16, 16] = 255
    out = scene.motion_blur(imp, 9, 0.0).astype(np.float64)
    assert out[16].sum() > 0.7 * out.sum() and (out[16, :, 0] > 0).sum() >= 7     # along x only


def test_cylinder_is_closed_and_outward():
    v, f = scene.cylinder(0.5, 2.0, 12)
    tri = v[f].astype(np.float64)
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    np.testing.assert_allclose(vol, np.pi * 0.25 * 2.0 * np.sin(2 * np.pi / 12) * 12 / (2 * np.pi), rtol=1e-6)


def test_front_back_appearance_cues():
    """The person's albedo carries the cues a photo has (release 1.1.0): eyes and lips on the front of the head
    only, hair on the back of the head, and, over many draws, necklines and chest prints on the front of the top
    only (the back of the torso keeps the top's own colours)."""
    from data_pipelines.synthetic import scene
    body = render_example.get_body()
    rest, parts = body.rest_vertices, body.vertex_parts
    head = body.j_regressor[15] @ rest
    on_head = parts == 15
    front_face = on_head & (rest[:, 2] > head[2] + 0.05)
    back_head = on_head & (rest[:, 2] < head[2] - 0.03) & (rest[:, 1] < head[1] + 0.05)
    torso = np.isin(parts, (3, 6, 9, 13, 14))
    chest, back = torso & (rest[:, 2] > 0.06), torso & (rest[:, 2] < -0.06)
    dark_front, hair_back, chest_changed, back_changed = [], [], 0, 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        col = scene.person_colors(rng, rest, parts, head).astype(np.float64)
        skin = col[parts == 12].mean(0)                          # the neck is never clothed
        dark_front.append(np.mean(np.abs(col[front_face] - skin).sum(1) > 0.3))
        hair_back.append(np.mean(np.abs(col[back_head] - skin).sum(1) > 1e-6))
        # the top's colours: what the back of the torso shows; the front differs where a cue was painted
        top = {tuple(c) for c in np.round(col[back], 5)}
        chest_changed += any(tuple(c) not in top for c in np.round(col[chest], 5))
        back_changed += any(np.allclose(c, skin) for c in col[back])
    assert 0.02 < np.median(dark_front) < 0.5          # eyes, brows, lips: a part of the face, not all of it
    assert np.mean(np.asarray(hair_back) > 0.5) > 0.85  # hair covers the back of the head nearly always
    assert chest_changed > 20 and back_changed == 0
