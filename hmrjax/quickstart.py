"""The README's main job: train D-PoSE on the synthetic data on this machine, evaluate it, draw it.

`hmrjax quickstart --out out/dpose` (what `make demo` runs) does, in order:
  1. builds the synthetic dataset named by the config (`synthetic_humans/tiny` by default) in `--data-dir`
     if it is not there yet (a finished build is reused);
  2. trains `configs/dpose.py:tiny` (or `--config`) in `<out>/run` with a progress bar, for
     `config.total_steps` steps or at most `--minutes` of wall-clock time (it checkpoints and stops; a rerun
     resumes from the checkpoint);
  3. evaluates the checkpoint on the `test` split beside the mean-pose/mean-shape baseline and writes
     `<out>/metrics.json` and `<out>/predictions.png` (input with GT keypoints | predicted mesh | GT mesh |
     predicted vs GT depth | predicted vs GT part segmentation);
  4. prints a table: model vs baseline for MPJPE, PA-MPJPE, PVE (mm) and the part-segmentation IoU.
`run(...)` is the same as a function (used by notebooks/02_train_dpose.ipynb).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import time

__all__ = ["DEFAULT_CONFIG", "run", "summary_table"]

DEFAULT_CONFIG = "configs/dpose.py:tiny"
TABLE_KEYS = ("mpjpe", "pa_mpjpe", "pve", "part_seg_iou")


def _repo_config_path(spec: str) -> str:
    """`configs/x.py[:arg]` relative to the working directory, else to the repository this package sits in."""
    path, sep, arg = spec.partition(":")
    if not os.path.isfile(path):
        repo = pathlib.Path(__file__).resolve().parent.parent
        if (repo / path).is_file():
            path = str(repo / path)
    return path + sep + arg


def _ensure_data(config) -> None:
    """Builds config.data.name (a `synthetic_humans/<cfg>` name) in config.data.data_dir if missing."""
    base, _, cfg = str(config.data.name).partition("/")
    if base != "synthetic_humans":
        return  # real datasets are prepared by their own builders
    import tensorflow_datasets as tfds
    from data_pipelines.synthetic import builder
    root = config.data.data_dir or os.fspath(tfds.core.constants.DATA_DIR)
    path = builder.dataset_path(cfg or "tiny", root)
    if not (path / "dataset_info.json").exists():
        print(f"[1/3] building synthetic_humans/{cfg or 'tiny'} in {root} (once)")
    t0 = time.perf_counter()
    builder.build(cfg or "tiny", root, num_workers=min(os.cpu_count() or 1, 4))
    config.data.data_dir = root
    print(f"[1/3] data ready: synthetic_humans/{cfg or 'tiny'} in {root} ({time.perf_counter() - t0:.0f} s)")


def summary_table(metrics: dict) -> str:
    """A plain-text table of the model vs the mean-pose/mean-shape baseline from an eval metrics dict."""
    base = metrics.get("baseline", {})
    rows = [f"{'metric (mm)':<16}{'model':>10}{'baseline':>10}{'ratio':>8}"]
    for key in TABLE_KEYS:
        if key not in metrics:
            continue
        m, b = float(metrics[key]), base.get(key)
        fmt = "10.3f" if key == "part_seg_iou" else "10.1f"
        ratio = f"{m / float(b):8.2f}" if isinstance(b, (int, float)) and float(b) else f"{'':>8}"
        rows.append(f"{key:<16}{format(m, fmt)}{'' if b is None else format(float(b), fmt):>10}{ratio}")
    return "\n".join(rows)


def run(out_dir="out/dpose", config: str = DEFAULT_CONFIG, *, data_dir: str = "", minutes: float = 0.0,
        overrides=(), split: str = "test", max_eval_examples=None) -> dict:
    """Builds data if needed, trains, evaluates; returns the eval metrics dict (with `paths`).

    config: `file.py[:arg]`; overrides: ("key=value", ...) applied like `--config.key=value`;
    minutes > 0 caps the training loop's wall-clock time (`config.max_train_minutes`).
    """
    from hmrjax.evaluate import evaluate_workdir
    from hmrjax.train import config_flags
    from hmrjax.train.trainer import train_and_evaluate

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_flags.load_config(_repo_config_path(config))
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must be key=value")
        config_flags.set_override(cfg, key.removeprefix("--config.").removeprefix("config."), value)
    if data_dir:
        cfg.data.data_dir = str(data_dir)
    if minutes:
        cfg.max_train_minutes = float(minutes)
    _ensure_data(cfg)

    t0 = time.perf_counter()
    print(f"[2/3] training {cfg.method} ({config}) for {cfg.total_steps} steps"
          + (f" or {cfg.max_train_minutes:g} min" if cfg.get("max_train_minutes") else "") + f" in {out / 'run'}")
    train_and_evaluate(cfg, out / "run")
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    print(f"[3/3] evaluating on '{split}' beside the mean-pose/mean-shape baseline")
    result = evaluate_workdir(out / "run", split, max_examples=max_eval_examples, out=out / "run" / "eval" / split)
    paths = result.pop("paths", {})
    result["train_seconds"] = round(train_s, 1)
    result["eval_seconds"] = round(time.perf_counter() - t0, 1)
    from hmrjax.fileio import write_json
    write_json(out / "metrics.json", result)
    copied = {"metrics": str(out / "metrics.json")}
    if "predictions" in paths:
        shutil.copyfile(paths["predictions"], out / "predictions.png.tmp")
        os.replace(out / "predictions.png.tmp", out / "predictions.png")
        copied["predictions"] = str(out / "predictions.png")
    print(summary_table(result))
    result["paths"] = copied
    return result
