"""a/b quantisation into `n` bins per channel, decoding back to ab, and the rebalancing class weights."""

import torch

DECODE_METHODS = ("argmax", "expectation", "annealed_mean")


def check_decode(method: str, temperature: float = 0.38) -> None:
    """ValueError naming the option unless `decode=method temperature=temperature` is a decoding."""
    if method not in DECODE_METHODS:
        raise ValueError(f"decode={method}: expected one of {', '.join(DECODE_METHODS)}")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature}: must be above 0")


def ab_to_bins(ab: torch.Tensor, n: int, low: float = -128.0, high: float = 128.0) -> torch.Tensor:
    """ab (B, 2, H, W) -> bin indices (B, 2, H, W) long, each channel in [0, n)."""
    scaled = (ab - low) * (n / (high - low))
    return scaled.floor().long().clamp_(0, n - 1)


def bin_centers(n: int, low: float = -128.0, high: float = 128.0, device=None) -> torch.Tensor:
    width = (high - low) / n
    return low + width * (torch.arange(n, device=device, dtype=torch.float32) + 0.5)


def bins_to_ab(bins: torch.Tensor, n: int, low: float = -128.0, high: float = 128.0) -> torch.Tensor:
    """Bin indices -> the bins' centre values (the inverse of `ab_to_bins` within half a bin)."""
    return bin_centers(n, low, high, bins.device)[bins]


def decode_logits(
    logits: torch.Tensor,
    method: str = "annealed_mean",
    temperature: float = 0.38,
    low: float = -128.0,
    high: float = 128.0,
) -> torch.Tensor:
    """Logits (B, 2, n, H, W) -> ab (B, 2, H, W).

    argmax: the most likely bin's centre; expectation: the mean under the softmax (desaturates
    multi-modal pixels); annealed_mean: the mean of the distribution sharpened by `temperature`
    (Zhang et al. 2016, T = 0.38), between the two.
    """
    n = logits.shape[2]
    if method == "argmax":
        return bins_to_ab(logits.argmax(dim=2), n, low, high)
    if method == "expectation":
        temperature = 1.0
    elif method != "annealed_mean":
        raise ValueError(f"decode={method!r}: expected one of {', '.join(DECODE_METHODS)}")
    return mean_ab(torch.softmax(logits.float() / temperature, dim=2), low, high)


def bin_accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Logits (B, 2, n, H, W), target bins (B, 2, H, W) -> (B, 2, H, W) 1.0 where the most likely bin is the target:
    the paper's accuracy (exact bin match, a and b pooled by averaging)."""
    if logits.dtype == torch.float32:  # "the target's logit is the largest", cheaper than argmax on CPUs
        return (logits.gather(2, target.unsqueeze(2)).squeeze(2) >= logits.amax(dim=2)).float()
    return (logits.argmax(dim=2) == target).float()  # in half precision ties are common: argmax settles them


def mean_ab(probs: torch.Tensor, low: float = -128.0, high: float = 128.0) -> torch.Tensor:
    """Bin probabilities (B, 2, n, H, W) -> the ab they average to (B, 2, H, W)."""
    n = probs.shape[2]
    return (probs * bin_centers(n, low, high, probs.device).view(1, 1, n, 1, 1)).sum(dim=2)


def bin_counts(bins: torch.Tensor, n: int) -> torch.Tensor:
    """Bin indices (B, 2, H, W) -> counts (2, n) per channel, float64 so sums over COCO stay exact."""
    offsets = torch.tensor([0, n], device=bins.device).view(1, 2, 1, 1)
    counts = torch.bincount((bins + offsets).flatten(), minlength=2 * n)
    return counts.view(2, n).double()


def class_weights(counts: torch.Tensor, uniform_mix: float = 0.0) -> torch.Tensor:
    """Inverse-frequency weights (2, n) from counts (2, n), normalised so that E_p[w] = 1 per channel.

    `uniform_mix` mixes the empirical distribution with the uniform one before inverting
    (Zhang et al. 2016 use 0.5; the paper uses plain inverse frequency, 0). Bins that never occur get
    the weight of a bin seen once, so the weights stay finite.
    """
    n = counts.shape[-1]
    total = counts.sum(dim=-1, keepdim=True).clamp_min(1.0)
    p = counts / total
    w = 1.0 / ((1.0 - uniform_mix) * counts.clamp_min(1.0) / total + uniform_mix / n)
    expected = (p * w).sum(dim=-1, keepdim=True)
    return (w / expected).float()
