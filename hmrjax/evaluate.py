"""Evaluation of any Method on a dataset: per-batch metrics, dataset means, the mean-pose/shape baseline,
and `evaluate_workdir` (restore a training run's newest checkpoint, write metrics JSON + a PNG grid).

    metrics = evaluate(method, variables, batches, body=body, root=(0,), num_samples=1, rng=key)
    result = evaluate_workdir(workdir, split="test")      # <workdir>/eval/<split>/{metrics.json, predictions.png}

Metrics (dataset means of per-example values from `hmrjax.metrics`; names in the returned dict):
  mpjpe, pa_mpjpe, pve, pa_pve            mm, hypothesis 0 (the mode); `*_best`: best of S hypotheses (S > 1)
  kp2d_err_px, kp2d_err_px_samples        px, predicted COCO-17 keypoints (the body model's `coco17` regressor
                                          on the predicted vertices, projected with the full-frame camera:
                                          batch focal_length / princpt) vs keypoints2d_full on visible points;
                                          mode, and mean over the S hypotheses
  pck                                     fraction of visible keypoints (mode) within pck_threshold * bbox_scale
  root_orient_err_deg, local_rot_err_deg  degrees, when the prediction has `pose`: geodesic error of the mode's
                                          global (root, camera-frame) orientation, and the mean geodesic error
                                          of its other joints' local rotations (`metrics.rotation_error_deg`)
  spread_visible_mm, spread_invisible_mm  3D spread of the S hypotheses' root-aligned COCO-17 keypoints (S > 1)
  spread_*_aligned_mm                     the same after rigidly aligning each hypothesis to the mode
                                          (`metrics.aligned_keypoint_spread`): articulation only, without
                                          the hypotheses' differences in global orientation
  mask_perc_in, mask_min_dist_px          mask plausibility of all S hypotheses' projected keypoints, in dense
                                          mask px (S > 1, examples with a non-empty mask)
  part_seg_iou                            when the prediction has part_seg (labels at the dense size)
  depth_mae_mm, depth_mae_aligned_mm      when the prediction has depth: mean |error| on the GT foreground, as
                                          predicted (metres) and after a per-example least-squares scale and
                                          shift (for methods predicting relative depth, e.g. D-PoSE)
Ground truth 3D: the body model posed with the batch pose/betas/transl where has_pose & has_betas, else
`joints3d` (joint metrics only) where has_joints3d. Every mean is weighted by `valid` (padding) times the
metric's own availability; `counts` gives each metric's number of examples. Root alignment: the mean of
the `root` joints of each skeleton (pred and GT separately), `hmrjax.metrics.root_indices`.
Baseline ("baseline" in the JSON): `MeanBaseline`, the mean training pose (per-joint chordal mean, root
orientation included) and mean betas at each example's GT translation, measured like the model.
Optional config fields read by evaluate_workdir: config.eval.{root ('pelvis' | 'hips'), num_samples,
pck_threshold}; the root layout is config.data.pose_layout.
"""
from __future__ import annotations

import functools
import json
import pathlib
from typing import Iterable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hmrjax import metrics as M
from hmrjax.geometry.camera import perspective_projection
from hmrjax.methods.base import Method, Prediction

__all__ = ["evaluate", "batch_metrics", "predicted_keypoints", "part_label_map", "MeanBaseline", "mean_baseline",
           "mean_pose_and_shape", "chordal_mean_rotation", "train_mean_pose_and_shape", "resolve_body", "load_config",
           "restore_variables", "affine_align_depth", "make_evaluate_fn", "evaluate_workdir", "prediction_grid",
           "crop_camera"]

# ------------------------------------------------------------------------------------------ per batch
def _f(x):
    return jnp.asarray(x, jnp.float32)


def _per_sample(fn, *preds):
    """fn(*[B, ...] preds) -> [B] evaluated on every hypothesis of [B, S, ...] preds -> [B, S]."""
    return jax.vmap(fn, in_axes=1, out_axes=1)(*preds)


def _resize_nearest(maps, size: int):
    """[B, h, w(, ...)] -> [B, size, size(, ...)] by nearest-neighbour sampling of pixel centres."""
    h, w = maps.shape[1:3]
    if (h, w) == (size, size):
        return maps
    iy = jnp.floor((jnp.arange(size) + 0.5) * h / size).astype(jnp.int32)
    ix = jnp.floor((jnp.arange(size) + 0.5) * w / size).astype(jnp.int32)
    return maps[:, iy][:, :, ix]


def predicted_keypoints(pred: Prediction, body):
    """COCO-17 keypoints of every hypothesis [B, S, 17, 3] (m, camera frame) from the predicted vertices,
    or None when the body model has no `coco17` regressor or the vertex counts differ."""
    reg = body.extra_regressors.get("coco17") if hasattr(body, "extra_regressors") else None
    if reg is None or reg.shape[1] != pred.vertices.shape[2]:
        return None
    return jnp.einsum("kv,bsvc->bskc", jnp.asarray(reg, pred.vertices.dtype), pred.vertices,
                      precision=jax.lax.Precision.HIGHEST)


