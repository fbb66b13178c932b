"""The resize cache: every photo of a split decoded and resized once (in `prepare_data`), then read as rows.

Decoding a 640x480 JPEG and resizing it costs about 4 ms on one core; reading its 256 px row back costs about
0.2 ms, so the workers stop being the bottleneck (experiments/bench.py measures both, BENCHMARKS.md).
One `resized-<key>.npy` of shape (N, 3, S, S) per file list, keyed by the paths with their sizes and
modification times, the image size, the resize policy and the pixel limit: a changed photo or setting is a
new key, never a stale row. Rows that failed to decode keep their message in `resized-<key>.json`, so
bad files are still reported by the data module. The pixels come from `decode_image`, the one decoder.
"""

import hashlib
import json
import os

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from colorization.data.decode import ImageFiles


def _stat(path: str):
    try:
        stat = os.stat(path)
        return [stat.st_size, stat.st_mtime_ns]
    except OSError:  # gone: a different key, so the loader falls back to decoding and reports the file
        return None


def cache_base(cache_dir: str, paths: list[str], size: int, resize: str, max_pixels: int) -> str:
    """The cache's path without extension, derived from everything that decides its pixels."""
    key = json.dumps([[p, _stat(p)] for p in paths] + [size, resize, max_pixels])
    return os.path.join(cache_dir, f"resized-{hashlib.sha1(key.encode()).hexdigest()[:16]}")


def find_cache(cache_dir: str, paths: list[str], size: int, resize: str, max_pixels: int) -> str | None:
    base = cache_base(cache_dir, paths, size, resize, max_pixels)
    return base if os.path.exists(base + ".npy") and os.path.exists(base + ".json") else None


def _as_list(items: list) -> list:
    return items


def build_cache(cache_dir: str, paths: list[str], size: int, resize: str, max_pixels: int,
                num_workers: int = 0, desc: str = "resize cache") -> str:
    """Decode `paths` into the cache once (in `num_workers` processes); reused when it already exists."""
    base = cache_base(cache_dir, paths, size, resize, max_pixels)
    if find_cache(cache_dir, paths, size, resize, max_pixels):
        return base
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{base}.{os.getpid()}.tmp"  # written aside and renamed, so a crash never leaves a half cache
    rows = np.lib.format.open_memmap(tmp + ".npy", mode="w+", dtype=np.uint8, shape=(len(paths), 3, size, size))
    errors = {}
    loader = DataLoader(ImageFiles(paths, size, resize, max_pixels), batch_size=64, num_workers=num_workers,
                        collate_fn=_as_list)
    with tqdm(total=len(paths), desc=desc, unit="photo", disable=not paths) as bar:
        for items in loader:
            for item in items:
                if "error" in item:
                    errors[item["index"]] = item["error"]
                else:
                    rows[item["index"]] = item["rgb"].numpy()
            bar.update(len(items))
    rows.flush()
    del rows
    with open(tmp + ".json", "w") as f:
        json.dump({"paths": paths, "errors": errors}, f)
    os.replace(tmp + ".npy", base + ".npy")
    os.replace(tmp + ".json", base + ".json")
    return base


class CachedImages(torch.utils.data.Dataset):
    """The rows of a resize cache, with ImageFiles' items: {"rgb", "index"} or {"error", "index"}.

    Rows are read with pread rather than through a memory map, so a worker's resident memory does not
    grow by the pages of every photo it has read over an epoch.
    """

    def __init__(self, base: str):
        self.base = base
        with open(base + ".json") as f:
            meta = json.load(f)
        self.errors = {int(k): v for k, v in meta["errors"].items()}
        header = np.load(base + ".npy", mmap_mode="r")  # only the header is read: the shape and data offset
        self.shape, self.offset = header.shape, header.offset
        self.row_bytes = int(np.prod(self.shape[1:]))
        self._fd = None

    def __len__(self):
        return self.shape[0]

    def __getstate__(self):  # each worker opens the file itself
        return {**self.__dict__, "_fd": None}

    def __getitem__(self, index: int) -> dict:
        if index in self.errors:
            return {"error": self.errors[index], "index": index}
        if self._fd is None:
            self._fd = os.open(self.base + ".npy", os.O_RDONLY)
        row = os.pread(self._fd, self.row_bytes, self.offset + index * self.row_bytes)
        return {"rgb": torch.frombuffer(bytearray(row), dtype=torch.uint8).view(self.shape[1:]), "index": index}
