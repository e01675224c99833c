"""Scene rendering: normals, part labels, colours and shading vs float64 numpy references."""
import numpy as np
import pytest
import render_reference as ref

from hmrjax.render import primitives
from hmrjax.render.raster import Camera
from hmrjax.render.scene import BODY_TO_CAMERA, Mesh, render, render_mesh_image
from hmrjax.render.shading import Light, face_normals, shade, vertex_normals

H, W = 40, 56
CAM = Camera(focal=(50.0, 50.0), image_size=(H, W))


def _sphere(center=(0.0, 0.0, 3.0), radius=1.0, rings=24, segments=32):
    v, f = primitives.ellipsoid(center, (radius,) * 3, rings, segments)
    return v, f


def test_silhouette_is_positive_depth_and_normals_are_unit():
    v, f = _sphere()
    out = render(Mesh(v, f), CAM)
    np.testing.assert_array_equal(out.mask, out.depth > 0)
    np.testing.assert_allclose(np.linalg.norm(out.normals[out.mask], axis=-1), 1.0, atol=1e-5)
    assert not out.normals[~out.mask].any()
    assert (out.rgb[~out.mask] == 0).all()
    assert out.mask.sum() > 300


def test_sphere_normals_point_radially_and_faces_outward():
    v, f = _sphere(rings=48, segments=64)
    out = render(Mesh(v, f), CAM)
    rays = ref.pixel_rays(H, W, *CAM.focal, *CAM.principal)
    p = rays[out.mask] * out.depth[out.mask][:, None]
    radial = (p - [0.0, 0.0, 3.0]) / np.linalg.norm(p - [0.0, 0.0, 3.0], axis=-1, keepdims=True)
    cos = np.sum(radial * out.normals[out.mask], axis=-1)
    assert cos.min() > 0.995
    # flat normals equal the face normal (float64 cross product) of the visible face
    out_flat = render(Mesh(v, f, smooth=False), CAM)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]).astype(np.float64)
    fn /= np.linalg.norm(fn, axis=-1, keepdims=True)
    np.testing.assert_allclose(out_flat.normals[out_flat.mask], fn[out_flat.face_id[out_flat.mask]], atol=1e-5)


def test_vertex_normals_match_area_weighted_reference():
    rng = np.random.default_rng(0)
    v, f = _sphere(rings=6, segments=7)
    v = v + rng.normal(scale=0.05, size=v.shape).astype(np.float32)
    expected = np.zeros((len(v), 3))
    for a, b, c in f:
        n = np.cross(v[b] - v[a], v[c] - v[a]).astype(np.float64)
        for k in (a, b, c):
            expected[k] += n
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(vertex_normals(v, f), expected, atol=1e-6)
    # the compiled renderer uses the same normals: interpolating them by hand reproduces its map
    out = render(Mesh(v, f), CAM)
    m = out.mask
    n = np.einsum("nk,nkc->nc", out.bary[m], expected[f[out.face_id[m]]])
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    np.testing.assert_allclose(out.normals[m], n, atol=1e-5)


def test_rgb_matches_numpy_shading_model():
    rng = np.random.default_rng(1)
    v, f = _sphere(rings=10, segments=12)
    colors = rng.uniform(0.1, 0.9, size=(len(v), 3)).astype(np.float32)
    light = Light(direction=(0.4, 0.6, 1.0), intensity=0.7, ambient=0.25, specular=0.5, shininess=12.0,
                  color=(1.0, 0.9, 0.8))
    out = render(Mesh(v, f, vertex_colors=colors), CAM, light=light)
    m = out.mask
    albedo = np.einsum("nk,nkc->nc", out.bary[m], colors[f[out.face_id[m]]])
    p = ref.pixel_rays(H, W, *CAM.focal, *CAM.principal)[m] * out.depth[m][:, None]
    view = -p / np.linalg.norm(p, axis=-1, keepdims=True)
    expected = np.round(shade(out.normals[m], albedo, view, light) * 255.0)
    assert np.abs(out.rgb[m].astype(int) - expected).max() <= 1


