"""Train a model on photos held in memory: the reference model on a lent GPU, and quick recipe experiments.

    python -m experiments.train_reference --photos DIR [DIR ...] --out DIR --minutes 8 [--size 256] [OVERRIDES]

The system, the recipe and the trainer's precision and profiler come from conf/train.yaml exactly as
`python train.py OVERRIDES` composes them (so the defaults are train.py's; the trainer's length, devices and
logging are this script's own options); only the data differ: the photos are decoded once into one uint8 tensor on
the device (shorter side scaled to `--load-size`, default `--size` x 9/8, centre square), and every step takes
random `--size` crops with random flips from it. No FiftyOne and no loader workers, so it runs where only torch,
Lightning, Hydra and Kornia are installed (a bare GPU machine). Near-gray photos (`data.gray_filter`) and photos
whose shorter side is under half of `--size` are left out; `--val` photos (seeded) are held out for validation.
`--init` starts from a checkpoint's weights (a fine-tune). Each validation logs `val/psnr` (the training hints) and
`val/psnr_0pts` / `val/psnr_10pts` (no hints; 10 points); `--monitor` says which one chooses checkpoints/best.ckpt.
"""

import argparse
import json
import os
import sys
import time

import hydra
import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import ModelCheckpoint

from colorization.checkpoint import read_checkpoint
from colorization.data.decode import IMAGE_EXTENSIONS, DecodeError, load_rgb
from colorization.data.gray import gray_measures, is_gray
from colorization.hydra_utils import register_resolvers
from colorization.transforms import PointHints, ab_to_bins, bin_counts, prepare_batch, rgb_to_lab

VAL_SEED = 1_000_003  # validation photo i gets hint seed i + VAL_SEED, at every validation
CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")


def load_photos(dirs: list[str], size: int, load: int, gray_filter: str, gray_threshold: float,
                max_gray_fraction: float):
    """(N, 3, load, load) uint8 centre squares, and the paths kept; reasons for the others."""
    from PIL import Image

    paths = sorted(os.path.join(root, f) for d in dirs for root, _, files in os.walk(d) for f in files
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    kept, images, dropped = [], [], {}
    for path in paths:
        try:
            image = load_rgb(path)
        except DecodeError as error:
            dropped[path] = str(error)
            continue
        if min(image.size) < size // 2:
            dropped[path] = f"too small ({image.size[0]}x{image.size[1]})"
            continue
        side = min(image.size)
        left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
        square = image.crop((left, top, left + side, top + side)).resize((load, load), Image.Resampling.LANCZOS)
        rgb = torch.from_numpy(np.asarray(square).copy()).permute(2, 0, 1)
        if is_gray(gray_measures(rgb, gray_threshold), gray_filter, max_gray_fraction):
            dropped[path] = "near-gray"
            continue
        kept.append(path)
        images.append(rgb)
    return torch.stack(images), kept, dropped


class PhotoTensorData(L.LightningDataModule):
    """Photos resident on the device; random crops and flips for training, centre crops with seeded hints for
    validation. The batch is what ColorizationDataModule gives the system (prepare_batch's dict)."""

    def __init__(self, photos: torch.Tensor, n_val: int, size: int, batch_size: int, hints, n_bins: int,
                 ab_range, steps_per_epoch: int, seed: int = 0):
        super().__init__()
        order = torch.randperm(len(photos), generator=torch.Generator().manual_seed(seed))
        self.train_photos, self.val_photos = photos[order[n_val:]], photos[order[:n_val]]
        self.size, self.batch_size, self.hints = size, batch_size, hints
        self.n_bins, self.ab_range, self.steps_per_epoch = n_bins, tuple(ab_range), steps_per_epoch

    def bin_counts(self) -> torch.Tensor:
        counts = torch.zeros(2, self.n_bins, dtype=torch.float64)
        for chunk in self.train_photos.split(64):
            counts += bin_counts(ab_to_bins(rgb_to_lab(chunk)[:, 1:], self.n_bins, *self.ab_range), self.n_bins)
        return counts

    def train_dataloader(self):  # indices only; the crops are cut on the device
        sampler = torch.utils.data.RandomSampler(range(len(self.train_photos)), replacement=True,
                                                 num_samples=self.steps_per_epoch * self.batch_size)
        return torch.utils.data.DataLoader(range(len(self.train_photos)), self.batch_size, sampler=sampler)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(range(len(self.val_photos)), self.batch_size)

    def on_after_batch_transfer(self, index: torch.Tensor, dataloader_idx: int) -> dict:
        training = self.trainer.training
        if self.train_photos.device != index.device:  # moved once: every later crop is cut on the device
            self.train_photos, self.val_photos = self.train_photos.to(index.device), self.val_photos.to(index.device)
        photos = self.train_photos if training else self.val_photos
        load, s = photos.shape[-1], self.size
        if training:
            y, x = torch.randint(0, load - s + 1, (2,)).tolist()
            rgb = photos[index, :, y : y + s, x : x + s]
            flip = torch.rand(len(index), device=index.device) < 0.5
            rgb = torch.where(flip.view(-1, 1, 1, 1), rgb.flip(-1), rgb)
        else:
            rgb = self.centre_crops(photos[index])
        seeds = None if training else index.cpu() + VAL_SEED
        return {"rgb": rgb, "index": index, **prepare_batch(rgb, self.hints, seeds)}

    def centre_crops(self, photos: torch.Tensor) -> torch.Tensor:
        o = (photos.shape[-1] - self.size) // 2
        return photos[:, :, o : o + self.size, o : o + self.size]


class FewHintsValidation(L.Callback):
    """After each validation, PSNR on the same validation crops with Zhang et al.'s evaluation hints at fixed counts
    (`val/psnr_0pts`, `val/psnr_10pts`: N 6x6 patches, as evaluate.py's points_N): `val/psnr`, with the training
    hints, hid a checkpoint that came out sepia without hints."""

    def __init__(self, points=(0, 10)):
        self.points = points

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, system: L.LightningModule):
        if trainer.sanity_checking:
            return
        data = trainer.datamodule
        photos = data.val_photos.to(system.device)
        for n in self.points:
            total = 0.0
            for start in range(0, len(photos), data.batch_size):
                rgb = data.centre_crops(photos[start : start + data.batch_size])
                seeds = torch.arange(start, start + len(rgb)) + VAL_SEED
                batch = {"rgb": rgb, **prepare_batch(rgb, PointHints(n_points=n, min_size=6, max_size=6), seeds)}
                with trainer.precision_plugin.forward_context():
                    loss, logits, target = system.model_step(batch)
                    pred_ab = system.predict_ab(logits, batch)
                # the system's own val/psnr, with these hints
                total += system.batch_metrics(batch, logits, target, loss, pred_ab)["psnr"] * len(rgb)
            system.log(f"val/psnr_{n}pts", total / len(photos))


