"""The reference model shipped with the package: its checksum, its colours on photos it never saw, its errors."""

import shutil

import pytest
import torch

from colorization import evaluation, weights
from colorization.cli.colorize import main as colorize
from colorization.data import ColorizationDataModule
from colorization.data.catalogue import sample_photo_paths
from colorization.inference import load_model
from colorization.system import CheckpointError, load_system
from train import train


@pytest.fixture
def corrupt_weights(tmp_path, monkeypatch):
    """The package's weights folder replaced by a copy whose weights file has one byte changed."""
    shutil.copy(weights.reference_path(), tmp_path / weights.REFERENCE_FILE)
    with open(tmp_path / weights.REFERENCE_FILE, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(weights, "files", lambda package: tmp_path)
    return tmp_path


def test_shipped_weights_match_their_checksum_and_load():
    system = load_system()  # no path: the reference model
    assert (system.hparams.input_encoding, system.hparams.output) == ("levin", "residual")
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in system.parameters())


@pytest.fixture(scope="module")
def sample_report():
    """PSNR of the reference model and of gray on the embedded photos (none of them in its training set)."""
    rows = evaluation.evaluate(load_model(), ["model", "gray"], ["points_0", "points_100"], sample_photo_paths(),
                               image_size=256, resize="stretch", progress=False)
    return evaluation.summarise(rows)


@pytest.mark.slow
def test_reference_beats_gray_with_hints_and_follows_hints(sample_report):
    model, gray = sample_report["model"], sample_report["gray"]
    assert model["points_100"]["psnr"] > gray["points_100"]["psnr"] + 1.0
    assert model["points_100"]["psnr"] > model["points_0"]["psnr"] + 1.0
    assert model["points_0"]["colourfulness"] > 5.0  # it colours without hints, not gray


def test_corrupt_or_missing_weights_are_one_line_errors(corrupt_weights, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="corrupt"):
        load_system()
    assert colorize([sample_photo_paths()[0], "-o", str(tmp_path / "out.png")]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "reference weights are corrupt" in message
    (corrupt_weights / weights.REFERENCE_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_system()


def test_colorize_without_ckpt_uses_the_reference_model(tmp_path):
    out = tmp_path / "out.png"
    assert colorize([sample_photo_paths()[1], "-o", str(out)]) == 0
    assert out.stat().st_size > 1000


@pytest.mark.slow
def test_quickstart_fine_tunes_the_reference_into_a_model_that_beats_gray_and_follows_hints(tmp_path, cfg_train):
    """`make train` (experiment=quickstart, here 2 of its 10 epochs): its checkpoint, on the held-out photo."""
    cfg = cfg_train("experiment=quickstart", "model.widths=[32,64,128,256]", "data.image_size=128",
                    "trainer.max_epochs=2", "test=false")
    result = train(cfg)
    model = load_model(result["best_checkpoint"])
    assert model.input_encoding == "levin" and model.image_size == 128
    datamodule = ColorizationDataModule(source="sample", image_size=128, cache_dir=str(tmp_path / "cache"))
    test_photos = datamodule.resolve_files()["test"]
    rows = evaluation.evaluate(model, ["model", "gray"], ["paper", "points_0", "points_100"], test_photos,
                               image_size=128, resize="crop", progress=False)
    report = evaluation.summarise(rows)
    assert report["model"]["paper"]["psnr"] > report["gray"]["paper"]["psnr"]
    assert report["model"]["points_100"]["psnr"] > report["model"]["points_0"]["psnr"] + 3.0
