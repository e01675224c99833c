"""Pretrain D-PoSE's keypoint lifter on the training split's ground-truth keypoints with a detector's errors.

D-PoSE's `KeypointLifter` (`configs/dpose.py`: model.keypoint_lifter, model.lifter_pose) with its pose head is
trained alone, on the 17 COCO keypoints of the training split's labels, in D-PoSE's input frame (crop-normalised
x, y of the keypoint branch, then the 17 confidences):
- every training record gets `--augment` copies of its labels under the pipeline's own geometric augmentation
  (`data_pipelines.pipeline.geometric_labels` with geometries drawn as in training: flip, roll, scale, shift), so
  the lifter sees the keypoints D-PoSE's training crops have;
- `--noise detector` (default): the detector run `--detector` is applied to the validation split (un-augmented
  crops) and its errors there become the noise model (`hmrjax.lifting`): each step, each keypoint of each
  sample gets the error and confidence of a random held-out detection of the same keypoint in the same state
  (visible / occluded / outside the crop). `--noise none`: the ground truth, its visibility as confidence.
  `--noise train-detections`: the reference way (tools/lift_probe.py --detector): the detector's own keypoints
  on the un-augmented crops of the first `--max-train-records` training images (all when 0), no labels cache.
Loss: 50 x root-relative 3D joint MSE (the body model with the true betas) + rotation-matrix MSE (the
lift_probe loss); Adam with cosine decay, batch 256. Every 500 steps it prints PA-MPJPE on the *test* split with
the detector's own keypoints as inputs (what D-PoSE's branch will give the lifter there). The weights are
written for `--config.init.more=keypoint_lifter=FILE` with `--config.model.keypoint_lifter=WIDTH
--config.model.keypoint_heatmaps=True --config.model.lifter_pose=True` (and `lifter_frozen=True` to keep them;
the heatmap branch, whose maxima are the confidences, is the one whose inputs match).

    python tools/pretrain_lifter.py --detector RUN --data-dir DATA [--steps 3000] [--width 1024]
                                    [--noise detector|none|train-detections] [--augment 4] --weights lifter.npz [--out lift.json]
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


def augmented_labels(source_name, data_dir, data_cfg, copies, rng, max_records=0):
    """`copies` augmented label sets of every training record -> (crop keypoints [N, 17, 3], rotations
    [N, 24, 3, 3], betas [N, K]), N = records x copies; the geometry of each copy drawn as the pipeline does."""
    from scipy.spatial.transform import Rotation

    import data_pipelines
    from data_pipelines import pipeline
    from data_pipelines import transforms as tf
    src = data_pipelines.open_source(source_name, "train", data_dir)
    n = min(len(src), max_records) if max_records else len(src)
    tables = pipeline.flip_tables(data_cfg)
    size = int(data_cfg.image_size)
    kps, poses, betas = [], [], []
    for i in range(n):
        ex = pipeline.load_record(src, i, data_cfg)
        for _ in range(copies):
            geo = tf.sample_geometry(rng, data_cfg.geometry)
            lab = pipeline.geometric_labels(ex, geo, size, tables)
            kps.append(lab["keypoints2d"])
            poses.append(lab["pose"])
            betas.append(ex["betas"])
    rot = Rotation.from_rotvec(np.concatenate(poses).astype(np.float64)).as_matrix().reshape(len(poses), -1, 3, 3)
    return np.stack(kps).astype(np.float32), rot.astype(np.float32), np.stack(betas).astype(np.float32)


def training_labels(args, data_cfg):
    """`augmented_labels` of the detector run's training split, read from / written to `--labels-cache`."""
    cache = pathlib.Path(args.labels_cache) if args.labels_cache else None
    settings = np.asarray([args.augment, args.max_train_records, args.seed])
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if "settings" not in z.files or not np.array_equal(z["settings"], settings):
                raise SystemExit(f"{cache}: written with other --augment / --max-train-records / --seed; "
                                 f"delete it or pass another --labels-cache")
            return z["keypoints2d"], z["rot"], z["betas"]
    if args.labels_only and cache is None:
        raise SystemExit("--labels-only needs --labels-cache")
    labels = augmented_labels(str(data_cfg.name), args.data_dir or str(data_cfg.data_dir), data_cfg, args.augment,
                              np.random.default_rng([args.seed, 1]), args.max_train_records)
    if cache is not None:
        from hmrjax import fileio
        fileio.savez(cache, {**dict(zip(("keypoints2d", "rot", "betas"), labels)), "settings": settings})
    return labels


