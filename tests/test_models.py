"""Backbone tests: shapes, gradients, size checks, width handling and TransUNet token budget."""

import ast
from pathlib import Path

import pytest
import torch

from colorization.models import (
    BACKBONES,
    ResUNet,
    SimpleUNet,
    TransUNet,
    build_backbone,
    count_parameters,
)

NAMES = ["unet", "resunet", "transunet"]
TINY = (8, 16, 32, 64)  # the paper code's widths; keeps every test fast on CPU


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def forward_backward(model, b, h, w, in_channels=4):
    x = torch.randn(b, in_channels, h, w)
    y = model(x)
    # a non-uniform loss so gradients are not trivially symmetric
    (y * torch.randn_like(y)).sum().backward()
    return y


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size,batch", [(64, 2), (256, 1)])
def test_forward_backward_shape_and_grads(name, size, batch):
    model = build_backbone(name, in_channels=4, n_bins=16, widths=TINY)
    y = forward_backward(model, batch, size, size)
    assert y.shape == (batch, 2, 16, size, size)
    assert torch.isfinite(y).all()
    first = next(model.parameters())  # the first encoder conv's weight
    assert first.shape[1] == 4 and first.dim() == 4
    assert first.grad is not None and torch.isfinite(first.grad).all() and first.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_non_square_and_other_channels(name):
    model = build_backbone(name, in_channels=3, n_bins=8, widths=TINY).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 48, 80))
    assert y.shape == (1, 2, 8, 48, 80)


@pytest.mark.parametrize("name", NAMES)
def test_heads_are_separate_a_and_b(name):
    # channel 0 and 1 of dim 1 must come from different head filters, not a copy
    model = build_backbone(name, n_bins=16, widths=TINY).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 4, 32, 32))
    assert not torch.allclose(y[:, 0], y[:, 1])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hw", [(60, 64), (64, 40), (8, 8)])
def test_size_not_multiple_of_16_raises(name, hw):
    model = build_backbone(name, widths=TINY)
    with pytest.raises(ValueError, match="16") as err:
        model(torch.randn(1, 4, *hw))
    assert f"{hw[0]}x{hw[1]}" in str(err.value)


def test_size_multiple_attribute():
    for cls in (SimpleUNet, ResUNet, TransUNet):
        assert cls.size_multiple == 16


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="vgg-bogus") as err:
        build_backbone("vgg-bogus")
    for name in NAMES:
        assert name in str(err.value)


def test_registry_maps_to_classes():
    assert BACKBONES == {"unet": SimpleUNet, "resunet": ResUNet, "transunet": TransUNet}
    assert isinstance(build_backbone("transunet", widths=TINY), TransUNet)


@pytest.mark.parametrize("name", NAMES)
def test_decoder_follows_widths(name):
    small = build_backbone(name, n_bins=16, widths=(4, 8, 16, 32))
    tiny = build_backbone(name, n_bins=16, widths=TINY)
    assert count_parameters(small) < count_parameters(tiny)
    # decoder outputs mirror the encoder widths, shallowest level last
    assert small.head.proj.in_channels == 4
    assert tiny.head.proj.in_channels == 8
    y = forward_backward(small, 2, 32, 32)
    assert y.shape == (2, 2, 16, 32, 32)


def test_default_widths_and_bottleneck():
    model = SimpleUNet()
    assert [lvl[0].out_channels for lvl in model.encoder] == [32, 64, 128, 256]
    assert model.bottleneck[-3].out_channels == 512  # second 1x1 conv of the bottleneck
    assert model.bottleneck[0].kernel_size == (1, 1)
    assert model.head.proj.out_channels == 64


def test_count_parameters_counts_trainable_only():
    model = ResUNet(widths=TINY)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    model.head.requires_grad_(False)
    assert count_parameters(model) == total - sum(p.numel() for p in model.head.parameters())


@pytest.mark.parametrize("widths", [(8, 16, 32), (8, 16, 32, 64, 128), (0, 8, 16, 32)])
def test_bad_widths_raise(widths):
    with pytest.raises(ValueError, match="widths"):
        build_backbone("unet", widths=widths)


def test_group_norm_option_and_unknown_norm():
    model = build_backbone("resunet", widths=TINY, norm="group")
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    y = forward_backward(model, 1, 32, 32)
    assert y.shape == (1, 2, 32, 32, 32)
    with pytest.raises(ValueError, match="norm"):
        build_backbone("unet", widths=TINY, norm="layer")


@pytest.mark.parametrize("size", [64, 256])
def test_transunet_token_budget(size):
    model = TransUNet(widths=TINY).eval()
    assert model.token_grids() == [None] * 5  # four encoder levels + bottleneck
    with torch.no_grad():
        model(torch.randn(1, 4, size, size))
    grids = model.token_grids()
    assert len(grids) == 5
    for gh, gw in grids:
        assert gh <= 16 and gw <= 16 and gh * gw <= 256
    if size == 256:
        # every level patchifies down to exactly the 16x16 budget (patch 16, 8, 4, 2, 1)
        assert grids == [(16, 16)] * 5
    else:
        # 64 px: levels are 64, 32, 16, 8 and bottleneck 4 pixels wide
        assert grids == [(16, 16), (16, 16), (16, 16), (8, 8), (4, 4)]


def test_transunet_transformer_changes_output():
    # the ViT branches must actually contribute: zeroing their unembedding changes the logits
    model = TransUNet(widths=TINY).eval()
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        before = model(x)
        for m in model.modules():
            if hasattr(m, "unembed"):
                m.unembed.weight.zero_()
                m.unembed.bias.zero_()
        after = model(x)
    assert not torch.allclose(before, after)


def test_transunet_heads_and_mlp_ratio():
    model = TransUNet(widths=TINY, heads=2, mlp_ratio=2.0)
    vits = [m for m in model.modules() if hasattr(m, "block")]
    assert vits[0].block.attn.num_heads == 2
    assert vits[0].block.mlp[0].out_features == 2 * 8
    assert TransUNet(widths=TINY).encoder[3][1].block.mlp[0].out_features == 4 * 64
    with pytest.raises(ValueError, match="heads"):
        TransUNet(widths=(6, 12, 24, 48), heads=4)


def test_models_import_only_torch():
    # the networks must stay independent of LAB, hints, losses and data code
    allowed = {"torch", "math", "collections", "typing", "functools", "__future__"}
    for path in Path(__file__).parents[1].joinpath("colorization", "models").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside colorization.models
                    continue
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"
