"""Bad configs, faults and unsafe files: each case gets a clear message and loses nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from colorization.checks import ConfigError, check_group_choices, check_train_config
from colorization.system import CheckpointError, ColorizationSystem, NonFiniteLossError, load_system
from train import train

ROOT = Path(__file__).resolve().parents[1]


def run_train(*overrides, env=None, timeout=300):
    return subprocess.run([sys.executable, "train.py", "debug=fast", *overrides], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.mark.parametrize("overrides, message", [
    (["bins.n=1"], "bins.n=1: needs at least 2 bins"),
    (["data.image_size=100"], "data.image_size=100: the networks need a multiple of 16"),
    (["data=images"], "data.dir is required with data=images"),
    (["data=coco_dir", "data.dir=/no/such/folder"], "data.dir=/no/such/folder: no such folder"),
    (["model.name=vit"], "model.name=vit: choose one of"),
    (["loss.lambda_patch=-1"], "loss.lambda_patch=-1"),
    (["decode=median"], "decode=median"),
    (["input=edges"], "input=edges: expected one of paper, fill, fade"),
    (["input=paper", "output=residual"], "output=residual: expected absolute, or residual with input=fill or"),
])
def test_config_errors_name_the_option(tmp_path, overrides, message, cfg_train):
    with pytest.raises(ConfigError, match=message):
        check_train_config(cfg_train(*overrides))


def test_unknown_group_option_lists_the_choices():
    with pytest.raises(ConfigError, match="model=foo: no such option; choose one of resunet, transunet, unet"):
        check_group_choices(["train.py", "model=unet,foo"], str(ROOT / "conf"))
    check_group_choices(["train.py", "model=unet", "model.widths=[8,16,32,64]", "hints=none"], str(ROOT / "conf"))


@pytest.mark.parametrize("overrides, message", [
    (["model=foo"], "error: model=foo: no such option"),
    (["data=images"], "error: data.dir is required with data=images"),
    (["ckpt_path=/no/such.ckpt"], "error: ckpt_path=/no/such.ckpt: no such checkpoint"),
])
@pytest.mark.slow
def test_train_exits_2_with_one_line(tmp_path, overrides, message):
    result = run_train(*overrides, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(message)


@pytest.mark.slow
def test_unreachable_fiftyone_database_says_which_variable_to_set(tmp_path):
    uri = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
    result = run_train(f"hydra.run.dir={tmp_path}", f"paths.cache_dir={tmp_path}/cache",
                       env={"FIFTYONE_DATABASE_URI": uri})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot reach the FiftyOne database" in result.stderr and "FIFTYONE_DATABASE_URI" in result.stderr


def nan_after_first_step(monkeypatch):
    original = ColorizationSystem.loss

    def loss(self, *args):
        value = original(self, *args)
        return value * float("nan") if self.training and self.global_step == 1 else value

    monkeypatch.setattr(ColorizationSystem, "loss", loss)


def test_nonfinite_loss_stops_naming_the_step(tmp_path, monkeypatch, cfg_train):
    nan_after_first_step(monkeypatch)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 1 \(epoch 0, batch 1\)"):
        train(cfg_train("test=false"))


def adam_updates(checkpoint: dict) -> int:
    """How many optimiser steps changed the weights (Adam counts only steps with gradients)."""
    return int(checkpoint["optimizer_states"][0]["state"][0]["step"])


def test_nonfinite_loss_skip_mode_skips_that_batch_only(tmp_path, monkeypatch, cfg_train):
    nan_after_first_step(monkeypatch)
    train(cfg_train("test=false", "loss.on_nonfinite=skip", "trainer.max_epochs=2"))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values() if w.is_floating_point())
    assert adam_updates(checkpoint) == checkpoint["global_step"] - 1 > 0


def nan_input_at_step(step: int, rank: int, out_dir) -> list[str]:
    """NaN network input at `step` on `rank` (before the forward pass), and a record of what that step changed."""
    return ["+callbacks.fault._target_=tests.faults.NaNInputAtStep", f"+callbacks.fault.step={step}",
            f"+callbacks.fault.rank={rank}", "+callbacks.state._target_=tests.faults.StateAcrossStep",
            f"+callbacks.state.step={step}", f"+callbacks.state.out_dir={out_dir}"]


def across_step(out_dir, rank: int = 0) -> dict:
    return json.loads((out_dir / f"rank{rank}.json").read_text())


def test_skipped_batch_leaves_every_parameter_and_buffer_as_it_was(tmp_path, cfg_train):
    """The forward pass of a NaN batch writes NaN into BatchNorm's running statistics before the loss is seen:
    skipping the optimiser step alone left every later validation, checkpoint and colorization NaN."""
    train(cfg_train("test=false", "loss.on_nonfinite=skip", *nan_input_at_step(1, 0, tmp_path / "s")))
    step = across_step(tmp_path / "s")
    assert step["tensors"] > 50 and step["changed"] == [] and step["nonfinite"] == [], step
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(w.isfinite().all() for w in checkpoint["state_dict"].values() if w.is_floating_point())


# Two DDP processes on CPU (train.py in a subprocess: Lightning's ddp re-runs it); a NaN batch on rank 1 only.
DDP = ["trainer.devices=2", "trainer.strategy=ddp", "data.batch_size=2", "test=false"]
DDP_NAN_ON_RANK_1 = [*DDP, "+callbacks.fault._target_=tests.faults.NaNInputAtStep", "+callbacks.fault.step=1",
                     "+callbacks.fault.rank=1"]


@pytest.mark.slow
def test_nonfinite_loss_on_one_ddp_rank_stops_every_rank(tmp_path):
    result = run_train(*DDP_NAN_ON_RANK_1, f"hydra.run.dir={tmp_path}", timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "NonFiniteLossError: non-finite loss (nan) at step 1" in output  # rank 1
    assert "NonFiniteLossError: non-finite loss (on another device) at step 1" in output  # rank 0, not left waiting


@pytest.mark.parametrize("bad_rank", [0, 1])
@pytest.mark.slow
def test_nonfinite_loss_on_one_ddp_rank_skip_mode_skips_it_on_every_rank(tmp_path, bad_rank):
    """Every rank skips the batch, and rank 0 (whose buffers DDP broadcasts, and whose checkpoint is saved) keeps
    every parameter and buffer as it was before it, whether the NaN batch was its own or another rank's."""
    result = run_train(*DDP, "loss.on_nonfinite=skip", f"hydra.run.dir={tmp_path}",
                       *nan_input_at_step(1, bad_rank, tmp_path / "s"), timeout=180)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    step = across_step(tmp_path / "s", rank=0)
    assert step["tensors"] > 50 and step["changed"] == [] and step["nonfinite"] == [], step
    assert across_step(tmp_path / "s", rank=1)["nonfinite"] == []
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert adam_updates(checkpoint) == checkpoint["global_step"] - 1 > 0
    assert all(w.isfinite().all() for w in checkpoint["state_dict"].values() if w.is_floating_point())


