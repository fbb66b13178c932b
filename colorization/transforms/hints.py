"""User-hint simulation: which pixels reveal their true ab to the network, batched on the device.

A sampler maps true ab (B, 2, H, W) to (hint_ab, mask): hint_ab (B, 2, H, W) holds the revealed ab
(0 elsewhere), mask (B, 1, H, W) is 1 on hinted pixels. Patches are square and anchored at their
top-left corner, so any size (odd or even) paints the same way.
"""

import math

import torch
import torch.nn.functional as F


def _paint(anchors: torch.Tensor, values: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spread each anchor's value over the size x size patch below and right of it.

    anchors (B, 1, H, W) in {0, 1}; values (B, C, H, W) at the anchors -> (summed values, hit count).
    A correlation with a ones kernel padded by size-1 on the top/left does exactly that.
    """
    kernel = torch.ones(1, 1, size, size, device=anchors.device, dtype=anchors.dtype)
    spread = lambda x: F.conv2d(F.pad(x, (size - 1, 0, size - 1, 0)), kernel)  # noqa: E731
    count = spread(anchors)
    summed = torch.cat([spread(values[:, c : c + 1]) for c in range(values.shape[1])], dim=1)
    return summed, count


def _random_anchors(b, h, w, counts, sizes, generator, device):
    """Anchor maps (one per patch size) for counts[i] patches in image i, sizes (B, K)."""
    k = int(counts.max().item()) if counts.numel() else 0
    ys = (torch.rand(b, k, generator=generator, device=device) * (h - sizes + 1)).long()
    xs = (torch.rand(b, k, generator=generator, device=device) * (w - sizes + 1)).long()
    valid = torch.arange(k, device=device).view(1, k) < counts.view(b, 1)
    maps = {}
    for size in sizes[valid].unique().tolist():
        chosen = valid & (sizes == size)
        flat = torch.zeros(b, h * w, device=device)
        index = (ys * w + xs)[chosen]
        rows = torch.arange(b, device=device).view(b, 1).expand(b, k)[chosen]
        flat[rows, index] = 1.0
        maps[size] = flat.view(b, 1, h, w)
    return maps


class PaperHints:
    """The paper's hints: random patch x patch squares of the true ab covering about `fraction` of pixels."""

    def __init__(self, fraction: float = 0.005, patch_size: int = 3):
        self.fraction, self.patch_size = fraction, patch_size

    def __call__(self, ab: torch.Tensor, generator: torch.Generator | None = None):
        b, _, h, w = ab.shape
        n = max(1, round(self.fraction * h * w / self.patch_size**2))
        counts = torch.full((b,), n, device=ab.device)
        sizes = torch.full((b, n), self.patch_size, device=ab.device)
        mask = torch.zeros(b, 1, h, w, device=ab.device)
        for size, anchors in _random_anchors(b, h, w, counts, sizes, generator, ab.device).items():
            _, count = _paint(anchors, anchors, size)
            mask = torch.maximum(mask, (count > 0).float())
        return ab * mask, mask


class PointHints:
    """Zhang et al. 2017: a geometric number of points (p = 1/8), patch sizes uniform in 1..9, each
    patch filled with its mean ab. `n_points` fixes the count instead (the evaluation protocol)."""

    def __init__(self, p: float = 0.125, max_points: int = 64, min_size: int = 1, max_size: int = 9,
                 n_points: int | None = None):
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
        sizes = sizes.clamp_max(min(h, w))
        total = torch.zeros_like(ab)
        hits = torch.zeros(b, 1, h, w, device=ab.device)
        for size, anchors in _random_anchors(b, h, w, counts, sizes, generator, ab.device).items():
            patch_mean = F.pad(F.avg_pool2d(ab, size, stride=1), (0, size - 1, 0, size - 1))
            summed, count = _paint(anchors, anchors * patch_mean, size)
            total, hits = total + summed, hits + count
        mask = (hits > 0).float()
        return total / hits.clamp_min(1.0), mask


class NoHints:
    """The ablation: no pixel is revealed."""

    def __call__(self, ab: torch.Tensor, generator: torch.Generator | None = None):
        b, _, h, w = ab.shape
        return torch.zeros_like(ab), torch.zeros(b, 1, h, w, device=ab.device)


def fixed_hints(sampler, ab: torch.Tensor, seeds: torch.Tensor):
    """Hints that depend only on each image's seed, not on the batch it sits in: the same every epoch,
    run and batch size, so validation and test metrics compare."""
    parts = []
    for i, seed in enumerate(seeds.tolist()):
        generator = torch.Generator(device=ab.device).manual_seed(int(seed))
        parts.append(sampler(ab[i : i + 1], generator))
    return tuple(torch.cat(p, dim=0) for p in zip(*parts))
