"""Grain input pipeline: schema records -> cropped, augmented, normalised model batches.

Owns the data config (`default_config()`, the `config.data` of every method config), the per-example
model input (`prepare_example`: crop + augment + labels), and the grain datasets / iterators the
trainer and evaluator call:

    ds = make_train_dataset(source, config, seed=0, process_index=p, process_count=n)   # grain.IterDataset
    it = make_train_iterator(source, config, seed=0, process_index=p, process_count=n)  # iter(ds)
    state = it.get_state(); ...; it.set_state(state)          # resumes at the exact next batch
    ev = make_eval_dataset(source, config, process_index=p, process_count=n)  # one pass, padded, `valid`

`source` is any random-access sequence of schema records (`len`, `__getitem__`): a tfds
`data_source` (`open_tfds_source`), a list of dicts, ... `config` holds `batch_size` (global, over
processes) and `data` (`default_config()`); `build_train_dataset(config, process_index, process_count)`
opens `config.data.name` with tfds (the trainer's hook).

Train pipeline (grain 0.2.x):
    MapDataset.range(p, N, n)            per-process shard of record indices (p::n)
      .seed(seed).shuffle().repeat()     a new global shuffle every epoch, deterministic per seed
      .map(_LoadRecord)                  source[i] -> decode, validate (schema.py), zero-fill absent fields
      .random_map(_PrepareExample)       crop/flip/roll/scale jitter, photometric, labels, normalisation
      .to_iter_dataset(ReadOptions)      threads prefetch elements in order
      _BadRecords                        a bad record raises BadRecordError naming it, or (on_bad_record
                                         'skip') is dropped and counted in the iterator state
      .batch(batch_size // n)            dicts of stacked numpy arrays
      .mp_prefetch(num_workers)          optional worker processes (each runs the steps above)
Each element's randomness comes from grain's per-index rng, so the output is the same for a seed
regardless of threads; with worker processes it is deterministic for a given `num_workers`.

Batch fields (float32 unless noted; S = image_size, D = dense_size, B = local batch):
  img [B, S, S, 3] (ImageNet mean/std), keypoints2d [B, 17, 3] (crop-normalised [-1, 1] + visibility,
  0 outside the crop), keypoints2d_full [B, 17, 3] (full-frame px), pose [B, J, 3], betas [B, K],
  transl [B, 3], joints3d [B, J, 3], bbox_center [B, 2], bbox_scale [B], focal_length [B, 2],
  image_size [B, 2] (W, H), princpt [B, 2], cliff_bbox [B, 3], crop_transform [B, 2, 3] (full px ->
  crop px), frame_transform [B, 2, 3] (original full px -> augmented full px), depth [B, D, D],
  mask [B, D, D], part_seg [B, D, D] int32, pseudo_depth [B, D, D], has_<field> [B],
  heatmaps [B, 17, h, w] (if `heatmaps`), heatmap_samples [B, 17, S', 2] crop-normalised,
  heatmap_conf [B, 17] and heatmap_pose [B, 17, 3] (detector argmax, crop-normalised + confidence) (if
  `num_heatmap_samples` > 0), record_index [B] int32, valid [B] (0: padding).
All 2D/3D labels are in the *augmented* virtual camera (see transforms.py): the full-frame fields,
`joints3d`, `transl` and `pose` agree with each other and with the intrinsics after flip/roll.
"""
from __future__ import annotations

import functools
import logging
import math

import grain
import ml_collections
import numpy as np

from data_pipelines import augment as augment_lib
from data_pipelines import heatmaps as heatmaps_lib
from data_pipelines import schema
from data_pipelines import transforms as tf

__all__ = ["default_config", "BadRecordError", "prepare_example", "geometric_labels", "flip_tables", "blank_example",
           "load_record", "make_train_dataset",
           "make_train_iterator", "make_eval_dataset", "make_eval_iterator", "build_train_dataset",
           "open_tfds_source", "num_skipped"]

_LOG = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BadRecordError(ValueError):
    """A source record could not be read, decoded or validated (the message names the record index)."""


