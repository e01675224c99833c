"""A contact-sheet PNG of stored synthetic examples: image with COCO-17 keypoints (visible filled, hidden
hollow) and the person box, part segmentation, metric depth and pseudo-depth, side by side.

Owns `contact_sheet(data_dir, split, out_png, ...)` and `example_tiles(ex)` (the four tiles of one example).
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from hmrjax.render import colormaps, overlay

__all__ = ["contact_sheet", "example_tiles"]


def example_tiles(ex: dict) -> list:
    """Four uint8 [H, W, 3] tiles: keypoints + box over the image, part-seg over a dimmed image, depth, pseudo-depth."""
    img = np.asarray(ex["image"])
    kp = overlay.draw_keypoints(img, np.asarray(ex["keypoints2d"]), radius=2.5)
    kp = overlay.draw_bbox(kp, center=np.asarray(ex["bbox_center"]), scale=float(ex["bbox_scale"]), width=1)
    seg = np.asarray(ex["part_seg"])
    parts = overlay.blend((img * 0.4).astype(np.uint8), colormaps.parts_to_rgb(seg.astype(np.int64), 24), seg > 0, 0.85)
    depth = colormaps.depth_to_rgb(np.asarray(ex["depth"]))
    pseudo = colormaps.apply_colormap(np.asarray(ex["pseudo_depth"]), "viridis")
    return [kp, parts, depth, pseudo]


def _open(data_dir, split: str, config: str):
    import tensorflow_datasets as tfds
    from data_pipelines.synthetic.builder import dataset_path
    root = pathlib.Path(data_dir)
    folder = root if (root / "dataset_info.json").exists() else dataset_path(config, root)
    if not (folder / "dataset_info.json").exists():
        raise FileNotFoundError(f"no synthetic_humans/{config} build in {root} (looked for {folder}/dataset_info.json);"
                                f" run `hmrjax data synth --config {config} --data-dir {root}` first")
    return tfds.builder_from_directory(os.fspath(folder)).as_data_source(split)


def contact_sheet(data_dir, split: str, out_png, *, config: str = "tiny", num: int = 12, start: int = 0,
                  per_row: int = 2) -> pathlib.Path:
    """Writes a PNG of `num` examples of `split` (from `start`), `per_row` examples (x 4 tiles) per row.

    data_dir: the tfds data dir holding `synthetic_humans/<config>/<version>`, or that version folder itself.
    Each tile row is labelled with the record index, the pose family and the number of occluders.
    """
    from data_pipelines.synthetic.poses import FAMILIES
    src = _open(data_dir, split, config)
    idx = list(range(start, min(start + num, len(src))))
    if not idx:
        raise ValueError(f"split {split!r} has {len(src)} examples; nothing from index {start}")
    tiles, labels = [], []
    for i in idx:
        ex = src[i]
        tiles += example_tiles(ex)
        fam = FAMILIES[int(ex["family"])] if "family" in ex else "?"
        vis = int(np.asarray(ex["keypoints2d"])[:, 2].sum())
        labels += [f"{split}[{i}] {fam} occ={int(ex.get('num_occluders', 0))} vis={vis}/17", "parts", "depth",
                   "pseudo-depth"]
    grid = colormaps.make_grid(tiles, 4 * per_row, labels=labels)
    return colormaps.save_png(out_png, grid)
