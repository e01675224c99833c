"""Tests for hmrjax.geometry.camera against float64 numpy pinhole formulas and crop geometry."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hmrjax.geometry import camera

project = jax.jit(camera.perspective_projection)


def pinhole_np(X, fx, fy, cx, cy, R=np.eye(3), t=np.zeros(3)):
    """Float64 numpy pinhole with an explicit intrinsics matrix K: [N, 3] -> [N, 2]."""
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    p = (K @ (R @ np.asarray(X, np.float64).T + t[:, None])).T
    return p[:, :2] / p[:, 2:]


def body_points(seed, n=20, depth_extent=0.3):
    """A person-sized point cloud around the root (metres), z in [-depth_extent, depth_extent]."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(n, 3)) * np.array([0.5, 0.9, depth_extent])
    return pts


def test_perspective_projection_matches_numpy_pinhole():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 12, 3)) + np.array([0, 0, 6.0])
    R = np.stack([np.eye(3), Rotation.from_rotvec([0.1, -0.2, 0.05]).as_matrix()])
    t = np.array([[0.1, -0.2, 0.5], [0.0, 0.3, 1.0]])
    f = np.array([[1000.0, 1100.0], [900.0, 900.0]])
    c = np.array([[320.0, 240.0], [100.0, 50.0]])
    with jax.enable_x64(True):
        uv = np.asarray(project(jnp.asarray(X), jnp.asarray(f), jnp.asarray(c), jnp.asarray(R), jnp.asarray(t)))
        uv_scalar_f = np.asarray(project(jnp.asarray(X), 800.0, jnp.asarray(c)))
        uv_f1 = np.asarray(project(jnp.asarray(X), jnp.asarray(f[:, :1]), None))
    for b in range(2):
        np.testing.assert_allclose(uv[b], pinhole_np(X[b], *f[b], *c[b], R[b], t[b]), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(uv_scalar_f[b], pinhole_np(X[b], 800.0, 800.0, *c[b]), atol=1e-9)
        np.testing.assert_allclose(uv_f1[b], pinhole_np(X[b], f[b, 0], f[b, 0], 0, 0), atol=1e-9)
    uv32 = project(jnp.asarray(X, jnp.float32), jnp.asarray(f, jnp.float32), jnp.asarray(c, jnp.float32))
    assert uv32.dtype == jnp.float32 and uv32.shape == (2, 12, 2)
    np.testing.assert_allclose(np.asarray(uv32[1]), pinhole_np(X[1], *f[1], *c[1]), rtol=1e-5)


def test_projection_depth_clamp_is_finite_with_finite_gradient():
    X = jnp.asarray([[0.1, 0.2, 0.0], [0.1, -0.2, -2.0], [0.3, 0.1, 1e-9]])
    uv = project(X, 1000.0, jnp.asarray([0.0, 0.0]))
    assert np.isfinite(np.asarray(uv)).all()
    np.testing.assert_allclose(np.asarray(uv[0]), [0.1 * 1000 / 1e-4, 0.2 * 1000 / 1e-4], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(uv[1]), [0.1 * 1000 / -2.0, -0.2 * 1000 / -2.0], rtol=1e-6)
    g = jax.jit(jax.grad(lambda x: jnp.sum(camera.perspective_projection(x, 1000.0))))(X)
    assert np.isfinite(np.asarray(g)).all()


def test_default_focal_length():
    size = np.array([[640.0, 480.0], [1920.0, 1080.0]])
    np.testing.assert_allclose(np.asarray(camera.default_focal_length(jnp.asarray(size, jnp.float32))),
                               np.hypot(size[:, 0], size[:, 1]), rtol=1e-7)


def test_weak_perspective_round_trip_and_geometry():
    cam = np.array([[0.9, 0.05, 0.2], [1.2, -0.1, 0.0], [0.6, 0.0, -0.3]])
    f, crop = 5000.0, 224.0
    with jax.enable_x64(True):
        t = np.asarray(camera.weak_perspective_to_translation(jnp.asarray(cam), f, crop))
        cam_rt = np.asarray(camera.translation_to_weak_perspective(jnp.asarray(t), f, crop))
    np.testing.assert_allclose(t[:, 2], 2 * f / (crop * cam[:, 0] + 1e-9), rtol=1e-12)  # SPIN's formula
    np.testing.assert_allclose(t[:, :2], cam[:, 1:])
    np.testing.assert_allclose(cam_rt, cam, atol=1e-12)
    # geometry: points in the plane z = 0 (root depth) project with the perspective camera
    # (focal f, principal point at the crop centre) to crop pixels (s (X + t_xy) + 1) * crop / 2.
    X = body_points(1) * np.array([1, 1, 0])
    for b in range(3):
        uv = pinhole_np(X, f, f, crop / 2, crop / 2, t=t[b])
        weak = (cam[b, 0] * (X[:, :2] + cam[b, 1:]) + 1) * crop / 2
        np.testing.assert_allclose(uv, weak, atol=1e-7)  # up to the eps = 1e-9 in t_z


def test_cliff_full_camera_reproduces_crop_projection():
    """Full-frame projection with the converted translation == crop projection mapped to the image."""
    W, H = 1280.0, 720.0
    f = float(np.hypot(W, H))
    centers = np.array([[900.0, 300.0], [200.0, 500.0], [640.0, 360.0]])
    scales = np.array([300.0, 150.0, 500.0])  # crop side in pixels
    cams = np.array([[0.8, 0.1, -0.2], [1.1, -0.05, 0.3], [0.7, 0.0, 0.0]])
    size = np.array([W, H])
    with jax.enable_x64(True):
        T = np.asarray(camera.cliff_crop_cam_to_full_translation(
            jnp.asarray(cams), jnp.asarray(centers), jnp.asarray(scales), jnp.asarray(size), f))
        cams_rt = np.asarray(camera.cliff_full_translation_to_crop_cam(
            jnp.asarray(T), jnp.asarray(centers), jnp.asarray(scales), jnp.asarray(size), f))
        X_plane = body_points(2) * np.array([1, 1, 0])
        X_3d = body_points(3, depth_extent=0.25)
        for b in range(3):
            ndc = cams[b, 0] * (X_plane[:, :2] + cams[b, 1:])  # crop weak perspective, [-1, 1]
            full_from_crop = np.asarray(camera.crop_to_full_keypoints(
                jnp.asarray(ndc), jnp.asarray(centers[b]), scales[b]))
            uv = pinhole_np(X_plane, f, f, W / 2, H / 2, t=T[b])
            np.testing.assert_allclose(uv, full_from_crop, atol=1e-7)  # up to eps = 1e-9 in bs
            # 3D points: only the perspective effect of the depth relief X_z remains,
            # u_full - u_crop = f p_xy (1 / p_z - 1 / t_z) with p = X + T
            ndc3 = cams[b, 0] * (X_3d[:, :2] + cams[b, 1:])
            full3 = np.asarray(camera.crop_to_full_keypoints(jnp.asarray(ndc3), jnp.asarray(centers[b]), scales[b]))
            uv3 = pinhole_np(X_3d, f, f, W / 2, H / 2, t=T[b])
            p = X_3d + T[b]
            np.testing.assert_allclose(uv3 - full3, f * p[:, :2] * (1 / p[:, 2:] - 1 / T[b, 2]), atol=1e-8)
            assert np.abs(uv3 - full3).max() < 0.05 * scales[b]  # small next to the box for a body
    np.testing.assert_allclose(cams_rt, cams, atol=1e-12)
    # CLIFF formula as written in its code (scale * 200 there = our pixel scale)
    bs = scales * cams[:, 0] + 1e-9
    np.testing.assert_allclose(T[:, 2], 2 * f / bs, rtol=1e-12)
    np.testing.assert_allclose(T[:, 0], cams[:, 1] + 2 * (centers[:, 0] - W / 2) / bs, rtol=1e-12)
    np.testing.assert_allclose(T[:, 1], cams[:, 2] + 2 * (centers[:, 1] - H / 2) / bs, rtol=1e-12)


def test_cliff_bbox_features():
    centers = np.array([[900.0, 300.0], [200.0, 500.0]])
    scales = np.array([300.0, 150.0])
    size = np.array([[1280.0, 720.0], [640.0, 640.0]])
    f = np.array([1468.6, 905.1])
    feats = np.asarray(camera.cliff_bbox_features(jnp.asarray(centers), jnp.asarray(scales),
                                                  jnp.asarray(size), jnp.asarray(f)))
    expected = np.stack([centers[:, 0] - size[:, 0] / 2, centers[:, 1] - size[:, 1] / 2, scales], -1) / f[:, None]
    np.testing.assert_allclose(feats, expected, rtol=1e-6)


def test_body_camera_frame_conversion():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(5, 3))
    R = Rotation.random(5, random_state=5).as_matrix()
    rx180 = Rotation.from_euler("x", 180, degrees=True)
    with jax.enable_x64(True):
        Xc = np.asarray(camera.body_to_camera_frame(jnp.asarray(X)))
        Xb = np.asarray(camera.camera_to_body_frame(jnp.asarray(Xc)))
        Rc = np.asarray(camera.body_to_camera_rotation(jnp.asarray(R)))
    np.testing.assert_allclose(Xc, rx180.apply(X), atol=1e-12)
    np.testing.assert_allclose(Xb, X, atol=1e-15)
    np.testing.assert_allclose(Rc, rx180.as_matrix() @ R, atol=1e-12)
    np.testing.assert_allclose(np.asarray(camera.BODY_TO_CAMERA), rx180.as_matrix(), atol=1e-12)
    # a y-up body's head (y > 0) ends up above the root in the image (smaller v) in front of the camera
    head = camera.body_to_camera_frame(jnp.asarray([0.0, 0.8, 0.0])) + jnp.asarray([0.0, 0.0, 5.0])
    uv = camera.perspective_projection(head[None], 1000.0, jnp.asarray([320.0, 240.0]))
    assert float(uv[0, 1]) < 240.0


