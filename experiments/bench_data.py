"""Data path figures: decode+resize images/s per core (a naive PIL loader, the project's decoder and the resize
cache the data module reads by default) and the device transforms' ms per batch (Kornia's LAB against the
project's). The `data` and `transforms` sections of `python -m experiments.bench`."""

import glob
import os
import time
from functools import partial
from unittest import mock

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader

from colorization.data.decode import MAX_PIXELS, CachedImages, ImageFiles, build_cache, collate, decode_image
from colorization.transforms import PaperHints, lab_to_rgb, prepare_batch, rgb_to_lab
from experiments.bench_util import interleaved, table

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "coco-mini")


def photo_paths(directory: str, limit: int = 160) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, "**", "*.jpg"), recursive=True))[:limit]


def naive_decode(path: str, size: int) -> torch.Tensor:
    """What a first loader does: open, convert, resize the full-resolution image."""
    image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def loader_rate(dataset, workers: int = 1, batch_size: int = 16, passes: int = 1) -> float:
    """Steady images/s of a DataLoader over `dataset` read `passes` times (the workers' start-up excluded)."""
    loader = DataLoader(ConcatDataset([dataset] * passes), batch_size=batch_size, num_workers=workers,
                        collate_fn=collate)
    batches = iter(loader)
    next(batches)
    start, count = time.perf_counter(), 0
    for batch in batches:
        count += len(batch["rgb"])
    return count / (time.perf_counter() - start)


def data_figures(paths: list[str], size: int, cache_dir: str, repeats: int = 3) -> dict:
    """Images/s on one core: naive, project decoder, cache build (one-time) and cache rows; and per DataLoader
    worker, decoding against reading the cache."""
    start = time.perf_counter()
    cache = CachedImages(build_cache(cache_dir, paths, size, "crop", MAX_PIXELS, num_workers=0))
    build_rate = len(paths) / (time.perf_counter() - start)
    seconds = interleaved({
        "naive": lambda: [naive_decode(p, size) for p in paths],
        "decoder": lambda: [decode_image(p, size) for p in paths],
        "cache": lambda: [cache[i] for i in range(len(paths))],
    }, repeats)
    rates = {name: len(paths) / s for name, s in seconds.items()}
    rates["loader decoder"] = loader_rate(ImageFiles(paths, size), passes=2)
    rates["loader cache"] = max(loader_rate(cache, passes=20) for _ in range(repeats))
    rates["cache build"] = build_rate
    return {**rates, "photos": len(paths), "size": size}


def data_report(rates: dict, n: int, size: int) -> list[str]:
    naive = rates["naive"]
    rows = [
        ["naive PIL: open, convert, resize (one process)", rates["naive"], 1.0],
        ["project decoder `decode_image` (one process; `data.cache_resized=false`)", rates["decoder"],
         rates["decoder"] / naive],
        ["resize cache: one-time build in `prepare_data` (decode + write)", rates["cache build"],
         rates["cache build"] / naive],
        ["resize cache: rows read by `CachedImages` (one process)", rates["cache"], rates["cache"] / naive],
        ["DataLoader, 1 worker, decoding (`data.cache_resized=false`)", rates["loader decoder"],
         rates["loader decoder"] / naive],
        ["**DataLoader, 1 worker, resize cache (the default)**", rates["loader cache"], rates["loader cache"] / naive],
    ]
    return [f"{n} COCO JPEGs (about 640x480) to {size} px, images/s on one core, best of 3 interleaved runs.", "",
            *table(["loader", "images/s", "x naive"], rows)]


def transforms_figures(size: int = 256, batch_size: int = 32, repeats: int = 3) -> dict:
    """ms per batch of Kornia's and the project's rgb_to_lab and lab_to_rgb, and of prepare_batch with each."""
    generator = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=generator)
    lab = rgb_to_lab(rgb)
    sampler = PaperHints()

    def prepare_with_kornia():
        with mock.patch("colorization.transforms.hints.rgb_to_lab", partial(rgb_to_lab, impl="kornia")):
            prepare_batch(rgb, sampler)

    seconds = interleaved({
        "lab kornia": lambda: rgb_to_lab(rgb, impl="kornia"),
        "lab fast": lambda: rgb_to_lab(rgb),
        "rgb kornia": lambda: lab_to_rgb(lab, impl="kornia"),
        "rgb fast": lambda: lab_to_rgb(lab),
        "prepare kornia": prepare_with_kornia,
        "prepare fast": lambda: prepare_batch(rgb, sampler),
    }, repeats)
    return {name: s * 1000 for name, s in seconds.items()}

