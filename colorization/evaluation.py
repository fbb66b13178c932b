"""Evaluation: every method colorizes the same photos from the same seeded hints; per-image metrics; reports.

Settings: `paper` (3x3 patches over about 0.5% of the pixels) and `points_N` (Zhang et al. 2017: N patches,
each filled with its mean ab). Methods: `model` (a trained model, through `InferenceModel.predict`: exactly what
`colorize` and the app run) and the baselines, all called as (L, hint_ab, mask) -> ab. PSNR is measured on the
8-bit RGB a user would save, against the original photo.
"""

import csv
import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch
from skimage.color import deltaE_ciede2000
from torch.utils.data import DataLoader
from torchmetrics.functional.image import peak_signal_noise_ratio
from tqdm.auto import tqdm

from colorization.baselines import BASELINES
from colorization.data.decode import ImageFiles, collate
from colorization.inference import InferenceModel
from colorization.models import check_image_size
from colorization.transforms import (
    PaperHints,
    PointHints,
    ab_to_bins,
    bins,
    colourfulness,
    edge_aware_fill,
    levin_fill,
    merge_l_ab,
    prepare_batch,
    propagate_hints,
    rgb_to_lab,
)
from colorization.transforms.bins import bin_accuracy
from colorization.transforms.hints import Batch, derive_seed
from colorization.visualize import panel

log = logging.getLogger(__name__)
POINT_COUNTS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500)
SETTINGS = ("paper", *(f"points_{n}" for n in POINT_COUNTS))
METRICS = ("psnr", "ciede2000", "colourfulness", "accuracy")


class EvaluationError(ValueError):
    """A bad evaluation option; the message names it."""


def nearest_hint(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Extra baseline: every pixel takes the ab of its nearest hinted pixel (no hints: gray).

    What a model must beat to show it uses the photo's content, not just the hints' positions.
    """
    out = torch.zeros_like(hint_ab)
    for i, m in enumerate(mask[:, 0].cpu().numpy() > 0.5):
        if m.any():
            ys, xs = scipy.ndimage.distance_transform_edt(~m, return_distances=False, return_indices=True)
            out[i] = hint_ab[i][:, torch.from_numpy(ys), torch.from_numpy(xs)]
    return out


def fill_hints(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Extra baseline: the hints propagated by push-pull, the fill that `input=fill` gives the network."""
    return propagate_hints(hint_ab, mask)


METHODS = {"model": None, **BASELINES, "nearest": nearest_hint, "fill": fill_hints, "edge": edge_aware_fill,
           "levin_fill": levin_fill}


EVAL_PATCH = 6  # Zhang et al. 2017's evaluation (test_sweep.py): every point a 6x6 patch


def hint_sampler(setting: str):
    """`paper` -> PaperHints(); `points_N` -> Zhang et al.'s evaluation hints: N 6x6 patches, centred normal."""
    if setting == "paper":
        return PaperHints()
    if setting.startswith("points_") and setting[7:].isdigit():
        return PointHints(n_points=int(setting[7:]), min_size=EVAL_PATCH, max_size=EVAL_PATCH)
    raise EvaluationError(f"settings: {setting!r} is not `paper` or `points_N` (N a number of points)")


def check_decode(decode: str, temperature: float) -> tuple[str, float]:
    try:
        bins.check_decode(decode, temperature)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    return decode, float(temperature)


def check_options(methods, settings, image_size: int):
    for method in methods:
        if method not in METHODS:
            raise EvaluationError(f"methods: {method!r} is not one of {', '.join(METHODS)}")
    for setting in settings:
        hint_sampler(setting)
    try:
        check_image_size(image_size)
    except ValueError as error:
        raise EvaluationError(str(error)) from None


@dataclass
class BatchResult:
    """One method's colours for one batch of photos at one hint setting."""

    positions: list[int]  # each photo's position in the evaluated file list (its hint seed)
    rgb: torch.Tensor  # (B, 3, H, W) uint8, the truth
    batch: Batch
    setting: str
    method: str
    ab: torch.Tensor  # (B, 2, H, W) the prediction
    accuracy: torch.Tensor | None  # (B,) model only


def predict(model: InferenceModel | None, methods, settings, paths, positions=None, image_size=256, resize="crop",
            seed=0, batch_size=8, num_workers=0, device="cpu", progress=True):
    """Yield a BatchResult per batch x setting x method; every method of a setting gets the same hints."""
    positions = list(range(len(paths))) if positions is None else positions
    loader = DataLoader(ImageFiles(paths, image_size, resize), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=collate)
    with tqdm(total=len(paths), desc="evaluate", unit="photo", disable=not progress) as bar:
        for data in loader:
            for message in data["errors"]:
                log.warning("skipped: %s", message)
            if not len(data["rgb"]):
                bar.update(len(data["errors"]))
                continue
            rgb, where = data["rgb"].to(device), [positions[i] for i in data["index"].tolist()]
            seeds = derive_seed(seed, torch.tensor(where))
            for setting in settings:
                batch = prepare_batch(rgb, hint_sampler(setting), seeds)
                for method in methods:
                    ab, accuracy = _colorize(model, method, batch)
                    yield BatchResult(where, rgb, batch, setting, method, ab, accuracy)
            bar.update(len(data["rgb"]) + len(data["errors"]))


@torch.no_grad()
def _colorize(model: InferenceModel | None, method: str, batch: Batch):
    if method != "model":
        return METHODS[method](batch["L"], batch["hint_ab"], batch["mask"]), None
    prediction = model.predict(batch["L"], batch["hint_ab"], batch["mask"])
    target = ab_to_bins(batch["ab"], model.n_bins, *model.ab_range)
    accuracy = bin_accuracy(prediction.logits(), target).mean(dim=(1, 2, 3))  # the paper's: a and b pooled
    return prediction.ab, accuracy


def to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb * 255.0).round().clamp(0, 255).to(torch.uint8)


