"""The speed-ups change nothing but speed: the fast rgb_to_lab and lab_to_rgb against Kornia's, the resize cache
against direct decoding. (Their speed is measured by experiments/bench.py, never asserted here.)"""

import shutil

import pytest
import torch

from colorization.data import ColorizationDataModule, decode, decode_image
from colorization.data.catalogue import sample_photo_paths
from colorization.data.decode import CachedImages, ImageFiles, build_cache, find_cache
from colorization.inference import InferenceModel
from colorization.models import build_backbone
from colorization.system import ColorizationSystem
from colorization.transforms import PaperHints, ab_to_bins, lab_to_rgb, prepare_batch, rgb_to_lab, rgb_to_lightness


def colour_grid() -> torch.Tensor:
    """Every 5th level of each channel crossed (52^3 colours) and all 256 grays, as one uint8 image."""
    levels = torch.arange(0, 256, 5, dtype=torch.uint8)
    r, g, b = torch.meshgrid(levels, levels, levels, indexing="ij")
    grid = torch.stack([r.flatten(), g.flatten(), b.flatten()])
    grays = torch.arange(256, dtype=torch.uint8).expand(3, 256)
    return torch.cat([grid, grays], dim=1).view(1, 3, 1, -1)


def test_fast_lab_equals_kornia_on_uint8_colours():
    rgb = colour_grid()
    fast, kornia = rgb_to_lab(rgb), rgb_to_lab(rgb, impl="kornia")
    assert fast.dtype == kornia.dtype == torch.float32 and fast.shape == kornia.shape
    assert (fast - kornia).abs().max() < 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_fast_lab_equals_kornia_on_float_images(dtype):
    rgb = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(0)).to(dtype)
    rgb[0, :, 0, :4] = torch.tensor([0.0, 0.01, 0.04045, 1.0], dtype=dtype)  # both branches and the ends
    fast, kornia = rgb_to_lab(rgb), rgb_to_lab(rgb, impl="kornia")
    assert fast.dtype == kornia.dtype == dtype
    tolerance = 0.1 if dtype == torch.float16 else 1e-3  # float16 output rounds to about 0.05 at L = 100
    assert (fast.double() - kornia.double()).abs().max() < tolerance


