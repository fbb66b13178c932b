"""Inference: the one path from lightness and hints to colour that `colorize`, the app and evaluate.py all use.

`InferenceModel.predict` runs a trained network on (L, hint_ab, mask) and decodes its ab (hinted pixels keep their
hint). `Colorizer` does it for your own photos at full resolution: the network sees the whole photo at about the
area the checkpoint records (or the caller's size), aspect kept (`network_grid`); the ab it predicts there is
upsampled (bilinear) onto the photo's own lightness, so the result keeps the input's size and sharpness. Hints are
given in the photo's pixel coordinates and mapped onto the grid.
Imports neither Lightning nor FiftyOne, so the command line and the app start quickly.
"""

import copy
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from colorization.checkpoint import load_weights, read_checkpoint, trained_image_size
from colorization.data.decode import MAX_PIXELS, load_rgb
from colorization.hint_file import Hint, check_inside, to_hex
from colorization.models import SIZE_MULTIPLE, build_backbone, check_image_size, fold_batchnorm
from colorization.transforms import bins_to_ab, decode_logits, merge_l_ab, rgb_to_lab, rgb_to_lightness
from colorization.transforms.encoding import (
    INPUTS,
    absolute_logits,
    fill_shift,
    keep_hints,
    make_input,
    shift_distribution,
    shifted_mean,
)
from colorization.weights import REFERENCE

DEFAULT_SIZE = 256  # the network's input size when the checkpoint does not say what it was trained at


def bf16_native(device: torch.device) -> bool:
    """Whether this device computes bfloat16 natively (CPUs with AMX / AVX512-BF16), where inference in it pays."""
    return device.type == "cpu" and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()


@dataclass
class Prediction:
    """A network's colours: the decoded ab, and the distribution over ab bins behind them, built on demand (for
    every pixel it costs more than the network on a CPU; evaluation's accuracy and the app's suggestions at one
    point ask for it)."""

    ab: torch.Tensor  # (B, 2, H, W)
    net_logits: torch.Tensor  # (B, 2, n, H, W) as the network gives them (bfloat16 where it ran in it)
    shift_ab: torch.Tensor | None  # (B, 2, H, W): the fill they correct (output=residual); None for absolute
    ab_range: tuple[float, float]

    def logits(self, rows: slice = slice(None), cols: slice = slice(None)) -> torch.Tensor:
        """Logits over ab bins (B, 2, n, h, w) of the grid cells [rows, cols] (all by default)."""
        logits = self.net_logits[..., rows, cols].float()
        if self.shift_ab is None:
            return logits
        return shift_distribution(logits, self.shift_ab[..., rows, cols], *self.ab_range)

    def cpu(self) -> "Prediction":
        return Prediction(self.ab.cpu(), self.net_logits.cpu(), None if self.shift_ab is None else self.shift_ab.cpu(),
                          self.ab_range)


