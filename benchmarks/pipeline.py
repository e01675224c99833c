"""Input-pipeline benchmark: batches/s of the 224x224 train pipeline with full augmentation, and how it
scales with grain worker processes; plus a per-stage breakdown and the image-warp engine comparison.

    python benchmarks/pipeline.py [--batches 8] [--batch-size 32] [--workers 0,1,2] [--records 48]

Source: in-memory schema records like a tfds data source yields them, except that the image is kept
JPEG-encoded (so JPEG decoding is paid per example, as with a tfds source): 640x480 frames, a person
box of ~300 px, every dense field (depth, mask, part_seg, pseudo_depth) present. Pipeline: image 224,
dense maps 56, heatmaps 56, all geometric and photometric augmentations at their default
probabilities. The warp engine is 'auto' (OpenCV when importable, else PIL; run once with
`PYTHONPATH=<dir with cv2>` to compare: results go to pipeline_cv2.json). Workers are grain
`mp_prefetch` processes (the first batch, which pays their start, is
not timed). Writes benchmarks/results/pipeline.json. Numbers depend on the machine's load: the load
average is recorded with them.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ml_collections  # noqa: E402
from PIL import Image  # noqa: E402

from data_pipelines import augment, pipeline, schema  # noqa: E402
from data_pipelines import transforms as tf  # noqa: E402


def make_record(seed: int, height: int = 480, width: int = 640) -> dict:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = rng.uniform(250, 390), rng.uniform(200, 280)
    inside = ((xx - cx) / 60) ** 2 + ((yy - cy) / 130) ** 2 <= 1
    img = np.stack([xx / width * 200, yy / height * 200, np.full_like(xx, 90)], -1)
    img = img + rng.normal(0, 20, img.shape)
    img[inside] = (210, 160, 130)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    f = float(np.hypot(width, height))
    kp = np.concatenate([np.stack([cx + rng.normal(0, 40, 17), cy + rng.normal(0, 90, 17)], 1), np.ones((17, 1))], 1)
    return {
        "image": buf.getvalue(), "bbox_center": np.array([cx, cy], np.float32), "bbox_scale": np.float32(300),
        "focal_length": np.array([f, f], np.float32), "image_size": np.array([width, height], np.float32),
        "pose": rng.normal(0, 0.2, (24, 3)).astype(np.float32), "betas": rng.normal(0, 1, 10).astype(np.float32),
        "transl": np.array([0, 0, 5], np.float32),
        "joints3d": (rng.normal(0, 0.4, (24, 3)) + [0, 0, 5]).astype(np.float32),
        "keypoints2d": kp.astype(np.float32), "depth": np.where(inside, 5.0, 0.0).astype(np.float32),
        "mask": inside.astype(np.uint8), "part_seg": (inside * rng.integers(1, 25)).astype(np.uint8),
        "pseudo_depth": (1 / (1 + yy / height)).astype(np.float32),
    }


def make_config(batch_size: int, workers: int, threads: int) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict({"batch_size": batch_size, "seed": 0})
    config.data = pipeline.default_config()
    config.data.image_size = 224
    config.data.dense_size = 56
    config.data.heatmaps = True
    config.data.heatmap_size = 56
    config.data.num_workers = workers
    config.data.read_threads = threads
    return config


def time_pipeline(source, config, batches: int) -> dict:
    it = pipeline.make_train_iterator(source, config, seed=0)
    t0 = time.perf_counter()
    next(it)  # pays worker start-up / warm-up
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    dt = time.perf_counter() - t0
    close = getattr(it, "close", None)
    if close:
        close()
    return {"batches_per_s": batches / dt, "examples_per_s": batches * config.batch_size / dt,
            "first_batch_s": first}


def stage_breakdown(source, reps: int = 20) -> dict:
    """Mean ms per example of each stage, single thread."""
    cfg = make_config(32, 0, 0).data
    rng = np.random.default_rng(0)
    tables = pipeline.flip_tables(cfg)
    t = {k: 0.0 for k in ("decode_jpeg", "validate_complete", "geometry_and_labels", "photometric")}
    for i in range(reps):
        rec = source[i % len(source)]
        t0 = time.perf_counter()
        image = schema.decode_image(rec["image"], i)
        t1 = time.perf_counter()
        ex = schema.complete_example(schema.validate_example(dict(rec, image=image), i), num_joints=24, num_betas=10)
        t2 = time.perf_counter()
        no_photo = cfg.copy_and_resolve_references()
        no_photo.augment.enabled = False
        pipeline.prepare_example(ex, np.random.default_rng(i), no_photo, tables=tables)
        t3 = time.perf_counter()
        crop = tf.warp_image(ex["image"], tf.crop_transform(ex["bbox_center"], float(ex["bbox_scale"]), 224), 224)
        t4 = time.perf_counter()
        augment.photometric(crop, rng, cfg.augment)
        t5 = time.perf_counter()
        for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t5 - t4)):
            t[k] += v
    return {k: 1e3 * v / reps for k, v in t.items()}


def warp_engines(reps: int = 5, rounds: int = 8) -> dict:
    """ms per 224x224 RGB bilinear crop: PIL AFFINE (with / without the antialias reduce), scipy.ndimage and,
    when installed, OpenCV warpAffine. Best of `rounds` interleaved rounds."""
    import scipy.ndimage as ndi
    rng = np.random.default_rng(0)
    out = {}
    for name, (h, w, side) in {"640x480_box300": (480, 640, 300), "1920x1080_box900": (1080, 1920, 900)}.items():
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        m = tf.compose(tf.crop_transform((w / 2, h / 2), side, 224), tf.frame_transform(20.0, True, (w / 2, h / 2),
                                                                                        (1000.0, 1000.0)))
        inv = tf.invert(m)

        def scipy_warp():
            return np.stack([ndi.affine_transform(img[..., c], inv[::-1, ::-1], offset=inv[::-1, 2],
                                                  output_shape=(224, 224),
                                                  order=1) for c in range(3)], -1)

        engines = {"pil": lambda: tf.warp_image(img, m, 224, antialias=False, engine="pil"),
                   "pil_antialias": lambda: tf.warp_image(img, m, 224, antialias=True, engine="pil"),
                   "scipy_ndimage_order1": scipy_warp}
        if tf.resolve_engine("auto") == "cv2":
            engines["cv2"] = lambda: tf.warp_image(img, m, 224, antialias=False, engine="cv2")
            engines["cv2_antialias"] = lambda: tf.warp_image(img, m, 224, antialias=True, engine="cv2")
        best = {engine: np.inf for engine in engines}
        for fn in engines.values():
            fn()
        for _ in range(rounds):  # engines interleaved, best round kept: robust to other load on the machine
            for engine, fn in engines.items():
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                best[engine] = min(best[engine], 1e3 * (time.perf_counter() - t0) / reps)
        out.update({f"{name}/{engine}": v for engine, v in best.items()})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--records", type=int, default=48)
    p.add_argument("--out", default=None, help="default: benchmarks/results/pipeline[_cv2].json")
    args = p.parse_args(argv)
    source = [make_record(i) for i in range(args.records)]

    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                           "loadavg_start": os.getloadavg()},
               "settings": {"image_size": 224, "dense_size": 56, "heatmaps": 56, "batch_size": args.batch_size,
                            "frame": "640x480 JPEG", "augmentation": "all (defaults)",
                            "warp_engine": tf.resolve_engine("auto")},
               "pipeline": {}}
    print(f"warp engine: {tf.resolve_engine('auto')}\nstage breakdown (ms / example, 1 thread):")
    results["stages_ms"] = stage_breakdown(source)
    for k, v in results["stages_ms"].items():
        print(f"  {k:22s} {v:7.2f}")
    print("image warp engines (ms / 224x224 crop):")
    results["warp_ms"] = warp_engines()
    for k, v in results["warp_ms"].items():
        print(f"  {k:40s} {v:7.2f}")

    print(f"\n{'workers':>8} {'threads':>8} {'batches/s':>10} {'examples/s':>11} {'first batch s':>14}")
    for workers in [int(w) for w in args.workers.split(",")]:
        for threads in ((0, 2) if workers == 0 else (0,)):
            r = time_pipeline(source, make_config(args.batch_size, workers, threads), args.batches)
            results["pipeline"][f"workers={workers},threads={threads}"] = r
            print(f"{workers:8d} {threads:8d} {r['batches_per_s']:10.2f} {r['examples_per_s']:11.1f} "
                  f"{r['first_batch_s']:14.2f}")
    results["machine"]["loadavg_end"] = os.getloadavg()
    suffix = "_cv2" if tf.resolve_engine("auto") == "cv2" else ""
    out = pathlib.Path(args.out or ROOT / "benchmarks" / "results" / f"pipeline{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out} (load average {results['machine']['loadavg_start']} -> {results['machine']['loadavg_end']})")


if __name__ == "__main__":
    main()
