"""Training logs in the workdir: `metrics.jsonl`, TensorBoard event files, `config.json`, a progress bar.

TensorBoard files are written without TensorFlow or tensorboard: `EventFileWriter` encodes the
`Event{wall_time, step, summary{value{tag, simple_value}}}` protobuf by hand (wire format, a handful
of fields) inside TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the
data), which is all TensorBoard reads for scalar curves. Only process 0 writes.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import socket
import struct
import time

import numpy as np

from hmrjax import fileio


# ---------------------------------------------------------------- CRC-32C (Castagnoli), TFRecord framing
def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C of `data` (pure Python; event records are a few dozen bytes)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add 0xa282ead8 (mod 2^32)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: uint64 length, uint32 masked crc(length), data, uint32 masked crc(data); little-endian."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


# ---------------------------------------------------------------- protobuf wire format (the few fields needed)
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_event(wall_time: float, step: int, scalars: dict | None = None,
                 file_version: str | None = None) -> bytes:
    """Serialised tensorboard `Event` (event.proto): wall_time=1 (double), step=2 (int64),
    file_version=3 (string), summary=5 (Summary{value=1: Value{tag=1 string, simple_value=2 float}})."""
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3 | 0) + _varint(int(step))
    if file_version is not None:
        out += _len_field(3, file_version.encode())
    if scalars:
        values = b"".join(
            _len_field(1, _len_field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value))
            for tag, value in scalars.items())
        out += _len_field(5, values)
    return out


class EventFileWriter:
    """Appends scalar summaries to `logdir/events.out.tfevents.<time>.<host>` (TensorBoard reads it)."""

    def __init__(self, logdir: str | os.PathLike):
        logdir = pathlib.Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}"
        self._file = open(self.path, "ab")
        self._file.write(tfrecord(encode_event(now, 0, file_version="brain.Event:2")))
        self._file.flush()

    def scalars(self, step: int, scalars: dict[str, float]) -> None:
        self._file.write(tfrecord(encode_event(time.time(), step, {k: float(v) for k, v in scalars.items()})))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Writes JSON to a temporary name in the same folder, then renames it over `path`."""
    fileio.write_json(path, obj, indent=2, sort_keys=True, default=str)


def _to_float(value) -> float:
    value = float(np.asarray(value))
    return value


class MetricLogger:
    """metrics.jsonl (one {"step": .., name: value} line per call) + TensorBoard scalars; no-op if disabled.

    The JSONL is appended to across restarts, so a resumed run may repeat steps already logged by the
    run it resumes; readers should keep the last line per step.
    """

    def __init__(self, workdir: str | os.PathLike, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(workdir / "metrics.jsonl", "a")
        self._events = EventFileWriter(workdir / "tensorboard")

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled or not metrics:
            return
        scalars = {k: _to_float(v) for k, v in metrics.items()}
        record = {"step": int(step), **{k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        self._events.scalars(step, scalars)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._events.close()


class Progress:
    """Console progress bar (tqdm): step / total, loss, images/s, ETA. Disabled on processes other than 0."""

    def __init__(self, total: int, initial: int, enabled: bool = True):
        self._bar = None
        if enabled:
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                             mininterval=1.0, smoothing=0.1)

    def update(self, steps: int, loss: float | None = None, images_per_s: float | None = None):
        if self._bar is None:
            return
        postfix = {}
        if loss is not None:
            postfix["loss"] = f"{loss:.4g}"
        if images_per_s is not None:
            postfix["img/s"] = f"{images_per_s:.1f}"
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(steps)

    def close(self):
        if self._bar is not None:
            self._bar.close()
