"""The catalogue: photo sources -> a persistent FiftyOne dataset with a stored `gray_fraction`, the
paper's gray filter as a view, and seeded train/val/test split tags. Nothing downstream imports FiftyOne:
`split_files` hands out plain file paths.
"""

import hashlib
import logging
import os
from importlib.resources import files

import fiftyone as fo
import numpy as np
import torch
from fiftyone import ViewField as F
from tqdm.auto import tqdm

from colorization.data.decode import MAX_PIXELS, DecodeError, decode_image
from colorization.transforms.color import rgb_to_lab

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
# Colour photos that ship inside installed packages: the offline default (`data=sample`).
SAMPLE_PHOTOS = {
    "skimage.data": ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
                     "ihc.png", "retina.jpg", "motorcycle_left.png"],
    "sklearn.datasets.images": ["china.jpg", "flower.jpg"],
    "matplotlib": ["mpl-data/sample_data/grace_hopper.jpg"],
}


def sample_photo_paths() -> list[str]:
    return [str(files(package).joinpath(name)) for package, names in SAMPLE_PHOTOS.items() for name in names]


def image_paths(directory: str) -> list[str]:
    """Every photo below `directory` (nested), sorted, so the catalogue is the same on every machine."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"data.dir={directory!r} is not a folder")
    found = [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names
             if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(os.path.abspath(p) for p in found)


def _import_coco_dir(name, directory, coco_splits, max_samples):
    dataset = fo.Dataset(name)
    for split in coco_splits:
        dataset.add_dir(dataset_dir=directory, dataset_type=fo.types.COCODetectionDataset, data_path=split,
                        labels_path=f"annotations/instances_{split}.json", label_types=[],
                        max_samples=max_samples)
    return dataset


def _import_zoo_coco(name, directory, coco_splits, max_samples):
    """COCO 2017 through the FiftyOne zoo: downloads what is not yet under `directory`/coco-2017
    (images `<split>/data/`, annotations `raw/`), then imports. `max_samples` limits the download too."""
    import fiftyone.zoo as foz

    if directory:
        fo.config.dataset_zoo_dir = os.path.abspath(directory)
    zoo_splits = ["validation" if s.startswith("val") else s.replace("2017", "") for s in coco_splits]
    return foz.load_zoo_dataset("coco-2017", splits=zoo_splits, max_samples=max_samples, label_types=[],
                                dataset_name=name, shuffle=max_samples is not None, seed=0)


def _import_source(name, source, directory, coco_splits, max_samples):
    if source == "coco":
        return _import_zoo_coco(name, directory, coco_splits, max_samples)
    if source == "coco_dir":
        if not os.path.isdir(directory or ""):
            raise FileNotFoundError(f"data.dir={directory!r} is not a COCO-format folder")
        return _import_coco_dir(name, directory, coco_splits, max_samples)
    paths = sample_photo_paths() if source == "sample" else image_paths(directory)
    if not paths:
        raise FileNotFoundError(f"data.dir={directory!r} holds no photos ({', '.join(IMAGE_EXTENSIONS)})")
    dataset = fo.Dataset(name)
    dataset.add_images(paths[:max_samples])
    return dataset


def gray_fraction(rgb: torch.Tensor, threshold: float) -> float:
    """Fraction of pixels whose chroma sqrt(a^2 + b^2) is below `threshold` (LAB units)."""
    ab = rgb_to_lab(rgb[None])[0, 1:]
    return (ab.norm(dim=0) < threshold).float().mean().item()


def _store_gray_fractions(dataset, threshold: float, max_pixels: int, size: int = 128):
    """Compute `gray_fraction` once per sample (a decode error is stored instead, and reported)."""
    for field, kind in (("gray_fraction", fo.FloatField), ("decode_error", fo.StringField)):
        if not dataset.has_sample_field(field):
            dataset.add_sample_field(field, kind)
    todo = dataset.exists("gray_fraction", False).exists("decode_error", False)
    ids, paths = todo.values("id"), todo.values("filepath")
    fractions, errors = [], []
    for path in tqdm(paths, desc="gray fraction", disable=not paths):
        try:
            fractions.append(gray_fraction(decode_image(path, size, max_pixels=max_pixels), threshold))
            errors.append(None)
        except DecodeError as error:
            fractions.append(None)
            errors.append(str(error))
    if ids:
        todo.set_values("gray_fraction", dict(zip(ids, fractions)), key_field="id")
        todo.set_values("decode_error", dict(zip(ids, errors)), key_field="id")


def _tag_splits(dataset, fractions: dict, seed: int):
    """Seeded split of the decodable photos by tags, once; every split gets at least one photo where there are
    enough photos."""
    if dataset.match_tags(list(SPLITS)).count():
        return
    ids = np.array(dataset.exists("gray_fraction").values("id"))
    np.random.default_rng(seed).shuffle(ids)
    counts = [max(1, round(fractions[s] * len(ids))) if len(ids) >= len(SPLITS) else 0 for s in SPLITS[1:]]
    edges = np.cumsum([len(ids) - sum(counts)] + counts)
    for split, part in zip(SPLITS, np.split(ids, edges[:-1])):
        dataset.select(part.tolist()).tag_samples(split)


def catalogue_name(source: str, directory: str | None, coco_splits, max_samples) -> str:
    key = f"{os.path.abspath(directory) if directory else ''}|{sorted(coco_splits)}|{max_samples}"
    return f"colorization-{source}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def build_catalogue(source: str, directory: str | None = None, name: str | None = None,
                    coco_splits=("train2017", "val2017"), max_samples: int | None = None,
                    gray_threshold: float = 5.0, split_fractions: dict | None = None, seed: int = 0,
                    max_pixels: int = MAX_PIXELS):
    """The persistent FiftyOne dataset for a source, built on the first call and reused after."""
    name = name or catalogue_name(source, directory, coco_splits, max_samples)
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
    else:
        log.info("building FiftyOne dataset %s from %s", name, source)
        dataset = _import_source(name, source, directory, list(coco_splits), max_samples)
        dataset.persistent = True
    _store_gray_fractions(dataset, gray_threshold, max_pixels)
    _tag_splits(dataset, split_fractions or {"train": 0.8, "val": 0.1, "test": 0.1}, seed)
    return dataset


def colour_view(dataset, max_gray_fraction: float = 0.7):
    """The paper's filter: drop photos with more than 70% near-gray pixels (and undecodable ones)."""
    return dataset.exists("gray_fraction").match(F("gray_fraction") <= max_gray_fraction)


def split_files(dataset, max_gray_fraction: float = 0.7) -> dict[str, list[str]]:
    """Plain file lists per split (and `all`), for workers that cannot take FiftyOne views."""
    view = colour_view(dataset, max_gray_fraction)
    out = {split: sorted(view.match_tags(split).values("filepath")) for split in SPLITS}
    out["all"] = sorted(view.values("filepath"))
    return out


def decode_errors(dataset) -> dict[str, str]:
    bad = dataset.exists("decode_error")
    return dict(zip(bad.values("filepath"), bad.values("decode_error")))
