"""The tfds dataset `synthetic_humans` (ArrayRecord, no TensorFlow): configs, features, and the parallel build.

Owns `CONFIGS` (tiny / small / medium / large), `features(config)`, the tfds builder class `SyntheticHumans`
(registered as `synthetic_humans`; its `_generate_examples` is the plain serial tfds path) and `build`, the
parallel, resumable build that `hmrjax data synth` runs:

    path = build("tiny", data_dir, num_workers=2)      # DIR/synthetic_humans/tiny/<VERSION>
    src = tfds.builder_from_directory(path).as_data_source("train")    # or tfds.data_source(...)

Layout written by `build` (the one tfds writes): `DIR/synthetic_humans/<config>/<version>/` with
`dataset_info.json`, `features.json` and `synthetic_humans-<split>.array_record-0000i-of-0000n` shards
(records in index order: `disable_shuffling`). Images are stored as JPEG bytes (encoded with PIL: tfds's own
image encoder needs TensorFlow), dense maps as zlib-compressed tensors.
Resume / reuse: shards are rendered into `DIR/synthetic_humans/<config>/incomplete.resumable_<version>/`,
each written to a temporary name and renamed when complete; a re-run keeps the finished shards (when the
build settings match), renders the rest, writes the metadata and a `BUILD_COMPLETE` marker, then renames the
folder to `<version>`. A finished folder is reused as it is; a reader never sees a partial dataset.
Determinism: example i of split s is `render_example(seed, s, i)` whatever the worker count.
Releases (`VERSION`, `RELEASE_NOTES`): the generator renders only the current one; a finished build of an
earlier release (`OLDER_VERSIONS`) stays readable as "synthetic_humans/<config>:<version>" (e.g. runs and
heatmap stores recorded on "small:1.0.0"), it is never rebuilt.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import multiprocessing
import os
import pathlib
import shutil
import time

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.synthetic import render_example as render_lib

__all__ = ["SyntheticHumans", "SynthConfig", "CONFIGS", "VERSION", "SPLITS", "features", "encode_example", "build", "dataset_path",
           "render_shard", "GENERATOR_VERSION"]

_LOG = logging.getLogger(__name__)
VERSION = "1.1.0"
GENERATOR_VERSION = 4  # bump when the rendering changes: unfinished builds with another version are restarted
# Earlier releases: readable where a finished build exists ("synthetic_humans/small:1.0.0"), no longer rendered.
OLDER_VERSIONS = {"1.0.0": 3}
RELEASE_NOTES = {
    "1.0.0": "Anny-lite bodies, pose families, occluders, pseudo-depth.",
    "1.1.0": "Front/back appearance cues (a face, hair on the back of the head, necklines, chest prints, toe "
             "caps): 1.0.0's faceless bodies left the global orientation nearly unlearnable at 64 px.",
}
SPLITS = ("train", "validation", "test", "test_occluded", "test_ood")
MARKER = "BUILD_COMPLETE"


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """One builder config. image_size: (W, H); splits: split -> number of examples; examples_per_shard;
    seed: dataset seed; body: body-model asset; num_betas; jpeg_quality."""

    name: str
    image_size: tuple
    splits: tuple                      # ((split, count), ...)
    examples_per_shard: int = 256
    seed: int = 0
    body: str = "anny_lite"
    num_betas: int = 10
    jpeg_quality: int = 92
    description: str = ""

    @property
    def split_sizes(self) -> dict:
        return dict(self.splits)

    def fingerprint(self) -> dict:
        d = dataclasses.asdict(self)
        d["splits"] = [list(s) for s in self.splits]
        d["image_size"] = list(self.image_size)
        d["generator_version"] = GENERATOR_VERSION
        d["body_sha256"] = _file_sha256(self.body)
        from data_pipelines.synthetic.scene import background_photos
        d["background_photos"] = len(background_photos())   # scikit-image installed or not changes the images
        return d


def _file_sha256(body: str) -> str:
    """sha256 of the body-model file (a changed asset changes every example, so it is part of the settings)."""
    import hashlib
    from hmrjax.body import io as body_io
    return hashlib.sha256(body_io.resolve_model_path(body).read_bytes()).hexdigest()


CONFIGS = {
    "tiny": SynthConfig("tiny", (256, 256), (("train", 256), ("validation", 32), ("test", 64), ("test_occluded", 32),
                                             ("test_ood", 32)), examples_per_shard=32,
                        description="416 examples at 256x256 for tests and CI (builds in seconds)"),
    "small": SynthConfig("small", (256, 256), (("train", 10000), ("validation", 500), ("test", 1000),
                                               ("test_occluded", 500), ("test_ood", 500)), examples_per_shard=250,
                         description="12.5k examples at 256x256"),
    # small's distribution with 4x the training images; the same seed, so its evaluation splits are small's
    # (example i of split s is render_example(seed, s, i)) and small's 10k training images are its first 10k
    "medium": SynthConfig("medium", (256, 256), (("train", 40000), ("validation", 500), ("test", 1000),
                                                 ("test_occluded", 500), ("test_ood", 500)), examples_per_shard=250,
                          description="42.5k examples at 256x256 (small's evaluation splits, 4x its training set)"),
    "large": SynthConfig("large", (320, 320), (("train", 100000), ("validation", 2000), ("test", 5000),
                                               ("test_occluded", 2000), ("test_ood", 2000)), examples_per_shard=500,
                         description="111k examples at 320x320"),
}


_CUSTOM: dict = {}  # SynthConfigs passed to `build` by value (tests, experiments), by name


def _config(name_or_config) -> SynthConfig:
    if isinstance(name_or_config, SynthConfig):
        if name_or_config.name in CONFIGS and CONFIGS[name_or_config.name] != name_or_config:
            raise ValueError(f"a custom SynthConfig may not reuse the built-in name {name_or_config.name!r}")
        _CUSTOM[name_or_config.name] = name_or_config
        return name_or_config
    cfg = CONFIGS.get(name_or_config) or _CUSTOM.get(name_or_config)
    if cfg is None:
        raise ValueError(f"unknown synthetic_humans config {name_or_config!r}; choose from {sorted(CONFIGS)}")
    return cfg


def features(config):
    """The tfds FeaturesDict of one example (schema fields + `family`, `num_occluders`, `index`)."""
    cfg = _config(config)
    w, h = cfg.image_size
    t = tfds.features.Tensor
    f32 = np.float32
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(h, w, 3), encoding_format="jpeg"),
        "bbox_center": t(shape=(2,), dtype=f32), "bbox_scale": t(shape=(), dtype=f32),
        "focal_length": t(shape=(2,), dtype=f32), "image_size": t(shape=(2,), dtype=f32),
        "pose": t(shape=(24, 3), dtype=f32), "betas": t(shape=(cfg.num_betas,), dtype=f32),
        "transl": t(shape=(3,), dtype=f32), "joints3d": t(shape=(24, 3), dtype=f32),
        "keypoints2d": t(shape=(17, 3), dtype=f32),
        "depth": t(shape=(h, w), dtype=f32, encoding="zlib"),
        "mask": t(shape=(h, w), dtype=np.uint8, encoding="zlib"),
        "part_seg": t(shape=(h, w), dtype=np.uint8, encoding="zlib"),
        "pseudo_depth": t(shape=(h, w), dtype=f32, encoding="zlib"),
        "family": t(shape=(), dtype=np.int32), "num_occluders": t(shape=(), dtype=np.int32),
        "index": t(shape=(), dtype=np.int64),
    })


def encode_example(ex: dict, index: int, jpeg_quality: int = 92) -> dict:
    """A rendered example -> the dict tfds encodes (image as JPEG bytes, `index` added)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(ex["image"]).save(buf, format="JPEG", quality=int(jpeg_quality))
    out = dict(ex)
    out["image"] = buf.getvalue()
    out["index"] = np.int64(index)
    return out


