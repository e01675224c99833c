"""Rasterizer: coverage, depth, barycentrics, z-buffer order, crack-free edges, clipping, culling, errors.

References are float64 numpy: per-pixel ray casting and plane equations (render_reference.py).
"""
import numpy as np
import pytest
import render_reference as ref

from hmrjax.render.raster import Camera, rasterize

H, W = 48, 64
FX, FY, CX, CY = 60.0, 55.0, 31.3, 23.7
CAM = Camera(focal=(FX, FY), image_size=(H, W), principal=(CX, CY))
EDGE_EPS = 0.02  # px: pixel centres this close to an edge may go either way (vertex snapping is 1/256 px)


def _random_triangles(rng, n):
    """n triangles in front of the camera, partly off-screen, both windings."""
    uv = rng.uniform([-10, -10], [W + 10, H + 10], size=(n, 3, 2))
    z = rng.uniform(1.0, 4.0, size=(n, 3, 1))
    x = (uv[..., 0:1] - CX) / FX * z
    y = (uv[..., 1:2] - CY) / FY * z
    return np.concatenate([x, y, z], -1)


def test_single_triangle_coverage_matches_point_in_triangle():
    rng = np.random.default_rng(0)
    for tri in _random_triangles(rng, 12):
        faces = np.array([[0, 1, 2]])
        frags = rasterize(tri.astype(np.float32), faces, CAM)
        depth_ref, face_ref, _ = ref.ray_cast(tri.astype(np.float32), faces, H, W, FX, FY, CX, CY)
        near_edge = ref.edge_distance(tri.astype(np.float32), faces, H, W, FX, FY, CX, CY) < EDGE_EPS
        assert np.array_equal(frags.mask[~near_edge], (face_ref >= 0)[~near_edge])
        assert np.array_equal(frags.mask, frags.depth > 0)


def test_depth_is_the_plane_depth_at_pixel_centres():
    # A tilted plane n.X = d as a 2-triangle quad: depth at every covered pixel is d / (n . ray).
    quad = np.array([[-1.0, -0.8, 2.0], [1.2, -0.7, 3.0], [1.1, 0.9, 3.5], [-0.9, 0.8, 2.4]])
    quad[3] = quad[0] + (quad[2] - quad[1])  # make it planar
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    frags = rasterize(quad, faces, CAM)
    n = np.cross(quad[1] - quad[0], quad[2] - quad[0])
    d = n @ quad[0]
    rays = ref.pixel_rays(H, W, FX, FY, CX, CY)
    z_plane = d / (rays @ n)
    m = frags.mask
    assert m.sum() > 0.5 * H * W
    np.testing.assert_allclose(frags.depth[m], z_plane[m], rtol=1e-6)


def test_depth_at_vertex_pixels_of_a_grid_mesh():
    # A curved height-field mesh whose vertices sit on pixel centres: depth there equals the vertex z.
    uu, vv = np.meshgrid(np.arange(2, W - 2, 6.0), np.arange(2, H - 2, 5.0))
    z = 2.0 + 0.3 * np.sin(uu / 9.0) + 0.2 * np.cos(vv / 7.0)
    verts = np.stack([(uu - CX) / FX * z, (vv - CY) / FY * z, z], -1).reshape(-1, 3)
    r, c = uu.shape
    idx = np.arange(r * c).reshape(r, c)
    faces = np.concatenate([np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:]], -1).reshape(-1, 3),
                            np.stack([idx[:-1, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 3)])
    frags = rasterize(verts.astype(np.float32), faces, CAM)
    interior = np.zeros(uu.shape, bool)
    interior[1:-1, 1:-1] = True  # vertices on the mesh border may fall to the outside by the tie rule
    ii, jj = vv[interior].astype(int), uu[interior].astype(int)
    assert frags.mask[ii, jj].all()
    np.testing.assert_allclose(frags.depth[ii, jj], verts.reshape(r, c, 3)[interior][:, 2], rtol=1e-6)


def test_barycentrics_reconstruct_the_pixel_and_depth():
    rng = np.random.default_rng(1)
    tris = _random_triangles(rng, 6)
    verts = tris.reshape(-1, 3)
    faces = np.arange(len(verts)).reshape(-1, 3)
    frags = rasterize(verts, faces, CAM)
    m = frags.mask
    b = frags.bary[m].astype(np.float64)
    np.testing.assert_allclose(b.sum(-1), 1.0, atol=1e-5)
    assert (b > -1e-3).all()  # pixels covered by the snapped triangle may extrapolate by < 1/256 px
    p = np.einsum("nk,nkc->nc", b, verts[faces[frags.face_id[m]]])
    ii, jj = np.nonzero(m)
    np.testing.assert_allclose(FX * p[:, 0] / p[:, 2] + CX, jj, atol=1e-4)
    np.testing.assert_allclose(FY * p[:, 1] / p[:, 2] + CY, ii, atol=1e-4)
    np.testing.assert_allclose(p[:, 2], frags.depth[m], rtol=1e-6)


