"""The venv opens notebooks/predictions.ipynb (the `notebook` extra): Jupyter serves it, and its imports print no
widget warning."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]



@pytest.mark.slow
def test_notebook_imports_print_no_widget_warning():
    """tqdm.auto (imported by the data and evaluation modules) warns `IProgress not found` in a kernel without
    ipywidgets: the settings and imports cells (which load the shipped model) print nothing to stderr."""
    notebook = nbformat.read(ROOT / "notebooks" / "predictions.ipynb", as_version=4)
    notebook.cells = [cell for cell in notebook.cells if cell.cell_type == "code"][:2]
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [output for cell in notebook.cells for output in cell.outputs]
    assert "checkpoint: reference" in "".join(output.get("text", "") for output in outputs)
    assert [output.text for output in outputs if output.get("name") == "stderr"] == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyter_lab_serves_the_notebook(tmp_path):
    """The README's command, `jupyter lab notebooks/predictions.ipynb`, without a browser: the server starts from
    this venv and serves the notebook (from its folder, which a file argument makes the server's root)."""
    port, token = free_port(), "colorization-test"
    env = {**os.environ, **{f"JUPYTER_{name}_DIR": str(tmp_path / name) for name in ("CONFIG", "DATA", "RUNTIME")}}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "notebooks/predictions.ipynb", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0",
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI containers run as root
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/predictions.ipynb?token={token}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    contents = json.load(response)
                break
            except urllib.error.HTTPError:
                raise
            except OSError:  # not listening yet
                assert time.monotonic() < deadline, "jupyter lab did not answer within 60 s"
                time.sleep(0.5)
        assert contents["type"] == "notebook" and contents["content"]["cells"]
        page = f"http://127.0.0.1:{port}/lab/tree/predictions.ipynb?token={token}"
        with urllib.request.urlopen(page, timeout=10) as response:
            assert response.status == 200 and b"JupyterLab" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
