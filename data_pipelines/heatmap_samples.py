"""2D-detector heatmap samples stored beside a dataset (ArrayRecord), and their join into a pipeline source.

Owns the sampling (`sample_heatmaps`: multinomial draws from heatmaps), the mask distances
(`mask_distances`), the store (`store_dir`, `write_split`, `SampleStore`) and the join (`JoinedSource`,
`join`), which `data_pipelines.open_source` applies when `config.data.heatmap_samples_name` is set. The run
that fills the store with a trained detector is `hmrjax.heatmap_data.generate` (`hmrjax data heatmaps`):
data code never imports model code.

Sampling (Wehrbein et al.; the authors' code github.com/twehrbein/humr, `train/utils/sampling_utils.py`
`HeatmapSampler` and `train/dataset/dataset.py`, read as facts): every heatmap is read as a multinomial
distribution over its pixels with probability proportional to the heatmap value, after values below
`min_conf` (0.05: "samples with confidence < 0.05 dropped") are set to zero; a heatmap with no pixel left
is sampled uniformly (their code sets it to a constant 0.001). S = 150 draws with replacement per joint,
at heatmap pixel centres (no sub-pixel jitter, as theirs), so every record holds exactly S samples per
joint and no padding is needed. The per-joint confidence `heatmap_conf` is the heatmap maximum (their
`hm_max_confs` is the maximum over the stored samples' values, the same up to sampling). The mask
distance of a sample is the Euclidean distance (full-frame px) from its nearest pixel to the closest
person-mask pixel (`scipy.ndimage.distance_transform_edt`; 0 inside; their code treats > 0.71 as
outside), plus, for a sample outside the image, its distance to that border pixel; -1 when the record
has no mask.

Layout: `<dataset folder>/heatmaps_<name>/<split>.array_record` and `info.json` (written last: a store
without it is incomplete), where the dataset folder is the tfds version folder
(`<data_dir>/synthetic_humans/<config>/<version>` for the synthetic data). Record i belongs to source
record i. Each record is `np.savez_compressed` bytes (pickle-free) of
  keypoints   [17, 3] float32   argmax (x, y) full-frame px (quarter-pixel refined) + confidence
  samples     [17, S, 2] float32 full-frame px
  sample_conf [17, S] float16    heatmap value at each sample
  mask_dist   [17, S] float16    px to the person mask (see above)
info.json: splits and sizes, num_samples, min_conf, seed, heatmap and crop size, the detector workdir and
step, and the sha256 of the dataset's `dataset_info.json` (a rebuilt dataset makes the store stale: the
join refuses it).
Join: `JoinedSource(source, store, num_samples)[i]` is `source[i]` plus `heatmap_samples`
[17, num_samples, 2] (the first num_samples of the stored S; draws are i.i.d.), `heatmap_conf` [17] and
`heatmap_pose` [17, 3] (the stored argmax keypoints; schema fields; full-frame px); the grain pipeline then
maps them into the crop.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import threading

import numpy as np

__all__ = ["DEFAULT_NUM_SAMPLES", "DEFAULT_MIN_CONF", "sample_heatmaps", "heatmap_px_to_full", "mask_distances",
           "dataset_folder", "store_dir", "encode_record", "decode_record", "write_split", "SampleStore",
           "JoinedSource", "join"]

DEFAULT_NUM_SAMPLES = 150
DEFAULT_MIN_CONF = 0.05
NUM_KEYPOINTS = 17
_FIELDS = ("keypoints", "samples", "sample_conf", "mask_dist")


# ------------------------------------------------------------------------------------------ sampling
def sample_heatmaps(heatmaps, num_samples: int, min_conf: float, rng: np.random.Generator):
    """Multinomial samples from heatmaps.

    heatmaps: [N, K, h, w]. p(pixel) is proportional to H where H >= min_conf (0 elsewhere, negative values
    too); a heatmap without such a pixel is sampled uniformly. Returns (xy [N, K, S, 2] int32 heatmap px
    (x = column, y = row), values [N, K, S] float32 heatmap value at each sample).
    """
    hm = np.asarray(heatmaps, np.float64)
    if hm.ndim != 4:
        raise ValueError(f"sample_heatmaps: heatmaps must be [N, K, h, w], got shape {hm.shape}")
    n, k, h, w = hm.shape
    flat = hm.reshape(n * k, h * w)
    probs = np.where(flat >= min_conf, np.maximum(flat, 0.0), 0.0)
    total = probs.sum(-1, keepdims=True)
    probs = np.where(total > 0, probs, 1.0)
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random((n * k, num_samples)) * cdf[:, -1:]
    idx = np.empty((n * k, num_samples), np.int64)
    for r in range(n * k):
        idx[r] = np.searchsorted(cdf[r], u[r], side="right")
    idx = np.minimum(idx, h * w - 1)
    values = np.take_along_axis(flat, idx, axis=-1).astype(np.float32)
    xy = np.stack([idx % w, idx // w], axis=-1).astype(np.int32)
    return xy.reshape(n, k, num_samples, 2), values.reshape(n, k, num_samples)


def heatmap_px_to_full(points, heatmap_size, crop_size: int, crop_transform) -> np.ndarray:
    """Heatmap px [..., 2] of one crop -> full-frame px, through crop px u = (hx + 0.5) S / w - 0.5 and the
    inverse of `crop_transform` [2, 3] (full px -> crop px, the pipeline's)."""
    from data_pipelines import transforms as tf
    h, w = heatmap_size
    p = np.asarray(points, np.float64)
    crop = np.stack([(p[..., 0] + 0.5) * crop_size / w - 0.5, (p[..., 1] + 0.5) * crop_size / h - 0.5], -1)
    return tf.apply_affine(tf.invert(np.asarray(crop_transform, np.float64)), crop)


def mask_distances(points, mask) -> np.ndarray:
    """Distance (px) of each full-frame point [..., 2] to the closest pixel of `mask` [H, W] (non-zero =
    person): the Euclidean distance transform at the point's nearest pixel (clamped into the image), plus
    the distance from the point to that clamped pixel. An empty mask gives +inf."""
    from scipy import ndimage
    m = np.asarray(mask) > 0
    p = np.asarray(points, np.float64)
    if not m.any():
        return np.full(p.shape[:-1], np.inf)
    dist = ndimage.distance_transform_edt(~m)
    h, w = m.shape
    xi = np.clip(np.rint(p[..., 0]), 0, w - 1)
    yi = np.clip(np.rint(p[..., 1]), 0, h - 1)
    extra = np.where((xi == np.rint(p[..., 0])) & (yi == np.rint(p[..., 1])), 0.0,
                     np.hypot(p[..., 0] - xi, p[..., 1] - yi))
    return dist[yi.astype(np.int64), xi.astype(np.int64)] + extra


# ------------------------------------------------------------------------------------------ store
def dataset_folder(name: str, data_dir: str = "") -> pathlib.Path:
    """The versioned tfds folder of `name` ("dataset[/config]") in `data_dir` ("" = tfds default)."""
    import tensorflow_datasets as tfds
    root = data_dir or os.fspath(tfds.core.constants.DATA_DIR)
    base, _, cfg = name.partition("/")
    if base == "synthetic_humans":
        from data_pipelines.synthetic import builder as synth
        return synth.dataset_path(cfg or "tiny", root)
    return pathlib.Path(tfds.builder(name, data_dir=root).data_dir)


def store_dir(name: str, data_dir: str, samples_name: str) -> pathlib.Path:
    """`<dataset folder>/heatmaps_<samples_name>`."""
    if not samples_name or "/" in samples_name or samples_name.startswith("."):
        raise ValueError(f"heatmap samples name must be a plain folder name, got {samples_name!r}")
    return dataset_folder(name, data_dir) / f"heatmaps_{samples_name}"


def _dataset_fingerprint(folder: pathlib.Path) -> str:
    info = folder / "dataset_info.json"
    return hashlib.sha256(info.read_bytes()).hexdigest() if info.exists() else ""


def encode_record(keypoints, samples, sample_conf, mask_dist) -> bytes:
    """One example's arrays -> `np.savez_compressed` bytes (shapes in the module docstring)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, keypoints=np.asarray(keypoints, np.float32), samples=np.asarray(samples, np.float32),
                        sample_conf=np.asarray(sample_conf, np.float16), mask_dist=np.asarray(mask_dist, np.float16))
    return buf.getvalue()


# np.load parses each member's header with ast.literal_eval; on CPython 3.11 concurrent AST construction in
# several threads (grain's read threads) can fail with "SystemError: AST constructor recursion depth mismatch"
# (CPython gh-106905; measured here at record 109 of a training run). Records are decoded one at a time.
_DECODE_LOCK = threading.Lock()


def decode_record(data: bytes) -> dict:
    """Bytes of `encode_record` -> {field: array} (thread-safe)."""
    with _DECODE_LOCK, np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in _FIELDS}


def write_split(path, records) -> int:
    """Writes an iterable of record bytes to an ArrayRecord file atomically (temporary name, then rename).
    Returns the number of records."""
    from array_record.python import array_record_module
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    writer = array_record_module.ArrayRecordWriter(os.fspath(tmp), "group_size:1")
    try:
        for data in records:
            writer.write(data)
            count += 1
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        if tmp.exists():
            tmp.unlink()
        raise
    return count


class SampleStore:
    """Random access to one split of a heatmap-sample store: `store[i]` -> dict (module docstring)."""

    def __init__(self, directory, split: str, dataset_folder_path=None):
        from array_record.python import array_record_data_source
        self.directory = pathlib.Path(directory)
        info_path = self.directory / "info.json"
        if not info_path.exists():
            raise FileNotFoundError(f"{info_path} not found: the heatmap samples in {self.directory} are missing or "
                                    f"incomplete; run `hmrjax data heatmaps` first")
        self.info = json.loads(info_path.read_text())
        if split not in self.info.get("splits", {}):
            raise FileNotFoundError(f"{self.directory} has no heatmap samples for split {split!r} "
                                    f"(has {sorted(self.info.get('splits', {}))})")
        if dataset_folder_path is not None:
            now = _dataset_fingerprint(pathlib.Path(dataset_folder_path))
            if self.info.get("dataset_sha256") and now and now != self.info["dataset_sha256"]:
                raise ValueError(f"heatmap samples in {self.directory} were made for another build of the dataset "
                                 f"(dataset_info.json changed): run `hmrjax data heatmaps` again")
        self.path = self.directory / f"{split}.array_record"
        self._source = array_record_data_source.ArrayRecordDataSource([os.fspath(self.path)])
        self.num_samples = int(self.info["num_samples"])

    def __len__(self):
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        return decode_record(self._source[int(index)])


class JoinedSource:
    """`source[i]` plus `heatmap_samples` [17, num_samples, 2] (full px), `heatmap_conf` [17] and
    `heatmap_pose` [17, 3] (the argmax pose, full px + confidence)."""

    def __init__(self, source, store: SampleStore, num_samples: int):
        if len(store) != len(source):
            raise ValueError(f"heatmap samples {store.path} hold {len(store)} records, the source {len(source)}")
        if not 0 < int(num_samples) <= store.num_samples:
            raise ValueError(f"config.data.num_heatmap_samples={num_samples} must be in [1, {store.num_samples}] "
                             f"(samples stored per joint in {store.path})")
        self.source, self.store, self.num_samples = source, store, int(num_samples)

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        ex = dict(self.source[index])
        rec = self.store[index]
        ex["heatmap_samples"] = rec["samples"][:, : self.num_samples]
        ex["heatmap_conf"] = rec["keypoints"][:, 2]
        ex["heatmap_pose"] = rec["keypoints"]
        ex["has_heatmap_samples"] = np.float32(1.0)
        return ex


def join(source, name: str, split: str, data_dir: str, samples_name: str, num_samples: int) -> JoinedSource:
    """`source` (records of `name`/`split`) joined with the store `heatmaps_<samples_name>`."""
    if int(num_samples) <= 0:
        raise ValueError(f"config.data.heatmap_samples_name={samples_name!r} needs config.data.num_heatmap_samples "
                         f"> 0 (got {num_samples})")
    folder = dataset_folder(name, data_dir)
    store = SampleStore(folder / f"heatmaps_{samples_name}", split, dataset_folder_path=folder)
    return JoinedSource(source, store, num_samples)
