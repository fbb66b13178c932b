"""RGB <-> LAB (Kornia) and the network's input encoding.

Kornia's LAB: L in 0..100, a about -86..98, b about -108..95 over sRGB.
"""

import kornia.color
import torch

L_SCALE = 50.0  # L / 50 - 1 -> [-1, 1]
AB_SCALE = 110.0  # ab / 110 -> about [-1, 1]


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB, uint8 or float in [0, 1] -> (B, 3, H, W) float LAB."""
    if rgb.dtype == torch.uint8:
        rgb = rgb.float() / 255.0
    return kornia.color.rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) LAB -> RGB float in [0, 1] (clipped: out-of-gamut ab is possible)."""
    return kornia.color.lab_to_rgb(lab, clip=True)


def merge_l_ab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> RGB in [0, 1]."""
    return lab_to_rgb(torch.cat([L, ab.to(L.dtype)], dim=1))


def make_input(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The network's 4 channels [L, a_hint, b_hint, mask], each roughly in [-1, 1].

    The mask channel is what tells "hint of colour (0, 0)" from "no hint"; the paper's code dropped it.
    """
    return torch.cat([L / L_SCALE - 1.0, hint_ab * mask / AB_SCALE, mask], dim=1)


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler and Suesstrunk (2003) colourfulness per image, RGB in [0, 1] -> (B,), on the 0..255 scale."""
    r, g, b = (rgb * 255.0).unbind(dim=1)
    rg, yb = r - g, 0.5 * (r + g) - b
    std = torch.sqrt(rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False))
    mean = torch.sqrt(rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2)
    return std + 0.3 * mean