def batch_metrics(pred: Prediction, batch, body, *, root: Sequence[int] = (0,), pck_threshold: float = 0.05,
                  distance_map=None, part_scheme: str = "smpl24") -> dict:
    """Per-example metrics of one batch: {name: (values [B], weights [B])} (weights 0 = not measured).

    pred: the method's Prediction (camera frame, metres). batch: eval batch (see data_pipelines.pipeline).
    body: the body model (GT mesh from pose/betas/transl; `coco17` regressor for 2D keypoints).
    distance_map: [B, D, D] `metrics.mask_distance_map` of batch['mask'] (mask plausibility; S > 1).
    part_scheme: the GT part labels' scheme; 'smpl24' labels are mapped onto a prediction with the 23
    classes of 'smplx22' (hands merge into wrists). Pure jnp; jit it with `root`, `pck_threshold`,
    `part_scheme` static.
    """
    out = {}
    root = tuple(int(r) for r in root)
    valid = _f(batch["valid"])
    flag = lambda name: _f(batch[name]) if name in batch else jnp.zeros_like(valid)  # noqa: E731
    s = pred.vertices.shape[1]

    # ---- 3D
    gt = body(pose=_f(batch["pose"]), betas=_f(batch["betas"])[:, :body.num_betas], transl=_f(batch["transl"]))
    mesh_ok = flag("has_pose") * flag("has_betas")
    joints_ok = jnp.maximum(mesh_ok, flag("has_joints3d"))
    gt_joints = jnp.where(mesh_ok[:, None, None] > 0, gt.joints, _f(batch["joints3d"]))
    if pred.joints.shape[2] != gt_joints.shape[1]:
        raise ValueError(f"Prediction.joints has {pred.joints.shape[2]} joints but the ground truth has "
                         f"{gt_joints.shape[1]} (body model / data.num_joints)")
    pj, pv = _f(pred.joints), _f(pred.vertices)
    w3 = valid * joints_ok
    wv = valid * mesh_ok
    per = {
        "mpjpe": (_per_sample(lambda p: M.mpjpe(p, gt_joints, root=root), pj), w3),
        "pa_mpjpe": (_per_sample(lambda p: M.pa_mpjpe(p, gt_joints), pj), w3),
    }
    if pv.shape[2] == gt.vertices.shape[1]:
        per["pve"] = (_per_sample(lambda v, j: M.pve(v, gt.vertices, j, gt.joints, root=root), pv, pj), wv)
        per["pa_pve"] = (_per_sample(lambda v: M.pa_pve(v, gt.vertices), pv), wv)
    if pred.pose is not None and pred.pose.shape[2] == batch["pose"].shape[1]:
        from hmrjax.geometry.rotations import axis_angle_to_matrix
        pose = _f(pred.pose[:, 0])
        if pose.shape[-1] == 3 and pose.ndim == 3:          # axis-angle [B, J, 3]
            pose = axis_angle_to_matrix(pose)
        gt_rot = axis_angle_to_matrix(_f(batch["pose"]))
        wp = valid * flag("has_pose")
        out["root_orient_err_deg"] = (M.rotation_error_deg(pose[:, :1], gt_rot[:, :1]), wp)
        out["local_rot_err_deg"] = (M.rotation_error_deg(pose[:, 1:], gt_rot[:, 1:]), wp)
    for name, (vals, w) in per.items():
        out[name] = (vals[:, 0], w)
        if s > 1 and name != "pa_pve":
            out[name + "_best"] = (jnp.min(vals, axis=1), w)

    # ---- 2D keypoints
    kp3d = predicted_keypoints(pred, body)
    if kp3d is not None and "keypoints2d_full" in batch:
        kp3d = _f(kp3d)
        full = _f(batch["keypoints2d_full"])
        vis = full[..., 2] * flag("has_keypoints2d")[:, None]
        kp2d = perspective_projection(kp3d, _f(batch["focal_length"])[:, None, :], _f(batch["princpt"])[:, None, :])
        w2 = valid * (jnp.sum(vis, -1) > 0)
        mode, mean = M.keypoint_error_2d(kp2d, full[..., :2], vis)
        out["kp2d_err_px"] = (mode, w2)
        out["kp2d_err_px_samples"] = (mean, w2)
        out["pck"] = (M.pck(kp2d[:, 0], full[..., :2], pck_threshold, _f(batch["bbox_scale"]), vis), w2)
        if s > 1:
            center = jnp.mean(pj[:, :, jnp.asarray(root)], axis=2, keepdims=True)
            vis_b = vis > 0
            sv, si = M.keypoint_spread(kp3d - center, vis)
            has_kp = flag("has_keypoints2d")
            out["spread_visible_mm"] = (sv, valid * has_kp * jnp.any(vis_b, -1))
            out["spread_invisible_mm"] = (si, valid * has_kp * jnp.any(~vis_b, -1))
            sva, sia = M.aligned_keypoint_spread(kp3d, vis)
            out["spread_visible_aligned_mm"] = (sva, valid * has_kp * jnp.any(vis_b, -1))
            out["spread_invisible_aligned_mm"] = (sia, valid * has_kp * jnp.any(~vis_b, -1))
            if distance_map is not None and "mask" in batch:
                dense = distance_map.shape[-1]
                crop_size = batch["img"].shape[1]
                m = _f(batch["crop_transform"])                                    # [B, 2, 3] full px -> crop px
                crop_px = jnp.einsum("bij,bskj->bski", m[:, :, :2], kp2d) + m[:, None, None, :, 2]
                k = dense / crop_size                                             # crop px -> dense px
                dense_px = crop_px * k + (0.5 * k - 0.5)
                perc_in, min_dist = M.mask_plausibility(dense_px, _f(distance_map))
                wm = valid * flag("has_mask") * (jnp.sum(_f(batch["mask"]) > 0, (1, 2)) > 0)
                out["mask_perc_in"] = (perc_in, wm)
                out["mask_min_dist_px"] = (min_dist, wm)

    # ---- dense maps
    if pred.part_seg is not None and "part_seg" in batch:
        gt_seg = jnp.asarray(batch["part_seg"], jnp.int32)
        label_map = part_label_map(int(pred.part_seg.shape[-1]), part_scheme)
        if label_map is not None:
            gt_seg = jnp.asarray(label_map, jnp.int32)[gt_seg]
        labels = jnp.argmax(pred.part_seg, axis=-1)
        labels = _resize_nearest(labels, gt_seg.shape[-1])
        iou = M.part_seg_iou(labels, gt_seg, int(pred.part_seg.shape[-1]))
        out["part_seg_iou"] = (iou, valid * flag("has_part_seg"))
    if pred.depth is not None and "depth" in batch:
        gt_depth = _f(batch["depth"])
        d = _resize_nearest(_f(pred.depth), gt_depth.shape[-1])
        fg = gt_depth > 0
        wd = valid * flag("has_depth") * (jnp.sum(fg, (1, 2)) > 0)
        out["depth_mae_mm"] = (M.depth_error(d, gt_depth, fg) * M.M_TO_MM, wd)
        aligned = affine_align_depth(d, gt_depth, fg)
        out["depth_mae_aligned_mm"] = (M.depth_error(aligned, gt_depth, fg) * M.M_TO_MM, wd)
    return out


