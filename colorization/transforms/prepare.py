"""One batch of RGB photos -> the batch the system trains and evaluates on (`Batch`), made here and only here."""

from typing import TypedDict

import torch

from colorization.transforms.bins import ab_to_bins
from colorization.transforms.color import rgb_to_lab
from colorization.transforms.hints import fixed_hints


class Batch(TypedDict):
    """What the system reads, for B photos of H x W pixels, on the device (the system encodes the network input)."""

    rgb: torch.Tensor  # (B, 3, H, W) uint8: the photos
    L: torch.Tensor  # (B, 1, H, W) float, 0..100: lightness, what the user gives
    ab: torch.Tensor  # (B, 2, H, W) float, about -110..110: the true colour
    hint_ab: torch.Tensor  # (B, 2, H, W): the true ab where hinted, 0 elsewhere
    mask: torch.Tensor  # (B, 1, H, W): 1 on hinted pixels
    target: torch.Tensor  # (B, 2, H, W) long: the a and b bins of the true colour, the classes to predict


def prepare_batch(rgb: torch.Tensor, sampler, n_bins: int, ab_range=(-128.0, 128.0),
                  seeds: torch.Tensor | None = None) -> Batch:
    """rgb (B, 3, H, W) uint8 -> Batch. With `seeds` the hints are fixed per photo (validation, test, evaluation:
    `derive_seed`); without, they are fresh each call (training)."""
    lab = rgb_to_lab(rgb)
    L, ab = lab[:, :1], lab[:, 1:]
    hint_ab, mask = fixed_hints(sampler, ab, seeds) if seeds is not None else sampler(ab)
    return Batch(rgb=rgb, L=L, ab=ab, hint_ab=hint_ab, mask=mask, target=ab_to_bins(ab, n_bins, *ab_range))
