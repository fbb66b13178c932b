"""Colour, hints, bins and class weights: pure tensor functions."""

import math

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorization.transforms import (
    NoHints,
    PaperHints,
    PointHints,
    ab_to_bins,
    bin_counts,
    bins_to_ab,
    class_weights,
    decode_logits,
    edge_aware_fill,
    encoding,
    fixed_hints,
    hint_confidence,
    levin_fill,
    make_input,
    prepare_batch,
    propagate_hints,
    rgb_to_lab,
)
from colorization.transforms.color import lab_to_rgb
from colorization.transforms.encoding import _recursive_filter


def random_ab(b=4, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 2, h, w, generator=g) * 180 - 90


def test_lab_matches_scikit_image_and_round_trips():
    rgb = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    lab = rgb_to_lab(rgb)
    expected = skcolor.rgb2lab(rgb.permute(0, 2, 3, 1).numpy().astype(np.float64))
    np.testing.assert_allclose(lab.permute(0, 2, 3, 1).numpy(), expected, atol=0.05)
    np.testing.assert_allclose(lab_to_rgb(lab).numpy(), rgb.numpy(), atol=1e-3)


def test_uint8_input_is_scaled():
    rgb = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    assert rgb_to_lab(rgb)[0, 0].mean().item() == pytest.approx(100.0, abs=0.01)


def test_paper_hints_cover_about_half_a_percent_in_3x3_patches():
    ab = random_ab(b=8, h=256, w=256)
    hint_ab, mask = PaperHints(fraction=0.005, patch_size=3)(ab)
    coverage = mask.mean(dim=(1, 2, 3))
    assert ((coverage > 0.004) & (coverage <= 0.0055)).all(), coverage
    # every hinted pixel lies in a fully hinted 3x3 square, and carries its true ab
    eroded = -torch.nn.functional.max_pool2d(-mask, 3, 1, 1)
    assert torch.nn.functional.max_pool2d(eroded, 3, 1, 1).eq(mask).all()
    assert torch.equal(hint_ab, ab * mask)


def test_no_hints_reveal_nothing():
    hint_ab, mask = NoHints()(random_ab())
    assert mask.sum() == 0 and hint_ab.abs().sum() == 0


def test_point_hints_fixed_count_fill_patches_with_their_mean():
    ab = torch.zeros(1, 2, 32, 32)
    ab[:, 0, :, 16:] = 50.0  # a uniform right half: any patch inside it has mean exactly 50
    hint_ab, mask = PointHints(n_points=1, min_size=4, max_size=4)(ab, torch.Generator().manual_seed(3))
    assert mask.sum() == 16  # one 4x4 patch
    ys, xs = torch.nonzero(mask[0, 0], as_tuple=True)
    expected = ab[0, 0, ys.min():ys.max() + 1, xs.min():xs.max() + 1].mean()
    assert torch.allclose(hint_ab[0, 0][mask[0, 0] > 0], expected)


def test_point_hints_geometric_count_starts_at_zero_like_zhang():
    """Zhang et al.'s sampler stops before the first point with probability p: 1/8 of images get none."""
    ab = random_ab(b=4000, h=16, w=16)
    counts = PointHints(p=0.125)._counts(len(ab), torch.Generator().manual_seed(0), ab.device)
    assert abs((counts == 0).float().mean().item() - 0.125) < 0.02
    assert abs(counts.float().mean().item() - 7.0) < 0.4  # (1 - p) / p, minus the few clipped at max_points
    _, mask = PointHints(p=0.125)(ab[:64], torch.Generator().manual_seed(0))
    assert mask.sum() > 0 and mask.sum(dim=(1, 2, 3)).max() <= 64 * 81


def test_log_uniform_counts_reach_dense_hints():
    """hints=points_dense: as many photos with 50-500 points as with 5-50, and some with none."""
    counts = PointHints(counts="log_uniform", max_points=512)._counts(20000, torch.Generator().manual_seed(0), "cpu")
    assert 0.05 < (counts == 0).float().mean() < 0.2 and counts.max() == 512
    few, many = ((counts >= 5) & (counts < 50)).sum(), ((counts >= 50) & (counts < 500)).sum()
    assert abs(few - many) < 0.1 * few
    with pytest.raises(ValueError, match="hints.counts"):
        PointHints(counts="uniform")


