"""Probabilistic HMR method (hmrjax.methods.prob_hmr): config and ablation switches, helpers against numpy,
init / loss / gradients / predict on a shrunken tiny config with a hand-built, geometrically consistent batch
(fake heatmap samples = ground-truth 2D keypoints + Gaussian noise), and one trainer step."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from configs import prob_hmr as prob_config
from data_pipelines import pipeline
from hmrjax.geometry import rotations
from hmrjax.methods import create, split_variables
from hmrjax.methods import prob_hmr
from hmrjax.nn.flows import ConditionalRealNVP
from hmrjax.train import optim
from hmrjax.train.trainer import TrainState, make_train_step

B = 2
N_TRAIN = 6          # hypotheses per training image in the small config (mode + 5)
N_HM = 8             # stored heatmap samples per joint in the small batch


def _small_config(arg="tiny"):
    c = prob_config.get_config(arg)
    c.data.image_size, c.data.dense_size, c.data.num_heatmap_samples = 64, 16, N_HM
    m = c.model
    m.kp_hidden, m.kp_embed_dim, m.head_hidden = 16, 8, 32
    m.flow.num_blocks, m.flow.hidden = 2, 32
    c.loss.num_train_samples, c.loss.num_mmd_targets = N_TRAIN, 5
    return c


def _project_np(points, f, c):
    return f * points[..., :2] / points[..., 2:3] + c


def _batch(method, cfg, seed=0):
    """A pipeline-format batch whose labels agree: GT joints / keypoints from the body model, projected."""
    rng = np.random.default_rng(seed)
    ex = pipeline.blank_example(cfg.data)
    batch = {k: np.stack([np.asarray(v)] * B) for k, v in ex.items()}
    s, d = cfg.data.image_size, cfg.data.dense_size
    batch["img"] = rng.standard_normal((B, s, s, 3)).astype(np.float32)
    root = np.asarray(rotations.matrix_to_axis_angle(jnp.asarray(np.diag([1.0, -1.0, -1.0]), jnp.float32)))
    pose = (0.2 * rng.standard_normal((B, 24, 3))).astype(np.float32)
    pose[:, 0] = root
    batch["pose"] = pose
    batch["betas"] = (0.5 * rng.standard_normal((B, 10))).astype(np.float32)
    transl = np.asarray([[0.05, 0.1, 4.0], [-0.1, 0.0, 5.0]], np.float32)
    batch["transl"] = transl
    out = method.body(pose=jnp.asarray(pose), betas=jnp.asarray(batch["betas"]))
    batch["joints3d"] = (np.asarray(out.joints) + transl[:, None]).astype(np.float32)
    f, w, h = 500.0, 320.0, 240.0
    batch["focal_length"][:] = f
    batch["image_size"][:] = (w, h)
    batch["princpt"][:] = (w / 2, h / 2)
    kp_full = _project_np(np.asarray(out.joints_extra["coco17"], np.float64) + transl[:, None], f,
                          np.asarray([w / 2, h / 2]))
    center = kp_full.mean(1)
    side = 1.3 * np.ptp(kp_full, axis=1).max(-1)
    batch["bbox_center"] = center.astype(np.float32)
    batch["bbox_scale"] = side.astype(np.float32)
    batch["cliff_bbox"] = np.stack([(center[:, 0] - w / 2) / f, (center[:, 1] - h / 2) / f, side / f], -1).astype(
        np.float32)
    # full px -> crop px of side s: u_c = (u - (c - side / 2)) * s / side - 0.5 (pipeline: pixel centres)
    k = s / side
    m = np.zeros((B, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = k
    m[:, :, 2] = -(center - side[:, None] / 2) * k[:, None] - 0.5
    batch["crop_transform"] = m.astype(np.float32)
    vis = (rng.random((B, 17)) > 0.3).astype(np.float32)
    norm = (kp_full - (center[:, None] - side[:, None, None] / 2)) * (2.0 / side[:, None, None]) - 1.0
    batch["keypoints2d_full"] = np.concatenate([kp_full, vis[..., None]], -1).astype(np.float32)
    batch["keypoints2d"] = np.concatenate([norm, vis[..., None]], -1).astype(np.float32)
    batch["heatmap_samples"] = (norm[:, :, None] + 0.05 * rng.standard_normal((B, 17, N_HM, 2))).astype(np.float32)
    batch["heatmap_conf"] = np.where(vis > 0, 0.9, 0.4).astype(np.float32)
    batch["heatmap_pose"] = np.concatenate([batch["heatmap_samples"][:, :, 0], batch["heatmap_conf"][..., None]],
                                           -1).astype(np.float32)   # the detector's argmax (crop-normalised)
    batch["mask"] = np.zeros((B, d, d), np.float32)
    batch["mask"][:, 3:13, 5:11] = 1.0
    for key in batch:
        if key.startswith("has_") or key == "valid":
            batch[key][:] = 1.0
    return batch


@pytest.fixture(scope="module")
def tiny():
    cfg = _small_config()
    cfg.optim.weight_decay = 0.0   # so that a parameter moves in the first step iff its gradient is non-zero
    method = create(cfg)
    batch = _batch(method, cfg)
    variables = method.init(jax.random.key(0), batch)  # eager: later eager forward passes reuse its kernels
    return cfg, method, batch, variables


@pytest.fixture(scope="module")
def stepped(tiny):
    """One step of the trainer's jitted train step (the only compile of the loss and its gradient)."""
    cfg, method, batch, variables = tiny
    tx = optim.make_optimizer(cfg.optim, cfg.total_steps)
    params, state = split_variables(variables)
    ts = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), state=state,
                    rng=jax.random.key_data(jax.random.key(3)), ema_params=None,
                    nonfinite_count=jnp.zeros((), jnp.int32))
    new, metrics = jax.jit(make_train_step(method, tx, cfg))(ts, batch)
    return params, new, metrics


