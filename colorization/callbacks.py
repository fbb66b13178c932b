"""Callbacks: the per-epoch panel of fixed validation images."""

import os

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

from colorization.visualize import panel


class ImagePanel(L.Callback):
    """Each validation epoch: gray input with hint dots | prediction | truth, for the first `n_images` of
    the validation set (fixed images, fixed hints). Logged to W&B or TensorBoard, and saved as a PNG."""

    def __init__(self, n_images: int = 8):
        self.n_images = n_images
        self.rows = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and "pred_ab" in batch:
            k = self.n_images
            self.rows = panel(batch["L"][:k], batch["hint_ab"][:k], batch["mask"][:k], batch["pred_ab"][:k],
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
        folder = os.path.join(trainer.default_root_dir, "panels")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(rows).save(os.path.join(folder, f"{name}.png"))
