"""The resize cache: every photo of a split decoded and resized once (in `prepare_data`), then read as rows.

Reading a row back costs a small fraction of decoding and resizing a JPEG, so the workers stop being the
bottleneck (`make bench` measures both: BENCHMARKS.md).
One `resized-<key>.npy` of shape (N, 3, S, S) per file list, keyed by the paths with their sizes and
modification times, the image size, the resize policy and the pixel limit: a changed photo or setting is a
new key, never a stale row. Rows that failed to decode keep their message in `resized-<key>.json`, so
bad files are still reported by the data module. The pixels come from `decode_image`, the one decoder.

The `.json` also holds the `.npy`'s length and CRC-32, checked once per process when the cache is opened: a
truncated, overwritten or half-written cache (or an unreadable `.json`) is reported in one line and rebuilt,
never read. Every file here is written aside and renamed into place, and a cache is built under a lock, so
two runs at once build it once.
"""

import hashlib
import json
import logging
import os
import zlib

import numpy as np
import torch
from filelock import FileLock
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from colorization.atomic import atomic_path, remove_stale_partials
from colorization.data.decode import ImageFiles

log = logging.getLogger(__name__)
_verified: set[tuple] = set()  # the caches this process has checked, with the stat they had then


def file_stat(path: str) -> list[int] | None:
    """[size, modification time in ns], what says a file changed; None when it is gone."""
    try:
        stat = os.stat(path)
        return [stat.st_size, stat.st_mtime_ns]
    except OSError:  # gone: a different key, so the loader falls back to decoding and reports the file
        return None


def cache_base(cache_dir: str, paths: list[str], size: int, resize: str, max_pixels: int) -> str:
    """The cache's path without extension, derived from everything that decides its pixels."""
    key = json.dumps([[p, file_stat(p)] for p in paths] + [size, resize, max_pixels])
    return os.path.join(cache_dir, f"resized-{hashlib.sha1(key.encode()).hexdigest()[:16]}")


def _crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fault(base: str) -> str | None:
    """Why the cache at `base` cannot be used (None: it can): a missing, unreadable or outdated `.json`, or an
    `.npy` whose length or CRC-32 differs from what the `.json` recorded when it was built."""
    try:
        with open(base + ".json") as f:
            meta = json.load(f)
        expected_bytes, expected_crc = meta["npy_bytes"], meta["npy_crc32"]
    except FileNotFoundError:
        return "its index file is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return "its index file is unreadable or from an older version"
    try:
        stat = os.stat(base + ".npy")
    except FileNotFoundError:
        return "its rows file is missing"
    seen = (base, stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if seen in _verified:
        return None
    if stat.st_size != expected_bytes:
        return f"its rows file has {stat.st_size} bytes, {expected_bytes} were written (cut short or overwritten)"
    if _crc32(base + ".npy") != expected_crc:
        return "its rows file fails its checksum (overwritten or corrupted on disk)"
    _verified.add(seen)
    return None


def find_cache(cache_dir: str, paths: list[str], size: int, resize: str, max_pixels: int) -> str | None:
    """The cache for these files and settings when one exists and passes its checks; a broken one is logged."""
    base = cache_base(cache_dir, paths, size, resize, max_pixels)
    return base if _usable(base, "decoding the photos instead") else None


def _usable(base: str, otherwise: str) -> bool:
    """Whether a cache exists at `base` and passes its checks; one log line for a broken one."""
    if not (os.path.exists(base + ".npy") or os.path.exists(base + ".json")):
        return False
    fault = _fault(base)
    if fault:
        log.warning(f"resize cache {base}.npy: {fault}; {otherwise}")
    return fault is None


def _as_list(items: list) -> list:
    return items


def build_cache(cache_dir: str, paths: list[str], size: int, resize: str, max_pixels: int,
                num_workers: int = 0, desc: str = "resize cache") -> str:
    """Decode `paths` into the cache once (in `num_workers` processes); reused when it exists and is sound."""
    base = cache_base(cache_dir, paths, size, resize, max_pixels)
    os.makedirs(cache_dir, exist_ok=True)
    with FileLock(base + ".lock"):  # a second run waits, then reuses what the first built
        if _usable(base, "rebuilding it"):
            return base
        for part in (".npy", ".json"):  # what a killed build left
            remove_stale_partials(base + part)
        _write_cache(base, paths, size, resize, max_pixels, num_workers, desc)
    return base


def _write_cache(base, paths, size, resize, max_pixels, num_workers, desc):
    # renamed into place in reverse order, the .json last: an .npy without its .json is never used
    with atomic_path(base + ".json") as index, atomic_path(base + ".npy") as npy:
        rows = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(len(paths), 3, size, size))
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
        with open(index, "w") as f:
            json.dump({"paths": paths, "errors": errors, "npy_bytes": os.path.getsize(npy),
                       "npy_crc32": _crc32(npy)}, f)


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


def load_counts(path: str, shape: tuple) -> torch.Tensor | None:
    """A tensor saved with `torch.save` (the bin counts), or None when it is missing or unusable (cut short,
    overwritten, another shape, not finite): the caller recomputes it."""
    if not os.path.exists(path):
        return None
    try:
        counts = torch.load(path, weights_only=True)
        if isinstance(counts, torch.Tensor) and counts.shape == shape and counts.isfinite().all():
            return counts
    except Exception:  # whatever torch raises on a damaged file; the file is replaced either way
        pass
    log.warning(f"{path}: unreadable or damaged; recomputing it")
    return None
