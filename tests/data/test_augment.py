"""data_pipelines.augment: colour matrix against per-pixel float64 formulas, each op's effect, determinism,
and that occlusion never touches labels."""
import colorsys

import numpy as np
import pytest

import data_fixtures as fx
from data_pipelines import augment, pipeline, schema

GRAY = np.array([0.299, 0.587, 0.114])


def _only(**probs):
    cfg = augment.default_config()
    for key in ("color_prob", "blur_prob", "noise_prob", "jpeg_prob", "occlusion_prob"):
        cfg[key] = probs.get(key, 0.0)
    return cfg


def _image(seed=0, size=32):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([xx * 6, yy * 6, (xx + yy) * 3], -1) + rng.integers(0, 40, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_color_matrix_brightness_contrast_saturation_against_per_pixel_formulas():
    x = _image().reshape(-1, 3).astype(np.float64)
    b, c, s = 1.2, 0.7, 1.4
    # reference: each step on every pixel, in order
    y = x * b
    m = (y @ GRAY).mean()
    y = (y - m) * c + m
    g = (y @ GRAY)[:, None]
    y = g + s * (y - g)
    a, off = augment.color_matrix(b, c, s, 0.0, float((x @ GRAY).mean()))
    np.testing.assert_allclose(x @ a.T + off, y, atol=1e-9)
    a, off = augment.color_matrix(1.0, 1.0, 0.0, 0.0, 0.0)   # saturation 0: gray
    out = x @ a.T + off
    np.testing.assert_allclose(out, np.repeat((x @ GRAY)[:, None], 3, 1), atol=1e-9)


@pytest.mark.parametrize("deg", [15.0, -60.0, 180.0])
def test_hue_rotation_keeps_luma_and_rotates_chroma(deg):
    rgb = np.random.default_rng(1).uniform(0, 1, (50, 3))
    a, off = augment.color_matrix(1.0, 1.0, 1.0, deg, 0.5)
    out = rgb @ a.T + off
    # colorsys's YIQ (an independent implementation, FCC coefficients): luma kept, chroma turned by deg
    yiq_in = np.array([colorsys.rgb_to_yiq(*p) for p in rgb])
    yiq_out = np.array([colorsys.rgb_to_yiq(*p) for p in out])
    np.testing.assert_allclose(yiq_out[:, 0], yiq_in[:, 0], atol=0.01)
    ang = np.angle((yiq_out[:, 1] + 1j * yiq_out[:, 2]) / (yiq_in[:, 1] + 1j * yiq_in[:, 2]), deg=True)
    strong = np.hypot(yiq_in[:, 1], yiq_in[:, 2]) > 0.1
    np.testing.assert_allclose(ang[strong], deg if deg != 180.0 else np.sign(ang[strong]) * 180.0, atol=3.0)
    a360, off360 = augment.color_matrix(1.0, 1.0, 1.0, 360.0, 0.5)
    np.testing.assert_allclose(a360, np.eye(3), atol=1e-9)


def test_photometric_is_deterministic_per_seed_and_off_when_disabled():
    img = _image()
    cfg = augment.default_config()
    for k in ("color_prob", "blur_prob", "noise_prob", "jpeg_prob", "occlusion_prob"):
        cfg[k] = 1.0
    a = augment.photometric(img, np.random.default_rng(3), cfg)
    b = augment.photometric(img, np.random.default_rng(3), cfg)
    c = augment.photometric(img, np.random.default_rng(4), cfg)
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1.0
    cfg.enabled = False
    assert augment.photometric(img, np.random.default_rng(3), cfg) is img


def test_noise_blur_jpeg_each_do_what_they_say():
    img = _image(size=64)
    rng = np.random.default_rng(0)
    noisy = augment.photometric(img, rng, _only(noise_prob=1.0)).astype(np.float64)
    diff = noisy - img
    unclipped = (img > 30) & (img < 225)
    lo, hi = augment.default_config().noise_std
    assert lo * 0.8 < diff[unclipped].std() < hi * 1.2 and abs(diff[unclipped].mean()) < 0.5
    blurred = augment.photometric(img, np.random.default_rng(0), _only(blur_prob=1.0)).astype(np.float64)
    hf = lambda x: np.abs(np.diff(x, axis=1)).mean()  # noqa: E731
    assert hf(blurred) < 0.8 * hf(img.astype(np.float64))
    rng = np.random.default_rng(5)
    jpeg = augment.photometric(img, rng, _only(jpeg_prob=1.0))
    rng = np.random.default_rng(5)
    rng.random()  # the probability draw
    q = int(rng.integers(*augment.default_config().jpeg_quality, endpoint=True))
    np.testing.assert_array_equal(jpeg, augment.jpeg_recompress(img, q))
    assert not np.array_equal(jpeg, img)


def test_occluders_change_a_bounded_region():
    img = np.full((40, 40, 3), 128, np.uint8)
    rng = np.random.default_rng(2)
    for _ in range(10):
        out = augment.occlude(img, rng, 1, (0.25, 0.25))
        changed = np.argwhere((out != img).any(-1))
        assert len(changed) <= 10 * 10
        if len(changed):
            assert (changed.max(0) - changed.min(0) < 10).all()


def test_occlusion_does_not_change_keypoint_visibility():
    ex = schema.complete_example(schema.validate_example(fx.make_example(4), 0), num_joints=24, num_betas=10,
                                 num_samples=4)
    outs = []
    for prob in (0.0, 1.0):
        cfg = fx.test_config(**{"augment.occlusion_prob": prob, "augment.occlusion_size": (0.3, 0.6),
                                "augment.occlusion_max": 4}).data
        outs.append(pipeline.prepare_example(ex, np.random.default_rng(9), cfg))
    assert not np.array_equal(outs[0]["img"], outs[1]["img"])
    for key in ("keypoints2d", "joints3d", "mask", "depth", "part_seg"):
        np.testing.assert_array_equal(outs[0][key], outs[1][key])
