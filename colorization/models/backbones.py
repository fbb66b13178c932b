"""One four-level U-Net configured by its blocks, and the paper's three backbones as small entries over it.

As timm builds every ResNet from a block type and a config, `UNet` takes an encoder block, a bottleneck
block, a decoder block and an optional transformer; `unet`, `resunet` and `transunet` only choose them.
"""

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SIZE_MULTIPLE, BasicBlock, ColorHead, ConvBlock, PatchTransformer, check_size

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
