"""One batch of RGB images -> everything the system needs: network input, targets, hints."""

import torch

from colorization.transforms.bins import ab_to_bins
from colorization.transforms.color import rgb_to_lab
from colorization.transforms.hints import fixed_hints


def prepare_batch(rgb: torch.Tensor, sampler, n_bins: int, ab_range=(-128.0, 128.0),
                  seeds: torch.Tensor | None = None) -> dict:
    """rgb (B, 3, H, W) uint8 -> dict of L, ab, hint_ab, mask and target bins (the system encodes the input).

    With `seeds` the hints are fixed per image (validation, test); without, they are fresh each call.
    """
    lab = rgb_to_lab(rgb)
    L, ab = lab[:, :1], lab[:, 1:]
    hint_ab, mask = fixed_hints(sampler, ab, seeds) if seeds is not None else sampler(ab)
    return {
        "L": L,
        "ab": ab,
        "hint_ab": hint_ab,
        "mask": mask,
        "target": ab_to_bins(ab, n_bins, *ab_range),
    }
