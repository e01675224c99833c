"""hmrjax.body vs the reference `smplx` (PyTorch) on random model files in the official layouts and sizes.

Files are generated once per session (tests/body/body_fakes.py): SMPL 6890 v / 24 j, SMPL-H 6890 / 52,
SMPL-X 10475 / 55 (with expression, jaw / eye poses, landmarks), MANO 778 / 16; hands with PCA.
Tolerances: 1e-5 m in float64, 1e-4 m in float32.
"""
import numpy as np
import pytest

import body_fakes

pytestmark = pytest.mark.interop

B = 3
TOL = {"float32": 1e-4, "float64": 1e-5}
NUM_BODY = {"smpl": 23, "smplh": 21, "smplx": 21}


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official_layouts")
    return {mt: body_fakes.write_official(folder, mt, seed=i) for i, mt in enumerate(("smpl", "smplh", "smplx", "mano"))}


def _smplx_model(mt, path, dtype_name):
    torch = pytest.importorskip("torch")
    smplx = pytest.importorskip("smplx")
    dt = getattr(torch, dtype_name)
    common = dict(num_betas=10, dtype=dt)
    if mt == "smpl":  # smplx's SMPL reads only .pkl itself; give it the same .npz content as a data_struct
        with np.load(path) as npz:
            struct = smplx.utils.Struct(**{k: npz[k] for k in npz.files})
        return smplx.SMPL(model_path=str(path), data_struct=struct, **common)
    hands = dict(use_pca=True, num_pca_comps=6, flat_hand_mean=False, ext="npz")
    if mt == "smplh":
        return smplx.SMPLH(model_path=str(path), **common, **hands)
    if mt == "smplx":
        return smplx.SMPLX(model_path=str(path), num_expression_coeffs=10, **common, **hands)
    return smplx.MANO(model_path=str(path), is_rhand=True, **common, **hands)


def _inputs(mt, kind, rng):
    """smplx-style keyword inputs (numpy) for a pose kind: zero, random (std 0.5) or extreme (angles near pi)."""
    nb = {"smpl": 23, "smplh": 21, "smplx": 21, "mano": 0}[mt]

    def rot(n):
        if kind == "zero":
            return np.zeros((B, n, 3))
        if kind == "random":
            return rng.normal(scale=0.5, size=(B, n, 3))
        axes = rng.normal(size=(B, n, 3))
        axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
        return axes * rng.uniform(np.pi - 0.05, np.pi, size=(B, n, 1))

    zero = kind == "zero"
    kw = {"betas": np.zeros((B, 10)) if zero else rng.normal(size=(B, 10)),
          "global_orient": rot(1).reshape(B, 3), "transl": np.zeros((B, 3)) if zero else rng.normal(size=(B, 3))}
    if nb:
        kw["body_pose"] = rot(nb).reshape(B, -1)
    pca = (lambda: np.zeros((B, 6))) if zero else (lambda: rng.normal(scale=1.0, size=(B, 6)))
    if mt in ("smplh", "smplx"):
        kw["left_hand_pose"], kw["right_hand_pose"] = pca(), pca()
    if mt == "mano":
        kw["hand_pose"] = pca()
    if mt == "smplx":
        kw["expression"] = np.zeros((B, 10)) if zero else rng.normal(size=(B, 10))
        kw["jaw_pose"], kw["leye_pose"], kw["reye_pose"] = rot(1)[:, 0], rot(1)[:, 0], rot(1)[:, 0]
    return kw


@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("mt", ["smpl", "smplh", "smplx", "mano"])
def test_matches_smplx(model_files, mt, dtype_name):
    torch = pytest.importorskip("torch")
    import jax
    import hmrjax.body

    ref_model = _smplx_model(mt, model_files[mt], dtype_name)
    torch.set_grad_enabled(False)
    rng = np.random.default_rng(7)
    with jax.enable_x64(dtype_name == "float64"):
        body = hmrjax.body.load(model_files[mt], num_betas=10, num_expression=10, use_pca=True, num_pca_comps=6,
                                dtype=dtype_name)
        assert body.model_type == mt and body.num_vertices == body_fakes.NUM_VERTICES[mt]
        forward = jax.jit(lambda m, kw: m(**kw))
        full = jax.jit(lambda m, p, b, t, e: m(pose=p, betas=b, transl=t, expression=e))
        nj = body.num_joints
        for kind in ("zero", "random", "extreme"):
            kw = _inputs(mt, kind, rng)
            ref = ref_model(**{k: torch.tensor(v, dtype=getattr(torch, dtype_name)) for k, v in kw.items()},
                            return_full_pose=True)
            out = forward(body, {k: np.asarray(v, dtype_name) for k, v in kw.items()})
            tol = TOL[dtype_name]
            ref_v, ref_j = ref.vertices.numpy(), ref.joints.numpy()
            np.testing.assert_allclose(np.asarray(out.vertices), ref_v, atol=tol, rtol=0, err_msg=f"{mt} {kind} vertices")
            np.testing.assert_allclose(np.asarray(out.joints), ref_j[:, :nj], atol=tol, rtol=0, err_msg=f"{mt} {kind} joints")
            if mt != "mano":  # smplx appends its vertex-joint-selector extras, then (SMPL-X) the landmarks
                np.testing.assert_allclose(np.asarray(out.joints_extra["vertex_joints"]), ref_j[:, nj:nj + 21],
                                           atol=tol, rtol=0, err_msg=f"{mt} {kind} vertex joints")
            if mt == "smplx":
                np.testing.assert_allclose(np.asarray(out.joints_extra["landmarks"]), ref_j[:, nj + 21:],
                                           atol=tol, rtol=0, err_msg=f"{mt} {kind} landmarks")
            # The full pose smplx applied (PCA expanded, mean hand added) through `pose=` gives the same mesh.
            pose = ref.full_pose.numpy().reshape(B, nj, 3)
            out_full = full(body, pose, kw["betas"].astype(dtype_name), kw["transl"].astype(dtype_name),
                            kw.get("expression", np.zeros((B, 10))).astype(dtype_name) if mt == "smplx" else None)
            np.testing.assert_allclose(np.asarray(out_full.vertices), ref_v, atol=tol, rtol=0,
                                       err_msg=f"{mt} {kind} full pose")