def affine_align_depth(pred, gt, mask):
    """a * pred + b with (a, b) = argmin sum_mask (a pred + b - gt)^2 per example (closed form).

    pred, gt: [B, H, W]; mask: [B, H, W] bool (pixels used). An example whose masked prediction is
    constant gets a = 0, b = mean gt. Returns [B, H, W].
    """
    w = mask.astype(pred.dtype)
    n = jnp.maximum(jnp.sum(w, (1, 2)), 1e-12)
    mp = jnp.sum(w * pred, (1, 2)) / n
    mg = jnp.sum(w * gt, (1, 2)) / n
    dp = (pred - mp[:, None, None]) * w
    var = jnp.sum(dp * dp, (1, 2))
    cov = jnp.sum(dp * (gt - mg[:, None, None]), (1, 2))
    a = jnp.where(var > 1e-12, cov / jnp.maximum(var, 1e-12), 0.0)
    b = mg - a * mp
    return a[:, None, None] * pred + b[:, None, None]


# ------------------------------------------------------------------------------------------ aggregation
class _Accumulator:
    """Float64 host sums: mean_m = sum_i w_i x_i / sum_i w_i over all batches (NaN-free: w = 0 drops x)."""

    def __init__(self):
        self.sums, self.weights, self.count = {}, {}, 0.0

    def add(self, per_example: dict, valid) -> None:
        self.count += float(np.sum(np.asarray(valid, np.float64)))
        for name, (vals, w) in per_example.items():
            vals, w = np.asarray(vals, np.float64), np.asarray(w, np.float64)
            vals = np.where(w > 0, vals, 0.0)  # a padded example's metric may be inf/NaN; it never counts
            self.sums[name] = self.sums.get(name, 0.0) + float(np.sum(vals * w))
            self.weights[name] = self.weights.get(name, 0.0) + float(np.sum(w))

    def result(self) -> dict:
        out = {name: self.sums[name] / self.weights[name] for name in sorted(self.sums) if self.weights[name] > 0}
        out["counts"] = {name: self.weights[name] for name in sorted(self.weights)}
        out["count"] = self.count
        return out

    def merge_processes(self) -> None:
        """Sums the accumulators of all processes (multi-host evaluation)."""
        if jax.process_count() == 1:
            return
        from jax.experimental import multihost_utils
        names = sorted(self.sums)
        local = np.asarray([self.sums[n] for n in names] + [self.weights[n] for n in names] + [self.count])
        total = np.sum(np.asarray(multihost_utils.process_allgather(local)), axis=0)
        k = len(names)
        self.sums = dict(zip(names, total[:k].tolist()))
        self.weights = dict(zip(names, total[k:2 * k].tolist()))
        self.count = float(total[-1])


