"""The system: the only place that knows networks, transforms, the loss, metrics and optimisation."""

import copy
import logging

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.functional.image import peak_signal_noise_ratio

from colorization.checkpoint import CheckpointError, load_weights, read_checkpoint
from colorization.inference import InferenceModel
from colorization.models import build_backbone
from colorization.transforms.bins import ab_to_bins, bin_accuracy, class_weights, decode_logits, mean_ab
from colorization.transforms.color import colourfulness, merge_l_ab
from colorization.transforms.encoding import AB_SCALE, INPUTS, absolute_logits, check_encoding, keep_hints, make_input
from colorization.transforms.hints import Batch
from colorization.weights import REFERENCE

log = logging.getLogger(__name__)
STAGES = ("train", "val", "test")
METRICS = ("loss", "acc", "acc_unhinted", "psnr", "colourfulness_pred", "colourfulness_true")
__all__ = ["CheckpointError", "ColorizationSystem", "NonFiniteLossError", "load_system"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training on it would silently ruin the weights."""


class ColorizationSystem(L.LightningModule):
    def __init__(self, net: dict, n_bins: int = 32, ab_range=(-128.0, 128.0), lambda_patch: float = 1.0,
                 uniform_mix: float = 0.0, regression: float = 0.0, decode: str = "annealed_mean",
                 temperature: float = 0.38, channels_last: bool = True, on_nonfinite: str = "stop",
                 input_encoding: str = "paper", output: str = "absolute", optimizer=None, scheduler=None):
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        check_encoding(input_encoding, output)
        self.net = build_backbone(**net, in_channels=INPUTS[input_encoding], n_bins=n_bins)
        if channels_last:  # NHWC: the layout cuDNN's and oneDNN's fastest convolutions use (BENCHMARKS.md)
            self.net = self.net.to(memory_format=torch.channels_last)
        self.register_buffer("class_weights", torch.ones(2, n_bins))
        self.metrics = torch.nn.ModuleDict(
            {f"{stage}_{name}": MeanMetric() for stage in STAGES for name in METRICS})

    def setup(self, stage: str):
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None:  # statistics of the train split, never val or test
            counts = datamodule.bin_counts().to(self.class_weights.device)
            self.class_weights.copy_(class_weights(counts, self.hparams.uniform_mix))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return absolute_logits(self.net(x), x, self.hparams.output, *self.hparams.ab_range)

    def encode(self, L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network's input from lightness and hints, in this system's encoding (`input=`)."""
        return make_input(L, hint_ab, mask, self.hparams.input_encoding)

    def batch_input(self, batch: dict) -> torch.Tensor:
        """The network's input for a batch of `prepare_batch`."""
        return self.encode(batch["L"], batch["hint_ab"], batch["mask"])

    def predict_ab(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The colours shown for a batch's logits: decoded, every hinted pixel keeping its hint (as
        `InferenceModel.predict`, so validation measures what evaluate.py does)."""
        ab = decode_logits(logits, self.hparams.decode, self.hparams.temperature, *self.hparams.ab_range)
        return keep_hints(ab, batch["hint_ab"], batch["mask"])

    skip_optimizer_step = False  # set by training_step for a batch that must not change the weights

    def inference_model(self) -> InferenceModel:
        """A copy of this system's network as `colorize`, the app and evaluate.py run it (`InferenceModel.predict`)."""
        h = self.hparams
        return InferenceModel(copy.deepcopy(self.net), h.n_bins, h.ab_range, h.input_encoding, h.decode,
                              h.temperature, h.channels_last, output=h.output)

    def loss(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
             ab: torch.Tensor | None = None) -> torch.Tensor:
        """Class-rebalanced cross-entropy over a and b, plus lambda_patch x cross-entropy on hinted pixels, plus
        (with `regression` > 0 and the true `ab`) regression x Huber loss of the distribution's mean against ab:
        Zhang et al. 2017's regression term, which makes the decoded colour itself accurate, not only its bin."""
        log_probs = logits.float().log_softmax(dim=2)
        nll = -log_probs.gather(2, target.unsqueeze(2)).squeeze(2)  # (B, 2, H, W)
        weights = self.class_weights[torch.arange(2, device=target.device).view(1, 2, 1, 1), target]
        rebalanced = (weights * nll).sum() / weights.sum()
        hinted = mask.expand_as(nll)
        hint_term = (nll * hinted).sum() / hinted.sum().clamp_min(1.0)
        total = rebalanced + self.hparams.lambda_patch * hint_term
        if self.hparams.regression and ab is not None:
            mean = mean_ab(log_probs.exp(), *self.hparams.ab_range)  # the expectation decoding, softmax reused
            # Huber at 1 ab unit on ab / 110, as Zhang et al.'s code
            total = total + self.hparams.regression * F.smooth_l1_loss(mean / AB_SCALE, ab.float() / AB_SCALE,
                                                                       beta=1.0 / AB_SCALE)
        return total

    def target(self, ab: torch.Tensor) -> torch.Tensor:
        """The classes to predict: ab (B, 2, H, W) -> the a and b bins (B, 2, H, W) long, `bins.n` per channel."""
        return ab_to_bins(ab, self.hparams.n_bins, *self.hparams.ab_range)

    def model_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss, the logits and the target bins of one batch."""
        logits = self(self.batch_input(batch))
        target = self.target(batch["ab"])
        return self.loss(logits, target, batch["mask"], batch["ab"]), logits, target

    def batch_metrics(self, batch: Batch, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor,
                      pred_ab: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss and bin accuracies; with the decoded `pred_ab` also PSNR and colourfulness (not worth decoding on
        every training step)."""
        correct = bin_accuracy(logits, target)
        unhinted = 1.0 - batch["mask"].expand_as(correct)
        values = {"loss": loss.detach(), "acc": correct.mean(),
                  "acc_unhinted": (correct * unhinted).sum() / unhinted.sum().clamp_min(1.0)}
        if pred_ab is None:
            return values
        with torch.autocast(pred_ab.device.type, enabled=False):  # under bf16-mixed: colours in float32, not bf16
            pred_rgb, true_rgb = merge_l_ab(batch["L"].float(), pred_ab.float()), batch["rgb"].float() / 255.0
            values["psnr"] = peak_signal_noise_ratio(pred_rgb, true_rgb, data_range=1.0, reduction="none",
                                                     dim=(1, 2, 3)).mean()
            values["colourfulness_pred"] = colourfulness(pred_rgb).mean()
            values["colourfulness_true"] = colourfulness(true_rgb).mean()
        return values

    def log_metrics(self, stage: str, values: dict[str, torch.Tensor], size: int) -> None:
        """Into each metric's epoch mean (`val/acc`); training's loss and acc also per step (`train/loss_step`,
        `train/loss_epoch`)."""
        for name, value in values.items():
            metric = self.metrics[f"{stage}_{name}"]
            on_step = stage == "train" and name in ("loss", "acc")
            if on_step:  # forward = update + this batch's value, which Lightning logs as the step value
                metric(value, size)  # (after update() alone it has none: the step metrics were never logged)
            else:
                metric.update(value, size)
            self.log(f"{stage}/{name}", metric, on_step=on_step, on_epoch=True, prog_bar=name in ("loss", "acc"),
                     batch_size=size)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        saved = self.save_buffers() if self.hparams.on_nonfinite == "skip" else None
        loss, logits, target = self.model_step(batch) if len(batch["rgb"]) else (None,) * 3  # none: no file decoded
        if not self.keep_batch(loss, batch_idx):
            return self.skip_batch(saved)
        self.log_metrics("train", self.batch_metrics(batch, logits, target, loss), len(batch["rgb"]))
        return loss

    def evaluation_step(self, batch: Batch, stage: str) -> dict[str, torch.Tensor] | None:
        """Validation and test: metrics with colours; returns the prediction for callbacks (the image panel)."""
        if not len(batch["rgb"]):  # every file of this batch failed to decode (reported by the data module)
            return None
        loss, logits, target = self.model_step(batch)
        pred_ab = self.predict_ab(logits, batch)
        self.log_metrics(stage, self.batch_metrics(batch, logits, target, loss, pred_ab), len(batch["rgb"]))
        return {"pred_ab": pred_ab}

    def validation_step(self, batch: Batch, batch_idx: int):
        return self.evaluation_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int):
        return self.evaluation_step(batch, "test")

    # -- a batch that must not count: a non-finite loss, or nothing decoded ------------------------------------
    def save_buffers(self) -> list[torch.Tensor]:
        """The forward pass writes BatchNorm's running statistics before the loss is known: a batch skipped after
        it must leave them as they were (a NaN batch made them NaN, and every later prediction with them)."""
        return [b.clone() for b in self.buffers()]

    def skip_batch(self, saved: list[torch.Tensor] | None) -> torch.Tensor:
        """Undo what the batch's forward pass changed and make its optimiser step a no-op, on every device."""
        if saved is not None:  # every rank restores its own: the batch never happened anywhere
            with torch.no_grad():
                for buffer, old in zip(self.buffers(), saved, strict=True):
                    buffer.copy_(old)
        # Lightning refuses None under DDP, so: zero gradients for the all-reduce, dropped before the step.
        self.skip_optimizer_step = True
        return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0

    def keep_batch(self, loss: torch.Tensor | None, batch_idx: int) -> bool:
        """True where the loss is finite on every device. Otherwise stops naming the step where a loss is not
        finite (`loss.on_nonfinite=stop`), and skips the batch on every device (`skip`, or where every file of
        it failed to decode, reported by the data module). Decided by every DDP rank together: a rank that
        stopped or skipped alone would leave the others waiting in backward's gradient all-reduce."""
        finite = loss is not None and bool(torch.isfinite(loss))
        if self.trainer.strategy.reduce_boolean_decision(finite, all=True):
            return True
        nonfinite_here = loss is not None and not finite
        if self.trainer.strategy.reduce_boolean_decision(nonfinite_here, all=False):
            value = loss.item() if nonfinite_here else "on another device"
            where = f"at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
            if self.hparams.on_nonfinite == "stop":
                raise NonFiniteLossError(f"non-finite loss ({value}) {where}; lower optimizer.lr, or set "
                                         "loss.on_nonfinite=skip to skip such batches")
            log.warning("non-finite loss (%s) %s: batch skipped", value, where)
        return False

    def on_before_optimizer_step(self, optimizer):
        if self.skip_optimizer_step:
            optimizer.zero_grad(set_to_none=True)  # Adam leaves parameters without gradients untouched
            self.skip_optimizer_step = False

    def check_same_network(self, checkpoint: dict, option: str, advice: str) -> None:
        """CheckpointError naming `option` unless `read_checkpoint`'s checkpoint holds this system's network."""
        keys = ("net", "n_bins", "input_encoding", "output")
        theirs, ours = ({k: h.get(k, "absolute" if k == "output" else None) for k in keys}
                        for h in (checkpoint["hyper_parameters"], self.hparams))
        if theirs != ours:
            raise CheckpointError(f"{option}={checkpoint['path']}: its network {theirs} differs from this run's "
                                  f"{ours}; {advice}")

    def init_from(self, path: str) -> None:
        """Start from a trained model's weights (fine-tuning): `train.py init=reference` or init=PATH."""
        checkpoint = read_checkpoint(path)
        self.check_same_network(checkpoint, "init", "set model.*, bins.n, input and output to match")
        load_weights(self, checkpoint["state_dict"], checkpoint)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                                         "interval": "epoch"}}


def load_system(path: str | None = REFERENCE, map_location="cpu") -> ColorizationSystem:
    """A trained system from a checkpoint (default: the shipped reference model), loaded with
    weights_only=True; CheckpointError naming the file for foreign or corrupt files."""
    checkpoint = read_checkpoint(path, map_location)
    system = ColorizationSystem(**checkpoint["hyper_parameters"])
    load_weights(system, checkpoint["state_dict"], checkpoint)
    return system.eval()
