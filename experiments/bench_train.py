"""Training figures: images/s of the Lightning pipeline (ColorizationSystem + ColorizationDataModule + Trainer)
against a bare PyTorch loop over the same model, batches, data and optimiser; and, in a fresh process per
backbone, one training step's time and peak resident memory: the `training` and `memory` sections of
`python -m experiments.bench`. The memory section runs each step as

    python -m experiments.bench_train --step NAME --batch 32 --size 256   (prints one JSON line)
"""

import argparse
import json
import os
import resource
import statistics
import time
from functools import partial

import lightning as L
import torch
from omegaconf import OmegaConf

from colorization.data import ColorizationDataModule
from colorization.system import ColorizationSystem
from colorization.transforms import PaperHints, class_weights, prepare_batch

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conf")


def default_net(name: str) -> dict:
    """The backbone as `model=<name>` configures it (default widths)."""
    return OmegaConf.to_container(OmegaConf.load(os.path.join(CONF, "model", f"{name}.yaml")))


def datamodule(photo_dir: str | None, size: int, batch_size: int, cache_dir: str) -> ColorizationDataModule:
    """COCO-mini where it is (else the embedded photos), read from the resize cache in the main process."""
    source = {"source": "coco_dir", "dir": photo_dir} if photo_dir else {"source": "sample"}
    dm = ColorizationDataModule(**source, image_size=size, batch_size=batch_size, num_workers=0, hints=PaperHints(),
                                cache_dir=cache_dir)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def new_system(net: dict, **kwargs) -> ColorizationSystem:
    torch.manual_seed(0)  # the same initial weights in every variant
    return ColorizationSystem(net, optimizer=partial(torch.optim.Adam, lr=1e-3), **kwargs)


class BareLoop:
    """The same training step without Lightning: the data module's loader, prepare_batch, forward, loss, Adam."""

    def __init__(self, dm, net: dict, bf16_mixed: bool = False, **system_kwargs):
        self.dm, self.system, self.bf16_mixed = dm, new_system(net, **system_kwargs), bf16_mixed
        self.losses = []
        self.system.class_weights.copy_(class_weights(dm.bin_counts(), self.system.hparams.uniform_mix))
        self.optimizer = self.system.configure_optimizers()
        self.batches = iter(())

    def step(self) -> int:
        """One step; returns its number of images."""
        batch = next(self.batches, None)
        if batch is None:  # a new epoch
            self.batches = iter(self.dm.train_dataloader())
            batch = next(self.batches)
        inputs = prepare_batch(batch["rgb"], self.dm.hints)
        with torch.autocast("cpu", torch.bfloat16, enabled=self.bf16_mixed):  # what precision=bf16-mixed does
            loss = self.system.model_step(inputs)[0]
        self.losses.append(loss.item())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return len(batch["rgb"])


class Lockstep(L.Callback):
    """After each Lightning step, one step of each bare loop: the variants alternate step by step, so load from
    other processes, which comes and goes over seconds to minutes, falls on all of them alike. Each Lightning
    step is timed from the end of the bare steps before it to its own end (data, hooks and logging included)."""

    def __init__(self, bare: dict, warmup: int):
        self.bare, self.warmup, self.last = bare, warmup, None
        self.rates = {"lightning": [], **{name: [] for name in bare}}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        now = time.perf_counter()
        timed = trainer.global_step > self.warmup
        if timed:
            self.rates["lightning"].append(len(batch["rgb"]) / (now - self.last))
        for name, loop in self.bare.items():
            start = time.perf_counter()
            images = loop.step()
            if timed:
                self.rates[name].append(images / (time.perf_counter() - start))
        self.last = time.perf_counter()


def training_figures(dm, net: dict, warmup: int = 2, steps: int = 24) -> dict:
    """Median images/s per step of the Lightning pipeline and the bare loops (channels-last, the default, and
    NCHW) run in lockstep, and the median over steps of the Lightning / bare ratio."""
    bare = {"bare": BareLoop(dm, net), "bare nchw": BareLoop(dm, net, channels_last=False),
            "bare bf16-mixed": BareLoop(dm, net, bf16_mixed=True)}
    system, lockstep = new_system(net), Lockstep(bare, warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=warmup + steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[lockstep])
    start = time.perf_counter()
    trainer.fit(system, datamodule=dm)
    rates = lockstep.rates
    return {**{name: statistics.median(r) for name, r in rates.items()}, "steps": len(rates["bare"]),
            "ratio": statistics.median(lt / b for lt, b in zip(rates["lightning"], rates["bare"])),
            "fit seconds": time.perf_counter() - start, "system": system,
            "losses": {name: loop.losses for name, loop in bare.items()}}


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM where Linux has it: getrusage's maxrss also counts the
    parent's peak, which a child started by fork/vfork + exec inherits (the bench's own 1.5 GB here)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_figures(name: str, batch_size: int, size: int) -> dict:
    """One training step of backbone `name` (default widths) on random photos; run in a fresh process. One step
    is enough for the peak: Adam's state, first allocated after it, is a few MB against GBs of activations."""
    system = new_system(default_net(name))
    optimizer = system.configure_optimizers()
    rgb = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    start = time.perf_counter()
    batch = prepare_batch(rgb, PaperHints())
    prepared = time.perf_counter()
    loss = system.model_step(batch)[0]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    end = time.perf_counter()
    return {"backbone": name, "batch": batch_size, "size": size, "prepare_ms": (prepared - start) * 1000,
            "step_s": end - prepared, "peak_rss_mb": peak_rss_mb()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", required=True, help="backbone name: one training step, JSON to stdout")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(step_figures(args.step, args.batch, args.size)))


if __name__ == "__main__":
    main()
