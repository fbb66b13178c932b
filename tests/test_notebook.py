"""notebooks/predictions.ipynb executes top to bottom (nbclient) against a tiny checkpoint, so it never rots."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_predictions_notebook_executes(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("COLORIZATION_CKPT", tiny_checkpoint)  # the kernel inherits this process's environment
    notebook = nbformat.read(ROOT / "notebooks" / "predictions.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert f"checkpoint: {tiny_checkpoint}" in "".join(output.get("text", "") for output in outputs)
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) == 2  # the seeded comparison and the hand-hints panel
