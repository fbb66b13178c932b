"""Gray baseline: predict no colour at all.

ab = 0 is the neutral (achromatic) axis of LAB, so this baseline returns the
grayscale input unchanged. It is the floor every colorization method should
beat. The hints are deliberately ignored: the baseline measures what an
evaluation metric gives for "no colour", not how well hints are used.
"""

from __future__ import annotations

import torch


def gray(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return ab = 0 everywhere, shape (B, 2, H, W), on L's device and dtype.

    `hint_ab` and `mask` are accepted only so that the call shape matches the
    model's; their values are ignored.
    """
    B, _, H, W = L.shape
    return L.new_zeros((B, 2, H, W))
