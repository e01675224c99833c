"""Probe: how much of the articulation do 2D keypoints alone give, and how fast is it learnt on a CPU?

An MLP (Dense 1024, two residual LayerNorm-Dense-ReLU blocks, zero-initialised 6D output added to the mean
pose) reads the 17 COCO keypoints of the ground truth, normalised by the person box ((u - centre) / side,
plus the visibility flags), optionally with Gaussian noise of `--noise-px` pixels of a 128-px crop (on
train and test inputs; a trained detector's error is ~8 px there), and predicts the 24 joint rotations.
Loss = 50 x root-relative 3D joint MSE (the body model with the true betas) + rotation-matrix MSE; Adam 1e-3
with cosine decay, batch 256. Prints the test PA-MPJPE every 500 steps (the mean-pose baseline is 151.5 mm
on small 1.1.0 `test`; `pose_family_oracle.py`). A diagnostic for D-PoSE's learning target (README).
`--detector RUN` replaces the ground-truth keypoints (train and test) by a trained 2D detector's (a
`configs/detector2d.py` run): its argmax keypoints on the un-augmented crops of each split (the evaluation
pipeline; no flip test, as D-PoSE's keypoint branch), in the same box-normalised frame, with the heatmap
maxima in place of the visibility flags. `--batch` sets the batch (256; D-PoSE's tiny runs use 16).
Two corruptions of the ground truth ask what an image-based 2D stage can give at best:
`--hide-invisible` zeroes the coordinates of the keypoints the ground truth marks invisible (a perfect detector
of what is visible, which knows what it cannot see); `--swap-frac F` swaps the left / right labels of all
keypoints in a fraction F of the images (train and test: a detector that mistakes which way the person faces).

    python tools/lift_probe.py --data-dir DATA --steps 3000 [--noise-px 8] [--hide-invisible] [--swap-frac F]
                               [--detector RUN] [--out lift.json]
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


def hide_invisible(x):
    """Inputs [N, 51] of `keypoint_inputs` -> the same with the coordinates of invisible keypoints zeroed."""
    x = np.array(x, np.float32, copy=True)
    x[:, :34] *= np.repeat(x[:, 34:] > 0, 2, axis=1)
    return x


def swap_left_right(x, frac, rng):
    """Inputs [N, 51] -> (inputs with all keypoint labels of a random `frac` of the rows swapped left <-> right
    (coordinates and flags; the positions in the image stay), which rows [N] bool)."""
    from hmrjax.body import layouts
    perm = layouts.flip_permutation(layouts.COCO17)
    cols = np.concatenate([np.stack([2 * perm, 2 * perm + 1], -1).reshape(-1), 34 + perm])   # (x, y)s, then flags
    x = np.array(x, np.float32, copy=True)
    rows = rng.random(len(x)) < frac
    x[rows] = x[rows][:, cols]
    return x, rows


def lifting_functions(pose, body, tx):
    """pose(params, inputs) -> rotations [B, 24, 3, 3]; body: the body model; tx: the optax optimizer ->
    jitted (step(params, opt_state, x, rot, betas) -> (params, opt_state, loss), pa(params, x, rot, betas) ->
    PA-MPJPE [B] mm). Loss: 50 x root-relative 3D joint MSE (true betas) + rotation-matrix MSE."""
    import jax
    import jax.numpy as jnp
    import optax

    from hmrjax import metrics
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

    return step, jax.jit(lambda p, x, r, b: metrics.pa_mpjpe(joints(pose(p, x), b), joints(r, b)))


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


def detect_split(workdir, split, max_records=0):
    """A detector run's keypoints on the records of `split` (the run's data config, evaluation pipeline: the
    un-augmented box crops; no flip test) -> {'xy' [N, 17, 2] crop-normalised argmax keypoints (x, y in
    [-1, 1], D-PoSE's keypoint-branch frame), 'conf' [N, 17] heatmap maxima, 'keypoints2d' [N, 17, 3] the
    ground truth in the same frame, 'rot' [N, 24, 3, 3], 'betas' [N, K]}. max_records > 0: the first ones only."""
    import jax
    from scipy.spatial.transform import Rotation

    import data_pipelines
    from hmrjax import methods
    from hmrjax.evaluate import load_config, restore_variables
    config = load_config(workdir)
    method = methods.create(config)
    variables, _ = restore_variables(workdir, config=config)
    detect = jax.jit(lambda v, x: method.detect(v, x, False)[:2])
    out = {"xy": [], "conf": [], "keypoints2d": [], "rot": [], "betas": []}
    count = 0
    for batch in data_pipelines.build_eval_dataset(config, split):
        batch = {k: np.asarray(v) for k, v in dict(batch).items()}
        keep = batch["valid"] > 0
        px, conf = (np.asarray(a, np.float64) for a in jax.device_get(detect(variables, batch["img"])))
        size = batch["img"].shape[1]
        out["xy"].append(((px + 0.5) / size * 2.0 - 1.0)[keep])       # crop px -> crop-normalised
        out["conf"].append(conf[keep])
        out["keypoints2d"].append(batch["keypoints2d"][keep])
        out["rot"].append(Rotation.from_rotvec(batch["pose"][keep].reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3))
        out["betas"].append(batch["betas"][keep])
        count += int(keep.sum())
        if max_records and count >= max_records:
            break
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def _load_detected(workdir, split):
    """A detector run's keypoints on every record of `split` (`detect_split`) -> (inputs [N, 51] as
    `keypoint_inputs` with heatmap maxima as the third column, rotations, betas)."""
    d = detect_split(workdir, split)
    xy = d["xy"] / 2.0          # crop-normalised -> (u - centre) / side (crop side = box side)
    return np.concatenate([xy.reshape(len(xy), -1), d["conf"]], -1), d["rot"], d["betas"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="synthetic_humans/small")
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--noise-px", type=float, default=0.0, help="Gaussian noise, px of a 128-px crop")
    ap.add_argument("--body", default="anny_lite")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detector", default="", help="a detector2d run: its keypoints instead of the ground truth")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--hide-invisible", action="store_true", help="zero the invisible keypoints' coordinates")
    ap.add_argument("--swap-frac", type=float, default=0.0, help="fraction of images with left/right swapped")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    from hmrjax import body as body_lib
    from hmrjax.evaluate import chordal_mean_rotation
    from hmrjax.geometry import rotations

    t0 = time.time()
    load = (lambda split: _load_detected(args.detector, split)) if args.detector else (
        lambda split: _load(args.data, split, args.data_dir))
    xtr, rtr, btr = load("train")
    xte, rte, bte = load("test")
    rng = np.random.default_rng(args.seed)
    if args.hide_invisible:
        xtr, xte = hide_invisible(xtr), hide_invisible(xte)
    swapped = np.zeros(len(xte), bool)
    if args.swap_frac:
        xtr, _ = swap_left_right(xtr, args.swap_frac, rng)
        xte, swapped = swap_left_right(xte, args.swap_frac, rng)
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
    step, pa = lifting_functions(lambda p, x: rotations.rot6d_to_matrix(init6 + net.apply(p, x)), body, tx)
    curve, t0 = [], time.time()
    for i in range(args.steps):
        idx = rng.integers(0, len(xtr), args.batch)
        x = xtr[idx].copy()
        if sigma:
            x[:, :34] += rng.normal(0, sigma, x[:, :34].shape).astype(np.float32)
        params, opt, val = step(params, opt, x, rtr[idx], btr[idx])
        if (i + 1) % 500 == 0 or i + 1 == args.steps:
            e = np.concatenate([np.asarray(pa(params, xte[k:k + 250], rte[k:k + 250], bte[k:k + 250]))
                                for k in range(0, len(xte), 250)])
            curve.append({"step": i + 1, "loss": float(val), "test_pa_mpjpe": float(e.mean()),
                          "seconds": time.time() - t0})
            if swapped.any():
                curve[-1].update(test_pa_mpjpe_swapped=float(e[swapped].mean()),
                                 test_pa_mpjpe_unswapped=float(e[~swapped].mean()))
            print(f"step {i + 1:>5}  loss {float(val):.4f}  test PA-MPJPE {e.mean():6.1f} mm  "
                  + (f"(swapped {e[swapped].mean():6.1f}, others {e[~swapped].mean():6.1f})  "
                     if swapped.any() else "") + f"{time.time() - t0:5.0f} s", flush=True)
    if args.out:
        from hmrjax.fileio import write_json
        write_json(args.out, {"data": args.data, "noise_px_at_128": args.noise_px, "steps": args.steps,
                              "batch": args.batch, "detector": args.detector, "hide_invisible": args.hide_invisible,
                              "swap_frac": args.swap_frac, "curve": curve}, indent=1)
        print("wrote", args.out)


if __name__ == "__main__":
    main()