def test_lambert_on_a_plane_facing_the_camera():
    quad = np.array([[-5.0, -5.0, 2.0], [5.0, -5.0, 2.0], [5.0, 5.0, 2.0], [-5.0, 5.0, 2.0]], np.float32)
    faces = np.array([[0, 2, 1], [0, 3, 2]])  # normal (0, 0, -1): towards the camera
    np.testing.assert_allclose(face_normals(quad, faces), [[0, 0, -1], [0, 0, -1]], atol=1e-7)
    d = np.array([0.0, 0.6, 0.8])  # light travels down and away; cos to the normal = 0.8
    light = Light(direction=tuple(d), intensity=0.5, ambient=0.2, specular=0.0)
    col = np.array([0.9, 0.5, 0.25])
    out = render(Mesh(quad, faces, face_colors=np.tile(col, (2, 1)), smooth=False), CAM, light=light)
    expected = np.round(255 * col * (0.2 + 0.5 * 0.8))
    assert out.mask.all()
    assert np.abs(out.rgb.reshape(-1, 3).astype(int) - expected).max() <= 1
    # two-sided: the reversed winding is lit the same
    back = render(Mesh(quad, faces[:, ::-1], face_colors=np.tile(col, (2, 1))), CAM, light=light)
    np.testing.assert_array_equal(back.rgb, out.rgb)


def test_part_labels_follow_vertex_and_face_labels():
    rng = np.random.default_rng(2)
    v, f = _sphere(rings=8, segments=10)
    vlab = rng.integers(1, 6, size=len(v))
    out = render(Mesh(v, f, vertex_labels=vlab), CAM)
    m = out.mask
    corner = np.argmax(out.bary[m], axis=-1)
    np.testing.assert_array_equal(out.part_seg[m], vlab[f[out.face_id[m], corner]])
    assert (out.part_seg[~m] == 0).all()
    # where one vertex clearly dominates (independent float64 ray-cast barycentrics), labels agree
    _, face_ref, bary_ref = ref.ray_cast(v, f, H, W, *CAM.focal, *CAM.principal)
    sb = np.sort(bary_ref, axis=-1)
    clear = m & (face_ref == out.face_id) & (sb[..., 2] - sb[..., 1] > 1e-3)
    assert clear.sum() > 0.9 * m.sum()
    np.testing.assert_array_equal(out.part_seg[clear], vlab[f[face_ref[clear], np.argmax(bary_ref[clear], -1)]])
    flab = rng.integers(1, 9, size=len(f))
    out = render(Mesh(v, f, face_labels=flab), CAM, background_label=-1)
    np.testing.assert_array_equal(out.part_seg[m], flab[out.face_id[m]])
    assert (out.part_seg[~m] == -1).all()


def test_occluder_scene_labels_and_mesh_ids():
    body_v, body_f = _sphere(center=(0.0, 0.0, 4.0))
    box_v, box_f = primitives.box(center=(0.3, 0.0, 2.0), size=(0.5, 0.5, 0.5))
    out = render([Mesh(body_v, body_f, label=3), Mesh(box_v, box_f, label=0, color=(0, 0, 1))], CAM)
    on_box = out.mesh_id == 1
    assert on_box.sum() > 20 and (out.mesh_id == 0).sum() > 20
    assert (out.part_seg[on_box] == 0).all() and (out.part_seg[out.mesh_id == 0] == 3).all()
    assert (out.depth[on_box] < 2.0).all() and (out.depth[out.mesh_id == 0] >= 3.0 - 1e-6).all()
    # box pixels are blue-only
    assert (out.rgb[on_box][:, :2] == 0).all() and (out.rgb[on_box][:, 2] > 0).all()


