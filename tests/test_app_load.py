"""20 concurrent uploads through the app's real HTTP API (experiments/load_app.py) with the tiny checkpoint,
identical outputs never re-written while served, and the app's default bind address. About 25 s on 2 cores
after the tiny checkpoint is trained."""

import os

import pytest

from colorization.cli import app as colorization_app
from colorization.data.catalogue import sample_photo_paths
from colorization.inference import Colorizer
from experiments.load_app import ENDPOINT, HOST, free_port, main, run_load, summary


@pytest.mark.slow
def test_twenty_concurrent_uploads_are_all_answered(tiny_checkpoint):
    pytest.importorskip("gradio_client")
    result = run_load(Colorizer.from_checkpoint(tiny_checkpoint), requests=20, timeout=120, total_timeout=240)
    print(summary(result))
    assert result["errors"] == []
    assert len(result["latencies"]) == 20 and all(0 < t < 120 for t in result["latencies"])
    assert result["url"].startswith(f"http://{HOST}:")


def test_identical_outputs_are_never_rewritten_while_served(tiny_checkpoint):
    """Two uploads of one photo give byte-identical images. The second must not re-write the file the first
    was handed: Gradio's own cache for returned arrays truncates and re-writes them in place, and a download
    of one running meanwhile arrived truncated (lost requests under load, `peer closed connection`)."""
    client_module = pytest.importorskip("gradio_client")
    port = free_port()
    server = colorization_app.serve(Colorizer.from_checkpoint(tiny_checkpoint), HOST, port, block=False)
    clients = []  # kept open: a closed client's session and its files are removed

    def served_result() -> str:
        clients.append(client_module.Client(f"http://{HOST}:{port}/", verbose=False, download_files=False))
        outputs = clients[-1].predict(client_module.handle_file(sample_photo_paths()[0]), api_name=ENDPOINT)
        return outputs[1]["path"]

    try:
        first = served_result()
        written = os.stat(first).st_ino, os.stat(first).st_mtime_ns, open(first, "rb").read()
        second = served_result()
        assert (os.stat(first).st_ino, os.stat(first).st_mtime_ns, open(first, "rb").read()) == written
        assert open(second, "rb").read() == written[2] and second != first
    finally:
        for client in clients:
            client.close()
        server.close()


def test_a_failed_request_is_counted_and_fails_the_run(tiny_checkpoint, tmp_path):
    """Not an image: the app answers with its message instead of a result, which the load script counts."""
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    result = run_load(Colorizer.from_checkpoint(tiny_checkpoint), requests=2, timeout=60, photo=str(text))
    assert len(result["errors"]) == 2 and result["latencies"] == []
    assert main(["--ckpt", str(text)]) == 2  # an unusable checkpoint: a clear error, not a traceback


def test_app_binds_this_machine_only_by_default():
    assert colorization_app.parse_args(["--ckpt", "x.ckpt"]).host == "127.0.0.1"
    assert HOST == "127.0.0.1"
