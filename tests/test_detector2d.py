"""2D heatmap detector: argmax decoding vs a numpy loop (mmpose's rule), heatmap <-> crop pixel conventions
against the pipeline's Gaussian targets, the visibility-weighted MSE vs a float64 formula, PCK / confidence
sums vs `hmrjax.metrics.pck`, the model on small ViT and HRNet configs, and a 2-step training run evaluated
through `hmrjax eval` (evaluate_detector)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import detector2d as det_config
from data_pipelines import heatmaps as heatmaps_lib
from data_pipelines import pipeline
from hmrjax import metrics
from hmrjax.methods import create, detector2d, split_variables


def _numpy_argmax(hm):
    """mmpose `_get_max_preds` + 'default' post-processing, written as a plain loop (float64)."""
    b, k, h, w = hm.shape
    out = np.zeros((b, k, 2))
    for i in range(b):
        for j in range(k):
            m = hm[i, j].astype(np.float64)
            py, px = np.unravel_index(np.argmax(m), m.shape)
            x, y = float(px), float(py)
            if 1 < px < w - 1 and 1 < py < h - 1:
                x += 0.25 * np.sign(m[py, px + 1] - m[py, px - 1])
                y += 0.25 * np.sign(m[py + 1, px] - m[py - 1, px])
            out[i, j] = x, y
    return out, hm.reshape(b, k, -1).max(-1)


def test_argmax_matches_numpy_including_borders():
    rng = np.random.default_rng(0)
    hm = rng.random((3, 17, 10, 7)).astype(np.float32)
    hm[0, 0, 0, 0] = 5.0          # corner: no shift
    hm[0, 1, 1, 3] = 5.0          # row 1: mmpose's condition is 1 < y, so no shift
    hm[0, 2, 5, 5] = 5.0          # interior
    coords, conf = jax.jit(detector2d.heatmap_argmax)(jnp.asarray(hm))
    ref_coords, ref_conf = _numpy_argmax(hm)
    np.testing.assert_allclose(np.asarray(coords), ref_coords, atol=1e-6)
    np.testing.assert_allclose(np.asarray(conf), ref_conf, rtol=1e-6)
    assert tuple(np.asarray(coords)[0, 0]) == (0.0, 0.0) and np.asarray(coords)[0, 1, 1] == 1.0


@pytest.mark.parametrize("crop,hsize", [(128, 32), (64, 16)])
def test_decoding_recovers_pipeline_target_positions(crop, hsize):
    """Gaussian targets (data_pipelines.heatmaps) at heatmap-pixel centres and at quarter offsets decode to the
    keypoint's crop pixel: exact at centres, within 1/4 heatmap px (x stride) otherwise."""
    rng = np.random.default_rng(1)
    cells = rng.integers(3, hsize - 3, (17, 2)).astype(np.float64)
    offsets = np.zeros((17, 2))
    offsets[8:] = rng.choice([-0.25, 0.25], (9, 2))
    hm_px = cells + offsets
    norm = (hm_px + 0.5) * 2.0 / hsize - 1.0                    # heatmaps.normalized_to_heatmap_px inverted
    np.testing.assert_allclose(heatmaps_lib.normalized_to_heatmap_px(norm, (hsize, hsize)), hm_px, atol=1e-9)
    kp = np.concatenate([norm, np.ones((17, 1))], -1)
    hm = heatmaps_lib.gaussian_heatmaps(kp, (hsize, hsize), 2.0)[None]
    coords, conf = detector2d.heatmap_argmax(jnp.asarray(hm))
    crop_px = np.asarray(detector2d.heatmap_to_crop_px(coords, (hsize, hsize), crop))[0]
    expected = (norm + 1.0) * crop / 2.0 - 0.5                  # crop px of the keypoint (pixel centres)
    stride = crop / hsize
    np.testing.assert_allclose(crop_px[:8], expected[:8], atol=1e-4)
    assert np.all(np.abs(crop_px[8:] - expected[8:]) <= 0.25 * stride + 1e-4)
    np.testing.assert_array_less(0.9, np.asarray(conf))         # near-centre peaks of a peak-1 Gaussian