def final_weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    common = ["trainer.max_epochs=3", "test=false", "trainer.deterministic=true", "data.num_workers=0"]
    steady = run_train(*common, f"hydra.run.dir={tmp_path / 'steady'}")
    assert steady.returncode == 0, steady.stderr[-3000:]
    # 2 steps per epoch: step 3 is the middle of the second epoch.
    killed = run_train(*common, f"hydra.run.dir={tmp_path / 'killed'}",
                       "+callbacks.fault._target_=tests.faults.SignalAtStep", "+callbacks.fault.step=3")
    assert killed.returncode == -9  # SIGKILL: nothing could be saved at that moment
    assert torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    resumed = run_train(*common, f"hydra.run.dir={tmp_path / 'killed'}", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = final_weights(tmp_path / "steady" / "checkpoints" / "last.ckpt")
    b = final_weights(tmp_path / "killed" / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path):
    result = run_train("trainer.max_epochs=3", "test=false", f"hydra.run.dir={tmp_path}",
                       "+callbacks.fault._target_=tests.faults.SignalAtStep", "+callbacks.fault.step=3",
                       "+callbacks.fault.signal_name=SIGTERM")
    assert result.returncode == 143, result.stderr[-3000:]
    assert "received SIGTERM: saved checkpoints/last.ckpt" in result.stderr
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4  # the batch in flight finished, then it stopped


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_saves_once_stops_every_rank_and_resumes(tmp_path):
    """Lightning's own handler broadcasts from inside the signal handler: under DDP that crashed every process
    without a checkpoint. Here rank 1 alone is signalled; both ranks stop after the same batch."""
    ddp = [*DDP, "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}"]
    result = run_train(*ddp, "+callbacks.fault._target_=tests.faults.SignalAtStep", "+callbacks.fault.step=3",
                       "+callbacks.fault.signal_name=SIGTERM", "+callbacks.fault.rank=1", timeout=180)
    assert result.returncode == 143, (result.stdout + result.stderr)[-3000:]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    resumed = run_train(*ddp, "ckpt_path=last", timeout=180)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path, tiny_checkpoint):
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["net"] = {"name": "unet", "widths": [8, 16, 32, 64]}
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="other.ckpt: weights do not fit"):
        load_system(str(tmp_path / "other.ckpt"))
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["n_bins"] = 16  # trained with 32
    torch.save(checkpoint, tmp_path / "bins.ckpt")
    with pytest.raises(CheckpointError, match="bins.ckpt: weights do not fit .* with 16 bins"):
        load_system(str(tmp_path / "bins.ckpt"))
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"hyper_parameters": {"net": OmegaConf.create({"name": "unet"})}, "state_dict": {}}, pickled)
    with pytest.raises(CheckpointError, match="not a colorization checkpoint"):  # refuses pickled objects
        load_system(str(pickled))
