"""The network's input and output conventions: what `input=` feeds it, what `output=` its logits are over.

Read from the system (and `InferenceModel`): `make_input` before the network, `absolute_logits` after it
(`shifted_mean` where only the expectation of a residual output is needed).
"""

import math

import torch
import torch.nn.functional as F

from colorization.transforms.bins import bin_centers

L_SCALE = 50.0  # L / 50 - 1 -> [-1, 1]
AB_SCALE = 110.0  # ab / 110 -> about [-1, 1]

INPUTS = {"paper": 4, "fill": 6, "fade": 7}  # input encoding -> the network's input channels
OUTPUTS = ("absolute", "residual")  # what the network's logits are over: ab, or the correction to the fill
FILLED = ("fill", "fade")  # the inputs that hold a fill for output=residual to correct


def check_encoding(encoding: str, output: str):
    """ValueError unless `input=encoding output=output` is a network this project can build."""
    if encoding not in INPUTS:
        raise ValueError(f"input={encoding}: expected one of {', '.join(INPUTS)}")
    if output not in OUTPUTS or (output == "residual" and encoding not in FILLED):
        raise ValueError(f"output={output}: expected absolute, or residual with input={' or input='.join(FILLED)} "
                         "(the network corrects the fill it is given)")


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


def propagate_hints(hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Every pixel's ab from its nearby hints, by push-pull (a mean pyramid filled back from the coarse end):
    hinted pixels keep their ab, the rest take the mean of the hints in the smallest enclosing pyramid cell,
    blended bilinearly across levels; 0 (gray) without hints. A cheap, smooth nearest-hint fill for the network
    to correct rather than to rediscover (input=fill)."""
    pyramid = [(hint_ab * mask, mask)]
    while min(pyramid[-1][1].shape[-2:]) > 1:
        total, weight = pyramid[-1]
        pyramid.append((F.avg_pool2d(total, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True)))
    fill = None
    for level, (total, weight) in enumerate(reversed(pyramid)):
        mean = total / weight.clamp_min(1e-12)
        if fill is None:
            fill = mean
            continue
        coarse = F.interpolate(fill, size=mean.shape[-2:], mode="bilinear", align_corners=False)
        # a cell holding at least one hinted pixel speaks for itself; an empty one takes the coarser fill
        cells = 4 ** (len(pyramid) - 1 - level)
        own = (weight * cells).clamp(max=1.0)
        fill = own * mean + (1.0 - own) * coarse
    return fill


FADE_SIGMA = 96.0  # pixels: a hint's own colour reaches about a photo's half width at 256 px and fades beyond


def hint_confidence(mask: torch.Tensor, sigma: float = FADE_SIGMA) -> torch.Tensor:
    """How close each pixel is to a hint: exp(-d^2 / (2 sigma^2)) with d the distance in pixels to the nearest
    hinted pixel (1 on hints, 0 without hints). A Gaussian max-convolution, separable into rows and columns,
    computed at a quarter of the resolution (the confidence is smooth) and resized back."""
    h, w = mask.shape[-2:]
    coarse = F.max_pool2d(mask.float(), 4, ceil_mode=True)
    radius = math.ceil(3 * sigma / 4)
    kernel = torch.exp(-(torch.arange(-radius, radius + 1, device=mask.device) * 4.0) ** 2 / (2 * sigma**2))
    for dim in (3, 2):  # rows, then columns: max over the product set of exp(-dx^2) exp(-dy^2) separates
        pad = (radius, radius, 0, 0) if dim == 3 else (0, 0, radius, radius)
        coarse = (F.pad(coarse, pad).unfold(dim, 2 * radius + 1, 1) * kernel).amax(-1)
    fine = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return torch.maximum(fine, mask.float()).clamp(max=1.0).to(mask.dtype)


def fill_shift(x: torch.Tensor, output: str) -> torch.Tensor | None:
    """What the network's distribution is moved by, in ab (B, 2, H, W): the fill in its input `x` for
    output=residual (`make_input`'s input=fill or fade, channels 4 and 5), None for output=absolute."""
    if output == "absolute":
        return None
    if output != "residual":
        raise ValueError(f"output={output!r}: expected one of {', '.join(OUTPUTS)}")
    return x[:, 4:6].float() * AB_SCALE


def absolute_logits(logits: torch.Tensor, x: torch.Tensor, output: str, low: float = -128.0,
                    high: float = 128.0) -> torch.Tensor:
    """The network's logits over ab. output=residual: the network predicts the correction to the fill in its
    input `x`, so its distribution is moved by the fill (`shift_distribution`): a network that predicts "no
    correction" scores what the fill scores, and without hints (fill 0) nothing moves."""
    shift = fill_shift(x, output)
    return logits if shift is None else shift_distribution(logits, shift, low, high)


def _moved_bins(n: int, shift_ab: torch.Tensor, low: float, high: float):
    """Where `shift_distribution` puts each bin's mass: (first, second, frac), the two target bins
    (B, 2, n, H, W) and the share of the second (B, 2, 1, H, W)."""
    steps = (shift_ab.float() * (n / (high - low))).unsqueeze(2)  # in bins
    whole = steps.floor()
    first = torch.arange(n, device=shift_ab.device).view(1, 1, n, 1, 1) + whole.long()
    # clamped after adding 1: mass moved below or above the range stays whole in the end bin
    return first.clamp(0, n - 1), (first + 1).clamp(0, n - 1), steps - whole


def shift_distribution(logits: torch.Tensor, shift_ab: torch.Tensor, low: float = -128.0,
                       high: float = 128.0) -> torch.Tensor:
    """Logits (B, 2, n, H, W) of a distribution over ab offsets -> logits (log-probabilities, float32) of the
    same distribution moved by shift_ab (B, 2, H, W) ab units: each bin's mass split linearly between the two bins
    the shift lands it between, mass beyond the range kept in the end bins. Its mean moves by exactly shift_ab
    inside the range; a shift of 0 leaves the distribution as it is."""
    probs = logits.float().softmax(dim=2)
    first, second, frac = _moved_bins(logits.shape[2], shift_ab, low, high)
    moved = torch.zeros_like(probs).scatter_add_(2, first, probs * (1.0 - frac)).scatter_add_(2, second, probs * frac)
    return moved.clamp_min(1e-12).log()


def shifted_mean(logits: torch.Tensor, shift_ab: torch.Tensor, low: float = -128.0,
                 high: float = 128.0) -> torch.Tensor:
    """The mean (ab, B x 2 x H x W) of `shift_distribution(logits, shift_ab)` without building it: each bin's
    centre moved by the shift and held inside the end bins' centres (where the split leaves mass beyond the
    range), weighted by the bin's probability. A third of the work: the expectation decoding of output=residual."""
    centres = bin_centers(logits.shape[2], low, high, logits.device)
    moved = (centres + shift_ab.float().unsqueeze(-1)).clamp_(centres[0], centres[-1])  # (B, 2, H, W, n)
    # bins last: the layout a channels-last network gives them in, where softmax needs no copy
    return (logits.movedim(2, -1).softmax(dim=-1, dtype=torch.float32) * moved).sum(dim=-1)
