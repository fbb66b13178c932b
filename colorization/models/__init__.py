"""Colorization backbones: (B, in_channels, H, W) -> (B, 2, n_bins, H, W) ab-bin logits."""

from torch import nn

from .blocks import SIZE_MULTIPLE
from .resunet import ResUNet
from .transunet import TransUNet
from .unet import SimpleUNet

BACKBONES: dict[str, type[nn.Module]] = {"unet": SimpleUNet, "resunet": ResUNet, "transunet": TransUNet}


def build_backbone(name: str, in_channels: int = 4, n_bins: int = 32, **kwargs) -> nn.Module:
    """Instantiate a backbone by name; kwargs (widths, norm, ...) go to its constructor."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](in_channels=in_channels, n_bins=n_bins, **kwargs)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["BACKBONES", "SIZE_MULTIPLE", "ResUNet", "SimpleUNet", "TransUNet", "build_backbone", "count_parameters"]