def test_heatmap_mse_matches_float64_formula():
    rng = np.random.default_rng(2)
    p, g = rng.random((2, 2, 17, 6, 5)).astype(np.float32)
    w = (rng.random((2, 17)) > 0.3).astype(np.float32)
    ref = np.mean([0.5 * np.mean((w[:, k, None, None] * (p[:, k] - g[:, k]).astype(np.float64)) ** 2)
                   for k in range(17)])
    got = detector2d.heatmap_mse_loss(jnp.asarray(p), jnp.asarray(g), jnp.asarray(w))
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)
    with pytest.raises(ValueError, match="image_size / 4"):
        detector2d.heatmap_mse_loss(jnp.asarray(p), jnp.asarray(g[..., :4]), jnp.asarray(w))


def test_keypoint_metrics_against_metrics_pck():
    rng = np.random.default_rng(3)
    b, s = 4, 64
    norm = rng.uniform(-1.2, 1.2, (b, 17, 2))
    in_crop = np.all(np.abs(norm) <= 1, -1)
    vis_rec = (rng.random((b, 17)) > 0.3).astype(np.float32)
    kp = np.concatenate([norm, (vis_rec * in_crop)[..., None]], -1)
    kp_full = np.concatenate([rng.random((b, 17, 2)), vis_rec[..., None]], -1)
    gt = (norm + 1) * s / 2 - 0.5
    pred = gt + rng.normal(0, 6.0, gt.shape)
    conf = rng.random((b, 17))
    valid = np.array([1, 1, 1, 0], np.float32)
    scale = np.array([100.0, 150.0, 80.0, 90.0])
    got = detector2d.keypoint_metrics(pred, conf, kp, kp_full, valid, s, scale, 0.1)
    vis = kp[..., 2] * valid[:, None]
    per_ex = np.asarray(metrics.pck(jnp.asarray(pred), jnp.asarray(gt), 0.1, s, jnp.asarray(vis)))
    n_ex = vis.sum(1)
    np.testing.assert_allclose(got["pck_visible"][0] / got["pck_visible"][1], (per_ex * n_ex).sum() / n_ex.sum(),
                               rtol=1e-5)
    allm = in_crop * valid[:, None]
    per_all = np.asarray(metrics.pck(jnp.asarray(pred), jnp.asarray(gt), 0.1, s, jnp.asarray(allm)))
    np.testing.assert_allclose(got["pck_all"][0], (per_all * allm.sum(1)).sum(), rtol=1e-5)
    err_full = np.linalg.norm(pred - gt, axis=-1) * scale[:, None] / s
    np.testing.assert_allclose(got["err_px_visible"][0], (err_full * vis).sum(), rtol=1e-9)
    inv = allm * (1 - vis_rec)
    assert got["conf_invisible"][1] == inv.sum() and got["conf_visible"][1] == vis.sum()
    np.testing.assert_allclose(got["conf_invisible"][0], (conf * inv).sum(), rtol=1e-9)


def _config(backbone, size):
    c = det_config.get_config("tiny")
    c.model.backbone = backbone
    c.data.image_size, c.data.heatmap_size = size, size // 4
    return c


def _batch(cfg, b=2, seed=4):
    size, hs = cfg.data.image_size, cfg.data.heatmap_size
    ex = pipeline.blank_example(cfg.data)
    batch = {k: np.stack([np.asarray(v)] * b) for k, v in ex.items()}
    rng = np.random.default_rng(seed)
    batch["img"] = rng.standard_normal(batch["img"].shape).astype(np.float32)
    kp = np.concatenate([rng.uniform(-0.9, 0.9, (b, 17, 2)), (rng.random((b, 17, 1)) > 0.3)], -1).astype(np.float32)
    batch["keypoints2d"], batch["has_keypoints2d"][:] = kp, 1.0
    batch["heatmaps"] = np.stack([heatmaps_lib.gaussian_heatmaps(k, (hs, hs), 2.0) for k in kp])
    batch["valid"][:] = 1.0
    return batch


