"""How far does knowing the pose family get you? PA-MPJPE of per-family mean poses on a synthetic split.

The synthetic scenes draw each pose from a family (standing, walking, running, sitting, crouching, bending,
arms_raised, throwing, kicking, lying; `data_pipelines.synthetic.poses`). Two pose-only predictors, both
with the example's true betas (so only the articulation differs) and scored with PA-MPJPE (which removes the
global rotation, translation and scale):
  * mean       the per-joint chordal mean of the training poses: the evaluator's mean-pose baseline;
  * family     the chordal mean of the training poses of the example's *true* family: an oracle family
               classifier that knows nothing else about the pose.
A model whose PA-MPJPE is above the `family` number has not learnt even the family of the pose; reaching
below it needs the articulation within a family. Prints a table (all and per family), writes JSON.

    python tools/pose_family_oracle.py --data synthetic_humans/small --data-dir DATA --split test \
        --max-train 3000 --out family_oracle.json
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def family_means(rotmats, families):
    """rotmats [N, J, 3, 3], families [N] ints -> {family: chordal mean [J, 3, 3]} (evaluate's per-joint
    chordal mean, the one the mean-pose baseline uses)."""
    from hmrjax.evaluate import chordal_mean_rotation
    families = np.asarray(families)
    return {int(f): chordal_mean_rotation(rotmats[families == f]) for f in np.unique(families)}


def oracle_errors(forward, rotmats, betas, families, means, global_mean):
    """Per-example PA-MPJPE (mm, `hmrjax.metrics.pa_mpjpe`) of the global mean pose and of the example's
    family mean. forward(rotmats [J, 3, 3], betas [K]) -> joints [J, 3] in metres.
    Returns (mean_err [N], family_err [N]); family_err is NaN for an example whose family has no mean."""
    from hmrjax import metrics
    gt, g, fam = [], [], []
    for r, b, f in zip(rotmats, betas, np.asarray(families)):
        gt.append(forward(r, b))
        g.append(forward(global_mean, b))
        fam.append(forward(means[int(f)], b) if int(f) in means else np.full_like(gt[-1], np.nan))
    gt, g, fam = (np.stack(x) for x in (gt, g, fam))
    err = lambda p: np.asarray(metrics.pa_mpjpe(p.astype(np.float32), gt.astype(np.float32)), np.float64)
    return err(g), err(fam)


def _records(name, split, data_dir, n):
    import data_pipelines
    from scipy.spatial.transform import Rotation
    src = data_pipelines.open_source(name, split, data_dir)
    rot, betas, fam = [], [], []
    for i in range(min(int(n), len(src))):
        r = src[i]
        pose = np.asarray(r["pose"], np.float64)
        rot.append(Rotation.from_rotvec(pose).as_matrix())
        betas.append(np.asarray(r["betas"], np.float64))
        fam.append(int(r["family"]))
    return np.stack(rot), np.stack(betas), np.asarray(fam)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="synthetic_humans/small")
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-train", type=int, default=3000, help="training records for the means")
    ap.add_argument("--max-examples", type=int, default=1000)
    ap.add_argument("--body", default="anny_lite")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    from scipy.spatial.transform import Rotation

    from data_pipelines.synthetic.lbs import NumpyBody
    from data_pipelines.synthetic.poses import FAMILIES
    tr_rot, _, tr_fam = _records(args.data, "train", args.data_dir, args.max_train)
    te_rot, te_betas, te_fam = _records(args.data, args.split, args.data_dir, args.max_examples)
    body = NumpyBody(args.body, te_betas.shape[-1])
    forward = lambda r, b: body.forward(Rotation.from_matrix(r).as_rotvec(), b)[1]
    from hmrjax.evaluate import chordal_mean_rotation
    g, fam = oracle_errors(forward, te_rot, te_betas, te_fam, family_means(tr_rot, tr_fam),
                           chordal_mean_rotation(tr_rot))
    rows = {"all": (len(g), float(g.mean()), float(np.nanmean(fam)))}
    for f in np.unique(te_fam):
        sel = te_fam == f
        rows[FAMILIES[int(f)]] = (int(sel.sum()), float(g[sel].mean()), float(np.nanmean(fam[sel])))
    print(f"{'family':<12} {'n':>5} {'mean pose PA-MPJPE':>19} {'family mean PA-MPJPE':>21}")
    for k, (n, a, b) in rows.items():
        print(f"{k:<12} {n:>5} {a:>19.1f} {b:>21.1f}")
    result = {"data": args.data, "split": args.split, "train_records": int(len(tr_fam)), "body": args.body,
              "units": "mm", "pa_mpjpe": {k: {"examples": n, "mean_pose": a, "family_mean_pose": b}
                                          for k, (n, a, b) in rows.items()}}
    if args.out:
        from hmrjax.fileio import write_json
        write_json(args.out, result, indent=1)
        print("wrote", args.out)
    return result


if __name__ == "__main__":
    main()
