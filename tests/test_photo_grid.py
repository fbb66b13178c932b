"""experiments/photo_grid.py on two embedded photos: one row per grid size, hints that reach the result, and a
bad checkpoint as a one-line error."""

import shutil

import numpy as np
import pytest

from colorization.data.catalogue import sample_photo_paths
from experiments import photo_grid


def test_photo_grid_compares_sizes_on_the_same_hints(tmp_path, capsys):
    for path in sample_photo_paths()[:2]:
        shutil.copy(path, tmp_path)
    assert photo_grid.main([str(tmp_path), "--sizes", "64,32", "--points", "0,50"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| 64 |")
            or line.startswith("| 32 |")]
    assert [row[0] for row in rows] == ["| 64", "| 32"]
    for row in rows:
        none, fifty = float(row[1]), float(row[2])
        assert fifty > none  # 50 hints of the photo's own colour bring the result closer to it


def test_hints_take_the_photos_own_colour():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 30:] = (200, 20, 10)
    hints = photo_grid.photo_hints(rgb, 20, seed=0)
    assert len(hints) == 20 and hints == photo_grid.photo_hints(rgb, 20, seed=0)  # seeded
    for hint in hints:
        if hint.x < 28 or hint.x > 31:  # patches that do not straddle the edge
            assert hint.color == ((200, 20, 10) if hint.x > 31 else (0, 0, 0))


@pytest.mark.parametrize("options", [["--ckpt", "x.ckpt"], ["--sizes", "192,big"]])
def test_bad_options_are_one_line(tmp_path, capsys, monkeypatch, options):
    (tmp_path / "x.ckpt").write_text("hello")
    monkeypatch.chdir(tmp_path)
    assert photo_grid.main([str(tmp_path), *options]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("photo_grid: error: "), lines
