"""python train.py [model=resunet] [data=coco] [trainer.devices=4] ... -- see conf/train.yaml."""

import logging
import os

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from colorization.hydra_utils import ddp_children_run_this_job_only, register_resolvers

log = logging.getLogger(__name__)
register_resolvers()


def instantiate_all(cfg: DictConfig, key: str) -> list:
    return [hydra.utils.instantiate(c, _convert_="all") for c in (cfg.get(key) or {}).values()]


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """`ckpt_path=last` resumes from this output dir's last.ckpt (the path Lightning's checkpoint writes)."""
    if cfg.ckpt_path == "last":
        path = os.path.join(cfg.paths.output_dir, "checkpoints", "last.ckpt")
        return path if os.path.exists(path) else None
    return cfg.ckpt_path


def train(cfg: DictConfig) -> dict:
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    system = hydra.utils.instantiate(cfg.system, _convert_="all")
    loggers = instantiate_all(cfg, "logger")
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=instantiate_all(cfg, "callbacks"))
    for logger in loggers:
        logger.log_hyperparams({"config": OmegaConf.to_container(cfg, resolve=True),
                                "parameters": sum(p.numel() for p in system.net.parameters())})

    with ddp_children_run_this_job_only(trainer):
        trainer.fit(system, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg))
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.test and not trainer.fast_dev_run:
            trainer.test(system, datamodule=datamodule, ckpt_path=best or None)
            metrics.update({k: v.item() for k, v in trainer.callback_metrics.items()})
    if trainer.is_global_zero:
        print(f"best checkpoint: {best or '(none saved)'}")
    return {"metrics": metrics, "best_checkpoint": best}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    result = train(cfg)
    if any(logger == "wandb" for logger in (cfg.get("logger") or {})):
        import wandb

        wandb.finish()  # one W&B run per multirun job
    return result["metrics"].get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
