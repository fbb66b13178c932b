"""User-hint simulation: which pixels reveal their true ab to the network, batched on the device.

A sampler maps true ab (B, 2, H, W) to (hint_ab, mask): hint_ab (B, 2, H, W) holds the revealed ab
(0 elsewhere), mask (B, 1, H, W) is 1 on hinted pixels. Patches are squares anchored at their top-left
corner (so even sizes work too), painted by indexing: cost grows with the hinted pixels, not the image.
"""

import math

import torch


def _patch_pixels(counts: torch.Tensor, sizes: torch.Tensor, h: int, w: int, generator, device):
    """Random patches: counts[i] patches in image i, sizes (B, K). -> flat (image, y, x, patch id) per
    covered pixel, patch ids in [0, B*K)."""
    b, k = sizes.shape
    ys = (torch.rand(b, k, generator=generator, device=device) * (h - sizes + 1)).long()
    xs = (torch.rand(b, k, generator=generator, device=device) * (w - sizes + 1)).long()
    valid = torch.arange(k, device=device).view(1, k) < counts.view(b, 1)
    side = int(sizes.max().item()) if sizes.numel() else 1
    offsets = torch.arange(side, device=device)
    dy, dx = offsets.view(1, 1, side, 1), offsets.view(1, 1, 1, side)
    size = sizes.view(b, k, 1, 1)
    inside = (dy < size) & (dx < size) & valid.view(b, k, 1, 1)
    image = torch.arange(b, device=device).view(b, 1, 1, 1).expand_as(inside)
    patch = torch.arange(b * k, device=device).view(b, k, 1, 1).expand_as(inside)
    return (
        image[inside],
        (ys.view(b, k, 1, 1) + dy).expand_as(inside)[inside],
        (xs.view(b, k, 1, 1) + dx).expand_as(inside)[inside],
        patch[inside],
    )


class PaperHints:
    """The paper's hints: random patch x patch squares of the true ab covering about `fraction` of pixels."""

    def __init__(self, fraction: float = 0.005, patch_size: int = 3):
        self.fraction, self.patch_size = fraction, patch_size

    def __call__(self, ab: torch.Tensor, generator: torch.Generator | None = None):
        b, _, h, w = ab.shape
        n = max(1, round(self.fraction * h * w / self.patch_size**2))
        sizes = torch.full((b, n), min(self.patch_size, h, w), device=ab.device)
        image, y, x, _ = _patch_pixels(torch.full((b,), n, device=ab.device), sizes, h, w, generator, ab.device)
        mask = torch.zeros(b, 1, h, w, device=ab.device, dtype=ab.dtype)
        mask[image, 0, y, x] = 1.0
        return ab * mask, mask


class PointHints:
    """Zhang et al. 2017: a geometric number of points (p = 1/8), patch sizes uniform in 1..9, each
    patch filled with its mean ab. `n_points` fixes the count instead (the evaluation protocol)."""

    def __init__(
        self, p: float = 0.125, max_points: int = 64, min_size: int = 1, max_size: int = 9, n_points: int | None = None
    ):
        self.p, self.max_points, self.n_points = p, max_points, n_points
        self.min_size, self.max_size = min_size, max_size

    def _counts(self, b, generator, device):
        if self.n_points is not None:
            return torch.full((b,), self.n_points, device=device)
        u = torch.rand(b, generator=generator, device=device).clamp_min(1e-12)
        counts = 1 + torch.floor(torch.log(u) / math.log(1.0 - self.p))
        return counts.long().clamp_max(self.max_points)

    def __call__(self, ab: torch.Tensor, generator: torch.Generator | None = None):
        b, _, h, w = ab.shape
        counts = self._counts(b, generator, ab.device)
        k = int(counts.max().item()) if b else 0
        sizes = torch.randint(self.min_size, self.max_size + 1, (b, k), generator=generator, device=ab.device)
        image, y, x, patch = _patch_pixels(counts, sizes.clamp_max(min(h, w)), h, w, generator, ab.device)
        true = ab[image, :, y, x]  # (pixels, 2)
        area = torch.zeros(b * k, device=ab.device, dtype=ab.dtype).index_add_(
            0, patch, torch.ones_like(y, dtype=ab.dtype)
        )
        mean = torch.zeros(b * k, 2, device=ab.device, dtype=ab.dtype).index_add_(0, patch, true)
        mean = mean / area.clamp_min(1.0).unsqueeze(1)
        # Overlapping patches average their means.
        total = torch.zeros(b, h, w, 2, device=ab.device, dtype=ab.dtype).index_put_(
            (image, y, x), mean[patch], accumulate=True
        )
        hits = torch.zeros(b, h, w, device=ab.device, dtype=ab.dtype).index_put_(
            (image, y, x), torch.ones_like(y, dtype=ab.dtype), accumulate=True
        )
        mask = (hits > 0).to(ab.dtype).unsqueeze(1)
        return (total / hits.clamp_min(1.0).unsqueeze(-1)).permute(0, 3, 1, 2), mask


class NoHints:
    """The ablation: no pixel is revealed."""

    def __call__(self, ab: torch.Tensor, generator: torch.Generator | None = None):
        b, _, h, w = ab.shape
        return torch.zeros_like(ab), torch.zeros(b, 1, h, w, device=ab.device, dtype=ab.dtype)


def fixed_hints(sampler, ab: torch.Tensor, seeds: torch.Tensor):
    """Hints that depend only on each image's seed, not on the batch it sits in: the same every epoch,
    run and batch size, so validation and test metrics compare."""
    parts = []
    for i, seed in enumerate(seeds.tolist()):
        generator = torch.Generator(device=ab.device).manual_seed(int(seed))
        parts.append(sampler(ab[i : i + 1], generator))
    return tuple(torch.cat(p, dim=0) for p in zip(*parts))