def test_fast_lab_takes_any_layout_and_leading_shape():
    rgb = torch.randint(0, 256, (2, 3, 8, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    reference = rgb_to_lab(rgb, impl="kornia")
    assert torch.allclose(rgb_to_lab(rgb[0]), reference[0], atol=1e-3)  # (3, H, W)
    transposed = rgb.transpose(2, 3)  # not contiguous
    assert torch.allclose(rgb_to_lab(transposed), reference.transpose(2, 3), atol=1e-3)
    with pytest.raises(ValueError, match="impl='numpy'"):
        rgb_to_lab(rgb, impl="numpy")
    with pytest.raises(ValueError, match=r"\(\*, 3, H, W\)"):
        rgb_to_lab(rgb[:, :2])


def test_lightness_alone_equals_lab_l():
    rgb = colour_grid()
    L = rgb_to_lightness(rgb)
    assert L.shape == (1, 1, 1, rgb.shape[-1]) and L.dtype == torch.float32
    assert (L - rgb_to_lab(rgb, impl="kornia")[:, :1]).abs().max() < 1e-3
    assert torch.equal(rgb_to_lightness(rgb[0]), L[0])  # (3, H, W)
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_lightness(rgb.float())


def test_fast_lab_keeps_gradients():
    rgb = torch.rand(1, 3, 4, 4, requires_grad=True)
    rgb_to_lab(rgb).sum().backward()  # falls back to Kornia: the fast path works in place
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0


def lab_everywhere(dtype=torch.float32) -> torch.Tensor:
    """L 0..100 crossed with a and b -128..128 in steps of 4: sRGB's own colours and far outside its gamut (each
    branch of the conversion, and its clipping), with the ends of L."""
    L, a, b = torch.meshgrid(torch.linspace(0, 100, 26), torch.arange(-128.0, 129.0, 4.0),
                             torch.arange(-128.0, 129.0, 4.0), indexing="ij")
    return torch.stack([L.flatten(), a.flatten(), b.flatten()]).view(1, 3, 1, -1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_rgb_equals_kornia_inside_and_outside_the_gamut(dtype):
    lab = lab_everywhere(dtype)
    before = lab.clone()
    fast, kornia = lab_to_rgb(lab), lab_to_rgb(lab, impl="kornia")
    assert fast.dtype == kornia.dtype == dtype and fast.shape == kornia.shape
    assert (fast - kornia).abs().max() < 1e-3
    assert torch.equal(lab, before)  # the input is left as it was
    assert 0.0 < (kornia == 0).double().mean() and 0.0 < (kornia == 1).double().mean()  # clipping is tested
    rgb = colour_grid()
    assert (lab_to_rgb(rgb_to_lab(rgb)) * 255 - rgb.float()).abs().max() < 0.01  # the round trip
    with torch.autocast("cpu", torch.bfloat16):  # as under trainer.precision=bf16-mixed: still full precision
        assert (lab_to_rgb(lab) - kornia).abs().max() < 1e-3


def test_fast_rgb_takes_any_layout_and_keeps_gradients():
    lab = lab_everywhere()[..., :1000].reshape(2, 3, 20, 25)
    reference = lab_to_rgb(lab, impl="kornia")
    assert torch.allclose(lab_to_rgb(lab[1]), reference[1], atol=1e-3)  # (3, H, W)
    assert torch.allclose(lab_to_rgb(lab.transpose(2, 3)), reference.transpose(2, 3), atol=1e-3)
    with pytest.raises(ValueError, match="impl='numpy'"):
        lab_to_rgb(lab, impl="numpy")
    lab.requires_grad_(True)
    lab_to_rgb(lab).sum().backward()  # falls back to Kornia: the fast path works in place
    assert lab.grad is not None and lab.grad.abs().sum() > 0


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sample_photo_paths()[:3]:
        shutil.copy(path, folder)
    (folder / "broken.jpg").write_text("not a photo")
    return sorted(str(p) for p in folder.iterdir())


def test_cache_rows_equal_direct_decoding_and_keep_bad_files(photos, tmp_path):
    base = build_cache(str(tmp_path / "cache"), photos, 48, "crop", 10**8)
    rows = CachedImages(base)
    assert len(rows) == len(photos)
    for index, path in enumerate(photos):
        item, direct = rows[index], ImageFiles(photos, 48)[index]
        assert item["index"] == direct["index"] == index
        if path.endswith("broken.jpg"):
            assert "broken.jpg" in item["error"] and item["error"] == direct["error"]
        else:
            assert item["rgb"].dtype == torch.uint8 and torch.equal(item["rgb"], decode_image(path, 48, "crop"))


def test_cache_is_reused_and_rebuilt_when_a_photo_or_setting_changes(photos, tmp_path, monkeypatch):
    cache_dir = str(tmp_path / "cache")
    base = build_cache(cache_dir, photos, 32, "stretch", 10**8)
    assert find_cache(cache_dir, photos, 32, "stretch", 10**8) == base

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decode, "ImageFiles", fail)
    assert build_cache(cache_dir, photos, 32, "stretch", 10**8) == base  # second run: no decoding
    assert find_cache(cache_dir, photos, 32, "crop", 10**8) is None  # another setting, another key
    shutil.copy(photos[1], photos[0])  # a photo replaced on disk
    assert find_cache(cache_dir, photos, 32, "stretch", 10**8) is None
    monkeypatch.undo()
    assert len(CachedImages(build_cache(cache_dir, [], 32, "stretch", 10**8))) == 0  # an empty split


def test_datamodule_reads_the_cache_and_can_turn_it_off(tmp_path):
    def datamodule(cache_resized):
        dm = ColorizationDataModule(source="sample", image_size=32, batch_size=4, num_workers=0, hints=PaperHints(),
                                    cache_dir=str(tmp_path / "cache"), cache_resized=cache_resized)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    off = datamodule(False)
    assert not list((tmp_path / "cache").glob("resized-*.npy"))
    assert isinstance(off.train_dataloader().dataset, ImageFiles)
    on = datamodule(True)
    assert len(list((tmp_path / "cache").glob("resized-*.npy"))) == 3  # train, val, test
    assert isinstance(on.train_dataloader().dataset, CachedImages)
    cached, direct = next(iter(on.val_dataloader())), next(iter(off.val_dataloader()))
    assert torch.equal(cached["rgb"], direct["rgb"]) and torch.equal(cached["index"], direct["index"])


@pytest.mark.parametrize("name", ["unet", "resunet", "transunet"])
def test_predict_runs_bf16_where_native_and_float32_when_switched_off(name):
    torch.manual_seed(0)
    system = ColorizationSystem({"name": name, "widths": [8, 16, 32, 64]}).eval()
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    batch = prepare_batch(rgb, PaperHints())
    model = system.inference_model()
    with torch.no_grad():
        reference = system(system.batch_input(batch))
        prediction = model.predict(batch["L"], batch["hint_ab"], batch["mask"])
        ab, fast = prediction.ab, prediction.logits()
        model.bf16 = False
        plain = model.predict(batch["L"], batch["hint_ab"], batch["mask"]).logits()
    assert fast.dtype == torch.float32
    assert torch.allclose(plain, reference, atol=1e-4, rtol=1e-4)  # folded BatchNorm: float rounding only; the
    # float32 network is kept beside the bfloat16 copy (converting it back would have lost its precision)
    assert (fast - reference).abs().max() < 0.02 * reference.abs().max()
    assert (ab - system.predict_ab(reference, batch)).abs().max() < 1.0  # LAB units
    if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():  # this machine: bf16 really ran
        assert not torch.allclose(fast, reference, atol=1e-4, rtol=1e-4)


def test_predict_holds_the_weights_in_the_layout_the_convolutions_take():
    """With channels_last the weights are converted to it once, not copied into it by every convolution at every
    call (bfloat16 copy and float32 network alike). The network as a checkpoint builds it: in the default layout
    (the training system converts its own)."""
    model = InferenceModel(build_backbone("resunet", widths=[8, 16, 32, 64]))
    generator = torch.Generator().manual_seed(0)
    L, hint_ab = torch.rand(1, 1, 32, 32, generator=generator) * 100, torch.randn(1, 2, 32, 32, generator=generator)
    mask = (torch.rand(1, 1, 32, 32, generator=generator) < 0.1).float()
    weight_shapes = {tuple(p.shape) for p in model.net.parameters() if p.dim() == 4 and p.shape[-1] > 1}
    for bf16 in (True, False):
        model.bf16 = bf16
        with torch.no_grad():
            model.predict(L, hint_ab, mask)  # the first call makes the bfloat16 copy
            with torch.profiler.profile(record_shapes=True) as profile:
                model.predict(L, hint_ab, mask)
        copied = [event.input_shapes[0] for event in profile.events() if event.name == "aten::copy_"]
        assert not [shape for shape in copied if tuple(shape) in weight_shapes], bf16


def test_colour_metrics_are_float32_under_bf16_mixed():
    """Under precision=bf16-mixed validation runs in autocast; PSNR and colourfulness are still computed in float32
    (they were in bfloat16: colourfulness came out in steps of 0.125, identical for different models)."""
    system = ColorizationSystem({"name": "unet", "widths": [8, 16, 32, 64]}, n_bins=16).eval()
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    batch = prepare_batch(rgb, PaperHints(fraction=0.05))
    pred_ab = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(5)) * 30
    with torch.no_grad():
        loss, logits, target = system.model_step(batch)
        plain = system.batch_metrics(batch, logits, target, loss, pred_ab)
        with torch.autocast("cpu", torch.bfloat16):
            mixed = system.batch_metrics(batch, logits, target, loss, pred_ab)
    for name in ("psnr", "colourfulness_pred", "colourfulness_true"):
        assert mixed[name].dtype == torch.float32 and mixed[name].item() == pytest.approx(plain[name].item(), rel=1e-6)


def test_training_accuracy_equals_argmax_in_float32():
    torch.manual_seed(0)
    system = ColorizationSystem({"name": "unet", "widths": [8, 16, 32, 64]}, n_bins=16)
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    batch = prepare_batch(rgb, PaperHints(fraction=0.05))
    with torch.no_grad():
        loss, logits, target = system.model_step(batch)
        values = system.batch_metrics(batch, logits, target, loss)
    correct = (logits.argmax(dim=2) == ab_to_bins(batch["ab"], 16)).float()
    unhinted = 1.0 - batch["mask"].expand_as(correct)
    assert values["acc"].item() == pytest.approx(correct.mean().item(), abs=1e-6)
    assert values["acc_unhinted"].item() == pytest.approx(((correct * unhinted).sum() / unhinted.sum()).item(),
                                                          abs=1e-6)


@pytest.mark.parametrize("name", ["unet", "resunet", "transunet"])
def test_inference_copy_with_folded_batchnorm_gives_the_same_logits(name):
    system = ColorizationSystem({"name": name, "widths": [8, 16, 32, 64]})
    generator = torch.Generator().manual_seed(0)
    for module in system.modules():  # trained-looking statistics, not the identity a fresh BatchNorm is
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor, low, high in ((module.running_mean, -1, 1), (module.running_var, 0.3, 3),
                                      (module.weight.data, 0.5, 2), (module.bias.data, -1, 1)):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    system.eval()
    folded = system.inference_model()
    folded.bf16 = False
    L, hint_ab = torch.rand(2, 1, 32, 32, generator=generator) * 100, torch.randn(2, 2, 32, 32, generator=generator)
    mask = (torch.rand(2, 1, 32, 32, generator=generator) < 0.1).float()
    with torch.no_grad():
        assert torch.allclose(folded.predict(L, hint_ab, mask).logits(), system(system.encode(L, hint_ab, mask)),
                              atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in system.modules())  # the original is untouched
