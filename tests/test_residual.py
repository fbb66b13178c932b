"""What the network's output becomes: with output=residual the correction to the fill of the hints, not the colour
itself; and every hinted pixel keeps its hint."""

import pytest
import torch

from colorization.evaluation import fill_hints
from colorization.system import ColorizationSystem
from colorization.transforms import PointHints, decode_logits, prepare_batch
from colorization.transforms.bins import bin_centers
from colorization.transforms.encoding import shift_distribution, shifted_mean


def test_shift_moves_the_mean_by_the_shift_and_keeps_the_mass():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 32, 4, 4, generator=generator) - 20.0
    logits[:, :, 12:20] += 20.0  # mass in the middle, so that shifts of up to 30 stay inside the range
    shift = (torch.rand(2, 2, 4, 4, generator=generator) - 0.5) * 60.0
    moved = shift_distribution(logits, shift)
    assert torch.allclose(moved.exp().sum(dim=2), torch.ones(2, 2, 4, 4), atol=1e-5)
    before, after = (decode_logits(x, "expectation") for x in (logits, moved))
    assert torch.allclose(after, before + shift, atol=1e-3)
    assert torch.allclose(shift_distribution(logits, torch.zeros_like(shift)).exp(), logits.softmax(dim=2), atol=1e-6)
    edge = shift_distribution(logits, torch.full_like(shift, 500.0)).exp()  # far beyond the range: all in the end
    assert torch.allclose(edge[:, :, -1], torch.ones(2, 2, 4, 4), atol=1e-5)
    below = shift_distribution(logits, torch.full_like(shift, -500.0)).exp()  # and below it: all in the first
    assert torch.allclose(below[:, :, 0], torch.ones(2, 2, 4, 4), atol=1e-5)


def test_the_shifted_mean_is_the_mean_of_the_shifted_distribution_at_the_edges_too():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 2, 32, 6, 6, generator=generator) * 3.0  # mass in every bin, the end ones too
    shift = (torch.rand(2, 2, 6, 6, generator=generator) - 0.5) * 400.0  # most of them push mass off the range
    expected = decode_logits(shift_distribution(logits, shift), "expectation")
    assert torch.allclose(shifted_mean(logits, shift), expected, atol=1e-3)
    assert not torch.allclose(expected, decode_logits(logits, "expectation") + shift, atol=1.0)  # clamping mattered


def test_a_residual_system_that_predicts_no_correction_gives_the_fill():
    system = ColorizationSystem({"name": "unet", "widths": [8, 16, 32, 64]}, input_encoding="fill",
                                output="residual", decode="expectation").eval()
    centres = bin_centers(32)
    no_correction = torch.where(centres.abs() < 5, 0.0, -30.0).view(1, 1, 32, 1, 1)  # bins at -4 and +4: mean 0
    system.net.forward = lambda x: no_correction.expand(x.shape[0], 2, 32, *x.shape[-2:])
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    batch = prepare_batch(rgb, PointHints(n_points=5, min_size=3, max_size=3), seeds=torch.tensor([0, 1]))
    fill = fill_hints(batch["L"], batch["hint_ab"], batch["mask"])
    prediction = system.inference_model().predict(batch["L"], batch["hint_ab"], batch["mask"])
    assert fill.abs().amax() > 5  # hints there, or the check proves little
    assert torch.allclose(prediction.ab, fill, atol=0.05)
    # decoded without building the distribution (`shifted_mean`), yet the distribution's own mean
    assert torch.allclose(prediction.ab, decode_logits(prediction.logits(), "expectation"), atol=1e-3)


def test_a_fade_residual_system_without_correction_gives_the_faded_fill():
    """input=fade: near a hint its colour, far from every hint gray (the network's own prior, here none)."""
    system = ColorizationSystem({"name": "unet", "widths": [8, 16, 32, 64]}, input_encoding="fade",
                                output="residual", decode="expectation").eval()
    no_correction = torch.where(bin_centers(32).abs() < 5, 0.0, -30.0).view(1, 1, 32, 1, 1)
    system.net.forward = lambda x: no_correction.expand(x.shape[0], 2, 32, *x.shape[-2:])
    L, hint_ab, mask = torch.full((1, 1, 256, 256), 50.0), torch.zeros(1, 2, 256, 256), torch.zeros(1, 1, 256, 256)
    hint_ab[0, :, 20:23, 20:23], mask[0, 0, 20:23, 20:23] = torch.tensor([60.0, 40.0]).view(2, 1, 1), 1
    ab = system.inference_model().predict(L, hint_ab, mask).ab
    assert torch.allclose(ab[0, :, 21, 21], torch.tensor([60.0, 40.0]), atol=1.0)
    assert ab[0, :, 240, 240].abs().max() < 1.0  # the fill (60, 40) there too; the fade takes it to gray


def test_residual_needs_the_fill_input():
    with pytest.raises(ValueError, match="residual with input=fill"):
        ColorizationSystem({"name": "unet", "widths": [8, 16, 32, 64]}, input_encoding="paper", output="residual")


@pytest.mark.parametrize("output", ["absolute", "residual"])
def test_hinted_pixels_keep_their_hint_in_inference_and_in_validation(output):
    """A network sure of one colour everywhere: the prediction is that colour except on the hinted pixels, which
    keep their hint exactly; the system's validation colours (`predict_ab`) are the same as InferenceModel's."""
    system = ColorizationSystem({"name": "unet", "widths": [8, 16, 32, 64]}, input_encoding="fill", output=output,
                                decode="expectation").eval()
    centres = bin_centers(32)
    sure = torch.where((centres - 60).abs() < 5, 0.0, -30.0).view(1, 1, 32, 1, 1)  # bins at 56 and 64: mean 60
    system.net.forward = lambda x: sure.expand(x.shape[0], 2, 32, *x.shape[-2:])
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    batch = prepare_batch(rgb, PointHints(n_points=5, min_size=3, max_size=3), seeds=torch.tensor([0, 1]))
    hinted = batch["mask"].expand_as(batch["hint_ab"]) > 0
    prediction = system.inference_model().predict(batch["L"], batch["hint_ab"], batch["mask"])
    assert hinted.any() and (batch["hint_ab"][hinted] - 60).abs().min() > 1  # hints unlike the network's colour
    assert torch.equal(prediction.ab[hinted], batch["hint_ab"][hinted])
    if output == "absolute":  # elsewhere the network's colour (residual: that colour moved by the fill)
        assert torch.allclose(prediction.ab[~hinted], torch.tensor(60.0), atol=1e-3)
    with torch.no_grad():
        validation_ab = system.predict_ab(system(system.batch_input(batch)), batch)
    assert torch.allclose(validation_ab, prediction.ab, atol=1e-3)