def default_config() -> ml_collections.ConfigDict:
    """The data config (`config.data`): sizes, label layout, augmentation, workers, bad-record policy."""
    c = ml_collections.ConfigDict()
    c.name = "synthetic_humans"     # tfds dataset name (build_train_dataset)
    c.data_dir = ""                 # tfds data dir ("": tfds default)
    c.train_split = "train"
    c.eval_split = "validation"
    c.image_size = 224              # model input side S (px)
    c.dense_size = 56               # depth / mask / part_seg / pseudo_depth side D (0: = image_size)
    c.num_joints = 24               # J of pose / joints3d (model joint order)
    c.num_betas = 10
    c.pose_layout = "smpl24"        # joint layout of pose / joints3d (flip permutation)
    c.part_scheme = "smpl24"        # part_seg label scheme (flip swaps left/right labels)
    c.num_heatmap_samples = 0       # S' of heatmap_samples (0: fields not emitted)
    c.heatmap_samples_name = ""     # join the detector store heatmaps_<name> beside the dataset (heatmap_samples.py)
    c.heatmaps = False              # emit Gaussian keypoint heatmaps
    c.heatmap_size = 56
    c.heatmap_sigma = 2.0           # heatmap px
    # which keypoints get a Gaussian: 'visible' (depth-tested visible and inside the crop; the rest a zero map)
    # or 'in_crop' (every keypoint inside the crop, occluded ones at their true position: amodal targets, as
    # COCO's labelled-but-occluded keypoints (v=1) are trained in mmpose). 'in_crop' needs the true positions
    # of occluded keypoints, which synthetic data has; real data with unlabelled keypoints must keep 'visible'.
    c.heatmap_keypoints = "visible"
    c.antialias = True              # box-reduce the source before strong downscaling
    c.warp_engine = "auto"          # pil | cv2 | auto (cv2 when opencv-python-headless is installed: ~8x faster)
    c.mean = IMAGENET_MEAN
    c.std = IMAGENET_STD
    c.geometry = ml_collections.ConfigDict({
        "enabled": True, "scale_jitter": 0.25, "rot_jitter": 30.0, "rot_prob": 0.4, "shift_jitter": 0.05,
        "flip_prob": 0.5})
    c.augment = augment_lib.default_config()
    c.on_bad_record = "error"       # error | skip
    c.max_skipped_fraction = 0.1    # skip mode: error once more than this fraction (after 100 records) is bad
    c.num_workers = 0               # grain worker processes (0: in this process)
    c.worker_buffer_size = 2        # batches buffered per worker
    c.read_threads = 2              # threads mapping elements ahead (ReadOptions.num_threads)
    c.prefetch_buffer_size = 64     # elements prefetched by those threads
    return c


# ------------------------------------------------------------------------------------------ records
@functools.lru_cache(maxsize=None)
def _flip_perm(layout: str) -> np.ndarray:
    from hmrjax.body import layouts
    return layouts.flip_permutation(layout)


def flip_tables(cfg) -> dict:
    """Left/right tables for the flip: COCO-17 keypoints, `pose_layout` joints, `part_scheme` labels."""
    return {"keypoints": _flip_perm("coco17"), "joints": _flip_perm(cfg.pose_layout),
            "parts": tf.part_flip_table(cfg.part_scheme)}


class _Bad:
    """Stands in for a record that failed (kept in the stream so it can be counted or raised in order)."""

    def __init__(self, index: int, message: str):
        self.index, self.message = int(index), message


def load_record(source, index: int, cfg) -> dict:
    """source[index] -> validated, zero-filled example (`schema.complete_example`); raises BadRecordError."""
    try:
        record = source[index]
    except Exception as err:  # a corrupt file in a tfds source fails while decoding inside __getitem__
        raise BadRecordError(f"record {index}: reading it from the source failed "
                             f"({type(err).__name__}: {err})") from err
    try:
        valid = schema.validate_example(record, index, num_joints=cfg.num_joints, num_betas=cfg.num_betas)
        return schema.complete_example(valid, num_joints=cfg.num_joints, num_betas=cfg.num_betas,
                                       num_samples=cfg.num_heatmap_samples, record_id=index)
    except schema.SchemaError as err:
        raise BadRecordError(str(err)) from err


class _LoadRecord:
    """grain map: record index (int) -> example dict, or `_Bad` (-1 = eval padding, loads record 0)."""

    def __init__(self, source, cfg):
        self.source, self.cfg = source, cfg

    def __call__(self, index):
        index = int(index)
        pad = index < 0
        try:
            ex = load_record(self.source, 0 if pad else index, self.cfg)
        except BadRecordError as err:
            return _Bad(index, str(err))
        ex["record_index"] = np.int32(-1 if pad else index)
        ex["valid"] = np.float32(0.0 if pad else 1.0)
        return ex


