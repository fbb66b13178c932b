"""Faults on the inference path (issue 16 rows 11-13, issue 15's start-up): hostile hint files, signals while
writing, what a loaded photo keeps in memory, and what the command line imports."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from colorization.cli.colorize import main as colorize
from colorization.data.catalogue import sample_photo_paths
from colorization.hint_file import MAX_HINTS
from colorization.inference import Colorizer, load_model

PHOTO = sample_photo_paths()[0]
HOSTILE = {
    "infinity.json": '[{"x": Infinity, "y": 1, "color": "#ffffff"}]',
    "overflow.json": '[{"x": 1e400, "y": 1, "color": "#ffffff"}]',
    "digits.json": '[{"x": ' + "9" * 5000 + ', "y": 1, "color": "#ffffff"}]',
    "nested.json": "[" * 200_000 + "]" * 200_000,
    "many.json": json.dumps([{"x": 1, "y": 1, "color": "#fff"}] * (MAX_HINTS + 1)),
}


@pytest.mark.parametrize("name", [*HOSTILE, "/dev/zero"])
def test_hostile_hint_files_are_one_line_naming_the_file(name, tmp_path, capsys):
    path = name if name.startswith("/") else tmp_path / name
    if not name.startswith("/"):
        path.write_text(HOSTILE[name])
    start = time.perf_counter()
    assert colorize([PHOTO, "--hints", str(path), "-o", str(tmp_path / "out.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"colorize: error: {path}: "), lines
    assert "Error" not in lines[0]  # in words, not an exception's class name
    assert time.perf_counter() - start < 30  # a bounded read: /dev/zero is not read to the end
    assert not (tmp_path / "out.png").exists()


def test_a_loaded_photo_keeps_its_lightness_only(tmp_path):
    """A view of the 3-channel LAB photo would keep all three channels alive for as long as the session."""
    photo = Colorizer(load_model()).load_photo(PHOTO)
    assert photo.L.untyped_storage().nbytes() == photo.L.numel() * photo.L.element_size()


def _run(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "colorization.cli.colorize", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigterm_while_writing_leaves_no_partial_file_and_sigkill_leftovers_are_removed(tmp_path):
    big = tmp_path / "big.png"  # about 8 MP: writing the result takes long enough to be caught in the middle
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (2400, 3400, 3), dtype=np.uint8)).save(big, compress_level=0)
    out = tmp_path / "out"
    process = _run(big, "-o", out)
    deadline = time.monotonic() + 120
    while not list(out.glob(".*.part")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert list(out.glob(".*.part")), "the partial file never appeared"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert not list(out.iterdir()), list(out.iterdir())  # neither a partial nor a half-written result

    # A writer killed with SIGKILL cannot clean up: the next run writing the same photo removes what it left.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".big.png.{dead.stdout.strip()}.abc123.part"
    stale.write_bytes(b"half a photo")
    alive = out / f".big.png.{os.getpid()}.abc123.part"  # a writer still running: left alone
    alive.write_bytes(b"being written")
    small = tmp_path / "big.png"
    Image.open(PHOTO).save(small)  # same name, small, so the second run is quick
    assert _run(small, "-o", out).wait(timeout=120) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([alive.name, "big.png"])


def test_the_command_line_and_the_app_import_neither_lightning_nor_fiftyone():
    """Nor Kornia or OpenCV: inference uses the project's own LAB conversions, and importing either costs start-up
    time."""
    code = ("import sys\nfrom colorization.cli import app, colorize\nfrom colorization.inference import Colorizer\n"
            "print(sorted(m for m in ('lightning', 'fiftyone', 'torchmetrics', 'kornia', 'cv2') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "[]", result.stderr[-2000:]


def test_colorize_help_answers_without_loading_torch():
    code = ("import sys\nfrom colorization.cli.colorize import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("False"), result.stdout[-500:] + result.stderr[-2000:]