def image_metrics(rgb: torch.Tensor, L: torch.Tensor, ab: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR (dB, 8-bit RGB), mean CIEDE2000 and colourfulness of the prediction L + ab vs rgb."""
    pred = to_uint8(merge_l_ab(L, ab))
    psnr = peak_signal_noise_ratio(pred.float(), rgb.float(), data_range=255.0, reduction="none", dim=(1, 2, 3))
    channel_last = lambda x: rgb_to_lab(x).permute(0, 2, 3, 1).double().cpu().numpy()  # noqa: E731
    ciede = deltaE_ciede2000(channel_last(pred), channel_last(rgb)).mean(axis=(1, 2))
    return {"psnr": psnr.cpu(), "ciede2000": torch.from_numpy(ciede), "colourfulness": colourfulness(pred / 255.0)}


def evaluate(model: InferenceModel | None, methods, settings, paths, save_dir: str | None = None,
             **options) -> list[dict]:
    """One row per photo x method x setting with its metrics; `save_dir`: also save each prediction as a
    panel (input with hints | prediction | truth) JPEG, its path in the row's `prediction`."""
    rows = []
    for p in predict(model, methods, settings, paths, **options):
        metrics = image_metrics(p.rgb, p.batch["L"], p.ab)
        truth_colourfulness = colourfulness(p.rgb / 255.0)
        for i, position in enumerate(p.positions):
            row = {"image": paths[position], "method": p.method, "setting": p.setting,
                   **{name: values[i].item() for name, values in metrics.items()},
                   "accuracy": p.accuracy[i].item() if p.accuracy is not None else None,
                   "colourfulness_true": truth_colourfulness[i].item(),
                   "hinted_fraction": p.batch["mask"][i].mean().item()}
            if save_dir:
                row["prediction"] = _save_panel(save_dir, row, p, i)
            rows.append(row)
    return rows


def _save_panel(save_dir, row, p: BatchResult, i: int) -> str:
    from PIL import Image

    stem = os.path.splitext(os.path.basename(row["image"]))[0]
    path = os.path.join(save_dir, row["setting"], row["method"], f"{p.positions[i]:05d}-{stem}.jpg")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    b = p.batch
    one = [x[i : i + 1] for x in (b["L"], b["hint_ab"], b["mask"], p.ab, b["ab"])]
    Image.fromarray(panel(*one)).save(path, quality=92)
    return path


# -- reports --------------------------------------------------------------------------------------------------


def summarise(rows: list[dict]) -> dict:
    """{method: {setting: {metric: mean}}} in the rows' order; accuracy only where it was measured."""
    values: dict = {}
    for row in rows:
        cell = values.setdefault(row["method"], {}).setdefault(row["setting"], {})
        for metric in METRICS:
            if row[metric] is not None:
                cell.setdefault(metric, []).append(row[metric])
    return {m: {s: {k: float(np.mean(v)) for k, v in cell.items()} for s, cell in by_setting.items()}
            for m, by_setting in values.items()}


def write_report(rows: list[dict], out_dir: str, about: dict) -> dict:
    """report.json, per_image.csv, summary.md and psnr_vs_points.png in out_dir; returns the report."""
    report = summarise(rows)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(os.path.join(out_dir, "per_image.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(summary_markdown(report, rows, about))
    plot_psnr(report, os.path.join(out_dir, "psnr_vs_points.png"))
    return report


def _table(report: dict, metric: str, digits: int) -> str:
    settings = list(dict.fromkeys(s for by_setting in report.values() for s in by_setting))
    lines = ["| method | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for method, by_setting in report.items():
        cells = [f"{by_setting[s][metric]:.{digits}f}" if metric in by_setting.get(s, {}) else "" for s in settings]
        if any(cells):
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(report: dict, rows: list[dict], about: dict) -> str:
    photos = len({row["image"] for row in rows})
    truth = np.mean([row["colourfulness_true"] for row in rows]) if rows else float("nan")
    fractions = {}
    for row in rows:
        fractions.setdefault(row["setting"], []).append(row["hinted_fraction"])
    parts = ["# Evaluation", "", *(f"- {key}: {value}" for key, value in about.items()), f"- photos: {photos}",
             "- hinted pixels: " + ", ".join(f"{s} {100 * np.mean(v):.2f}%" for s, v in fractions.items()), "",
             "## PSNR (dB, 8-bit RGB; higher is better)", "", _table(report, "psnr", 2), "",
             "## Mean CIEDE2000 (lower is better)", "", _table(report, "ciede2000", 2), "",
             f"## Colourfulness (Hasler and Suesstrunk; the photos themselves: {truth:.1f})", "",
             _table(report, "colourfulness", 1), ""]
    if any("accuracy" in metrics for by_setting in report.values() for metrics in by_setting.values()):
        parts += ["## Accuracy (exact ab bin of the argmax, a and b pooled; model only)", "",
                  _table(report, "accuracy", 3), ""]
    return "\n".join(parts)


def plot_psnr(report: dict, path: str):
    """PSNR against the number of points, a line per method; the paper setting as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for colour, (method, by_setting) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], report.items()):
        points = sorted((int(s[7:]), v["psnr"]) for s, v in by_setting.items() if s.startswith("points_"))
        if points:
            ax.plot(*zip(*points), marker="o", color=colour, label=method)
        if "paper" in by_setting:
            ax.axhline(by_setting["paper"]["psnr"], color=colour, linestyle="--", linewidth=1,
                       label=f"{method}, paper hints (3x3 patches, ~0.5%)")
    ax.set_xscale("symlog", linthresh=1)  # symlog: 0 points sits on the axis, 1..500 spread evenly
    ax.set_xlim(left=0)
    ax.set_xlabel("number of hint points (patches filled with their mean ab)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def best_worst(model: InferenceModel | None, rows: list[dict], paths: list[str], path: str, method="model",
               setting="paper", k=4, **options):
    """A grid of the k best and k worst photos by PSNR for one method and setting (panel: input with hints |
    prediction | truth), PSNR written beside each row. The predictions are recomputed: cheap for k photos."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted((r for r in rows if r["method"] == method and r["setting"] == setting), key=lambda r: -r["psnr"])
    if not ranked:
        return None
    k = max(1, min(k, len(ranked) // 2))
    chosen = list({r["image"]: r for r in ranked[:k] + ranked[-k:]}.values())
    position = {p: i for i, p in enumerate(paths)}
    subset = [r["image"] for r in chosen]
    images = []
    for p in predict(model, [method], [setting], subset, [position[s] for s in subset], progress=False, **options):
        b = p.batch
        images.append(panel(b["L"], b["hint_ab"], b["mask"], p.ab, b["ab"]))
    grid = np.concatenate(images)
    size = grid.shape[0] // len(chosen)
    fig, ax = plt.subplots(figsize=(9, 3 * len(chosen) + 0.8))  # rows of three squares, 3 inches each
    ax.imshow(grid)
    ax.set_yticks([size * (i + 0.5) for i in range(len(chosen))],
                  [f"{'best' if i < k else 'worst'}\n{os.path.basename(r['image'])}\n{r['psnr']:.2f} dB"
                   for i, r in enumerate(chosen)], fontsize=7)
    ax.set_xticks([size * (i + 0.5) for i in range(3)], ["input + hints", method, "truth"])
    ax.set_title(f"{method}, {setting} hints: best and worst PSNR")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def to_fiftyone(rows: list[dict], name: str):
    """A persistent FiftyOne dataset, one sample per photo x method x setting (the saved panel), with its
    metrics as fields, tagged by method and setting; plus a saved view of the model's worst PSNR first."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset = fo.Dataset(name)
    dataset.persistent = True
    samples = []
    for row in rows:
        fields = {key: value for key, value in row.items() if key not in ("image", "prediction") and value is not None}
        samples.append(fo.Sample(filepath=row["prediction"], photo=row["image"], tags=[row["method"], row["setting"]],
                                 **fields))
    dataset.add_samples(samples, progress=False)
    if "model" in dataset.distinct("method"):
        dataset.save_view("model-worst-psnr", dataset.match(F("method") == "model").sort_by("psnr"))
    return dataset