# ---------------------------------------------------------------------------------------------- config
def test_paper_config_values():
    c = prob_config.get_config("paper")
    assert (c.model.backbone, c.data.image_size, c.batch_size, c.optim.name, c.optim.lr) == (
        "hrnet_w48", 224, 64, "adamw", 1e-4)
    lw = c.loss
    assert (lw.lambda_beta, lw.lambda_2d, lw.lambda_nll, lw.lambda_orth, lw.lambda_mmd, lw.lambda_mask) == (
        5e-4, 1e-2, 1e-1, 1e-1, 5e-2, 1e-1)
    f = c.model.flow
    assert (f.num_blocks, f.hidden, f.num_layers, f.clamp, f.clamp_form, f.volume_preserving) == (
        8, 1024, 3, 2.0, "atan", False)
    assert c.model.freeze_backbone and c.optim.frozen == (r"^backbone/",)
    assert not c.loss.mmd_include_diagonal and c.loss.num_train_samples == 26
    assert c.model.kp_embed_dim == 256 and c.eval.num_samples == 100
    with pytest.raises(ValueError, match="unknown variant"):
        prob_config.get_config("huge")


@pytest.mark.parametrize("arg,dim", [("paper", 979), ("paper,bbox=False", 976), ("paper,kp2d=False", 723),
                                     ("paper,kp2d=False,bbox=False", 720), ("tiny", 120 + 64 + 3)])
def test_condition_dim_per_ablation(arg, dim):
    c = prob_config.get_config(arg)
    c.model.body = "anny_lite"  # the condition does not depend on the body; the lite asset loads faster
    assert prob_hmr.ProbHMR(c).cond_dim == dim


def test_ablation_flags_set_fields():
    assert prob_config.get_config("tiny,nice").model.flow.volume_preserving
    assert not prob_config.get_config("tiny,mmd=False").loss.use_mmd
    assert not prob_config.get_config("tiny,mask=False").loss.use_mask
    assert prob_config.get_config("tiny,heatmaps=0").data.num_heatmap_samples == 0


