"""Executes notebooks/02_train_dpose.ipynb with a few training steps: it trains, evaluates against the
mean-pose baseline and shows the predictions picture."""
import os

from notebook_runner import execute_notebook


def test_notebook_02_trains_evaluates_and_draws(tmp_path, monkeypatch):
    monkeypatch.setenv("HMRJAX_NB_STEPS", "2")
    monkeypatch.setenv("HMRJAX_NB_EVAL_EXAMPLES", "8")
    text, images = execute_notebook("02_train_dpose.ipynb", tmp_path, 900, "# !git clone")
    assert images == 1
    for key in ("mpjpe", "pa_mpjpe", "pve", "part_seg_iou", "baseline"):
        assert key in text
    assert (tmp_path / "out" / "dpose_nb" / "metrics.json").is_file()
    assert (tmp_path / "out" / "dpose_nb" / "predictions.png").is_file()
    assert os.path.isdir(tmp_path / "out" / "dpose_nb" / "run" / "checkpoints")
