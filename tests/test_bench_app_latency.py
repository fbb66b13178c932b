"""experiments/bench_app_latency.py end to end: the app served, Chromium clicking on it, the server's share."""

import os
import re

import pytest

from colorization.data.catalogue import sample_photo_paths
from experiments import bench_app_latency


@pytest.mark.slow  # starts the app and Chromium
def test_the_benchmark_times_clicks_and_the_servers_share(tiny_checkpoint, capsys):
    if not os.path.exists(bench_app_latency.CHROMIUM):
        pytest.skip(f"{bench_app_latency.CHROMIUM} not installed: run .ci/install-browser.sh")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    small = next(path for path in sample_photo_paths() if path.endswith("chelsea.png"))
    assert bench_app_latency.main(["--ckpt", str(tiny_checkpoint), "--clicks", "2", "--pause", "0.2",
                                   "--large", small]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "clicks: click -> shown" in line]
    assert len(lines) == 2, lines
    for line in lines:
        shown, server, upload = (float(v) for v in re.search(
            r"p50 (\d+) ms.*server p50 (\d+) ms.*upload -> first result (\d+) ms", line).groups())
        assert 0 < server < shown  # the server's events were timed, and took part of the click
        assert upload > server  # the upload: sent, decoded, colorized and shown


def test_an_unusable_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "x.ckpt").write_text("hello")
    if not os.path.exists(bench_app_latency.CHROMIUM):
        pytest.skip(f"{bench_app_latency.CHROMIUM} not installed")
    assert bench_app_latency.main(["--ckpt", str(tmp_path / "x.ckpt")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench_app_latency: error: "), lines