def test_crop_full_keypoints_round_trip_and_affine_crop():
    rng = np.random.default_rng(6)
    kp = np.concatenate([rng.uniform(0, 640, size=(2, 17, 2)), rng.integers(0, 2, size=(2, 17, 1))], -1)
    center = np.array([[300.0, 200.0], [100.5, 400.25]])
    scale = np.array([250.0, 96.0])
    with jax.enable_x64(True):
        crop = np.asarray(camera.full_to_crop_keypoints(jnp.asarray(kp), jnp.asarray(center), jnp.asarray(scale)))
        back = np.asarray(camera.crop_to_full_keypoints(jnp.asarray(crop), jnp.asarray(center), jnp.asarray(scale)))
    np.testing.assert_allclose(back, kp, atol=1e-12)
    np.testing.assert_array_equal(crop[..., 2], kp[..., 2])  # visibility passes through
    # independent formulation: resample the crop to R x R pixels, then normalise pixel edges to [-1, 1]
    res = 256
    for b in range(2):
        top_left = center[b] - scale[b] / 2
        pix = (kp[b, :, :2] - top_left) * res / scale[b]
        np.testing.assert_allclose(crop[b, :, :2], pix / res * 2 - 1, atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"`points` must have shape \[\.\.\., D, 3\]"):
        camera.perspective_projection(jnp.zeros((4, 2)), 1000.0)
    with pytest.raises(ValueError, match="`focal_length` must be a scalar"):
        camera.perspective_projection(jnp.zeros((4, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"`image_size` must have shape \[\.\.\., 2\]"):
        camera.default_focal_length(jnp.ones(3))
    with pytest.raises(ValueError, match="`keypoints` must have shape"):
        camera.crop_to_full_keypoints(jnp.ones((4, 1)), jnp.zeros(2), 1.0)
