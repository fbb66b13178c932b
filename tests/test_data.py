"""The catalogue (a real FiftyOne database in a temporary folder), decoding, and the DataModule."""

import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.data import ColorizationDataModule, DecodeError, catalogue, decode_image
from colorization.transforms import PaperHints
from train import train

ROOT = Path(__file__).resolve().parents[1]

GRAY = {"000000113488.jpg", "000000084533.jpg", "000000205401.jpg", "000000431848.jpg", "000000570448.jpg"}


def names(paths):
    return {p.rsplit("/", 1)[-1] for p in paths}


def test_coco_mini_loads_in_coco_format(shared_data):
    dataset = catalogue.build_catalogue("coco_dir", str(shared_data / "coco-mini"), name="test-coco-mini")
    assert len(dataset) == 80 + 79  # only the images listed in the instances json files
    assert dataset.exists("gray_fraction").count() == len(dataset)
    files = catalogue.split_files(dataset)
    assert sum(dataset.count_sample_tags().values()) == len(files["all"])  # every photo kept in exactly one split
    assert not set(files["train"]) & set(files["val"]) and not set(files["val"]) & set(files["test"])


def test_coco_zoo_source_finds_coco_already_on_disk(shared_data, tmp_path):
    """The real zoo code path (data=coco) against a local copy laid out as the zoo leaves it: no download."""
    import json

    zoo = tmp_path / "zoo" / "coco-2017"
    (zoo / "raw").mkdir(parents=True)
    (zoo / "validation" / "data").mkdir(parents=True)
    labels = shared_data / "coco-mini" / "annotations" / "instances_val2017.json"
    (zoo / "raw" / labels.name).symlink_to(labels)
    for image in json.loads(labels.read_text())["images"]:
        (zoo / "validation" / "data" / image["file_name"]).symlink_to(shared_data / "coco-mini" / "val2017" /
                                                                      image["file_name"])
    dataset = catalogue.build_catalogue("coco", str(tmp_path / "zoo"), coco_splits=["val2017"], max_samples=6,
                                        gray_filter="paper")
    kept = catalogue.split_files(dataset, "paper", max_samples=6)["all"]
    assert len(kept) == 6 < len(dataset) < 79  # 6 that pass the paper's filter, without importing the whole split
    assert dataset.exists("gray_a_fraction").count() == len(dataset)
    assert all(p.startswith(str(zoo / "validation" / "data")) for p in dataset.values("filepath"))


def test_gray_filter_drops_the_gray_photos_and_keeps_the_colour_ones(shared_data):
    dataset = catalogue.build_catalogue("images", str(shared_data / "coco-mini"), name="test-coco-mini-images")
    assert len(dataset) == 239
    for rule, count in (("chroma", 218), ("paper", 64)):  # the paper's code keeps about 1 in 4 COCO photos
        kept = names(catalogue.split_files(dataset, rule)["all"])
        assert not GRAY & kept, rule
        assert len(kept) == count, rule
        assert "000000000790.jpg" in kept, rule  # an ordinary colour photo


