"""The system and train.py: real Lightning trainers on the embedded photos, small."""

import csv
import glob
import os

import lightning as L
import pytest
import torch
import wandb

from colorization.data import ColorizationDataModule
from colorization.system import CheckpointError, ColorizationSystem, load_system
from colorization.transforms import PaperHints, class_weights
from train import main, train

TINY_NET = {"name": "resunet", "widths": [8, 16, 32, 64]}


def test_hint_term_raises_the_loss_when_hinted_pixels_are_wrong():
    target = torch.randint(0, 32, (2, 2, 16, 16))
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:7, 4:7] = 1
    right = torch.nn.functional.one_hot(target, 32).permute(0, 1, 4, 2, 3).float() * 5
    wrong = right.clone()
    wrong[..., 4:7, 4:7] = right[..., 4:7, 4:7].roll(1, dims=2)  # the hinted pixels predict another bin

    def gap(lambda_patch):
        system = ColorizationSystem(TINY_NET, lambda_patch=lambda_patch)
        return (system.loss(wrong, target, mask) - system.loss(right, target, mask)).item()

    assert gap(0.0) > 0
    assert gap(10.0) > gap(0.0) + 10 * 4.5  # each wrong hinted pixel costs about 5 nats, times lambda


@pytest.mark.parametrize("model", ["unet", "resunet", "transunet"])
def test_fast_dev_run(tmp_path, model, cfg_train):
    result = train(cfg_train(f"model={model}", "trainer.fast_dev_run=true"))
    assert torch.isfinite(torch.tensor(result["metrics"]["val/loss"])), result["metrics"]


def test_bf16_mixed_precision_runs(tmp_path, cfg_train):
    result = train(cfg_train("trainer.fast_dev_run=true", "trainer.precision=bf16-mixed"))
    assert torch.isfinite(torch.tensor(result["metrics"]["val/loss"]))


class Capture(L.Callback):
    def __init__(self):
        self.masks = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.masks.append(batch["mask"].clone())


def test_training_run_checkpoints_panels_and_fixed_val_hints(tmp_path, monkeypatch, cfg_train):
    capture = Capture()
    cfg = cfg_train("trainer.max_epochs=2", "test=true")
    original = L.Trainer.__init__

    def with_capture(self, *args, callbacks=None, **kwargs):
        original(self, *args, callbacks=[*(callbacks or []), capture], **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", with_capture)
    result = train(cfg)
    assert len(capture.masks) == 2 and capture.masks[0].sum() > 0
    assert torch.equal(capture.masks[0], capture.masks[1])  # the same validation hints every epoch
    assert os.path.exists(tmp_path / "checkpoints" / "last.ckpt") and result["best_checkpoint"]
    assert sorted(os.listdir(tmp_path / "panels")) == ["epoch000.png", "epoch001.png"]
    assert "test/psnr" in result["metrics"] and "val/acc_unhinted" in result["metrics"]

    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)  # no pickled objects
    assert checkpoint["hyper_parameters"]["net"]["name"] == "resunet"
    system = load_system(result["best_checkpoint"])
    assert not system.training and not torch.equal(system.class_weights, torch.ones(2, 32))


def test_resume_from_last_checkpoint_continues_the_step_count(tmp_path, cfg_train):
    first = cfg_train("trainer.max_epochs=1", "test=false")
    train(first)
    steps_per_epoch = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert steps_per_epoch > 0
    resumed = cfg_train("trainer.max_epochs=2", "test=false", "ckpt_path=last")
    train(resumed)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * steps_per_epoch


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_runs_and_logs_once(tmp_path, cfg_train):
    cfg = cfg_train("trainer.strategy=ddp_spawn", "trainer.devices=2", "trainer.max_epochs=1", "test=false")
    train(cfg)
    metrics = glob.glob(str(tmp_path / "csv" / "*" / "metrics.csv"))
    assert len(metrics) == 1  # only rank 0 writes logs
    rows = [line for line in open(metrics[0]).read().splitlines()[1:] if line.strip()]
    assert any("val/acc" in h for h in open(metrics[0]).readline().split(",")) and rows
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0


@pytest.mark.slow
def test_overfitting_one_batch_reaches_high_accuracy(tmp_path):
    """The real batch, input encoding, network and rebalanced loss can fit one batch: the pipeline learns."""
    dm = ColorizationDataModule(source="sample", image_size=32, batch_size=2, num_workers=0, hints=PaperHints(),
                                cache_dir=str(tmp_path))
    dm.prepare_data()
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    system = ColorizationSystem({"name": "resunet", "widths": [16, 32, 64, 128]})
    system.class_weights.copy_(class_weights(dm.bin_counts()))
    optimizer = torch.optim.Adam(system.parameters(), lr=3e-3)
    x, target = system.batch_input(batch), system.target(batch["ab"])
    for _ in range(300):
        optimizer.zero_grad()
        system.loss(system(x), target, batch["mask"]).backward()
        optimizer.step()
    accuracy = (system(x).argmax(dim=2) == target).float().mean()
    assert accuracy >= 0.9, accuracy


