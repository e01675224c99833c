"""BodyModel forward pass vs an independent float64 numpy LBS (joint-by-joint FK loop, scipy rotations);
pose assembly (PCA hands, mean hand, overrides, matrices); gradients vs finite differences; jit/vmap/grad."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import body_fakes
import hmrjax.body
from hmrjax.body.model import tree_levels

NV = 150
B = 2
_FORWARD = jax.jit(lambda m, kw: m(**kw))  # one compile per model structure and input structure


# -- independent reference -------------------------------------------------------------------------
def ref_lbs(arrays, model_type, pose_aa, betas, expression=None, transl=None):
    """smplx.lbs in float64 numpy, forward kinematics one joint at a time. pose_aa [B, J, 3]."""
    v_t = arrays["v_template"]
    dirs = arrays["shapedirs"]
    if model_type == "smplx":  # 20 columns = 10 shape + 10 expression (released v1.0 layout)
        coeffs = np.concatenate([betas, expression], -1)
        dirs = np.concatenate([dirs[:, :, :betas.shape[1]], dirs[:, :, 10:10 + expression.shape[1]]], -1)
    else:
        coeffs, dirs = betas, dirs[:, :, :betas.shape[1]]
    parents = body_fakes.PARENTS[model_type]
    nb, nj = pose_aa.shape[:2]
    v_shaped = v_t + np.einsum("bl,vcl->bvc", coeffs, dirs)
    joints = np.einsum("jv,bvc->bjc", arrays["J_regressor"], v_shaped)
    rot = Rotation.from_rotvec(pose_aa.reshape(-1, 3)).as_matrix().reshape(nb, nj, 3, 3)
    v_posed = v_shaped
    if "posedirs" in arrays:
        feat = (rot[:, 1:] - np.eye(3)).reshape(nb, -1)
        v_posed = v_shaped + np.einsum("bp,vcp->bvc", feat, arrays["posedirs"])
    out_v, out_j = np.zeros_like(v_posed), np.zeros((nb, nj, 3))
    for b in range(nb):
        g = [None] * nj
        for j in range(nj):
            local = np.eye(4)
            local[:3, :3] = rot[b, j]
            local[:3, 3] = joints[b, j] - (joints[b, parents[j]] if parents[j] >= 0 else 0)
            g[j] = local if parents[j] < 0 else g[parents[j]] @ local
        a = np.stack(g).copy()
        out_j[b] = a[:, :3, 3]
        a[:, :3, 3] -= np.einsum("jik,jk->ji", a[:, :3, :3], joints[b])
        t = np.einsum("vj,jkl->vkl", arrays["weights"], a)
        out_v[b] = np.einsum("vij,vj->vi", t[:, :3, :3], v_posed[b]) + t[:, :3, 3]
    if transl is not None:
        out_v, out_j = out_v + transl[:, None], out_j + transl[:, None]
    return out_v, out_j


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lbs")
    out = {}
    for i, mt in enumerate(("smpl", "smplh", "smplx", "mano")):
        arrays = body_fakes.make_model_arrays(mt, num_vertices=NV, seed=10 + i)
        out[mt] = (body_fakes.write_npz(d / f"{mt}.npz", arrays), arrays)
    return out


def _random_inputs(mt, nj, rng, std=0.7):
    kw = {"pose": rng.normal(scale=std, size=(B, nj, 3)), "betas": rng.normal(size=(B, 8)),
          "transl": rng.normal(size=(B, 3))}
    if mt == "smplx":
        kw["expression"] = rng.normal(size=(B, 6))
    return kw


@pytest.mark.parametrize("mt", ["smpl", "smplh", "smplx", "mano"])
def test_matches_numpy_reference_float64(files, mt):
    path, arrays = files[mt]
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        body = hmrjax.body.load(path, num_betas=8, num_expression=6, dtype=jnp.float64)
        kw = _random_inputs(mt, body.num_joints, rng)
        out = _FORWARD(body, kw)
        ref_v, ref_j = ref_lbs(arrays, mt, kw["pose"], kw["betas"], kw.get("expression"), kw["transl"])
        np.testing.assert_allclose(np.asarray(out.vertices), ref_v, atol=1e-10, rtol=0)
        np.testing.assert_allclose(np.asarray(out.joints), ref_j, atol=1e-10, rtol=0)
        # Rest -> posed joint transforms map the rest joints onto the posed joints.
        rest = hmrjax.body.load(path, num_betas=8, num_expression=6, dtype=jnp.float64)
        shaped = ref_lbs(arrays, mt, np.zeros_like(kw["pose"]), kw["betas"], kw.get("expression"))[1]
        mapped = np.einsum("bjik,bjk->bji", np.asarray(out.joint_transforms)[..., :3, :], np.concatenate(
            [shaped, np.ones_like(shaped[..., :1])], -1))
        np.testing.assert_allclose(mapped, ref_j, atol=1e-10)
        assert rest.num_joints == len(body_fakes.PARENTS[mt])


@pytest.mark.parametrize("mt", ["smpl", "smplx"])
def test_matches_numpy_reference_float32(files, mt):
    path, arrays = files[mt]
    body = hmrjax.body.load(path, num_betas=8, num_expression=6)
    assert body.dtype == jnp.float32
    kw = _random_inputs(mt, body.num_joints, np.random.default_rng(2))
    out = _FORWARD(body, {k: v.astype(np.float32) for k, v in kw.items()})
    assert out.vertices.dtype == jnp.float32
    ref_v, ref_j = ref_lbs(arrays, mt, kw["pose"], kw["betas"], kw.get("expression"), kw["transl"])
    np.testing.assert_allclose(np.asarray(out.vertices), ref_v, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(out.joints), ref_j, atol=1e-4, rtol=0)


def test_smplx_400_column_shapedirs_split(tmp_path):
    """SMPL-X v1.1 files: 300 shape + 100 expression columns (expression starts at column 300)."""
    arrays = body_fakes.make_model_arrays("smplx", num_vertices=60, num_shape=400, seed=5, posedirs=False)
    body = hmrjax.body.load(body_fakes.write_npz(tmp_path / "x.npz", arrays), num_betas=3, num_expression=2)
    np.testing.assert_allclose(np.asarray(body.shape_basis[:, 3]), arrays["shapedirs"][:, :, 300].T.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(body.shape_basis[:, 2]), arrays["shapedirs"][:, :, 2].T.reshape(-1), rtol=1e-6)


# -- pose assembly ---------------------------------------------------------------------------------
def test_smplx_keywords_equal_full_pose(files):
    path, arrays = files["smplx"]
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        body = hmrjax.body.load(path, num_betas=4, num_pca_comps=6, dtype=jnp.float64)
        kw = {"global_orient": rng.normal(size=(B, 3)), "body_pose": rng.normal(size=(B, 21, 3)) * 0.3,
              "jaw_pose": rng.normal(size=(B, 3)) * 0.2, "leye_pose": rng.normal(size=(B, 3)) * 0.2,
              "reye_pose": rng.normal(size=(B, 3)) * 0.2, "left_hand_pose": rng.normal(size=(B, 6)),
              "right_hand_pose": rng.normal(size=(B, 6)), "betas": rng.normal(size=(B, 4))}
        full = np.concatenate([kw["global_orient"][:, None], kw["body_pose"], kw["jaw_pose"][:, None],
                               kw["leye_pose"][:, None], kw["reye_pose"][:, None],
                               (kw["left_hand_pose"] @ arrays["hands_componentsl"][:6]
                                + arrays["hands_meanl"]).reshape(B, 15, 3),
                               (kw["right_hand_pose"] @ arrays["hands_componentsr"][:6]
                                + arrays["hands_meanr"]).reshape(B, 15, 3)], axis=1)
        a = _FORWARD(body, kw)
        b = _FORWARD(body, {"pose": full, "betas": kw["betas"]})
        np.testing.assert_allclose(np.asarray(a.vertices), np.asarray(b.vertices), atol=1e-12)
        # hand_pose [B, 2, C] is the same as left/right keywords
        c = _FORWARD(body, {"pose": full, "hand_pose": np.stack([kw["left_hand_pose"], kw["right_hand_pose"]], 1),
                            "betas": kw["betas"]})
        np.testing.assert_allclose(np.asarray(c.vertices), np.asarray(b.vertices), atol=1e-12)
        np.testing.assert_allclose(np.asarray(a.pose_matrices),
                                   Rotation.from_rotvec(full.reshape(-1, 3)).as_matrix().reshape(B, 55, 3, 3),
                                   atol=1e-12)
        # No inputs: rest body with the mean hand pose; flat_hand_mean: everything at rest.
        rest = _FORWARD(body, {"betas": np.zeros((1, 4))})
        mean = np.zeros((1, 55, 3))
        mean[0, 25:40], mean[0, 40:55] = arrays["hands_meanl"].reshape(15, 3), arrays["hands_meanr"].reshape(15, 3)
        np.testing.assert_allclose(np.asarray(rest.vertices), ref_lbs(arrays, "smplx", mean, np.zeros((1, 4)),
                                                                       np.zeros((1, 10)))[0], atol=1e-10)
        flat = hmrjax.body.load(path, num_betas=4, flat_hand_mean=True, dtype=jnp.float64)
        np.testing.assert_allclose(np.asarray(_FORWARD(flat, {"betas": np.zeros((1, 4))}).vertices),
                                   ref_lbs(arrays, "smplx", np.zeros((1, 55, 3)), np.zeros((1, 4)),
                                           np.zeros((1, 10)))[0], atol=1e-10)


def test_matrix_pose_equals_axis_angle(files):
    path, _ = files["mano"]
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        body = hmrjax.body.load(path, num_betas=5, use_pca=False, dtype=jnp.float64)
        aa = rng.normal(size=(B, 16, 3))
        mats = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(B, 16, 3, 3)
        a = _FORWARD(body, {"pose": aa})
        b = _FORWARD(body, {"pose": mats})
        c = _FORWARD(body, {"pose": mats, "global_orient": aa[:, 0]})  # mixed: aa override on matrix pose
        for o in (b, c):
            np.testing.assert_allclose(np.asarray(o.vertices), np.asarray(a.vertices), atol=1e-12)
        # use_pca=False: hand_pose is 45 axis-angle values relative to the mean hand pose
        mean = body.pose_mean[1:]
        d = _FORWARD(body, {"global_orient": aa[:, 0], "hand_pose": (aa[:, 1:] - mean).reshape(B, 45)})
        np.testing.assert_allclose(np.asarray(d.vertices), np.asarray(a.vertices), atol=1e-12)


def test_input_errors(files):
    body = hmrjax.body.load(files["smpl"][0], num_betas=8)
    with pytest.raises(ValueError, match="pose"):
        body(pose=np.zeros((1, 23, 3)))
    with pytest.raises(ValueError, match="betas"):
        body(betas=np.zeros((1, 9)))
    with pytest.raises(ValueError, match="jaw_pose is only defined for SMPL-X"):
        body(jaw_pose=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="expression"):
        body(expression=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="inconsistent batch sizes"):
        body(pose=np.zeros((2, 24, 3)), betas=np.zeros((3, 8)))
    smplh = hmrjax.body.load(files["smplh"][0], num_betas=8, num_pca_comps=6)
    with pytest.raises(ValueError, match="PCA coefficients"):
        smplh(left_hand_pose=np.zeros((1, 45)))


# -- gradients, transformations ---------------------------------------------------------------------
def test_gradients_match_finite_differences(tmp_path):
    arrays = body_fakes.make_model_arrays("smpl", num_vertices=40, seed=6)
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        body = hmrjax.body.load(body_fakes.write_npz(tmp_path / "g.npz", arrays), num_betas=10, dtype=jnp.float64)
        w = jnp.asarray(rng.normal(size=(1, 40, 3)))

        def loss(pose, betas):
            return jnp.sum(body(pose=pose, betas=betas).vertices * w)

        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        value = jax.jit(loss)
        for pose0 in (np.zeros((1, 24, 3)), rng.normal(scale=0.5, size=(1, 24, 3))):
            betas0 = rng.normal(size=(1, 10))
            gp, gb = grad(pose0, betas0)
            assert np.all(np.isfinite(gp)) and np.all(np.isfinite(gb))
            eps = 1e-6
            for _ in range(3):  # directional derivatives along random directions
                dp, db = rng.normal(size=pose0.shape), rng.normal(size=betas0.shape)
                fd = (value(pose0 + eps * dp, betas0 + eps * db) - value(pose0 - eps * dp, betas0 - eps * db)) / (2 * eps)
                an = np.sum(np.asarray(gp) * dp) + np.sum(np.asarray(gb) * db)
                np.testing.assert_allclose(an, fd, rtol=1e-6, atol=1e-8)


def test_jit_vmap_grad_and_pytree(files):
    path, _ = files["smplh"]
    body = hmrjax.body.load(path, num_betas=8)
    rng = np.random.default_rng(8)
    pose = rng.normal(scale=0.5, size=(3, 52, 3)).astype(np.float32)
    batched = _FORWARD(body, {"pose": pose})
    per_example = jax.jit(jax.vmap(lambda p: body(pose=p[None]).vertices[0]))(pose)
    np.testing.assert_allclose(np.asarray(per_example), np.asarray(batched.vertices), atol=1e-5)
    g = jax.jit(jax.grad(lambda p, m: jnp.sum(m(pose=p).vertices ** 2)))(pose, body)
    assert g.shape == pose.shape and np.all(np.isfinite(g))
    leaves, treedef = jax.tree_util.tree_flatten(body)
    assert all(isinstance(x, jax.Array) for x in leaves)
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert again.parents == body.parents and again.faces is body.faces
    assert isinstance(body.faces, np.ndarray) and body.faces.dtype == np.int32
    assert body.num_joints == 52 and body.num_vertices == NV and body.model_type == "smplh"
    assert len(body.joint_names) == 52 and body.joint_names[22] == "left_index1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        body.num_betas = 3


def test_tree_levels_group_by_depth():
    parents = body_fakes.PARENTS["smplx"]
    levels = tree_levels(parents)
    seen = {}
    for depth, (joints, slots) in enumerate(levels):
        for k, j in enumerate(joints):
            seen[j] = depth
            if depth:
                assert levels[depth - 1][0][slots[k]] == parents[j]
    assert sorted(seen) == list(range(55))
    # depth of a joint = number of ancestors
    for j in range(55):
        n, p = 0, parents[j]
        while p >= 0:
            n, p = n + 1, parents[p]
        assert seen[j] == n
    assert len(levels) == max(seen.values()) + 1 < 55  # far fewer steps than joints
