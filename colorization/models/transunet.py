"""TransUNet: ResUNet whose encoder levels and bottleneck each add a ViT block over patch tokens.

At every level the feature map is cut into patches of ceil(side / max_tokens_side) pixels, so
attention never sees more than max_tokens_side**2 tokens (256 by default) and memory stays flat
as the input grows. Tokens get a 2-D sine-cosine position code computed for the actual grid.

Departure from the paper's released code: its bottleneck transformer used a feed-forward width
of 2; here every ViT block uses the standard MLP of mlp_ratio * width (default 4).
"""

from collections.abc import Sequence

from torch import nn

from .blocks import BasicBlock, PatchTransformer, UNetSkeleton, level_channels


class TransUNet(UNetSkeleton):
    """(B, in_channels, H, W) -> (B, 2, n_bins, H, W) logits; H, W multiples of 16.

    img_size is only the nominal input side at which the patch kernels are stored unresized;
    any other multiple of 16 works too (the kernels are resampled to the patch size in use).
    """

    def __init__(
        self,
        in_channels: int = 4,
        n_bins: int = 32,
        widths: Sequence[int] = (32, 64, 128, 256),
        norm: str = "batch",
        heads: int = 4,
        mlp_ratio: float = 4.0,
        max_tokens_side: int = 16,
        img_size: int = 256,
    ):
        levels = level_channels(in_channels, widths)
        deepest = levels[-1][1]

        def vit(dim: int, level: int) -> PatchTransformer:
            side = max(1, img_size >> level)  # this level's side at the nominal input size
            base_patch = -(-side // max_tokens_side)
            return PatchTransformer(dim, heads, mlp_ratio, max_tokens_side, base_patch)

        def block(cin: int, cout: int) -> BasicBlock:
            return BasicBlock(cin, cout, norm)

        super().__init__(
            encoder=[nn.Sequential(block(cin, cout), vit(cout, i)) for i, (cin, cout) in enumerate(levels)],
            bottleneck=nn.Sequential(block(deepest, 2 * deepest), vit(2 * deepest, len(levels))),
            decoder_block=block,
            widths=[cout for _, cout in levels],
            bottleneck_channels=2 * deepest,
            n_bins=n_bins,
        )

    def token_grids(self) -> list[tuple[int, int] | None]:
        """Token grid (rows, cols) each ViT block saw in the latest forward, shallowest first."""
        return [m.last_grid for m in self.modules() if isinstance(m, PatchTransformer)]
