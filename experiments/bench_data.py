"""Data path figures: decode+resize images/s per worker (naive PIL against the project's loader) and the
device transforms' ms per batch. Usage: python experiments/bench_data.py [--dir PHOTOS] [--size 256]"""

import argparse
import glob
import os
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from colorization.data.decode import ImageFiles, collate, decode_image
from colorization.transforms import PaperHints, prepare_batch

DEFAULT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "coco-mini", "train2017")


def naive_decode(path: str, size: int) -> torch.Tensor:
    """What a first loader does: open, convert, resize the full-resolution image."""
    image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image)).permute(2, 0, 1)


def images_per_second(decode, paths, size, repeats=2) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        for path in paths:
            decode(path, size)
    return repeats * len(paths) / (time.perf_counter() - start)


def loader_rate(paths, size, workers, batch_size=32) -> float:
    loader = DataLoader(ImageFiles(paths, size), batch_size=batch_size, num_workers=workers, collate_fn=collate)
    next(iter(loader))  # start-up of the workers is not the steady rate
    start, count = time.perf_counter(), 0
    for batch in loader:
        count += len(batch["rgb"])
    return count / (time.perf_counter() - start)


def transforms_ms(size, batch_size=32, repeats=10, device="cpu") -> float:
    rgb = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, device=device)
    sampler = PaperHints()
    prepare_batch(rgb, sampler, 32)
    start = time.perf_counter()
    for _ in range(repeats):
        prepare_batch(rgb, sampler, 32)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=DEFAULT_DIR, help="a folder of JPEGs (default: ../shared/data/coco-mini)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(args.dir, "*.jpg")))[:80]
    if not paths:
        raise SystemExit(f"--dir {args.dir}: no .jpg files")
    naive = images_per_second(naive_decode, paths, args.size)
    ours = images_per_second(lambda p, s: decode_image(p, s, "stretch"), paths, args.size)
    print(f"decode+resize to {args.size}px, one process, {len(paths)} JPEGs:")
    print(f"  naive PIL        {naive:7.1f} images/s")
    print(f"  project decoder  {ours:7.1f} images/s  ({ours / naive:.2f}x)")
    rate = loader_rate(paths * 2, args.size, args.workers)
    print(f"DataLoader, {args.workers} workers: {rate:.1f} images/s = {rate / args.workers:.1f} per worker")
    print(f"device transforms (LAB, paper hints, bins), batch 32 at {args.size}px on CPU: "
          f"{transforms_ms(args.size):.1f} ms/batch")


if __name__ == "__main__":
    main()
