"""Hydra glue for train.py: resolvers, and multirun jobs that launch DDP processes."""

import netrc
import os
import sys

from omegaconf import OmegaConf


def wandb_mode() -> str:
    """WANDB_MODE if set; online where the user has logged in (`wandb login`); offline otherwise."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        return "online" if netrc.netrc().authenticators("api.wandb.ai") else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


def register_resolvers():
    if not OmegaConf.has_resolver("wandb_mode"):
        OmegaConf.register_new_resolver("wandb_mode", wandb_mode)


def ddp_children_run_this_job_only():
    """Make Lightning's DDP child processes re-run this multirun job, not the whole sweep.

    Lightning starts each extra rank as `python train.py <sys.argv[1:]> hydra.run.dir=<run.dir>`. In a
    multirun, sys.argv holds `-m` and every sweep value, so each child would launch the sweep again
    (upstream bug). Here the command line becomes this job's own overrides, and run.dir its output dir.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    config = HydraConfig.get()
    sys.argv = [sys.argv[0], *config.overrides.task]
    with open_dict(config):
        config.run.dir = config.runtime.output_dir