# ------------------------------------------------------------------------------------------ one example
def _crop_labels(points_px, m, size):
    """Full px [..., 2] -> crop-normalised [-1, 1] through the crop affine m (crop px of side `size`)."""
    uv = tf.apply_affine(m, points_px)
    return (uv + 0.5) * (2.0 / size) - 1.0


def geometric_labels(ex: dict, geo, size: int, tables: dict | None = None) -> dict:
    """The labels of `prepare_example` that need no pixels, for one `transforms.Geometry`: 'keypoints2d'
    [17, 3] (crop-normalised x, y in [-1, 1] of a `size`-px crop, visibility zeroed outside the crop),
    'keypoints2d_full' [17, 3] (augmented full px), 'pose' [J, 3] (mirrored with left/right swapped, root
    rolled), 'bbox_center' [2], 'bbox_scale' (the crop side), 'frame_transform' and 'crop_transform' [2, 3].
    ex needs keypoints2d, bbox_center, bbox_scale, princpt, focal_length, pose and has_pose; `tables`
    (`flip_tables`) is needed when geo.flip. A label-only pass (e.g. a lifting network trained on the
    keypoints of the training split, augmented as the pipeline does) gets exactly the pipeline's labels."""
    if geo.flip and tables is None:
        raise ValueError("geometric_labels: a flipped geometry needs the left/right tables (flip_tables(cfg))")
    frame = tf.frame_transform(geo.rot_deg, geo.flip, ex["princpt"], ex["focal_length"])
    side = float(ex["bbox_scale"]) * geo.scale
    center = tf.apply_affine(frame, ex["bbox_center"]) + side * np.asarray(geo.shift)
    crop = tf.crop_transform(center, side, size)
    kp = ex["keypoints2d"][tables["keypoints"]] if geo.flip else ex["keypoints2d"]
    kp_full = np.concatenate([tf.apply_affine(frame, kp[:, :2]), kp[:, 2:3]], axis=1)
    kp_crop = _crop_labels(kp_full[:, :2], crop, size)
    inside = np.all(np.abs(kp_crop) <= 1.0, axis=1)
    pose = tf.flip_pose(ex["pose"], tables["joints"]) if geo.flip else ex["pose"]
    return {"keypoints2d": np.concatenate([kp_crop, (kp[:, 2] * inside)[:, None]], axis=1).astype(np.float32),
            "keypoints2d_full": kp_full.astype(np.float32),
            "pose": (tf.rotate_pose(pose, geo.rot_deg) if ex["has_pose"] else pose).astype(np.float32),
            "bbox_center": np.asarray(center, np.float32), "bbox_scale": np.float32(side),
            "frame_transform": frame, "crop_transform": crop}


