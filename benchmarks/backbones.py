"""Backbone throughput: forward and forward+backward images/s and achieved FLOP/s vs this machine's matmul peak.

    python benchmarks/backbones.py                       # tiny variants at 64/128 px + HRNet-W48 at 224 px, batch 8
    python benchmarks/backbones.py --configs resnet_tiny:64 hrnet_w48:224 --batch 8 --min-time 2

FLOPs per call come from XLA's cost analysis of the compiled function
(`jax.jit(f).lower(...).compile().cost_analysis()['flops']`); the peak is the best rate of a large
float32 matmul (2 N^3 FLOPs) measured in the same run, right before each row's timings, so "% peak"
compares like with like on a shared machine. Forward = eval mode (running BN stats); forward+backward = train mode (batch stats updated),
gradient of the mean of the final feature map w.r.t. all parameters. Writes benchmarks/results/backbones.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import hmrjax.nn.backbones as bb  # noqa: E402

DEFAULT_CONFIGS = ["resnet_tiny:64", "resnet_tiny:128", "hrnet_tiny:64", "hrnet_tiny:128",
                   "vit_tiny_test:64", "vit_tiny_test:128", "hrnet_w48:224"]


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def _time(fn, args, min_time: float, max_iters: int = 50) -> float:
    """Best-of seconds per call after one warm-up call (blocks on the result)."""
    jax.block_until_ready(fn(*args))
    best, total, n = float("inf"), 0.0, 0
    while (total < min_time or n < 2) and n < max_iters:
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        dt = time.perf_counter() - t
        best, total, n = min(best, dt), total + dt, n + 1
    return best


def matmul_peak(n: int, min_time: float) -> dict:
    """Achieved FLOP/s of an [n, n] @ [n, n] float32 matmul (best of several calls)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda x, y: x @ y).lower(a, a).compile()
    sec = _time(f, (a, a), min_time)
    return {"n": n, "seconds": sec, "flops_per_s": 2 * n ** 3 / sec}


def _random_variables(shapes, seed=0):
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = getattr(path[-1], "key", "")
        if name == "var":
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32)
        if name == "scale":
            return jnp.ones(leaf.shape, jnp.float32)
        return jnp.asarray(0.02 * rng.standard_normal(leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def bench_one(arch: str, size: int, batch: int, min_time: float) -> dict:
    model = bb.create(arch)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((batch, size, size, 3)), jnp.float32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x[:1]))
    variables = _random_variables(shapes)
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))

    def forward(v, x):
        return model.apply(v, x, train=False)["features"]

    def loss(params, rest, x):
        out, upd = model.apply({"params": params, **rest}, x, train=True, mutable=["batch_stats"]) \
            if rest else (model.apply({"params": params}, x, train=True), {})
        return jnp.mean(out["features"].astype(jnp.float32)), upd

    def fwd_bwd(v, x):
        params = v["params"]
        rest = {k: t for k, t in v.items() if k != "params"}
        (val, upd), grads = jax.value_and_grad(loss, has_aux=True)(params, rest, x)
        return val, grads, upd

    row = {"arch": arch, "size": size, "batch": batch, "params": n_params}
    for name, fn in (("fwd", forward), ("fwd_bwd", fwd_bwd)):
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(variables, x).compile()
        row[f"{name}_compile_s"] = round(time.perf_counter() - t0, 2)
        sec = _time(compiled, (variables, x), min_time)
        flops = _flops(compiled)
        row[f"{name}_s"] = sec
        row[f"{name}_img_per_s"] = batch / sec
        row[f"{name}_gflop"] = flops / 1e9
        row[f"{name}_flops_per_s"] = flops / sec
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="*", default=DEFAULT_CONFIGS, help="arch:size entries")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per measurement")
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "backbones.json"))
    args = ap.parse_args(argv)

    peak = matmul_peak(args.matmul_n, args.min_time)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} CPUs visible; "
          f"f32 matmul {args.matmul_n}^2 peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    hdr = (f"{'arch':16s} {'px':>4s} {'params':>11s} | {'fwd img/s':>9s} {'GFLOP/img':>9s} {'GFLOP/s':>8s} "
           f"{'%peak':>6s} | {'f+b img/s':>9s} {'GFLOP/img':>9s} {'GFLOP/s':>8s} {'%peak':>6s} | compile s")
    hdr += " | peak GFLOP/s"
    print(hdr + "\n" + "-" * len(hdr), flush=True)
    for cfg in args.configs:
        arch, size = cfg.rsplit(":", 1)
        pk = matmul_peak(args.matmul_n, args.min_time)["flops_per_s"]
        r = bench_one(arch, int(size), args.batch, args.min_time)
        pk = max(pk, matmul_peak(args.matmul_n, args.min_time)["flops_per_s"])  # best of before / after
        r["matmul_peak_flops_per_s"] = pk
        r["fwd_pct_peak"] = 100 * r["fwd_flops_per_s"] / pk
        r["fwd_bwd_pct_peak"] = 100 * r["fwd_bwd_flops_per_s"] / pk
        rows.append(r)
        print(f"{arch:16s} {size:>4s} {r['params']:>11,d} | {r['fwd_img_per_s']:9.1f} "
              f"{r['fwd_gflop'] / args.batch:9.3f} {r['fwd_flops_per_s'] / 1e9:8.1f} {100 * r['fwd_flops_per_s'] / pk:5.1f}% | "
              f"{r['fwd_bwd_img_per_s']:9.1f} {r['fwd_bwd_gflop'] / args.batch:9.3f} "
              f"{r['fwd_bwd_flops_per_s'] / 1e9:8.1f} {100 * r['fwd_bwd_flops_per_s'] / pk:5.1f}% | "
              f"{r['fwd_compile_s']:.0f}/{r['fwd_bwd_compile_s']:.0f} | {pk / 1e9:.1f}", flush=True)
    result = {"command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
              "jax": jax.__version__, "backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
              "host": platform.node(), "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
              "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "matmul_peak": peak, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
