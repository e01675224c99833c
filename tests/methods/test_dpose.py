"""D-PoSE method: config, tables, init / loss / predict on a shrunken tiny config with a pipeline-format batch,
`paper` parameter count (eval_shape) and one `paper` training step at batch 2 (slow)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import dpose as dpose_config
from data_pipelines import pipeline
from hmrjax.body import layouts, parts
from hmrjax.geometry import camera, rotations
from hmrjax.methods import create, split_variables
from hmrjax.methods import dpose
from backbone_helpers import random_variables   # tests/nn (pyproject pythonpath)

PAPER_PARAMS_M = 81.2  # the paper's reported parameter count (millions)


def _small_config(arg="tiny"):
    c = dpose_config.get_config(arg)
    c.data.image_size, c.data.dense_size = 64, 16
    c.model.decoder_blocks = 1
    return c


def _batch(cfg, b=2, seed=0):
    """A batch in the pipeline's format (blank_example fields) with random but consistent labels."""
    rng = np.random.default_rng(seed)
    ex = pipeline.blank_example(cfg.data)
    batch = {k: np.stack([np.asarray(v)] * b) for k, v in ex.items()}
    s, d = cfg.data.image_size, cfg.data.dense_size
    batch["img"] = rng.standard_normal((b, s, s, 3)).astype(np.float32)
    batch["pose"] = (0.3 * rng.standard_normal((b, 24, 3))).astype(np.float32)
    batch["betas"] = rng.standard_normal((b, 10)).astype(np.float32)
    batch["focal_length"][:] = 500.0
    batch["image_size"][:] = (320.0, 240.0)
    batch["princpt"][:] = (160.0, 120.0)
    batch["bbox_center"][:] = (150.0, 130.0)
    batch["bbox_scale"][:] = 180.0
    batch["cliff_bbox"] = np.asarray(camera.cliff_bbox_features(batch["bbox_center"], batch["bbox_scale"],
                                                                batch["image_size"], batch["focal_length"][:, 0]))
    batch["joints3d"] = rng.standard_normal((b, 24, 3)).astype(np.float32) * 0.3 + [0, 0, 5]
    kp = np.concatenate([rng.random((b, 17, 2)) * (320, 240), (rng.random((b, 17, 1)) > 0.2)], -1)
    batch["keypoints2d_full"] = kp.astype(np.float32)
    batch["depth"] = np.zeros((b, d, d), np.float32)
    batch["depth"][:, 3:13, 5:11] = 4.0 + rng.random((b, 10, 6))
    batch["mask"] = (batch["depth"] > 0).astype(np.float32)
    batch["part_seg"] = np.where(batch["mask"] > 0, rng.integers(1, 25, (b, d, d)), 0).astype(np.int32)
    for k in batch:
        if k.startswith("has_") or k == "valid":
            batch[k][:] = 1.0
    return batch


@pytest.fixture(scope="module")
def tiny():
    cfg = _small_config()
    method = create(cfg)
    batch = _batch(cfg)
    variables = jax.jit(method.init)(jax.random.key(0), batch)
    return cfg, method, batch, variables


def test_config_variants():
    paper = dpose_config.get_config("paper")
    assert (paper.model.backbone, paper.data.image_size, paper.data.dense_size) == ("hrnet_w48", 224, 56)
    assert [paper.loss[f"lambda{i}"] for i in range(1, 9)] == [0.1, 0.02, 0.1, 10, 0.01, 50, 10, 50]
    assert (paper.optim.name, paper.optim.lr, paper.optim.weight_decay, paper.optim.clip_grad_norm,
            paper.batch_size, paper.total_steps) == ("adam", 1e-5, 0.0, 1.5, 64, 200_000)
    assert paper.model.use_depth and not dpose_config.get_config("tiny,depth=False").model.use_depth
    assert dpose_config.get_config().model.backbone == "hrnet_tiny"
    with pytest.raises(ValueError, match="unknown variant"):
        dpose_config.get_config("huge")