def test_checkpoint_errors_are_clear(tmp_path, tiny_checkpoint):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a colorization checkpoint"):
        load_system(str(tmp_path / "junk.ckpt"))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_system(str(tmp_path / "missing.ckpt"))
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["n_bins"] = 16  # another bin count than the weights were trained with
    torch.save(checkpoint, tmp_path / "other-bins.ckpt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_system(str(tmp_path / "other-bins.ckpt"))


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_loggers_receive_metrics_and_the_image_panel(tmp_path, monkeypatch, logger, cfg_train):
    monkeypatch.setenv("WANDB_MODE", "offline")  # W&B writes its run files locally, never calls the network
    result = train(cfg_train(f"logger={logger}", "test=false"))
    wandb.finish()
    assert "val/acc" in result["metrics"]
    if logger == "tensorboard":
        assert glob.glob(str(tmp_path / "tensorboard" / "**" / "events.out.tfevents.*"), recursive=True)
    else:
        runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
        assert len(runs) == 1
        assert glob.glob(os.path.join(runs[0], "files", "media", "images", "val", "panel_*.png"))


def csv_rows(output_dir) -> list[dict]:
    (path,) = glob.glob(str(output_dir / "csv" / "*" / "metrics.csv"))
    with open(path) as f:
        return list(csv.DictReader(f))


def test_per_step_train_metrics_reach_the_csv_log(tmp_path, cfg_train):
    """`metric.update()` then `self.log(metric, on_step=True)` left Lightning no step value: train/loss_step and
    train/acc_step reached no logger."""
    train(cfg_train("test=false", "trainer.max_epochs=2", "trainer.log_every_n_steps=1"))
    rows = csv_rows(tmp_path)
    steps = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    for name in ("train/loss", "train/acc"):
        per_step = [float(row[f"{name}_step"]) for row in rows if row.get(f"{name}_step")]
        per_epoch = [float(row[f"{name}_epoch"]) for row in rows if row.get(f"{name}_epoch")]
        assert len(per_step) == steps == 4 and len(per_epoch) == 2, (name, rows[0].keys())
        assert all(0 <= value < 100 for value in per_step)
        # equal batches (8 photos, 4 a batch): each epoch's value is the mean of its steps
        assert per_epoch == pytest.approx([sum(per_step[:2]) / 2, sum(per_step[2:]) / 2], rel=1e-5)


@pytest.mark.slow
def test_train_py_returns_the_best_val_acc_not_the_last(tmp_path, cfg_train):
    """What Optuna maximises is the score of the model train.py keeps (the best on val/acc), not the last
    epoch's val/acc. Here the last epoch validates worse than the first (output=absolute: a barely trained network
    then predicts the common near-gray bins, which the shifted targets of the fault never are)."""
    cfg = cfg_train("test=false", "trainer.max_epochs=2", "trainer.num_sanity_val_steps=0", "output=absolute",
                    "+callbacks.fault._target_=tests.faults.WrongValidationTargetsAtEpoch",
                    "+callbacks.fault.epoch=1")
    returned = main(cfg)  # train.py's @hydra.main function, as the sweeper calls it
    val_acc = [float(row["val/acc"]) for row in csv_rows(tmp_path) if row.get("val/acc")]
    assert len(val_acc) == 2 and val_acc[1] < val_acc[0]
    assert returned == pytest.approx(max(val_acc))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch000.ckpt", "last.ckpt"]  # the model kept


def test_paper_recipe_is_one_switch_away(tmp_path, cfg_train):
    """The defaults are this project's recipe; recipe=paper and the paper's table experiments restore the paper's."""
    ours = cfg_train()
    assert (ours.input, ours.output, ours.loss.uniform_mix, ours.loss.regression, ours.optimizer.lr) == (
        "levin", "residual", 0.5, 10.0, 1e-3)
    assert ours.hints._target_.endswith("PointHints")
    for overrides in (["recipe=paper"], ["experiment=paper_table1"], ["experiment=paper_table2"]):
        paper = cfg_train(*overrides)
        assert paper.hints._target_.endswith("PaperHints") and (paper.input, paper.output) == ("paper", "absolute"), \
            overrides
        assert (paper.loss.lambda_patch, paper.loss.uniform_mix, paper.loss.regression) == (1.0, 0.0, 0.0)
        assert paper.optimizer.lr == 0.01


def test_regression_term_pulls_the_decoded_colour_to_the_truth():
    """Two logit maps with the right bin most likely; in one a far bin is almost as likely, pulling the decoded
    mean away from the true ab. The regression term charges that on top of what the cross-entropy does."""
    ab = torch.full((1, 2, 4, 4), 20.0)
    target = torch.full((1, 2, 4, 4), 18)  # 20 lies in bin 18 of 32 over [-128, 128)
    sharp = torch.nn.functional.one_hot(target, 32).permute(0, 1, 4, 2, 3).float() * 8
    spread = sharp.clone()
    spread[:, :, 31] = 7.0  # the same argmax, a mean pulled towards +124
    mask = torch.zeros(1, 1, 4, 4)

    def gap(weight):
        system = ColorizationSystem(TINY_NET, regression=weight)
        return (system.loss(spread, target, mask, ab) - system.loss(sharp, target, mask, ab)).item()

    assert 0 < gap(0.0) < 0.5  # the cross-entropy alone barely minds
    assert gap(10.0) > gap(0.0) + 2.0  # mean about 40 ab units off: Huber ~0.36 on ab / 110, times 10


def test_init_starts_from_trained_weights_and_refuses_another_network(tmp_path, tiny_checkpoint):
    trained = load_system(tiny_checkpoint)
    fresh = ColorizationSystem(**trained.hparams)
    assert not torch.equal(fresh.net.head.proj.weight, trained.net.head.proj.weight)
    fresh.init_from(tiny_checkpoint)
    assert torch.equal(fresh.net.head.proj.weight, trained.net.head.proj.weight)
    other = ColorizationSystem({**trained.hparams.net, "widths": [4, 8, 16, 32]})
    with pytest.raises(CheckpointError, match="differs from this run"):
        other.init_from(tiny_checkpoint)
