"""Path -> uint8 RGB tensor at the training size, for the loaders' workers. Decoding tricks live here and only here.

`decode_image` is the one decoder; `ImageFiles` decodes a split's files, and a file that fails to decode is
counted and skipped, not raised (`collate`). The resize cache (`build_cache`, in the data module's
`prepare_data`) decodes and resizes every photo of a split once; its rows are then read by `CachedImages`, which
costs a small fraction of decoding and resizing a JPEG, so the workers stop being the bottleneck (`make bench`
measures both: BENCHMARKS.md).

One `resized-<key>.npy` of shape (N, 3, S, S) per file list, keyed by the paths with their sizes and
modification times, the image size, the resize policy and the pixel limit: a changed photo or setting is a
new key, never a stale row. Rows that failed to decode keep their message in `resized-<key>.json`, so
bad files are still reported by the data module.
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
from PIL import Image, ImageOps
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from colorization.atomic import atomic_path, remove_stale_partials

log = logging.getLogger(__name__)
MAX_PIXELS = 178_956_970  # Pillow's decompression-bomb limit, made an error rather than a warning
MIN_SIDE = 16
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


class DecodeError(Exception):
    """A file that is not a usable photo; the message names the file and the reason."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode (gray, palette, alpha, CMYK, 16-bit) -> 8-bit RGB; transparency composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit gray: keep the top 8 bits, not a clip
        array = np.asarray(image, dtype=np.uint32)
        return Image.fromarray((array >> 8 if array.max() > 255 else array).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _resize(image: Image.Image, size: int, policy: str) -> Image.Image:
    if policy == "stretch":  # the paper: straight to size x size, aspect ratio lost
        return image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    if policy == "crop":  # the centre square, scaled to size (shorter side to size, centre crop)
        width, height = image.size
        side = min(width, height)
        box = ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)
        return image.resize((size, size), Image.BILINEAR, box=box, reducing_gap=2.0)
    raise ValueError(f"data.resize={policy!r}: expected crop or stretch")


def load_rgb(path: str, max_pixels: int = MAX_PIXELS, draft_size: int | None = None) -> Image.Image:
    """Decode `path` to an 8-bit RGB Pillow image, upright (EXIF), or raise DecodeError naming the file.

    Full resolution unless `draft_size` is given: JPEGs are then decoded at a reduced scale (Pillow's draft
    mode: DCT scaling by 1/2, 1/4 or 1/8) that is still at least `draft_size` on each side, so most of the
    decoding work for large photos is skipped.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise DecodeError(f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels}")
            if min(width, height) < MIN_SIDE:
                raise DecodeError(f"{path}: {width}x{height} is smaller than {MIN_SIDE} px")
            if draft_size and image.format == "JPEG" and image.mode in ("RGB", "L"):
                image.draft(image.mode, (draft_size, draft_size))
            return _to_rgb(ImageOps.exif_transpose(image))
    except DecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = str(error).replace(f" '{path}'", "").strip()  # Pillow's own words, without the path again
        raise DecodeError(f"{path}: {reason or type(error).__name__}") from None


def decode_image(path: str, size: int, resize: str = "crop", max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Decode `path` to a (3, size, size) uint8 tensor, or raise DecodeError naming the file and reason."""
    rgb = _resize(load_rgb(path, max_pixels, draft_size=size), size, resize)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


class ImageFiles(torch.utils.data.Dataset):
    """Plain file paths -> {"rgb", "index"}; a file that fails to decode yields {"error", "index"} instead."""

    def __init__(self, paths: list[str], size: int, resize: str = "crop", max_pixels: int = MAX_PIXELS):
        self.paths, self.size, self.resize, self.max_pixels = list(paths), size, resize, max_pixels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        try:
            return {"rgb": decode_image(self.paths[index], self.size, self.resize, self.max_pixels),
                    "index": index}
        except DecodeError as error:
            return {"error": str(error), "index": index}



# ---------------------------------------------------------------- the resize cache

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


def collate(items: list[dict]) -> dict:
    """Stack the good images; carry the bad files' messages along to be reported once, not raised."""
    good = [item for item in items if "error" not in item]
    return {
        "rgb": torch.stack([item["rgb"] for item in good]) if good else torch.empty(0, 3, 0, 0, dtype=torch.uint8),
        "index": torch.tensor([item["index"] for item in good], dtype=torch.long),
        "errors": [item["error"] for item in items if "error" in item],
    }
