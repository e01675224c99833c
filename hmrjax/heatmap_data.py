"""Runs a trained 2D detector (`hmrjax.methods.detector2d`) over a dataset and writes its heatmap-sample store.

Owns `generate` (what `hmrjax data heatmaps` runs). The store's format, the sampling and the join into the grain
pipeline live in `data_pipelines.heatmap_samples` (data code, which never imports model code); this module is
the model side that fills it.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import time
import zlib

import numpy as np

from data_pipelines import heatmap_samples as hs
from hmrjax import fileio

__all__ = ["generate", "heatmap_crop_to_full"]


def _split_records(method, variables, source, dcfg, *, batch_size: int, num_samples: int, min_conf: float,
                   seed: int, split_id: int, detect):
    """Yields encoded records for every index of `source`, in order."""
    import jax

    from data_pipelines import pipeline
    n = len(source)
    tables = pipeline.flip_tables(dcfg)

    def load(i):
        ex = pipeline.load_record(source, i, dcfg)
        inp = pipeline.prepare_example(ex, None, dcfg, train=False, tables=tables)
        mask = ex["mask"] if ex["has_mask"] else None
        return inp["img"], inp["crop_transform"], mask

    size = int(dcfg.image_size)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for start in range(0, n, batch_size):
            idx = list(range(start, min(start + batch_size, n)))
            items = list(pool.map(load, idx))
            imgs = np.stack([it[0] for it in items])
            if len(idx) < batch_size:  # one compiled shape: pad the last batch
                imgs = np.concatenate([imgs, np.zeros((batch_size - len(idx),) + imgs.shape[1:], imgs.dtype)])
            px, conf, hm = jax.device_get(detect(variables, imgs))
            hm = np.asarray(hm)[: len(idx)]
            rng = np.random.default_rng([seed, split_id, start])
            xy, values = hs.sample_heatmaps(hm, num_samples, min_conf, rng)
            for j, i in enumerate(idx):
                _, crop_tf, mask = items[j]
                kp_full = heatmap_crop_to_full(px[j], crop_tf)
                samples = hs.heatmap_px_to_full(xy[j], hm.shape[2:], size, crop_tf)
                dist = (hs.mask_distances(samples, mask) if mask is not None else np.full(values[j].shape, -1.0))
                yield hs.encode_record(np.concatenate([kp_full, conf[j][:, None]], -1), samples, values[j], dist)


def heatmap_crop_to_full(points_crop, crop_transform) -> np.ndarray:
    """Crop px [..., 2] -> full-frame px through the inverse of `crop_transform` [2, 3]."""
    from data_pipelines import transforms as tf
    return tf.apply_affine(tf.invert(np.asarray(crop_transform, np.float64)), np.asarray(points_crop, np.float64))


def generate(detector_workdir, data_dir: str, *, dataset: str | None = None, splits=None, samples_name=None,
             batch_size: int = 64, num_samples: int = hs.DEFAULT_NUM_SAMPLES, min_conf: float = hs.DEFAULT_MIN_CONF,
             seed: int = 0, step=None, flip_test=None, log=print) -> dict:
    """Runs a trained detector2d over `splits` of `dataset` and writes the store (module docstring).

    detector_workdir: a `hmrjax train` workdir of method detector2d (newest checkpoint unless `step`).
    dataset: tfds name (default: the detector's config.data.name); data_dir: its tfds folder.
    splits: default every split of the synthetic data (train, validation, test, test_occluded, test_ood).
    samples_name: store folder suffix (default: the workdir's folder name).
    flip_test: the detector's test-time flip (default: its `config.model.flip_test`, False when absent).
    Returns {"dir": store folder, "splits": {split: {"records", "seconds"}}, "seconds": total}.
    """
    import jax
    import ml_collections

    import data_pipelines
    from hmrjax import methods
    from hmrjax.evaluate import load_config, restore_variables

    config = load_config(detector_workdir)
    if config.method != "detector2d":
        raise ValueError(f"{detector_workdir} is a {config.method!r} run; `data heatmaps` needs a detector2d run")
    dataset = dataset or str(config.data.name)
    samples_name = samples_name or pathlib.Path(detector_workdir).absolute().name
    if splits is None:
        from data_pipelines.synthetic.builder import SPLITS
        splits = SPLITS
    method = methods.create(config)
    variables, det_step = restore_variables(detector_workdir, step=step, config=config)
    flip_test = bool(config.model.get("flip_test", False) if flip_test is None else flip_test)
    detect = jax.jit(lambda v, x: method.detect(v, x, flip_test))
    dcfg = ml_collections.ConfigDict(config.data.to_dict())
    dcfg.num_heatmap_samples = 0
    dcfg.heatmaps = False
    out_dir = hs.store_dir(dataset, data_dir, samples_name)
    folder = hs.dataset_folder(dataset, data_dir)
    info = {"name": samples_name, "dataset": dataset, "num_samples": int(num_samples), "min_conf": float(min_conf),
            "seed": int(seed), "flip_test": flip_test, "heatmap_size": int(config.data.heatmap_size), "crop_size": int(config.data.image_size),
            "detector_workdir": os.fspath(pathlib.Path(detector_workdir).absolute()), "detector_step": int(det_step),
            "dataset_sha256": hs._dataset_fingerprint(folder), "fields": {
                "keypoints": "[17, 3] float32 argmax (x, y) full px + confidence",
                "samples": "[17, S, 2] float32 full px", "sample_conf": "[17, S] float16 heatmap value",
                "mask_dist": "[17, S] float16 px to the person mask (0 inside, -1 no mask)"}, "splits": {}}
    old = out_dir / "info.json"
    if old.exists():  # keep splits written earlier with the same settings
        prev = json.loads(old.read_text())
        same = all(prev.get(k) == info[k] for k in ("num_samples", "min_conf", "seed", "detector_step", "flip_test",
                                                     "dataset_sha256", "detector_workdir"))
        if same:
            info["splits"] = {s: v for s, v in prev.get("splits", {}).items() if (out_dir / f"{s}.array_record").exists()}
        old.unlink()  # incomplete until rewritten
    total_t = time.perf_counter()
    for split in splits:
        t0 = time.perf_counter()
        source = data_pipelines.open_source(dataset, split, data_dir)
        count = hs.write_split(out_dir / f"{split}.array_record",
                            _split_records(method, variables, source, dcfg, batch_size=int(batch_size),
                                           num_samples=int(num_samples), min_conf=float(min_conf), seed=int(seed),
                                           split_id=zlib.crc32(split.encode()), detect=detect))
        secs = time.perf_counter() - t0
        info["splits"][split] = {"records": count, "seconds": round(secs, 2)}
        log(f"heatmaps {split}: {count} records in {secs:.1f} s -> {out_dir / (split + '.array_record')}")
    fileio.write_json(out_dir / "info.json", info)
    return {"dir": os.fspath(out_dir), "splits": info["splits"], "seconds": round(time.perf_counter() - total_t, 2)}
