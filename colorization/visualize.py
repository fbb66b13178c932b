"""Image grids people look at: gray input with hint dots, prediction, truth."""

import numpy as np
import torch

from colorization.transforms import merge_l_ab


def hint_overlay(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The gray input with each hinted pixel painted in its hint colour, ringed in white for visibility."""
    gray = merge_l_ab(L, torch.zeros_like(hint_ab))
    hinted = merge_l_ab(torch.full_like(L, 60.0), hint_ab)
    ring = (torch.nn.functional.max_pool2d(mask, 5, 1, 2) - mask).clamp(0, 1)
    return gray * (1 - mask - ring) + hinted * mask + ring


def panel(L, hint_ab, mask, pred_ab, true_ab) -> np.ndarray:
    """(B, ...) tensors -> one uint8 (B*H, 3*W, 3) image: a row per photo, columns input | prediction | truth."""
    columns = [hint_overlay(L, hint_ab, mask), merge_l_ab(L, pred_ab), merge_l_ab(L, true_ab)]
    rows = torch.cat(columns, dim=3)  # (B, 3, H, 3W): the columns side by side
    grid = torch.cat(list(rows), dim=1)  # (3, B*H, 3W): the photos one below the other
    return (grid.permute(1, 2, 0).clamp(0, 1).float().cpu().numpy() * 255).round().astype(np.uint8)
