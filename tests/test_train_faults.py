"""train.py against unwritable folders, a full disk, unusable checkpoints to resume from, and command-line
mistakes: one line naming the folder, file or option, exit code 2, nothing lost (issues 15 and 16)."""

import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys

import lightning as L
import pytest
import torch

from train import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")


def train_command(*overrides) -> list[str]:
    return [sys.executable, "train.py", "debug=fast", *overrides]


def run(command: list[str], env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout)


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


def namespaces_work(unshare: list[str]) -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run([*unshare, "true"], capture_output=True).returncode == 0


# Faults a test user cannot make by itself, in Linux namespaces (no root needed): a private view of processes
# and mounts, where FiftyOne starts its own database (in `tmp_path`) rather than finding the test session's.
PRIVATE = ["--mount", "--pid", "--fork", "--mount-proc"]
# An ordinary user (uid 1000, owning what the test user owns): root, as CI runs, writes through permission bits.
AS_USER = ["unshare", "--user", "--map-user=1000", "--map-group=1000", *PRIVATE]
# Root of the namespace only: it may mount a small tmpfs, a real full disk.
MOUNTING = ["unshare", "--user", "--map-root-user", *PRIVATE]


def run_in_namespace(unshare: list[str], command: list[str], tmp_path) -> subprocess.CompletedProcess:
    return run([*unshare, *command], env={"FIFTYONE_DATABASE_DIR": str(tmp_path / "database")})


as_user = pytest.mark.skipif(not namespaces_work(AS_USER), reason="user namespaces are not available")


