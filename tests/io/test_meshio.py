import numpy as np
import pytest

from hmrjax import meshio


def _tetra():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32) * 0.5 + 0.123456
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    return v, f


def test_ply_round_trip_with_colors(tmp_path):
    v, f = _tetra()
    c = np.arange(12, dtype=np.uint8).reshape(4, 3) * 20
    meshio.write_ply(tmp_path / "m.ply", v, f, c)
    v2, f2, c2 = meshio.read_ply(tmp_path / "m.ply")
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(f2, f)
    np.testing.assert_array_equal(c2, c)
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_obj_round_trip(tmp_path):
    v, f = _tetra()
    meshio.write_obj(tmp_path / "m.obj", v, f)
    v2, f2 = meshio.read_obj(tmp_path / "m.obj")
    np.testing.assert_allclose(v2, v, atol=1e-6)
    np.testing.assert_array_equal(f2, f)
    text = (tmp_path / "m.obj").read_text()
    assert text.count("\nf ") + text.startswith("f ") == len(f)


@pytest.mark.parametrize("bad, msg", [
    (dict(vertices=np.zeros((4, 2))), "vertices must be"),
    (dict(faces=np.array([[0, 1, 9]])), "outside"),
    (dict(vertices=np.full((4, 3), np.nan)), "NaN"),
])
def test_bad_meshes_are_rejected_and_nothing_written(tmp_path, bad, msg):
    v, f = _tetra()
    kwargs = dict(vertices=v, faces=f)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=msg):
        meshio.write_ply(tmp_path / "bad.ply", **kwargs)
    assert list(tmp_path.iterdir()) == []