def prepare_example(ex: dict, rng: np.random.Generator | None, cfg, train: bool = True,
                    tables: dict | None = None) -> dict:
    """One completed example -> model inputs (see the module docstring for the fields).

    Args:
      ex: `schema.complete_example` output (plus optional `record_index`, `valid`).
      rng: numpy Generator for the augmentation (unused when `train` is False).
      cfg: the data config (`default_config()`).
      train: sample geometric + photometric augmentation; False: the plain bbox crop.
      tables: `flip_tables(cfg)` (computed here when None).
    """
    size = int(cfg.image_size)
    dense = int(cfg.dense_size) or size
    geo = tf.sample_geometry(rng, cfg.geometry) if train and cfg.geometry.enabled else tf.Geometry()
    if geo.flip and tables is None:
        tables = flip_tables(cfg)
    out = geometric_labels(ex, geo, size, tables)
    frame, crop = out.pop("frame_transform"), out.pop("crop_transform")
    center, side = out["bbox_center"], float(out["bbox_scale"])
    full_to_crop = tf.compose(crop, frame)

    engine = cfg.warp_engine
    img = tf.warp_image(ex["image"], full_to_crop, size, antialias=cfg.antialias, engine=engine)
    if train and cfg.augment.enabled:
        img = augment_lib.photometric(img, rng, cfg.augment)
    mean = np.asarray(cfg.mean, np.float32) * 255.0
    std = np.asarray(cfg.std, np.float32) * 255.0
    out["img"] = (img.astype(np.float32) - mean) / std

    joint_perm = tables["joints"] if geo.flip else np.arange(cfg.num_joints)
    out["betas"] = ex["betas"].astype(np.float32)
    j3d, transl, transl_ok = tf.transform_3d(ex["joints3d"], ex["transl"], geo.rot_deg, geo.flip, joint_perm,
                                             has_joints3d=bool(ex["has_joints3d"]))
    out["joints3d"], out["transl"] = j3d, transl

    out["focal_length"] = ex["focal_length"]
    out["image_size"] = ex["image_size"]
    out["princpt"] = ex["princpt"]
    f = float(ex["focal_length"][0])
    w, h = (float(v) for v in ex["image_size"])
    out["cliff_bbox"] = (np.asarray([center[0] - w / 2, center[1] - h / 2, side], np.float64) / f).astype(np.float32)
    out["crop_transform"] = crop.astype(np.float32)
    out["frame_transform"] = frame.astype(np.float32)

    to_dense = tf.compose(tf.dense_transform(size, dense), full_to_crop)
    zeros = np.zeros((dense, dense), np.float32)
    out["depth"] = tf.warp_depth(ex["depth"], to_dense, dense, engine=engine) if ex["has_depth"] else zeros
    out["pseudo_depth"] = (tf.warp_depth(ex["pseudo_depth"], to_dense, dense, background_is_zero=False, engine=engine)
                           if ex["has_pseudo_depth"] else zeros)
    out["mask"] = (tf.warp_dense(ex["mask"], to_dense, dense, engine=engine).astype(np.float32) if ex["has_mask"]
                   else zeros)
    if ex["has_part_seg"]:
        seg = tf.warp_dense(ex["part_seg"], to_dense, dense, engine=engine)
        if geo.flip:  # nearest-neighbour warping commutes with relabelling: relabel the small map
            seg = tables["parts"][seg]
        out["part_seg"] = seg.astype(np.int32)
    else:
        out["part_seg"] = np.zeros((dense, dense), np.int32)

    for field in schema.OPTIONAL:
        out[schema.flag_name(field)] = np.float32(ex[schema.flag_name(field)])
    if not transl_ok:
        out["has_transl"] = np.float32(0.0)

    if cfg.heatmaps:
        hs = int(cfg.heatmap_size)
        mode = cfg.get("heatmap_keypoints", "visible")
        if mode == "visible":
            hm_kp = out["keypoints2d"]
        elif mode == "in_crop":
            kp_crop = out["keypoints2d"][:, :2]
            inside = np.all(np.abs(kp_crop) <= 1.0, axis=1)
            hm_kp = np.concatenate([kp_crop, (inside * float(ex["has_keypoints2d"]))[:, None]], axis=1)
        else:
            raise ValueError(f"config.data.heatmap_keypoints={mode!r}: expected 'visible' or 'in_crop'")
        out["heatmaps"] = heatmaps_lib.gaussian_heatmaps(hm_kp, (hs, hs), float(cfg.heatmap_sigma))
    if cfg.num_heatmap_samples:
        kp_perm = tables["keypoints"] if geo.flip else np.arange(schema.NUM_KEYPOINTS)
        samples = ex["heatmap_samples"][kp_perm]
        out["heatmap_samples"] = _crop_labels(tf.apply_affine(frame, samples), crop, size).astype(np.float32)
        out["heatmap_conf"] = ex["heatmap_conf"][kp_perm].astype(np.float32)
        pose = ex["heatmap_pose"][kp_perm]
        xy = _crop_labels(tf.apply_affine(frame, pose[:, :2]), crop, size)
        out["heatmap_pose"] = np.concatenate([xy, pose[:, 2:3]], axis=-1).astype(np.float32)
    else:
        del out["has_heatmap_samples"]
    out["record_index"] = np.int32(ex.get("record_index", -1))
    out["valid"] = np.float32(ex.get("valid", 1.0))
    return out


class _PrepareExample:
    """grain random_map: example -> model inputs (a `_Bad` passes through; failures become `_Bad`)."""

    def __init__(self, cfg, train: bool):
        self.cfg, self.train = cfg, train
        self.tables = flip_tables(cfg)  # computed here: worker processes then need no hmrjax.body import

    def __call__(self, ex, rng):
        if isinstance(ex, _Bad):
            return ex
        try:
            return prepare_example(ex, rng, self.cfg, self.train, self.tables)
        except Exception as err:  # a label that breaks the geometry must name its record, never pass silently
            index = int(ex.get("record_index", -1))
            return _Bad(index, f"record {index}: preparing the example failed ({type(err).__name__}: {err})")


