"""Multi-device, multi-process and crash-resume runs, each in subprocesses (the device count is fixed
when jax is imported): (a) one step on 8 fake CPU devices == the same step on 1 device, BatchNorm
statistics included, for data-parallel and FSDP meshes; (b) 2 processes x 4 devices (jax.distributed,
gloo collectives) == 1 process x 8 devices; (c) kill -9 mid-training, rerun the same command: resumes
from the last checkpoint and reproduces the uninterrupted run's per-step losses and data order."""
import json
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = str(pathlib.Path(__file__).with_name("_engine_worker.py"))
STEPS = 6


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _popen(args, env, devices=None):
    env = dict(env)
    if devices:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _losses(workdir):
    """Last logged record per step (a resumed run repeats steps its killed predecessor logged)."""
    records = {}
    for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            records[record["step"]] = record
    return records


@pytest.fixture(scope="module")
def multi_device_runs(tmp_path_factory, subprocess_env):
    """Starts the 1 x 8 reference (compare + train) and the 2 x 4 job together; waits for all."""
    root = tmp_path_factory.mktemp("multi")
    port = _free_port()
    procs = {"reference": _popen(["reference", root / "compare.json", root / "one_process", STEPS],
                                 subprocess_env, devices=8)}
    for pid in range(2):
        procs[f"process{pid}"] = _popen(["train", root / "two_processes", STEPS, f"127.0.0.1:{port}", 2, pid],
                                        subprocess_env, devices=4)
    results = {name: _finish(p) for name, p in procs.items()}
    for name, (rc, out) in results.items():
        assert rc == 0, f"{name} failed (rc={rc}):\n{out[-4000:]}"
    return root


def test_one_step_on_8_devices_equals_1_device(multi_device_runs):
    result = json.loads((multi_device_runs / "compare.json").read_text())
    for layout in ("data8", "data4_fsdp2"):
        rel = result[layout]["rel"]
        assert any(k.startswith("state/batch_stats") for k in rel), rel
        bad = {k: v for k, v in rel.items() if v > 1e-5}
        assert not bad, f"{layout}: params/batch stats differ from the 1-device step: {bad}"
        np.testing.assert_allclose(result[layout]["loss"], result["ref_loss"], rtol=1e-5)
        assert result[layout]["bn_mean_absmax"] > 1e-3  # running stats actually moved
    specs = result["data4_fsdp2"]["specs"]
    assert specs["backbone/Conv_0/kernel"] == "P(None, None, None, 'fsdp')" and specs["head/kernel"] == "P()"


def test_two_processes_match_one_process(multi_device_runs):
    one = _losses(multi_device_runs / "one_process")
    two = _losses(multi_device_runs / "two_processes")
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([two[s]["loss"] for s in one], [one[s]["loss"] for s in one], rtol=1e-5)
    np.testing.assert_allclose([two[s]["target_mean"] for s in one], [one[s]["target_mean"] for s in one],
                               rtol=1e-5, atol=1e-8)  # same global batches
    data = multi_device_runs / "two_processes" / "checkpoints" / str(STEPS) / "data"
    assert sorted(p.name for p in data.glob("process_*.json")) == ["process_0-of-2.json", "process_1-of-2.json"]


def test_kill9_then_rerun_resumes_exactly(tmp_path, subprocess_env):
    steps, kill_at = 20, 13
    workdir, marker = tmp_path / "run", tmp_path / "started"
    args = ["killable", workdir, steps, kill_at, marker]
    rc, out = _finish(_popen(args, subprocess_env))
    assert rc == -9, f"expected the first run to die by SIGKILL, rc={rc}:\n{out[-3000:]}"
    assert (workdir / "checkpoints").is_dir()
    rc, out = _finish(_popen(args, subprocess_env))  # the same command again
    assert rc == 0, out[-3000:]

    logged = [json.loads(l)["step"] for l in (workdir / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(l)]
    restart = next(i for i in range(1, len(logged)) if logged[i] <= logged[i - 1])
    assert logged[restart - 1] == kill_at and logged[restart] - 1 in (5, 10), logged  # resumed from a checkpoint

    # The uninterrupted reference runs in a subprocess too (kill_at -1: never killed), so both sides get the same
    # XLA flags (subprocess_env's optimisation level) and so the same floating-point code.
    rc, out = _finish(_popen(["killable", tmp_path / "uninterrupted", steps, -1, tmp_path / "ref_started"],
                             subprocess_env))
    assert rc == 0, out[-3000:]
    resumed, clean = _losses(workdir), _losses(tmp_path / "uninterrupted")
    assert sorted(resumed) == sorted(clean) == list(range(1, steps + 1))
    for key in ("loss", "target_mean"):
        np.testing.assert_allclose([resumed[s][key] for s in clean], [clean[s][key] for s in clean], rtol=1e-6)
