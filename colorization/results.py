"""One row per run of a sweep, in the shape of the paper's Tables 1 and 2 (variant | train acc | train loss |
test acc | test loss | test PSNR).

    python -m colorization.results SWEEP_DIR

Reads each job's output dir (`.hydra/overrides.yaml`, the CSV log `csv/version_*/metrics.csv`, or else the
local W&B run file, offline or online), writes SWEEP_DIR/results.md and SWEEP_DIR/val_curves.png (the
validation curves of every variant) and prints the table. A variant is the job's values of what the sweep
varied (command-line sweeps and hydra.sweeper.params), the same name its W&B run has.
"""

import argparse
import csv
import glob
import json
import os
import re
import struct
import sys

from omegaconf import OmegaConf

from colorization.hydra_utils import sweep_keys, variant

# (column, logged key, format): train values from the last epoch; test ones from the best-val checkpoint.
COLUMNS = [("train acc", "train/acc_epoch", "{:.1%}"), ("train loss", "train/loss_epoch", "{:.3f}"),
           ("test acc", "test/acc", "{:.1%}"), ("test loss", "test/loss", "{:.3f}"),
           ("test PSNR", "test/psnr", "{:.2f} dB")]
CURVES = [("val/acc", "validation accuracy"), ("val/loss", "validation loss")]


def natural(path: str) -> list:
    """Sort key: job 10 after job 9, version_10 after version_9."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def read_csv_log(job_dir: str) -> list[dict]:
    """The rows of the job's CSV logs, every version in order (a resumed run continues in a new one)."""
    rows = []
    for path in sorted(glob.glob(os.path.join(job_dir, "csv", "version_*", "metrics.csv")), key=natural):
        with open(path, newline="") as f:
            rows += [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    return rows


def wandb_records(path: str):
    """The records of a local W&B run file (run-*.wandb), read without syncing it: W&B's LevelDB-style log
    (a 7-byte file header, then 32 KiB blocks of chunks, each with a 7-byte header: crc, length, type)."""
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    block, pos, record = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left for a header: the block is padded
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zero padding: the end of what was written
            break
        record += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            parsed = wandb_internal_pb2.Record()
            parsed.ParseFromString(record)
            yield parsed
            record = b""


def read_wandb_log(job_dir: str) -> list[dict]:
    """The numeric history rows of the job's local W&B runs."""
    rows = []
    for path in sorted(glob.glob(os.path.join(job_dir, "wandb", "*run-*", "run-*.wandb"))):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") == "history":
                row = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                       for item in record.history.item}
                rows.append({k: float(v) for k, v in row.items() if isinstance(v, int | float)})
    return rows


def collect(sweep_dir: str) -> list[dict]:
    """[{label, job_dir, rows}] for each job of the sweep, in job order."""
    keys = sweep_keys(sweep_dir)
    runs, labels = [], set()
    for path in sorted(glob.glob(os.path.join(sweep_dir, "**", ".hydra", "overrides.yaml"), recursive=True),
                       key=natural):
        job_dir = os.path.dirname(os.path.dirname(path))
        name = os.path.relpath(job_dir, sweep_dir)
        label = ", ".join(variant(OmegaConf.load(path), keys)) or f"job {name}"
        if label in labels:  # Optuna may draw the same values twice
            label = f"{label} (job {name})"
        labels.add(label)
        runs.append({"label": label, "job_dir": job_dir, "rows": read_csv_log(job_dir) or read_wandb_log(job_dir)})
    return runs


def last(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if key in row]
    return values[-1] if values else None


def table(runs: list[dict]) -> str:
    lines = ["| variant | " + " | ".join(c for c, _, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for run in runs:
        cells = [fmt.format(v) if (v := last(run["rows"], key)) is not None else "–" for _, key, fmt in COLUMNS]
        lines.append(f"| {run['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(runs: list[dict], path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(6 * len(CURVES), 4))
    for ax, (key, title) in zip(axes, CURVES):
        for run in runs:
            points = [(row["epoch"], row[key]) for row in run["rows"] if key in row and "epoch" in row]
            if points:
                ax.plot(*zip(*points), marker="o", label=run["label"])
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m colorization.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a multirun's output dir (hydra.sweep.dir)")
    sweep_dir = parser.parse_args(argv).sweep_dir
    if not os.path.isdir(sweep_dir):
        parser.exit(2, f"colorization.results: {sweep_dir}: no such directory\n")
    runs = collect(sweep_dir)
    if not runs:
        parser.exit(2, f"colorization.results: {sweep_dir}: no runs in it (no */.hydra/overrides.yaml)\n")
    for run in runs:
        if not run["rows"]:
            print(f"colorization.results: {run['job_dir']}: no metrics (no csv/ or wandb/ log)", file=sys.stderr)
    text = table(runs)
    with open(os.path.join(sweep_dir, "results.md"), "w") as f:
        f.write(f"Runs of {os.path.abspath(sweep_dir)}: train values from the last epoch, test values from the "
                "checkpoint best on validation. Accuracy: the share of a and b bins predicted right "
                "(argmax) over all pixels.\n\n" + text + "\n\n![validation curves](val_curves.png)\n")
    plot_curves(runs, os.path.join(sweep_dir, "val_curves.png"))
    print(text)


if __name__ == "__main__":
    main()
