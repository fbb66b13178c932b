"""RGB <-> LAB (Kornia's conventions) and the network's input encoding.

Kornia's LAB: L in 0..100, a about -86..98, b about -108..95 over sRGB.
"""

import cv2
import kornia.color
import torch

from colorization.transforms.bins import shift_distribution
from colorization.transforms.hints import hint_confidence, propagate_hints

L_SCALE = 50.0  # L / 50 - 1 -> [-1, 1]
AB_SCALE = 110.0  # ab / 110 -> about [-1, 1]

# Kornia's sRGB (D65) -> XYZ matrix with each row divided by the white point: X/Xn, Y/Yn, Z/Zn in one product.
_RGB_TO_XYZN = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                             [0.019334, 0.119193, 0.950227]]) / torch.tensor([[0.95047], [1.0], [1.08883]])
# (fx, fy, fz) -> (L, a, b) = (116 fy - 16, 500 (fx - fy), 200 (fy - fz)), also one product.
_F_TO_LAB = torch.tensor([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])
_L_OFFSET = torch.tensor([[-16.0], [0.0], [0.0]])
_EPSILON = 0.008856


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb > 0.04045, ((rgb + 0.055).clamp(min=0.0) / 1.055).pow(2.4), rgb / 12.92)


_LINEAR_LUT = _srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0).float()  # per uint8 value


def _linear(rgb: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """sRGB -> linear RGB. uint8 through a 256-entry table (OpenCV's LUT on the CPU, where torch indexing is
    slow): 256 pows instead of one per pixel."""
    if rgb.dtype != torch.uint8:
        return _srgb_to_linear(rgb.to(dtype))
    if rgb.device.type == "cpu":
        table = _LINEAR_LUT.numpy()
        return torch.from_numpy(cv2.LUT(rgb.contiguous().numpy().reshape(-1, 1), table)).view(rgb.shape).to(dtype)
    return _LINEAR_LUT.to(device=rgb.device, dtype=dtype)[rgb.int()]


def rgb_to_lab(rgb: torch.Tensor, impl: str = "fast") -> torch.Tensor:
    """(*, 3, H, W) RGB, uint8 or float in [0, 1] -> (*, 3, H, W) float LAB.

    impl="fast" (default) equals Kornia's rgb_to_lab within 1e-3 (tests/test_perf_equivalence.py) in less time
    on the CPU (BENCHMARKS.md): a table for the sRGB curve, two matrix products, few passes over memory;
    impl="kornia" calls Kornia itself.
    """
    if impl == "kornia" or rgb.requires_grad:  # the fast path works in place, which autograd cannot follow
        return kornia.color.rgb_to_lab(rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb)
    if impl != "fast":
        raise ValueError(f"rgb_to_lab impl={impl!r}: expected fast or kornia")
    dtype = torch.float64 if rgb.dtype == torch.float64 else torch.float32  # half precision computes in float32
    *lead, channels, h, w = rgb.shape
    if channels != 3:
        raise ValueError(f"rgb_to_lab: expected (*, 3, H, W), got {tuple(rgb.shape)}")
    xyz = torch.matmul(_RGB_TO_XYZN.to(rgb.device, dtype), _linear(rgb, dtype).reshape(-1, 3, h * w))
    above = xyz > _EPSILON
    f = xyz.clamp_min(_EPSILON).log_().mul_(1.0 / 3.0).exp_()  # cube root: exp(log / 3), cheaper than pow
    f = torch.where(above, f, xyz.mul_(7.787).add_(4.0 / 29.0), out=f)
    lab = torch.matmul(_F_TO_LAB.to(rgb.device, dtype), f).add_(_L_OFFSET.to(rgb.device, dtype))
    return lab.view(*lead, 3, h, w).to(rgb.dtype if rgb.is_floating_point() else torch.float32)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) LAB -> RGB float in [0, 1] (clipped: out-of-gamut ab is possible)."""
    return kornia.color.lab_to_rgb(lab, clip=True)


def merge_l_ab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> RGB in [0, 1]."""
    return lab_to_rgb(torch.cat([L, ab.to(L.dtype)], dim=1))


INPUTS = {"paper": 4, "fill": 6, "fade": 7}  # input encoding -> the network's input channels
OUTPUTS = ("absolute", "residual")  # what the network's logits are over: ab, or the correction to the fill
FILLED = ("fill", "fade")  # the inputs that hold a fill for output=residual to correct


def make_input(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor, encoding: str = "paper") -> torch.Tensor:
    """The network's input, each channel roughly in [-1, 1].

    paper: [L, a_hint, b_hint, mask]; the mask channel is what tells "hint of colour (0, 0)" from "no hint"
    (the paper's code dropped it). fill: the same plus the hints propagated to every pixel (`propagate_hints`),
    so the network learns to correct a fill instead of learning to spread the hints from scratch. fade: the fill
    faded to gray with the distance to the hints (`hint_confidence`), and that confidence: far from every hint
    the network starts from its own prior, not from the colour of the one hint a user gave first.
    """
    channels = [L / L_SCALE - 1.0, hint_ab * mask / AB_SCALE, mask]
    if encoding == "fill":
        channels.append(propagate_hints(hint_ab, mask) / AB_SCALE)
    elif encoding == "fade":
        confidence = hint_confidence(mask)
        channels += [propagate_hints(hint_ab, mask) * confidence / AB_SCALE, confidence]
    elif encoding != "paper":
        raise ValueError(f"input={encoding!r}: expected one of {', '.join(INPUTS)}")
    return torch.cat(channels, dim=1)


def check_encoding(encoding: str, output: str):
    """ValueError unless `input=encoding output=output` is a network this project can build."""
    if encoding not in INPUTS:
        raise ValueError(f"input={encoding}: expected one of {', '.join(INPUTS)}")
    if output not in OUTPUTS or (output == "residual" and encoding not in FILLED):
        raise ValueError(f"output={output}: expected absolute, or residual with input={' or input='.join(FILLED)} "
                         "(the network corrects the fill it is given)")


def absolute_logits(logits: torch.Tensor, x: torch.Tensor, output: str, low: float = -128.0,
                    high: float = 128.0) -> torch.Tensor:
    """The network's logits over ab. output=residual: the network predicts the correction to the fill in its
    input `x` (`make_input`'s input=fill or fade, channels 4 and 5), so its distribution is moved by the fill (`shift_distribution`): a
    network that predicts "no correction" scores what the fill scores, and without hints (fill 0) nothing moves."""
    if output == "absolute":
        return logits
    if output != "residual":
        raise ValueError(f"output={output!r}: expected one of {', '.join(OUTPUTS)}")
    return shift_distribution(logits, x[:, 4:6].float() * AB_SCALE, low, high)  # channels 4, 5: the fill


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler and Suesstrunk (2003) colourfulness per image, RGB in [0, 1] -> (B,), on the 0..255 scale."""
    r, g, b = (rgb * 255.0).unbind(dim=1)
    rg, yb = r - g, 0.5 * (r + g) - b
    std = torch.sqrt(rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False))
    mean = torch.sqrt(rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2)
    return std + 0.3 * mean
