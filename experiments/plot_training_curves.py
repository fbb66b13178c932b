"""Training curves of runs that continue one another (a GPU run, then CPU fine-tunes): one figure.

    python -m experiments.plot_training_curves OUT.png STAGE=RUN_DIR:BATCH [STAGE=RUN_DIR:BATCH ...]

Each RUN_DIR is an output of experiments.train_reference (csv/metrics.csv); BATCH turns its steps into images
seen, and every stage starts where the previous one ended. Validation PSNR and colourfulness are on each stage's
own validation crops (48 held-out photos, seeded hints), so a jump between stages is the change of crop size, not
learning.
"""

import argparse
import csv
import os


def read(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "csv", "metrics.csv")) as f:
        return list(csv.DictReader(f))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.plot_training_curves",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the figure to write (.png)")
    parser.add_argument("stages", nargs="+", metavar="STAGE=RUN_DIR:BATCH",
                        help="a name, a run's output dir and its batch size; in training order")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, stages = args.out, args.stages
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    offset = 0
    for stage in stages:
        name, rest = stage.split("=", 1)
        run_dir, batch = rest.rsplit(":", 1)
        rows = read(run_dir)
        seen = {id(r): offset + (int(r["step"]) + 1) * int(batch) for r in rows}
        for ax, key in zip(axes, ("train/loss_step", "val/psnr", "val/colourfulness_pred")):
            points = [(seen[id(r)], float(r[key])) for r in rows if r.get(key)]
            if points:
                ax.plot(*zip(*points), label=name, marker="." if key.startswith("val") else None)
        truth = [float(r["val/colourfulness_true"]) for r in rows if r.get("val/colourfulness_true")]
        if truth:
            axes[2].axhline(truth[-1], linestyle="--", linewidth=1, color="gray")
        offset = max(seen.values())
    for ax, title in zip(axes, ("training loss (per step)", "validation PSNR (dB)",
                                "validation colourfulness (dashed: the photos')")):
        ax.set_title(title)
        ax.set_xlabel("images seen")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