def test_zbuffer_nearest_surface_wins_in_any_order():
    rng = np.random.default_rng(2)
    tris = _random_triangles(rng, 8)
    verts = tris.reshape(-1, 3)
    faces = np.arange(len(verts)).reshape(-1, 3)
    depth_ref, face_ref, _ = ref.ray_cast(verts, faces, H, W, FX, FY, CX, CY)
    near_edge = ref.edge_distance(verts, faces, H, W, FX, FY, CX, CY) < EDGE_EPS
    for order in (np.arange(8), np.arange(8)[::-1]):
        frags = rasterize(verts, faces[order], CAM)
        got_face = np.where(frags.mask, order[np.maximum(frags.face_id, 0)], -1)
        ok = ~near_edge
        assert np.array_equal(got_face[ok], face_ref[ok])
        np.testing.assert_allclose(frags.depth[ok], depth_ref[ok], rtol=1e-6)


def test_occluder_mesh_and_mesh_ids():
    back = np.array([[-9.0, -9.0, 5.0], [9.0, -9.0, 5.0], [9.0, 9.0, 5.0], [-9.0, 9.0, 5.0]])
    front = np.array([[-0.2, -0.2, 2.0], [0.3, -0.2, 2.0], [0.3, 0.3, 2.0], [-0.2, 0.3, 2.0]])
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    for first_back in (True, False):
        meshes = [back, front] if first_back else [front, back]
        frags = rasterize(meshes, [quad, quad], CAM)
        front_id = 1 if first_back else 0
        jj, ii = np.meshgrid(np.arange(W), np.arange(H))
        u_in = ((jj - CX) / FX * 2.0 > -0.2) & ((jj - CX) / FX * 2.0 < 0.3)
        v_in = ((ii - CY) / FY * 2.0 > -0.2) & ((ii - CY) / FY * 2.0 < 0.3)
        inside = u_in & v_in
        assert np.all(frags.mesh_id[inside] == front_id)
        np.testing.assert_allclose(frags.depth[inside], 2.0, rtol=1e-6)
        assert np.all(frags.mesh_id[~inside & frags.mask] == 1 - front_id)
        assert frags.mask.all()  # the back quad fills the frame
        assert set(np.unique(frags.face_id)) <= {0, 1}
        np.testing.assert_array_equal(frags.global_face_id, frags.face_id + 2 * frags.mesh_id)


def _count_coverage(verts, faces):
    return sum(rasterize(verts, faces[k:k + 1], CAM).mask.astype(int) for k in range(len(faces)))


def test_no_cracks_or_double_hits_between_adjacent_triangles():
    # Grid of triangles with vertices exactly on pixel centres and half-pixels, so many pixel centres
    # lie exactly on shared edges and vertices: each pixel inside the union is covered exactly once.
    rng = np.random.default_rng(3)
    uu, vv = np.meshgrid(np.linspace(-4, W + 3, 9), np.linspace(-3, H + 2, 7))
    uu[1:-1, 1:-1] += rng.integers(-4, 5, size=uu[1:-1, 1:-1].shape) * 0.5
    vv[1:-1, 1:-1] += rng.integers(-4, 5, size=vv[1:-1, 1:-1].shape) * 0.5
    z = rng.uniform(1.5, 3.0, size=uu.shape)
    verts = np.stack([(uu - CX) / FX * z, (vv - CY) / FY * z, z], -1).reshape(-1, 3)
    r, c = uu.shape
    idx = np.arange(r * c).reshape(r, c)
    faces = np.concatenate([np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:]], -1).reshape(-1, 3),
                            np.stack([idx[:-1, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 3)])
    count = _count_coverage(verts, faces)
    assert count.min() == 1 and count.max() == 1  # the grid spans the whole frame
    # Fan of 8 triangles around a vertex that sits exactly on a pixel centre.
    centre = np.array([20.0, 16.0])
    ang = np.linspace(0, 2 * np.pi, 9)[:-1]
    ring = centre + np.stack([np.cos(ang) * 12, np.sin(ang) * 10], -1)
    uv = np.concatenate([centre[None], ring])
    verts = np.concatenate([(uv - [CX, CY]) / [FX, FY] * 2.0, np.full((9, 1), 2.0)], -1)
    faces = np.array([[0, 1 + k, 1 + (k + 1) % 8] for k in range(8)])
    count = _count_coverage(verts, faces)
    assert count.max() == 1
    assert count[16, 20] == 1
    frags = rasterize(verts, faces, CAM)
    np.testing.assert_array_equal(frags.mask, count == 1)