@pytest.mark.parametrize("backbone,size", [("vit_base_patch16_224", 256), ("hrnet_tiny", 64)])
def test_heatmap_shapes(backbone, size):
    """Abstract evaluation only: 17 heatmaps at 1/4 of the crop for ViTPose-B (paper) and HRNets."""
    cfg = _config(backbone, size)
    method = create(cfg)
    img = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: method.init(jax.random.key(0), {"img": x}), img)
    out = jax.eval_shape(lambda v, x: method.detect(v, x), variables, img)
    assert out[0].shape == (2, 17, 2) and out[1].shape == (2, 17) and out[2].shape == (2, 17, size // 4, size // 4)
    if backbone == "vit_base_patch16_224":   # ViTPose-B: ~90M parameters (ViT-B 86M + deconv head)
        n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))
        assert 88e6 < n < 92e6, n


def test_loss_predict_detect_values():
    cfg = _config("vit_tiny_test", 32)
    method = create(cfg)
    batch = _batch(cfg)
    kp = batch["keypoints2d"]
    variables = jax.jit(method.init)(jax.random.key(0), batch)
    params, state = split_variables(variables)
    # invisible keypoints carry no weight: changing their targets leaves the loss unchanged
    changed = dict(batch, heatmaps=np.where(kp[..., 2, None, None] > 0, batch["heatmaps"], 7.0))
    unweighted = create(_config("vit_tiny_test", 32))
    unweighted.config.loss.use_target_weight = False

    @jax.jit
    def run(params, batch, changed):
        loss, (mets, _) = method.loss(params, state, batch, None)
        loss2 = method.loss(params, state, changed, None)[0]
        all_kp = unweighted.loss(params, state, batch, None)[0]
        grads = jax.grad(lambda p: method.loss(p, state, batch, None)[0])(params)
        pred, _ = method.model.apply({"params": params, **state}, batch["img"], train=True, mutable=["batch_stats"])
        out = method.predict({"params": params, **state}, batch, None, num_samples=3)
        return loss, loss2, all_kp, mets, grads, pred, out, method.detect({"params": params, **state}, batch["img"])

    loss, loss2, all_kp, mets, grads, pred, out, (px, conf, hm) = run(params, batch, changed)
    hs = cfg.data.heatmap_size
    assert pred.shape == (2, 17, hs, hs)
    ref = 0.5 * np.mean([np.mean((kp[:, k, 2, None, None] * (np.asarray(pred, np.float64)[:, k]
                                                               - batch["heatmaps"][:, k])) ** 2) for k in range(17)])
    np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
    np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-6)
    ref_all = 0.5 * np.mean((np.asarray(pred, np.float64) - batch["heatmaps"]) ** 2)   # use_target_weight=False
    np.testing.assert_allclose(float(all_kp), ref_all, rtol=1e-5)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads)) and np.isfinite(mets["pck_0.1"])
    out.check()
    assert out.heatmaps.shape == (2, 17, hs, hs) and out.vertices.shape == (2, 3, 1, 3)
    coords, ref_conf = _numpy_argmax(np.asarray(hm))
    np.testing.assert_allclose(np.asarray(px), (coords + 0.5) * 32 / hs - 0.5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(conf), ref_conf, rtol=1e-6)


