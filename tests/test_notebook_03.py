"""Executes notebooks/03_probabilistic_hypotheses.ipynb with 2 training steps and checks that it drew the
hypotheses picture and printed the hypothesis shapes and the 3D spreads."""
import pathlib

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "03_probabilistic_hypotheses.ipynb"


def test_notebook_03_runs_and_draws_hypotheses(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("HMRJAX_NOTEBOOK_STEPS", "2")  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.cells[1].source.lstrip().startswith("# %pip install")  # Colab install line, commented out
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "hypotheses (1, 100," in text and "log-likelihoods (1, 100)" in text
    assert "3D spread: visible joints" in text and "trained 2 steps" in text