def _host_batch(batch) -> dict:
    return {k: np.asarray(v) for k, v in dict(batch).items()}


def part_label_map(num_pred_classes: int, part_scheme: str):
    """GT-label -> prediction-class table when the prediction uses the 22-part SMPL-X scheme and the
    data the 24-part SMPL scheme (hands merge into wrists); None when the schemes agree."""
    from hmrjax.body import parts
    if part_scheme == "smpl24" and num_pred_classes == parts.NUM_CLASSES["smplx22"]:
        table = np.zeros(parts.NUM_CLASSES["smpl24"], np.int32)
        table[1:] = np.asarray(parts.SMPL24_TO_SMPLX22) + 1
        return table
    return None


@functools.lru_cache(maxsize=16)
def _compiled_step(method, num_samples: int, root: tuple, pck_threshold: float, part_scheme: str):
    """jit(predict + batch_metrics), cached per (method object, S, root, threshold) so that repeated
    evaluations (e.g. periodic eval during training) compile once."""

    def step(variables, batch, body, distance_map, rng):
        pred = method.predict(variables, batch, rng, num_samples=num_samples)
        per = batch_metrics(pred, batch, body, root=root, pck_threshold=pck_threshold,
                            distance_map=distance_map, part_scheme=part_scheme)
        return per, pred

    return jax.jit(step)


def _run(method, variables, batches: Iterable, *, body, root=(0,), num_samples: int = 1, rng=None,
         pck_threshold: float = 0.05, baseline: Optional[Method] = None, part_scheme: str = "smpl24",
         max_examples: Optional[int] = None, keep: int = 0):
    """evaluate() plus the first `keep` valid examples as (host batch slices, host predictions)."""
    rng = jax.random.PRNGKey(0) if rng is None else rng
    root = tuple(int(r) for r in root)

    def make_step(m, ns):
        args = (m, ns, root, float(pck_threshold), str(part_scheme))
        try:
            hash(m)
        except TypeError:  # a method defining __eq__ without __hash__: compile without the cache
            return _compiled_step.__wrapped__(*args)
        return _compiled_step(*args)

    runs = [("model", method, variables, int(num_samples))]
    if baseline is not None:
        runs.append(("baseline", baseline, getattr(baseline, "variables", {}), 1))
    steps = {name: make_step(m, ns) for name, m, _, ns in runs}
    accs = {name: _Accumulator() for name, *_ in runs}
    kept = []
    seen = 0
    for index, batch in enumerate(batches):
        batch = _host_batch(batch)
        if max_examples is not None:
            if seen >= max_examples:
                break
            idx = np.cumsum(batch["valid"] > 0) + seen
            batch["valid"] = np.where(idx <= max_examples, batch["valid"], 0.0).astype(np.float32)
        seen += int(np.sum(batch["valid"] > 0))
        dist = None
        if "mask" in batch and max(ns for *_, ns in runs) > 1:
            dist = M.mask_distance_map(batch["mask"])
            dist = np.where(np.isfinite(dist), dist, 0.0).astype(np.float32)  # empty masks have weight 0
        step_rng = jax.random.fold_in(rng, index)
        for name, m, v, ns in runs:
            per, pred = steps[name](v, batch, body, dist if ns > 1 else None, step_rng)
            per = jax.device_get(per)
            accs[name].add(per, batch["valid"])
            if name == "model" and len(kept) < keep:
                pred = jax.device_get(pred)
                for i in np.flatnonzero(batch["valid"] > 0)[: keep - len(kept)]:
                    kept.append(({k: v[i] for k, v in batch.items()},
                                 jax.tree.map(lambda x: np.asarray(x)[i], pred)))
    for acc in accs.values():
        acc.merge_processes()
    result = accs["model"].result()
    if baseline is not None:
        result["baseline"] = accs["baseline"].result()
    return result, kept


def evaluate(method, variables, batches: Iterable, *, body, root: Sequence[int] = (0,), num_samples: int = 1,
             rng=None, pck_threshold: float = 0.05, baseline: Optional[Method] = None,
             part_scheme: str = "smpl24", max_examples: Optional[int] = None) -> dict:
    """Dataset means of every metric (see the module docstring) for `method` with `variables`.

    batches: iterable of eval batches (dicts of [B, ...] arrays with `valid`). body: the body model.
    root: joint indices of the root (`metrics.root_indices`). num_samples: S hypotheses asked of predict.
    rng: PRNG key (folded with the batch index). baseline: another Method (e.g. `MeanBaseline`; its
    variables are its `.variables` attribute, {} if none) measured on the same batches, reported under
    "baseline". The jitted step is cached per (method, S, root, threshold): methods that compare equal
    share one compilation. part_scheme: the data's part labels ('smpl24'
    maps onto a 23-class prediction). max_examples: stop after this many valid examples.
    Returns {metric: mean, "counts": {metric: examples}, "count": valid examples[, "baseline": {...}]}.
    """
    result, _ = _run(method, variables, batches, body=body, root=root, num_samples=num_samples, rng=rng,
                     pck_threshold=pck_threshold, baseline=baseline, part_scheme=part_scheme,
                     max_examples=max_examples)
    return result


