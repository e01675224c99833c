"""Body-model throughput: hmrjax (jit, CPU) vs smplx (PyTorch, CPU), forward and forward+backward.

Random models with the official sizes: SMPL-sized (6890 vertices, 24 joints, 207 pose blend shapes,
10 betas) and SMPL-X-sized (10475 vertices, 55 joints, 486 pose blend shapes, 10 betas + 10 expression,
51 landmarks). Forward = vertices + joints of a batch of random poses; forward+backward = gradient of
sum(vertices) w.r.t. pose and betas. Times are medians over repeats after warm-up, the libraries' calls
interleaved round-robin (shared machines); meshes/s = batch / time (the JSON also keeps the best time).
Both libraries get the same CPU threads: torch.set_num_threads(N); XLA uses its default pool on the same cores,
or a single thread (XLA_FLAGS) with `--threads 1`, the fairest setting on a busy machine.

    python benchmarks/body_model.py                       # batches 1, 64, 512; writes benchmarks/results/body_model.json
    python benchmarks/body_model.py --batches 1 64 --repeats 5 --models smpl
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SIZES = {"smpl": (6890, 24), "smplx": (10475, 55)}
_BODY = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
PARENTS = {
    "smpl": _BODY + [20, 21],
    "smplx": _BODY + [15, 15, 15] + [20 if k % 3 == 0 else 24 + k for k in range(15)]
    + [21 if k % 3 == 0 else 39 + k for k in range(15)],
}


def random_model(kind: str, seed: int = 0) -> dict:
    """Random arrays in the official file layout (values only need to be plausible for timing)."""
    rng = np.random.default_rng(seed)
    nv, nj = SIZES[kind]
    v = rng.normal(size=(nv, 3)) * [0.25, 0.6, 0.12]
    reg = np.zeros((nj, nv))
    for j in range(nj):
        reg[j, rng.choice(nv, 8, replace=False)] = 1 / 8
    w = rng.uniform(size=(nv, nj)) ** 8
    w /= w.sum(1, keepdims=True)
    kintree = np.stack([PARENTS[kind], np.arange(nj)])
    kintree[0, 0] = 4294967295
    arrays = dict(v_template=v, shapedirs=rng.normal(size=(nv, 3, 20 if kind == "smplx" else 10)) * 0.01,
                  posedirs=rng.normal(size=(nv, 3, 9 * (nj - 1))) * 0.005, J_regressor=reg, weights=w,
                  kintree_table=kintree, f=rng.integers(0, nv, size=(2 * nv, 3)).astype(np.uint32))
    if kind == "smplx":
        for s in "lr":
            arrays[f"hands_components{s}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
            arrays[f"hands_mean{s}"] = rng.normal(size=45) * 0.1
        arrays["lmk_faces_idx"] = rng.integers(0, 2 * nv, size=51)
        arrays["lmk_bary_coords"] = np.full((51, 3), 1 / 3)
    return arrays


def interleaved_times(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Median and min seconds per call of each callable, timed round-robin so that every library sees the
    same background load (the project machines are shared)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def bench_hmrjax(kind, arrays, batch):
    """(forward, forward+backward) callables for hmrjax."""
    import jax
    import jax.numpy as jnp

    import hmrjax.body

    body = hmrjax.body.from_arrays(arrays, kind, num_betas=10, num_expression=10, use_pca=False)
    rng = np.random.default_rng(1)
    pose = jnp.asarray(rng.normal(scale=0.3, size=(batch, body.num_joints, 3)), jnp.float32)
    betas = jnp.asarray(rng.normal(size=(batch, 10)), jnp.float32)

    fwd = jax.jit(lambda m, p, b: (lambda o: (o.vertices, o.joints))(m(pose=p, betas=b)))
    bwd = jax.jit(jax.grad(lambda p, b, m: jnp.sum(m(pose=p, betas=b).vertices), argnums=(0, 1)))
    return (lambda: jax.block_until_ready(fwd(body, pose, betas)),
            lambda: jax.block_until_ready(bwd(pose, betas, body)))


def bench_smplx(kind, arrays, batch, folder):
    import torch
    import smplx

    rng = np.random.default_rng(1)
    nj = SIZES[kind][1]
    pose = torch.tensor(rng.normal(scale=0.3, size=(batch, nj, 3)), dtype=torch.float32)
    betas = torch.tensor(rng.normal(size=(batch, 10)), dtype=torch.float32)
    if kind == "smpl":
        model = smplx.SMPL(model_path=folder, data_struct=smplx.utils.Struct(**arrays), num_betas=10)

        def call(p, b):
            return model(global_orient=p[:, 0], body_pose=p[:, 1:].reshape(batch, -1), betas=b)
    else:
        path = pathlib.Path(folder) / "SMPLX_NEUTRAL.npz"
        if not path.exists():
            np.savez(path, **arrays)
        model = smplx.SMPLX(model_path=str(path), ext="npz", num_betas=10, num_expression_coeffs=10, use_pca=False,
                            batch_size=batch)

        def call(p, b):
            return model(global_orient=p[:, 0], body_pose=p[:, 1:22].reshape(batch, -1), jaw_pose=p[:, 22],
                         leye_pose=p[:, 23], reye_pose=p[:, 24], left_hand_pose=p[:, 25:40].reshape(batch, -1),
                         right_hand_pose=p[:, 40:55].reshape(batch, -1), betas=b)

    def fwd():
        with torch.no_grad():
            out = call(pose, betas)
        return out.vertices, out.joints

    def bwd():
        p, b = pose.clone().requires_grad_(True), betas.clone().requires_grad_(True)
        call(p, b).vertices.sum().backward()
        return p.grad, b.grad

    return fwd, bwd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 512])
    ap.add_argument("--models", nargs="+", default=["smpl", "smplx"], choices=sorted(SIZES))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-smplx", action="store_true", help="time hmrjax only")
    ap.add_argument("--out", default=str(HERE / "results" / "body_model.json"))
    args = ap.parse_args(argv)
    if args.threads == 1 and "jax" not in sys.modules:  # single-threaded XLA, to match torch.set_num_threads(1)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

    have_smplx = False
    if not args.no_smplx:
        try:
            import smplx  # noqa: F401
            import torch

            torch.set_num_threads(args.threads)
            have_smplx = True
        except ImportError:
            print("smplx / torch not installed: timing hmrjax only", file=sys.stderr)
    import jax

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.models:
            arrays = random_model(kind)
            for batch in args.batches:
                reps = max(3, args.repeats if batch < 512 else args.repeats // 2)
                fns = dict(zip(("hmrjax_fwd", "hmrjax_fwdbwd"), bench_hmrjax(kind, arrays, batch)))
                if have_smplx:
                    fns.update(zip(("smplx_fwd", "smplx_fwdbwd"), bench_smplx(kind, arrays, batch, folder)))
                t = interleaved_times(fns, reps)
                row = {"model": kind, "batch": batch, "repeats": reps}
                for k, (med, best) in t.items():
                    row[f"{k}_meshes_s"] = batch / med
                    row[f"{k}_meshes_s_best"] = batch / best
                if have_smplx:
                    row["fwd_ratio"] = t["smplx_fwd"][0] / t["hmrjax_fwd"][0]
                    row["fwdbwd_ratio"] = t["smplx_fwdbwd"][0] / t["hmrjax_fwdbwd"][0]
                rows.append(row)
                print(_fmt_row(row, have_smplx), flush=True) if len(rows) > 1 else print(
                    _header(have_smplx) + "\n" + _fmt_row(row, have_smplx), flush=True)

    meta = {"xla_flags": os.environ.get("XLA_FLAGS", ""), "jax": jax.__version__, "backend": jax.default_backend(), "threads": args.threads,
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg(),
            "command": "python benchmarks/body_model.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if have_smplx:
        import torch

        meta["torch"] = torch.__version__
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return rows


def _header(have_smplx):
    h = f"{'model':6} {'batch':>5} | {'hmrjax fwd':>11} {'hmrjax f+b':>11}"
    if have_smplx:
        h += f" | {'smplx fwd':>10} {'smplx f+b':>10} | {'fwd x':>6} {'f+b x':>6}"
    return h + "   (meshes/s; x = hmrjax / smplx)"


def _fmt_row(r, have_smplx):
    s = f"{r['model']:6} {r['batch']:5d} | {r['hmrjax_fwd_meshes_s']:11.1f} {r['hmrjax_fwdbwd_meshes_s']:11.1f}"
    if have_smplx:
        s += (f" | {r['smplx_fwd_meshes_s']:10.1f} {r['smplx_fwdbwd_meshes_s']:10.1f} | {r['fwd_ratio']:6.2f} "
              f"{r['fwdbwd_ratio']:6.2f}")
    return s


if __name__ == "__main__":
    main()
