"""Does a 2D detector tell which way people face? Left/right order of its shoulders and hips vs the truth.

In an image, the left shoulder and hip of a person facing the camera are on the image's right (x_left > x_right);
of a person facing away, on its left. So labelled 2D keypoints encode the front/back direction that the
global orientation needs. This tool reads a dataset split and the detector's heatmap-sample store beside it
(`hmrjax data heatmaps`), and reports:
  * gt_order_matches_facing   how often the sign of (x_left - x_right) of the ground-truth keypoints (shoulders
                              + hips) agrees with the facing direction of the ground-truth root rotation
                              (sanity check of the geometry: ~1 where the body is not seen edge-on);
  * detector_order_matches_gt how often the detector's order (its argmax keypoints) agrees with the ground
                              truth's (0.5 = no front/back information, 1 = always right);
each over all images with a definite order and over the half whose shoulder + hip widths in the image are
largest (people seen more from the front or back than from the side). Prints a table, writes JSON.

    python tools/facing_from_detector.py --data synthetic_humans/small:1.0.0 --data-dir DATA --store det_C \
        --split test --max-examples 1000 --out facing.json
"""
import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hmrjax.body import layouts  # noqa: E402

# COCO-17 indices of the (left, right) shoulders and hips
PAIRS = tuple((layouts.COCO17.index(f"left_{j}"), layouts.COCO17.index(f"right_{j}")) for j in ("shoulder", "hip"))


def lr_order(kp2d):
    """[..., 17, >=2] pixels -> [...] sum over shoulders and hips of sign(x_left - x_right), in {-2, ..., 2}."""
    kp2d = np.asarray(kp2d)
    return sum(np.sign(kp2d[..., left, 0] - kp2d[..., right, 0]) for left, right in PAIRS)


def lr_width(kp2d):
    """[..., 17, >=2] -> [...] |x_left - x_right| summed over shoulders and hips (px)."""
    kp2d = np.asarray(kp2d)
    return sum(np.abs(kp2d[..., left, 0] - kp2d[..., right, 0]) for left, right in PAIRS)


def agreement(gt_kp, det_kp, root_rotmat):
    """gt_kp, det_kp: [N, 17, >=2] px; root_rotmat: [N, 3, 3] camera-frame root rotations of a y-up body
    whose front is +z (a person facing the camera has its front along -z in the OpenCV camera frame).
    Returns {subset: {images, gt_order_matches_facing, detector_order_matches_gt}} for 'all' and 'wide'."""
    gt, det = np.sign(lr_order(gt_kp)), np.sign(lr_order(det_kp))
    facing_camera = -np.sign(np.asarray(root_rotmat)[:, 2, 2])   # +1: front towards the camera
    width = lr_width(gt_kp)
    definite = gt != 0
    out = {}
    for name, subset in (("all", definite), ("wide", definite & (width > np.median(width[definite])))):
        out[name] = dict(images=int(subset.sum()),
                         gt_order_matches_facing=float(np.mean(gt[subset] == facing_camera[subset])),
                         detector_order_matches_gt=float(np.mean(det[subset] == gt[subset])))
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="dataset name, e.g. synthetic_humans/small:1.0.0")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--store", required=True, help="heatmap store name (the folder heatmaps_<store>)")
    p.add_argument("--split", default="test")
    p.add_argument("--max-examples", type=int, default=1000)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)

    from data_pipelines import heatmap_samples as hs
    from data_pipelines import pipeline
    from hmrjax.geometry import rotations

    source = pipeline.open_tfds_source(a.data, a.split, a.data_dir)
    store = hs.SampleStore(hs.store_dir(a.data, a.data_dir, a.store), a.split)
    n = min(len(source), a.max_examples)
    gt, det, root = [], [], []
    for i in range(n):
        ex = source[i]
        gt.append(np.asarray(ex["keypoints2d"])[:, :2])
        det.append(store[i]["keypoints"][:, :2])
        root.append(np.asarray(ex["pose"])[0])
    rot = np.asarray(rotations.axis_angle_to_matrix(np.stack(root)))
    result = dict(data=a.data, split=a.split, store=a.store, **agreement(np.stack(gt), np.stack(det), rot))
    print(f"{'subset':8s} {'images':>7s} {'GT order = facing':>18s} {'detector order = GT':>20s}")
    for name in ("all", "wide"):
        r = result[name]
        print(f"{name:8s} {r['images']:7d} {r['gt_order_matches_facing']:18.3f} {r['detector_order_matches_gt']:20.3f}")
    if a.out:
        from hmrjax.fileio import write_json
        write_json(a.out, result)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