# ------------------------------------------------------------------------------------------ mean baseline
def chordal_mean_rotation(rotations, weights=None):
    """Chordal L2 mean of rotations: the rotation closest (Frobenius) to the weighted mean matrix.

    rotations: [N, ..., 3, 3]; weights [N] (None = equal). Returns [..., 3, 3] float64 (SVD projection
    onto SO(3): U diag(1, 1, det(U V^T)) V^T of the mean matrix).
    """
    r = np.asarray(rotations, np.float64)
    w = np.ones(len(r)) if weights is None else np.asarray(weights, np.float64)
    mean = np.tensordot(w, r, axes=(0, 0)) / max(float(w.sum()), 1e-12)
    u, _, vt = np.linalg.svd(mean)
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def mean_pose_and_shape(records: Iterable[dict]):
    """Mean pose [J, 3, 3] (per-joint chordal mean, root orientation included) and mean betas [K] over
    records/batches with `pose` [..., J, 3] axis-angle, `betas` [..., K] and `has_pose`/`has_betas` flags
    (and `valid` if present). Returns (pose [J, 3, 3] float32, betas [K] float32, number of poses used)."""
    from scipy.spatial.transform import Rotation
    poses, pw, betas, bw = [], [], [], []
    for rec in records:
        pose = np.asarray(rec["pose"], np.float64)
        lead = pose.shape[:-2]
        valid = np.broadcast_to(np.asarray(rec.get("valid", 1.0), np.float64), lead)
        hp = np.broadcast_to(np.asarray(rec.get("has_pose", 1.0), np.float64), lead) * valid
        hb = np.broadcast_to(np.asarray(rec.get("has_betas", 1.0), np.float64), lead) * valid
        j = pose.shape[-2]
        poses.append(Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(-1, j, 3, 3))
        pw.append(hp.reshape(-1))
        betas.append(np.asarray(rec["betas"], np.float64).reshape(-1, np.shape(rec["betas"])[-1]))
        bw.append(hb.reshape(-1))
    if not poses:
        raise ValueError("mean_pose_and_shape: no records")
    pw, bw = np.concatenate(pw), np.concatenate(bw)
    if pw.sum() <= 0:
        raise ValueError("mean_pose_and_shape: no record has a pose (has_pose = 0 everywhere)")
    pose = chordal_mean_rotation(np.concatenate(poses), pw)
    b = np.concatenate(betas)
    mean_b = (bw[:, None] * b).sum(0) / max(bw.sum(), 1e-12)
    return pose.astype(np.float32), mean_b.astype(np.float32), int(pw.sum())


class MeanBaseline(Method):
    """Predicts the same body for every image: the mean training pose (per-joint chordal mean, including
    the mean camera-frame root orientation) and the mean betas, placed at the example's GT translation
    (`batch['transl']`; so the 2D numbers measure pose/shape, not placement). Root-aligned metrics ignore
    the placement; PA-MPJPE also removes the root rotation.

    The mean pose [J, 3, 3] and betas [K] are its `variables` ({'params': {'pose', 'betas'}}), so one
    compiled evaluation serves any mean; two baselines on the same body object compare equal."""

    def __init__(self, body, pose, betas):
        super().__init__(None)
        self.body = body
        pose = np.asarray(pose, np.float32)
        if pose.shape[-2:] != (3, 3) or pose.ndim != 3:
            raise ValueError(f"MeanBaseline: pose must be [J, 3, 3] rotation matrices, got {pose.shape}")
        self.variables = {"params": {"pose": pose, "betas": np.asarray(betas, np.float32).reshape(-1)}}

    def __eq__(self, other):
        return type(other) is type(self) and other.body is self.body

    def __hash__(self):
        return hash((type(self), id(self.body)))

    def init(self, rng, batch):
        return self.variables

    def predict(self, variables, batch, rng, num_samples=1):
        pose, betas = variables["params"]["pose"], variables["params"]["betas"]
        b = batch["transl"].shape[0]
        pose = jnp.broadcast_to(pose, (b,) + pose.shape)
        betas = jnp.broadcast_to(betas, (b,) + betas.shape)
        out = self.body(pose=pose, betas=betas, transl=_f(batch["transl"]))
        return Prediction(vertices=out.vertices[:, None], joints=out.joints[:, None], pose=pose[:, None],
                          betas=betas[:, None])


