"""ResUNet: the U-Net skeleton with ResNet basic blocks at every encoder, bottleneck and decoder level."""

from collections.abc import Sequence

from .blocks import BasicBlock, UNetSkeleton, level_channels


class ResUNet(UNetSkeleton):
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

        def block(cin: int, cout: int) -> BasicBlock:
            return BasicBlock(cin, cout, norm)

        super().__init__(
            encoder=[block(cin, cout) for cin, cout in levels],
            bottleneck=block(deepest, 2 * deepest),
            decoder_block=block,
            widths=[cout for _, cout in levels],
            bottleneck_channels=2 * deepest,
            n_bins=n_bins,
        )