def test_near_plane_clipping_matches_ray_casting():
    # A big quad reaching behind the camera: only its part with z >= z_near is drawn.
    quad = np.array([[-3.0, 0.5, -2.0], [3.0, 0.5, -2.0], [3.0, 0.1, 6.0], [-3.0, 0.1, 6.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    z_near = 0.5
    frags = rasterize(quad, faces, CAM, z_near=z_near)
    depth_ref, face_ref, _ = ref.ray_cast(quad, faces, H, W, FX, FY, CX, CY, z_near=z_near)
    ok = np.abs(depth_ref - z_near) > 1e-3  # skip pixels right at the clip line
    assert (face_ref >= 0).sum() > 100
    assert np.array_equal(frags.mask[ok], (face_ref >= 0)[ok])
    np.testing.assert_allclose(frags.depth[frags.mask & ok], depth_ref[frags.mask & ok], rtol=1e-6)
    assert frags.depth[frags.mask].min() >= z_near * (1 - 1e-6)
    # entirely behind the near plane: nothing
    assert not rasterize(quad * [1, 1, -1] - [0, 0, 7], faces, CAM).mask.any()


def test_huge_off_screen_triangle_guard_band():
    tri = np.array([[-500.0, -400.0, 10.0], [600.0, -300.0, 10.0], [0.0, 700.0, 10.0]])
    frags = rasterize(tri, np.array([[0, 1, 2]]), CAM)
    assert frags.mask.all()
    np.testing.assert_allclose(frags.depth, 10.0, rtol=1e-6)
    b = frags.bary.astype(np.float64)
    p = np.einsum("hwk,kc->hwc", b, tri)
    np.testing.assert_allclose(FX * p[..., 0] / p[..., 2] + CX, np.arange(W)[None, :] + 0 * p[..., 0], atol=1e-2)


def test_back_face_culling():
    tri = np.array([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]])
    n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    front = np.array([[0, 1, 2]]) if n @ tri[0] < 0 else np.array([[0, 2, 1]])
    back = front[:, ::-1].copy()
    assert rasterize(tri, front, CAM, cull="back").mask.any()
    assert not rasterize(tri, back, CAM, cull="back").mask.any()
    assert not rasterize(tri, front, CAM, cull="front").mask.any()
    assert rasterize(tri, back, CAM, cull="none").mask.sum() == rasterize(tri, front, CAM).mask.sum()


def test_bad_inputs_raise_clear_errors():
    tri = np.array([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [0.0, 0.1, 1.0]])
    with pytest.raises(ValueError, match="face indices"):
        rasterize(tri, np.array([[0, 1, 3]]), CAM)
    with pytest.raises(ValueError, match=r"vertices must be \[V, 3\]"):
        rasterize(tri[:, :2], np.array([[0, 1, 2]]), CAM)
    with pytest.raises(ValueError, match="NaN"):
        rasterize(np.where(np.eye(3, dtype=bool), np.nan, tri), np.array([[0, 1, 2]]), CAM)
    with pytest.raises(ValueError, match="integer"):
        rasterize(tri, np.array([[0.0, 1.0, 2.0]]), CAM)
    with pytest.raises(ValueError, match="cull"):
        rasterize(tri, np.array([[0, 1, 2]]), CAM, cull="sideways")
    with pytest.raises(ValueError, match="mesh 1"):
        rasterize([tri, tri], [np.array([[0, 1, 2]]), np.array([[0, 1, 5]])], CAM)
    with pytest.raises(ValueError, match="focal"):
        Camera(focal=(0.0, 1.0), image_size=(4, 4))
    with pytest.raises(ValueError, match="image_size"):
        Camera(focal=(1.0, 1.0), image_size=(0, 4))


def test_camera_defaults_and_projection():
    cam = Camera(focal=100.0, image_size=(30, 40))
    assert cam.principal == (20.0, 15.0) and cam.focal == (100.0, 100.0)
    np.testing.assert_allclose(cam.project(np.array([[0.1, -0.2, 2.0]])), [[25.0, 5.0]])
    np.testing.assert_allclose(cam.intrinsics @ [0.1, -0.2, 2.0] / 2.0, [25.0, 5.0, 1.0])


def test_random_triangles_crossing_the_near_plane_match_ray_casting():
    rng = np.random.default_rng(7)
    tris = rng.uniform([-3, -3, -1.0], [3, 3, 3.0], size=(10, 3, 3))  # many straddle z_near
    verts = tris.reshape(-1, 3)
    faces = np.arange(len(verts)).reshape(-1, 3)
    z_near = 0.2
    frags = rasterize(verts, faces, CAM, z_near=z_near)
    depth_ref, face_ref, bary_ref = ref.ray_cast(verts, faces, H, W, FX, FY, CX, CY, z_near=z_near)
    # all faces' hits: exclude pixels near any edge or the clip line of a face (bary or depth margin)
    unsure = np.zeros((H, W), bool)
    for k in range(len(faces)):
        d_k, f_k, b_k = ref.ray_cast(verts, faces[k:k + 1], H, W, FX, FY, CX, CY, z_near=0.0)
        unsure |= (f_k >= 0) & ((b_k.min(-1) < 1e-3) | (np.abs(d_k - z_near) < 1e-3))
    ok = ~unsure
    assert (face_ref[ok] >= 0).sum() > 200
    assert np.array_equal(frags.global_face_id[ok], face_ref[ok])
    m = ok & frags.mask
    np.testing.assert_allclose(frags.depth[m], depth_ref[m], rtol=1e-6)
    np.testing.assert_allclose(frags.bary[m], bary_ref[m], atol=1e-4)
    assert frags.depth[frags.mask].min() >= z_near * (1 - 1e-5)
