"""The catalogue's gray filter rules, importing until `max_samples` photos pass, and settings that must take effect
on an existing FiftyOne dataset (a real database in a temporary folder; tiny synthetic photos of known colour)."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import lab2rgb

from colorization.checks import ConfigError
from colorization.data import ColorizationDataModule, catalogue
from colorization.transforms import PaperHints

ROOT = Path(__file__).resolve().parents[1]

# (a, b) at L = 60 per kind of photo, and what each rule does with it (max_gray_fraction 0.7):
#   gray  (0, 0):   chroma 0, a/b in bins 16     -> dropped by both rules
#   pale  (5, 5):   chroma 7, a/b in bins 16     -> chroma keeps it at gray_threshold 5, drops it at 10; paper drops
#   mild  (12, 12): chroma 17, a/b in bins 17    -> chroma keeps it; paper drops it
#   vivid (40, 40): chroma 57, a/b in bins 21    -> both keep it
#   half: left half gray, right half vivid       -> both keep it at 0.7, both drop it at 0.4
KINDS = {"gray": 2, "pale": 3, "mild": 3, "vivid": 6, "half": 2}
AB = {"gray": (0, 0), "pale": (5, 5), "mild": (12, 12), "vivid": (40, 40)}


def colour(ab) -> np.ndarray:
    return np.round(lab2rgb(np.array([[[60.0, *ab]]])) * 255).astype(np.uint8)[0, 0]


def write_photos(folder, kinds=KINDS, size=32):
    folder.mkdir()
    for kind, count in kinds.items():
        for i in range(count):
            rgb = np.empty((size, size, 3), np.uint8)
            if kind == "half":
                rgb[:, : size // 2], rgb[:, size // 2:] = colour(AB["gray"]), colour(AB["vivid"])
            else:
                rgb[:] = colour(AB[kind])
            Image.fromarray(rgb).save(folder / f"{kind}{i}.png")
    return folder


def kinds(paths) -> dict[str, int]:
    out = {}
    for path in paths:
        kind = path.rsplit("/", 1)[-1].rstrip("0123456789.png")
        out[kind] = out.get(kind, 0) + 1
    return out


def files(folder, cache, **settings) -> dict[str, list[str]]:
    """The file lists a training run on `folder` gets (prepare_data + setup, as Lightning calls them)."""
    dm = ColorizationDataModule(source="images", dir=str(folder), image_size=16, batch_size=4, num_workers=0,
                                hints=PaperHints(), cache_dir=str(cache), **settings)
    dm.prepare_data()
    dm.setup()
    return dm.files


def messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def test_the_two_rules_on_known_colours(tmp_path):
    folder = write_photos(tmp_path / "photos")
    assert kinds(files(folder, tmp_path / "cache", gray_filter="paper")["all"]) == {"vivid": 6, "half": 2}
    assert kinds(files(folder, tmp_path / "cache", gray_filter="chroma")["all"]) == {"pale": 3, "mild": 3, "vivid": 6,
                                                                                     "half": 2}
    with pytest.raises(ConfigError, match="data.gray_filter=hsv: choose one of paper, chroma"):
        files(folder, tmp_path / "cache", gray_filter="hsv")


def test_changing_gray_threshold_recomputes_the_measures(tmp_path, caplog):
    folder = write_photos(tmp_path / "photos")
    assert kinds(files(folder, tmp_path / "cache", gray_threshold=5.0)["all"])["pale"] == 3
    with caplog.at_level(logging.INFO):
        assert "pale" not in kinds(files(folder, tmp_path / "cache", gray_threshold=10.0)["all"])
    assert "data.gray_threshold 5.0 -> 10.0: recomputing all 16 photos" in messages(caplog)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        files(folder, tmp_path / "cache", gray_threshold=10.0)
    assert "gray measures: reused 16" in messages(caplog)


def test_changing_max_gray_fraction_changes_the_photos_and_their_splits(tmp_path, caplog):
    folder = write_photos(tmp_path / "photos")
    first = files(folder, tmp_path / "cache", max_gray_fraction=0.7)
    assert kinds(first["all"])["half"] == 2 and len(first["all"]) == 14
    with caplog.at_level(logging.INFO):
        second = files(folder, tmp_path / "cache", max_gray_fraction=0.4)
    assert "half" not in kinds(second["all"]) and len(second["all"]) == 12
    # the split is drawn from the photos kept: exactly 80/10/10 of them, and the FiftyOne tags say the same
    assert [len(second[s]) for s in catalogue.SPLITS] == [10, 1, 1]
    assert "data.max_gray_fraction 0.7 -> 0.4" in messages(caplog)
    dataset = catalogue.fo.load_dataset(catalogue.catalogue_name("images", str(folder), ("train2017", "val2017")))
    for split in catalogue.SPLITS:
        assert sorted(dataset.match_tags(split).values("filepath")) == second[split]


def test_changing_the_seed_redraws_the_split_and_going_back_restores_it(tmp_path, caplog):
    folder = write_photos(tmp_path / "photos")
    first = files(folder, tmp_path / "cache", seed=0)
    with caplog.at_level(logging.INFO):
        other = files(folder, tmp_path / "cache", seed=1)
    assert other["all"] == first["all"] and (other["val"], other["test"]) != (first["val"], first["test"])
    assert "data.seed 0 -> 1" in messages(caplog)
    assert files(folder, tmp_path / "cache", seed=0) == first


def test_changing_split_fractions_redraws_the_split(tmp_path, caplog):
    folder = write_photos(tmp_path / "photos")
    assert [len(files(folder, tmp_path / "cache")[s]) for s in catalogue.SPLITS] == [12, 1, 1]
    with caplog.at_level(logging.INFO):
        half = files(folder, tmp_path / "cache", split_fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    assert [len(half[s]) for s in catalogue.SPLITS] == [6, 4, 4]
    assert "data.split_fractions" in messages(caplog)


def test_a_split_is_stable_when_photos_are_added():
    keys = [f"photo{i}.jpg" for i in range(200)]
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    before = dict(zip(keys, catalogue.assign_splits(keys, fractions, 0)))
    after = dict(zip(keys + ["new.jpg"], catalogue.assign_splits(keys + ["new.jpg"], fractions, 0)))
    assert sum(before[k] != after[k] for k in keys) <= 2  # at most the photos at the two cuts move
    assert catalogue.assign_splits(keys, fractions, 1) != catalogue.assign_splits(keys, fractions, 0)


def fake_zoo(paths):
    """A stand-in for the FiftyOne zoo's COCO split: load(n) gives the first n photos of a fixed order; records
    every request."""
    requests = []

    def loader(directory, split):
        def load(n):
            requests.append(n)
            return paths[:n]
        return load
    return loader, requests


def test_coco_imports_in_batches_until_max_samples_photos_pass(tmp_path, monkeypatch, caplog):
    """data=coco keeps `max_samples` photos that pass the filter, asking the zoo for more only as needed, and
    stops when the split runs out. 1 in 4 photos passes the paper's rule here."""
    folder = write_photos(tmp_path / "zoo", {"vivid": 10, "mild": 30})
    paths = sorted(str(p) for p in folder.iterdir())
    order = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))]
    loader, requests = fake_zoo(order)
    monkeypatch.setattr(catalogue, "zoo_loader", loader)
    build = dict(coco_splits=["train2017"], gray_filter="paper", name="test-fake-zoo")

    dataset = catalogue.build_catalogue("coco", str(tmp_path / "zoo-dir"), max_samples=4, **build)
    kept = catalogue.split_files(dataset, "paper", max_samples=4)["all"]
    assert kinds(kept) == {"vivid": 4}
    assert requests[0] == 4 and len(requests) >= 2  # first what is wanted, then more at the pass rate seen
    assert len(dataset) < len(paths)  # not the whole split
    first_four = [p for p in order if "vivid" in p][:4]  # the first to pass, in the source's order
    assert sorted(kept) == sorted(first_four)

    requests.clear()
    with caplog.at_level(logging.INFO):
        dataset = catalogue.build_catalogue("coco", str(tmp_path / "zoo-dir"), max_samples=4, **build)
    assert not requests and "imported" not in messages(caplog)  # enough pass already: no zoo call

    dataset = catalogue.build_catalogue("coco", str(tmp_path / "zoo-dir"), max_samples=1000, **build)
    assert len(dataset) == len(paths) and requests[-1] > len(paths)  # ran out: every photo imported once
    assert kinds(catalogue.split_files(dataset, "paper", max_samples=1000)["all"]) == {"vivid": 10}
    requests.clear()
    catalogue.build_catalogue("coco", str(tmp_path / "zoo-dir"), max_samples=1000, **build)
    assert not requests  # the split is known to be exhausted


def test_the_paper_tables_use_the_papers_filter_and_plain_runs_the_chroma_rule():
    from hydra import compose, initialize_config_dir


    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        for experiment in ("paper_table1", "paper_table2"):
            for data in ("coco", "coco_dir", "images"):
                cfg = compose("train", overrides=[f"experiment={experiment}", f"data={data}"])
                assert cfg.data.gray_filter == "paper", (experiment, data)
        assert compose("train").data.gray_filter == "chroma"


def test_the_bundled_mongodb_warning_is_silenced_and_other_database_warnings_are_not(caplog):
    """FiftyOne's warning that MongoDB 6 (what `make setup` installs) is the oldest it supports is dropped; the
    message is still FiftyOne's own wording, and the database's other warnings still reach the user."""
    import inspect

    import fiftyone.core.odm.database as database

    assert catalogue.OLDEST_MONGODB in inspect.getsource(database)
    with caplog.at_level(logging.WARNING, logger=database.logger.name):
        database.logger.warning(catalogue.OLDEST_MONGODB + ". Please refer to https://deprecation.voxel51.com")
        database.logger.warning("the database is unreachable")
    assert [record.getMessage() for record in caplog.records] == ["the database is unreachable"]
