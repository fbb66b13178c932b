"""experiments/train_reference.py end to end on a few embedded photos: a tiny network trains for a few steps, logs
PSNR with the training hints and at fixed hint counts, the best checkpoint is chosen by the metric asked for,
last.ckpt holds the latest weights even when the run is cut off, and `trainer.profiler` reports."""

import csv
import logging
import math
import shutil

import pytest
import torch

from colorization.data.catalogue import sample_photo_paths
from experiments import train_reference


@pytest.mark.slow
def test_train_reference_logs_psnr_at_fixed_hint_counts_and_chooses_by_them(tmp_path, monkeypatch, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sample_photo_paths()[:5]:
        shutil.copy(path, photos)
    out = tmp_path / "run"
    # lr 0.3: high enough that the best validation is not the last one, so best.ckpt and last.ckpt differ
    monkeypatch.setattr("sys.argv", [
        "train_reference", "--photos", str(photos), "--out", str(out), "--steps", "6", "--size", "32",
        "--batch-size", "2", "--val", "2", "--steps-per-epoch", "2", "--monitor", "val/psnr_10pts",
        "model.widths=[8,16,32,64]", "trainer.precision=32-true", "optimizer.lr=0.3", "trainer.profiler=simple"])
    # as when the run is cut off (a time limit, a kill): Lightning's own last save at the end of training never runs
    monkeypatch.setattr("lightning.pytorch.callbacks.ModelCheckpoint.on_train_end", lambda *args: None)
    with caplog.at_level(logging.INFO, logger="lightning"):
        train_reference.main()
    assert "FIT Profiler Report" in caplog.text  # train.py's trainer.profiler is honoured
    with open(out / "csv" / "metrics.csv") as f:
        validations = [row for row in csv.DictReader(f) if row["val/psnr"]]
    assert len(validations) == 3  # after steps 2, 4 and 6
    for row in validations:
        none, ten = float(row["val/psnr_0pts"]), float(row["val/psnr_10pts"])
        assert math.isfinite(none) and math.isfinite(ten) and none != ten  # the hints reached the network
    best = torch.load(out / "checkpoints" / "best.ckpt", weights_only=False, map_location="cpu")
    callback = next(v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint{'monitor': 'val/"))
    assert callback["monitor"] == "val/psnr_10pts"
    assert callback["best_model_score"].item() == pytest.approx(max(float(r["val/psnr_10pts"]) for r in validations))
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert last["global_step"] == 6  # the latest weights, whichever validation was best