def test_catalogue_is_reused_without_recomputing(monkeypatch, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in catalogue.sample_photo_paths()[:4]:
        shutil.copy(path, photos)
    first = catalogue.build_catalogue("images", str(photos))
    fractions = first.values("gray_fraction")

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(catalogue, "_measure_paths", fail)
    second = catalogue.build_catalogue("images", str(photos))
    assert second.name == first.name and second.values("gray_fraction") == fractions
    assert second.persistent


def write_bad_folder(folder):
    """Four good photos and every kind of bad or odd file a real photo folder holds."""
    folder.mkdir()
    for path in catalogue.sample_photo_paths()[:4]:
        shutil.copy(path, folder)
    jpeg = open(catalogue.sample_photo_paths()[3], "rb").read()  # rocket.jpg
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    rgb = np.asarray(Image.open(catalogue.sample_photo_paths()[1]).convert("RGB"))
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(folder / "alpha.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "sixteen_bit.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(folder / "one_pixel.png")
    Image.new("RGB", (3000, 3000), (200, 30, 30)).save(folder / "huge.png")  # over the test's pixel limit
    Image.fromarray(rgb[..., 1]).save(folder / "gray.png")
    return {"truncated.jpg", "empty.jpg", "text.jpg", "one_pixel.png", "huge.png"}


def test_decode_converts_every_mode(tmp_path):
    bad = write_bad_folder(tmp_path / "photos")
    for name in ("alpha.png", "sixteen_bit.png", "cmyk.jpg", "gray.png"):
        image = decode_image(str(tmp_path / "photos" / name), 64)
        assert image.shape == (3, 64, 64) and image.dtype == torch.uint8, name
    sixteen = decode_image(str(tmp_path / "photos" / "sixteen_bit.png"), 64)
    assert sixteen.float().std() > 10  # scaled to 8 bits, not clipped to white
    for name in bad:
        with pytest.raises(DecodeError, match=name):
            decode_image(str(tmp_path / "photos" / name), 64, max_pixels=4_000_000)


def test_bad_files_are_reported_once_and_nothing_else_is_dropped(tmp_path, caplog):
    bad = write_bad_folder(tmp_path / "photos")
    dm = ColorizationDataModule(source="images", dir=str(tmp_path / "photos"), image_size=32, batch_size=4,
                                num_workers=0, hints=PaperHints(), max_pixels=4_000_000,
                                cache_dir=str(tmp_path / "cache"), max_gray_fraction=1.0)
    with caplog.at_level(logging.INFO):
        dm.prepare_data()
    dm.setup("fit")
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped:")]
    assert sorted(m.split(":")[1].strip().rsplit("/", 1)[-1] for m in skipped) == sorted(bad)
    assert any("5 undecodable" in r.getMessage() for r in caplog.records)
    assert names(dm.files["all"]) == {"astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "alpha.png",
                                      "sixteen_bit.png", "cmyk.jpg", "gray.png"}
    batches = list(dm.train_dataloader())
    assert sum(len(b["rgb"]) for b in batches) == len(dm.files["train"])


def test_training_finishes_on_a_coco_directory_of_bad_files(tmp_path, caplog, cfg_train):
    """The same files as a COCO-format folder whose annotations list every one: ingestion and a real training
    run (fit and test) finish, each bad file is reported once, and every usable photo is used."""
    coco = tmp_path / "coco"
    coco.mkdir()
    bad = write_bad_folder(coco / "train2017")
    for path in catalogue.sample_photo_paths()[4:]:  # enough colour photos for non-empty val and test splits
        shutil.copy(path, coco / "train2017")
    images = [{"id": i, "file_name": path.name, "width": 64, "height": 64}
              for i, path in enumerate(sorted((coco / "train2017").iterdir()), 1)]
    (coco / "annotations").mkdir()
    (coco / "annotations" / "instances_train2017.json").write_text(
        json.dumps({"images": images, "annotations": [], "categories": []}))
    cfg = cfg_train(f"paths.output_dir={tmp_path / 'run'}", "data=coco_dir", f"data.dir={coco}",
                    "data.coco_splits=[train2017]", "data.max_pixels=4000000", "data.image_size=32",
                    "data.batch_size=2", f"paths.cache_dir={tmp_path / 'cache'}")
    with caplog.at_level(logging.INFO):
        result = train(cfg)
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped:")]
    assert sorted(m.split(":")[1].strip().rsplit("/", 1)[-1] for m in skipped) == sorted(bad)  # once each
    summary = next(r.getMessage() for r in caplog.records if "undecodable" in r.getMessage())
    assert "20 photos, 5 undecodable, 3 near-gray filtered out" in summary  # gray, sixteen_bit, hubble_deep_field
    assert sum(int(n) for n in re.findall(r"(?:train|val|test) (\d+)", summary)) == 12  # every colour photo
    assert np.isfinite(result["metrics"]["test/acc"]) and os.path.exists(result["best_checkpoint"])


def test_an_empty_validation_split_is_reported(tmp_path, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in catalogue.sample_photo_paths()[:2]:  # too few photos for three splits: all of them train
        shutil.copy(path, photos)
    dm = ColorizationDataModule(source="images", dir=str(photos), image_size=32, num_workers=0,
                                hints=PaperHints(), cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
        dm.setup("test")
    warnings = [r.getMessage() for r in caplog.records if "split is empty" in r.getMessage()]
    assert len(warnings) == 2 and "data.split_fractions.val" in warnings[0] and "no test metrics" in warnings[1]


def test_worker_skips_a_file_that_breaks_after_cataloguing(tmp_path, caplog):
    dm = ColorizationDataModule(source="sample", image_size=32, batch_size=4, num_workers=0, hints=PaperHints(),
                                cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    dm.setup("fit")
    broken = tmp_path / "gone.jpg"
    broken.write_text("no longer a photo")
    dm.files["train"] = [str(broken)] + dm.files["train"][:3]
    batch = next(iter(dm.train_dataloader()))
    assert len(batch["rgb"]) == 3 and len(batch["errors"]) == 1
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # the same bad file in two epochs
            dm.on_after_batch_transfer({**batch, "errors": list(batch["errors"])}, 0)
    assert sum("gone.jpg" in r.getMessage() for r in caplog.records) == 1  # reported once


def test_datamodule_shapes_with_two_workers(tmp_path):
    dm = ColorizationDataModule(source="sample", image_size=64, batch_size=4, num_workers=2, hints=PaperHints(),
                                cache_dir=str(tmp_path / "cache"), n_bins=16)
    dm.prepare_data()
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    b = len(batch["rgb"])
    assert b == 4 and batch["rgb"].dtype == torch.uint8
    assert batch["hint_ab"].shape == (b, 2, 64, 64) and batch["mask"].shape == (b, 1, 64, 64)


def test_class_counts_come_from_the_train_split_and_are_cached(tmp_path):
    dm = ColorizationDataModule(source="sample", image_size=32, batch_size=4, num_workers=0, hints=PaperHints(),
                                cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    dm.setup("fit")
    counts = dm.bin_counts()
    assert counts.shape == (2, 32) and counts.sum(dim=1).tolist() == [len(dm.files["train"]) * 32 * 32] * 2
    assert len(list((tmp_path / "cache").glob("bin-counts-*.pt"))) == 1
    assert torch.equal(dm.bin_counts(), counts)


def test_evaluation_resolves_its_split_without_caching_or_counting_the_others(tmp_path):
    """evaluate.py reads one split: it must not decode and cache every split, nor count bins over train."""
    from hydra import compose, initialize_config_dir

    from evaluate import photo_paths

    coco = tmp_path / "coco"
    (coco / "train2017").mkdir(parents=True)
    for path in catalogue.sample_photo_paths():
        shutil.copy(path, coco / "train2017")
    images = [{"id": i, "file_name": p.name, "width": 64, "height": 64}
              for i, p in enumerate(sorted((coco / "train2017").iterdir()), 1)]
    (coco / "annotations").mkdir()
    (coco / "annotations" / "instances_train2017.json").write_text(json.dumps({"images": images}))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["data=coco_dir", f"data.dir={coco}", "data.coco_splits=[train2017]",
                                         "data.num_workers=0", f"paths.cache_dir={tmp_path / 'cache'}"])
    split, paths = photo_paths(cfg, 32, 32, [-128.0, 128.0])
    assert split == "test" and 1 <= len(paths) < len(images)
    assert all(p.startswith(str(coco)) for p in paths)
    made = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert not [m for m in made if m.startswith(("resized-", "bin-counts-"))], made
