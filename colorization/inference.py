"""Colorize your own photos at full resolution; shared by the `colorize` command and the app.

The network sees the whole photo at about its training area, aspect kept (`network_grid`); the ab it predicts there is
upsampled (bilinear) onto the photo's own lightness, so the result keeps the input's size and sharpness.
Hints are given in the photo's pixel coordinates and mapped onto the network's grid.
"""

import json
import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorization.data.decode import MAX_PIXELS, load_rgb
from colorization.models import SIZE_MULTIPLE
from colorization.system import ColorizationSystem, load_system, resolve_checkpoint
from colorization.transforms import bins_to_ab, merge_l_ab, rgb_to_lab
from colorization.weights import REFERENCE

DEFAULT_SIZE = 256  # the network's input size when the checkpoint does not say what it was trained at
HINT_KEYS = {"x", "y", "color", "size"}


def to_hex(color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


class HintError(ValueError):
    """A hint file or a hint that cannot be used; the message names the file and the hint."""


@dataclass(frozen=True)
class Hint:
    """A size x size square of colour centred on pixel (x, y) of the original photo."""

    x: int
    y: int
    color: tuple[int, int, int]
    size: int = 1

    @property
    def hex(self) -> str:
        return to_hex(self.color)

    def to_json(self) -> dict:
        return {"x": self.x, "y": self.y, "color": self.hex, "size": self.size}


def parse_color(value) -> tuple[int, int, int]:
    """'#rrggbb', '#rgb' or [r, g, b] (0..255) -> (r, g, b); ValueError otherwise."""
    if isinstance(value, str) and value.startswith("#") and len(value) in (4, 7):
        digits = value[1:] if len(value) == 7 else "".join(c * 2 for c in value[1:])
        try:
            return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            pass
    elif (isinstance(value, list | tuple) and len(value) == 3
          and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)):
        return tuple(value)
    raise ValueError(f"invalid colour {value!r} (expected '#rrggbb' or [r, g, b] with 0..255)")


def _integer(item: dict, key: str, default=None) -> int:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # value != value: NaN
        raise ValueError(f"{key!r} must be a number, got {value!r}")
    return int(np.floor(value))  # a fractional coordinate lies in the pixel it falls into


def parse_hints(data, source: str = "hints") -> list[Hint]:
    """The JSON structure `[{"x", "y", "color", "size"?}, ...]` -> hints; HintError naming `source`."""
    if not isinstance(data, list):
        raise HintError(f"{source}: expected a JSON list of hints, got {type(data).__name__}")
    hints = []
    for number, item in enumerate(data, 1):
        try:
            if not isinstance(item, dict):
                raise ValueError(f"expected an object, got {type(item).__name__}")
            if missing := {"x", "y", "color"} - item.keys():
                raise ValueError(f"missing {', '.join(sorted(missing))}")
            if unknown := item.keys() - HINT_KEYS:
                raise ValueError(f"unknown key {', '.join(sorted(unknown))} (expected {', '.join(sorted(HINT_KEYS))})")
            hint = Hint(_integer(item, "x"), _integer(item, "y"), parse_color(item["color"]),
                        _integer(item, "size", 1))
            if hint.size < 1:
                raise ValueError(f"size must be at least 1, got {hint.size}")
        except ValueError as error:
            raise HintError(f"{source}: hint {number}: {error}") from None
        hints.append(hint)
    return hints