def test_part_tables():
    lab = dpose.part_label_table("smpl24")
    names24, names22 = layouts.SMPL24.joint_names, parts.PART_NAMES["smplx22"]
    assert lab[0] == 0 and len(lab) == 25 and lab.max() == 22
    for j, n in enumerate(names24):
        expect = {"left_hand": "left_wrist", "right_hand": "right_wrist"}.get(n, n)
        assert names22[lab[j + 1] - 1] == expect
    np.testing.assert_array_equal(dpose.joint_to_part_table(24), lab[1:] - 1)
    np.testing.assert_array_equal(dpose.joint_to_part_table(55), np.arange(22))
    with pytest.raises(ValueError, match="30 joints"):
        dpose.joint_to_part_table(30)


def test_init_loss_gradients(tiny):
    cfg, method, batch, variables = tiny
    params, state = split_variables(variables)
    assert {"backbone", "part_decoder", "depth_decoder", "pose_hidden", "pose_out", "shape_out", "cam_out"} <= set(
        params)
    assert params["pose_out"]["kernel"].shape == (24, 32, 6)
    (loss, (metrics, new_state)), grads = jax.jit(jax.value_and_grad(method.loss, has_aux=True))(
        params, state, batch, jax.random.key(1))
    assert np.isfinite(float(loss))
    terms = {"depth_l1", "depth_ssim", "part_seg_ce", "pose_mse", "betas_mse", "joints3d_mse", "vertices_l1",
             "keypoints2d_mse"}
    assert terms <= set(metrics)
    lam = {"depth_l1": 1, "depth_ssim": 2, "part_seg_ce": 3, "pose_mse": 4, "betas_mse": 5, "joints3d_mse": 6,
           "vertices_l1": 7, "keypoints2d_mse": 8}
    total = sum(cfg.loss[f"lambda{lam[k]}"] * float(metrics[k]) for k in terms)
    assert float(loss) == pytest.approx(total, rel=1e-5)
    assert all(float(metrics[k]) > 0 for k in terms)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(optax.global_norm(grads)) > 0
    assert jax.tree.structure(new_state) == jax.tree.structure(state)


def test_predict_is_camera_frame(tiny):
    cfg, method, batch, variables = tiny
    pred = jax.jit(method.predict, static_argnums=3)(variables, batch, None, 1).check()
    b, s = 2, cfg.data.image_size // 4
    assert pred.vertices.shape == (b, 1, method.body.faces.max() + 1, 3)
    assert pred.joints.shape == (b, 1, 24, 3) and pred.pose.shape == (b, 1, 24, 3, 3)
    assert pred.betas.shape == (b, 1, 10) and pred.cam.shape == (b, 1, 3)
    assert pred.depth.shape == (b, s, s) and pred.part_seg.shape == (b, s, s, 23)
    # independent check of the frame: pose the body with the predicted rotations, add the CLIFF translation
    cam = np.asarray(pred.cam[:, 0], np.float64)
    bs = batch["bbox_scale"] * cam[:, 0]
    f = batch["focal_length"][:, 0]
    t = np.stack([cam[:, 1] + 2 * (batch["bbox_center"][:, 0] - 160) / bs,
                  cam[:, 2] + 2 * (batch["bbox_center"][:, 1] - 120) / bs, 2 * f / bs], -1)
    local = method.body(pose=pred.pose[:, 0], betas=pred.betas[:, 0]).joints
    np.testing.assert_allclose(np.asarray(pred.joints[:, 0]), np.asarray(local) + t[:, None], atol=1e-4)
    assert float(pred.joints[:, 0, 0, 2].min()) > 0   # in front of the camera
    np.testing.assert_allclose(np.asarray(jnp.linalg.det(pred.pose)), 1.0, atol=1e-4)


