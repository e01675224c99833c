"""hmrjax.evaluate: every dataset mean against a float64 numpy reference written here, on real eval batches of
rendered synthetic examples (with padding and missing labels); oracle ~0; mean baseline; checkpoint restore
(a 2-step training run of a test method, EMA preferred) with metrics.json and the PNG grid."""
import functools
import json

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.spatial.transform import Rotation

import hmrjax
from configs import common
from data_pipelines import pipeline
from data_pipelines.synthetic import render_example as render_lib
from hmrjax import evaluate as ev
from hmrjax import methods
from hmrjax.methods.base import Method, Prediction

ROOT = (0,)
N_RECORDS = 6     # two batches of 4: the second has 2 padding examples
PLACEMENT = np.asarray([0.0, 0.0, 3.0], np.float32)  # where the oracle puts a body without GT translation


@functools.lru_cache(maxsize=None)
def _body():
    return hmrjax.body.load("anny_lite", num_betas=10)


class OracleMethod(Method):
    """Ground truth from the batch (body model on pose/betas/transl; `joints3d` where there is no pose), then
    perturbed by its params: hypothesis s adds `offset + s * sample_delta` (m) to every vertex and every joint
    but the root; depth = GT depth + depth_offset + depth_square * GT depth^2 on the foreground; part_seg =
    one-hot GT labels, with label 1 relabelled 2 when seg_swap > 0. Training pulls params['offset'] towards
    config.model.target (the other params get zero gradients). All instances with the same target compare
    equal, so one compilation serves every test."""

    def __init__(self, config):
        super().__init__(config)
        self.body = _body()
        self.target = float(config.model.target)

    def __eq__(self, other):
        return type(other) is type(self) and other.target == self.target

    def __hash__(self):
        return hash((type(self), self.target))

    def init(self, rng, batch):
        return {"params": perturb()}

    def loss(self, params, state, batch, rng):
        loss = jnp.sum(jnp.square(params["offset"] - self.target)) + 0.0 * jnp.mean(batch["img"])
        loss = loss + 0.0 * sum(jnp.sum(v) for k, v in params.items() if k != "offset")
        return loss, ({"offset0": params["offset"][0]}, state)

    def predict(self, variables, batch, rng, num_samples=1):
        p = variables["params"]
        gt = self.body(pose=batch["pose"], betas=batch["betas"], transl=batch["transl"])
        has_pose = batch["has_pose"][:, None, None] > 0
        joints = jnp.where(has_pose, gt.joints, batch["joints3d"])
        place = jnp.where(batch["has_transl"][:, None, None] > 0, 0.0, PLACEMENT)
        verts, joints = gt.vertices + place, joints + place
        s = jnp.arange(num_samples, dtype=jnp.float32)[None, :, None, None]
        shift = p["offset"] + s * p["sample_delta"]                                      # [1, S, 1, 3]
        verts = verts[:, None] + shift
        not_root = (jnp.arange(joints.shape[1]) != 0)[None, None, :, None]
        joints = joints[:, None] + shift * not_root
        depth = batch["depth"] + (p["depth_offset"] + p["depth_square"] * batch["depth"] ** 2) * (batch["depth"] > 0)
        labels = batch["part_seg"]
        labels = jnp.where((labels == 1) & (p["seg_swap"] > 0), 2, labels)
        return Prediction(vertices=verts, joints=joints, depth=depth,
                          part_seg=jax.nn.one_hot(labels, 25) * 10.0)


def perturb(offset=(0.0, 0.0, 0.0), sample_delta=(0.0, 0.0, 0.0), depth_offset=0.0, depth_square=0.0,
            seg_swap=False):
    return {"offset": jnp.asarray(offset, jnp.float32), "sample_delta": jnp.asarray(sample_delta, jnp.float32),
            "depth_offset": jnp.float32(depth_offset), "depth_square": jnp.float32(depth_square),
            "seg_swap": jnp.float32(seg_swap)}


methods.register("test_oracle", f"{__name__}:OracleMethod")


def make_config():
    c = common.base_config()
    c.method = "test_oracle"
    c.batch_size = 4
    c.data = pipeline.default_config()
    c.data.name = "in_memory"
    c.data.image_size, c.data.dense_size, c.data.read_threads = 32, 16, 0
    c.model = ml_collections.ConfigDict({"target": 0.05})
    return c


