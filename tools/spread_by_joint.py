"""Per-keypoint 3D spread of a probabilistic run's hypotheses, visible vs invisible, joint by joint.

`hmrjax eval` pools the spread over all visible and all invisible keypoints of an image; the pooled numbers
mix joint types (the face keypoints, far from the pelvis, are mostly the visible ones of a person facing the
camera). This tool compares each COCO-17 keypoint with itself: for keypoint k, the mean spread over the test
images where k is visible and over those where it is hidden, for the root-aligned hypotheses (as the
evaluator) and after rigidly fitting each hypothesis onto the mode (`metrics.aligned_keypoint_spread`, which
removes the hypotheses' disagreement on the global orientation). Prints a table, writes JSON.

    python tools/spread_by_joint.py --workdir runs/prob --num-samples 100 --max-examples 300 --out spread.json
"""
import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

def per_joint_spread(kp3d, root_center):
    """[B, 17] spread (mm) of root-aligned and of mode-fitted hypotheses. kp3d [B, S, 17, 3] m; root_center
    [B, S, 1, 3] m (each hypothesis' root)."""
    from hmrjax import metrics
    return metrics.joint_spread(kp3d - root_center), metrics.joint_spread(metrics.fit_to_mode(kp3d))


def summarize(spread, visible, valid):
    """Per-joint means over the images where the joint is visible / hidden. spread, visible: [N, 17];
    valid: [N]. Returns rows and the joint-balanced summary (joints seen both ways at least 5 times)."""
    from hmrjax.body import layouts
    rows, ratios = [], []
    for k, name in enumerate(layouts.COCO17.joint_names):
        v = (visible[:, k] > 0) & valid
        h = (visible[:, k] <= 0) & valid
        sv = float(spread[v, k].mean()) if v.any() else float("nan")
        sh = float(spread[h, k].mean()) if h.any() else float("nan")
        rows.append(dict(joint=name, n_visible=int(v.sum()), n_hidden=int(h.sum()), visible_mm=sv, hidden_mm=sh))
        if v.sum() >= 5 and h.sum() >= 5:
            ratios.append(sh / sv)
    return rows, dict(joints_compared=len(ratios), joints_hidden_larger=int(np.sum(np.asarray(ratios) > 1.0)),
                      mean_ratio_hidden_over_visible=float(np.mean(ratios)) if ratios else float("nan"))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--num-samples", type=int, default=100)
    p.add_argument("--max-examples", type=int, default=300)
    p.add_argument("--data", default=None, help="dataset instead of the run's config.data.name")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)

    import data_pipelines
    from hmrjax import evaluate as ev
    from hmrjax import methods

    config = ev.load_config(a.workdir)
    if a.data:
        config.data.name = a.data
    method = methods.create(config)
    variables, step = ev.restore_variables(a.workdir, config=config)
    body = ev.resolve_body(config, method)
    root = tuple(int(r) for r in ev._eval_options(config)["root"])

    @jax.jit
    def run(variables, batch, rng):
        pred = method.predict(variables, batch, rng, num_samples=a.num_samples)
        kp = ev.predicted_keypoints(pred, body)
        center = jnp.mean(pred.joints[:, :, jnp.asarray(root)], axis=2, keepdims=True)
        return per_joint_spread(kp, center)

    plains, aligneds, vis, valid, seen = [], [], [], [], 0
    for i, batch in enumerate(data_pipelines.build_eval_dataset(config, a.split, 0, 1)):
        batch = ev._host_batch(batch)
        ok = batch["valid"] > 0
        plain, aligned = jax.device_get(run(variables, batch, jax.random.fold_in(jax.random.PRNGKey(0), i)))
        take = np.flatnonzero(ok)[: max(a.max_examples - seen, 0)]
        plains.append(plain[take]), aligneds.append(aligned[take])
        vis.append(batch["keypoints2d_full"][take, :, 2]), valid.append(np.ones(len(take), bool))
        seen += len(take)
        if seen >= a.max_examples:
            break
    plain, aligned, vis, valid = (np.concatenate(x) for x in (plains, aligneds, vis, valid))
    result = dict(workdir=str(a.workdir), step=int(step), split=a.split, images=int(seen),
                  num_samples=a.num_samples, data=str(config.data.name))
    for name, values in (("root_aligned", plain), ("mode_fitted", aligned)):
        rows, summary = summarize(values, vis, valid)
        result[name] = dict(rows=rows, **summary)
        print(f"\n{name}: spread (mm) per keypoint, visible vs hidden ({seen} images x {a.num_samples} hypotheses)")
        print(f"{'joint':12s} {'n vis':>6s} {'n hid':>6s} {'visible':>9s} {'hidden':>9s}")
        for r in rows:
            print(f"{r['joint']:12s} {r['n_visible']:6d} {r['n_hidden']:6d} {r['visible_mm']:9.1f} {r['hidden_mm']:9.1f}")
        print(f"hidden > visible for {summary['joints_hidden_larger']} of {summary['joints_compared']} keypoints "
              f"(seen both ways >= 5 times); mean ratio hidden / visible {summary['mean_ratio_hidden_over_visible']:.3f}")
    if a.out:
        pathlib.Path(a.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
