"""The blocks a U-Net (backbones.py) is built from: conv levels, ResNet levels, patch transformers, the colour head."""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIZE_MULTIPLE = 16  # four 2x downsamplings


def check_image_size(size: int, option: str = "image_size") -> None:
    """Raise ValueError naming `option` unless `size` is a positive multiple of 16 (what the networks take)."""
    if size < SIZE_MULTIPLE or size % SIZE_MULTIPLE:
        raise ValueError(f"{option}={size}: the networks need a multiple of {SIZE_MULTIPLE} "
                         f"(e.g. {max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)})")


def check_size(x: torch.Tensor) -> None:
    """Raise ValueError unless x is (B, C, H, W) with H and W multiples of 16."""
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise ValueError(f"input size {h}x{w} must be a multiple of {SIZE_MULTIPLE} in both H and W")


def make_norm(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        # at most 8 groups so the tiny paper widths (8, 16, ...) still have >= 1 channel per group
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    raise ValueError(f"unknown norm {norm!r}; valid: 'batch', 'group'")


def conv_norm_relu(cin: int, cout: int, norm: str, kernel_size: int = 3) -> list[nn.Module]:
    # no conv bias: the norm right after it has its own shift
    conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False)
    return [conv, make_norm(norm, cout), nn.ReLU(inplace=True)]


class ConvBlock(nn.Sequential):
    """n_convs conv + norm + ReLU, cin -> hidden -> ... -> hidden -> cout (hidden defaults to cout)."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", n_convs: int = 2, kernel_size: int = 3,
                 hidden: int | None = None):
        if n_convs < 1:
            raise ValueError(f"a conv block needs at least one convolution, got n_convs={n_convs}")
        chans = [cin, *[hidden or cout] * (n_convs - 1), cout]
        super().__init__(*(m for a, b in zip(chans, chans[1:]) for m in conv_norm_relu(a, b, norm, kernel_size)))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs plus an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, norm: str = "batch"):
        super().__init__()
        self.body = nn.Sequential(
            *conv_norm_relu(cin, cout, norm),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            make_norm(norm, cout),
        )
        self.shortcut = nn.Identity()
        if cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), make_norm(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


# ---------------------------------------------------------------- transformer pieces


class ViTBlock(nn.Module):
    """Pre-norm transformer block on (B, N, C) tokens: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads={heads}")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, round(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


def sincos_2d(gh: int, gw: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """(gh*gw, dim) 2-D sine-cosine position code (half the channels for rows, half for columns)."""
    n = -(-dim // 4)  # frequencies per axis and per sin/cos; sliced back to dim below
    omega = 1.0 / 10000 ** (torch.arange(n, device=like.device, dtype=torch.float32) / n)
    ys, xs = torch.meshgrid(
        torch.arange(gh, device=like.device, dtype=torch.float32),
        torch.arange(gw, device=like.device, dtype=torch.float32),
        indexing="ij",
    )
    parts = [f(c.reshape(-1, 1) * omega) for c in (ys, xs) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1)[:, :dim].to(like.dtype)


def resize_kernel(weight: torch.Tensor, size: tuple[int, int], keep_sum: bool) -> torch.Tensor:
    """Resample a conv kernel to a new spatial size (FlexiViT-style), so one set of weights serves any patch size.

    keep_sum rescales so a constant patch still maps to the same token (needed for the summing
    patch embedding; the transposed-conv unembedding writes each pixel once and needs no rescale).
    """
    if tuple(weight.shape[-2:]) == size:
        return weight
    out = F.interpolate(weight, size=size, mode="bilinear", align_corners=False, antialias=True)
    if keep_sum:
        out = out * (weight.shape[-2] * weight.shape[-1] / (size[0] * size[1]))
    return out


class PatchTransformer(nn.Module):
    """ViT block over real patch tokens of a feature map, added back residually.

    The patch size is chosen per forward as ceil(side / max_tokens_side), so the token grid is at
    most max_tokens_side per side whatever the input size. Patches are embedded by a strided conv
    (kernel = stride = patch) and unembedded by the matching transposed conv; their kernels are
    stored at `base_patch` (the patch at the nominal input size) and resized for other sizes.
    """

    def __init__(
        self, dim: int, heads: int = 4, mlp_ratio: float = 4.0, max_tokens_side: int = 16, base_patch: int = 1
    ):
        super().__init__()
        self.max_tokens_side = max_tokens_side
        self.embed = nn.Conv2d(dim, dim, base_patch, stride=base_patch)
        self.block = ViTBlock(dim, heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim)
        self.unembed = nn.ConvTranspose2d(dim, dim, base_patch, stride=base_patch)
        self.last_grid: tuple[int, int] | None = None  # token grid of the latest forward, for inspection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ph, pw = -(-h // self.max_tokens_side), -(-w // self.max_tokens_side)
        gh, gw = -(-h // ph), -(-w // pw)
        # zero-pad so the patches tile the map exactly; the padding is cropped off again below
        xp = F.pad(x, (0, gw * pw - w, 0, gh * ph - h))
        k_in = resize_kernel(self.embed.weight, (ph, pw), keep_sum=True)
        tokens = F.conv2d(xp, k_in, self.embed.bias, stride=(ph, pw))  # (B, C, gh, gw)
        tokens = tokens.flatten(2).transpose(1, 2) + sincos_2d(gh, gw, c, tokens)
        tokens = self.norm(self.block(tokens))
        tokens = tokens.transpose(1, 2).reshape(b, c, gh, gw)
        k_out = resize_kernel(self.unembed.weight, (ph, pw), keep_sum=False)
        y = F.conv_transpose2d(tokens, k_out, self.unembed.bias, stride=(ph, pw))
        self.last_grid = (gh, gw)
        return x + y[..., :h, :w]


# ---------------------------------------------------------------- output


class ColorHead(nn.Module):
    """1x1 conv to 2 * n_bins logits, returned as (B, 2, n_bins, H, W): index 0 is a, 1 is b."""

    def __init__(self, cin: int, n_bins: int):
        super().__init__()
        self.n_bins = n_bins
        self.proj = nn.Conv2d(cin, 2 * n_bins, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.proj(x).view(b, 2, self.n_bins, h, w)
