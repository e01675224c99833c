"""Probe: how much of the articulation do 2D keypoints alone give, and how fast is it learnt on a CPU?

An MLP (Dense 1024, two residual LayerNorm-Dense-ReLU blocks, zero-initialised 6D output added to the mean
pose) reads the 17 COCO keypoints of the ground truth, normalised by the person box ((u - centre) / side,
plus the visibility flags), optionally with Gaussian noise of `--noise-px` pixels of a 128-px crop (on
train and test inputs; a trained detector's error is ~8 px there), and predicts the 24 joint rotations.
Loss = 50 x root-relative 3D joint MSE (the body model with the true betas) + rotation-matrix MSE; Adam 1e-3
with cosine decay, batch 256. Prints the test PA-MPJPE every 500 steps (the mean-pose baseline is 151.5 mm
on small 1.1.0 `test`; `pose_family_oracle.py`). A diagnostic for D-PoSE's learning target (README).

    python tools/lift_probe.py --data-dir DATA --steps 3000 [--noise-px 8] [--out lift.json]
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def keypoint_inputs(keypoints2d, bbox_center, bbox_scale):
    """[N, 17, 3] full-frame (u, v, visibility), centres [N, 2], sides [N] -> [N, 51] MLP inputs."""
    kp = np.asarray(keypoints2d, np.float64)
    side = np.asarray(bbox_scale, np.float64)[:, None, None]
    xy = (kp[..., :2] - np.asarray(bbox_center, np.float64)[:, None]) / side
    return np.concatenate([xy.reshape(len(kp), -1), kp[..., 2]], -1).astype(np.float32)


def _load(name, split, data_dir):
    """Every record of a split -> (inputs [N, 51], rotations [N, 24, 3, 3], betas [N, K]), float32."""
    import data_pipelines
    from scipy.spatial.transform import Rotation
    src = data_pipelines.open_source(name, split, data_dir)
    recs = [src[i] for i in range(len(src))]
    x = keypoint_inputs(np.stack([r["keypoints2d"] for r in recs]), np.stack([r["bbox_center"] for r in recs]),
                        np.asarray([float(r["bbox_scale"]) for r in recs]))
    rot = np.stack([Rotation.from_rotvec(np.asarray(r["pose"], np.float64)).as_matrix() for r in recs])
    return x, rot.astype(np.float32), np.stack([r["betas"] for r in recs]).astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="synthetic_humans/small")
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--noise-px", type=float, default=0.0, help="Gaussian noise, px of a 128-px crop")
    ap.add_argument("--body", default="anny_lite")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    from hmrjax import body as body_lib
    from hmrjax import metrics
    from hmrjax.evaluate import chordal_mean_rotation
    from hmrjax.geometry import rotations

    t0 = time.time()
    xtr, rtr, btr = _load(args.data, "train", args.data_dir)
    xte, rte, bte = _load(args.data, "test", args.data_dir)
    rng = np.random.default_rng(args.seed)
    sigma = args.noise_px / 128.0
    if sigma:
        xte = xte.copy()
        xte[:, :34] += rng.normal(0, sigma, xte[:, :34].shape).astype(np.float32)
    print(f"loaded {len(xtr)} train / {len(xte)} test records in {time.time() - t0:.0f} s", flush=True)
    body = body_lib.load(args.body, num_betas=btr.shape[-1])
    init6 = rotations.matrix_to_rot6d(jnp.asarray(chordal_mean_rotation(rtr[:3000]), jnp.float32))

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(1024)(x))
            for _ in range(2):
                h = h + nn.relu(nn.Dense(1024)(nn.LayerNorm()(h)))
            return nn.Dense(24 * 6, kernel_init=nn.initializers.zeros)(h).reshape(-1, 24, 6)

    net = MLP()
    params = net.init(jax.random.key(args.seed), xtr[:2])
    tx = optax.adam(optax.cosine_decay_schedule(1e-3, args.steps, 0.02))
    opt = tx.init(params)
    pose = lambda p, x: rotations.rot6d_to_matrix(init6 + net.apply(p, x))
    joints = lambda rot, b: body(pose=rot, betas=b).joints

    def loss(p, x, r, b):
        rot = pose(p, x)
        j, g = joints(rot, b), joints(r, b)
        return 50.0 * jnp.mean(jnp.square((j - j[:, :1]) - (g - g[:, :1]))) + jnp.mean(jnp.square(rot - r))

    @jax.jit
    def step(p, o, x, r, b):
        val, g = jax.value_and_grad(loss)(p, x, r, b)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, val

    pa = jax.jit(lambda p, x, r, b: metrics.pa_mpjpe(joints(pose(p, x), b), joints(r, b)))
    curve, t0 = [], time.time()
    for i in range(args.steps):
        idx = rng.integers(0, len(xtr), 256)
        x = xtr[idx].copy()
        if sigma:
            x[:, :34] += rng.normal(0, sigma, x[:, :34].shape).astype(np.float32)
        params, opt, val = step(params, opt, x, rtr[idx], btr[idx])
        if (i + 1) % 500 == 0 or i + 1 == args.steps:
            e = np.concatenate([np.asarray(pa(params, xte[k:k + 250], rte[k:k + 250], bte[k:k + 250]))
                                for k in range(0, len(xte), 250)])
            curve.append({"step": i + 1, "loss": float(val), "test_pa_mpjpe": float(e.mean()),
                          "seconds": time.time() - t0})
            print(f"step {i + 1:>5}  loss {float(val):.4f}  test PA-MPJPE {e.mean():6.1f} mm  "
                  f"{time.time() - t0:5.0f} s", flush=True)
    if args.out:
        from hmrjax.fileio import write_json
        write_json(args.out, {"data": args.data, "noise_px_at_128": args.noise_px, "steps": args.steps,
                              "batch": 256, "curve": curve}, indent=1)
        print("wrote", args.out)


if __name__ == "__main__":
    main()
