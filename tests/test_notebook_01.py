"""Executes notebooks/01_body_model.ipynb (tiny settings) and checks that it ran and drew a picture."""
import pathlib


NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "01_body_model.ipynb"


def test_notebook_01_runs_and_shows_an_image(tmp_path):
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.cells[1].source.lstrip().startswith("# %pip install")  # Colab install line, commented out
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "vertices (2," in text and "joints (2," in text
