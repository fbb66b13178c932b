"""Faults injected into real training processes (used through `+callbacks.fault=...` on the command line)."""

import os
import signal

import lightning as L


class SignalAtStep(L.Callback):
    """Send this process `signal_name` when training reaches global step `step` (mid-epoch by choice), on every
    DDP rank (as a scheduler signals every task) or on `rank` only."""

    def __init__(self, step: int, signal_name: str = "SIGKILL", rank: int | None = None):
        self.step, self.signum, self.rank = step, getattr(signal, signal_name), rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and self.rank in (None, trainer.global_rank):
            os.kill(os.getpid(), self.signum)


class NaNInputAtStep(L.Callback):
    """Make the loss non-finite at global step `step` on one DDP rank only (a bad batch on one device)."""

    def __init__(self, step: int, rank: int = 0):
        self.step, self.rank = step, rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            batch["input"].fill_(float("nan"))
