"""Evaluation: the protocol (same seeded hints for every method), the metrics, and evaluate.py end to end."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from colorization.data import decode_image
from colorization.data.catalogue import sample_photo_paths
from colorization.evaluation import (
    METHODS,
    SETTINGS,
    EvaluationError,
    evaluate,
    hint_sampler,
    image_metrics,
    nearest_hint,
    predict,
)
from colorization.system import ColorizationSystem
from colorization.transforms import rgb_to_lab

ROOT = Path(__file__).resolve().parents[1]

PHOTOS = sample_photo_paths()[:3]


def test_gray_psnr_matches_a_direct_computation():
    rows = evaluate(None, ["gray"], ["paper"], PHOTOS, image_size=64, progress=False)
    for row in rows:
        # Independently: skimage's LAB, the photo's L with a = b = 0, saved as 8-bit RGB.
        rgb = decode_image(row["image"], 64).permute(1, 2, 0).numpy()
        lab = rgb2lab(rgb)
        lab[..., 1:] = 0
        gray = np.round(lab2rgb(lab) * 255)
        psnr = 10 * np.log10(255.0**2 / np.mean((gray - rgb) ** 2))
        assert row["psnr"] == pytest.approx(psnr, abs=0.05)
    assert len(rows) == len(PHOTOS)


def test_metrics_of_the_truth_are_perfect_and_of_gray_are_not():
    rgb = torch.stack([decode_image(p, 64) for p in PHOTOS])
    lab = rgb_to_lab(rgb)
    truth = image_metrics(rgb, lab[:, :1], lab[:, 1:])
    gray = image_metrics(rgb, lab[:, :1], torch.zeros_like(lab[:, 1:]))
    assert (truth["psnr"] > 40).all() and (truth["ciede2000"] < 1).all()
    assert (gray["psnr"] < truth["psnr"] - 10).all() and (gray["ciede2000"] > 3).all()
    assert (gray["colourfulness"] < 1).all() and (truth["colourfulness"] > 10).all()


def test_every_method_sees_the_same_hints_whatever_the_batch_size(monkeypatch):
    """What each method is called with (the model through its `predict`), recorded: per setting the same
    (hint_ab, mask) for every method, and the same per photo whatever the batch size."""
    calls = []

    def recording(method, colorize):
        def call(L, hint_ab, mask):
            calls.append((method, hint_ab.clone(), mask.clone()))
            return colorize(L, hint_ab, mask)
        return call

    for method in ("gray", "nearest", "levin"):
        monkeypatch.setitem(METHODS, method, recording(method, METHODS[method]))
    model = ColorizationSystem({"name": "unet", "widths": [8, 16, 32, 64]}).inference_model()
    model.predict = recording("model", model.predict)

    def received(batch_size):
        out = {}
        for p in predict(model, ["model", "gray", "nearest", "levin"], ["paper", "points_5"], PHOTOS,
                         image_size=32, batch_size=batch_size, progress=False):
            method, hint_ab, mask = calls.pop()  # the call that made this prediction
            assert method == p.method and not calls
            out.setdefault((p.setting, method), []).append((hint_ab, mask))
            if method in ("nearest", "levin"):  # both propagate: hinted pixels keep their hint exactly
                hinted = mask.expand_as(p.ab) > 0
                assert torch.allclose(p.ab[hinted], hint_ab[hinted], atol=1e-4)
        return {key: [torch.cat(part) for part in zip(*value)] for key, value in out.items()}

    one, three = received(1), received(3)
    assert len(one) == len(three) == 2 * 4
    for (setting, method), (hint_ab, mask) in one.items():
        first_hint_ab, first_mask = one[setting, "model"]
        assert torch.equal(mask, first_mask) and torch.equal(hint_ab, first_hint_ab), (setting, method)
        assert torch.equal(mask, three[setting, method][1]) and torch.equal(hint_ab, three[setting, method][0])
        assert mask.flatten(1).sum(1).gt(0).all()  # every photo has hints (or the check above proves little)
    assert not torch.equal(one["paper", "gray"][1], one["points_5", "gray"][1])


def test_settings_and_nearest_baseline():
    assert SETTINGS[0] == "paper" and SETTINGS[1:] == tuple(f"points_{n}" for n in (0, 1, 2, 5, 10, 20, 50, 100,
                                                                                     200, 500))
    points = hint_sampler("points_20")  # Zhang et al.'s test_sweep.py: N points, each 6x6, centred normal
    assert (points.n_points, points.min_size, points.max_size, points.centred) == (20, 6, 6, True)
    with pytest.raises(EvaluationError, match="points_x"):
        hint_sampler("points_x")
    L = torch.full((1, 1, 8, 8), 50.0)
    hint, mask = torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 8, 8)
    assert nearest_hint(L, hint, mask).abs().sum() == 0  # no hints: gray
    hint[0, :, 0, 0], mask[0, :, 0, 0] = torch.tensor([10.0, -20.0]), 1
    hint[0, :, 7, 7], mask[0, :, 7, 7] = torch.tensor([-5.0, 30.0]), 1
    out = nearest_hint(L, hint, mask)
    assert out[0, :, 1, 2].tolist() == [10.0, -20.0] and out[0, :, 6, 5].tolist() == [-5.0, 30.0]


def _run(*args):
    return subprocess.run([sys.executable, "evaluate.py", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_evaluate_py_on_cbsd68_writes_every_file_and_the_fiftyone_dataset(shared_data, tiny_checkpoint, tmp_path):
    out = tmp_path / "eval"
    result = _run(f"ckpt_path={tiny_checkpoint}", "data=images", f"data.dir={shared_data / 'cbsd68'}",
                  "data.num_workers=0", "max_images=3", "image_size=64", "fiftyone=true", "fiftyone_name=test-eval",
                  f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(out) in result.stdout and "fiftyone app launch test-eval" in result.stdout

    report = json.loads((out / "report.json").read_text())
    assert list(report) == ["model", "gray", "levin", "nearest", "fill", "edge", "levin_fill"]
    for method, by_setting in report.items():
        assert list(by_setting) == list(SETTINGS)
        for metrics in by_setting.values():
            assert {"psnr", "ciede2000", "colourfulness"} <= set(metrics)
            assert ("accuracy" in metrics) == (method == "model")
            assert 5 < metrics["psnr"] < 60
    gray = report["gray"]
    assert gray["paper"]["psnr"] == pytest.approx(gray["points_500"]["psnr"])  # gray ignores the hints
    assert report["levin"]["points_500"]["psnr"] > gray["points_500"]["psnr"] + 3  # Levin uses them

    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 7 * len(SETTINGS) and len({row["image"] for row in rows}) == 3
    model_paper = [float(r["psnr"]) for r in rows if r["method"] == "model" and r["setting"] == "paper"]
    assert np.mean(model_paper) == pytest.approx(report["model"]["paper"]["psnr"], rel=1e-6)
    summary = (out / "summary.md").read_text()
    assert "## PSNR" in summary and "| levin |" in summary and "points_500" in summary
    for png in ("psnr_vs_points.png", "best_worst.png"):
        with Image.open(out / png) as image:
            assert image.width > 300 and image.height > 200

    import fiftyone as fo

    dataset = fo.load_dataset("test-eval")
    assert len(dataset) == len(rows)
    assert {"photo", "method", "setting", "psnr", "ciede2000", "colourfulness", "accuracy"} <= set(
        dataset.get_field_schema())
    worst = dataset.load_saved_view("model-worst-psnr").first()
    assert worst.method == "model" and worst.psnr == pytest.approx(min(
        float(r["psnr"]) for r in rows if r["method"] == "model"), abs=1e-4)
    assert os.path.isfile(worst.filepath) and worst.photo.startswith(str(shared_data))


@pytest.mark.slow
def test_evaluate_py_bad_checkpoint_exits_2_naming_it(tmp_path):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    result = _run(f"ckpt_path={bad}", "data=sample", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 2
    assert str(bad) in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_evaluate_py_decodes_as_asked_and_refuses_unknown_decodings(tiny_checkpoint, tmp_path):
    common = (f"ckpt_path={tiny_checkpoint}", "data=sample", "data.num_workers=0", "max_images=2", "image_size=64",
              "methods=[model]", "settings=[points_0]")
    reports = {}
    for decode in ("expectation", "argmax"):
        out = tmp_path / decode
        result = _run(*common, f"decode={decode}", f"hydra.run.dir={out}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"- decode: {decode}\n" in (out / "summary.md").read_text()
        reports[decode] = json.loads((out / "report.json").read_text())["model"]["points_0"]
    assert reports["argmax"]["colourfulness"] != pytest.approx(reports["expectation"]["colourfulness"], abs=1e-3)
    result = _run(*common, "decode=mode", f"hydra.run.dir={tmp_path / 'bad'}")
    assert result.returncode == 2 and result.stderr.strip() == (
        "evaluate.py: error: decode=mode: expected one of argmax, expectation, annealed_mean")