def test_depth_false_removes_depth_branch():
    cfg = _small_config("tiny,depth=False")
    method = create(cfg)
    batch = _batch(cfg)
    shapes = jax.eval_shape(method.init, jax.random.key(0), batch)
    assert "depth_decoder" not in shapes["params"]
    # the regressor input loses the pooled depth features (8 channels of hrnet_tiny's first branch)
    full = jax.eval_shape(create(_small_config()).init, jax.random.key(0), batch)
    d = full["params"]["pose_hidden"]["kernel"].shape[1] - shapes["params"]["pose_hidden"]["kernel"].shape[1]
    assert d == 8
    out = jax.eval_shape(method.loss, *split_variables(shapes), batch, jax.random.key(0))
    assert "depth_l1" not in out[1][0] and "part_seg_ce" in out[1][0]


def test_decoder_width_widens_both_decoders_and_the_depth_features():
    cfg = _small_config()
    cfg.model.decoder_width = 24
    batch = _batch(cfg)
    wide = jax.eval_shape(create(cfg).init, jax.random.key(0), batch)["params"]
    base = jax.eval_shape(create(_small_config()).init, jax.random.key(0), batch)["params"]
    for dec in ("part_decoder", "depth_decoder"):
        assert wide[dec]["final_conv"]["kernel"].shape[-1] == 24
        assert base[dec]["final_conv"]["kernel"].shape[-1] == 8     # hrnet_tiny's 1/4 branch
    # the pooled depth features entering every regressor grow from 8 to 24 channels
    assert wide["pose_hidden"]["kernel"].shape[1] - base["pose_hidden"]["kernel"].shape[1] == 16


def _paper_setup(batch_size):
    cfg = dpose_config.get_config("paper")
    cfg.model.init_from_data = False   # synthetic_humans/small need not be built for these checks
    method = create(cfg)
    return cfg, method, _batch(cfg, b=batch_size)


def test_paper_parameter_count():
    cfg, method, batch = _paper_setup(1)
    shapes = jax.eval_shape(method.init, jax.random.key(0), batch)
    count = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(t))
    total = count(shapes["params"])
    parts_m = {k: count(v) / 1e6 for k, v in shapes["params"].items()}
    print(f"D-PoSE paper variant: {total / 1e6:.2f}M parameters (paper: {PAPER_PARAMS_M}M); {parts_m}")
    assert count(shapes["params"]["backbone"]) == 65_325_120   # timm hrnet_w48 features-only
    assert 70e6 < total < 90e6


@pytest.mark.slow
def test_paper_one_training_step_cpu():
    cfg, method, batch = _paper_setup(2)
    # Random variables of the init's shapes: no compile of the HRNet-W48 init (~half this test's CPU time).
    variables = random_variables(jax.eval_shape(method.init, jax.random.key(0), batch))
    params, state = split_variables(variables)
    tx = optax.chain(optax.clip_by_global_norm(cfg.optim.clip_grad_norm), optax.adam(cfg.optim.lr))
    opt = tx.init(params)

    @jax.jit
    def step(params, state, opt):
        (loss, (metrics, state)), g = jax.value_and_grad(method.loss, has_aux=True)(params, state, batch,
                                                                                    jax.random.key(1))
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), state, opt, loss

    new_params, new_state, _, loss = step(params, state, opt)
    assert np.isfinite(float(loss))
    assert jax.tree.structure(new_params) == jax.tree.structure(params)
    assert jax.tree.map(jnp.shape, new_params) == jax.tree.map(jnp.shape, params)


