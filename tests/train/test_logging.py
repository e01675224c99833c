"""TensorBoard event files decoded by protobuf's own parser (independent of our encoder), CRC-32C
against published check values, metrics.jsonl and atomic JSON writes."""
import json
import struct

import numpy as np
import pytest

from hmrjax.train import logging as log_lib


def test_crc32c_check_values():
    # RFC 3720 (iSCSI) appendix B.4 and the standard "123456789" check value.
    assert log_lib.crc32c(b"123456789") == 0xE3069283
    assert log_lib.crc32c(bytes(32)) == 0x8A9136AA
    assert log_lib.crc32c(bytes([0xFF] * 32)) == 0x62A8AB43
    assert log_lib.crc32c(bytes(range(32))) == 0x46DD794E


def _event_classes():
    """Event/Summary message classes built from a descriptor mirroring tensorboard's event.proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="hmrjax_test_event.proto", package="tbtest")
    value = fdp.message_type.add(name="Value")
    value.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    value.field.add(name="simple_value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL)
    summary = fdp.message_type.add(name="Summary")
    summary.field.add(name="value", number=1, type=F.TYPE_MESSAGE, type_name=".tbtest.Value",
                      label=F.LABEL_REPEATED)
    event = fdp.message_type.add(name="Event")
    event.field.add(name="wall_time", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    event.field.add(name="step", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    event.field.add(name="file_version", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    event.field.add(name="summary", number=5, type=F.TYPE_MESSAGE, type_name=".tbtest.Summary",
                    label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tbtest.Event"))


def _read_records(path):
    data = path.read_bytes()
    records, pos = [], 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (len_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        payload = data[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert len_crc == log_lib.masked_crc32c(header) and data_crc == log_lib.masked_crc32c(payload)
        records.append(payload)
        pos += 16 + length
    return records


def test_metric_logger_writes_jsonl_and_parseable_event_file(tmp_path):
    pytest.importorskip("google.protobuf")
    logger = log_lib.MetricLogger(tmp_path)
    logger.write(3, {"loss": np.float32(0.25), "lr": 1e-3})
    logger.write(2**40, {"loss": float("nan")})
    logger.write(5, {})  # nothing to log: no line
    logger.close()
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"step": 3, "loss": 0.25, "lr": 1e-3}, {"step": 2**40, "loss": "nan"}]

    (event_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    Event = _event_classes()
    events = [Event.FromString(r) for r in _read_records(event_file)]
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 3
    assert {v.tag: v.simple_value for v in events[1].summary.value} == pytest.approx({"loss": 0.25, "lr": 1e-3})
    assert events[2].step == 2**40 and np.isnan(events[2].summary.value[0].simple_value)
    assert events[1].wall_time > 1.6e9


def test_write_json_atomic_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "config.json"
    log_lib.write_json_atomic(path, {"a": 1})
    log_lib.write_json_atomic(path, {"a": 2, "b": (1, 2)})
    assert json.loads(path.read_text()) == {"a": 2, "b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
