"""Train-step benchmark: step time, images/s and achieved FLOP/s vs this machine's measured matmul peak.

For every registered method that has `configs/<method>.py`, builds the `--variant` config (default
tiny), jits the real train step (hmrjax.train.trainer.make_train_step over a mesh of all devices), runs
it `--steps` times on one device-resident batch (compute only: the input pipeline is not timed), and
reads the step's FLOPs from XLA's cost analysis of the compiled program. The peak is measured in the
same run: the best of a few square matmuls (float32 on CPU, bfloat16 on GPU/TPU).

    python benchmarks/train_step.py [--variant tiny] [--steps 50] [--methods toy,dpose]
Prints a table and writes benchmarks/results/train_step.json.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def _flops(compiled) -> float | None:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per device program
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    return float(analysis["flops"])


def matmul_peak(seconds: float = 2.0) -> dict:
    """Best achieved FLOP/s of an n x n matmul on device 0 (n and dtype suited to the backend)."""
    on_cpu = jax.default_backend() == "cpu"
    dtype = jnp.float32 if on_cpu else jnp.bfloat16
    best = {"flops_per_s": 0.0}
    for n in ((512, 1024, 2048) if on_cpu else (4096, 8192)):
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
        b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
        f = jax.jit(jnp.dot)
        f(a, b).block_until_ready()
        reps, start = 0, time.perf_counter()
        while True:
            f(a, b).block_until_ready()
            reps += 1
            elapsed = time.perf_counter() - start
            if elapsed > seconds / 3 or reps >= 200:
                break
        rate = 2.0 * n ** 3 * reps / elapsed
        if rate > best["flops_per_s"]:
            best = {"flops_per_s": rate, "n": n, "dtype": jnp.dtype(dtype).name}
    return best


def bench_method(name: str, variant: str, steps: int) -> dict:
    from hmrjax import methods
    from hmrjax.train import mesh as mesh_lib, optim, trainer
    from hmrjax.train.config_flags import load_config

    config = load_config(f"{ROOT / 'configs' / (name + '.py')}:{variant}")
    method = methods.create(config)
    tx = optim.make_optimizer(config.optim, config.total_steps)
    mesh = mesh_lib.make_mesh(config.mesh)
    local = next(iter(trainer.resolve_dataset(config)))
    batch = mesh_lib.global_batch(mesh, local)
    init_fn = trainer.make_init_fn(method, tx, config)
    rng = jax.random.PRNGKey(0)
    shardings = trainer.state_shardings(mesh, config.partition_rules, jax.eval_shape(init_fn, rng, batch))
    state = jax.jit(init_fn, out_shardings=shardings)(rng, batch)
    step = jax.jit(trainer.make_train_step(method, tx, config), out_shardings=(shardings, None),
                   donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    flops = _flops(compiled)
    for _ in range(3):  # warm-up
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    step_s = (time.perf_counter() - start) / steps
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
    return {"method": name, "variant": variant, "batch_size": int(config.batch_size),
            "compute_dtype": str(config.compute_dtype), "params": num_params, "compile_s": compile_s,
            "step_ms": step_s * 1e3, "images_per_s": config.batch_size / step_s,
            "flops_per_step": flops, "flops_per_s": None if flops is None else flops / step_s}


def main(argv=None) -> int:
    from hmrjax import methods
    from hmrjax.train import logging as log_lib

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="tiny")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--methods", default="", help="comma-separated (default: all registered with a config)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_step.json"))
    args = parser.parse_args(argv)

    names = [n for n in (args.methods.split(",") if args.methods else methods.registered())
             if (ROOT / "configs" / f"{n}.py").exists()]
    peak = matmul_peak()
    rows = []
    for name in names:
        try:
            row = bench_method(name, args.variant, args.steps)
        except Exception as err:  # a method without data or a variant is reported, not fatal
            row = {"method": name, "variant": args.variant, "error": f"{type(err).__name__}: {err}"}
        if row.get("flops_per_s"):
            row["fraction_of_matmul_peak"] = row["flops_per_s"] / peak["flops_per_s"]
        rows.append(row)

    devices = jax.devices()
    print(f"devices: {len(devices)} x {devices[0].device_kind} ({jax.default_backend()}); matmul peak "
          f"{peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['dtype']}, n={peak['n']})")
    print(f"{'method':<10}{'variant':<8}{'batch':>6}{'params':>10}{'step ms':>10}{'img/s':>10}"
          f"{'GFLOP/step':>12}{'GFLOP/s':>10}{'% peak':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<10}{r['variant']:<8}  error: {r['error']}")
            continue
        gf = r["flops_per_step"] / 1e9 if r["flops_per_step"] else float("nan")
        gfs = r["flops_per_s"] / 1e9 if r["flops_per_s"] else float("nan")
        print(f"{r['method']:<10}{r['variant']:<8}{r['batch_size']:>6}{r['params']:>10}{r['step_ms']:>10.2f}"
              f"{r['images_per_s']:>10.1f}{gf:>12.4f}{gfs:>10.2f}{100 * r.get('fraction_of_matmul_peak', float('nan')):>8.2f}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_lib.write_json_atomic(out, {
        "command": "python benchmarks/train_step.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "jax": jax.__version__,
        "backend": jax.default_backend(), "device_kind": devices[0].device_kind, "num_devices": len(devices),
        "host": platform.node(), "cpu_count": os.cpu_count(), "matmul_peak": peak, "results": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
