"""Tests for the non-learned baselines (gray, Levin et al. 2004)."""

import numpy as np
import pytest
import torch

from colorization.baselines import BASELINES, gray, levin, levin_colorize

A_RANGE, B_RANGE = (-86.0, 98.0), (-108.0, 95.0)


def _random_image(rng, H, W):
    L = rng.uniform(0, 100, (H, W))
    ab = np.stack([rng.uniform(*A_RANGE, (H, W)), rng.uniform(*B_RANGE, (H, W))], axis=-1)
    return L, ab


def _edge_image(H=32, W=32, left=30.0, right=80.0):
    """Two flat halves separated by a strong vertical edge at column W // 2."""
    L = np.full((H, W), left)
    L[:, W // 2 :] = right
    return L


def _to_torch(L, hint_ab, mask, dtype=torch.float32):
    """Single numpy image (H, W), (H, W, 2), (H, W) -> batch-of-one torch tensors."""
    return (
        torch.as_tensor(L, dtype=dtype)[None, None],
        torch.as_tensor(hint_ab, dtype=dtype).permute(2, 0, 1)[None],
        torch.as_tensor(mask, dtype=dtype)[None, None],
    )


# ---------------------------------------------------------------- registry / gray


def test_registry():
    assert BASELINES == {"gray": gray, "levin": levin}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gray_returns_zeros_with_right_shape_and_dtype(dtype):
    L = torch.rand(3, 1, 5, 7, dtype=dtype) * 100
    hint = torch.randn(3, 2, 5, 7, dtype=dtype) * 50  # ignored
    mask = torch.ones(3, 1, 5, 7, dtype=dtype)
    out = gray(L, hint, mask)
    assert out.shape == (3, 2, 5, 7)
    assert out.dtype == dtype and out.device == L.device
    assert torch.count_nonzero(out) == 0


# ---------------------------------------------------------------- levin, numpy API


def test_levin_all_hinted_reproduces_ab():
    L, ab = _random_image(np.random.default_rng(0), 12, 17)
    out = levin_colorize(L, ab, np.ones(L.shape, bool))
    np.testing.assert_allclose(out, ab)


def test_levin_keeps_hints_and_stays_within_hint_range():
    # Each unhinted pixel is a convex combination of its neighbours, so the
    # solution obeys the maximum principle and hinted pixels are untouched.
    rng = np.random.default_rng(1)
    L, ab = _random_image(rng, 20, 24)
    mask = rng.random(L.shape) < 0.05
    mask[0, 0] = True
    out = levin_colorize(L, ab, mask)
    assert out.shape == (20, 24, 2)
    np.testing.assert_array_equal(out[mask], ab[mask])
    for c in range(2):
        lo, hi = ab[mask][:, c].min(), ab[mask][:, c].max()
        assert np.all(out[..., c] >= lo - 1e-9) and np.all(out[..., c] <= hi + 1e-9)
    assert not np.allclose(out[~mask], 0)  # colour was actually propagated


def test_levin_single_hint_floods_whole_image():
    # With one hint, the only solution of u = W u (W row-stochastic, connected)
    # is that hint's colour everywhere, edge or not.
    L = _edge_image()
    hint = np.zeros(L.shape + (2,))
    mask = np.zeros(L.shape, bool)
    mask[16, 4] = True
    hint[16, 4] = [40.0, -20.0]
    out = levin_colorize(L, hint, mask)
    np.testing.assert_allclose(out[..., 0], 40.0)
    np.testing.assert_allclose(out[..., 1], -20.0)


def _two_hints(L):
    hint = np.zeros(L.shape + (2,))
    mask = np.zeros(L.shape, bool)
    mask[16, 4], hint[16, 4] = True, [40.0, 10.0]
    mask[16, 27], hint[16, 27] = True, [-40.0, -10.0]
    return hint, mask


def test_levin_edge_stops_propagation():
    L = _edge_image()
    out = levin_colorize(L, *_two_hints(L))
    assert np.all(out[:, :16, 0] > 30) and np.all(out[:, 16:, 0] < -30)
    assert np.all(out[:, :16, 1] > 7.5) and np.all(out[:, 16:, 1] < -7.5)


def test_levin_without_edge_colours_blend():
    # Control for the test above: the same hints on a flat image must blend,
    # so the separation there really comes from the intensity edge.
    L = np.full((32, 32), 50.0)
    out = levin_colorize(L, *_two_hints(L))
    assert np.abs(out[:, 15:17, 0]).max() < 10


def test_levin_numpy_no_hints_gives_zeros():
    L, ab = _random_image(np.random.default_rng(2), 8, 8)
    out = levin_colorize(L, ab, np.zeros(L.shape, bool))
    assert out.shape == (8, 8, 2) and not out.any()


def test_levin_numpy_rejects_channel_first_hints():
    L, ab = _random_image(np.random.default_rng(3), 8, 9)
    with pytest.raises(ValueError):
        levin_colorize(L, ab.transpose(2, 0, 1), np.ones(L.shape, bool))


# ---------------------------------------------------------------- levin, torch API


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_levin_torch_shape_dtype_and_hints(dtype):
    rng = np.random.default_rng(4)
    L, ab = _random_image(rng, 10, 14)  # non-square: catches H/W mix-ups
    mask = rng.random(L.shape) < 0.1
    mask[3, 5] = True
    Lt, ht, mt = _to_torch(L, ab, mask, dtype)
    ht = ht * mt  # contract: hint_ab is 0 where unhinted
    out = levin(Lt, ht, mt)
    assert out.shape == (1, 2, 10, 14)
    assert out.dtype == dtype and out.device == Lt.device
    m = mt.bool().expand_as(out)
    torch.testing.assert_close(out[m], ht[m])
    expected = levin_colorize(L, ab * mask[..., None], mask)
    torch.testing.assert_close(out[0], torch.as_tensor(expected, dtype=dtype).permute(2, 0, 1))


def test_levin_torch_all_hinted_reproduces_ab():
    L, ab = _random_image(np.random.default_rng(5), 9, 11)
    Lt, ht, mt = _to_torch(L, ab, np.ones(L.shape), torch.float64)
    torch.testing.assert_close(levin(Lt, ht, mt), ht)


def test_levin_torch_batch_independent_and_no_hint_zeros():
    L = _edge_image()
    hint, mask = _two_hints(L)
    hint_b = np.zeros_like(hint)
    mask_b = np.zeros_like(mask)
    mask_b[5, 20], hint_b[5, 20] = True, [-15.0, 60.0]
    hint_c, mask_c = np.zeros_like(hint), np.zeros_like(mask)  # no hints at all

    parts = [_to_torch(L, h, m) for h, m in [(hint, mask), (hint_b, mask_b), (hint_c, mask_c)]]
    Lt, ht, mt = (torch.cat(x) for x in zip(*parts))
    out = levin(Lt, ht, mt)
    assert out.shape == (3, 2, 32, 32)

    for i, (h, m) in enumerate([(hint, mask), (hint_b, mask_b)]):
        single = levin(*_to_torch(L, h, m))
        torch.testing.assert_close(out[i : i + 1], single)
    # Image 1 has a single hint, so it is flat (-15, 60): nothing leaked from image 0.
    torch.testing.assert_close(out[1, 0], torch.full((32, 32), -15.0))
    torch.testing.assert_close(out[1, 1], torch.full((32, 32), 60.0))
    assert torch.count_nonzero(out[2]) == 0


def test_levin_ignores_hint_values_outside_mask():
    rng = np.random.default_rng(6)
    L, ab = _random_image(rng, 12, 12)
    mask = rng.random(L.shape) < 0.1
    mask[0, 0] = True
    Lt, ht, mt = _to_torch(L, ab, mask, torch.float64)
    clean = levin(Lt, ht * mt, mt)
    noisy = levin(Lt, ht, mt)  # garbage in unhinted pixels must not matter
    torch.testing.assert_close(noisy, clean)