@as_user
@pytest.mark.slow  # a train.py process each
def test_unwritable_checkpoint_folder_fails_at_once(tmp_path):
    """Lightning ignores the PermissionError of each save: the run trained to the end, then failed (traceback)
    to test a checkpoint that was never written; with test=false it reported that checkpoint, exit 0."""
    (tmp_path / "checkpoints").mkdir(mode=0o555)
    result = run_in_namespace(AS_USER, train_command(f"hydra.run.dir={tmp_path}"), tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    folder = tmp_path / "checkpoints"
    assert last_line(result) == f"error: cannot write to the checkpoint folder {folder}: permission denied"
    assert "best checkpoint" not in result.stdout and not (tmp_path / "csv").exists()  # stopped before training


@as_user
@pytest.mark.slow  # a train.py process each
def test_read_only_output_folder_is_one_line(tmp_path):
    """Hydra's own error was a 32-line traceback ending in "Unable to configure handler 'file'"."""
    (tmp_path / "run").mkdir(mode=0o555)
    result = run_in_namespace(AS_USER, train_command(f"hydra.run.dir={tmp_path}/run"), tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip() == f"error: cannot write to the output folder {tmp_path}/run: permission denied"


@pytest.mark.slow
@pytest.mark.skipif(not namespaces_work(MOUNTING), reason="user and mount namespaces are not available")
@pytest.mark.parametrize("overrides, failed_write, kept_files", [
    ([], "", ["epoch000.ckpt", "last.ckpt"]),  # the first write to fail is the image panel's
    # The worst moment: last.ckpt's own save is the first write to fail (the other writers left out). Lightning
    # truncated last.ckpt, then wrote the new one into the space that freed (lost where it does not fit there).
    (["~callbacks.model_checkpoint", "~callbacks.image_panel", "~logger"], "/checkpoints/last.ckpt", ["last.ckpt"]),
], ids=["every-writer", "last-checkpoint-first"])
def test_full_disk_during_training_is_one_line_and_keeps_last_checkpoint(tmp_path, overrides, failed_write,
                                                                         kept_files):
    """The run folder on a 40 MB disk that another program fills at the start of epoch 1."""
    run_dir, kept = tmp_path / "run", tmp_path / "kept"
    run_dir.mkdir()
    command = train_command(f"hydra.run.dir={run_dir}", "trainer.max_epochs=2", "test=false", *overrides,
                            "+callbacks.fault._target_=tests.faults.FillDiskAtEpoch",
                            "+callbacks.fault.epoch=1", f"+callbacks.fault.path={run_dir}/filler")
    # The mount lives as long as the namespace: what is left on the disk is copied out before it ends.
    script = (f'mount -t tmpfs -o size=40m tmpfs "{run_dir}" && "$@"; code=$?; cp -r "{run_dir}/checkpoints" '
              f'"{kept}"; exit $code')
    result = run_in_namespace(MOUNTING, ["sh", "-c", script, "sh", *command], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert last_line(result) == (f"error: cannot write {run_dir}{failed_write}: no space left on the disk mounted at "
                                 f"{run_dir}; the checkpoints written before are kept: free some space, then resume "
                                 "with ckpt_path=last")
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(kept)) == kept_files  # no partial file left beside them
    checkpoint = torch.load(kept / "last.ckpt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, 2)  # epoch 0's, whole


@pytest.fixture(scope="module")
def resumable(tmp_path_factory, compose_config) -> str:
    """last.ckpt of a one-epoch run (debug=fast: ResUNet at widths 8-64)."""
    out = tmp_path_factory.mktemp("resumable")
    train(compose_config(out, "test=false", "trainer.num_sanity_val_steps=0"))
    return str(out / "checkpoints" / "last.ckpt")


def truncated(resumable, tmp_path) -> str:
    data = open(resumable, "rb").read()
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    return str(tmp_path / "truncated.ckpt")


def foreign(resumable, tmp_path) -> str:
    torch.save({"state_dict": {"weight": torch.zeros(3)}}, tmp_path / "foreign.ckpt")  # another project's
    return str(tmp_path / "foreign.ckpt")


def weights_only(resumable, tmp_path) -> str:
    checkpoint = torch.load(resumable, weights_only=True)
    torch.save({k: checkpoint[k] for k in ("state_dict", "hyper_parameters")}, tmp_path / "weights.ckpt")
    return str(tmp_path / "weights.ckpt")


@pytest.mark.slow  # a train.py process each
@pytest.mark.parametrize("make, overrides, message", [
    (truncated, [], "not a colorization checkpoint"),
    (foreign, [], "not a colorization checkpoint (no network hyper-parameters)"),
    (lambda resumable, tmp_path: resumable, ["model=unet"], "its network {'net': {'name': 'resunet'"),
    (weights_only, [], "holds weights only, no training state to resume; start from its weights with init=PATH"),
])
def test_resume_from_an_unusable_checkpoint_is_one_line(tmp_path, resumable, make, overrides, message):
    path = make(resumable, tmp_path)
    result = run(train_command(f"ckpt_path={path}", f"hydra.run.dir={tmp_path}/run", *overrides))
    assert result.returncode == 2, result.stderr[-3000:]
    assert last_line(result).startswith(f"error: ckpt_path={path}: ") and message in last_line(result)
    assert "Traceback" not in result.stderr


class WritesAFile:
    """Unpickling this runs code: it creates `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.slow  # a train.py process each
def test_resume_never_unpickles_code(tmp_path, resumable):
    """torch >= 2.2 (which pyproject allows) unpickles by default before 2.6, and
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns the default back even now: only an explicit weights_only=True holds."""
    checkpoint = torch.load(resumable, weights_only=True)
    checkpoint["payload"] = WritesAFile(str(tmp_path / "ran"))
    torch.save(checkpoint, tmp_path / "payload.ckpt")
    result = run(train_command(f"ckpt_path={tmp_path}/payload.ckpt", f"hydra.run.dir={tmp_path}/run"),
                 env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert not (tmp_path / "ran").exists()
    assert result.returncode == 2, result.stderr[-3000:]
    assert last_line(result).startswith(f"error: ckpt_path={tmp_path}/payload.ckpt: not a colorization checkpoint")


def test_resume_loads_with_weights_only(cfg_train, resumable, monkeypatch):
    """Every torch.load of a resumed run, Lightning's included, passes weights_only=True itself."""
    calls = []
    original = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    result = train(cfg_train("test=true", "trainer.max_epochs=2", f"ckpt_path={resumable}"))
    assert result["best_checkpoint"]
    assert len(calls) >= 3 and set(calls) == {True}, calls  # the check, the resume, the test of the best


@pytest.mark.slow  # a train.py process each
@pytest.mark.parametrize("overrides, message", [
    (["data=base"], "error: data=base: no such option; choose one of coco, coco_dir, images, sample"),
    (["modle=unet"], "error: unknown option modle; did you mean model?"),
])
def test_train_command_line_mistakes_are_one_line(tmp_path, overrides, message):
    result = run(train_command(*overrides, f"hydra.run.dir={tmp_path}"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip() == message


@pytest.mark.parametrize("argv, message", [
    (["trainer.devise=4"], "unknown option trainer.devise; did you mean trainer.devices?"),
    (["trainr.devices=4"], "unknown option trainr.devices; did you mean trainer.devices?"),
    (["-m", "model=unet,resunet", "model.widthz=[8,16]"], "unknown option model.widthz; did you mean model.widths?"),
    (["optimizer.lr=0.1,0.01", "optimiser.lr=0.1"], "unknown option optimiser.lr; did you mean optimizer.lr?"),
    (["zzz=1"], "unknown option zzz; `python train.py --cfg job` lists them all"),
])
def test_misspelled_option_names_the_nearest_one(tmp_path, argv, message):
    from colorization.checks import ConfigError, check_command_line

    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_command_line(["train.py", *argv, f"hydra.run.dir={tmp_path}"], CONF)


@pytest.mark.parametrize("argv", [
    ["debug=fast", "+callbacks.fault._target_=tests.faults.SignalAtStep", "~callbacks.image_panel", "++trainer.gpus=1"],
    ["-m", "model=unet,resunet", "experiment=paper_table1", "hints=none"],
    ["hydra/launcher=slurm", "hparams_search=optuna", "optimizer.lr=interval(0.0001,0.01)", "scheduler=cosine"],
    ["--cfg", "job", "hydra.run.dir=/proc/none", "data.dir=/photos", "data=images"],
])
def test_valid_command_lines_pass(tmp_path, argv):
    from colorization.checks import check_command_line

    check_command_line(["train.py", *argv, f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.run.dir={tmp_path}/run"],
                       CONF)


def test_cpu_processes_are_said_in_one_line(caplog):
    """`trainer.devices=4` where no GPU is found: Lightning starts 4 processes on the CPU without a word."""
    from colorization.checks import warn_cpu_processes

    caplog.set_level(logging.WARNING, logger="colorization.checks")
    cores = len(os.sched_getaffinity(0))
    warn_cpu_processes(L.Trainer(accelerator="cpu", devices=4, logger=False), accelerator="auto")
    warn_cpu_processes(L.Trainer(accelerator="cpu", devices=cores, logger=False), accelerator="cpu")
    assert [r.getMessage() for r in caplog.records] == [
        f"trainer.devices=4 with no GPU found: 4 training processes share this machine's {cores} CPU cores "
        "(trainer.devices=1 trains in one)"]