def split_version(config) -> tuple:
    """"small" -> ("small", VERSION); "small:1.0.0" -> ("small", "1.0.0") (a known release, else ValueError).
    A SynthConfig -> (it, VERSION)."""
    if not isinstance(config, str) or ":" not in config:
        return config, VERSION
    name, _, version = config.partition(":")
    if version != VERSION and version not in OLDER_VERSIONS:
        raise ValueError(f"synthetic_humans/{config}: unknown version {version!r} (known: "
                         f"{', '.join(sorted([VERSION, *OLDER_VERSIONS]))})")
    return name, version


def dataset_path(config, data_dir) -> pathlib.Path:
    """DIR/synthetic_humans/<config>/<version>: where a finished build lives. config: a name ("small"), a
    name with a release ("small:1.0.0"; default the current `VERSION`) or a SynthConfig."""
    config, version = split_version(config)
    return pathlib.Path(data_dir) / "synthetic_humans" / _config(config).name / version


def _shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"synthetic_humans-{split}.array_record-{shard:05d}-of-{num_shards:05d}"


def _shard_tasks(cfg: SynthConfig):
    tasks = []
    for split, n in cfg.splits:
        num = max(1, -(-n // cfg.examples_per_shard))
        for s in range(num):
            start, stop = s * n // num, (s + 1) * n // num
            tasks.append((split, s, num, start, stop))
    return tasks


_WORKER_STATE = {}


def _worker_init(cfg_dict):
    try:
        _worker_setup(cfg_dict)
    except Exception as err:  # re-raised by render_shard: a failing Pool initializer would respawn forever
        _WORKER_STATE["error"] = err


def _worker_setup(cfg_dict):
    cfg = SynthConfig(**{**cfg_dict, "splits": tuple(tuple(s) for s in cfg_dict["splits"]),
                         "image_size": tuple(cfg_dict["image_size"])})
    _WORKER_STATE["cfg"] = cfg
    _WORKER_STATE["features"] = features(cfg)
    _WORKER_STATE["body"] = render_lib.get_body(cfg.body, cfg.num_betas)


def render_shard(task, folder) -> tuple:
    """Renders one shard (split, shard, num_shards, start, stop) into `folder` (temporary name, then rename).
    Returns (split, shard, number of examples, bytes, CPU seconds)."""
    from array_record.python import array_record_module
    if "error" in _WORKER_STATE:
        raise RuntimeError(f"synthetic_humans worker set-up failed: {_WORKER_STATE['error']!r}")
    split, shard, num, start, stop = task
    cfg, feats, body = _WORKER_STATE["cfg"], _WORKER_STATE["features"], _WORKER_STATE["body"]
    cpu0 = time.process_time()
    final = pathlib.Path(folder) / _shard_name(split, shard, num)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    writer = array_record_module.ArrayRecordWriter(os.fspath(tmp), "group_size:1")
    try:
        for i in range(start, stop):
            ex = render_lib.render_example(cfg.seed, split, i, cfg.image_size, body=body)
            writer.write(feats.serialize_example(encode_example(ex, i, cfg.jpeg_quality)))
        writer.close()
        os.replace(tmp, final)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return split, shard, stop - start, final.stat().st_size, time.process_time() - cpu0


def _render_shard_star(args):
    return render_shard(*args)


class StaleBuildError(FileExistsError):
    """A finished build made with other settings (generator version, body asset, sizes, ...)."""


def build(config_name, data_dir, num_workers: int | None = None, progress: bool = True,
          rebuild_stale: bool = False) -> pathlib.Path:
    """Builds (or reuses, or resumes) `synthetic_humans/<config_name>` under `data_dir`; returns its folder.

    config_name: 'tiny' | 'small' | 'large', or a `SynthConfig` (a custom size, e.g. in tests).
    num_workers: worker processes (None: os.cpu_count(); 0: render in this process). Workers are started
    with 'spawn' (safe when the caller has JAX threads running; as always with spawn, a calling script needs
    an `if __name__ == "__main__":` guard). A tqdm bar counts examples.
    A finished build is reused only if it was made with the same settings (including the body-model asset's
    hash): otherwise a `StaleBuildError` names what changed, or, with `rebuild_stale`, the stale build is
    moved aside to `<folder>.stale` and the dataset is built again.
    The returned folder is readable with `tfds.builder_from_directory(path).as_data_source(split)` and
    `tfds.data_source(f"synthetic_humans/{config_name}", data_dir=data_dir)`.
    """
    from tqdm.auto import tqdm

    config_name, version = split_version(config_name)
    if version != VERSION:
        raise ValueError(f"synthetic_humans/{config_name}:{version} is an earlier release: this generator renders "
                         f"only {VERSION} (an existing {version} build stays readable)")
    cfg = _config(config_name)
    final = dataset_path(cfg, data_dir)
    fp = cfg.fingerprint()
    if (final / MARKER).exists() and (final / "dataset_info.json").exists():
        built = final / "build_settings.json"
        old_fp = json.loads(built.read_text()) if built.exists() else {}
        if old_fp == fp:
            _LOG.info("synthetic_humans/%s: reusing the finished build in %s", cfg.name, final)
            return final
        changed = sorted(k for k in set(fp) | set(old_fp) if fp.get(k) != old_fp.get(k))
        if not rebuild_stale:
            raise StaleBuildError(f"{final} was built with other settings (changed: {', '.join(changed)}); its "
                                  f"labels do not match the current generator/body model. Rebuild it with "
                                  f"`hmrjax data synth --config {cfg.name} --data-dir {data_dir} --rebuild`")
        aside = final.with_name(final.name + ".stale")
        if aside.exists():
            shutil.rmtree(aside)
        _LOG.warning("%s is stale (changed: %s): moved to %s, building again", final, ", ".join(changed), aside)
        os.replace(final, aside)
    if final.exists():
        raise FileExistsError(f"{final} exists but holds no finished build ({MARKER} missing); it was not written "
                              f"by data_pipelines.synthetic.build: move it away and run again")
    work = final.parent / f"incomplete.resumable_{VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    settings = work / "build_settings.json"
    if settings.exists() and json.loads(settings.read_text()) != fp:
        _LOG.warning("%s was started with other settings: starting over", work)
        shutil.rmtree(work)
        work.mkdir(parents=True)
    if not settings.exists():
        tmp = settings.with_name(".build_settings.json.tmp")
        tmp.write_text(json.dumps(fp, indent=1))
        os.replace(tmp, settings)
    for stale in work.glob(".*.tmp"):           # shards of an interrupted run
        stale.unlink()
    tasks = _shard_tasks(cfg)
    todo = [t for t in tasks if not (work / _shard_name(t[0], t[1], t[2])).exists()]
    total = sum(t[4] - t[3] for t in tasks)
    done = total - sum(t[4] - t[3] for t in todo)
    workers = os.cpu_count() if num_workers is None else int(num_workers)
    t0, cpu = time.time(), 0.0
    bar = tqdm(total=total, initial=done, desc=f"synthetic_humans/{cfg.name}", unit="ex", disable=not progress)
    init_args = ({k: v for k, v in fp.items() if k not in ("generator_version", "body_sha256", "background_photos")},)
    if workers <= 0 or len(todo) <= 1:
        _worker_init(*init_args)
        for t in todo:
            *_, n, _, c = render_shard(t, work)
            cpu += c
            bar.update(n)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, len(todo)), initializer=_worker_init, initargs=init_args) as pool:
            for *_, n, _, c in pool.imap_unordered(_render_shard_star, [(t, work) for t in todo]):
                cpu += c
                bar.update(n)
    bar.close()
    _write_metadata(cfg, data_dir, work, tasks)
    (work / MARKER).write_text(json.dumps({"examples": total, "wall_s": time.time() - t0, "worker_cpu_s": cpu,
                                           "workers": workers}, indent=1))
    os.replace(work, final)
    _LOG.info("synthetic_humans/%s: %d examples in %.1f s (%.1f worker CPU s)", cfg.name, total,
              time.time() - t0, cpu)
    return final