def test_render_mesh_image_frames_an_upright_body():
    v, f, _ = primitives.capsule_man(8, 10)
    img = render_mesh_image(v, f, image_size=(64, 48), supersample=1)
    assert img.shape == (64, 48, 3) and img.dtype == np.uint8
    fg = np.any(img != 255, axis=-1)
    rows, cols = np.nonzero(fg)
    # fills about 80% of the limiting side (here the arm span across the width), with a margin
    fill = max((rows.max() - rows.min() + 1) / 64, (cols.max() - cols.min() + 1) / 48)
    assert 0.7 < fill < 0.95
    assert abs((rows.max() + rows.min()) / 2 - 31.5) < 3 and abs((cols.max() + cols.min()) / 2 - 23.5) < 3
    assert rows.min() > 2 and rows.max() < 61 and cols.min() > 0 and cols.max() < 47
    # y-up body frame: the head (top of the model) is at the top of the picture; the head is narrower
    # than the arms' span, which is at shoulder height (upper third)
    top_rows = fg[rows.min():rows.min() + 4]
    assert top_rows.sum(axis=1).max() < 0.3 * (cols.max() - cols.min())
    widest = np.argmax(fg.sum(axis=1))
    assert rows.min() < widest < rows.min() + 0.35 * (rows.max() - rows.min())
    # anti-aliased: same silhouette area (white-background coverage), with partial-coverage edge pixels
    aa = render_mesh_image(v, f, image_size=(64, 48), supersample=3, color=(0.0, 0.0, 0.0),
                           light=Light(ambient=0.0, intensity=0.0))
    alpha = 1.0 - aa[..., 0] / 255.0
    assert abs(alpha.sum() - fg.sum()) < 0.05 * fg.sum()
    assert ((alpha > 0.1) & (alpha < 0.9)).sum() > 20
    np.testing.assert_array_equal(aa[..., 0], aa[..., 2])
    # explicit camera: BODY_TO_CAMERA then translation
    img2 = render_mesh_image(v, f, image_size=(64, 48), focal=60.0, cam_t=(0.0, 0.9, 6.0))
    assert np.any(img2 != 255)
    np.testing.assert_array_equal(BODY_TO_CAMERA @ [0.0, 1.0, 0.0], [0.0, -1.0, 0.0])


def test_bad_scene_inputs():
    v, f = _sphere(rings=4, segments=5)
    with pytest.raises(ValueError, match="mesh 0: vertex_labels"):
        render(Mesh(v, f, vertex_labels=np.zeros(3, int)), CAM)
    with pytest.raises(ValueError, match="mesh 1: face_colors"):
        render([Mesh(v, f), Mesh(v, f, face_colors=np.zeros((2, 3)))], CAM)
    with pytest.raises(ValueError, match="background"):
        render(Mesh(v, f), CAM, background=np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="Light.direction"):
        Light(direction=(0.0, 0.0, 0.0))


def test_interpolate_vertex_positions_gives_the_surface_point():
    from hmrjax.render.raster import rasterize
    from hmrjax.render.shading import interpolate, pixel_rays
    v, f = _sphere(rings=12, segments=16)
    frags = rasterize(v, f, CAM)
    pts = interpolate(frags, f, v)  # perspective-correct barycentrics reproduce the 3-D hit point
    rays = ref.pixel_rays(H, W, *CAM.focal, *CAM.principal)
    np.testing.assert_allclose(pixel_rays(CAM), rays, atol=1e-6)
    m = frags.mask
    np.testing.assert_allclose(pts[m], rays[m] * frags.depth[m][:, None], atol=2e-5)
    assert not pts[~m].any()


def test_background_image_and_colour_kept_outside_mask():
    v, f = _sphere()
    bg = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = render(Mesh(v, f), CAM, background=bg)
    np.testing.assert_array_equal(out.rgb[~out.mask], bg[~out.mask])
    out = render(Mesh(v, f), CAM, background=(1.0, 0.5, 0.0))
    assert (out.rgb[~out.mask] == (255, 128, 0)).all()
