"""Sweeps as users type them: `python train.py -m ...` in a subprocess from the repo root (about 3 minutes)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from colorization.results import main as collect_main
from colorization.results import read_csv_log, read_wandb_log, wandb_records

ROOT = Path(__file__).resolve().parents[1]

ONE_BATCH = ["trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "test=false"]


def multirun(sweep_dir, *overrides, env=None, timeout=300) -> str:
    """Runs a sweep into sweep_dir; its stdout and stderr, after checking it succeeded."""
    command = [sys.executable, "train.py", "-m", "debug=fast", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


def job_dirs(sweep_dir) -> list[str]:
    return sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def overrides(job_dir) -> list[str]:
    return list(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))


@pytest.mark.slow
def test_multirun_fast_dev_run_gives_each_job_its_own_dir(tmp_path):
    output = multirun(tmp_path, "model=unet,resunet", "trainer.fast_dev_run=true")
    assert job_dirs(tmp_path) == ["0", "1"]
    assert "model=unet" in overrides(tmp_path / "0") and "model=resunet" in overrides(tmp_path / "1")
    assert output.count("best checkpoint:") == 2


@pytest.mark.slow
def test_multirun_of_ddp_jobs_runs_each_job_once(tmp_path):
    """Lightning's DDP children must run their own job, in its dir, and not relaunch the sweep."""
    output = multirun(tmp_path, "model=unet,resunet", "trainer.devices=2", "trainer.strategy=ddp", *ONE_BATCH,
                      f"hydra.run.dir={tmp_path / 'no-run-dir'}")
    assert output.count("Starting with 2 processes") == 2  # each job really ran on 2 ranks
    assert output.count("best checkpoint:") == 2  # printed by rank 0 once per job: no job ran twice
    assert job_dirs(tmp_path) == ["0", "1"]  # no extra sweep dirs, nothing in the single-run dir
    for job in ("0", "1"):
        assert len(list((tmp_path / job / "csv").iterdir())) == 1  # one log: one run of the job
        assert read_csv_log(tmp_path / job)[-1]["epoch"] == 0
        assert (tmp_path / job / "train_ddp_process_1.log").exists()  # rank 1 wrote into the job's dir


@pytest.mark.slow
def test_optuna_search_returns_the_best_val_acc(tmp_path):
    multirun(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=2", *ONE_BATCH)
    assert job_dirs(tmp_path) == ["0", "1"]
    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert set(results.best_params) == {"optimizer.lr", "loss.lambda_patch", "bins.n"}
    val_acc = [[row["val/acc"] for row in read_csv_log(tmp_path / job) if "val/acc" in row][-1] for job in "01"]
    assert results.best_value == pytest.approx(max(val_acc))  # what train.py returned, maximised
    for job in "01":
        assert {o.split("=")[0] for o in overrides(tmp_path / job)} >= set(results.best_params)


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_job(tmp_path):
    multirun(tmp_path, "hydra/launcher=submitit_local", *ONE_BATCH)
    assert job_dirs(tmp_path) == ["0"]
    assert list((tmp_path / ".submitit").glob("*/*_result.pkl"))
    assert any("val/acc" in row for row in read_csv_log(tmp_path / "0"))


@pytest.fixture(scope="module")
def hint_sweep(tmp_path_factory):
    """A real tiny Table 2 (one epoch, test on), logged to CSV and to offline W&B."""
    sweep = tmp_path_factory.mktemp("hint-sweep")
    wandb_dirs = {f"WANDB_{name}_DIR": str(sweep.parent / f"wandb-{name.lower()}") for name in ("CACHE", "CONFIG",
                                                                                                "DATA")}
    multirun(sweep, "hints=paper,none", "logger=[csv,wandb]", env={"WANDB_MODE": "offline", **wandb_dirs})
    return sweep


@pytest.mark.slow
def test_each_job_is_its_own_wandb_run_named_by_its_variant(hint_sweep):
    runs = []
    for job in ("0", "1"):
        (path,) = (hint_sweep / job / "wandb").glob("offline-run-*/run-*.wandb")
        runs += [r.run for r in wandb_records(str(path)) if r.WhichOneof("record_type") == "run"]
    assert [(r.display_name, list(r.tags)) for r in runs] == [("hints=paper", ["hints=paper"]),
                                                              ("hints=none", ["hints=none"])]
    assert runs[0].run_group == runs[1].run_group == f"train-{hint_sweep.name}"


@pytest.mark.slow
def test_results_table_from_a_sweep(hint_sweep, capsys):
    collect_main([str(hint_sweep)])
    printed = capsys.readouterr().out
    text = (hint_sweep / "results.md").read_text()
    assert printed.strip() in text
    header, _, paper, none = printed.strip().splitlines()
    assert header == "| variant | train acc | train loss | test acc | test loss | test PSNR |"
    for row, job in ((paper, "0"), (none, "1")):
        cells = [c.strip() for c in row.strip("|").split("|")]
        metrics = read_csv_log(hint_sweep / job)
        assert cells[0] == ["hints=paper", "hints=none"][int(job)]
        assert cells[3] == f"{metrics[-1]['test/acc']:.1%}" and cells[5] == f"{metrics[-1]['test/psnr']:.2f} dB"
        assert "–" not in cells  # every column found
    assert (hint_sweep / "val_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_results_table_from_wandb_logs_alone(hint_sweep, tmp_path, capsys):
    """The offline W&B run file holds the same history as the CSV log; without the CSV the table is the same."""
    for job in ("0", "1"):
        csv_rows, wandb_rows = read_csv_log(hint_sweep / job), read_wandb_log(str(hint_sweep / job))
        for key in ("train/acc_epoch", "val/acc", "test/acc", "test/psnr"):
            assert [r[key] for r in csv_rows if key in r] == [r[key] for r in wandb_rows if key in r]
    collect_main([str(hint_sweep)])
    with_csv = capsys.readouterr().out
    copy = shutil.copytree(hint_sweep, tmp_path / "copy")
    for job in ("0", "1"):
        shutil.rmtree(copy / job / "csv")
    collect_main([str(copy)])
    assert capsys.readouterr().out == with_csv


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_results_table_refuses_a_dir_without_runs(tmp_path, capsys, make):
    with pytest.raises(SystemExit) as exit_info:
        collect_main([str(make(tmp_path))])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and str(make(tmp_path)) in message


def test_wandb_logger_composes_without_hydra_runtime(tmp_path, cfg_train):
    """Composed as the tests do (no multirun, no Hydra runtime): a plain run in the task's group."""
    cfg = cfg_train("logger=wandb")
    assert (cfg.logger.wandb.name, cfg.logger.wandb.group, list(cfg.logger.wandb.tags)) == (None, "train", [])
    logger = hydra.utils.instantiate(cfg.logger.wandb, _convert_="all")
    assert logger.save_dir == str(tmp_path)


def test_option_check_lets_sweep_syntax_through():
    """train.py's early check of group options must accept what sweeps use: plugin launchers and sweepers,
    several configs of one group, sweep functions; and still refuse an unknown option inside a list."""
    from colorization.checks import ConfigError, check_group_choices

    argv = ["train.py", "hydra/launcher=submitit_local", "hydra/sweeper=optuna", "logger=[csv,wandb]",
            "model=choice(unet,resunet)", "hints=paper,none", "hparams_search=optuna", "experiment=paper_table1"]
    check_group_choices(argv, str(ROOT / "conf"))
    with pytest.raises(ConfigError, match="logger=foo: no such option"):
        check_group_choices(["train.py", "logger=[csv,foo]"], str(ROOT / "conf"))