def lifter_inputs(xy, conf):
    """[N, 17, 2] crop-normalised keypoints, [N, 17] confidences -> [N, 51], D-PoSE's lifter input layout."""
    return np.concatenate([np.asarray(xy).reshape(len(xy), -1), np.asarray(conf)], -1).astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", required=True, help="a detector2d run (its data config is used)")
    ap.add_argument("--data-dir", default="", help="default: the detector run's config.data.data_dir")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--noise", choices=("detector", "none", "train-detections"), default="detector")
    ap.add_argument("--nearest-images", type=int, default=0, help="--noise detector: 0 draws each keypoint's "
                    "error alone; n > 0 all errors of one of the n held-out images with the closest states")
    ap.add_argument("--augment", type=int, default=4, help="augmented copies of each training record's labels")
    ap.add_argument("--max-train-records", type=int, default=0)
    ap.add_argument("--labels-cache", default="", help=".npz: reuse the augmented labels if it exists, else write")
    ap.add_argument("--labels-only", action="store_true", help="write --labels-cache and stop (the detector run's "
                    "config only)")
    ap.add_argument("--body", default="anny_lite")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default="", help="write the lifter here (.npz) for config.init.more")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    import jax
    import jax.numpy as jnp
    import optax

    from hmrjax import body as body_lib
    from hmrjax import lifting
    from hmrjax.evaluate import chordal_mean_rotation, load_config
    from hmrjax.geometry import rotations
    from hmrjax.methods.dpose import KeypointLifter
    from lift_probe import detect_split, lifting_functions

    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    data_cfg = load_config(args.detector).data
    if args.noise == "train-detections":
        det_tr = detect_split(args.detector, "train", args.max_train_records)
        kp_tr, rot_tr, betas_tr = det_tr["keypoints2d"], det_tr["rot"], det_tr["betas"]
        x_tr = lifter_inputs(det_tr["xy"], det_tr["conf"])
    else:
        kp_tr, rot_tr, betas_tr = training_labels(args, data_cfg)
    print(f"{len(kp_tr)} augmented training label sets in {time.time() - t0:.0f} s", flush=True)
    if args.labels_only:
        return
    held_out = detect_split(args.detector, "validation")
    test = detect_split(args.detector, "test")
    pool = lifting.error_pool(held_out["xy"], held_out["conf"], held_out["keypoints2d"])
    print(f"detector on validation ({len(held_out['xy'])}) / test ({len(test['xy'])}) in {time.time() - t0:.0f} s; "
          f"error pool {pool.summary()}", flush=True)
    x_te = lifter_inputs(test["xy"], test["conf"])

    body = body_lib.load(args.body, num_betas=betas_tr.shape[-1])
    nj = rot_tr.shape[1]
    init6 = np.asarray(rotations.matrix_to_rot6d(jnp.asarray(chordal_mean_rotation(rot_tr[:3000]), jnp.float32)))
    net = KeypointLifter(args.width, nj, tuple(init6.reshape(-1).tolist()))
    params = net.init(jax.random.key(args.seed), x_te[:2])["params"]
    tx = optax.adam(optax.cosine_decay_schedule(args.lr, args.steps, 0.02))
    opt = tx.init(params)
    step, pa = lifting_functions(lambda p, x: rotations.rot6d_to_matrix(net.apply({"params": p}, x)[1]), body, tx)

    def test_pa(p):
        return float(np.concatenate([np.asarray(pa(p, x_te[k:k + 250], test["rot"][k:k + 250],
                                                   test["betas"][k:k + 250])) for k in range(0, len(x_te), 250)]).mean())

    curve, t1 = [], time.time()
    for i in range(args.steps):
        idx = rng.integers(0, len(kp_tr), args.batch)
        gt = kp_tr[idx]
        if args.noise == "detector":
            x = lifter_inputs(*lifting.sample_detections(pool, gt, rng, args.nearest_images))
        elif args.noise == "none":
            x = lifter_inputs(gt[..., :2], gt[..., 2])
        else:
            x = x_tr[idx]
        params, opt, val = step(params, opt, x, rot_tr[idx], betas_tr[idx])
        if (i + 1) % 500 == 0 or i + 1 == args.steps:
            curve.append({"step": i + 1, "loss": float(val), "test_pa_mpjpe": test_pa(params),
                          "seconds": time.time() - t1})
            print(f"step {i + 1:>5}  loss {float(val):.4f}  test PA-MPJPE (detector keypoints) "
                  f"{curve[-1]['test_pa_mpjpe']:6.1f} mm  {time.time() - t1:5.0f} s", flush=True)
    if args.weights:
        from hmrjax.nn.backbones.convert import save_variables
        save_variables({"params": jax.device_get(params)}, args.weights)
        print("wrote", args.weights)
    if args.out:
        from hmrjax.fileio import write_json
        write_json(args.out, {"detector": args.detector, "data": str(data_cfg.name), "noise": args.noise,
                              "nearest_images": args.nearest_images,
                              "augment_copies": args.augment, "train_label_sets": int(len(kp_tr)),
                              "steps": args.steps, "batch": args.batch, "width": args.width, "lr": args.lr,
                              "error_pool": pool.summary(), "weights": args.weights,
                              "seconds": time.time() - t0, "curve": curve}, indent=1)
        print("wrote", args.out)


if __name__ == "__main__":
    main()