# --------------------------------------------------------------------------------------------- helpers
def test_flow_joint_count():
    assert prob_hmr.flow_joint_count(24) == 24
    assert prob_hmr.flow_joint_count(55) == prob_hmr.flow_joint_count(52) == 22
    assert prob_hmr.flow_joint_count(24, 23) == 23
    with pytest.raises(ValueError, match="flow_joints"):
        prob_hmr.flow_joint_count(30)


def test_initial_pose6d_is_identity_with_flipped_root():
    x0 = prob_hmr.initial_pose6d(24).reshape(24, 6)
    rot = np.asarray(rotations.rot6d_to_matrix(jnp.asarray(x0)))
    expected = np.tile(np.eye(3), (24, 1, 1))
    expected[0] = np.diag([1.0, -1.0, -1.0])
    np.testing.assert_allclose(rot, expected, atol=1e-7)


def test_crop_normalise_matches_affine_formula():
    rng = np.random.default_rng(3)
    m = rng.standard_normal((2, 2, 3))
    p = rng.random((2, 4, 5, 2)) * 300
    ref = (np.einsum("bij,bklj->bkli", m[:, :, :2], p) + m[:, None, None, :, 2] + 0.5) * (2.0 / 64) - 1.0
    np.testing.assert_allclose(np.asarray(prob_hmr.crop_normalise(p, m, 64)), ref, rtol=1e-5, atol=1e-5)


def test_detector_keypoints_sources():
    rng = np.random.default_rng(4)
    hm = rng.standard_normal((2, 17, 6, 2)).astype(np.float32)
    conf = rng.random((2, 17)).astype(np.float32)
    batch = {"heatmap_samples": hm, "heatmap_conf": conf, "has_heatmap_samples": np.asarray([1.0, 0.0]),
             "keypoints2d": rng.standard_normal((2, 17, 3)).astype(np.float32)}
    kp = np.asarray(prob_hmr.detector_keypoints(batch, "detector", "heatmap_pose"))  # field absent: fallback
    np.testing.assert_allclose(kp[0, :, :2], hm[0].astype(np.float64).mean(1), atol=1e-6)
    np.testing.assert_allclose(kp[0, :, 2], conf[0])
    assert not kp[1].any()                                   # no heatmap data for example 1
    field = rng.standard_normal((2, 17, 3)).astype(np.float32)
    kp = np.asarray(prob_hmr.detector_keypoints({**batch, "heatmap_pose": field}, "detector", "heatmap_pose"))
    np.testing.assert_allclose(kp[0], field[0])
    np.testing.assert_allclose(np.asarray(prob_hmr.detector_keypoints(batch, "gt")), batch["keypoints2d"])
    with pytest.raises(ValueError, match="heatmap_samples"):
        prob_hmr.detector_keypoints({"keypoints2d": batch["keypoints2d"]}, "detector", "")
    with pytest.raises(ValueError, match=r"\[B, 17, 3\]"):
        prob_hmr.detector_keypoints({**batch, "heatmap_pose": field[:, :, :2]}, "detector", "heatmap_pose")


# ------------------------------------------------------------------------------------------ the method
def test_predict_shapes_mode_and_log_prob(tiny):
    cfg, method, batch, variables = tiny
    predict = method.predict  # eager (reuses the init's kernels; cheaper than compiling once more)
    pred = predict(variables, batch, jax.random.key(5), 7).check()
    other = predict(variables, batch, jax.random.key(6), 7)
    nv = method.body.faces.max() + 1
    assert pred.vertices.shape == (B, 7, nv, 3) and pred.joints.shape == (B, 7, 24, 3)
    assert pred.pose.shape == (B, 7, 24, 3, 3) and pred.betas.shape == (B, 7, 10) and pred.cam.shape == (B, 7, 3)
    assert pred.log_prob.shape == (B, 7)
    # index 0 is the mode (z = 0): the same for every rng; the others differ
    np.testing.assert_allclose(np.asarray(pred.vertices[:, 0]), np.asarray(other.vertices[:, 0]), atol=1e-6)
    assert float(jnp.abs(pred.vertices[:, 1:] - other.vertices[:, 1:]).max()) > 1e-3
    # the zero-initialised flow is a permutation: x = x0 + P z, log p = log N(z; 0, I) (scipy reference)
    z = jax.random.normal(jax.random.key(5), (B, 7, method.flow_dim)).at[:, 0].set(0.0)
    ref = stats.norm.logpdf(np.asarray(z, np.float64)).sum(-1)
    np.testing.assert_allclose(np.asarray(pred.log_prob), ref, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(pred.pose[:, 0]),
                               np.asarray(rotations.rot6d_to_matrix(
                                   jnp.asarray(prob_hmr.initial_pose6d(24).reshape(24, 6))))[None].repeat(B, 0),
                               atol=1e-6)


