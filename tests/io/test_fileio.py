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


def test_written_files_get_the_mode_a_plain_open_gives(tmp_path):
    """mkstemp creates 0600 files; the renamed result must be readable like any file the user writes."""
    import os
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    atomic = fileio.write_bytes(tmp_path / "atomic.bin", b"x")
    assert (os.stat(atomic).st_mode & 0o777) == (os.stat(plain).st_mode & 0o777)
