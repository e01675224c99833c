"""Overlays (mesh blend, keypoints, boxes) and colour maps / grids / PNG writing."""
import os

import numpy as np
import pytest
from PIL import Image

from hmrjax.render import colormaps, overlay, primitives
from hmrjax.render.raster import Camera
from hmrjax.render.scene import Mesh, render

H, W = 40, 50
CAM = Camera(focal=(45.0, 45.0), image_size=(H, W))


def _photo(seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def test_blend_formula_and_untouched_outside_mask():
    img, ov = _photo(0), _photo(1)
    mask = np.zeros((H, W), bool)
    mask[5:20, 10:30] = True
    out = overlay.blend(img, ov, mask, alpha=0.25)
    np.testing.assert_array_equal(out[~mask], img[~mask])
    expected = np.round(0.75 * img[mask].astype(np.float64) + 0.25 * ov[mask])
    assert np.abs(out[mask].astype(int) - expected).max() <= 1
    with pytest.raises(ValueError, match="alpha"):
        overlay.blend(img, ov, mask, alpha=1.5)


def test_overlay_mesh_changes_only_the_silhouette():
    v, f = primitives.ellipsoid((0.1, 0.0, 3.0), (0.8, 1.0, 0.5), 10, 12)
    img = _photo(2)
    out = overlay.overlay_mesh(img, v, f, CAM, alpha=0.6)
    mask = render(Mesh(v, f), CAM).mask
    assert mask.sum() > 100
    np.testing.assert_array_equal(out[~mask], img[~mask])
    assert np.mean(out[mask] != img[mask]) > 0.9
    np.testing.assert_array_equal(img, _photo(2))  # input untouched
    with pytest.raises(ValueError, match="image_size"):
        overlay.overlay_mesh(img[:10], v, f, CAM)


def test_keypoints_visible_filled_invisible_hollow():
    img = np.zeros((H, W, 3), np.uint8)
    kp = np.array([[10.0, 10.0, 1.0], [35.0, 25.0, 0.0], [np.nan, 3.0, 1.0], [40.0, 8.0, 0.0]])
    col = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    out = overlay.draw_keypoints(img, kp, edges=[(0, 1)], radius=4, colors=col)
    assert tuple(out[10, 10]) == (255, 0, 0)        # visible: filled centre
    assert tuple(out[8, 40]) == (0, 0, 0)           # invisible: hollow centre
    ring = out[3:14, 35:46].reshape(-1, 3)
    assert (ring == (255, 255, 0)).all(-1).sum() > 8  # ... but its outline is drawn
    assert out[17:19, 20:26].any()                  # the bone between points 0 and 1
    assert not (out[:, :, 2] > 0).any()             # the NaN keypoint is skipped
    with pytest.raises(ValueError, match=r"\[K, 2\] or \[K, 3\]"):
        overlay.draw_keypoints(img, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="edge"):
        overlay.draw_keypoints(img, kp, edges=[(0, 7)])


def test_coco17_edges_match_the_body_layout():
    from hmrjax.body import layouts
    assert tuple(map(tuple, overlay.COCO17_EDGES)) == tuple(map(tuple, layouts.COCO17.edges))
    kp = np.column_stack([np.linspace(5, 45, 17), np.linspace(5, 35, 17), np.arange(17) % 2])
    out = overlay.draw_keypoints(np.zeros((H, W, 3), np.uint8), kp)
    assert out.any()


def test_bbox_outline_only():
    img = _photo(3)
    out = overlay.draw_bbox(img, center=(25, 20), scale=20, color=(255, 0, 255), width=1)
    assert tuple(out[10, 25]) == (255, 0, 255) and tuple(out[20, 15]) == (255, 0, 255)
    np.testing.assert_array_equal(out[12:29, 17:34], img[12:29, 17:34])
    np.testing.assert_array_equal(out[:9], img[:9])
    with pytest.raises(ValueError, match="xyxy"):
        overlay.draw_bbox(img)


def test_colormap_tables_and_depth_colouring():
    for name, lut in colormaps.COLORMAPS.items():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
        assert np.abs(np.diff(lut.astype(int), axis=0)).max() < 16, name  # smooth, no jumps
    lum = colormaps.COLORMAPS["viridis"].astype(float) @ [0.2126, 0.7152, 0.0722]
    assert np.all(np.diff(lum) > -0.5) and lum[-1] > lum[0] + 150  # viridis lightness rises monotonically
    turbo = colormaps.COLORMAPS["turbo"].astype(int)
    first, mid, last = turbo[:64].mean(0), turbo[112:144].mean(0), turbo[192:].mean(0)
    assert first[2] > first[0] and last[0] > last[2] and mid[1] > 200  # blue -> green -> red
    depth = np.zeros((4, 5), np.float32)
    depth[1:3, 1:4] = [[2.0, 2.5, 3.0], [3.5, 4.0, np.nan]]
    rgb = colormaps.depth_to_rgb(depth)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 5, 3)
    bg = ~(np.isfinite(depth) & (depth > 0))
    assert (rgb[bg] == 0).all() and (rgb[~bg].sum(-1) > 0).all()
    np.testing.assert_array_equal(rgb[1, 1], colormaps.COLORMAPS["turbo"][255])  # nearest = top
    np.testing.assert_array_equal(rgb[2, 2], colormaps.COLORMAPS["turbo"][0])    # farthest = bottom
    np.testing.assert_array_equal(colormaps.apply_colormap(np.array([-1.0, 2.0])),
                                  colormaps.COLORMAPS["turbo"][[0, 255]])
    with pytest.raises(ValueError, match="colormap"):
        colormaps.apply_colormap(np.zeros(2), "jet")