def test_point_locations_are_centred_normal_like_zhang():
    """Corners ~ N((S - P + 1) / 2, (S - P + 1) / 4): each coordinate within a quarter side of the centre with
    probability 0.68, so 0.47 of the points fall in the middle square, against 0.25 for uniform locations."""
    ab = random_ab(b=1, h=201, w=201)
    points = dict(n_points=500, min_size=1, max_size=1)
    _, mask = PointHints(**points)(ab, torch.Generator().manual_seed(0))
    ys, xs = torch.nonzero(mask[0, 0], as_tuple=True)
    assert abs((ys.float().mean() - 100).item()) < 5 and abs((xs.float().mean() - 100).item()) < 5
    assert 0.40 < mask[0, 0, 50:151, 50:151].sum() / mask.sum() < 0.55
    _, uniform = PointHints(**points, centred=False)(ab, torch.Generator().manual_seed(0))
    assert uniform[0, 0, 50:151, 50:151].sum() / uniform.sum() < 0.32


def test_later_points_paint_over_earlier_ones():
    """Zhang et al. assign each patch in turn, so where two overlap the later one's mean shows, not an average."""
    ab = torch.zeros(1, 2, 8, 8)
    ab[:, 0, :, 4:] = 80.0
    sampler = PointHints(n_points=30, min_size=5, max_size=5)
    hint_ab, mask = sampler(ab, torch.Generator().manual_seed(1))
    values = set(torch.unique(hint_ab[0, 0][mask[0, 0] > 0]).tolist())
    means = {80.0 * c / 5 for c in range(6)}  # a 5x5 patch's mean: 0, 16, .., 80
    assert values <= means  # every hinted pixel shows exactly one patch's mean, none an average of two


def test_propagated_hints_keep_hints_and_fill_from_the_nearest():
    L = torch.full((1, 1, 32, 32), 50.0)
    hint_ab, mask = torch.zeros(1, 2, 32, 32), torch.zeros(1, 1, 32, 32)
    hint_ab[0, :, 2, 2], mask[0, 0, 2, 2] = torch.tensor([60.0, -20.0]), 1
    hint_ab[0, :, 29, 29], mask[0, 0, 29, 29] = torch.tensor([-40.0, 30.0]), 1
    fill = propagate_hints(hint_ab, mask)
    assert torch.allclose(fill[0, :, 2, 2], hint_ab[0, :, 2, 2]) and torch.allclose(fill[0, :, 29, 29],
                                                                                    hint_ab[0, :, 29, 29])
    assert fill[0, 0, 5, 4] > 30 and fill[0, 0, 27, 26] < -20  # near each hint: mostly its colour
    assert propagate_hints(hint_ab, torch.zeros_like(mask)).abs().max() == 0  # no hints: gray
    x = make_input(L, hint_ab, mask, "fill")
    assert x.shape == (1, 6, 32, 32) and torch.allclose(x[:, 4:], fill / 110.0)


def test_hint_confidence_falls_with_the_distance_to_the_nearest_hint():
    mask = torch.zeros(2, 1, 256, 256)
    mask[0, 0, 100:103, 40:43] = 1
    confidence = hint_confidence(mask, sigma=32.0)
    row = confidence[0, 0, 101]
    assert row[41] == 1 and torch.all(row[41:200].diff() <= 1e-6)  # 1 on the hint, falling away from it
    for d in (32, 64, 96):  # exp(-d^2 / 2 sigma^2), within the quarter-resolution error
        assert abs(row[41 + d].item() - math.exp(-(d**2) / (2 * 32.0**2))) < 0.06
    assert confidence[1].max() == 0  # no hints: no confidence anywhere


def test_the_fade_input_is_the_fill_faded_with_the_distance_to_the_hints():
    L = torch.full((1, 1, 256, 256), 50.0)
    hint_ab, mask = torch.zeros(1, 2, 256, 256), torch.zeros(1, 1, 256, 256)
    hint_ab[0, :, 20:23, 20:23], mask[0, 0, 20:23, 20:23] = torch.tensor([80.0, -30.0]).view(2, 1, 1), 1
    fill, faded = make_input(L, hint_ab, mask, "fill"), make_input(L, hint_ab, mask, "fade")
    assert faded.shape == (1, 7, 256, 256) and torch.equal(faded[:, :4], fill[:, :4])
    assert torch.allclose(fill[0, 4:, 250, 250], torch.tensor([80.0, -30.0]) / 110.0)  # the fill: everywhere
    assert torch.allclose(faded[0, 4:6, 21, 21], fill[0, 4:, 21, 21]) and faded[0, 6, 21, 21] == 1  # on the hint
    assert faded[0, 4:, 250, 250].abs().max() < 0.01 and faded[0, 6, 250, 250] < 0.01  # far away: gray, no trust


