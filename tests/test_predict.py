"""hmrjax.predict: the single-image input equals the eval pipeline's, and predict_image restores a 1-step
training run of the test oracle method (tests/test_evaluate.py) and writes readable mesh files + overlay."""
import grain
import numpy as np
import pytest
from PIL import Image

import hmrjax
from data_pipelines import pipeline
from data_pipelines.synthetic import render_example as render_lib
from hmrjax import meshio
from hmrjax import predict as pr

import test_evaluate as te  # registers the "test_oracle" method


@pytest.fixture(scope="module")
def record():
    rec = render_lib.render_example(0, "test", 0, (96, 80), body=render_lib.get_body("anny_lite", 10))
    return rec


def test_bbox_to_center_scale():
    c, s = pr.bbox_to_center_scale((10, 20, 50, 100), 200, 100)
    np.testing.assert_allclose(c, [30, 60])
    assert s == pytest.approx(1.2 * 80)
    c, s = pr.bbox_to_center_scale(None, 200, 100)
    np.testing.assert_allclose(c, [100, 50])
    assert s == 200
    with pytest.raises(ValueError, match="x1 > x0"):
        pr.bbox_to_center_scale((50, 20, 10, 100), 200, 100)


def test_image_batch_equals_eval_pipeline(record):
    config = te.make_config()
    image = record["image"]
    h, w = image.shape[:2]
    bbox = (20.0, 10.0, 60.0, 70.0)
    batch = pr.image_batch(image, config.data, bbox)
    center, scale = pr.bbox_to_center_scale(bbox, w, h)
    ref = next(iter(pipeline.make_eval_dataset([{"image": image, "bbox_center": center, "bbox_scale": scale}],
                                               config, batch_size=1)))
    for key in ("img", "cliff_bbox", "crop_transform", "focal_length", "princpt", "bbox_center", "bbox_scale"):
        np.testing.assert_array_equal(batch[key], ref[key], err_msg=key)
    f = np.sqrt(w ** 2 + h ** 2)  # CLIFF default focal length
    np.testing.assert_allclose(batch["focal_length"][0], [f, f], rtol=1e-6)
    np.testing.assert_allclose(batch["cliff_bbox"][0], [(40 - w / 2) / f, (40 - h / 2) / f, 72 / f], rtol=1e-5)
    assert batch["img"].shape == (1, 32, 32, 3) and batch["valid"].tolist() == [1.0]


def test_predict_image_writes_meshes_and_overlay(record, tmp_path):
    from hmrjax.train import trainer
    cfg = te.make_config()
    cfg.total_steps, cfg.log_every = 1, 1
    cfg.optim.name, cfg.optim.lr = "adam", 0.01
    cfg.checkpoint.every_steps, cfg.checkpoint["async"] = 1, False
    records = [{k: v for k, v in record.items() if k not in ("family", "num_occluders")}] * 4
    batches = list(pipeline.make_eval_dataset(records, cfg))
    workdir = tmp_path / "run"
    state = trainer.train_and_evaluate(cfg, workdir, dataset=grain.MapDataset.source(batches).repeat(None))
    offset = np.asarray(state.params["offset"], np.float64)

    image_path = tmp_path / "person.png"
    Image.fromarray(record["image"]).save(image_path)
    out = pr.predict_image(workdir, image_path, tmp_path / "out")
    body = hmrjax.body.load("anny_lite", num_betas=10)
    rest = np.asarray(body().vertices[0], np.float64)
    # the oracle without GT: the rest body placed at (0, 0, 3) m plus the trained offset
    np.testing.assert_allclose(out["vertices"], rest + te.PLACEMENT + offset, atol=1e-5)
    v, f, _ = meshio.read_ply(out["ply"])
    np.testing.assert_allclose(v, out["vertices"], atol=1e-6)
    np.testing.assert_array_equal(f, body.faces)
    v2, f2 = meshio.read_obj(out["obj"])[:2]
    np.testing.assert_allclose(v2, out["vertices"], atol=1e-5)
    np.testing.assert_array_equal(f2, body.faces)
    overlay = np.asarray(Image.open(out["overlay"]))
    assert overlay.shape == record["image"].shape
    changed = np.any(overlay != record["image"], axis=-1)
    # the mesh covers the image centre (the body stands 3 m in front of the camera, principal point centred)
    assert changed[40, 48] and 0.02 < changed.mean() < 0.9

    with pytest.raises(FileNotFoundError, match="missing.png"):
        pr.predict_image(workdir, tmp_path / "missing.png", tmp_path / "out2")
    with pytest.raises(ValueError, match="no ema_params"):
        pr.predict_image(workdir, image_path, tmp_path / "out2", use_ema=True)
    with pytest.raises(FileNotFoundError, match="config.json"):
        pr.predict_image(tmp_path / "not_a_run", image_path, tmp_path / "out2")
