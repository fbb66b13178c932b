"""Hydra glue for train.py: resolvers, sweep variants, and multirun jobs that launch DDP processes."""

import contextlib
import netrc
import os
import sys

from omegaconf import OmegaConf, read_write

# What Lightning's DDP launcher exports in the main process (and never removes).
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


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


def _key(override: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(override).key_or_group


def sweep_keys(sweep_dir: str) -> set[str]:
    """The keys a sweep varies: its command line's sweeps (`model=unet,resunet`) and hydra.sweeper.params
    (experiment files, Optuna's search space), read from the multirun.yaml every launcher writes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = os.path.join(sweep_dir, "multirun.yaml")
    if not os.path.exists(path):
        return set()
    hydra = OmegaConf.load(path).hydra
    overrides = OverridesParser.create().parse_overrides(list(hydra.overrides.task))
    return {o.key_or_group for o in overrides if o.is_sweep_override()} | set(hydra.sweeper.get("params") or {})


def variant(job_overrides, keys: set[str]) -> list[str]:
    """This job's values of the swept keys, e.g. ["model=unet", "hints=none"]."""
    return [o for o in job_overrides if _key(o) in keys]


def wandb_run(field: str, task_name: str):
    """W&B name / group / tags of this run: in a multirun, its variant and one group per sweep; elsewhere
    (a single run, or a config composed without Hydra's runtime, as in tests) a random name and task_name."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return {"name": None, "group": task_name, "tags": []}[field]
    job = HydraConfig.get()
    values = variant(job.overrides.task, sweep_keys(job.sweep.dir))
    return {"name": ",".join(values) or f"job{job.job.num}",
            "group": f"{task_name}-{os.path.basename(os.path.normpath(job.sweep.dir))}",
            "tags": [v[:64] for v in values]}[field]  # W&B refuses tags over 64 characters


def register_resolvers():
    if not OmegaConf.has_resolver("wandb_mode"):
        OmegaConf.register_new_resolver("wandb_mode", wandb_mode)
    if not OmegaConf.has_resolver("wandb_run"):
        OmegaConf.register_new_resolver("wandb_run", wandb_run)


@contextlib.contextmanager
def ddp_children_run_this_job_only(trainer):
    """Around fit/test of one multirun job: Lightning's DDP child processes run this job, not the sweep.

    Lightning starts each extra rank as `python train.py <sys.argv[1:]> hydra.run.dir=<run.dir>` (upstream
    bug): in a multirun, sys.argv holds `-m` and every sweep value, so each child would launch the whole
    sweep again, and run.dir is not the job's dir. Here the command line becomes this job's own overrides
    and run.dir its output dir. Afterwards the main process must forget the finished job's DDP (its process
    group and the env variables Lightning set), or the next job would wait for ranks that never come.
    Does nothing outside a multirun, without DDP, or where SLURM or torchrun start the processes themselves.
    """
    import torch.distributed as dist
    from hydra._internal.utils import get_args_parser
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    cluster = getattr(trainer.strategy, "cluster_environment", None)  # None: one device, no DDP
    if (cluster is None or cluster.creates_processes_externally or not HydraConfig.initialized()
            or HydraConfig.get().mode != RunMode.MULTIRUN):
        yield
        return
    config = HydraConfig.get()
    args = get_args_parser().parse_args(sys.argv[1:])
    flags = [f"--{name.replace('_', '-')}={value}" for name in ("config_path", "config_name", "config_dir")
             if (value := getattr(args, name))]
    saved_argv, saved_env = sys.argv, {name: os.environ.get(name) for name in DDP_ENV}
    sys.argv = [sys.argv[0], *flags, *config.overrides.task, "hydra.mode=RUN"]
    with read_write(config.run):
        config.run.dir = config.runtime.output_dir
    try:
        yield
        for child in getattr(trainer.strategy.launcher, "procs", []):  # on failure Lightning kills them
            child.wait()
    finally:
        sys.argv = saved_argv
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
