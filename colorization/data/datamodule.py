"""The LightningDataModule: catalogue -> plain file lists -> workers decode -> device transforms."""

import hashlib
import json
import logging
import os

import lightning as L
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from colorization.atomic import atomic_path
from colorization.checks import ConfigError
from colorization.data.decode import MAX_PIXELS, CachedImages, ImageFiles, build_cache, cache_base, collate, find_cache
from colorization.data.gray import GRAY_FILTERS
from colorization.transforms import ab_to_bins, bin_counts, rgb_to_lab
from colorization.transforms.hints import Batch, derive_seed, prepare_batch

log = logging.getLogger(__name__)


class EpochShuffle(torch.utils.data.Sampler):
    """A fresh order each epoch drawn from (seed, epoch) alone: a run resumed at an epoch boundary sees the
    same order as an uninterrupted one. Lightning calls set_epoch (and wraps it for DDP)."""

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self):
        return self.size


class ColorizationDataModule(L.LightningDataModule):
    def __init__(self, source: str = "sample", dir: str | None = None, dataset_name: str | None = None,
                 coco_splits=("train2017", "val2017"), max_samples: int | None = None,
                 gray_filter: str = "chroma", gray_threshold: float = 5.0, max_gray_fraction: float = 0.7,
                 split_fractions: dict | None = None,
                 image_size: int = 256, resize: str = "crop", max_pixels: int = MAX_PIXELS,
                 batch_size: int = 32, eval_batch_size: int | None = None, num_workers: int = 2,
                 hints=None, n_bins: int = 32, ab_range=(-128.0, 128.0), seed: int = 0,
                 cache_dir: str = ".cache/colorization", cache_resized: bool = True):
        super().__init__()
        self.save_hyperparameters(ignore=["hints"], logger=False)
        self.hints = hints
        self.files: dict[str, list[str]] = {}
        self.reported: set[str] = set()

    # -- main process, once: the catalogue and the class statistics ------------------------------------
    @property
    def _files_json(self) -> str:
        h = self.hparams
        key = json.dumps([h.source, os.path.abspath(h.dir) if h.dir else None, h.dataset_name, list(h.coco_splits),
                          h.max_samples, h.gray_filter, h.gray_threshold, h.max_gray_fraction, h.split_fractions,
                          h.seed, h.max_pixels])
        return os.path.join(h.cache_dir, f"files-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json")

    def resolve_files(self) -> dict[str, list[str]]:
        """The catalogue -> each split's plain file list, written to the files JSON (and `self.files`). Decodes
        nothing beyond the catalogue's own measuring: no resize cache, no bin counts (evaluate.py needs no more)."""
        from colorization.data import catalogue  # FiftyOne is imported only where the catalogue is built

        h = self.hparams
        if h.gray_filter not in GRAY_FILTERS:  # before any work: one line, exit code 2 (train.py)
            raise ConfigError(f"data.gray_filter={h.gray_filter}: choose one of {', '.join(GRAY_FILTERS)}")
        fractions = dict(h.split_fractions) if h.split_fractions else None
        try:
            dataset = catalogue.build_catalogue(h.source, h.dir, h.dataset_name, h.coco_splits, h.max_samples,
                                                h.gray_threshold, fractions, h.seed, h.max_pixels,
                                                gray_filter=h.gray_filter, max_gray_fraction=h.max_gray_fraction,
                                                num_workers=h.num_workers, report=self._log_once)
            selection = catalogue.select(dataset, h.gray_filter, h.max_gray_fraction, h.max_samples, fractions,
                                         h.seed)
            errors = catalogue.decode_errors(dataset)
        except ConnectionError as error:  # what FiftyOne raises when its MongoDB cannot be reached
            raise ConfigError(f"cannot reach the FiftyOne database ({error}): set FIFTYONE_DATABASE_URI to a "
                              "running MongoDB, or unset it so FiftyOne starts its own in FIFTYONE_DATABASE_DIR "
                              "(default ~/.fiftyone)") from None
        files = selection.files
        for message in errors.values():
            self._log_once(logging.WARNING, f"skipped: {message}")
        splits = ", ".join(f"{k} {len(v)}" for k, v in files.items() if k != "all")
        over = f", {selection.over_max} over data.max_samples" if selection.over_max else ""
        self._log_once(logging.INFO, f"catalogue {dataset.name}: {selection.photos} photos, {len(errors)} undecodable, "
                                     f"{selection.gray} near-gray filtered out (data.gray_filter={h.gray_filter}, "
                                     f"max_gray_fraction={h.max_gray_fraction}){over}; {splits}")
        os.makedirs(h.cache_dir, exist_ok=True)
        with atomic_path(self._files_json) as tmp, open(tmp, "w") as f:
            json.dump({"dataset": dataset.name, "files": files, "decode_errors": errors}, f)
        self.files = files
        return files

    def prepare_data(self):
        files = self.resolve_files()
        h = self.hparams
        if h.cache_resized:  # decode and resize each photo once; the workers then read rows
            for split in ("train", "val", "test"):
                build_cache(h.cache_dir, files[split], h.image_size, h.resize, h.max_pixels, h.num_workers,
                            desc=f"resize cache ({split})")
        self.bin_counts()  # computed here, once, so every DDP rank then reads the cache

    def setup(self, stage: str | None = None):
        with open(self._files_json) as f:
            self.files = json.load(f)["files"]
        if stage == "fit" and not self.files["train"]:
            raise ValueError(f"data: no training photos left after the gray filter ({self._files_json})")
        split = {"fit": "val", "validate": "val", "test": "test"}.get(stage)
        if split and not self.files[split]:
            without = "no best checkpoint (last.ckpt is still saved)" if split == "val" else "no test metrics"
            self._log_once(logging.WARNING, f"data: the {split} split is empty after the gray filter, so {without}; "
                                            f"add photos or raise data.split_fractions.{split}")

    def _log_once(self, level: int, message: str) -> None:
        """Each bad file and the summary once per run: prepare_data runs again for testing, and a worker meets
        a file that broke after cataloguing in every epoch."""
        if message not in self.reported:
            self.reported.add(message)
            log.log(level, message)

    # -- loaders ------------------------------------------------------------------------------------------
    def _dataset(self, paths: list[str]):
        """The resize cache's rows where `prepare_data` built one for exactly these files, else decoding."""
        h = self.hparams
        cache = find_cache(h.cache_dir, paths, h.image_size, h.resize, h.max_pixels) if h.cache_resized else None
        return CachedImages(cache) if cache else ImageFiles(paths, h.image_size, h.resize, h.max_pixels)

    def _loader(self, split: str, shuffle: bool = False, batch_size: int | None = None) -> DataLoader:
        h = self.hparams
        dataset = self._dataset(self.files[split])
        return DataLoader(dataset, batch_size=batch_size or h.eval_batch_size or h.batch_size,
                          sampler=EpochShuffle(len(dataset), h.seed) if shuffle else None,
                          # its own generator: creating an iterator then draws nothing from the global RNG,
                          # whose per-epoch state the training hints use (SeedEachEpoch)
                          generator=torch.Generator(),
                          num_workers=h.num_workers, collate_fn=collate,
                          persistent_workers=h.num_workers > 0, pin_memory=torch.cuda.is_available(), drop_last=False)

    def train_dataloader(self):
        return self._loader("train", shuffle=True, batch_size=self.hparams.batch_size)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def predict_dataloader(self):
        return self._loader("test")

    # -- on the device, batched ---------------------------------------------------------------------------
    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> Batch:
        """The decoded photos (`collate`'s rgb, index, errors) -> the Batch the system reads, hints drawn here."""
        for message in batch["errors"]:
            self._log_once(logging.WARNING, f"skipped: {message}")
        training = self.trainer is not None and self.trainer.training
        seeds = None if training else derive_seed(self.hparams.seed, batch["index"])
        return prepare_batch(batch["rgb"], self.hints, seeds)

    # -- rebalancing statistics over the train split (never val or test) ---------------------------------
    def bin_counts(self) -> torch.Tensor:
        """(2, n_bins) counts of a and b bins over the train split, cached on disk."""
        h = self.hparams
        with open(self._files_json) as f:
            train = json.load(f)["files"]["train"]
        # keyed like the resize cache, by the photos' sizes and modification times too: a replaced photo recounts
        key = json.dumps([cache_base(h.cache_dir, train, h.image_size, h.resize, h.max_pixels), h.n_bins,
                          list(h.ab_range)])
        path = os.path.join(h.cache_dir, f"bin-counts-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt")
        counts = load_counts(path, (2, h.n_bins))
        if counts is not None:
            return counts
        counts = torch.zeros(2, h.n_bins, dtype=torch.float64)
        loader = DataLoader(self._dataset(train), batch_size=h.batch_size, num_workers=h.num_workers,
                            collate_fn=collate)
        for batch in tqdm(loader, desc="bin counts (train split)"):
            if len(batch["rgb"]):
                ab = rgb_to_lab(batch["rgb"])[:, 1:]
                counts += bin_counts(ab_to_bins(ab, h.n_bins, *h.ab_range), h.n_bins)
        with atomic_path(path) as tmp:
            torch.save(counts, tmp)
        return counts


def load_counts(path: str, shape: tuple) -> torch.Tensor | None:
    """A tensor saved with `torch.save` (the bin counts), or None when it is missing or unusable (cut short,
    overwritten, another shape, not finite): the caller recomputes it."""
    if not os.path.exists(path):
        return None
    try:
        counts = torch.load(path, weights_only=True)
        if isinstance(counts, torch.Tensor) and counts.shape == shape and counts.isfinite().all():
            return counts
    except Exception:  # whatever torch raises on a damaged file; the file is replaced either way
        pass
    log.warning(f"{path}: unreadable or damaged; recomputing it")
    return None