class InferenceModel:
    """A trained network in eval mode, BatchNorm folded into its convolutions, and how to read its output."""

    def __init__(self, net: torch.nn.Module, n_bins: int = 32, ab_range=(-128.0, 128.0),
                 input_encoding: str = "paper", decode: str = "annealed_mean", temperature: float = 0.38,
                 channels_last: bool = True, image_size: int | None = None, bf16: bool = True,
                 output: str = "absolute"):
        self.net = fold_batchnorm(net.eval())
        if channels_last:  # the weights in the layout the convolutions take them in: not converted at every call
            self.net.to(memory_format=torch.channels_last)
        self.n_bins, self.ab_range, self.input_encoding = n_bins, tuple(ab_range), input_encoding
        self.decode, self.temperature, self.channels_last = decode, temperature, channels_last
        self.output = output  # absolute, or residual: corrections to the fill (`absolute_logits`)
        self.image_size = image_size  # what it was trained at, where the checkpoint says
        self.bf16 = bf16  # bfloat16 where the device computes it natively (ab within about 0.5 LAB units)
        self._bf16_net = None  # the network's bfloat16 copy, made at the first prediction that uses it

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> "InferenceModel":
        """From `read_checkpoint`'s dictionary; CheckpointError when the weights do not fit their network."""
        h = checkpoint["hyper_parameters"]
        encoding = h.get("input_encoding", "paper")
        with torch.device("meta"):  # no random initialisation to throw away: every weight is the checkpoint's
            net = build_backbone(**h["net"], in_channels=INPUTS[encoding], n_bins=h.get("n_bins", 32))
        weights = {k[len("net."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
        load_weights(net, weights, checkpoint, assign=True)
        net.float()  # the shipped weights are stored in float16
        keys = ("n_bins", "ab_range", "decode", "temperature", "channels_last", "output")
        return cls(net, input_encoding=encoding, image_size=trained_image_size(checkpoint),
                   **{k: h[k] for k in keys if k in h})

    def to(self, device) -> "InferenceModel":
        self.net.to(device)
        self._bf16_net = None
        return self

    def _dtype(self, device: torch.device) -> torch.dtype:
        return torch.bfloat16 if self.bf16 and bf16_native(device) else torch.float32

    def _network(self, device: torch.device) -> torch.nn.Module:
        """The network in the dtype it runs in on `device`: a bfloat16 copy where that is native, so that autocast
        does not cast the weights again at every call (BENCHMARKS.md); the float32 one stays for bf16 = False."""
        if self._dtype(device) == torch.float32:
            return self.net
        if self._bf16_net is None:
            self._bf16_net = copy.deepcopy(self.net).to(torch.bfloat16)  # keeps the weights' layout
        return self._bf16_net

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def predict(self, L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> Prediction:
        """(L (B, 1, H, W), hint_ab (B, 2, H, W), mask (B, 1, H, W)) -> its `Prediction`, on the model's device: the
        decoded ab, each hinted pixel keeping its hint (`keep_hints`)."""
        L, hint_ab, mask = (t.to(self.device) for t in (L, hint_ab, mask))
        x = make_input(L, hint_ab, mask, self.input_encoding)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = self._dtype(x.device)
        with torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):  # ops kept in float32
            net_logits = self._network(x.device)(x.to(dtype))
        shift = fill_shift(x, self.output)
        if shift is not None and self.decode == "expectation":
            ab = shifted_mean(net_logits, shift, *self.ab_range)  # without building the distribution
        else:
            ab = decode_logits(absolute_logits(net_logits.float(), x, self.output, *self.ab_range), self.decode,
                               self.temperature, *self.ab_range)
        return Prediction(keep_hints(ab, hint_ab, mask), net_logits, shift, self.ab_range)


def load_model(path: str | None = REFERENCE, device="cpu") -> InferenceModel:
    """A trained model from a checkpoint (default: the shipped reference model); CheckpointError otherwise."""
    return InferenceModel.from_checkpoint(read_checkpoint(path)).to(device)


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


class Colorizer:
    """A trained model and the size it runs at: photos + hints -> colour at full resolution."""

    def __init__(self, model: InferenceModel, size: int | None = None):
        self.model = model
        self.size = size if size is not None else model.image_size or DEFAULT_SIZE  # yours, else the checkpoint's
        check_image_size(self.size, "--size")

    @classmethod
    def from_checkpoint(cls, path: str = REFERENCE, size: int | None = None, device: str = "cpu") -> "Colorizer":
        """Raises CheckpointError for files that are not ours."""
        return cls(load_model(path, device), size)

    def load_photo(self, path: str, max_pixels: int = MAX_PIXELS) -> Photo:
        """Any photo Pillow reads (gray or colour: only its L is used); DecodeError names the file."""
        rgb = torch.from_numpy(np.array(load_rgb(path, max_pixels))).permute(2, 0, 1).unsqueeze(0)
        L = rgb_to_lightness(rgb)
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

    def predict(self, photo: Photo, hints: list[Hint]) -> Prediction:
        """The prediction on the photo's network grid, on the CPU; the app reads its distribution for its
        suggestions without a second forward pass."""
        return self.model.predict(photo.L_net, *self.hint_grid(photo, hints)).cpu()

    @torch.no_grad()
    def render(self, L: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
        """Network-grid ab upsampled (bilinear) onto lightness L (1, 1, H, W) -> uint8 (H, W, 3)."""
        ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)
        rgb = merge_l_ab(L, ab)[0].mul_(255.0).round_().clamp_(0, 255)  # a new tensor: in place
        return rgb.to(torch.uint8).permute(1, 2, 0).numpy()

    def colorize(self, photo: Photo, hints: list[Hint] = ()) -> np.ndarray:
        """The full-resolution result, uint8 (H, W, 3)."""
        check_inside(hints, photo.width, photo.height)
        return self.render(photo.L, self.predict(photo, list(hints)).ab)

    def suggestions(self, photo: Photo, prediction: Prediction, x: int, y: int,
                    k: int = 6) -> list[tuple[str, float]]:
        """The k most likely colours at pixel (x, y): (hex at that pixel's L, probability), best first.

        The network predicts a and b independently, so the joint is the outer product of the two marginals.
        """
        row, col = photo.grid_cell(x, y)
        p_a, p_b = prediction.logits(slice(row, row + 1), slice(col, col + 1))[0, :, :, 0, 0].softmax(dim=-1)
        n = p_a.numel()
        joint = (p_a[:, None] * p_b[None, :]).flatten()
        top = joint.topk(min(k, joint.numel()))
        centres = bins_to_ab(torch.stack([top.indices // n, top.indices % n]), n, *self.model.ab_range)
        L = photo.L[0, 0, y, x].expand(1, 1, 1, len(top.indices))
        rgb = merge_l_ab(L, centres.view(1, 2, 1, -1))[0, :, 0].T  # (k, 3)
        rgb = (rgb * 255).round().clamp(0, 255).to(torch.uint8).tolist()
        return [(to_hex(c), float(p)) for c, p in zip(rgb, top.values)]
