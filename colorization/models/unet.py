"""SimpleUNet: the paper's plain U-Net (two 3x3 conv + norm + ReLU per level, 1x1-conv bottleneck)."""

from collections.abc import Sequence

from .blocks import ConvBlock, UNetSkeleton, level_channels


class SimpleUNet(UNetSkeleton):
    """(B, in_channels, H, W) -> (B, 2, n_bins, H, W) logits; H, W multiples of 16."""

    def __init__(
        self,
        in_channels: int = 4,
        n_bins: int = 32,
        widths: Sequence[int] = (32, 64, 128, 256),
        norm: str = "batch",
    ):
        levels = level_channels(in_channels, widths)
        deepest = levels[-1][1]

        def block(cin: int, cout: int) -> ConvBlock:
            return ConvBlock(cin, cout, norm)

        super().__init__(
            encoder=[block(cin, cout) for cin, cout in levels],
            # the paper's bottleneck: two 1x1 convs widening to twice the deepest level
            bottleneck=ConvBlock(deepest, 2 * deepest, norm, kernel_size=1),
            decoder_block=block,
            widths=[cout for _, cout in levels],
            bottleneck_channels=2 * deepest,
            n_bins=n_bins,
        )