def load_init(system, path: str):
    """Start from a checkpoint's weights. A network given more input channels than the checkpoint's (input=fill
    -> fade) starts with zero weights on the new ones, so it first computes what the checkpoint computed."""
    state, own = read_checkpoint(path)["state_dict"], system.state_dict()
    for key, value in state.items():
        wider = own[key].shape[1] - value.shape[1] if value.dim() == 4 and key in own else 0
        if wider > 0 and own[key].shape[0] == value.shape[0]:
            state[key] = torch.cat([value, value.new_zeros(value.shape[0], wider, *value.shape[2:])], dim=1)
    system.load_state_dict(state)


def main():
    parser = argparse.ArgumentParser(prog="python -m experiments.train_reference", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", required=True, help="folders of photos (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder: checkpoints/, csv/, run.json")
    parser.add_argument("--minutes", type=float, default=8.0, help="training wall time")
    parser.add_argument("--steps", type=int, default=-1, help="stop after this many steps (first of the two)")
    parser.add_argument("--size", type=int, default=256, help="training crop size (multiple of 16)")
    parser.add_argument("--load-size", type=int, default=None,
                        help="photos are held at this square size and cropped to --size (default: size x 9/8)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--val", type=int, default=48, help="photos held out for validation")
    parser.add_argument("--steps-per-epoch", type=int, default=200, help="steps between validations")
    parser.add_argument("--init", default=None, help="a checkpoint to start from (weights only)")
    parser.add_argument("--monitor", default="val/psnr", choices=["val/psnr", "val/psnr_0pts", "val/psnr_10pts"],
                        help="what chooses checkpoints/best.ckpt: PSNR with the training hints, without hints, or "
                        "with 10 points (all three are logged)")
    parser.add_argument("overrides", nargs="*", help="train.py options, e.g. input=fade optimizer.lr=1e-3")
    args = parser.parse_intermixed_args()  # options and train.py overrides in any order

    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*args.overrides, "logger=csv"])
    L.seed_everything(cfg.seed)
    started = time.time()
    load = args.load_size or args.size * 9 // 8
    photos, kept, dropped = load_photos(args.photos, args.size, load, cfg.data.gray_filter,
                                        cfg.data.gray_threshold, cfg.data.max_gray_fraction)
    print(f"{len(kept)} photos loaded in {time.time() - started:.0f} s; left out {len(dropped)}: "
          + ", ".join(f"{os.path.basename(p)} ({r})" for p, r in list(dropped.items())[:30]), flush=True)
    data = PhotoTensorData(photos, args.val, args.size, args.batch_size, hydra.utils.instantiate(cfg.hints),
                           cfg.bins.n, cfg.bins.range, args.steps_per_epoch)
    system = hydra.utils.instantiate(cfg.system, _convert_="all")
    if args.init:
        load_init(system, args.init)
    os.makedirs(args.out, exist_ok=True)
    checkpoints = os.path.join(args.out, "checkpoints")
    trainer = L.Trainer(
        default_root_dir=args.out, max_time={"minutes": args.minutes}, max_steps=args.steps, max_epochs=-1,
        precision=cfg.trainer.precision, profiler=cfg.trainer.profiler, accelerator="auto", devices=1,
        log_every_n_steps=20,
        logger=L.pytorch.loggers.CSVLogger(args.out, name="csv", version=""),
        callbacks=[FewHintsValidation(),  # before the checkpoint callback, which reads what it logs
                   ModelCheckpoint(checkpoints, "best", monitor=args.monitor, mode="max",
                                   auto_insert_metric_name=False),
                   # train.py's last.ckpt, written at every validation (Lightning's save_last: only on a new best)
                   hydra.utils.instantiate(cfg.callbacks.last_checkpoint, dirpath=checkpoints)],
        enable_progress_bar=sys.stdout.isatty())
    fit_started = time.time()
    trainer.fit(system, datamodule=data)
    run = {"command": " ".join(sys.argv), "overrides": args.overrides, "photos": len(kept), "left_out": dropped,
           "train_photos": len(data.train_photos), "val_photos": len(data.val_photos),
           "steps": trainer.global_step, "images_seen": trainer.global_step * args.batch_size,
           "fit_seconds": round(time.time() - fit_started), "device": str(torch.cuda.get_device_name(0))
           if torch.cuda.is_available() else "cpu", "torch": torch.__version__,
           "val": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
    print(json.dumps({k: v for k, v in run.items() if k != "left_out"}), flush=True)


if __name__ == "__main__":
    main()
