"""Colorization backbones: (B, in_channels, H, W) -> (B, 2, n_bins, H, W) ab-bin logits."""

from collections.abc import Callable

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .backbones import SIZE_MULTIPLE, UNet, check_image_size, resunet, transunet, unet

# name -> builder(in_channels, n_bins, widths, norm, ...); each is a UNet with its own blocks (backbones.py)
BACKBONES: dict[str, Callable[..., UNet]] = {"unet": unet, "resunet": resunet, "transunet": transunet}


def build_backbone(name: str, in_channels: int = 4, n_bins: int = 32, **kwargs) -> nn.Module:
    """Instantiate a backbone by name; kwargs (widths, norm, ...) go to its builder."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](in_channels=in_channels, n_bins=n_bins, **kwargs)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """For inference, in place: each BatchNorm2d that follows a Conv2d in a Sequential (every one in these
    backbones) folded into that convolution's weights, so eval-mode outputs stay the same but one pass over
    memory per norm is gone."""
    for sequence in net.modules():
        if isinstance(sequence, nn.Sequential):
            for i in range(len(sequence) - 1):
                if isinstance(sequence[i], nn.Conv2d) and isinstance(sequence[i + 1], nn.BatchNorm2d):
                    sequence[i] = fuse_conv_bn_eval(sequence[i], sequence[i + 1])
                    sequence[i + 1] = nn.Identity()
    return net


__all__ = ["BACKBONES", "SIZE_MULTIPLE", "UNet", "build_backbone", "check_image_size", "count_parameters",
           "fold_batchnorm"]