@pytest.mark.parametrize("gpu_scan", [False, True], ids=["cumsum", "shifted-additions"])
def test_the_recursive_filter_is_the_pixel_by_pixel_recurrence(gpu_scan, monkeypatch):
    """The blocked scan against the domain transform's passes written out one pixel at a time; also with the
    in-block prefix sums a GPU computes (shifted additions), here on the CPU."""
    if gpu_scan:
        monkeypatch.setattr(encoding, "_block_cumsum", encoding._shifted_cumsum)
    def one_pixel_at_a_time(signal, weight, dim):
        signal = signal.clone()
        for i in range(1, signal.shape[dim]):
            current = signal.select(dim, i)
            current.add_(weight.select(dim, i) * (signal.select(dim, i - 1) - current))
        for i in range(signal.shape[dim] - 2, -1, -1):
            current = signal.select(dim, i)
            current.add_(weight.select(dim, i + 1) * (signal.select(dim, i + 1) - current))
        return signal

    generator = torch.Generator().manual_seed(0)
    signal = torch.randn(2, 3, 37, 45, generator=generator)  # not multiples of the block size
    weight = torch.rand(2, 1, 37, 45, generator=generator) ** 0.2
    weight[weight < 0.3] = 0.0  # edges that stop everything
    for dim in (3, 2):
        assert torch.allclose(_recursive_filter(signal, weight, dim), one_pixel_at_a_time(signal, weight, dim),
                              atol=1e-4)
    x = torch.randn(3, 9, generator=generator)
    assert torch.allclose(encoding._shifted_cumsum(x), x.cumsum(-1), atol=1e-5)  # lengths not a power of 2


def test_the_edge_aware_fill_stops_at_edges_where_push_pull_crosses_them():
    L = torch.full((1, 1, 64, 64), 30.0)
    L[..., 32:] = 80.0  # a bright right half
    hint_ab, mask = torch.zeros(1, 2, 64, 64), torch.zeros(1, 1, 64, 64)
    hint_ab[0, :, 10:12, 4:6], mask[0, 0, 10:12, 4:6] = torch.tensor([60.0, 20.0]).view(2, 1, 1), 1
    hint_ab[0, :, 50:52, 58:60], mask[0, 0, 50:52, 58:60] = torch.tensor([-40.0, -30.0]).view(2, 1, 1), 1
    fill, push_pull = edge_aware_fill(L, hint_ab, mask), propagate_hints(hint_ab, mask)
    left, right = fill[0, :, 50, 28], fill[0, :, 10, 36]  # each beside the edge, nearer the other side's hint
    assert torch.allclose(left, torch.tensor([60.0, 20.0]), atol=2.0)
    assert torch.allclose(right, torch.tensor([-40.0, -30.0]), atol=2.0)
    assert (push_pull[0, :, 50, 28] - left).abs().max() > 10  # push-pull mixes them there
    assert torch.equal(fill * mask, hint_ab * mask)  # hints keep their own colour
    assert edge_aware_fill(L, hint_ab, torch.zeros_like(mask)).abs().max() == 0  # no hints: gray
    x = make_input(L, hint_ab, mask, "edge")
    assert x.shape == (1, 7, 64, 64) and torch.equal(x[:, 6:], make_input(L, hint_ab, mask, "fade")[:, 6:])


def _chelsea(height: int, width: int) -> torch.Tensor:
    from PIL import Image

    from colorization.data.catalogue import sample_photo_paths

    path = next(p for p in sample_photo_paths() if p.endswith("chelsea.png"))
    rgb = np.array(Image.open(path).convert("RGB").resize((width, height)))
    return rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous())


