"""The batch the system reads (`prepare_batch`: photos -> LAB and simulated user hints), made here and only here,
and the hint samplers: which pixels reveal their true ab to the network, batched on the device.

A sampler maps true ab (B, 2, H, W) to (hint_ab, mask): hint_ab (B, 2, H, W) holds the revealed ab
(0 elsewhere), mask (B, 1, H, W) is 1 on hinted pixels. Patches are squares anchored at their top-left
corner (so even sizes work too), painted by indexing: cost grows with the hinted pixels, not the image.
"""

import math
from typing import TypedDict

import torch

from colorization.transforms.color import rgb_to_lab


class Batch(TypedDict):
    """What the system reads, for B photos of H x W pixels, on the device. The system encodes the network input
    (`make_input`) and the classes to predict (the a and b bins of `ab`, `bins.n` of them) itself."""

    rgb: torch.Tensor  # (B, 3, H, W) uint8: the photos
    L: torch.Tensor  # (B, 1, H, W) float, 0..100: lightness, what the user gives
    ab: torch.Tensor  # (B, 2, H, W) float, about -110..110: the true colour
    hint_ab: torch.Tensor  # (B, 2, H, W): the true ab where hinted, 0 elsewhere
    mask: torch.Tensor  # (B, 1, H, W): 1 on hinted pixels


def prepare_batch(rgb: torch.Tensor, sampler, seeds: torch.Tensor | None = None) -> Batch:
    """rgb (B, 3, H, W) uint8 -> Batch, hints drawn by `sampler` (below). With `seeds` the hints are fixed per photo
    (validation, test, evaluation: `derive_seed`); without, they are fresh each call (training)."""
    lab = rgb_to_lab(rgb)
    L, ab = lab[:, :1], lab[:, 1:]
    hint_ab, mask = fixed_hints(sampler, ab, seeds) if seeds is not None else sampler(ab)
    return Batch(rgb=rgb, L=L, ab=ab, hint_ab=hint_ab, mask=mask)


def _patch_pixels(counts: torch.Tensor, sizes: torch.Tensor, h: int, w: int, generator, device,
                  centred: bool = False):
    """Random patches: counts[i] patches in image i, sizes (B, K). -> flat (image, y, x, patch id) per
    covered pixel, patch ids in [0, B*K).

    Top-left corners uniform, or with `centred` as Zhang et al. 2017's code draws them: normal around the
    middle, N((S - P + 1) / 2, (S - P + 1) / 4) per side S and patch size P, truncated and clipped into the image.
    """
    b, k = sizes.shape

    def corner(side: int) -> torch.Tensor:
        room = (side - sizes + 1).float()
        if centred:
            normal = torch.randn(b, k, generator=generator, device=device)
            return (room / 2 + normal * room / 4).trunc().clamp(min=0).minimum(room - 1).long()
        return (torch.rand(b, k, generator=generator, device=device) * room).long()

    ys, xs = corner(h), corner(w)
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
    """Zhang et al. 2017's hints, as their code draws them (`add_color_patches_rand_gt`): a geometric number of
    points starting at zero (none with probability p = 1/8, each further one with probability 1 - p), patch
    sizes uniform in min_size..max_size, corners normal around the image centre (`centred`), each patch filled
    with its mean ab, a later patch painting over an earlier one. `n_points` fixes the count instead (their
    evaluation: N points of size 6)."""

    def __init__(self, p: float = 0.125, max_points: int = 64, min_size: int = 1, max_size: int = 9,
                 n_points: int | None = None, centred: bool = True, counts: str = "geometric"):
        if counts not in ("geometric", "log_uniform"):
            raise ValueError(f"hints.counts={counts!r}: expected geometric or log_uniform")
        self.p, self.max_points, self.n_points, self.centred = p, max_points, n_points, centred
        self.min_size, self.max_size, self.counts = min_size, max_size, counts

    def _counts(self, b, generator, device):
        if self.n_points is not None:
            return torch.full((b,), self.n_points, device=device)
        u = torch.rand(b, generator=generator, device=device).clamp_min(1e-12)
        if self.counts == "log_uniform":  # 0..max_points, every decade about as often: dense hints seen too
            return (torch.exp(u * math.log(self.max_points + 2)) - 1).floor().long().clamp(0, self.max_points)
        counts = torch.floor(torch.log(u) / math.log(1.0 - self.p))  # P(n) = p (1 - p)^n, n = 0, 1, ...
        return counts.long().clamp_max(self.max_points)

    def __call__(self, ab: torch.Tensor, generator: torch.Generator | None = None):
        b, _, h, w = ab.shape
        counts = self._counts(b, generator, ab.device)
        k = int(counts.max().item()) if b else 0
        sizes = torch.randint(self.min_size, self.max_size + 1, (b, k), generator=generator, device=ab.device)
        image, y, x, patch = _patch_pixels(counts, sizes.clamp_max(min(h, w)), h, w, generator, ab.device,
                                           self.centred)
        area = torch.zeros(b * k, device=ab.device, dtype=ab.dtype).index_add_(
            0, patch, torch.ones_like(y, dtype=ab.dtype))
        mean = torch.zeros(b * k, 2, device=ab.device, dtype=ab.dtype).index_add_(0, patch, ab[image, :, y, x])
        mean = mean / area.clamp_min(1.0).unsqueeze(1)
        # The last patch drawn over a pixel gives its colour (patch ids grow in drawing order).
        pixel = (image * h + y) * w + x
        last = torch.full((b * h * w,), -1, device=ab.device, dtype=torch.long).scatter_reduce_(
            0, pixel, patch, reduce="amax")
        hinted = last >= 0
        hint_ab = torch.zeros(b * h * w, 2, device=ab.device, dtype=ab.dtype)
        hint_ab[hinted] = mean[last[hinted]]
        mask = hinted.to(ab.dtype).view(b, 1, h, w)
        return hint_ab.view(b, h, w, 2).permute(0, 3, 1, 2).contiguous(), mask


class NoHints:
    """The ablation: no pixel is revealed."""

    def __call__(self, ab: torch.Tensor, generator: torch.Generator | None = None):
        b, _, h, w = ab.shape
        return torch.zeros_like(ab), torch.zeros(b, 1, h, w, device=ab.device, dtype=ab.dtype)


SEED_STRIDE = 1_000_003  # a prime above any count of photos or epochs: distinct (seed, k) never collide


def derive_seed(seed, k):
    """The seed for item `k` (a photo's position, an epoch; an int or a tensor of them) of a run seeded `seed`.
    The one formula: validation's and evaluate.py's hints on the same photo and seed are then the same."""
    return k + SEED_STRIDE * seed


def fixed_hints(sampler, ab: torch.Tensor, seeds: torch.Tensor):
    """Hints that depend only on each image's seed, not on the batch it sits in: the same every epoch,
    run and batch size, so validation and test metrics compare."""
    parts = []
    for i, seed in enumerate(seeds.tolist()):
        generator = torch.Generator(device=ab.device).manual_seed(int(seed))
        parts.append(sampler(ab[i : i + 1], generator))
    return tuple(torch.cat(p, dim=0) for p in zip(*parts))