def _perturbed(variables, seed=7, scale=0.05):
    """Variables with every flow parameter perturbed (so the flow is no longer a permutation)."""
    leaves, tree = jax.tree.flatten(variables["params"]["flow"])
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    params = dict(variables["params"])
    params["flow"] = jax.tree.unflatten(tree, leaves)
    return {**variables, "params": params}


def test_sample_log_prob_matches_flow_density(tiny):
    cfg, method, batch, variables = tiny
    variables = _perturbed(variables)
    kp = method.keypoint_condition(batch)
    z = jax.random.normal(jax.random.key(8), (B, 4, method.flow_dim)).at[:, 0].set(0.0)
    out = method.model.apply(variables, batch["img"], batch["cliff_bbox"], kp, z)
    # independent path: the flow alone, normalizing direction, on x - x0 with the same condition
    flow = ConditionalRealNVP(method.flow_dim, num_blocks=2, hidden=32, clamp=2.0, clamp_form="atan")
    fv = {"params": variables["params"]["flow"]}
    x = out["pose6d"] - prob_hmr.initial_pose6d(24)
    lp = flow.apply(fv, x, out["cond"][:, None], method=ConditionalRealNVP.log_prob)
    np.testing.assert_allclose(np.asarray(out["log_prob"]), np.asarray(lp), rtol=1e-4, atol=1e-3)
    zz, _ = flow.apply(fv, x, out["cond"][:, None], method=ConditionalRealNVP.inverse)
    np.testing.assert_allclose(np.asarray(zz), np.asarray(z), atol=1e-4)
    # the mode is the z = 0 sample
    xm, _ = flow.apply(fv, out["cond"], method=ConditionalRealNVP.mode)
    np.testing.assert_allclose(np.asarray(out["pose6d"][:, 0]), np.asarray(xm) + prob_hmr.initial_pose6d(24),
                               atol=1e-5)


def test_hypotheses_project_like_numpy(tiny):
    cfg, method, batch, variables = tiny
    out = method.model.apply(variables, batch["img"], batch["cliff_bbox"], method.keypoint_condition(batch),
                             jnp.zeros((B, 1, method.flow_dim)))
    hyp = method.hypotheses(out, batch)
    kp3d = np.einsum("kv,bvc->bkc", np.asarray(method.body.extra_regressors["coco17"], np.float64),
                     np.asarray(hyp["vertices"][:, 0], np.float64))
    px = _project_np(kp3d, 500.0, np.asarray([160.0, 120.0]))
    m = batch["crop_transform"].astype(np.float64)
    ref = (np.einsum("bij,bkj->bki", m[:, :, :2], px) + m[:, None, :, 2] + 0.5) * (2.0 / 64) - 1.0
    np.testing.assert_allclose(np.asarray(hyp["kp2d"][:, 0]), ref, atol=2e-4)
    assert float(hyp["joints"][:, 0, 0, 2].min()) > 0  # in front of the camera