def test_levin_fill_is_near_levins_exact_solution_and_its_coarsest_level_is_exact():
    """input=levin's fill: its coarsest level is baselines.levin's exact solution; the whole fill, coarse to fine at
    half resolution, stays near that solution (nearer than the edge fill); hints keep their colour, no hints give
    gray, and each photo of a batch is filled as if alone."""
    from colorization.baselines import levin

    lab = _chelsea(64, 96)
    L, ab = lab[:, :1], lab[:, 1:]
    mask = (torch.rand(1, 1, 64, 96, generator=torch.Generator().manual_seed(0)) < 0.01).float()
    mask[..., 3, 4] = 1.0
    hint_ab = ab * mask
    small = (..., slice(0, 12), slice(0, 15))
    exact_small = levin(L[small], hint_ab[small], mask[small])
    solved = encoding._levin_solve(L[small], hint_ab[small], mask[small] > 0)
    assert exact_small.abs().max() > 1 and torch.allclose(solved, exact_small, atol=1e-3)
    fill, exact = levin_fill(L, hint_ab, mask), levin(L, hint_ab, mask)
    error = (fill - exact).abs().mean()
    assert error < 1.0 and error < 0.6 * (edge_aware_fill(L, hint_ab, mask) - exact).abs().mean()
    assert torch.equal(fill * mask, hint_ab * mask)
    assert levin_fill(L, hint_ab, torch.zeros_like(mask)).abs().max() == 0
    flipped = levin_fill(L.flip(-1), hint_ab.flip(-1), mask.flip(-1))
    both = levin_fill(torch.cat([L, L.flip(-1)]), torch.cat([hint_ab, hint_ab.flip(-1)]),
                      torch.cat([mask, mask.flip(-1)]))
    assert torch.allclose(both, torch.cat([fill, flipped]), atol=1e-4)
    x = make_input(L, hint_ab, mask, "levin")
    assert x.shape == (1, 7, 64, 96) and torch.equal(x[:, 6:], make_input(L, hint_ab, mask, "edge")[:, 6:])


def test_fixed_hints_depend_only_on_the_seed():
    ab = random_ab(b=3)
    seeds = torch.tensor([7, 8, 9])
    first = fixed_hints(PaperHints(), ab, seeds)[1]
    again = fixed_hints(PaperHints(), ab[1:], seeds[1:])[1]  # another batch composition
    assert torch.equal(first[1:], again)
    assert not torch.equal(first[0], first[1])


def test_bins_round_trip_within_half_a_bin():
    ab = random_ab()
    for n in (16, 32, 64):
        back = bins_to_ab(ab_to_bins(ab, n), n)
        assert (back - ab).abs().max() <= 256 / n / 2 + 1e-4
    assert ab_to_bins(torch.tensor([-500.0, 500.0]), 32).tolist() == [0, 31]


def test_decode_methods():
    n = 32
    target = ab_to_bins(random_ab(b=1, h=8, w=8), n)
    logits = torch.nn.functional.one_hot(target, n).permute(0, 1, 4, 2, 3).float() * 20
    exact = bins_to_ab(target, n)
    for method in ("argmax", "expectation", "annealed_mean"):
        assert torch.allclose(decode_logits(logits, method), exact, atol=1e-3), method
    flat = torch.zeros(1, 2, n, 2, 2)  # uniform: the mean is the middle of the range
    assert decode_logits(flat, "expectation").abs().max() < 1e-4
    with pytest.raises(ValueError, match="decode"):
        decode_logits(flat, "median")


def test_class_weights_finite_normalised_and_inverse():
    counts = torch.tensor([[100.0, 10.0, 0.0, 1.0], [50.0, 50.0, 0.0, 0.0]])
    for mix in (0.0, 0.5):
        w = class_weights(counts, uniform_mix=mix)
        assert torch.isfinite(w).all()
        p = counts / counts.sum(dim=1, keepdim=True)
        assert torch.allclose((p * w.double()).sum(dim=1), torch.ones(2, dtype=torch.float64), atol=1e-3)
        assert w[0, 1] > w[0, 0]  # rarer bins weigh more
    assert class_weights(counts, 0.5)[0].max() < class_weights(counts, 0.0)[0].max()  # the prior smooths


def test_bin_counts():
    bins = torch.tensor([[[[0, 1]], [[3, 3]]]])  # (1, 2, 1, 2)
    assert bin_counts(bins, 4).tolist() == [[1, 1, 0, 0], [0, 0, 0, 2]]


def test_input_has_a_mask_channel_so_zero_colour_hints_are_visible():
    L = torch.full((1, 1, 4, 4), 50.0)
    ab = torch.zeros(1, 2, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 0, 0] = 1
    x = make_input(L, ab, mask)
    assert x.shape == (1, 4, 4, 4) and x[0, 3, 0, 0] == 1 and x[0, 3].sum() == 1


def test_prepare_batch_shapes():
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = prepare_batch(rgb, PaperHints(), seeds=torch.tensor([0, 1]))
    assert out["L"].shape == (2, 1, 32, 32) and out["ab"].shape == (2, 2, 32, 32)
    assert out["hint_ab"].shape == (2, 2, 32, 32) and out["mask"].shape == (2, 1, 32, 32)