def _write_metadata(cfg: SynthConfig, data_dir, work: pathlib.Path, tasks):
    """dataset_info.json + features.json in tfds's format, written through tfds's own DatasetInfo."""
    bcfg = cfg.name if cfg.name in CONFIGS else tfds.core.BuilderConfig(name=cfg.name, description=cfg.description)
    builder = SyntheticHumans(config=bcfg, data_dir=os.fspath(data_dir), file_format="array_record")
    infos = []
    for split, _ in cfg.splits:
        mine = sorted((t for t in tasks if t[0] == split), key=lambda t: t[1])
        lengths = [t[4] - t[3] for t in mine]
        nbytes = sum((work / _shard_name(*t[:3])).stat().st_size for t in mine)
        infos.append(tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=nbytes,
                                         filename_template=builder._get_filename_template(split)))
    builder.info.set_splits(tfds.core.SplitDict(infos))
    builder.info.write_to_directory(work)


class SyntheticHumans(tfds.core.GeneratorBasedBuilder):
    """tfds builder `synthetic_humans` (configs tiny / small / medium / large; see `CONFIGS`).

    `tfds.builder("synthetic_humans/tiny", data_dir=D, file_format="array_record").download_and_prepare()`
    renders serially through tfds's own writer; `build(...)` is the parallel, resumable way to the same files.
    """

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = RELEASE_NOTES
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=c.name, description=c.description) for c in CONFIGS.values()]

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="Rendered synthetic humans (free Anny body model) with exact ground truth for every "
                        "field of hmrjax's example schema.",
            features=features(self.builder_config.name),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        cfg = _config(self.builder_config.name)
        return {split: self._generate_examples(split) for split, _ in cfg.splits}

    def _generate_examples(self, split):
        cfg = _config(self.builder_config.name)
        body = render_lib.get_body(cfg.body, cfg.num_betas)
        for i in range(cfg.split_sizes[split]):
            ex = render_lib.render_example(cfg.seed, split, i, cfg.image_size, body=body)
            yield i, encode_example(ex, i, cfg.jpeg_quality)
