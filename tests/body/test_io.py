"""hmrjax.body.io: restricted unpickler, chumpy-free loading, clear errors, convert round trip, assets."""
import os
import pickle
import sys
import types

import jax
import numpy as np
import pytest

import body_fakes
import hmrjax.body
from hmrjax.body import io as bio

NV = 120  # small vertex count keeps these tests fast


@pytest.fixture(scope="module")
def smpl_arrays():
    return body_fakes.make_model_arrays("smpl", num_vertices=NV, seed=3)


@pytest.fixture(scope="module")
def smpl_npz(tmp_path_factory, smpl_arrays):
    return body_fakes.write_npz(tmp_path_factory.mktemp("io") / "SMPL_NEUTRAL.npz", smpl_arrays)


def _outputs(body, seed=0):
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.5, size=(2, body.num_joints, 3)).astype(np.float32)
    betas = rng.normal(size=(2, body.num_betas)).astype(np.float32)
    out = jax.jit(lambda m, p, b: m(pose=p, betas=b))(body, pose, betas)
    return np.asarray(out.vertices), np.asarray(out.joints)


# -- restricted unpickler ------------------------------------------------------------------------
class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func", [os.system, eval], ids=["os.system", "builtins.eval"])
def test_refuses_code_execution_globals(tmp_path, func):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    payload = f"open({str(marker)!r}, 'w').write('x')" if func is eval else f"touch {marker}"
    with open(path, "wb") as fh:
        pickle.dump({"v_template": _Evil(func, payload)}, fh, protocol=2)
    with pytest.raises(bio.UnsafePickleError) as info:
        hmrjax.body.load(path)
    msg = str(info.value)
    assert ("posix.system" in msg or "os.system" in msg or "builtins.eval" in msg) and str(path) in msg
    assert not marker.exists()


def test_refuses_getattr_smuggling(tmp_path):
    path = tmp_path / "evil2.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"f": _Evil(getattr, "x")}, fh, protocol=2)
    with pytest.raises(bio.UnsafePickleError, match="builtins.getattr"):
        bio.read_model_file(path)


def test_fake_chumpy_pickle_loads_without_chumpy(tmp_path, smpl_arrays, smpl_npz):
    path = body_fakes.write_chumpy_pkl(tmp_path / "basicModel_neutral.pkl", smpl_arrays)
    assert "chumpy" not in sys.modules  # the stand-in module was removed after pickling
    raw = open(path, "rb").read()
    assert b"chumpy.ch" in raw and b"csc_matrix" in raw
    data = bio.read_model_file(path)
    assert isinstance(data["v_template"], np.ndarray)
    np.testing.assert_array_equal(data["v_template"], smpl_arrays["v_template"])
    np.testing.assert_array_equal(data["J_regressor"], smpl_arrays["J_regressor"])  # sparse csc -> dense
    body_pkl = hmrjax.body.load(path, num_betas=10)
    body_npz = hmrjax.body.load(smpl_npz, num_betas=10)
    for a, b in zip(_outputs(body_pkl), _outputs(body_npz)):
        np.testing.assert_array_equal(a, b)


def test_python2_style_protocol0_pickle(tmp_path, smpl_arrays):
    """Protocol 0/1 pickles rebuild objects through copyreg._reconstructor: allowed only for stand-ins."""
    path = body_fakes.write_chumpy_pkl(tmp_path / "p0.pkl", smpl_arrays, protocol=0)
    data = bio.read_model_file(path)
    np.testing.assert_array_equal(data["weights"], smpl_arrays["weights"])