def test_mean_init_head_norm_and_attention_gradient_switches(tiny):
    cfg, method, batch, variables = tiny
    params = variables["params"]
    # init_from_data: the starting pose / betas are the train split's mean (the evaluator's baseline)
    assert cfg.model.init_from_data
    from hmrjax import evaluate
    from hmrjax.geometry import rotations
    pose, betas, _ = evaluate.train_mean_pose_and_shape(cfg)
    start = rotations.rot6d_to_matrix(params["mean_pose6d"].reshape(24, 6))
    np.testing.assert_allclose(np.asarray(start), pose, atol=1e-5)
    np.testing.assert_allclose(np.asarray(params["mean_betas"]), betas[:10], atol=1e-6)
    assert "head_norm" in params and cfg.model.head_norm == "layernorm"
    assert dpose_config.get_config("paper").model.head_norm == "none"

    # attention_grad=False: with the part-seg loss off, no gradient reaches the part decoder
    def decoder_grad_norm(attention_grad):
        c = _small_config()
        c.model.init_from_data = c.model.part_prior_init = False
        c.model.attention_grad = attention_grad
        c.loss.lambda3 = 0.0
        m = create(c)
        p, s = split_variables(jax.jit(m.init)(jax.random.key(0), batch))
        g = jax.grad(lambda q: m.loss(q, s, batch, jax.random.key(1))[0])(p)
        return float(optax.global_norm(g["part_decoder"]))
    assert decoder_grad_norm(True) > 0
    assert decoder_grad_norm(False) == 0.0

    bad = _small_config()
    bad.model.head_norm = "batchnorm"
    bad.model.init_from_data = bad.model.part_prior_init = False
    with pytest.raises(ValueError, match="head_norm"):
        jax.eval_shape(create(bad).init, jax.random.key(0), batch)


def test_part_prior_init_is_the_log_class_frequency_of_the_training_crops(tiny):
    """tiny starts the part logits at the class prior: out_conv's bias = log frequencies, whose background share
    agrees with the person masks of the same (unaugmented) training crops."""
    cfg, method, batch, variables = tiny
    assert cfg.model.part_prior_init and not dpose_config.get_config("paper").model.part_prior_init
    freq = dpose.train_part_frequencies(cfg, method.part_labels, max_records=64)
    assert freq.shape == (24 - 1,) and np.all(freq > 0) and abs(freq.sum() - 1) < 1e-9
    import data_pipelines
    source = data_pipelines.open_source(cfg.data.name, cfg.data.train_split, cfg.data.data_dir)
    fg = np.mean([pipeline.prepare_example(pipeline.load_record(source, i, cfg.data), None, cfg.data,
                                           train=False)["mask"].mean() for i in range(64)])
    assert abs((1 - freq[0]) - fg) < 0.03, (freq[0], fg)
    assert np.count_nonzero(freq[1:] > 1e-3) >= 15      # most body parts are seen
    bias = variables["params"]["part_decoder"]["out_conv"]["bias"]
    np.testing.assert_allclose(np.asarray(bias), np.log(dpose.train_part_frequencies(cfg, method.part_labels)),
                               rtol=1e-5, atol=1e-6)


def _paper_terms_off(cfg):
    """Sets the paper's loss weights lambda1..lambda8 to 0 (only the hmrjax option under test remains)."""
    for k in ("lambda1", "lambda2", "lambda3", "lambda4", "lambda5", "lambda6", "lambda7", "lambda8"):
        cfg.loss[k] = 0.0


def _assert_option_loss_refused(batch, match, **loss_weights):
    """An option's loss weight without the model part it needs is refused (ValueError matching `match`)."""
    off = _small_config()
    off.model.update(init_from_data=False, part_prior_init=False)
    off.loss.update(**loss_weights)
    m_off = create(off)
    p_off, s_off = split_variables(jax.eval_shape(m_off.init, jax.random.key(0), batch))
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(m_off.loss, p_off, s_off, batch, jax.random.key(1))


