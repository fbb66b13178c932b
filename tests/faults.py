"""Faults injected into real training processes (used through `+callbacks.fault=...` on the command line)."""

import errno
import json
import os
import signal

import lightning as L
import torch


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
            batch["L"].fill_(float("nan"))


class StateAcrossStep(L.Callback):
    """Write `{out_dir}/rank{rank}.json` on every DDP rank: which parameters and buffers the batch at global step
    `step` changed (snapshot taken right before it, compared right after its optimiser step), and which
    parameters and buffers are non-finite after it."""

    def __init__(self, step: int, out_dir: str):
        self.step, self.out_dir, self.before = step, out_dir, None

    @staticmethod
    def state(pl_module) -> dict:
        return {name: t.detach().clone() for name, t in [*pl_module.named_parameters(), *pl_module.named_buffers()]}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.before = self.state(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.before is None:
            return
        after, before, self.before = self.state(pl_module), self.before, None
        report = {"step": self.step, "tensors": len(after),
                  "changed": [k for k in after if not torch.equal(after[k], before[k])],
                  "nonfinite": [k for k, t in after.items() if t.is_floating_point() and not t.isfinite().all()]}
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(report, f)


class WrongValidationTargetsAtEpoch(L.Callback):
    """From epoch `epoch` on, validation compares the predictions with shifted bins: that epoch's val/acc drops
    below the earlier ones (as an overfitting run's last epoch would), while the network itself is unchanged."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if trainer.current_epoch >= self.epoch and not trainer.sanity_checking:
            low, high = pl_module.hparams.ab_range  # ab moved by half the range: each bin moves by half the bins
            batch["ab"].copy_(torch.remainder(batch["ab"] - low + (high - low) / 2, high - low) + low)


class FillDiskAtEpoch(L.Callback):
    """Fill the disk that holds `path` (another program's growing file) at the start of epoch `epoch`: that epoch's
    checkpoint saves then fail with ENOSPC."""

    def __init__(self, epoch: int, path: str):
        self.epoch, self.path = epoch, path

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch and trainer.is_global_zero:
            block = bytes(1 << 20)
            with open(self.path, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(block)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