def mean_baseline(body, batch, pose, betas) -> Prediction:
    """The mean-pose/shape baseline's Prediction for `batch` (see `MeanBaseline`): pose [J, 3, 3], betas [K]."""
    base = MeanBaseline(body, pose, betas)
    return base.predict(base.variables, batch, None)


# ------------------------------------------------------------------------------------------ workdir
def load_config(workdir):
    """The resolved config saved by the trainer (`<workdir>/config.json`) as a ConfigDict."""
    import ml_collections
    path = pathlib.Path(workdir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {workdir} a training workdir (`hmrjax train`)?")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def resolve_body(config, method=None):
    """The body model of a run: `method.body` if the method has one, else `config.body` (a name/path string
    or a dict with `model` and `num_betas`), else `config.model.body`, else the shipped 'anny_lite'."""
    import hmrjax.body
    if getattr(method, "body", None) is not None:
        return method.body
    num_betas = int(config.data.num_betas) if "data" in config and "num_betas" in config.data else 10
    if "model" in config and hasattr(config.model, "keys") and "num_betas" in config.model:
        num_betas = int(config.model.num_betas)
    spec = None
    if "body" in config:
        spec = config.body
    elif "model" in config and hasattr(config.model, "keys") and "body" in config.model:
        spec = config.model.body
    if hasattr(spec, "keys"):
        num_betas = int(spec.get("num_betas", num_betas))
        spec = spec.get("model") or spec.get("name") or spec.get("path")
    return hmrjax.body.load(spec or "anny_lite", num_betas=num_betas)


def restore_variables(workdir, step: Optional[int] = None, use_ema: Optional[bool] = None, config=None):
    """Restores the params (or EMA params) and non-param state of a checkpoint; the optimizer state and
    data position are read but dropped. use_ema: None = EMA when the run kept one (optim.ema_decay > 0).
    Returns (variables {'params': ..., other collections}, step)."""
    import orbax.checkpoint as ocp
    directory = pathlib.Path(workdir).absolute() / "checkpoints"
    if not directory.exists():
        raise FileNotFoundError(f"no checkpoints in {directory}")
    mngr = ocp.CheckpointManager(directory, item_names=("state",),
                                 item_handlers={"state": ocp.StandardCheckpointHandler()},
                                 options=ocp.CheckpointManagerOptions(create=False))
    try:
        step = mngr.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"no complete checkpoint in {directory}")
        restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
    finally:
        mngr.close()
    ema = restored.get("ema_params")
    if use_ema is None:  # the run's own choice; without a config: EMA whenever the checkpoint has it
        use_ema = ema is not None and (config is None or float(config.optim.get("ema_decay", 0.0)) > 0)
    if use_ema and ema is None:
        raise ValueError(f"use_ema=True but the checkpoint at step {step} in {directory} has no ema_params")
    params = ema if use_ema else restored["params"]
    state = restored.get("state") or {}
    return {"params": params, **dict(state)}, int(step)


def _eval_options(config) -> dict:
    ev = config.get("eval", None) if hasattr(config, "get") else None
    ev = dict(ev) if ev is not None else {}
    layout = str(config.data.get("pose_layout", "smpl24")) if "data" in config else "smpl24"
    return {"root": M.root_indices(layout, str(ev.get("root", "pelvis"))),
            "num_samples": int(ev.get("num_samples", 1)),
            "pck_threshold": float(ev.get("pck_threshold", 0.05)),
            "part_scheme": str(config.data.get("part_scheme", "smpl24")) if "data" in config else "smpl24"}


def train_mean_pose_and_shape(config, max_records: int = 1000):
    """`mean_pose_and_shape` over the first `max_records` records of the train split (config.data)."""
    import data_pipelines
    from data_pipelines import pipeline
    source = data_pipelines.open_source(config.data.name, config.data.train_split, config.data.data_dir)
    n = min(len(source), int(max_records))
    recs = (pipeline.load_record(source, i, config.data) for i in range(n))
    return mean_pose_and_shape(recs)


def make_evaluate_fn(config, split: Optional[str] = None, *, max_examples: Optional[int] = None,
                     batches: Optional[Iterable] = None, use_ema: Optional[bool] = None):
    """The trainer's periodic evaluation: returns fn(TrainState) -> {metric: mean} (flat scalars) over
    `batches` (re-iterated each call) or `build_eval_dataset(config, split)`; EMA params when the run keeps
    them (unless use_ema=False). Pass it as `train_and_evaluate(..., evaluate_fn=...)`."""
    from hmrjax import methods
    method = methods.create(config)
    body = resolve_body(config, method)
    opts = _eval_options(config)
    use_ema = (float(config.optim.get("ema_decay", 0.0)) > 0) if use_ema is None else bool(use_ema)

    def evaluate_fn(state) -> dict:
        params = state.ema_params if use_ema and state.ema_params is not None else state.params
        data = batches
        if data is None:
            import data_pipelines
            data = data_pipelines.build_eval_dataset(config, split, jax.process_index(), jax.process_count())
        result, _ = _run(method, {"params": params, **dict(state.state)}, data, body=body, root=opts["root"],
                         num_samples=opts["num_samples"], rng=jax.random.PRNGKey(int(config.get("seed", 0))),
                         pck_threshold=opts["pck_threshold"], part_scheme=opts["part_scheme"],
                         max_examples=max_examples)
        return {k: v for k, v in result.items() if isinstance(v, float)}

    return evaluate_fn