def read_hints(path: str) -> list[Hint]:
    """A hint file (the format the app exports) -> hints; HintError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise HintError(f"{path}: no such hint file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HintError(f"{path}: not a readable JSON hint file ({error})") from None
    return parse_hints(data, path)


def check_inside(hints: list[Hint], width: int, height: int, source: str = "hints"):
    for number, hint in enumerate(hints, 1):
        if not (0 <= hint.x < width and 0 <= hint.y < height):
            raise HintError(f"{source}: hint {number} at ({hint.x}, {hint.y}) is outside the {width}x{height} image")


def hints_json(hints: list[Hint]) -> str:
    return json.dumps([hint.to_json() for hint in hints], indent=1)


def _grid_span(centre: int, size: int, full: int, grid: int) -> slice:
    """The grid cells whose centres lie in original pixels [centre - (size-1)//2, +size), clipped to the photo;
    a patch smaller than a cell hints the one cell that holds its centre pixel."""
    start = centre - (size - 1) // 2
    stop = min(full, start + size)
    first = math.ceil(max(0, start) * grid / full - 0.5)  # cell j's centre is at (j + 0.5) * full / grid
    end = math.ceil(stop * grid / full - 0.5)
    if end <= first:
        cell = min(grid - 1, centre * grid // full)
        return slice(cell, cell + 1)
    return slice(first, end)


@dataclass
class Photo:
    """A photo's lightness at full resolution and at the network's size (kornia's L, 0..100)."""

    L: torch.Tensor  # (1, 1, H, W)
    L_net: torch.Tensor  # (1, 1, h, w): the whole photo at the network's grid, its aspect kept (`network_grid`)
    name: str

    @property
    def width(self) -> int:
        return self.L.shape[-1]

    @property
    def height(self) -> int:
        return self.L.shape[-2]

    def grid_cell(self, x: int, y: int) -> tuple[int, int]:
        """The network grid cell (row, column) that holds original pixel (x, y)."""
        rows, cols = self.L_net.shape[-2:]
        return min(rows - 1, y * rows // self.height), min(cols - 1, x * cols // self.width)


def network_grid(height: int, width: int, size: int) -> tuple[int, int]:
    """The grid the network colours a height x width photo at: about size x size pixels in all, the photo's aspect
    kept (the networks are fully convolutional, and training crops, never stretches), sides multiples of 16."""
    scale = size / math.sqrt(height * width)
    return tuple(max(SIZE_MULTIPLE, round(side * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE) for side in (height, width))


def resize_L(L: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(L, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


def checkpoint_image_size(path: str) -> int | None:
    """The training image size recorded with the data module's hyper-parameters, if there is one."""
    try:  # mmap: only the small dictionaries are read, not the weights again
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # an older non-zip checkpoint: still usable, just without the recorded size
        return None
    size = (checkpoint.get("datamodule_hyper_parameters") or {}).get("image_size")
    return int(size) if isinstance(size, int) else None


class Colorizer:
    """A trained system and the square size it runs at: photos + hints -> colour at full resolution."""

    def __init__(self, system: ColorizationSystem, size: int = DEFAULT_SIZE, device: str = "cpu"):
        if size < 16 or size % 16:
            raise ValueError(f"--size={size}: the network needs a multiple of 16 (at least 16)")
        self.system, self.size, self.device = system.for_inference().to(device), size, device

    @classmethod
    def from_checkpoint(cls, path: str = REFERENCE, size: int | None = None, device: str = "cpu") -> "Colorizer":
        """Raises CheckpointError for files that are not ours. The checkpoint's training size wins over `size`."""
        path = resolve_checkpoint(path)
        return cls(load_system(path), checkpoint_image_size(path) or size or DEFAULT_SIZE, device)

    def load_photo(self, path: str, max_pixels: int = MAX_PIXELS) -> Photo:
        """Any photo Pillow reads (gray or colour: only its L is used); DecodeError names the file."""
        rgb = torch.from_numpy(np.array(load_rgb(path, max_pixels))).permute(2, 0, 1).unsqueeze(0)
        L = rgb_to_lab(rgb)[:, :1]
        return Photo(L, resize_L(L, *network_grid(*L.shape[-2:], self.size)), os.path.basename(path))

    def hint_grid(self, photo: Photo, hints: list[Hint]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hints at original resolution -> (hint_ab (1, 2, h, w), mask (1, 1, h, w)) on the photo's network grid;
        later hints paint over."""
        grid_h, grid_w = photo.L_net.shape[-2:]
        hint_ab, mask = torch.zeros(1, 2, grid_h, grid_w), torch.zeros(1, 1, grid_h, grid_w)
        if not hints:
            return hint_ab, mask
        colors = torch.tensor([hint.color for hint in hints], dtype=torch.uint8).T.reshape(1, 3, len(hints), 1)
        colors_ab = rgb_to_lab(colors)[0, 1:, :, 0]  # (2, K): each hint colour's a and b
        for k, hint in enumerate(hints):
            rows = _grid_span(hint.y, hint.size, photo.height, grid_h)
            cols = _grid_span(hint.x, hint.size, photo.width, grid_w)
            hint_ab[0, :, rows, cols] = colors_ab[:, k, None, None]
            mask[0, :, rows, cols] = 1.0
        return hint_ab, mask

    @torch.no_grad()
    def predict(self, photo: Photo, hints: list[Hint]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ab (1, 2, S, S), logits (1, 2, n, S, S)) on the network grid.

        This is `system.colorize` (`infer`, then decode) kept in two steps so the app can also read the
        per-pixel colour distribution for its suggestions without a second forward pass.
        """
        hint_ab, mask = self.hint_grid(photo, hints)
        inputs = [t.to(self.device) for t in (photo.L_net, hint_ab, mask)]
        logits = self.system.infer(self.system.encode(*inputs))  # bfloat16 where the CPU computes it natively
        return self.system.decode(logits).cpu(), logits.cpu()

    @torch.no_grad()
    def render(self, L: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
        """Network-grid ab upsampled (bilinear) onto lightness L (1, 1, H, W) -> uint8 (H, W, 3)."""
        ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)
        rgb = merge_l_ab(L, ab)[0].permute(1, 2, 0)
        return rgb.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()

    def colorize(self, photo: Photo, hints: list[Hint] = ()) -> np.ndarray:
        """The full-resolution result, uint8 (H, W, 3)."""
        check_inside(hints, photo.width, photo.height)
        return self.render(photo.L, self.predict(photo, list(hints))[0])

    def suggestions(self, photo: Photo, logits: torch.Tensor, x: int, y: int, k: int = 6) -> list[tuple[str, float]]:
        """The k most likely colours at pixel (x, y): (hex at that pixel's L, probability), best first.

        The network predicts a and b independently, so the joint is the outer product of the two marginals.
        """
        row, col = photo.grid_cell(x, y)
        p_a, p_b = logits[0, :, :, row, col].float().softmax(dim=-1)  # (n,), (n,)
        n = p_a.numel()
        joint = (p_a[:, None] * p_b[None, :]).flatten()
        top = joint.topk(min(k, joint.numel()))
        centres = bins_to_ab(torch.stack([top.indices // n, top.indices % n]), n, *self.system.hparams.ab_range)
        L = photo.L[0, 0, y, x].expand(1, 1, 1, len(top.indices))
        rgb = merge_l_ab(L, centres.view(1, 2, 1, -1))[0, :, 0].T  # (k, 3)
        rgb = (rgb * 255).round().clamp(0, 255).to(torch.uint8).tolist()
        return [(to_hex(c), float(p)) for c, p in zip(rgb, top.values)]


# PNG at zlib level 1 (OpenCV's default): a 12 MP photo writes in 0.6 s instead of Pillow's level-6 2.2 s, for a
# file 23% larger (measured here on a real photo).
SAVE_OPTIONS = {"JPEG": {"quality": 95}, "PNG": {"compress_level": 1}}


def writable_format(path: str) -> str | None:
    """The Pillow format that writes files named like `path` (by extension), or None."""
    image_format = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    return image_format if image_format in Image.SAVE else None


def save_image(rgb: np.ndarray, path: str):
    """Write atomically (a temporary file in the same folder, then a rename): never a half-written photo."""
    image_format = writable_format(path)
    if image_format is None:
        raise ValueError(f"{path}: cannot write images with extension {os.path.splitext(path)[1] or '(none)'!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(rgb).save(f, format=image_format, **SAVE_OPTIONS.get(image_format, {}))
        os.chmod(partial, 0o644)  # mkstemp's 0600 would make the result private
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise
