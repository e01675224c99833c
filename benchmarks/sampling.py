"""Hypothesis-sampling benchmark of prob_hmr: 100 hypotheses (flow + body model) per image vs one forward pass of
the conditioning network (backbone + keypoint embedding + shape/camera head).

For each `--variants` entry (configs/prob_hmr.py variants), builds the method, a batch of `--batch` random crops
at the config's input size with consistent camera fields, initialises the parameters (the flow perturbed off its
zero-initialised identity so that its compute is not trivially skipped) and times, each jitted and compiled first:
  condition   `ProbHMRNet.encode`: image -> condition vector, betas, camera                (one forward pass)
  hypotheses  z [B, N, D] -> flow (generative direction) -> 6D -> rotation matrices -> body model (vertices, joints,
              CLIFF camera, COCO-17 projection: `ProbHMR.hypotheses`) for N = `--num-samples` hypotheses per image (default 100), from a given condition
  predict     `ProbHMR.predict(num_samples=N)`: both of the above plus the CLIFF camera (end to end)
Times are medians over `--repeats` calls. The ratio is hypotheses / condition.

    python benchmarks/sampling.py [--variants tiny,paper] [--batch 8] [--num-samples 100] [--repeats 5]
Prints a table and writes benchmarks/results/sampling.json.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def _batch(config, b: int) -> dict:
    """Random crops of the config's size with the camera fields predict reads (640 x 480 frame, f = 600 px)."""
    rng = np.random.default_rng(0)
    s = int(config.data.image_size)
    center = np.tile([[320.0, 240.0]], (b, 1))
    side = np.full(b, 300.0)
    k = s / side
    crop = np.zeros((b, 2, 3))
    crop[:, 0, 0] = crop[:, 1, 1] = k
    crop[:, :, 2] = -(center - side[:, None] / 2) * k[:, None] - 0.5
    f = 600.0
    hm = rng.uniform(-0.8, 0.8, (b, 17, 1, 2)) + 0.05 * rng.standard_normal((b, 17, 8, 2))
    return {"img": rng.standard_normal((b, s, s, 3)).astype(np.float32),
            "bbox_center": center.astype(np.float32), "bbox_scale": side.astype(np.float32),
            "focal_length": np.full((b, 2), f, np.float32), "image_size": np.tile([[640.0, 480.0]], (b, 1)).astype(
                np.float32), "princpt": center.astype(np.float32), "crop_transform": crop.astype(np.float32),
            "cliff_bbox": np.stack([(center[:, 0] - 320) / f, (center[:, 1] - 240) / f, side / f], -1).astype(
                np.float32),
            "heatmap_samples": hm.astype(np.float32), "heatmap_conf": rng.random((b, 17)).astype(np.float32),
            "has_heatmap_samples": np.ones(b, np.float32)}


def _median_time(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compiled already; one warm call
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_variant(variant: str, b: int, n: int, repeats: int) -> dict:
    from hmrjax import methods
    from hmrjax.nn.flows import num_params
    from hmrjax.train.config_flags import load_config

    config = load_config(f"{ROOT / 'configs' / 'prob_hmr.py'}:{variant}")
    method = methods.create(config)
    batch = {k: jnp.asarray(v) for k, v in _batch(config, b).items()}
    variables = jax.jit(method.init)(jax.random.PRNGKey(0), batch)
    params = dict(variables["params"])
    leaves, tree = jax.tree.flatten(params["flow"])
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params["flow"] = jax.tree.unflatten(tree, [x + 0.01 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    variables = {**variables, "params": params}
    kp = method.keypoint_condition(batch)
    net = method.model

    def condition(v, batch):
        return net.apply(v, batch["img"], batch["cliff_bbox"], kp, method=net.encode)

    def hypotheses(v, enc, z, batch):  # flow + body model (+ CLIFF camera, projection) from a given condition
        pose6d, log_prob = net.apply(v, enc["cond"], z, method=net.generate)
        hyp = method.hypotheses({"pose6d": pose6d, "betas": enc["betas"], "cam": enc["cam"]}, batch)
        return hyp["vertices"], hyp["joints"], log_prob

    z = jax.random.normal(jax.random.PRNGKey(2), (b, n, method.flow_dim)).at[:, 0].set(0.0)
    t0 = time.perf_counter()
    cond_fn = jax.jit(condition).lower(variables, batch).compile()
    enc = cond_fn(variables, batch)
    hyp_fn = jax.jit(hypotheses).lower(variables, enc, z, batch).compile()
    pred_fn = jax.jit(method.predict, static_argnums=3).lower(variables, batch, jax.random.PRNGKey(3), n).compile()
    compile_s = time.perf_counter() - t0
    t_cond = _median_time(cond_fn, (variables, batch), repeats)
    t_hyp = _median_time(hyp_fn, (variables, enc, z, batch), repeats)
    t_pred = _median_time(pred_fn, (variables, batch, jax.random.PRNGKey(3)), repeats)
    return {"variant": variant, "backbone": config.model.backbone, "body": config.model.body,
            "image_size": int(config.data.image_size), "flow_dim": method.flow_dim, "cond_dim": method.cond_dim,
            "flow_params": num_params(variables["params"]["flow"]), "params": num_params(variables["params"]),
            "batch_size": b, "num_samples": n, "compile_s": compile_s,
            "condition_ms": 1e3 * t_cond, "hypotheses_ms": 1e3 * t_hyp, "predict_ms": 1e3 * t_pred,
            "hypotheses_ms_per_image": 1e3 * t_hyp / b, "ratio_hypotheses_to_condition": t_hyp / t_cond}


def main(argv=None) -> int:
    from hmrjax import fileio

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="tiny,paper")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sampling.json"))
    args = parser.parse_args(argv)

    rows = [bench_variant(v, args.batch, args.num_samples, args.repeats) for v in args.variants.split(",") if v]
    devices = jax.devices()
    print(f"devices: {len(devices)} x {devices[0].device_kind} ({jax.default_backend()}); batch {args.batch}, "
          f"{args.num_samples} hypotheses per image")
    print(f"{'variant':<8}{'backbone':<11}{'flow dim':>9}{'cond dim':>9}{'condition ms':>14}{'hyps ms':>10}"
          f"{'hyps ms/img':>12}{'ratio':>8}{'predict ms':>12}")
    for r in rows:
        print(f"{r['variant']:<8}{r['backbone']:<11}{r['flow_dim']:>9}{r['cond_dim']:>9}{r['condition_ms']:>14.1f}"
              f"{r['hypotheses_ms']:>10.1f}{r['hypotheses_ms_per_image']:>12.1f}"
              f"{r['ratio_hypotheses_to_condition']:>8.2f}{r['predict_ms']:>12.1f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_json(out, {
        "command": "python benchmarks/sampling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "jax": jax.__version__,
        "backend": jax.default_backend(), "device_kind": devices[0].device_kind, "num_devices": len(devices),
        "host": platform.node(), "cpu_count": os.cpu_count(), "load_average_1min": load, "note": args.note,
        "results": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