def test_part_centroids_are_the_attention_weighted_pixel_centres():
    """`model.part_centroids`: the pooled coordinate channels equal a float64 numpy softmax-weighted mean of
    the pixel centres of each part map, and every regressor reads the 22 x 2 centroids; `loss.part_centroid`
    adds their MSE against the labelled parts' centroids."""
    cfg = _small_config()
    cfg.model.update(part_centroids=True, init_from_data=False, part_prior_init=False)
    method = create(cfg)
    batch = _batch(cfg)
    variables = method.init(jax.random.key(3), batch)
    out = method.model.apply(variables, batch["img"], batch["cliff_bbox"], train=False)
    logits = np.asarray(out["part_logits"][..., 1:], np.float64)             # [B, H, W, 22]
    b, h, w, p = logits.shape
    flat = logits.reshape(b, h * w, p)
    weights = np.exp(flat - flat.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    ys, xs = np.meshgrid((2 * np.arange(h) + 1) / h - 1, (2 * np.arange(w) + 1) / w - 1, indexing="ij")
    expected = np.einsum("bnp,nc->bpc", weights, np.stack([xs.ravel(), ys.ravel()], -1))
    assert out["part_centroids"].shape == (b, dpose.NUM_PARTS, 2)
    np.testing.assert_allclose(np.asarray(out["part_centroids"]), expected, atol=2e-6)

    plain = jax.eval_shape(create(_small_config()).init, jax.random.key(0), batch)
    grow = variables["params"]["pose_hidden"]["kernel"].shape[1] - plain["params"]["pose_hidden"]["kernel"].shape[1]
    assert grow == 2 * dpose.NUM_PARTS

    # loss.part_centroid: the term is the centroid MSE of these centroids against the labelled parts (mapped
    # to D-PoSE's classes), with every other term off it still trains the part decoder; it needs the centroids
    cfg.loss.part_centroid = 5.0
    _paper_terms_off(cfg)
    method = create(cfg)
    params, state = split_variables(variables)
    (total, (metrics, _)), g = jax.value_and_grad(method.loss, has_aux=True)(params, state, batch,
                                                                             jax.random.key(1))
    labels = np.asarray(method.part_labels)[batch["part_seg"]]
    from hmrjax import losses
    target, present = losses.part_centroid_targets(jnp.asarray(labels), dpose.NUM_PARTS + 1)
    pred = method.model.apply(variables, batch["img"], batch["cliff_bbox"], train=True,
                              mutable=["batch_stats"])[0]["part_centroids"]
    want = losses.part_centroid_mse(pred, target, present)
    np.testing.assert_allclose(float(metrics["part_centroid_mse"]), float(want), rtol=1e-5)
    np.testing.assert_allclose(float(total), 5.0 * float(want), rtol=1e-5)
    assert float(optax.global_norm(g["part_decoder"])) > 0
    _assert_option_loss_refused(batch, "part_centroids=True", part_centroid=1.0)


def test_keypoint_branch_soft_argmax_lifter_and_loss():
    """`model.keypoint_lifter`: the branch's keypoints equal a float64 numpy soft-argmax of its logit maps over
    the pixel centres; the lifter's embedding widens every regressor input by its width; the lifter reads the
    keypoints detached (the pose terms give the branch no gradient); `loss.keypoints_crop` equals
    a float64 weighted L1 with visibility (or all-ones) weights and trains only the branch; it needs the branch."""
    cfg = _small_config()
    cfg.model.update(keypoint_lifter=16, keypoint_head_width=8, init_from_data=False, part_prior_init=False)
    method = create(cfg)
    batch = _batch(cfg)
    rng = np.random.default_rng(5)
    kp = np.concatenate([rng.uniform(-0.9, 0.9, (2, 17, 2)), rng.random((2, 17, 1)) > 0.3], -1)
    batch["keypoints2d"] = kp.astype(np.float32)
    variables = method.init(jax.random.key(4), batch)
    out = method.model.apply(variables, batch["img"], batch["cliff_bbox"], train=False)
    logits = np.asarray(out["keypoint_maps"], np.float64)
    b, h, w, k = logits.shape
    assert k == 17 and out["keypoints2d"].shape == (b, 17, 2)
    flat = logits.reshape(b, h * w, k)
    wts = np.exp(flat - flat.max(1, keepdims=True))
    wts /= wts.sum(1, keepdims=True)
    ys, xs = np.meshgrid((2 * np.arange(h) + 1) / h - 1, (2 * np.arange(w) + 1) / w - 1, indexing="ij")
    expected = np.einsum("bnk,nc->bkc", wts, np.stack([xs.ravel(), ys.ravel()], -1))
    np.testing.assert_allclose(np.asarray(out["keypoints2d"]), expected, atol=2e-6)

    plain = jax.eval_shape(create(_small_config()).init, jax.random.key(0), batch)
    grow = variables["params"]["pose_hidden"]["kernel"].shape[1] - plain["params"]["pose_hidden"]["kernel"].shape[1]
    assert grow == 16

    params, state = split_variables(variables)
    grad = lambda m: jax.value_and_grad(m.loss, has_aux=True)(params, state, batch, jax.random.key(1))
    (_, (metrics, _)), g = grad(method)                       # keypoints_crop = 0: only the paper's terms
    assert "keypoints_crop_l1" not in metrics
    assert float(optax.global_norm(g["keypoint_branch"])) == 0.0
    assert float(optax.global_norm(g["keypoint_lifter"])) > 0

    pred = method.model.apply(variables, batch["img"], batch["cliff_bbox"], train=True,
                              mutable=["batch_stats"])[0]["keypoints2d"]
    _paper_terms_off(cfg)
    for visible_only, conf in ((True, kp[..., 2]), (False, np.ones((2, 17)))):
        cfg.loss.update(keypoints_crop=3.0, keypoints_crop_visible_only=visible_only)
        (total, (metrics, _)), g = grad(create(cfg))
        # float64 reference of the weighted L1: sum over keypoints and axes, mean over the batch
        want = (np.abs(np.asarray(pred, np.float64) - kp[..., :2]).sum(-1) * conf).sum(-1).mean()
        np.testing.assert_allclose(float(metrics["keypoints_crop_l1"]), float(want), rtol=1e-5)
        np.testing.assert_allclose(float(total), 3.0 * float(want), rtol=1e-5)
        assert float(optax.global_norm(g["keypoint_branch"])) > 0
        assert float(optax.global_norm(g["pose_out"])) == 0.0

    _assert_option_loss_refused(batch, "keypoint_lifter > 0", keypoints_crop=1.0)


def test_keypoint_branch_heatmap_mode():
    """`model.keypoint_heatmaps`: the keypoints are the argmax of each heatmap with the quarter-pixel shift
    towards the larger neighbour (float64 numpy, mmpose's rule, inner pixels only) in the crop-normalised frame
    x = 2 (hx + 0.5) / w - 1, the lifter also reads the maxima; `loss.keypoints_crop` is the detector's heatmap
    MSE 1/K sum_k 0.5 mean_{b,y,x} (w_bk (P - G))^2 on the pipeline's targets and needs them."""
    cfg = _small_config()
    cfg.model.update(keypoint_lifter=16, keypoint_head_width=8, keypoint_heatmaps=True, init_from_data=False,
                     part_prior_init=False)
    _paper_terms_off(cfg)
    cfg.loss.update(keypoints_crop=2.0, keypoints_crop_visible_only=True)
    method = create(cfg)
    batch = _batch(cfg)
    rng = np.random.default_rng(6)
    variables = method.init(jax.random.key(5), batch)
    # a larger output scale than the detector's 0.001 init, so the argmax is not decided by rounding
    variables["params"]["keypoint_branch"]["final_layer"]["kernel"] *= 1000.0
    out = method.model.apply(variables, batch["img"], batch["cliff_bbox"], train=False)
    maps = np.asarray(out["keypoint_maps"], np.float64)                   # [B, h, w, K]
    b, h, w, k = maps.shape
    want = np.zeros((b, k, 2))
    for i in range(b):
        for j in range(k):
            m = maps[i, :, :, j]
            y, x = np.unravel_index(np.argmax(m), m.shape)
            fx, fy = float(x), float(y)
            if 1 < x < w - 1 and 1 < y < h - 1:
                fx += 0.25 * np.sign(m[y, x + 1] - m[y, x - 1])
                fy += 0.25 * np.sign(m[y + 1, x] - m[y - 1, x])
            want[i, j] = [2 * (fx + 0.5) / w - 1, 2 * (fy + 0.5) / h - 1]
    np.testing.assert_allclose(np.asarray(out["keypoints2d"]), want, atol=1e-6)
    plain = jax.eval_shape(create(_small_config()).init, jax.random.key(0), batch)
    assert variables["params"]["keypoint_lifter"]["dense_in"]["kernel"].shape[0] == 17 * 3   # x, y, maximum
    widths = [v["params"]["pose_hidden"]["kernel"].shape[1] for v in (plain, variables)]
    assert widths[1] == widths[0] + 16

    vis = (rng.random((b, 17)) > 0.3).astype(np.float32)
    batch["keypoints2d"] = np.concatenate([rng.uniform(-1, 1, (b, 17, 2)), vis[..., None]], -1).astype(np.float32)
    batch["heatmaps"] = rng.random((b, 17, h, w)).astype(np.float32)
    params, state = split_variables(variables)
    total, (metrics, _) = method.loss(params, state, batch, jax.random.key(1))
    pred = method.model.apply(variables, batch["img"], batch["cliff_bbox"], train=True,
                              mutable=["batch_stats"])[0]["keypoint_maps"]
    diff = vis[:, :, None, None] * (np.transpose(np.asarray(pred, np.float64), (0, 3, 1, 2)) - batch["heatmaps"])
    ref = np.mean(0.5 * np.mean(diff ** 2, axis=(0, 2, 3)))
    np.testing.assert_allclose(float(metrics["keypoint_heatmap_mse"]), ref, rtol=1e-5)
    np.testing.assert_allclose(float(total), 2.0 * ref, rtol=1e-5)
    del batch["heatmaps"]
    with pytest.raises(ValueError, match="data.heatmaps=True"):
        jax.eval_shape(method.loss, params, state, batch, jax.random.key(1))


def test_flip_test_averages_with_the_mirrored_crop(tiny):
    """model.flip_test: the prediction is the chordal mean of the rotations of the crop and those of the
    mirrored crop (CLIFF x offset negated) mirrored back, checked against scipy's Rotation.mean of the two
    single-pass predictions and `data_pipelines.transforms.flip_pose`; betas / camera / depth / part logits
    likewise; and the flip-tested prediction of the mirrored crop is the mirror of the crop's."""
    from scipy.spatial.transform import Rotation

    from data_pipelines import transforms
    cfg, method, batch, variables = tiny
    noise = jax.random.split(jax.random.key(3), len(jax.tree_util.tree_leaves(variables["params"])))
    leaves, tree = jax.tree_util.tree_flatten(variables["params"])   # heads start tiny: make outputs image-dependent
    params = jax.tree_util.tree_unflatten(tree, [x + 0.05 * jax.random.normal(k, x.shape)
                                                 for x, k in zip(leaves, noise)])
    variables = {**variables, "params": params}
    fcfg = _small_config()
    fcfg.model.flip_test = True
    flip_method = create(fcfg)
    assert flip_method.supports_flip_test and flip_method.flip_test and not method.flip_test
    mirrored = dict(batch, img=batch["img"][:, :, ::-1], cliff_bbox=batch["cliff_bbox"] * np.float32([-1, 1, 1]))
    single = jax.jit(method.predict, static_argnums=3)
    flipped = jax.jit(flip_method.predict, static_argnums=3)
    a, b, f = single(variables, batch, None, 1), single(variables, mirrored, None, 1), flipped(variables, batch, None, 1)

    perm = layouts.flip_permutation("smpl24")
    ra = np.asarray(a.pose[:, 0], np.float64)
    rb = np.asarray(b.pose[:, 0], np.float64)
    expected = np.empty_like(ra)
    for i in range(ra.shape[0]):
        back = Rotation.from_rotvec(transforms.flip_pose(Rotation.from_matrix(rb[i]).as_rotvec(), perm))
        for j in range(ra.shape[1]):
            expected[i, j] = Rotation.concatenate([Rotation.from_matrix(ra[i, j]), back[j]]).mean().as_matrix()
    assert np.abs(ra - expected).max() > 1e-3   # the mirrored pass changes the answer
    np.testing.assert_allclose(np.asarray(f.pose[:, 0]), expected, atol=2e-5)
    np.testing.assert_allclose(np.asarray(f.betas), 0.5 * (np.asarray(a.betas) + np.asarray(b.betas)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(f.cam), 0.5 * (np.asarray(a.cam) + np.asarray(b.cam) * [1, -1, 1]),
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(f.depth), 0.5 * (np.asarray(a.depth) + np.asarray(b.depth)[:, :, ::-1]),
                               atol=1e-6)
    part_perm = np.concatenate([[0], layouts.flip_permutation("smplx22") + 1])
    seg_b = np.asarray(b.part_seg)[:, :, ::-1][..., part_perm]
    np.testing.assert_allclose(np.asarray(f.part_seg), 0.5 * (np.asarray(a.part_seg) + seg_b), atol=1e-5)
    # equivariance of the flip-tested prediction
    fm = flipped(variables, mirrored, None, 1)
    np.testing.assert_allclose(np.asarray(rotations.mirror_rotations(fm.pose[:, 0], perm)),
                               np.asarray(f.pose[:, 0]), atol=2e-5)
    np.testing.assert_allclose(np.asarray(fm.cam) * [1, -1, 1], np.asarray(f.cam), atol=1e-6)


def test_lifter_pose_start_and_frozen_lifter():
    """`model.lifter_pose`: the lifter's pose head starts at the starting pose (kernel zeros, bias = the mean),
    its output is every joint's starting estimate (a changed bias moves the prediction by the same 6D offset
    before the regressors' residual, which reads it too), and its parameters get the pose losses' gradient;
    `model.lifter_frozen` cuts that gradient (exactly zero) but leaves the forward pass unchanged; both need
    the lifter."""
    cfg = _small_config()
    cfg.model.update(keypoint_lifter=16, keypoint_head_width=8, init_from_data=False, part_prior_init=False,
                     lifter_pose=True)
    method = create(cfg)
    batch = _batch(cfg)
    variables = method.init(jax.random.key(7), batch)
    head = variables["params"]["keypoint_lifter"]["pose_out"]
    assert "mean_pose6d" not in variables["params"]
    np.testing.assert_array_equal(np.asarray(head["kernel"]), 0.0)
    out = method.model.apply(variables, batch["img"], batch["cliff_bbox"], train=False)
    start = np.asarray(dpose._root_init6d(24), np.float32).reshape(24, 6)
    np.testing.assert_allclose(np.asarray(out["lifter_pose6d"]), np.broadcast_to(start, (2, 24, 6)), atol=1e-7)

    # with the regressors' residual zeroed, the prediction is the lifter's pose, whatever its bias
    moved = jax.tree_util.tree_map(np.asarray, variables)
    offset = 0.05 * np.random.default_rng(3).standard_normal(24 * 6).astype(np.float32)
    moved["params"]["keypoint_lifter"]["pose_out"]["bias"] = head["bias"] + offset
    moved["params"]["pose_out"] = jax.tree_util.tree_map(np.zeros_like, moved["params"]["pose_out"])
    out2 = method.model.apply(moved, batch["img"], batch["cliff_bbox"], train=False)
    want = np.broadcast_to(start + offset.reshape(24, 6), (2, 24, 6))
    np.testing.assert_allclose(np.asarray(out2["lifter_pose6d"]), want, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out2["pose6d"]), want, atol=1e-6)

    params, state = split_variables(variables)
    grad = lambda m: jax.grad(lambda q: m.loss(q, state, batch, jax.random.key(1))[0])(params)
    assert float(optax.global_norm(grad(method)["keypoint_lifter"]["pose_out"])) > 0
    cfg.model.lifter_frozen = True
    frozen = create(cfg)
    g = grad(frozen)
    assert float(optax.global_norm(g["keypoint_lifter"])) == 0.0
    assert float(optax.global_norm(g["pose_out"])) > 0
    out3 = frozen.model.apply(variables, batch["img"], batch["cliff_bbox"], train=False)
    np.testing.assert_array_equal(np.asarray(out3["pose6d"]), np.asarray(out["pose6d"]))

    bad = _small_config()
    bad.model.update(lifter_pose=True, init_from_data=False, part_prior_init=False)
    with pytest.raises(ValueError, match="keypoint_lifter > 0"):
        create(bad).init(jax.random.key(0), batch)
