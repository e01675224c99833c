"""Executes notebooks/01_body_model.ipynb (tiny settings) and checks that it ran and drew a picture."""
from notebook_runner import execute_notebook


def test_notebook_01_runs_and_shows_an_image(tmp_path):
    text, images = execute_notebook("01_body_model.ipynb", tmp_path, 120, "# %pip install")
    assert images == 1
    assert "vertices (2," in text and "joints (2," in text