def test_loss_terms_finite_and_weighted(tiny, stepped):
    cfg, method, batch, variables = tiny
    _, _, metrics = stepped
    # tiny adds the authors' code-only camera-scale penalty (cam_penalty 1.0); paper keeps it off
    terms = {"nll", "betas", "kp2d", "orth_mode", "orth_samples", "mmd", "mask", "cam_penalty"}
    assert terms <= set(metrics) and float(cfg.loss.cam_penalty) == 1.0
    assert float(prob_config.get_config("paper").loss.cam_penalty) == 0.0
    assert all(np.isfinite(float(metrics[k])) for k in metrics)
    w = method.weights()
    assert float(metrics["loss"]) == pytest.approx(sum(float(w[k]) * float(metrics[k]) for k in terms), rel=1e-5)
    # identity-initialised flow: NLL per dimension of x_gt - x0 under N(0, I) (scipy), up to the GT noise
    x = np.asarray(method.gt_pose6d(batch), np.float64) - prob_hmr.initial_pose6d(24)
    nll_ref = -stats.norm.logpdf(x).sum(-1).mean() / method.flow_dim
    assert float(metrics["nll"]) == pytest.approx(nll_ref, abs=5e-3)
    assert float(metrics["orth_mode"]) == pytest.approx(0.0, abs=1e-10)   # x0 is orthonormal
    assert float(metrics["orth_samples"]) > 0 and float(metrics["mmd"]) > 0
    # betas term: sum over betas, mean over the batch (the head starts at ~0)
    assert float(metrics["betas"]) == pytest.approx(float((batch["betas"] ** 2).sum(-1).mean()), rel=1e-2)


def test_one_trainer_step_moves_every_part(stepped):
    params, new, metrics = stepped
    assert bool(metrics["loss_finite"]) and bool(metrics["grads_finite"]) and int(new.step) == 1
    assert float(metrics["grad_norm"]) > 0
    # Adam's first update is -lr * g / (|g| + eps): a part moves iff its gradient is non-zero (no weight decay)
    for part in ("flow", "kp_embed_0", "head_fc1", "dec_cam", "dec_shape", "backbone"):
        old, moved = jax.tree.leaves(params[part]), jax.tree.leaves(new.params[part])
        assert max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(moved, old)) > 0, part


def test_frozen_backbone_gets_no_gradient(tiny):
    cfg, method, batch, variables = tiny
    c = _small_config("tiny")
    c.model.freeze_backbone = True
    frozen = create(c)
    params, state = split_variables(variables)
    kp = frozen.keypoint_condition(batch)

    def objective(p):  # the conditioning network only: every loss term reaches the backbone through it
        out = frozen.model.apply({"params": p, **state}, batch["img"], batch["cliff_bbox"], kp,
                                 method=frozen.model.encode)
        return jnp.sum(out["cond"] ** 2) + jnp.sum(out["cam"]) + jnp.sum(out["betas"])

    grads = jax.grad(objective)(params)
    assert float(optax.global_norm(grads["backbone"])) == 0.0
    assert float(optax.global_norm(grads["kp_embed_0"])) > 0 and float(optax.global_norm(grads["head_fc1"])) > 0


@pytest.mark.parametrize("arg,absent,present", [("tiny,mmd=False", "mmd", "mask"),
                                                 ("tiny,mask=False", "mask", "mmd")])
def test_loss_switches_remove_terms(tiny, arg, absent, present):
    _, _, batch, variables = tiny
    method = create(_small_config(arg))
    params, state = split_variables(variables)
    _, (metrics, _) = jax.eval_shape(method.loss, params, state, batch, jax.random.key(1))
    assert absent not in metrics and present in metrics


@pytest.mark.parametrize("arg", ["tiny,bbox=False", "tiny,kp2d=False", "tiny,nice"])
def test_architecture_switches_change_parameters(tiny, arg):
    cfg, base, batch, _ = tiny
    method = create(_small_config(arg))
    shapes = jax.eval_shape(method.init, jax.random.key(0), batch)["params"]
    first = shapes["flow"]["block0_a"]["dense_0"]["kernel"].shape
    base_first = (base.flow_dim // 2 + base.cond_dim, 32)
    if arg.endswith("nice"):
        assert first == base_first
        assert shapes["flow"]["block0_a"]["dense_2"]["kernel"].shape == (32, base.flow_dim // 2)  # shift only
    else:
        assert first == (base.flow_dim // 2 + method.cond_dim, 32) and method.cond_dim < base.cond_dim
        assert ("kp_embed_0" in shapes) == (not arg.endswith("kp2d=False"))