def test_chumpy_without_value_is_refused(tmp_path):
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch_ops")

    class add:  # a lazy chumpy expression: no stored 'x'
        def __init__(self):
            self.a = 1

    add.__module__, add.__qualname__ = "chumpy.ch_ops", "add"
    mod.add = add
    sys.modules["chumpy"], sys.modules["chumpy.ch_ops"] = pkg, mod
    try:
        with open(tmp_path / "lazy.pkl", "wb") as fh:
            pickle.dump({"v_template": add()}, fh, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch_ops"]
    with pytest.raises(bio.BodyModelFileError, match="v_template.*lazy"):
        bio.read_model_file(tmp_path / "lazy.pkl")


# -- clear errors --------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    with pytest.raises(bio.BodyModelFileError, match="does not exist"):
        hmrjax.body.load(tmp_path / "nope.npz")


def test_unknown_extension(tmp_path):
    p = tmp_path / "model.obj"
    p.write_text("v 0 0 0\n")
    with pytest.raises(bio.BodyModelFileError, match="unknown body-model file extension '.obj'"):
        hmrjax.body.load(p)


def test_not_a_model_file(tmp_path):
    p = tmp_path / "other.npz"
    np.savez(p, a=np.zeros(3))
    with pytest.raises(bio.BodyModelFileError, match="not a body-model file"):
        hmrjax.body.load(p)
    q = tmp_path / "garbage.pkl"
    q.write_bytes(b"this is not a pickle")
    with pytest.raises(bio.BodyModelFileError, match="not a readable body-model pickle"):
        hmrjax.body.load(q)


def test_unknown_name_lists_shipped_assets():
    with pytest.raises(bio.BodyModelFileError, match="Shipped names"):
        hmrjax.body.load("no_such_model_name")


def test_missing_key_is_named(tmp_path, smpl_arrays):
    arrays = dict(smpl_arrays)
    del arrays["weights"]
    p = body_fakes.write_npz(tmp_path / "noweights.npz", arrays)
    with pytest.raises(bio.BodyModelFileError, match=r"missing required key 'weights'") as info:
        hmrjax.body.load(p)
    assert str(p) in str(info.value)


def test_wrong_weights_shape_names_both(tmp_path, smpl_arrays):
    arrays = dict(smpl_arrays, weights=smpl_arrays["weights"][:-5])
    p = body_fakes.write_npz(tmp_path / "badweights.npz", arrays)
    with pytest.raises(bio.BodyModelFileError, match=r"weights \(115, 24\).*v_template \(120, 3\)"):
        hmrjax.body.load(p)


@pytest.mark.parametrize("key,bad,pattern", [
    ("shapedirs", np.zeros((NV, 2, 10)), "shapedirs"),
    ("J_regressor", np.zeros((23, NV)), "J_regressor"),
    ("posedirs", np.zeros((NV, 3, 10)), "posedirs"),
    ("f", np.array([[0, 1, NV]]), "outside"),
])
def test_wrong_shapes(tmp_path, smpl_arrays, key, bad, pattern):
    p = body_fakes.write_npz(tmp_path / f"bad_{key}.npz", dict(smpl_arrays, **{key: bad}))
    with pytest.raises(bio.BodyModelFileError, match=pattern):
        hmrjax.body.load(p)


def test_too_many_betas(smpl_npz):
    with pytest.raises(bio.BodyModelFileError, match="num_betas=11 but the file has only 10"):
        hmrjax.body.load(smpl_npz, num_betas=11)


def test_too_many_expression_and_pca_components(tmp_path):
    arrays = body_fakes.make_model_arrays("smplx", num_vertices=NV, seed=2, posedirs=False)
    p = body_fakes.write_npz(tmp_path / "SMPLX_NEUTRAL.npz", arrays)
    with pytest.raises(bio.BodyModelFileError, match="num_expression=11 but the file has only 10"):
        hmrjax.body.load(p, num_expression=11)
    with pytest.raises(bio.BodyModelFileError, match="num_pca_comps=46 but 'hands_componentsl' has 45"):
        hmrjax.body.load(p, num_pca_comps=46)
    del arrays["hands_meanr"]
    q = body_fakes.write_npz(tmp_path / "nohandmean.npz", arrays)
    with pytest.raises(bio.BodyModelFileError, match="missing required key 'hands_meanr'"):
        hmrjax.body.load(q)


def test_model_type_mismatch(smpl_npz):
    with pytest.raises(bio.BodyModelFileError, match="needs 55 joints"):
        hmrjax.body.load(smpl_npz, model_type="smplx")


def test_folder_resolution(smpl_npz):
    body = hmrjax.body.load(smpl_npz.parent, model_type="smpl", gender="neutral")
    assert body.num_vertices == NV and body.model_type == "smpl"
    with pytest.raises(bio.BodyModelFileError, match="directory"):
        hmrjax.body.load(smpl_npz.parent)


def test_float64_needs_x64(smpl_npz):
    with jax.enable_x64(False), pytest.raises(ValueError, match="x64"):
        hmrjax.body.load(smpl_npz, dtype="float64")


# -- convert ---------------------------------------------------------------------------------------
def test_convert_round_trip(tmp_path, smpl_arrays):
    src = body_fakes.write_chumpy_pkl(tmp_path / "src.pkl", smpl_arrays)
    dst = bio.convert(src, tmp_path / "out" / "clean.npz")
    assert dst.exists() and not list(dst.parent.glob("*.tmp"))
    with np.load(dst, allow_pickle=False) as npz:  # pickle-free
        files = set(npz.files)
        assert {"v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"} <= files
        assert npz["model_type"].dtype.kind == "U" and str(npz["model_type"]) == "smpl"
        assert npz["bs_style"].dtype.kind == "U"
        for k in files:
            assert npz[k].dtype != object
    a, b = hmrjax.body.load(src), hmrjax.body.load(dst)
    assert a.model_type == b.model_type == "smpl"
    for x, y in zip(_outputs(a), _outputs(b)):
        np.testing.assert_array_equal(x, y)


def test_convert_smplx_npz_with_object_entries(tmp_path):
    arrays = body_fakes.make_model_arrays("smplx", num_vertices=NV, seed=1)
    src = tmp_path / "SMPLX_NEUTRAL.npz"
    obj = np.empty((), dtype=object)
    obj[()] = {"pelvis": 0}
    np.savez(src, joint2num=obj, **arrays)  # released SMPL-X files carry such pickled dicts
    dst = bio.convert(src, tmp_path / "smplx_clean.npz")
    with np.load(dst, allow_pickle=False) as npz:
        assert "joint2num" not in npz.files and "lmk_faces_idx" in npz.files
    body = hmrjax.body.load(dst)
    assert body.model_type == "smplx" and body.num_expression == 10


def test_convert_refuses_broken_source(tmp_path, smpl_arrays):
    src = body_fakes.write_npz(tmp_path / "broken.npz", dict(smpl_arrays, weights=smpl_arrays["weights"][:, :3]))
    with pytest.raises(bio.BodyModelFileError, match="weights"):
        bio.convert(src, tmp_path / "never.npz")
    assert not (tmp_path / "never.npz").exists()


# -- optional fields -------------------------------------------------------------------------------
def test_without_posedirs_skips_correctives(tmp_path, smpl_arrays):
    no_pd = {k: v for k, v in smpl_arrays.items() if k != "posedirs"}
    zero_pd = dict(smpl_arrays, posedirs=np.zeros_like(smpl_arrays["posedirs"]))
    a = hmrjax.body.load(body_fakes.write_npz(tmp_path / "nopd.npz", no_pd))
    b = hmrjax.body.load(body_fakes.write_npz(tmp_path / "zeropd.npz", zero_pd))
    assert a.pose_basis is None
    for x, y in zip(_outputs(a), _outputs(b)):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_extra_regressor_and_vertex_map(tmp_path, smpl_arrays, smpl_npz):
    rng = np.random.default_rng(0)
    reg = rng.uniform(size=(17, NV))
    reg /= reg.sum(1, keepdims=True)
    np.save(tmp_path / "J_regressor_h36m.npy", reg)
    matrix = np.zeros((30, NV))
    cols = rng.choice(NV, size=(30, 3))
    np.put_along_axis(matrix, cols, 1.0 / 3.0, axis=1)
    np.savez(tmp_path / "map.npz", matrix=matrix)
    body = hmrjax.body.load(smpl_npz, extra_regressors={"h36m": tmp_path / "J_regressor_h36m.npy"},
                            vertex_map=tmp_path / "map.npz")
    pose = rng.normal(scale=0.4, size=(2, 24, 3)).astype(np.float32)
    out = jax.jit(lambda m, p: m(pose=p))(body, pose)
    v = np.asarray(out.vertices, np.float64)
    np.testing.assert_allclose(np.asarray(out.joints_extra["h36m"]), np.einsum("kv,bvc->bkc", reg, v), atol=1e-5)
    np.testing.assert_allclose(np.asarray(out.joints_extra["mapped_vertices"]), np.einsum("ov,bvc->boc", matrix, v),
                               atol=1e-5)
    with pytest.raises(bio.BodyModelFileError, match=r"\[K, V\] with V = 120"):
        np.save(tmp_path / "bad.npy", reg[:, :-1])
        hmrjax.body.load(smpl_npz, extra_regressors={"bad": tmp_path / "bad.npy"})


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_vertex_map_pickle_any_protocol(tmp_path, smpl_npz, protocol):
    """smplx's smplx2smpl.pkl layout ({'matrix': [V_out, V]}), as python 3 writes it (protocol 5: _frombuffer)."""
    matrix = np.zeros((10, NV))
    matrix[np.arange(10), np.arange(10) * 3] = 1.0
    with open(tmp_path / "smplx2smpl.pkl", "wb") as fh:
        pickle.dump({"matrix": matrix}, fh, protocol=protocol)
    np.testing.assert_array_equal(bio.load_vertex_map(tmp_path / "smplx2smpl.pkl", NV), matrix)
    with pytest.raises(bio.BodyModelFileError, match="V = 7"):
        bio.load_vertex_map(tmp_path / "smplx2smpl.pkl", 7)


def test_shipped_assets_load():
    names = bio.shipped_model_names()
    assert {"anny", "anny_lite"} <= set(names), names
    body = hmrjax.body.load(names[0])
    assert body.num_vertices > 0 and body.faces.dtype == np.int32 and len(body.joint_names) == body.num_joints
