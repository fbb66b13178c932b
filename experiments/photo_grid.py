"""How large a grid the network should colour whole photos at (`colorize --size`, the app's `--size`): PSNR of the
full-resolution result against the photo, and ms per photo, for each grid size, on photos at their own size
with seeded hints (5x5 patches of the photo's own colour at uniformly drawn points), through `Colorizer` as
`colorize` runs it. experiments/results/reference_model.md, "The grid for whole photos", holds the figures.

Usage: python -m experiments.photo_grid ../shared/data/cbsd68 [--sizes 256,192,160] [--points 0,10,100,500]
"""

import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from colorization.checkpoint import CheckpointError
from colorization.data.decode import load_rgb
from colorization.hint_file import Hint
from colorization.inference import Colorizer, load_model

PATCH = 5  # a hint's side in photo pixels


def photo_hints(rgb: np.ndarray, n: int, seed: int) -> list[Hint]:
    """n hints on uniformly drawn points, each the mean colour of the photo's own PATCH x PATCH patch there."""
    rng = np.random.default_rng(seed)
    height, width = rgb.shape[:2]
    half = PATCH // 2
    hints = []
    for _ in range(n):
        y, x = int(rng.integers(half, height - half)), int(rng.integers(half, width - half))
        color = rgb[y - half:y + half + 1, x - half:x + half + 1].reshape(-1, 3).mean(0).round()
        hints.append(Hint(x, y, tuple(int(c) for c in color), PATCH))
    return hints


def psnr(result: np.ndarray, rgb: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((result.astype(np.float64) - rgb) ** 2)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.photo_grid", description=__doc__.splitlines()[0])
    parser.add_argument("photos", help="a folder of photos no model trained on")
    parser.add_argument("--ckpt", default="reference")
    parser.add_argument("--sizes", default="256,192,160", help="grid sizes to compare (comma-separated)")
    parser.add_argument("--points", default="0,10,100,500", help="hint counts (comma-separated)")
    parser.add_argument("--limit", type=int, default=None, help="the first N photos (sorted by name)")
    args = parser.parse_args(argv)
    try:
        sizes, counts = ([int(v) for v in option.split(",")] for option in (args.sizes, args.points))
        model = load_model(args.ckpt)
        colorizers = {size: Colorizer(model, size) for size in sizes}
        names = sorted(os.listdir(args.photos))[:args.limit]
    except (CheckpointError, ValueError, OSError) as error:
        print(f"photo_grid: error: {error}", file=sys.stderr)
        return 2
    scores = {(size, n): [] for size in sizes for n in counts}
    seconds = {size: [] for size in sizes}
    for index, name in enumerate(tqdm(names, desc="photo_grid", unit="photo")):
        path = os.path.join(args.photos, name)
        truth = np.asarray(load_rgb(path))
        for size, colorizer in colorizers.items():
            photo = colorizer.load_photo(path)
            for n in counts:
                hints = photo_hints(truth, n, seed=1000 * index + n)  # the same hints at every size
                start = time.perf_counter()
                result = colorizer.colorize(photo, hints)
                seconds[size].append(time.perf_counter() - start)
                scores[(size, n)].append(psnr(result, truth))
    print(f"{len(names)} photos from {args.photos}; PSNR (dB) of the full-resolution result")
    print("| grid | " + " | ".join(f"{n} pts" for n in counts) + " | ms per photo (median) |")
    print("|---|" + "---|" * (len(counts) + 1))
    for size in sizes:
        cells = " | ".join(f"{np.mean(scores[(size, n)]):.2f}" for n in counts)
        print(f"| {size} | {cells} | {1000 * np.median(seconds[size]):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
