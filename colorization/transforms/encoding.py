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

INPUTS = {"paper": 4, "fill": 6, "fade": 7, "edge": 7, "levin": 7}  # input encoding -> the network's input channels
OUTPUTS = ("absolute", "residual")  # what the network's logits are over: ab, or the correction to the fill
FILLED = ("fill", "fade", "edge", "levin")  # the inputs that hold a fill for output=residual to correct


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
    the network starts from its own prior, not from the colour of the one hint a user gave first. edge: as fade,
    the hints spread along the photo and held back by its edges (`edge_aware_fill`) instead of by push-pull.
    levin: as fade, the hints spread by Levin et al.'s propagation (`levin_fill`).
    """
    channels = [L / L_SCALE - 1.0, hint_ab * mask / AB_SCALE, mask]
    if encoding == "fill":
        channels.append(propagate_hints(hint_ab, mask) / AB_SCALE)
    elif encoding in ("fade", "edge", "levin"):
        spread = {"edge": edge_aware_fill, "levin": levin_fill}
        fill = propagate_hints(hint_ab, mask) if encoding == "fade" else spread[encoding](L, hint_ab, mask)
        confidence = hint_confidence(mask)
        channels += [fill * confidence / AB_SCALE, confidence]
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


EDGE_SIGMA_SPACE = 150.0  # pixels: how far a hint's colour reaches along a flat region
EDGE_SIGMA_RANGE = 8.0  # L units (0-100): a step in lightness this large counts as much as sigma_space pixels


SCAN_BLOCK = 4  # pixels per block of `_linear_recurrence`
MIN_LOG_WEIGHT = -20.0  # a weight below e^-20 counts as e^-20: within a block exp(+-80) stays inside float32


def _shifted_cumsum(x: torch.Tensor) -> torch.Tensor:
    """x.cumsum(-1) as log2(n) shifted additions (Hillis and Steele)."""
    shift = 1
    while shift < x.shape[-1]:
        x = x + F.pad(x[..., :-shift], (shift, 0))
        shift *= 2
    return x


def _block_cumsum(x: torch.Tensor) -> torch.Tensor:
    """x.cumsum(-1) over a last dimension of SCAN_BLOCK. On a GPU by shifted additions: CUDA's scan of rows this
    short made the edge fill 14x slower and half of a training step (experiments/results/gpu_h200.md); on the CPU
    torch.cumsum is the faster of the two."""
    return x.cumsum(-1) if x.device.type == "cpu" else _shifted_cumsum(x)


def _linear_recurrence(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """y[i] = inputs[i] + weight[i] * y[i-1] along the last dimension (y[-1] = 0); inputs (..., c, n), weight
    (..., n) in [0, 1]. Inside blocks of SCAN_BLOCK pixels a cumulative sum (y[j] = P[j] * sum over k <= j of
    inputs[k] / P[k], P the product of the weights so far); the blocks' ends carried by the same recurrence one
    level up: a few operations per level instead of one per pixel."""
    n = inputs.shape[-1]
    blocks = -(-n // SCAN_BLOCK)
    pad = blocks * SCAN_BLOCK - n
    decay = F.pad(weight, (0, pad), value=1.0).clamp_min(math.exp(MIN_LOG_WEIGHT)).log()
    decay = _block_cumsum(decay.unflatten(-1, (blocks, SCAN_BLOCK))).unsqueeze(-3)  # (..., 1, blocks, block)
    carried = decay.exp()  # how much of a value survives from the block's start to each pixel
    local = carried * _block_cumsum((-decay).exp() * F.pad(inputs, (0, pad)).unflatten(-1, (blocks, SCAN_BLOCK)))
    if blocks > 1:  # each block as if it started from 0, plus what the previous block's end carries into it
        ends = _linear_recurrence(local[..., -1], carried[..., 0, :, -1])  # (..., c, blocks)
        local = local + carried * F.pad(ends[..., :-1], (1, 0)).unsqueeze(-1)
    return local.flatten(-2)[..., :n]


def _recursive_filter(signal: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """The domain transform's causal then anti-causal pass along `dim` (3: rows, 2: columns) of signal
    (B, c, H, W), weight (B, 1, H, W): weight[i] couples pixel i to pixel i-1."""
    order = (0, 2, 1, 3) if dim == 3 else (0, 3, 1, 2)  # (B, lines, c, pixels along them)
    signal, weight = signal.permute(order).contiguous(), weight.permute(order)[:, :, 0].contiguous()
    forward = F.pad(weight[..., 1:], (1, 0))  # y[i] = (1 - w[i]) x[i] + w[i] y[i-1], y[0] = x[0]
    signal = _linear_recurrence(signal * (1.0 - forward).unsqueeze(-2), forward)
    backward = F.pad(weight[..., 1:], (0, 1)).flip(-1)  # the same from the other end: w[i+1] couples i to i+1
    signal = _linear_recurrence(signal.flip(-1) * (1.0 - backward).unsqueeze(-2), backward).flip(-1)
    return signal.permute(order if dim == 3 else (0, 2, 3, 1))


def edge_aware_fill(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor, sigma_space: float = EDGE_SIGMA_SPACE,
                    sigma_range: float = EDGE_SIGMA_RANGE, iterations: int = 3) -> torch.Tensor:
    """Every pixel's ab from the hints that reach it along the photo without crossing its edges: the hints and their
    mask smoothed by the domain-transform recursive filter guided by lightness (Gastal and Oliveira 2011, three
    horizontal and vertical iterations), then divided (normalized convolution); where no hint reaches, push-pull.
    Computed at half resolution and resized back (a quarter of the work, and it scored as well as full resolution);
    hinted pixels keep their own ab. Hand-written: Kornia's guided filter of the push-pull fill, the library
    alternative, hardly changed push-pull's scores (README, "Hints and the network's input")."""
    weight = F.avg_pool2d(mask.float(), 2, ceil_mode=True)  # the share of each half-resolution pixel hinted
    hints = F.avg_pool2d(hint_ab.float() * mask, 2, ceil_mode=True)
    lightness = F.avg_pool2d(L.float(), 2, ceil_mode=True)
    distance = [F.pad(1.0 + sigma_space / sigma_range * lightness.diff(dim=dim).abs(), pad)  # the domain transform
                for dim, pad in ((3, (1, 0, 0, 0)), (2, (0, 0, 1, 0)))]
    smoothed = torch.cat([hints, weight], dim=1)
    for i in range(iterations):  # each iteration's sigma as in the paper, so that together they make sigma_space
        sigma = sigma_space * math.sqrt(3.0) * 2 ** (iterations - i - 1) / math.sqrt(4**iterations - 1)
        for dim, steps in zip((3, 2), distance):
            smoothed = _recursive_filter(smoothed, torch.exp(-math.sqrt(2.0) / sigma * steps), dim)
    reach = 1e-6  # below this share of a hint's weight the fill falls back to push-pull
    fallback = propagate_hints(hints / weight.clamp_min(1e-6), weight)
    fill = (smoothed[:, :2] + reach * fallback) / (smoothed[:, 2:] + reach)
    fill = F.interpolate(fill, size=L.shape[-2:], mode="bilinear", align_corners=False)
    return keep_hints(fill, hint_ab, mask).to(hint_ab.dtype)