def flip_suffix(flip_test: Optional[bool], run_default: bool) -> str:
    """Name suffix of an evaluation output whose test-time flip `flip_test` (None: the run's) may override the
    run's `config.model.flip_test` (`run_default`): '' unless it differs, then '_flip' / '_noflip'."""
    if flip_test is None or bool(flip_test) == bool(run_default):
        return ""
    return "_flip" if flip_test else "_noflip"


def evaluate_workdir(workdir, split: str = "test", *, max_examples: Optional[int] = None,
                     num_samples: Optional[int] = None, out=None, step: Optional[int] = None,
                     batches: Optional[Iterable] = None, baseline="train", num_grid: int = 4,
                     use_ema: Optional[bool] = None, data_name: Optional[str] = None,
                     data_dir: Optional[str] = None, flip_test: Optional[bool] = None) -> dict:
    """Evaluates a training run's newest (or `step`) checkpoint on `split`; writes metrics.json and
    predictions.png to `out` (default `<workdir>/eval/<split>`, `<split>_flip` / `_noflip` when `flip_test`
    differs from the run's `config.model.flip_test`, `flip_suffix`; methods without a test-time flip refuse it).

    data_name / data_dir: evaluate on another dataset (or release, "synthetic_humans/small:1.0.0") than the
    run's `config.data` (the mean-pose baseline then also comes from that dataset's train split).

    batches: eval batches to use instead of `data_pipelines.build_eval_dataset(config, split)`.
    baseline: 'train' (mean pose/shape of the train split, up to 1000 records), a (pose [J, 3, 3],
    betas [K]) pair, a Method, or None. num_samples: default config.eval.num_samples (or 1).
    Returns the metrics dict (as written), with `paths`.
    """
    config = load_config(workdir)
    if data_name:
        config.data.name = str(data_name)
    if data_dir is not None:
        config.data.data_dir = str(data_dir)
    suffix = flip_suffix(flip_test, config.model.get("flip_test", False))
    if flip_test is not None:
        config.model.flip_test = bool(flip_test)
    from hmrjax import methods
    method = methods.create(config)
    if flip_test is not None and not method.supports_flip_test:
        raise ValueError(f"evaluate_workdir: flip_test={flip_test} but method {config.method!r} ({workdir}) has "
                         f"no test-time flip")
    variables, step = restore_variables(workdir, step=step, use_ema=use_ema, config=config)
    body = resolve_body(config, method)
    opts = _eval_options(config)
    if num_samples is not None:
        opts["num_samples"] = int(num_samples)
    if batches is None:
        import data_pipelines
        batches = data_pipelines.build_eval_dataset(config, split, jax.process_index(), jax.process_count())
    base, base_info = None, None
    if isinstance(baseline, str) and baseline == "train":
        pose, betas, n = train_mean_pose_and_shape(config)
        base, base_info = MeanBaseline(body, pose, betas), {"source": f"{config.data.train_split} split", "poses": n}
    elif isinstance(baseline, Method):
        base, base_info = baseline, {"source": type(baseline).__name__}
    elif baseline is not None:
        base, base_info = MeanBaseline(body, *baseline), {"source": "given"}
    result, kept = _run(method, variables, batches, body=body, root=opts["root"], num_samples=opts["num_samples"],
                        rng=jax.random.PRNGKey(int(config.get("seed", 0))), pck_threshold=opts["pck_threshold"],
                        baseline=base, part_scheme=opts["part_scheme"], max_examples=max_examples, keep=num_grid)
    if base_info is not None:
        result["baseline"]["description"] = ("mean training pose (per-joint chordal mean incl. root orientation) "
                                             "and mean betas at the GT translation")
        result["baseline"].update(base_info)
    result.update(step=step, split=split, num_samples=opts["num_samples"], root=list(opts["root"]),
                  pck_threshold=opts["pck_threshold"], method=str(config.method),
                  flip_test=bool(config.model.get("flip_test", False)))
    out = pathlib.Path(out) if out is not None else pathlib.Path(workdir) / "eval" / (split + suffix)
    paths = {}
    if jax.process_index() == 0:
        from hmrjax.train.logging import write_json_atomic
        out.mkdir(parents=True, exist_ok=True)
        paths["metrics"] = str(out / "metrics.json")
        write_json_atomic(out / "metrics.json", result)
        if kept:
            from hmrjax.render import save_png
            grid = prediction_grid(kept, body, mean=config.data.get("mean"), std=config.data.get("std"),
                                   part_scheme=opts["part_scheme"])
            paths["predictions"] = str(save_png(out / "predictions.png", grid))
    result["paths"] = paths
    return result


