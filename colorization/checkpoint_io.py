"""Checkpoints written so that a failed save (a full disk, a folder made read-only) is an error and leaves the
previous file whole."""

import io
import os

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from colorization.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's own save ignores a PermissionError (it then reports a checkpoint that was never written) and
    writes through a temporary file in the system's temporary folder, copied over the checkpoint where that
    folder is on another disk: a full disk truncated last.ckpt. Here the temporary file sits beside the
    checkpoint and is renamed over it once complete (`atomic_path`)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's fsspec path
            return super().save_checkpoint(checkpoint, path, storage_options)
        data = io.BytesIO()  # serialised first: torch's writer turns a failed write into a vague RuntimeError
        torch.save(checkpoint, data)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            with atomic_path(str(path)) as partial, open(partial, "wb") as f:
                f.write(data.getbuffer())
                f.flush()
                os.fsync(f.fileno())
        except OSError as error:
            if error.filename is None:  # a failed write names no file: name it
                raise OSError(error.errno, error.strerror, str(path)) from error
            raise
