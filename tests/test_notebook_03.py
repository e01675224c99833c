"""Executes notebooks/03_probabilistic_hypotheses.ipynb with 2 training steps and checks that it drew the
hypotheses picture and printed the hypothesis shapes and the 3D spreads."""
from notebook_runner import execute_notebook


def test_notebook_03_runs_and_draws_hypotheses(tmp_path, monkeypatch):
    monkeypatch.setenv("HMRJAX_NOTEBOOK_STEPS", "2")  # the kernel inherits the environment
    text, images = execute_notebook("03_probabilistic_hypotheses.ipynb", tmp_path, 300, "# %pip install")
    assert images == 1
    assert "hypotheses (1, 100," in text and "log-likelihoods (1, 100)" in text
    assert "3D spread: visible joints" in text and "trained 2 steps" in text