# ------------------------------------------------------------------------------------------ pictures
def crop_camera(example):
    """The `render.Camera` of an example's crop: the full-frame camera (focal_length, princpt) followed by
    the axis-aligned crop affine `crop_transform` [2, 3] (full px -> crop px); image size from `img`."""
    from hmrjax.render import Camera
    m = np.asarray(example["crop_transform"], np.float64)
    if abs(m[0, 1]) > 1e-9 or abs(m[1, 0]) > 1e-9:
        raise ValueError(f"crop_transform must be axis-aligned (scale + shift) for a pinhole crop camera, got {m}")
    f = np.asarray(example["focal_length"], np.float64)
    c = np.asarray(example["princpt"], np.float64)
    size = np.asarray(example["img"]).shape[:2]
    return Camera(focal=(m[0, 0] * f[0], m[1, 1] * f[1]),
                  principal=(m[0, 0] * c[0] + m[0, 2], m[1, 1] * c[1] + m[1, 2]),
                  image_size=size)


def _denormalise(img, mean, std):
    mean = np.asarray(mean if mean is not None else (0.485, 0.456, 0.406), np.float32) * 255.0
    std = np.asarray(std if std is not None else (0.229, 0.224, 0.225), np.float32) * 255.0
    return np.clip(np.asarray(img, np.float32) * std + mean, 0, 255).astype(np.uint8)


def _upsample(tile, size):
    from PIL import Image
    if tile.shape[:2] == tuple(size):
        return tile
    return np.asarray(Image.fromarray(tile).resize((size[1], size[0]), Image.NEAREST))


GRID_COLUMNS = ("input + GT 2D", "pred mesh", "GT mesh", "pred depth", "GT depth", "pred parts", "GT parts")


def prediction_grid(examples, body, mean=None, std=None, part_scheme: str = "smpl24") -> np.ndarray:
    """[H', W', 3] uint8 picture, one row per (example, prediction) pair (host arrays, no batch axis):
    input crop with GT keypoints | predicted mesh over the crop | GT mesh over the crop, then predicted vs
    GT depth and part labels when the prediction has them (blank tiles otherwise)."""
    from hmrjax import render
    has_depth = any(p.depth is not None for _, p in examples)
    has_seg = any(p.part_seg is not None for _, p in examples)
    cols = list(GRID_COLUMNS[:3]) + (list(GRID_COLUMNS[3:5]) if has_depth else []) + \
        (list(GRID_COLUMNS[5:]) if has_seg else [])
    tiles, labels = [], []
    for ex, pred in examples:
        crop = _denormalise(ex["img"], mean, std)
        size = crop.shape[:2]
        cam = crop_camera(ex)
        kp = np.asarray(ex["keypoints2d"], np.float64).copy()
        kp[:, :2] = (kp[:, :2] + 1.0) * (size[0] / 2.0) - 0.5       # crop-normalised [-1, 1] -> crop px
        row = [render.draw_keypoints(crop, kp)]
        faces = np.asarray(body.faces)
        row.append(render.overlay_mesh(crop, np.asarray(pred.vertices[0], np.float64), faces, cam)
                   if pred.vertices.shape[-2] == faces.max() + 1 else crop)
        if float(ex.get("has_pose", 0)) and float(ex.get("has_betas", 0)):
            gt = body(pose=jnp.asarray(ex["pose"])[None], betas=jnp.asarray(ex["betas"])[None, :body.num_betas],
                      transl=jnp.asarray(ex["transl"])[None])
            row.append(render.overlay_mesh(crop, np.asarray(gt.vertices[0], np.float64), faces, cam,
                                           color=(0.86, 0.74, 0.65)))
        else:
            row.append(np.zeros_like(crop))
        if has_depth:  # each map in its own foreground range (a method may predict relative depth)
            gt_d = np.asarray(ex["depth"], np.float64)
            pd = np.zeros_like(gt_d) if pred.depth is None else np.asarray(pred.depth, np.float64)
            row.append(_upsample(render.depth_to_rgb(pd), size))
            row.append(_upsample(render.depth_to_rgb(gt_d), size))
        if has_seg:
            gt_s = np.asarray(ex["part_seg"], np.int64)
            if pred.part_seg is None:
                ps = np.zeros_like(gt_s)
            else:
                ps = np.argmax(np.asarray(pred.part_seg), -1)
                table = part_label_map(int(np.shape(pred.part_seg)[-1]), part_scheme)
                gt_s = gt_s if table is None else table[gt_s]   # same colours for the same part
            n = int(max(gt_s.max(), ps.max(), 1))
            row.append(_upsample(render.parts_to_rgb(ps, n), size))
            row.append(_upsample(render.parts_to_rgb(gt_s, n), size))
        tiles.extend(row)
        labels.extend(cols if not labels else [""] * len(cols))
    return render.make_grid(tiles, nrow=len(cols), labels=labels)