def test_flip_test_heatmaps():
    """Flip-test heatmaps equal the float64 average of the two passes, and are exactly mirror-equivariant:
    H(mirror(I)) = mirror(H(I)) with left/right channels swapped."""
    from hmrjax.body import layouts
    cfg = _config("vit_tiny_test", 32)
    method = create(cfg)
    img = np.random.default_rng(5).standard_normal((2, 32, 32, 3)).astype(np.float32)
    variables = jax.jit(method.init)(jax.random.key(1), {"img": img})

    @jax.jit
    def run(v, x):
        return (method.model.apply(v, x), method.model.apply(v, x[:, :, ::-1]),
                method.heatmaps(v, x, True), method.heatmaps(v, x[:, :, ::-1], True))

    plain, mirrored, flip, flip_of_mirror = (np.asarray(a, np.float64) for a in run(variables, img))
    perm = layouts.flip_permutation("coco17")
    np.testing.assert_allclose(flip, 0.5 * (plain + mirrored[:, perm, :, ::-1]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(flip_of_mirror, flip[:, perm, :, ::-1], rtol=1e-5, atol=1e-7)


def test_config_variants_and_bad_sizes():
    paper = det_config.get_config("paper")
    assert paper.model.backbone == "vit_base_patch16_224" and paper.data.image_size == 256
    assert paper.data.heatmap_size == 64 and paper.batch_size == 512 and paper.optim.weight_decay == 0.1
    assert paper.optim.lr == 5e-4 and paper.optim.name == "adamw"
    with pytest.raises(ValueError, match="unknown variant"):
        det_config.get_config("huge")
    bad = _config("hrnet_tiny", 64)
    bad.data.heatmap_size = 20
    with pytest.raises(ValueError, match="heatmap_size"):
        create(bad)
    bad = _config("resnet50", 64)
    with pytest.raises(ValueError, match="neither a ViT"):
        m = create(bad)
        m.init(jax.random.key(0), {"img": np.zeros((1, 64, 64, 3), np.float32)})


def test_train_then_hmrjax_eval(tmp_path, capsys):
    """2 training steps on a 64x64 synthetic build; `hmrjax eval` writes eval_<split>.json via evaluate_detector,
    and `--flip-test` / `--no-flip-test` write eval_<split>_flip / _noflip.json when they change the run's
    setting (the file the CLI reports)."""
    from data_pipelines.synthetic import builder
    from hmrjax import cli
    from hmrjax.train import trainer
    root = tmp_path / "data"
    mini = builder.SynthConfig("det_test", (64, 64), (("train", 4), ("test", 5)), examples_per_shard=8, seed=2)
    builder.build(mini, root, num_workers=0, progress=False)
    cfg = _config("vit_tiny_test", 32)
    cfg.data.name, cfg.data.data_dir, cfg.data.read_threads = "synthetic_humans/det_test", str(root), 0
    cfg.batch_size, cfg.total_steps, cfg.log_every = 2, 2, 1
    cfg.checkpoint.every_steps, cfg.checkpoint["async"] = 2, False
    workdir = tmp_path / "run"
    trainer.train_and_evaluate(cfg, workdir)
    assert cli.main(["eval", "--workdir", str(workdir), "--split", "test"]) == 0
    saved = json.loads((workdir / "eval_test.json").read_text())
    assert saved["step"] == 2 and saved["count"] == 5 and saved["method"] == "detector2d"
    assert saved["counts"]["pck_all"] >= saved["counts"]["pck_visible"] > 0
    assert 0.0 <= saved["pck_visible"] <= 1.0 and saved["err_px_all"] > 0
    limited = detector2d.evaluate_detector(workdir, "test", max_examples=3)
    assert limited["count"] == 3
    capsys.readouterr()
    for flag, flip in (("--flip-test", True), ("--no-flip-test", False)):
        assert cli.main(["eval", "--workdir", str(workdir), "--split", "test", "--max-examples", "2", flag]) == 0
        name = "eval_test.json" if flip == cfg.model.flip_test else f"eval_test_{'flip' if flip else 'noflip'}.json"
        assert f"wrote {workdir}/{name}" in capsys.readouterr().out
        saved = json.loads((workdir / name).read_text())
        assert saved["flip_test"] is flip and saved["count"] == 2
