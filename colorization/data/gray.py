"""How gray a photo is: the measures behind the gray filter, without FiftyOne (the catalogue stores them).

Two rules, `data.gray_filter`:
- `paper`, the paper's released code: a and b are each cut into 32 bins over [-128, 128) (8 LAB units wide);
  a photo is dropped when at least `max_gray_fraction` (0.7) of its pixels fall in a-bins 14-18 *and* at
  least that fraction in b-bins 14-18, i.e. a and b both within [-16, 24). It drops weakly coloured photos as
  well as gray ones: about 3 in 4 COCO photos.
- `chroma`: a photo is dropped when more than `max_gray_fraction` of its pixels have chroma
  sqrt(a^2 + b^2) below `gray_threshold` (LAB units): only photos that are (nearly) gray, about 1 in 10.
"""

import torch

from colorization.transforms.bins import ab_to_bins
from colorization.transforms.color import rgb_to_lab

GRAY_FILTERS = ("paper", "chroma")
PAPER_BINS = 32  # per channel, over PAPER_RANGE
PAPER_RANGE = (-128.0, 128.0)
PAPER_GRAY_BINS = (14, 18)  # inclusive: the bins around a = b = 0 that count as gray


def _ab(rgb: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab(rgb[None])[0, 1:]


def _chroma_fraction(ab: torch.Tensor, threshold: float) -> float:
    return (ab.norm(dim=0) < threshold).float().mean().item()


def _bin_fractions(ab: torch.Tensor) -> tuple[float, float]:
    bins = ab_to_bins(ab, PAPER_BINS, *PAPER_RANGE)
    inside = (bins >= PAPER_GRAY_BINS[0]) & (bins <= PAPER_GRAY_BINS[1])
    a, b = inside.flatten(1).float().mean(dim=1).tolist()
    return a, b


def gray_measures(rgb: torch.Tensor, threshold: float) -> dict[str, float]:
    """Every measure either rule needs, from one photo (3, H, W): what the catalogue stores per sample."""
    ab = _ab(rgb)
    a, b = _bin_fractions(ab)
    return {"gray_fraction": _chroma_fraction(ab, threshold), "gray_a_fraction": a, "gray_b_fraction": b}


def is_gray(measures: dict, rule: str, max_gray_fraction: float) -> bool:
    """Whether a photo with these `gray_measures` is dropped by `rule` (`paper` or `chroma`)."""
    if rule == "paper":
        return measures["gray_a_fraction"] >= max_gray_fraction and measures["gray_b_fraction"] >= max_gray_fraction
    if rule == "chroma":
        return measures["gray_fraction"] > max_gray_fraction
    raise ValueError(f"data.gray_filter={rule!r}: expected one of {', '.join(GRAY_FILTERS)}")
