"""Atomic writes: the destination appears only complete, and a failed write leaves nothing behind."""
import json

import numpy as np
import pytest

from hmrjax import fileio


def test_write_json_and_savez_round_trip(tmp_path):
    fileio.write_json(tmp_path / "a" / "x.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"k": [1, 2]}
    fileio.savez(tmp_path / "y.npz", {"v": np.arange(5)}, compressed=True)
    with np.load(tmp_path / "y.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["v"], np.arange(5))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "x.json", "y.npz"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    dst = tmp_path / "keep.bin"
    fileio.write_bytes(dst, b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with fileio.atomic_open(dst) as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert dst.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.bin"]