# Levin et al.'s weights (baselines/levin.py derives them): 2 sigma_r^2 = 0.6 x the 3x3 window's variance of L / 100,
# floored so that the most similar neighbour keeps a relative weight of at least 0.01, and by a tiny constant.
LEVIN_VARIANCE_SCALE = 0.6
LEVIN_MIN_RELATIVE_WEIGHT = 0.01
LEVIN_MIN_TWO_SIGMA_SQ = 2e-6
LEVIN_SWEEPS = 40  # Jacobi sweeps per pyramid level, chosen on held-out training photos
LEVIN_COARSEST = 16  # pixels: the pyramid's coarsest level, solved exactly, is at most this long a side
NEIGHBOURS_3X3 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]  # the 3x3 window's 8


def _shifted(padded: torch.Tensor) -> list[torch.Tensor]:
    """The 8 neighbours of every pixel (views, in NEIGHBOURS_3X3 order) of a (..., H + 2, W + 2) padded tensor."""
    h, w = padded.shape[-2] - 2, padded.shape[-1] - 2
    return [padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in NEIGHBOURS_3X3]


def levin_weights(L: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) lightness, 0..100 -> (8, B, 1, H, W) float64: Levin et al.'s weight of each pixel's 8 neighbours
    (0 outside the photo), summing to 1 per pixel: large between pixels of similar lightness."""
    Y = L.double() / 100.0
    valid = torch.stack(_shifted(F.pad(torch.ones_like(Y), (1, 1, 1, 1)))) > 0
    neighbours = torch.stack(_shifted(F.pad(Y, (1, 1, 1, 1), mode="replicate")))
    count = 1 + valid.sum(0)
    mean = (Y + torch.where(valid, neighbours, 0.0).sum(0)) / count
    variance = ((Y - mean) ** 2 + torch.where(valid, (neighbours - mean) ** 2, 0.0).sum(0)) / count
    d2 = (neighbours - Y) ** 2
    closest = torch.where(valid, d2, torch.inf).amin(0)
    two_sigma_sq = torch.maximum(LEVIN_VARIANCE_SCALE * variance, closest / -math.log(LEVIN_MIN_RELATIVE_WEIGHT))
    weights = torch.where(valid, torch.exp(-d2 / two_sigma_sq.clamp_min(LEVIN_MIN_TWO_SIGMA_SQ)), 0.0)
    return weights / weights.sum(0)


def _levin_solve(lightness: torch.Tensor, hints: torch.Tensor, hinted: torch.Tensor) -> torch.Tensor:
    """Levin et al.'s system solved exactly on a small image (a few hundred pixels), batched: a dense
    (B, HW, HW) matrix. An image without hints gets 0."""
    b, _, h, w = lightness.shape
    weights = levin_weights(lightness).flatten(2).permute(1, 2, 0)  # (B, HW, 8)
    index = F.pad(torch.arange(h * w, device=hints.device, dtype=torch.float64).view(1, 1, h, w), (1, 1, 1, 1),
                  mode="replicate")
    columns = torch.stack(_shifted(index)).flatten(1).T.long().expand(b, -1, -1)  # (B, HW, 8) each neighbour
    eye = torch.eye(h * w, device=hints.device, dtype=torch.float64).expand(b, -1, -1)
    system = eye.scatter_add(2, columns, -weights)  # I - W
    fixed = hinted.flatten(1)[:, :, None] | ~hinted.flatten(1).any(1)[:, None, None]  # hinted rows; no hints: all
    system = torch.where(fixed, eye, system)
    known = torch.where(hinted, hints, 0.0).flatten(2).transpose(1, 2).double()  # (B, HW, 2)
    return torch.linalg.solve(system, known).transpose(1, 2).reshape_as(hints).to(hints.dtype)


def levin_fill(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor, sweeps: int = LEVIN_SWEEPS,
               coarsest: int = LEVIN_COARSEST) -> torch.Tensor:
    """Every pixel's ab by Levin et al.'s propagation (each unhinted pixel the weighted mean of its 8 neighbours,
    `levin_weights`; hinted pixels fixed), solved approximately coarse to fine: exactly on a pyramid level at most
    `coarsest` pixels a side, then Jacobi sweeps of the system at each finer level, starting from the coarser
    one's result, so that colour travels far at the coarse levels and settles along the edges at the fine ones.
    Computed at half resolution and resized back, as the edge fill (the same scores, a quarter of the finest
    level's work). baselines/levin.py solves it exactly at full size (0.7 s a photo on the CPU); this scored
    higher, batched. 0 (gray) without hints."""
    levels = [tuple(F.avg_pool2d(t, 2, ceil_mode=True) for t in (L.float(), hint_ab.float() * mask, mask.float()))]
    while max(levels[-1][0].shape[-2:]) > coarsest:
        levels.append(tuple(F.avg_pool2d(t, 2, ceil_mode=True) for t in levels[-1]))
    fill = None
    for lightness, total, weight in reversed(levels):
        hinted, hints = weight > 0, total / weight.clamp_min(1e-12)
        if fill is None:
            fill = _levin_solve(lightness, hints, hinted)
            continue
        fill = F.interpolate(fill, size=hints.shape[-2:], mode="bilinear", align_corners=False)
        weights = levin_weights(lightness).float()
        for _ in range(sweeps):
            average = torch.zeros_like(fill)
            for w, neighbour in zip(weights, _shifted(F.pad(fill, (1, 1, 1, 1), mode="replicate"))):
                average.addcmul_(w, neighbour)
            fill = torch.where(hinted, hints, average)
    fill = F.interpolate(fill, size=L.shape[-2:], mode="bilinear", align_corners=False)
    return keep_hints(fill, hint_ab, mask).to(hint_ab.dtype)


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


def keep_hints(ab: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The predicted ab (B, 2, H, W) with every hinted pixel set to its hint: a user's colour stays where it was
    given, as Levin et al.'s constraints and the fills keep it (experiments/results/reference_model.md)."""
    return torch.where(mask > 0, hint_ab.to(ab.dtype), ab)


def fill_shift(x: torch.Tensor, output: str) -> torch.Tensor | None:
    """What the network's distribution is moved by, in ab (B, 2, H, W): the fill in its input `x` for
    output=residual (`make_input`'s input=fill, fade or edge, channels 4 and 5), None for output=absolute."""
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


def shift_distribution(logits: torch.Tensor, shift_ab: torch.Tensor, low: float = -128.0,
                       high: float = 128.0) -> torch.Tensor:
    """Logits (B, 2, n, H, W) of a distribution over ab offsets -> logits (log-probabilities, float32) of the
    same distribution moved by shift_ab (B, 2, H, W) ab units: each bin's mass split linearly between the two bins
    the shift lands it between, mass beyond the range kept in the end bins. Its mean moves by exactly shift_ab
    inside the range; a shift of 0 leaves the distribution as it is."""
    n = logits.shape[2]
    probs = logits.float().softmax(dim=2)
    steps = (shift_ab.float() * (n / (high - low))).unsqueeze(2)  # in bins, (B, 2, 1, H, W)
    whole = steps.floor()
    first = torch.arange(n, device=logits.device).view(1, 1, n, 1, 1) + whole.long()
    # clamped after adding 1: mass moved below or above the range stays whole in the end bin
    first, second, frac = first.clamp(0, n - 1), (first + 1).clamp(0, n - 1), steps - whole
    moved = torch.zeros_like(probs).scatter_add_(2, first, probs * (1.0 - frac)).scatter_add_(2, second, probs * frac)
    return moved.clamp_min(1e-12).log()


def shifted_mean(logits: torch.Tensor, shift_ab: torch.Tensor, low: float = -128.0,
                 high: float = 128.0) -> torch.Tensor:
    """The mean (ab, B x 2 x H x W) of `shift_distribution(logits, shift_ab)` without building it: each bin's
    centre moved by the shift and held inside the end bins' centres (where the split leaves mass beyond the
    range), weighted by the bin's probability. A third of the work: the expectation decoding of output=residual."""
    centres = bin_centers(logits.shape[2], low, high, logits.device)
    # (B, H, W, 2, n): the layout a channels-last network gives them in, where softmax needs no copy
    probs = logits.permute(0, 3, 4, 1, 2).softmax(dim=-1, dtype=torch.float32)
    moved = (centres + shift_ab.float().permute(0, 2, 3, 1).unsqueeze(-1)).clamp_(centres[0], centres[-1])
    return moved.mul_(probs).sum(dim=-1).permute(0, 3, 1, 2)
