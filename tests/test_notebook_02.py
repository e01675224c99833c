"""Executes notebooks/02_train_dpose.ipynb with a few training steps: it trains, evaluates against the
mean-pose baseline and shows the predictions picture."""
import os
import pathlib

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "02_train_dpose.ipynb"


def test_notebook_02_trains_evaluates_and_draws(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("HMRJAX_NB_STEPS", "2")
    monkeypatch.setenv("HMRJAX_NB_EVAL_EXAMPLES", "8")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.cells[1].source.lstrip().startswith("# !git clone")  # Colab install line, commented out
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) == 1
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    for key in ("mpjpe", "pa_mpjpe", "pve", "part_seg_iou", "baseline"):
        assert key in text
    assert (tmp_path / "out" / "dpose_nb" / "metrics.json").is_file()
    assert (tmp_path / "out" / "dpose_nb" / "predictions.png").is_file()
    assert os.path.isdir(tmp_path / "out" / "dpose_nb" / "run" / "checkpoints")
