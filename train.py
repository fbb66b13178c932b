"""python train.py [model=resunet] [data=coco] [trainer.devices=4] ... -- see conf/train.yaml."""

import glob
import logging
import os
import sys

import hydra
import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from colorization.checkpoint import CheckpointError, read_checkpoint
from colorization.checkpoint_io import AtomicCheckpointIO
from colorization.checks import (
    ConfigError,
    check_command_line,
    check_train_config,
    exit_bad_input,
    warn_cpu_processes,
    write_error_message,
)
from colorization.hydra_utils import ddp_children_run_this_job_only, register_resolvers
from colorization.models import count_parameters

CONF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf")

log = logging.getLogger(__name__)
register_resolvers()


def instantiate_all(cfg: DictConfig, key: str) -> list:
    return [hydra.utils.instantiate(c, _convert_="all") for c in (cfg.get(key) or {}).values()]


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """`ckpt_path=last`: this output dir's last.ckpt, else the newest one of this task's earlier runs
    (a re-run command gets a new output dir). A path must exist."""
    if cfg.ckpt_path == "last":
        here = os.path.join(cfg.paths.output_dir, "checkpoints", "last.ckpt")
        runs = glob.glob(os.path.join(os.path.dirname(os.path.normpath(cfg.paths.output_dir)), "*", "checkpoints",
                                      "last.ckpt"))
        found = [here] if os.path.exists(here) else sorted(runs, key=os.path.getmtime)[-1:]
        if not found:
            log.warning("ckpt_path=last: no last.ckpt under %s; starting from scratch", cfg.paths.output_dir)
            return None
        log.info("resuming from %s", found[0])
        return found[0]
    if cfg.ckpt_path and not os.path.isfile(cfg.ckpt_path):
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint")
    return cfg.ckpt_path


def check_resumable(system, path: str):
    """A checkpoint this run can resume from, checked before any work (Lightning's errors for a truncated,
    foreign or other network's file are long tracebacks, after the data is prepared)."""
    try:
        checkpoint = read_checkpoint(path)  # torch.load(weights_only=True): never unpickles code
    except CheckpointError as error:
        raise CheckpointError(f"ckpt_path={error}") from None
    system.check_same_network(checkpoint, "ckpt_path", "resume with the same model.*, bins.n, input and output, "
                                                       "or start from its weights with init=PATH")
    if "optimizer_states" not in checkpoint:
        raise CheckpointError(f"ckpt_path={path}: holds weights only, no training state to resume; start from its "
                              "weights with init=PATH")


def train(cfg: DictConfig) -> dict:
    check_train_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    system = hydra.utils.instantiate(cfg.system, _convert_="all")
    if cfg.init:
        system.init_from(cfg.init)
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path:
        check_resumable(system, ckpt_path)
    loggers = instantiate_all(cfg, "logger")
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=instantiate_all(cfg, "callbacks"),
                                      plugins=[AtomicCheckpointIO()])
    warn_cpu_processes(trainer, cfg.trainer.accelerator)
    for logger in loggers:
        logger.log_hyperparams({"config": OmegaConf.to_container(cfg, resolve=True),
                                "parameters": count_parameters(system.net)})

    with ddp_children_run_this_job_only(trainer):
        trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.test and not trainer.fast_dev_run:
            trainer.test(system, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            metrics.update({k: v.item() for k, v in trainer.callback_metrics.items()})
    if trainer.is_global_zero:
        print(f"best checkpoint: {best or '(none saved)'}")
    return {"metrics": metrics, "best_checkpoint": best,
            "optimized": optimized_value(trainer, metrics, cfg.get("optimized_metric"))}


def optimized_value(trainer: L.Trainer, metrics: dict, name: str | None) -> float | None:
    """What a sweeper (Optuna) optimises: `name`'s best value, the score of the checkpoint kept on it, not the
    last epoch's; the last logged value where no checkpoint monitors it (fast_dev_run saves none)."""
    for callback in trainer.checkpoint_callbacks:
        if name and getattr(callback, "monitor", None) == name and callback.best_model_score is not None:
            return callback.best_model_score.item()
    if name and not any(getattr(c, "monitor", None) == name for c in trainer.checkpoint_callbacks):
        log.warning("optimized_metric=%s: no checkpoint callback monitors it; returning its last value", name)
    return metrics.get(name)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        result = train(cfg)
    except (ConfigError, CheckpointError) as error:
        exit_bad_input(error)
    except OSError as error:  # a full disk, a folder made read-only during training
        message = write_error_message(error, cfg.paths.output_dir)
        if message is None:
            raise
        exit_bad_input(message)
    except SIGTERMException:
        print("received SIGTERM: saved checkpoints/last.ckpt; resume with ckpt_path=last", file=sys.stderr)
        sys.exit(143)
    if any(logger == "wandb" for logger in (cfg.get("logger") or {})):
        import wandb

        wandb.finish()  # one W&B run per multirun job
    return result["optimized"]


if __name__ == "__main__":
    try:
        check_command_line(sys.argv, CONF_DIR)
    except ConfigError as error:
        exit_bad_input(error)
    main()