@pytest.fixture(scope="module")
def data():
    body_np = render_lib.get_body("anny_lite", 10)
    records = [render_lib.render_example(0, "test", i, (96, 96), body=body_np) for i in range(N_RECORDS)]
    for r in records:
        r.pop("family", None), r.pop("num_occluders", None)
    del records[1]["pose"], records[1]["betas"]      # joints3d only: joint metrics, no PVE
    del records[2]["keypoints2d"]                    # no 2D labels
    del records[3]["mask"], records[3]["depth"]
    config = make_config()
    batches = list(pipeline.make_eval_dataset(records, config))
    body = _body()
    return {"records": records, "batches": batches, "config": config, "body": body}


# ------------------------------------------------------------------------------------------ numpy reference
@jax.jit
def pose_body(body, pose, betas, transl):
    """The body model (not under test here) posed once per batch shape, compiled once."""
    return body(pose=pose, betas=betas, transl=transl)


def _umeyama(p, g):
    """float64 similarity Procrustes: argmin_{s,R,t} sum ||s R p + t - g||^2 applied to p."""
    mp, mg = p.mean(0), g.mean(0)
    x, y = p - mp, g - mg
    u, d, vt = np.linalg.svd(y.T @ x)
    s_ = np.ones(3)
    s_[2] = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag(s_) @ vt
    scale = np.sum(d * s_) / np.sum(x * x)
    return scale * x @ r.T + mg


def _kabsch(x, y):
    """float64 rigid least-squares fit of the points x onto y (rotation + translation), applied to x."""
    mx, my = x.mean(0), y.mean(0)
    u, _, vt = np.linalg.svd((y - my).T @ (x - mx))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return (x - mx) @ (u @ d @ vt).T + my


def _np_pred(p, body, batch, num_samples):
    """The oracle's prediction recomputed in numpy float64 (GT body posed once, in float32, outside jit)."""
    out = pose_body(body, batch["pose"], batch["betas"], batch["transl"])
    v, j = np.asarray(out.vertices, np.float64), np.asarray(out.joints, np.float64)
    j = np.where(batch["has_pose"][:, None, None] > 0, j, batch["joints3d"].astype(np.float64))
    place = np.where(batch["has_transl"][:, None, None] > 0, 0.0, PLACEMENT.astype(np.float64))
    v, j = v + place, j + place
    delta = np.asarray(p["sample_delta"], np.float64)
    shift = np.asarray(p["offset"], np.float64) + np.arange(num_samples)[:, None] * delta
    pv = v[:, None] + shift[None, :, None]
    pj = j[:, None] + shift[None, :, None] * (np.arange(j.shape[1]) != 0)[None, None, :, None]
    return pv, pj