# ------------------------------------------------------------------------------------------ bad records
class _BadRecordsIterator(grain.DatasetIterator):
    def __init__(self, parent, policy: str, max_fraction: float):
        super().__init__(parent)
        self._policy, self._max_fraction = policy, max_fraction
        self._skipped, self._seen = 0, 0

    def __next__(self):
        while True:
            value = next(self._parent)
            self._seen += 1
            if not isinstance(value, _Bad):
                return value
            if self._policy != "skip":
                raise BadRecordError(f"{value.message} (set config.data.on_bad_record='skip' to skip bad records)")
            self._skipped += 1
            _LOG.warning("skipping bad record %d (%d skipped so far): %s", value.index, self._skipped, value.message)
            if self._seen >= 100 and self._skipped > self._max_fraction * self._seen:
                raise BadRecordError(f"{self._skipped} of {self._seen} records were bad (more than "
                                     f"max_skipped_fraction={self._max_fraction}); last: {value.message}")

    def get_state(self):
        return {"parent": self._parent.get_state(), "skipped": self._skipped, "seen": self._seen}

    def set_state(self, state):
        self._parent.set_state(state["parent"])
        self._skipped, self._seen = int(state["skipped"]), int(state["seen"])


class _BadRecords(grain.IterDataset):
    """Raises on `_Bad` elements (policy 'error') or drops and counts them (policy 'skip')."""

    def __init__(self, parent, policy: str, max_fraction: float):
        super().__init__(parent)
        if policy not in ("error", "skip"):
            raise ValueError(f"config.data.on_bad_record must be 'error' or 'skip', got {policy!r}")
        self._policy, self._max_fraction = policy, float(max_fraction)

    def __iter__(self):
        return _BadRecordsIterator(self._parent.__iter__(), self._policy, self._max_fraction)

    def __str__(self):
        return f"BadRecords(policy={self._policy})"


def num_skipped(state) -> int:
    """Bad records skipped so far, from an iterator's `get_state()` (summed over worker processes)."""
    if isinstance(state, dict):
        if "skipped" in state and "parent" in state:
            return int(state["skipped"])
        return sum(num_skipped(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(num_skipped(v) for v in state)
    if isinstance(state, (bytes, str)):
        import json
        try:
            return num_skipped(json.loads(state))
        except ValueError:
            return 0
    return 0


# ------------------------------------------------------------------------------------------ datasets
def _local_batch_size(config, process_count: int, batch_size: int | None) -> int:
    global_bs = int(batch_size if batch_size is not None else config.batch_size)
    if global_bs % process_count:
        raise ValueError(f"batch_size={global_bs} is not divisible by process_count={process_count}")
    return global_bs // process_count


def _finish(ds: grain.MapDataset, cfg, local_bs: int, drop_remainder: bool) -> grain.IterDataset:
    threads = int(cfg.read_threads)
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=int(cfg.prefetch_buffer_size))
                            if threads > 0 else grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    it = _BadRecords(it, cfg.on_bad_record, cfg.max_skipped_fraction)
    it = it.batch(local_bs, drop_remainder=drop_remainder)
    if int(cfg.num_workers) > 0:
        _absl_flags_ready()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(cfg.num_workers),
                                                         per_worker_buffer_size=int(cfg.worker_buffer_size)))
    return it


def _absl_flags_ready():
    """grain 0.2.18's worker start reads an absl flag directly, which fails ("Trying to access flag
    --grain_enable_multiprocess_worker_profiling before flags were parsed") unless absl flags are
    parsed; outside an absl app, mark them parsed (keeping their defaults)."""
    from absl import flags
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _check_shard(n: int, process_index: int, process_count: int):
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, process_count={process_count})")
    if n < process_count:
        raise ValueError(f"the source has {n} records, fewer than process_count={process_count}")


