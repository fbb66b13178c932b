"""Bad input caught before any work starts: one line naming the option, exit code 2 (train.py, evaluate.py)."""

import os
import sys

EXIT_BAD_INPUT = 2


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the option."""


def check_group_choices(argv: list[str], conf_dir: str):
    """`model=foo` where conf/model/foo.yaml does not exist: say so with the valid choices.

    Hydra reports this too, but as a multi-line composition error with exit code 1.
    """
    for arg in argv[1:]:
        group, sep, value = arg.lstrip("+~").partition("=")
        folder = os.path.join(conf_dir, group)
        # hydra/*: plugins add options with no file here (submitit_local, optuna); sweep functions
        # (choice(...), range(...)): Hydra parses and checks them itself
        if (not sep or "." in group or group.startswith("hydra/") or "(" in value or not os.path.isdir(folder)
                or value in ("", "null")):
            continue
        choices = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))
        for choice in value.strip("[]").split(","):  # [csv,wandb]: several configs of one group
            if choice not in choices:
                raise ConfigError(f"{group}={choice}: no such option; choose one of {', '.join(choices)}")


def check_train_config(cfg):
    from omegaconf import OmegaConf

    from colorization.models import BACKBONES, SIZE_MULTIPLE

    if cfg.bins.n < 2:
        raise ConfigError(f"bins.n={cfg.bins.n}: needs at least 2 bins per channel")
    low, high = cfg.bins.range
    if not low < high:
        raise ConfigError(f"bins.range={list(cfg.bins.range)}: the low end must be below the high end")
    size = cfg.data.image_size
    if size < SIZE_MULTIPLE or size % SIZE_MULTIPLE:
        raise ConfigError(f"data.image_size={size}: the networks need a multiple of {SIZE_MULTIPLE} "
                          f"(e.g. {max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)})")
    if cfg.model.name not in BACKBONES:
        raise ConfigError(f"model.name={cfg.model.name}: choose one of {', '.join(BACKBONES)}")
    if cfg.data.source in ("images", "coco_dir"):
        directory = None if OmegaConf.is_missing(cfg.data, "dir") else cfg.data.dir
        if not directory:
            raise ConfigError(f"data.dir is required with data={cfg.data.source}: add data.dir=PATH")
        if not os.path.isdir(directory):
            raise ConfigError(f"data.dir={directory}: no such folder")
    if cfg.loss.lambda_patch < 0:
        raise ConfigError(f"loss.lambda_patch={cfg.loss.lambda_patch}: must be >= 0 (0 turns the hint term off)")
    if cfg.decode not in ("argmax", "expectation", "annealed_mean"):
        raise ConfigError(f"decode={cfg.decode}: choose one of argmax, expectation, annealed_mean")


def exit_bad_input(error: Exception):
    print(f"error: {error}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
