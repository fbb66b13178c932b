"""One four-level U-Net configured by its blocks, the blocks, and the paper's three backbones as small entries.

As timm builds every ResNet from a block type and a config (and keeps the blocks beside it), `UNet` takes an
encoder block, a bottleneck block, a decoder block and an optional transformer; `unet`, `resunet` and
`transunet` only choose them. Read from the top: the size rule, the blocks (conv levels, ResNet levels, patch
transformers, the colour head), the U-Net, the entries.
"""

import math
from collections.abc import Callable, Sequence
from functools import partial

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
    # in float32: antialiased resizing has no bfloat16 kernel (an inference copy's weights are bfloat16)
    out = F.interpolate(weight.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    out = out.to(weight.dtype)
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


# ---------------------------------------------------------------- the U-Net

Block = Callable[[int, int], nn.Module]  # (in channels, out channels) -> module
WIDTHS = (32, 64, 128, 256)
DEPTH = 4  # levels; SIZE_MULTIPLE == 2**DEPTH


class UNet(nn.Module):
    """(B, in_channels, H, W) -> (B, 2, n_bins, H, W) logits; H, W multiples of 16.

    Four encoder levels `encoder_block(in, width)` with a MaxPool after each, `bottleneck_block(deepest,
    bottleneck_ratio * deepest)` at 1/16, four decoder levels that upsample bilinearly, concatenate the
    matching skip and apply `decoder_block(up + skip, skip)`, then the colour head. The decoder's channels
    come from the encoder's, so any widths work. `transformer(width, depth)`, when given, follows the block of
    every level (depth 0-3 encoder, 4 bottleneck, 3-0 decoder), in a Sequential with it.
    """

    size_multiple = SIZE_MULTIPLE

    def __init__(
        self,
        in_channels: int,
        n_bins: int,
        widths: Sequence[int],
        encoder_block: Block,
        bottleneck_block: Block,
        decoder_block: Block | None = None,
        bottleneck_ratio: int = 2,
        transformer: Callable[[int, int], nn.Module] | None = None,
    ):
        super().__init__()
        widths = [int(c) for c in widths]
        if len(widths) != DEPTH or min(widths) < 1:
            raise ValueError(f"widths must be {DEPTH} positive channel counts, got {tuple(widths)}")
        decoder_block = decoder_block or encoder_block

        def level(block: nn.Module, width: int, depth: int) -> nn.Module:
            return block if transformer is None else nn.Sequential(block, transformer(width, depth))

        ins = [in_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(level(encoder_block(i, w), w, d) for d, (i, w) in enumerate(zip(ins, widths)))
        self.pool = nn.MaxPool2d(2)
        mid = bottleneck_ratio * widths[-1]
        self.bottleneck = level(bottleneck_block(widths[-1], mid), mid, DEPTH)
        ups = [mid, *widths[:0:-1]]  # what reaches each decoder level from below, deepest first
        self.decoder = nn.ModuleList(
            level(decoder_block(up + w, w), w, d) for d, up, w in zip(range(DEPTH - 1, -1, -1), ups, widths[::-1])
        )
        self.head = ColorHead(widths[0], n_bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_size(x)
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for level, skip in zip(self.decoder, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = level(torch.cat([x, skip], dim=1))
        return self.head(x)

    def token_grids(self) -> list[tuple[int, int] | None]:
        """Token grid (rows, cols) each transformer saw in the latest forward: encoder, bottleneck, decoder."""
        return [m.last_grid for m in self.modules() if isinstance(m, PatchTransformer)]


# ---------------------------------------------------------------- the registry's entries


def unet(in_channels: int = 4, n_bins: int = 32, widths: Sequence[int] = WIDTHS, norm: str = "batch",
         convs_per_level: int = 1) -> UNet:
    """The paper's Simple UNet: one 3x3 conv + norm + ReLU per level (convs_per_level=2: the classic U-Net
    level), and a 1x1 bottleneck that widens to twice the deepest width and narrows back to it."""
    level = partial(ConvBlock, norm=norm, n_convs=convs_per_level)

    def bottleneck(cin: int, cout: int) -> ConvBlock:
        return ConvBlock(cin, cout, norm, n_convs=2, kernel_size=1, hidden=2 * cin)

    return UNet(in_channels, n_bins, widths, level, bottleneck, bottleneck_ratio=1)


def resunet(in_channels: int = 4, n_bins: int = 32, widths: Sequence[int] = WIDTHS, norm: str = "batch") -> UNet:
    """A ResNet basic block at every level, the bottleneck one widening to twice the deepest width."""
    block = partial(BasicBlock, norm=norm)
    return UNet(in_channels, n_bins, widths, block, block)


def transunet(in_channels: int = 4, n_bins: int = 32, widths: Sequence[int] = WIDTHS, norm: str = "batch",
              heads: int = 4, mlp_ratio: float = 4.0, max_tokens_side: int = 16, img_size: int = 256) -> UNet:
    """ResUNet with a ViT block over patch tokens after every encoder, bottleneck and decoder level (§4.2.3).

    Each level's patch is ceil(side / max_tokens_side) pixels, so attention sees at most max_tokens_side**2
    tokens whatever the input size. img_size is only the side at which the patch kernels are stored
    unresized; other multiples of 16 resample them.
    """

    def vit(width: int, depth: int) -> PatchTransformer:
        side = max(1, img_size >> depth)  # this level's side at the nominal input size
        return PatchTransformer(width, heads, mlp_ratio, max_tokens_side, base_patch=-(-side // max_tokens_side))

    block = partial(BasicBlock, norm=norm)
    return UNet(in_channels, n_bins, widths, block, block, transformer=vit)