def test_part_palette_distinct_and_black_background():
    pal = colormaps.part_palette(24)
    assert pal.shape == (25, 3) and (pal[0] == 0).all()
    assert len({tuple(c) for c in pal}) == 25
    d = np.abs(pal[1:, None, :].astype(int) - pal[None, 1:, :]).sum(-1) + np.eye(24, dtype=int) * 999
    assert d.min() > 20  # all pairs visibly different
    labels = np.array([[0, 1], [24, 3]])
    np.testing.assert_array_equal(colormaps.parts_to_rgb(labels, 24), pal[labels])
    with pytest.raises(ValueError, match="exceeds"):
        colormaps.parts_to_rgb(labels, 10)


def test_make_grid_layout_and_labels():
    a = np.full((10, 12, 3), 50, np.uint8)
    b = np.ones((8, 12), np.float32)  # grey float image, smaller
    c = np.zeros((10, 12), bool)
    grid = colormaps.make_grid([a, b, c], nrow=2, pad=2, pad_value=7)
    assert grid.shape == (2 + 2 * 12, 2 + 2 * 14, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[2:12, 2:14], a)
    assert (grid[2:10, 16:28] == 255).all() and (grid[10:12, 16:28] == 7).all()
    assert (grid[14:24, 2:14] == 0).all() and (grid[0:2] == 7).all()
    labelled = colormaps.make_grid([a, b, c], nrow=2, labels=["x", "", "zz"])
    assert labelled.shape == grid.shape and not np.array_equal(labelled[2:12, 2:14], a)
    with pytest.raises(ValueError, match="labels"):
        colormaps.make_grid([a], 1, labels=["a", "b"])


def test_save_png_round_trip_and_no_temp_left(tmp_path):
    img = _photo(4)
    path = colormaps.save_png(tmp_path / "sub" / "x.png", img)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), img)
    colormaps.save_png(path, img[::-1])  # overwrite by rename
    np.testing.assert_array_equal(np.asarray(Image.open(path)), img[::-1])
    assert os.listdir(tmp_path / "sub") == ["x.png"]
    with pytest.raises(ValueError, match="image must be"):
        colormaps.save_png(tmp_path / "bad.png", np.zeros((2, 2, 5)))
    assert not (tmp_path / "bad.png").exists()
