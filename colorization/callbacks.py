"""Callbacks: the per-epoch panel of fixed validation images, per-epoch seeding, a checkpoint on SIGTERM."""

import os
import signal

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from colorization.image_io import save_image
from colorization.transforms.hints import derive_seed
from colorization.visualize import panel


class ImagePanel(L.Callback):
    """Each validation epoch: gray input with hint dots | prediction | truth, for the first `n_images` of
    the validation set (fixed images, fixed hints). Logged to W&B or TensorBoard, and saved as a PNG."""

    def __init__(self, n_images: int = 8):
        self.n_images = n_images
        self.rows = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and outputs is not None:  # outputs: what validation_step returned
            k = self.n_images
            self.rows = panel(batch["L"][:k], batch["hint_ab"][:k], batch["mask"][:k], outputs["pred_ab"][:k],
                              batch["ab"][:k])

    def on_validation_epoch_end(self, trainer, pl_module):
        if self.rows is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.log_panel(trainer, self.rows, f"epoch{trainer.current_epoch:03d}")
        self.rows = None

    @staticmethod
    def log_panel(trainer, rows: np.ndarray, name: str):
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/panel", [rows], step=trainer.global_step,
                                 caption=["input + hints | prediction | truth"])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/panel", rows, trainer.global_step, dataformats="HWC")
        save_image(rows, os.path.join(trainer.default_root_dir, "panels", f"{name}.png"))  # whole, or not at all


class SeedEachEpoch(L.Callback):
    """Reseed every RNG at each epoch start from (seed, epoch): the shuffle order and training hints of an
    epoch then depend only on its number, so a run resumed from an epoch's checkpoint repeats exactly what
    an uninterrupted run does (with trainer.deterministic=true)."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _seed(self, trainer):
        seed = derive_seed(self.seed + trainer.global_rank, trainer.current_epoch) % 2**32  # seed_everything's range
        L.seed_everything(seed, workers=True, verbose=False)

    def on_train_epoch_start(self, trainer, pl_module):
        self._seed(trainer)

    def on_train_start(self, trainer, pl_module):
        self._seed(trainer)  # Lightning skips on_train_epoch_start for the epoch a resumed run starts with


class SaveOnSigterm(L.Callback):
    """A cluster scheduler's SIGTERM: finish the batch in flight, save last.ckpt and exit, on every rank at the
    same batch, so `ckpt_path=last` resumes from there.

    Its own handler only notes the signal; the ranks then agree at the end of each batch. Why not Lightning's
    (2.6): under DDP it broadcasts from inside the signal handler, which collides with whatever collective the
    other rank is in (seen here: a gloo size mismatch, every process dead, no checkpoint).
    """

    def __init__(self, dirpath: str):
        self.dirpath = dirpath
        self.received = False
        self.saved = None

    def on_train_start(self, trainer, pl_module):  # after Lightning installed its handlers, which restore at teardown
        signal.signal(signal.SIGTERM, self._note)

    def _note(self, signum, frame):
        self.received = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.strategy.reduce_boolean_decision(self.received, all=False):  # any rank's notice stops all
            raise SIGTERMException

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, SIGTERMException):
            self.saved = os.path.join(self.dirpath, "last.ckpt")
            trainer.save_checkpoint(self.saved)  # every rank calls it: rank 0 writes, the others wait
