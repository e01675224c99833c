"""Datasets for hmrjax: the example schema (`schema`), the grain input pipeline (`pipeline`, `transforms`,
`augment`, `heatmaps`) and tfds builders (`synthetic/`: the default `synthetic_humans`).

The trainer and evaluator call
    ds = data_pipelines.build_train_dataset(config, process_index, process_count)   # grain.IterDataset
    ev = data_pipelines.build_eval_dataset(config, split, process_index, process_count)
which open `config.data.name` (a tfds name such as "synthetic_humans/tiny") in `config.data.data_dir` as a
random-access ArrayRecord data source (no TensorFlow) and hand it to `pipeline.make_train_dataset` /
`make_eval_dataset`. A missing `synthetic_humans/tiny` is built on the spot (seconds); larger synthetic
configs must be built first with `hmrjax data synth --config small --data-dir DIR`.
Importing this package is cheap: tfds, grain and the renderer load on first use.
"""
from __future__ import annotations

import logging
import os

__all__ = ["open_source", "open_config_source", "build_train_dataset", "build_eval_dataset"]

_LOG = logging.getLogger(__name__)
_AUTO_BUILD = ("tiny",)


def _split_name(name: str):
    base, _, cfg = name.partition("/")
    return base, cfg


def open_source(name: str, split: str, data_dir: str = "", *, heatmap_samples: str = "",
                num_heatmap_samples: int = 0):
    """A tfds random-access data source of `name` ("dataset" or "dataset/config") / `split` in `data_dir`
    ("": tfds's default folder). For `synthetic_humans` the builder is registered first, and a missing
    `tiny` build is generated (other configs raise FileNotFoundError naming the build command).
    heatmap_samples: the name of a 2D-detector heatmap-sample store beside the dataset
    (`data_pipelines.heatmap_samples`, made by `hmrjax data heatmaps`); its records are joined by index
    (`heatmap_samples` [17, num_heatmap_samples, 2] full px and `heatmap_conf` [17])."""
    import tensorflow_datasets as tfds
    base, cfg = _split_name(name)
    if base == "synthetic_humans":
        from data_pipelines.synthetic import builder as synth
        cfg = cfg or "tiny"
        root = data_dir or os.fspath(tfds.core.constants.DATA_DIR)
        path = synth.dataset_path(cfg, root)
        _, version = synth.split_version(cfg)
        if version != synth.VERSION:          # an earlier release: read an existing build, never render
            if not (path / synth.MARKER).exists():
                raise FileNotFoundError(f"synthetic_humans/{cfg} (an earlier release) is not built in {root}; "
                                        f"this generator renders only {synth.VERSION}")
        else:
            if not (path / "dataset_info.json").exists():
                if cfg not in _AUTO_BUILD:
                    raise FileNotFoundError(
                        f"synthetic_humans/{cfg} is not built in {root}; run `hmrjax data synth --config {cfg} "
                        f"--data-dir {root}` first")
                _LOG.warning("synthetic_humans/%s is not built in %s: building it now", cfg, root)
            # Reuses a finished build made with the current settings; a stale `tiny` is rebuilt (seconds), a
            # stale larger build raises StaleBuildError naming what changed.
            synth.build(cfg, root, num_workers=min(os.cpu_count() or 1, 4), rebuild_stale=cfg in _AUTO_BUILD)
        source = tfds.builder_from_directory(os.fspath(path)).as_data_source(split)
    else:
        source = tfds.data_source(name, split=split, data_dir=data_dir or None)
    if heatmap_samples:
        from data_pipelines import heatmap_samples as hs
        source = hs.join(source, name, split, data_dir, heatmap_samples, num_heatmap_samples)
    return source


def open_config_source(config, split: str):
    """`open_source` for `config.data` (name, data_dir, heatmap_samples_name, num_heatmap_samples) / `split`."""
    d = config.data
    return open_source(d.name, split, d.data_dir, heatmap_samples=str(d.get("heatmap_samples_name", "") or ""),
                       num_heatmap_samples=int(d.get("num_heatmap_samples", 0) or 0))


def build_train_dataset(config, process_index: int, process_count: int):
    """The trainer's hook: shuffled, augmented per-process batches of `config.data.train_split`
    (`pipeline.make_train_dataset`, seed `config.seed`)."""
    from data_pipelines import pipeline
    source = open_config_source(config, config.data.train_split)
    return pipeline.make_train_dataset(source, config, seed=int(config.seed), process_index=process_index,
                                       process_count=process_count)


def build_eval_dataset(config, split: str | None = None, process_index: int = 0, process_count: int = 1,
                       batch_size: int | None = None):
    """One ordered, padded pass over `split` (default `config.data.eval_split`; `pipeline.make_eval_dataset`)."""
    from data_pipelines import pipeline
    source = open_config_source(config, split or config.data.eval_split)
    return pipeline.make_eval_dataset(source, config, process_index=process_index, process_count=process_count,
                                      batch_size=batch_size)
