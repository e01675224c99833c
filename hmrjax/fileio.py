"""Atomic file writes: every file hmrjax writes goes to a temporary name in the target folder and is
renamed over the destination only when complete, so a reader (or a crash) never sees a partial file.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Iterator, Mapping

import numpy as np


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask has no read-only form and is process-wide


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Yields a file object open on a temporary file beside `path`; renames it onto `path` on success and
    removes it on any error. Creates missing parent folders."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """Atomically writes `data` to `path`."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return pathlib.Path(path)


def write_json(path: str | os.PathLike, obj, **json_kwargs) -> pathlib.Path:
    """Atomically writes `obj` as JSON (indent 2 unless given)."""
    json_kwargs.setdefault("indent", 2)
    return write_bytes(path, json.dumps(obj, **json_kwargs).encode())


def savez(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], compressed: bool = False) -> pathlib.Path:
    """Atomically writes a pickle-free `.npz` of `arrays` (`np.savez` / `np.savez_compressed`)."""
    with atomic_open(path, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return pathlib.Path(path)
