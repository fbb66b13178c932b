"""The system: the only place that knows networks, transforms, the loss, metrics and optimisation."""

import copy
import logging

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.functional.image import peak_signal_noise_ratio

from colorization.models import build_backbone, fold_batchnorm
from colorization.transforms import class_weights, colourfulness, decode_logits, make_input, merge_l_ab
from colorization.transforms.bins import mean_ab
from colorization.transforms.color import AB_SCALE, INPUTS
from colorization.weights import REFERENCE, WeightsError, reference_path

log = logging.getLogger(__name__)
STAGES = ("train", "val", "test")
METRICS = ("loss", "acc", "acc_unhinted", "psnr", "colourfulness_pred", "colourfulness_true")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training on it would silently ruin the weights."""


class CheckpointError(ValueError):
    """A file that is not a checkpoint of this project, or one that does not fit the asked-for model."""


class ColorizationSystem(L.LightningModule):
    def __init__(self, net: dict, n_bins: int = 32, ab_range=(-128.0, 128.0), lambda_patch: float = 1.0,
                 uniform_mix: float = 0.0, regression: float = 0.0, decode: str = "annealed_mean",
                 temperature: float = 0.38, channels_last: bool = True, on_nonfinite: str = "stop",
                 input_encoding: str = "paper", optimizer=None, scheduler=None):
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        if input_encoding not in INPUTS:
            raise ValueError(f"input={input_encoding!r}: expected one of {', '.join(INPUTS)}")
        self.net = build_backbone(**net, in_channels=INPUTS[input_encoding], n_bins=n_bins)
        if channels_last:  # NHWC: BatchNorm and convolutions run 2x faster on GPUs (BENCHMARKS.md)
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
        return self.net(x)

    def encode(self, L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network's input from lightness and hints, in this system's encoding (`input=`)."""
        return make_input(L, hint_ab, mask, self.hparams.input_encoding)

    def batch_input(self, batch: dict) -> torch.Tensor:
        """The network's input for a batch of `prepare_batch`."""
        return self.encode(batch["L"], batch["hint_ab"], batch["mask"])

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        return decode_logits(logits, self.hparams.decode, self.hparams.temperature, *self.hparams.ab_range)

    # Inference in bfloat16 on CPUs that compute it natively (AMX / AVX512-BF16): ~3x faster per photo, ab within
    # about 0.5 LAB units of float32 (BENCHMARKS.md). False: float32. Training and `self(x)` are not affected.
    bf16_inference = True
    skip_optimizer_step = False  # set by training_step for a batch that must not change the weights

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inference (call under no_grad): `self(x)`, in bfloat16 where `bf16_inference` pays."""
        native = x.device.type == "cpu" and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        with torch.autocast("cpu", torch.bfloat16, enabled=self.bf16_inference and native):
            return self(x).float()

    def for_inference(self) -> "ColorizationSystem":
        """An eval-mode copy with BatchNorm folded into the convolutions: the same outputs up to float rounding,
        1.1-1.2x faster on CPUs (BENCHMARKS.md). For colorize, the app and evaluation; not for training."""
        system = copy.deepcopy(self).eval()
        fold_batchnorm(system.net)
        return system

    @torch.no_grad()
    def colorize(self, L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The evaluation call shape shared with the baselines: (L, hint_ab, mask) -> ab."""
        return self.decode(self.infer(self.encode(L, hint_ab, mask)))

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

    def model_step(self, batch: dict, stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | None:
        """The loss and the metric values of one batch; None where every file of it failed to decode."""
        if not len(batch["rgb"]):  # every file of this batch failed to decode (reported by the data module)
            return None
        logits = self(self.batch_input(batch))
        loss = self.loss(logits, batch["target"], batch["mask"], batch["ab"])
        if logits.dtype == torch.float32:  # argmax == target as "the target's logit is the largest": 3x faster on
            # CPUs (BENCHMARKS.md); in half precision ties are common, and argmax settles them as it always has
            correct = (logits.gather(2, batch["target"].unsqueeze(2)).squeeze(2) >= logits.amax(dim=2)).float()
        else:
            correct = (logits.argmax(dim=2) == batch["target"]).float()
        unhinted = 1.0 - batch["mask"].expand_as(correct)
        values = {"loss": loss.detach(), "acc": correct.mean(),
                  "acc_unhinted": (correct * unhinted).sum() / unhinted.sum().clamp_min(1.0)}
        if stage != "train":  # colour metrics need decoding and RGB, not worth it on every training step
            batch["pred_ab"] = self.decode(logits)  # also read by the ImagePanel callback
            pred_rgb = merge_l_ab(batch["L"], batch["pred_ab"])
            true_rgb = batch["rgb"].float() / 255.0
            values["psnr"] = peak_signal_noise_ratio(pred_rgb, true_rgb, data_range=1.0, reduction="none",
                                                     dim=(1, 2, 3)).mean()
            values["colourfulness_pred"] = colourfulness(pred_rgb).mean()
            values["colourfulness_true"] = colourfulness(true_rgb).mean()
        return loss, values

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

    def _step(self, batch: dict, stage: str) -> torch.Tensor | None:
        """model_step, then log_metrics (validation, test; training logs only the batches it keeps)."""
        step = self.model_step(batch, stage)
        if step is None:
            return None
        self.log_metrics(stage, step[1], len(batch["rgb"]))
        return step[0]

    def training_step(self, batch, batch_idx):
        # The forward pass writes BatchNorm's running statistics before the loss is known: a batch skipped after it
        # must leave them as they were (a NaN batch made them NaN, and every later prediction with them).
        buffers = [b.clone() for b in self.buffers()] if self.hparams.on_nonfinite == "skip" else None
        step = self.model_step(batch, "train")
        if self.keep_batch(None if step is None else step[0], batch_idx):
            self.log_metrics("train", step[1], len(batch["rgb"]))
            return step[0]
        if buffers is not None:  # every rank restores its own: the batch never happened anywhere
            with torch.no_grad():
                for buffer, saved in zip(self.buffers(), buffers, strict=True):
                    buffer.copy_(saved)
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

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def init_from(self, path: str) -> None:
        """Start from a trained model's weights (fine-tuning): `train.py init=reference` or init=PATH."""
        source = load_system(path)
        keys = ("net", "n_bins", "input_encoding")
        theirs, ours = ({k: h.get(k) for k in keys} for h in (source.hparams, self.hparams))
        if theirs != ours:
            raise CheckpointError(f"init={path}: its network {theirs} differs from this run's {ours}; set model.*, "
                                  "bins.n and input to match")
        self.load_state_dict(source.state_dict())

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                                         "interval": "epoch"}}


def resolve_checkpoint(path: str | None) -> str:
    """A checkpoint path; `reference` (or None) means the shipped reference weights, checked by their SHA-256."""
    if path in (None, REFERENCE):
        try:
            return reference_path()
        except WeightsError as error:
            raise CheckpointError(str(error)) from None
    return path


def load_system(path: str | None = REFERENCE, map_location="cpu") -> ColorizationSystem:
    """A trained system from a checkpoint (default: the shipped reference model), loaded with
    weights_only=True; a clear error for foreign or corrupt files."""
    path = resolve_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as error:  # unpickling refused, truncated file, not a torch file at all
        raise CheckpointError(f"{path}: not a colorization checkpoint ({type(error).__name__})") from None
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "net" not in hparams or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a colorization checkpoint (no network hyper-parameters)")
    system = ColorizationSystem(**hparams)
    try:
        system.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit {hparams['net']} with {hparams['n_bins']} bins: "
                              f"{str(error).splitlines()[0]}") from None
    return system.eval()