def reference(p, batches, body, num_samples, pck_threshold=0.05, preds=None):
    """Per-metric lists of per-example float64 values over valid examples that have the labels; then means."""
    reg = np.asarray(body.extra_regressors["coco17"], np.float64)
    vals = {}

    def put(name, x):
        vals.setdefault(name, []).append(float(x))

    for bi, batch in enumerate(batches):
        pv, pj = _np_pred(p, body, batch, num_samples) if preds is None else preds[bi]
        gt = pose_body(body, batch["pose"], batch["betas"], batch["transl"])
        gv, gjm = np.asarray(gt.vertices, np.float64), np.asarray(gt.joints, np.float64)
        for i in range(len(batch["valid"])):
            if batch["valid"][i] == 0:
                continue
            mesh = batch["has_pose"][i] > 0 and batch["has_betas"][i] > 0
            gj = gjm[i] if mesh else batch["joints3d"][i].astype(np.float64)
            if mesh or batch["has_joints3d"][i] > 0:
                mp = [np.mean(np.linalg.norm((pj[i, s] - pj[i, s, 0]) - (gj - gj[0]), axis=-1)) * 1e3
                      for s in range(num_samples)]
                pa = [np.mean(np.linalg.norm(_umeyama(pj[i, s], gj) - gj, axis=-1)) * 1e3 for s in range(num_samples)]
                put("mpjpe", mp[0]), put("pa_mpjpe", pa[0])
                if num_samples > 1:
                    put("mpjpe_best", min(mp)), put("pa_mpjpe_best", min(pa))
            if mesh:
                pve = [np.mean(np.linalg.norm((pv[i, s] - pj[i, s, 0]) - (gv[i] - gj[0]), axis=-1)) * 1e3
                       for s in range(num_samples)]
                put("pve", pve[0])
                put("pa_pve", np.mean(np.linalg.norm(_umeyama(pv[i, 0], gv[i]) - gv[i], axis=-1)) * 1e3)
                if num_samples > 1:
                    put("pve_best", min(pve))
            # 2D
            kp3 = np.einsum("kv,svc->skc", reg, pv[i])
            f, c = batch["focal_length"][i].astype(np.float64), batch["princpt"][i].astype(np.float64)
            uv = kp3[..., :2] / kp3[..., 2:3] * f + c                                     # [S, 17, 2]
            gt2 = batch["keypoints2d_full"][i].astype(np.float64)
            vis = (gt2[:, 2] > 0) & (batch["has_keypoints2d"][i] > 0)
            if vis.any():
                d = np.linalg.norm(uv - gt2[:, :2], axis=-1)[:, vis]                      # [S, n_vis]
                put("kp2d_err_px", d[0].mean()), put("kp2d_err_px_samples", d.mean(1).mean())
                put("pck", np.mean(d[0] <= pck_threshold * float(batch["bbox_scale"][i])))
            if num_samples > 1:
                root = pj[i, :, 0]
                al = kp3 - root[:, None]
                spread = np.mean(np.linalg.norm(al - al.mean(0), axis=-1), axis=0) * 1e3    # [17]
                if batch["has_keypoints2d"][i] > 0:
                    if vis.any():
                        put("spread_visible_mm", spread[vis].mean())
                    if (~vis).any():
                        put("spread_invisible_mm", spread[~vis].mean())
                    # aligned: each hypothesis rigidly fitted (Kabsch, float64) onto hypothesis 0 first
                    fit = [_kabsch(kp3[k], kp3[0]) for k in range(num_samples)]
                    sp = np.mean(np.linalg.norm(fit - np.mean(fit, 0), axis=-1), axis=0) * 1e3
                    if vis.any():
                        put("spread_visible_aligned_mm", sp[vis].mean())
                    if (~vis).any():
                        put("spread_invisible_aligned_mm", sp[~vis].mean())
                mask = batch["mask"][i] > 0
                if batch["has_mask"][i] > 0 and mask.any():
                    dist = ndimage.distance_transform_edt(~mask)
                    m = batch["crop_transform"][i].astype(np.float64)
                    crop = uv @ m[:, :2].T + m[:, 2]
                    k = mask.shape[0] / batch["img"].shape[1]
                    dense = crop * k + 0.5 * k - 0.5
                    xi = np.clip(np.round(dense[..., 0]).astype(int), 0, mask.shape[1] - 1)
                    yi = np.clip(np.round(dense[..., 1]).astype(int), 0, mask.shape[0] - 1)
                    dd = dist[yi, xi].ravel()
                    put("mask_perc_in", np.mean(dd <= 0))
                    if (dd > 0).any():
                        put("mask_min_dist_px", dd[dd > 0].mean())
                    else:
                        put("mask_min_dist_px", 0.0)
            # dense maps
            if batch["has_part_seg"][i] > 0 and "seg_swap" in p:
                g = batch["part_seg"][i]
                q = np.where(g == 1, 2, g) if float(p["seg_swap"]) > 0 else g
                ious = [np.sum((q == c) & (g == c)) / np.sum((q == c) | (g == c)) for c in range(1, 25)
                        if np.sum((q == c) | (g == c)) > 0]
                put("part_seg_iou", np.mean(ious))
            fg = batch["depth"][i] > 0
            if batch["has_depth"][i] > 0 and fg.any() and "depth_offset" in p:
                g = batch["depth"][i][fg].astype(np.float64)
                d = g + float(p["depth_offset"]) + float(p["depth_square"]) * g ** 2
                put("depth_mae_mm", np.mean(np.abs(d - g)) * 1e3)
                a_, b_ = np.polyfit(d, g, 1)                        # least-squares scale and shift
                put("depth_mae_aligned_mm", np.mean(np.abs(a_ * d + b_ - g)) * 1e3)
    return {k: float(np.mean(v)) for k, v in vals.items()}, {k: len(v) for k, v in vals.items()}


def _check(result, ref, counts, rtol=1e-4, atol=5e-3):
    names = {k for k in result if k not in ("counts", "count", "baseline")}
    assert names == set(ref), (sorted(names), sorted(ref))
    for k in ref:
        assert result["counts"][k] == counts[k], k
        np.testing.assert_allclose(result[k], ref[k], rtol=rtol, atol=atol, err_msg=k)


