"""Collects a recorded training run into one JSON: its command, config, periodic-eval curve, and the
`hmrjax eval` metrics (model and mean-pose baseline) of the splits evaluated.

    python tools/collect_run.py WORKDIR OUT.json --command "hmrjax train ..." [--splits test test_ood]
"""
import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from hmrjax.fileio import write_json  # noqa: E402

CURVE_KEYS = ("mpjpe", "pa_mpjpe", "pve", "part_seg_iou", "pck")
EVAL_KEYS = ("mpjpe", "pa_mpjpe", "pve", "part_seg_iou", "pck", "root_orient_err_deg", "local_rot_err_deg")
TRAIN_KEYS = ("loss", "pose_mse", "betas_mse", "joints3d_mse", "part_seg_ce", "keypoints_crop_l1",
              "keypoint_heatmap_mse", "mpjpe_mm", "images_per_s")


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("workdir")
    p.add_argument("out")
    p.add_argument("--command", required=True)
    p.add_argument("--splits", nargs="*", default=["test", "test_occluded", "test_ood"])
    p.add_argument("--note", default="")
    a = p.parse_args(argv)
    wd = pathlib.Path(a.workdir)
    rows = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    curve = [{"step": r["step"], **{k: round(r[f"eval/{k}"], 3) for k in CURVE_KEYS if f"eval/{k}" in r}}
             for r in rows if any(k.startswith("eval/") for k in r)]
    train = [{"step": r["step"], **{k: round(r[k], 4) for k in TRAIN_KEYS if k in r}}
             for r in rows if "loss" in r and r["step"] % 500 == 0]
    evals = {}
    for split in a.splits:
        f = wd / "eval" / split / "metrics.json"
        if f.exists():
            d = json.loads(f.read_text())
            base = d.get("baseline", {})
            evals[split] = {"step": d["step"], "count": d["count"],
                            **{k: round(d[k], 2) for k in EVAL_KEYS if k in d},
                            "baseline": {k: round(base[k], 2) for k in EVAL_KEYS if k in base},
                            "ratio_to_baseline": {k: round(d[k] / base[k], 3) for k in ("mpjpe", "pa_mpjpe", "pve")
                                                  if k in d and base.get(k)}}
    config = json.loads((wd / "config.json").read_text())
    write_json(a.out, {"command": a.command, "note": a.note, "method": config.get("method"),
                       "final_step": rows[-1]["step"] if rows else 0, "eval": evals,
                       "curve_validation": curve, "train_log": train,
                       "config": {k: config[k] for k in ("model", "loss", "optim", "batch_size", "max_train_minutes")
                                  if k in config}}, indent=1)
    print(json.dumps(evals, indent=1))


if __name__ == "__main__":
    main()
