"""GPU training throughput per backbone (bf16-mixed, 256 px, batch 32): the Lightning pipeline fed by real JPEG
decoding in workers against the same step on a GPU-resident batch (does the data path keep the GPU fed?).

Usage: python -m experiments.bench gpu --dir PHOTOS [--steps 120] [--workers N]   (needs a CUDA GPU; no FiftyOne)
"""

import argparse
import glob
import os
import time

import lightning as L
import torch

from colorization.data import ColorizationDataModule
from colorization.system import ColorizationSystem
from colorization.transforms import PaperHints, prepare_batch


class FolderDataModule(ColorizationDataModule):
    """The project's data module over a plain file list: no catalogue, uniform class weights."""

    def __init__(self, paths, **kwargs):
        super().__init__(**kwargs)
        self.paths = paths

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        self.files = {"train": self.paths, "val": [], "test": []}

    def bin_counts(self):
        return torch.ones(2, self.hparams.n_bins, dtype=torch.float64)


class Throughput(L.Callback):
    def __init__(self, warmup, batch_size):
        self.warmup, self.batch_size, self.start, self.rate = warmup, batch_size, None, None

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.warmup:
            torch.cuda.synchronize()
            self.start = time.perf_counter()

    def on_train_end(self, trainer, *args):
        torch.cuda.synchronize()
        steps = trainer.global_step - self.warmup
        self.rate = steps * self.batch_size / (time.perf_counter() - self.start)


def pipeline_rate(name, paths, args, channels_last):
    dm = FolderDataModule(paths, image_size=args.size, batch_size=args.batch, num_workers=args.workers,
                          hints=PaperHints())
    system = ColorizationSystem({"name": name}, channels_last=channels_last,
                                optimizer=lambda params: torch.optim.Adam(params, lr=1e-3))
    meter = Throughput(args.warmup, args.batch)
    trainer = L.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=args.steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[meter])
    torch.cuda.reset_peak_memory_stats()
    trainer.fit(system, datamodule=dm)
    return meter.rate, torch.cuda.max_memory_allocated() / 2**30


def resident_rate(name, args, channels_last):
    """The same step on one batch already on the GPU: the ceiling the data path should reach."""
    system = ColorizationSystem({"name": name}, channels_last=channels_last).cuda()
    optimizer = torch.optim.Adam(system.parameters(), lr=1e-3)
    rgb = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8, device="cuda")
    for step in range(args.steps):
        if step == args.warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        batch = prepare_batch(rgb, PaperHints())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = system.model_step(batch)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    return (args.steps - args.warmup) * args.batch / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.bench gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--backbones", default="unet,resunet,transunet")
    parser.add_argument("--layouts", default="channels_last,nchw")
    parser.add_argument("--out", default="gpu_bench.md")
    args = parser.parse_args(argv)
    photos = sorted(glob.glob(os.path.join(args.dir, "**", "*.jpg"), recursive=True))
    paths = (photos * (args.steps * args.batch // len(photos) + 2))[: (args.steps + 5) * args.batch]
    torch.backends.cudnn.benchmark = True
    lines = [f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, {args.workers} workers, "
             f"batch {args.batch}, {args.size} px, bf16-mixed, {len(photos)} COCO JPEGs (640x480) decoded per step",
             "", "| backbone | layout | Lightning + JPEG workers (img/s) | GPU-resident batch (img/s) | fed ratio "
             "| peak GPU mem (GiB) |", "|---|---|---|---|---|---|"]
    for name in args.backbones.split(","):
        for layout in args.layouts.split(","):
            channels_last = layout == "channels_last"
            fed, memory = pipeline_rate(name, paths, args, channels_last)
            ceiling = resident_rate(name, args, channels_last)
            lines.append(f"| {name} | {layout} | {fed:.0f} | {ceiling:.0f} | {fed / ceiling:.2f} | {memory:.1f} |")
            print(lines[-1], flush=True)
    open(args.out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