def make_train_dataset(source, config, *, seed: int, process_index: int = 0, process_count: int = 1,
                       batch_size: int | None = None, num_epochs: int | None = None) -> grain.IterDataset:
    """Endless (or `num_epochs`) shuffled, augmented per-process batches of `batch_size // process_count`.

    Args:
      source: random-access records in the schema (len, __getitem__).
      config: ConfigDict with `data` (`default_config()`) and `batch_size` (global); or pass `batch_size`.
      seed: shuffle + augmentation seed (same seed, same batches).
      process_index, process_count: this process's shard (records p, p + n, ...).
    """
    cfg = config.data
    n = len(source)
    _check_shard(n, process_index, process_count)
    local_bs = _local_batch_size(config, process_count, batch_size)
    ds = grain.MapDataset.range(process_index, n, process_count).seed(int(seed)).shuffle().repeat(num_epochs)
    ds = ds.map(_LoadRecord(source, cfg)).random_map(_PrepareExample(cfg, train=True))
    return _finish(ds, cfg, local_bs, drop_remainder=True)


def make_train_iterator(source, config, *, seed: int, process_index: int = 0, process_count: int = 1,
                        batch_size: int | None = None):
    """`iter(make_train_dataset(...))`: a grain DatasetIterator with `get_state()` / `set_state()`."""
    return iter(make_train_dataset(source, config, seed=seed, process_index=process_index,
                                   process_count=process_count, batch_size=batch_size))


def make_eval_dataset(source, config, *, process_index: int = 0, process_count: int = 1,
                      batch_size: int | None = None) -> grain.IterDataset:
    """One ordered pass without augmentation; every process yields the same number of full batches.

    Records p, p + n, ... go to process p; the shards are padded (with `valid` = 0 copies of record 0,
    `record_index` = -1) to ceil(N / n) records, rounded up to whole batches. Bad records raise, or with
    on_bad_record 'skip' become blank padding (`valid` = 0, `record_index` = -1).
    """
    cfg = config.data
    n = len(source)
    _check_shard(n, process_index, process_count)
    local_bs = _local_batch_size(config, process_count, batch_size)
    per_process = math.ceil(n / process_count)
    per_process = math.ceil(per_process / local_bs) * local_bs
    idx = np.arange(per_process, dtype=np.int64) * process_count + process_index
    idx = np.where(idx < n, idx, -1)
    ds = grain.MapDataset.source(idx).map(_LoadRecord(source, cfg)).map(_EvalPrepare(cfg))
    return _finish(ds, cfg, local_bs, drop_remainder=False)


def blank_example(cfg) -> dict:
    """Model inputs of the configured shapes with every label absent (`has_*` = 0, `valid` = 0)."""
    size = 8
    record = {"image": np.zeros((size, size, 3), np.uint8), "bbox_center": np.full(2, size / 2, np.float32),
              "bbox_scale": np.float32(size)}
    ex = schema.complete_example(schema.validate_example(record, "blank"), num_joints=cfg.num_joints,
                                 num_betas=cfg.num_betas, num_samples=cfg.num_heatmap_samples)
    ex.update(record_index=np.int32(-1), valid=np.float32(0.0))
    return prepare_example(ex, None, cfg, train=False)


class _EvalPrepare:
    """Eval map: no augmentation. With on_bad_record 'skip' a bad record becomes a blank padding example
    (`valid` = 0) instead of being dropped, so every process still yields the same number of batches."""

    def __init__(self, cfg):
        self._prep = _PrepareExample(cfg, train=False)
        self._skip = cfg.on_bad_record == "skip"
        self._blank = blank_example(cfg) if self._skip else None

    def __call__(self, ex):
        out = self._prep(ex, None)
        if isinstance(out, _Bad) and self._skip:
            _LOG.warning("eval: bad record %d replaced by padding (valid = 0): %s", out.index, out.message)
            return dict(self._blank)
        return out


def make_eval_iterator(source, config, *, process_index: int = 0, process_count: int = 1,
                       batch_size: int | None = None):
    """`iter(make_eval_dataset(...))`."""
    return iter(make_eval_dataset(source, config, process_index=process_index, process_count=process_count,
                                  batch_size=batch_size))


def open_tfds_source(name: str, split: str, data_dir: str = ""):
    """A tfds random-access data source (ArrayRecord, no TensorFlow) for `name`/`split`."""
    import tensorflow_datasets as tfds
    return tfds.data_source(name, split=split, data_dir=data_dir or None)


def build_train_dataset(config, process_index: int, process_count: int) -> grain.IterDataset:
    """The trainer's hook: `make_train_dataset` over tfds `config.data.name` / `train_split`, seed `config.seed`."""
    source = open_tfds_source(config.data.name, config.data.train_split, config.data.data_dir)
    return make_train_dataset(source, config, seed=int(config.seed), process_index=process_index,
                              process_count=process_count)
