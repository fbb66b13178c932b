"""20 concurrent uploads through the app's real HTTP API (experiments/load_app.py) with the tiny checkpoint, and
the app's default bind address. About 25 s on 2 cores after the tiny checkpoint is trained."""


import pytest

from colorization.cli import app as colorization_app
from colorization.inference import Colorizer
from experiments.load_app import HOST, main, run_load, summary


@pytest.mark.slow
def test_twenty_concurrent_uploads_are_all_answered(tiny_checkpoint):
    pytest.importorskip("gradio_client")
    result = run_load(Colorizer.from_checkpoint(tiny_checkpoint), requests=20, timeout=120, total_timeout=240)
    print(summary(result))
    assert result["errors"] == []
    assert len(result["latencies"]) == 20 and all(0 < t < 120 for t in result["latencies"])
    assert result["url"].startswith(f"http://{HOST}:")


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
