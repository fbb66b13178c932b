"""Backbone tests: shapes, gradients, size checks, width handling, the paper's structure of each backbone,
TransUNet's token budget, and that a ResUNet checkpoint of the pre-refactor code still loads and computes the same."""

import ast
import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from colorization.models import BACKBONES, UNet, build_backbone, count_parameters
from colorization.models.backbones import PatchTransformer

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
    for name in NAMES:
        assert build_backbone(name, widths=TINY).size_multiple == 16


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="vgg-bogus") as err:
        build_backbone("vgg-bogus")
    for name in NAMES:
        assert name in str(err.value)


def test_registry_builds_one_unet_class():
    assert sorted(BACKBONES) == sorted(NAMES)
    assert all(type(build_backbone(name, widths=TINY)) is UNet for name in NAMES)


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


def convs(module):
    return [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_unet_is_the_papers_one_conv_per_level_and_1x1_bottleneck():
    model = build_backbone("unet", in_channels=6)
    assert [convs(level) for level in model.encoder] == [[(6, 32, 3)], [(32, 64, 3)], [(64, 128, 3)], [(128, 256, 3)]]
    assert convs(model.bottleneck) == [(256, 512, 1), (512, 256, 1)]  # widens and narrows back
    # decoder: the bottleneck's 256 channels (not 512) plus each skip, one 3x3 conv per level
    assert [convs(level) for level in model.decoder] == [
        [(512, 256, 3)], [(384, 128, 3)], [(192, 64, 3)], [(96, 32, 3)]]
    assert model.head.proj.in_channels == 32 and model.head.proj.out_channels == 64
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 10  # a norm after every conv


def test_unet_two_convs_per_level_option():
    model = build_backbone("unet", widths=TINY, convs_per_level=2)
    assert convs(model.encoder[1]) == [(8, 16, 3), (16, 16, 3)]
    assert convs(model.decoder[0]) == [(128, 64, 3), (64, 64, 3)]
    assert convs(model.bottleneck) == [(64, 128, 1), (128, 64, 1)]
    assert forward_backward(model, 1, 32, 32).shape == (1, 2, 32, 32, 32)
    with pytest.raises(ValueError, match="n_convs"):
        build_backbone("unet", widths=TINY, convs_per_level=0)


def test_count_parameters_counts_trainable_only():
    model = build_backbone("resunet", widths=TINY)
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
    model = build_backbone("transunet", widths=TINY).eval()
    assert model.token_grids() == [None] * 9  # four encoder levels, bottleneck, four decoder levels
    with torch.no_grad():
        model(torch.randn(1, 4, size, size))
    grids = model.token_grids()
    for gh, gw in grids:
        assert gh <= 16 and gw <= 16 and gh * gw <= 256
    if size == 256:
        # every level patchifies down to exactly the 16x16 budget (patch 16, 8, 4, 2, 1, 2, 4, 8, 16)
        assert grids == [(16, 16)] * 9
    else:
        # 64 px: levels are 64, 32, 16, 8, bottleneck 4, then 8, 16, 32, 64 pixels wide
        assert grids == [(16, 16)] * 3 + [(8, 8), (4, 4), (8, 8)] + [(16, 16)] * 3


def test_transunet_decoder_levels_have_transformers():
    # §4.2.3: a ViT block in every decoder level too, at that level's width, and each one matters
    model = build_backbone("transunet", widths=TINY).eval()
    assert [[m.embed.in_channels for m in lvl.modules() if isinstance(m, PatchTransformer)] for lvl in model.decoder
            ] == [[64], [32], [16], [8]]
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.decoder[-1][1].unembed.weight.zero_()
        model.decoder[-1][1].unembed.bias.zero_()
        assert not torch.allclose(before, model(x))


def test_transunet_transformer_changes_output():
    # the ViT branches must actually contribute: zeroing their unembedding changes the logits
    model = build_backbone("transunet", widths=TINY).eval()
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
    model = build_backbone("transunet", widths=TINY, heads=2, mlp_ratio=2.0)
    vits = [m for m in model.modules() if isinstance(m, PatchTransformer)]
    assert all(v.block.attn.num_heads == 2 for v in vits)
    assert vits[0].block.mlp[0].out_features == 2 * 8
    assert build_backbone("transunet", widths=TINY).encoder[3][1].block.mlp[0].out_features == 4 * 64
    with pytest.raises(ValueError, match="heads"):
        build_backbone("transunet", widths=(6, 12, 24, 48), heads=4)


# ---------------------------------------------------------------- ResUNet checkpoints from before the refactor

# Recorded with the code before the backbones became one UNet class (issue 13), for
# build_backbone("resunet", in_channels=6, n_bins=32, widths=[16, 32, 64, 128]): a sha256 of its sorted
# "key:shape" lines, and its eval-mode output for seeded_state() weights on a seeded input.
RESUNET_KEYS_SHA256 = "160700ebd821983d019e527943ae8212c7d8098575753f4f27e0214228f1e94c"
RESUNET_N_KEYS = 164
RESUNET_OUT_MEAN_STD = (-2.889561891555786, 63.50389862060547)
RESUNET_OUT_SAMPLES = [-82.786575, -14.788153, -53.543732, -150.01149, -57.160675, 17.391001, 21.760944, -11.738958]


def seeded_state(model, seed=0):
    """A full state_dict drawn from a fixed seed in sorted key order: He-scaled weights and non-trivial norm
    statistics, so every layer and buffer moves the output (fresh BatchNorms would be the identity)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, v in sorted(model.state_dict().items()):
        if not v.is_floating_point():  # BatchNorm's num_batches_tracked
            state[key] = torch.full_like(v, 7)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(v.shape, generator=g)
        elif v.ndim > 1:
            state[key] = torch.randn(v.shape, generator=g) * (2 / v[0].numel()) ** 0.5
        else:
            state[key] = (1.0 if key.endswith("weight") else 0.0) + 0.1 * torch.randn(v.shape, generator=g)
    return state


def test_resunet_keeps_the_pre_refactor_state_dict_and_forward():
    model = build_backbone("resunet", in_channels=6, n_bins=32, widths=[16, 32, 64, 128])
    lines = sorted(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    assert len(lines) == RESUNET_N_KEYS
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == RESUNET_KEYS_SHA256
    model.load_state_dict(seeded_state(model), strict=True)
    x = torch.randn(2, 6, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model.eval()(x)
    assert y.shape == (2, 2, 32, 32, 48)
    assert torch.allclose(torch.stack([y.mean(), y.std()]), torch.tensor(RESUNET_OUT_MEAN_STD), rtol=1e-4, atol=1e-4)
    samples = y.flatten()[torch.linspace(0, y.numel() - 1, 8).long()]
    assert torch.allclose(samples, torch.tensor(RESUNET_OUT_SAMPLES), rtol=1e-4, atol=1e-3)


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