# ------------------------------------------------------------------------------------------ tests
def test_batches_have_padding_and_missing_labels(data):
    b = data["batches"]
    assert len(b) == 2 and b[1]["valid"].tolist() == [1, 1, 0, 0]
    assert b[0]["has_pose"].tolist() == [1, 0, 1, 1] and b[0]["has_keypoints2d"].tolist() == [1, 1, 0, 1]


ZERO = perturb()


def test_oracle_is_zero(data):
    method = OracleMethod(data["config"])
    res = ev.evaluate(method, {"params": ZERO}, data["batches"], body=data["body"], root=ROOT, num_samples=1)
    assert res["count"] == N_RECORDS
    for k in ("mpjpe", "pa_mpjpe", "pve", "pa_pve", "depth_mae_mm", "depth_mae_aligned_mm"):
        assert res[k] < 0.05, (k, res[k])   # float32 rounding of metre coordinates (PA: SVD)
    assert res["pck"] < 1.0 and res["part_seg_iou"] == 1.0  # record 1 has no pose: the oracle's mesh is the rest pose
    assert res["counts"]["pve"] == N_RECORDS - 1 and res["counts"]["mpjpe"] == N_RECORDS
    assert res["counts"]["kp2d_err_px"] == N_RECORDS - 1 and res["counts"]["depth_mae_mm"] == N_RECORDS - 1
    posed = [dict(b) for b in data["batches"]]
    posed[0]["valid"] = posed[0]["valid"] * posed[0]["has_pose"]
    res = ev.evaluate(method, {"params": ZERO}, posed, body=data["body"], root=ROOT)
    assert res["count"] == N_RECORDS - 1 and res["counts"]["kp2d_err_px"] == N_RECORDS - 2
    assert res["kp2d_err_px"] < 0.01 and res["pck"] == 1.0


def test_perturbed_matches_numpy_reference(data):
    p = perturb(offset=(0.02, -0.01, 0.03), sample_delta=(0.015, 0.01, -0.02), depth_offset=0.012,
                depth_square=0.01, seg_swap=True)
    method = OracleMethod(data["config"])
    res = ev.evaluate(method, {"params": p}, data["batches"], body=data["body"], root=ROOT,
                      num_samples=3, pck_threshold=0.05, rng=jax.random.PRNGKey(1))
    ref, counts = reference(p, data["batches"], data["body"], 3)
    _check(res, ref, counts)
    # closed forms: a constant shift of all vertices / non-root joints
    norm = np.linalg.norm(np.asarray(p["offset"], np.float64)) * 1e3
    np.testing.assert_allclose(res["pve"], norm, rtol=1e-4)
    np.testing.assert_allclose(res["mpjpe"], norm * 23 / 24, rtol=1e-4)
    assert res["depth_mae_mm"] > 12.0 and 0 < res["depth_mae_aligned_mm"] < 5
    assert res["mpjpe_best"] < res["mpjpe"] and 0 < res["part_seg_iou"] < 1


def test_max_examples_and_chordal_mean(data):
    method = OracleMethod(data["config"])
    res = ev.evaluate(method, {"params": perturb(offset=(0.01, 0.0, 0.0))}, data["batches"], body=data["body"],
                      max_examples=3)
    assert res["count"] == 3 and res["counts"]["pve"] == 2
    np.testing.assert_allclose(res["pve"], 10.0, rtol=1e-4)
    rots = Rotation.random(50, random_state=0)
    np.testing.assert_allclose(ev.chordal_mean_rotation(rots.as_matrix()), rots.mean().as_matrix(), atol=1e-9)


