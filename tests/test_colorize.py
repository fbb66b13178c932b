"""The `colorize` command and colorization.inference: full resolution, hints in photo pixels, clear errors.

About 30 s on 2 cores after the tiny checkpoint is trained (two subprocess runs of the real command).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.cli.colorize import main
from colorization.data.catalogue import sample_photo_paths
from colorization.hint_file import Hint, HintError, hints_json, parse_hints
from colorization.image_io import save_image
from colorization.inference import Colorizer, load_model
from colorization.transforms import rgb_to_lab

CHELSEA = next(path for path in sample_photo_paths() if path.endswith("chelsea.png"))  # 451 x 300, not square


def lab(path) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None])[0]


def run_colorize(*args, console_script=False) -> subprocess.CompletedProcess:
    """The real command in its own process, with the test environment (conftest's FiftyOne/W&B settings):
    `python -m colorization.cli.colorize`, or the installed `colorize` beside this Python."""
    script = os.path.join(os.path.dirname(sys.executable), "colorize")
    command = [script] if console_script else [sys.executable, "-m", "colorization.cli.colorize"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=dict(os.environ),
                          timeout=300)


@pytest.mark.slow
def test_colorize_full_resolution_and_hint_pulls_colour(tmp_path):
    """The shipped reference model (no --ckpt) at the photo's full resolution; one 9 px red hint moves that pixel
    from about 100 to about 25 ab units of red."""
    x, y, red = 225, 150, (255, 0, 0)
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps([{"x": x, "y": y, "color": "#ff0000", "size": 9}]))
    plain, hinted = tmp_path / "plain.png", tmp_path / "hinted.png"
    for args in ([], ["--hints", hints]):
        result = run_colorize(CHELSEA, "-o", hinted if args else plain, *args, console_script=bool(args))
        assert result.returncode == 0, result.stderr
    original = lab(CHELSEA)
    for path in (plain, hinted):
        assert Image.open(path).size == (451, 300)
        # Full resolution: the photo's own lightness comes through (not an upsampled 64 px image).
        assert (lab(path)[0] - original[0]).abs().mean() < 1.0
    target = rgb_to_lab(torch.tensor(red, dtype=torch.uint8).view(1, 3, 1, 1))[0, 1:, 0, 0]
    before = (lab(plain)[1:, y, x] - target).norm()
    after = (lab(hinted)[1:, y, x] - target).norm()
    assert after < before - 40, (before, after)


def test_folder_of_gray_and_colour_photos(tiny_checkpoint, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(CHELSEA).convert("L").resize((120, 80)).save(photos / "gray.jpg")
    Image.open(CHELSEA).resize((64, 100)).save(photos / "colour.png")
    (photos / "notes.txt").write_text("not a photo, not picked up")
    assert main([str(photos), "--ckpt", tiny_checkpoint, "-o", str(tmp_path / "out")]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["colour.png", "gray.jpg"]
    assert Image.open(tmp_path / "out" / "gray.jpg").size == (120, 80)
    assert Image.open(tmp_path / "out" / "colour.png").size == (64, 100)


@pytest.fixture
def bad_inputs(tmp_path):
    """Files for each kind of bad input."""
    files = {
        "broken.png": b"\x89PNG\r\n\x1a\n not really",
        "outside.json": json.dumps([{"x": 451, "y": 10, "color": "#ff0000"}]),
        "colour.json": json.dumps([{"x": 1, "y": 1, "color": "reddish"}]),
        "channel.json": json.dumps([{"x": 1, "y": 1, "color": [255, 0, 300]}]),
        "syntax.json": "[{\"x\": 1,",
        "shape.json": json.dumps({"x": 1, "y": 1, "color": "#fff"}),
        "missing.json": json.dumps([{"x": 1, "color": "#fff"}]),
        "foreign.ckpt": b"PK not a checkpoint",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")  # a real torch file, but not one of ours
    return tmp_path


@pytest.mark.parametrize("photo, hints, ckpt, expected", [
    ("nothere.png", None, None, "nothere.png: no such file"),
    ("broken.png", None, None, "broken.png: cannot identify image file"),
    (None, "outside.json", None, "outside.json: hint 1 at (451, 10) is outside the 451x300 image"),
    (None, "colour.json", None, "colour.json: hint 1: invalid colour 'reddish'"),
    (None, "channel.json", None, "channel.json: hint 1: invalid colour [255, 0, 300]"),
    (None, "syntax.json", None, "syntax.json: not a readable JSON hint file"),
    (None, "shape.json", None, "shape.json: expected a JSON list of hints, got dict"),
    (None, "missing.json", None, "missing.json: hint 1: missing y"),
    (None, None, "foreign.ckpt", "foreign.ckpt: not a colorization checkpoint"),
    (None, None, "other.ckpt", "other.ckpt: not a colorization checkpoint"),
])
def test_bad_input_exits_2_with_one_line(photo, hints, ckpt, expected, bad_inputs, tiny_checkpoint, capsys):
    output = bad_inputs / "out.png"
    photo = str(bad_inputs / photo) if photo else CHELSEA
    ckpt = str(bad_inputs / ckpt) if ckpt else tiny_checkpoint
    args = [photo, "--ckpt", ckpt, "-o", str(output), *(["--hints", str(bad_inputs / hints)] if hints else [])]
    output.write_bytes(b"an earlier result")
    assert main(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0], errors
    assert output.read_bytes() == b"an earlier result"  # nothing already written is lost
    assert not [name for name in os.listdir(bad_inputs) if name.endswith(".part")]


@pytest.mark.slow
def test_console_script_exit_code(tmp_path):
    """The installed process itself exits with 2 and a one-line message (no traceback), written out before it
    exits past the interpreter's teardown."""
    (tmp_path / "x.ckpt").write_text("hello")
    result = run_colorize(CHELSEA, "--ckpt", tmp_path / "x.ckpt", "-o", tmp_path / "out.png", console_script=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"colorize: error: {tmp_path / 'x.ckpt'}: not a colorization"), lines


def test_hints_map_onto_the_network_grid(tiny_checkpoint):
    colorizer = Colorizer.from_checkpoint(tiny_checkpoint)
    assert colorizer.size == 64  # the checkpoint's training size, not the default 256
    assert Colorizer(colorizer.model, size=96).size == 96  # the user's --size wins over it
    with pytest.raises(ValueError, match="--size=0"):  # not taken for "no size given"
        Colorizer(colorizer.model, size=0)
    photo = colorizer.load_photo(CHELSEA)
    assert photo.L_net.shape[-2:] == (48, 80)  # 451 x 300 at about 64 x 64 pixels, aspect kept, multiples of 16
    # One photo pixel still hints one grid cell: pixel (450, 299) lies in cell (47, 79).
    hint_ab, mask = colorizer.hint_grid(photo, [Hint(450, 299, (255, 0, 0))])
    assert mask.sum() == 1 and mask[0, 0, 47, 79] == 1
    assert hint_ab[0, 0, 47, 79] > 50  # red: a strongly positive
    # A 141 px patch centred on x=225 spans x 155..295: cell j's centre (j + 0.5) * 451 / 80 lies in it for j 27..52.
    _, mask = colorizer.hint_grid(photo, [Hint(225, 150, (0, 0, 255), size=141)])
    columns = mask[0, 0].amax(dim=0).nonzero().flatten()
    assert columns.min() == 27 and columns.max() == 52


def test_a_wide_photo_is_not_squeezed(tmp_path):
    """The network sees a 2:1 photo at 2:1, not stretched into a square (training crops, it never stretches): a
    circle in the photo stays round on the network's grid, and a round hint covers as many rows as columns."""
    from PIL import ImageDraw

    wide = tmp_path / "wide.png"
    image = Image.new("RGB", (640, 320), (60, 60, 60))
    ImageDraw.Draw(image).ellipse((220, 60, 420, 260), fill=(220, 220, 220))  # a circle 200 px across
    image.save(wide)
    colorizer = Colorizer(load_model())  # the reference model, at the size it records: 192 x 192 pixels in all
    photo = colorizer.load_photo(str(wide))
    assert photo.L_net.shape[-2:] == (128, 272)
    circle = photo.L_net[0, 0] > 50
    rows, cols = circle.any(dim=1).sum().item(), circle.any(dim=0).sum().item()
    # Squeezed into a square: twice as many rows. Sides rounded to multiples of 16 leave 6% (128/320 vs 272/640).
    assert abs(rows - cols) <= 0.1 * cols, (rows, cols)
    _, mask = colorizer.hint_grid(photo, [Hint(320, 160, (255, 0, 0), size=101)])
    rows, cols = mask[0, 0].amax(dim=1).sum().item(), mask[0, 0].amax(dim=0).sum().item()
    assert abs(rows - cols) <= 0.1 * cols, (rows, cols)


def test_hint_file_format_round_trip():
    hints = parse_hints([{"x": 3, "y": 4, "color": "#abc"}, {"x": 5.7, "y": 0, "color": [1, 2, 3], "size": 9}])
    assert hints == [Hint(3, 4, (0xAA, 0xBB, 0xCC), 1), Hint(5, 0, (1, 2, 3), 9)]
    assert parse_hints(json.loads(hints_json(hints))) == hints
    with pytest.raises(HintError, match="unknown key colour"):
        parse_hints([{"x": 1, "y": 1, "color": "#fff", "colour": "#000"}])
    with pytest.raises(HintError, match="size must be at least 1"):
        parse_hints([{"x": 1, "y": 1, "color": "#fff", "size": 0}])


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "result.png"
    target.write_bytes(b"previous")

    def fail_halfway(self, fp, *args, **kwargs):
        fp.write(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_image(np.zeros((4, 4, 3), np.uint8), str(target))
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["result.png"]
