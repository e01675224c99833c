"""Shared by the notebook tests: execute a notebook in a folder and collect what its cells printed and drew."""
import pathlib

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"


def execute_notebook(name: str, cwd, timeout: int, install_line: str):
    """Runs notebooks/<name> with `cwd` as the kernel's folder; checks the commented-out Colab install line
    and that no cell raised. Returns (stream text, number of PNG outputs)."""
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert nb.cells[1].source.lstrip().startswith(install_line)  # Colab install line, commented out
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    return text, len(images)