def test_mean_baseline_against_numpy(data):
    recs = [pipeline.load_record(data["records"], i, data["config"].data) for i in range(N_RECORDS)]
    pose, betas, n = ev.mean_pose_and_shape(recs)
    assert n == N_RECORDS - 1
    used = [r for r in recs if r["has_pose"]]
    np.testing.assert_allclose(pose[3], Rotation.from_rotvec([r["pose"][3] for r in used]).mean().as_matrix(),
                               atol=1e-6)
    np.testing.assert_allclose(betas, np.mean([r["betas"] for r in used], 0), atol=1e-6)
    body = data["body"]
    base = ev.MeanBaseline(body, pose, betas)
    method = OracleMethod(data["config"])
    res = ev.evaluate(method, {"params": ZERO}, data["batches"], body=body, baseline=base)
    preds = []
    for b in data["batches"]:
        out = pose_body(body, np.broadcast_to(pose, (4,) + pose.shape), np.broadcast_to(betas, (4, 10)), b["transl"])
        preds.append((np.asarray(out.vertices, np.float64)[:, None], np.asarray(out.joints, np.float64)[:, None]))
    ref, counts = reference({}, data["batches"], body, 1, preds=preds)   # the baseline predicts no dense maps
    # the baseline predicts a pose: geodesic global-orientation and local-rotation errors vs scipy (float64)
    mean_rot = Rotation.from_matrix(np.asarray(pose, np.float64))
    root_err, local_err = [], []
    for b in data["batches"]:
        for i in range(len(b["valid"])):
            if b["valid"][i] and b["has_pose"][i]:
                ang = np.degrees((Rotation.from_rotvec(np.asarray(b["pose"][i], np.float64)).inv() * mean_rot).magnitude())
                root_err.append(ang[0]), local_err.append(ang[1:].mean())
    ref.update(root_orient_err_deg=np.mean(root_err), local_rot_err_deg=np.mean(local_err))
    counts.update(root_orient_err_deg=len(root_err), local_rot_err_deg=len(local_err))
    _check(res["baseline"], ref, counts)
    assert res["baseline"]["mpjpe"] > 20 and res["mpjpe"] < 0.05


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A 2-step training run of the oracle (EMA kept, periodic eval) whose config names a tiny tfds build of
    synthetic_humans (4 train / 5 test records at 64x64) for the default data path of evaluate_workdir."""
    from data_pipelines.synthetic import builder
    from hmrjax.train import trainer
    root = tmp_path_factory.mktemp("synth")
    mini = builder.SynthConfig("eval_test", (64, 64), (("train", 4), ("test", 5)), examples_per_shard=8, seed=1)
    builder.build(mini, root, num_workers=0, progress=False)
    workdir = tmp_path_factory.mktemp("run")
    cfg = make_config()
    cfg.data.name, cfg.data.data_dir, cfg.data.eval_split = "synthetic_humans/eval_test", str(root), "test"
    cfg.total_steps, cfg.log_every = 2, 1
    cfg.optim.name, cfg.optim.lr, cfg.optim.ema_decay = "adam", 0.01, 0.5
    cfg.checkpoint.every_steps, cfg.checkpoint["async"] = 1, False
    dataset = grain.MapDataset.source(data["batches"]).repeat(None)   # training reads the in-memory batches
    state = trainer.train_and_evaluate(cfg, workdir, dataset=dataset,
                                       evaluate_fn=ev.make_evaluate_fn(cfg, batches=data["batches"]))
    return workdir, state


def test_restore_workdir_metrics_and_grid(data, run):
    tmp_path, state = run
    ema, params = np.asarray(state.ema_params["offset"]), np.asarray(state.params["offset"])
    assert not np.allclose(ema, params) and np.all(np.abs(ema) > 1e-3)

    pose, betas, _ = ev.mean_pose_and_shape(data["batches"])
    res = ev.evaluate_workdir(tmp_path, "test", batches=data["batches"], baseline=(pose, betas), num_grid=3)
    norm = np.linalg.norm(ema.astype(np.float64)) * 1e3            # EMA params are the ones evaluated
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in logged if "eval/pve" in r]
    assert [r["step"] for r in logged] == [2] and logged[0]["eval/count"] == N_RECORDS
    np.testing.assert_allclose(logged[0]["eval/pve"], norm, rtol=1e-4)
    np.testing.assert_allclose(res["pve"], norm, rtol=1e-4)
    np.testing.assert_allclose(res["mpjpe"], norm * 23 / 24, rtol=1e-4)
    saved = json.loads((tmp_path / "eval" / "test" / "metrics.json").read_text())
    assert saved["step"] == 2 and saved["split"] == "test" and saved["count"] == N_RECORDS
    assert saved["mpjpe"] == pytest.approx(res["mpjpe"]) and "mpjpe" in saved["baseline"]
    grid = np.asarray(Image.open(tmp_path / "eval" / "test" / "predictions.png"))
    cell = 32 + 2   # crop + pad; 7 columns (input, pred, GT, 2 depth, 2 parts), 3 rows
    assert grid.shape == (2 + 3 * cell, 2 + 7 * cell, 3)
    res_raw = ev.evaluate_workdir(tmp_path, "test", batches=data["batches"], baseline=None, use_ema=False,
                                  out=tmp_path / "raw", num_grid=0)
    np.testing.assert_allclose(res_raw["pve"], np.linalg.norm(params.astype(np.float64)) * 1e3, rtol=1e-4)
    assert "baseline" not in res_raw and not (tmp_path / "raw" / "predictions.png").exists()


def test_workdir_default_data_and_train_baseline(run):
    """evaluate_workdir's own data path: build_eval_dataset over the run's tfds split, mean pose/shape from
    its train split (JPEG-decoded records through the real pipeline)."""
    workdir, state = run
    res = ev.evaluate_workdir(workdir, "test", out=workdir / "tfds_eval", num_grid=2, max_examples=4)
    norm = np.linalg.norm(np.asarray(state.ema_params["offset"], np.float64)) * 1e3
    assert res["count"] == 4 and res["baseline"]["poses"] == 4 and res["baseline"]["source"] == "train split"
    np.testing.assert_allclose(res["pve"], norm, rtol=1e-4)
    assert res["baseline"]["pa_mpjpe"] > 10 * res["pa_mpjpe"]
    assert (workdir / "tfds_eval" / "predictions.png").exists()


def test_part_label_map_merges_hands_into_wrists():
    from hmrjax.body import layouts
    table = ev.part_label_map(23, "smpl24")
    smpl, smplx = layouts.SMPL24.joint_names, layouts.SMPLX22.joint_names
    assert table[0] == 0 and len(table) == 25
    for i, name in enumerate(smpl):
        expected = {"left_hand": "left_wrist", "right_hand": "right_wrist"}.get(name, name)
        assert smplx[table[i + 1] - 1] == expected, name
    assert ev.part_label_map(25, "smpl24") is None


def test_crop_camera_matches_crop_labels(data):
    b = data["batches"][0]
    ex = {k: v[0] for k, v in b.items()}
    cam = ev.crop_camera(ex)
    body = data["body"]
    out = body(pose=jnp.asarray(b["pose"][:1]), betas=jnp.asarray(b["betas"][:1]), transl=jnp.asarray(b["transl"][:1]))
    kp = np.asarray(out.joints_extra["coco17"][0], np.float64)
    uv = cam.project(kp)
    expected = (ex["keypoints2d"][:, :2].astype(np.float64) + 1.0) * 16.0 - 0.5   # crop-normalised -> crop px
    inside = ex["keypoints2d"][:, 2] > 0
    np.testing.assert_allclose(uv[inside], expected[inside], atol=0.02)


def test_cli_eval_on_another_dataset(run, tmp_path):
    """`hmrjax eval --data NAME --data-dir D` evaluates the run on another build than its config names (the
    mean-pose baseline then comes from that build's train split too)."""
    from data_pipelines.synthetic import builder
    from hmrjax import cli
    workdir, _ = run
    other = builder.SynthConfig("eval_other", (64, 64), (("train", 3), ("test", 2)), examples_per_shard=8, seed=5)
    builder.build(other, tmp_path, num_workers=0, progress=False)
    assert cli.main(["eval", "--workdir", str(workdir), "--split", "test", "--data", "synthetic_humans/eval_other",
                     "--data-dir", str(tmp_path)]) == 0
    saved = json.loads((workdir / "eval" / "test" / "metrics.json").read_text())
    assert saved["count"] == 2 and saved["baseline"]["poses"] == 3
    assert json.loads((workdir / "config.json").read_text())["data"]["name"] == "synthetic_humans/eval_test"


def test_flip_test_is_refused_for_a_method_without_one(run, capsys):
    """`hmrjax eval --flip-test` on a run whose method has no test-time flip fails naming the method and the
    run, and writes nothing."""
    from hmrjax import cli
    workdir, _ = run
    with pytest.raises(ValueError, match="method 'test_oracle' .* has no test-time flip"):
        ev.evaluate_workdir(workdir, "test", flip_test=True)
    assert cli.main(["eval", "--workdir", str(workdir), "--split", "test", "--flip-test"]) == 2
    err = capsys.readouterr().err
    assert "has no test-time flip" in err and str(workdir) in err
    assert not (workdir / "eval" / "test_flip").exists()
