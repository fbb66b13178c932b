"""Bad input caught before any work starts: one line naming the option, exit code 2 (train.py, evaluate.py)."""

import difflib
import errno
import logging
import os
import sys
import tempfile

EXIT_BAD_INPUT = 2


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the option."""


def group_choices(folder: str) -> list[str]:
    """The options of a config group: its YAML files, less the bases the others build on (`data/base.yaml`,
    named in their defaults lists), which are not complete configs by themselves."""
    from omegaconf import OmegaConf

    names = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))
    defaults = [OmegaConf.load(os.path.join(folder, f"{name}.yaml")).get("defaults", []) for name in names]
    bases = {entry for entries in defaults for entry in entries if isinstance(entry, str)}
    return [name for name in names if name not in bases]


def check_group_choices(argv: list[str], conf_dir: str):
    """`model=foo` where conf/model/foo.yaml does not exist (or `data=base`): say so with the valid choices.

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
        choices = group_choices(folder)
        for choice in value.strip("[]").split(","):  # [csv,wandb]: several configs of one group
            if choice not in choices:
                raise ConfigError(f"{group}={choice}: no such option; choose one of {', '.join(choices)}")


def check_command_line(argv: list[str], conf_dir: str):
    """train.py's command line before Hydra runs it: group options, option names (with the nearest right one:
    Hydra's own message invites `+modle=unet`, a silent new key) and a writable output folder (Hydra's own
    error is a traceback from its log file handler)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from omegaconf import OmegaConf

    check_group_choices(argv, conf_dir)
    args = get_args_parser().parse_args(argv[1:])
    if args.shell_completion or args.config_path or args.config_dir:
        return
    try:
        overrides, structure = structural_overrides(args.overrides, conf_dir)
        with initialize_config_dir(conf_dir, version_base="1.3"):
            cfg = compose(args.config_name or "train", overrides=structure, return_hydra_config=True)
    except Exception:  # a malformed override or an experiment that does not compose: Hydra says which
        return
    tree = OmegaConf.to_container(cfg)
    groups = [g for g in os.listdir(conf_dir) if os.path.isdir(os.path.join(conf_dir, g))]
    for override in overrides:
        check_known_key(tree, override.key_or_group, groups)
    if not (args.help or args.hydra_help or args.info or args.cfg):
        multirun = args.multirun or cfg.hydra.mode == "MULTIRUN"
        try:
            folder = cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir
        except Exception:  # set from what only a running job knows (${hydra:job.override_dirname})
            return
        check_writable(folder, "the output folder")


def structural_overrides(overrides: list[str], conf_dir: str) -> tuple[list, list[str]]:
    """(the plain `key=value` overrides to check, the overrides that shape the config: group choices, with a
    sweep's first option, `+`/`++`/`~` and hydra.*)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain, structure = [], []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        group = os.path.isdir(os.path.join(conf_dir, key))
        if not (group or override.is_add() or override.is_force_add() or override.is_delete()
                or key == "hydra" or key.startswith(("hydra.", "hydra/"))):
            plain.append(override)
        elif not override.is_sweep_override():
            structure.append(override.input_line)
        elif group:
            structure.append(f"{key}={next(iter(override.sweep_string_iterator()))}")
    return plain, structure


def check_known_key(tree: dict, key: str, groups: list[str]):
    """`modle=unet`, `trainer.devise=4`: unknown option, with the nearest known one."""
    node, parts = tree, key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict):  # a list, a value or an interpolation: Hydra checks those itself
            return
        if part not in node:
            choices = [*node, *(groups if i == 0 else [])]
            close = difflib.get_close_matches(part, choices, n=1)
            if close:
                meant = ".".join([*parts[:i], close[0], *parts[i + 1:]])
                raise ConfigError(f"unknown option {key}; did you mean {meant}?")
            raise ConfigError(f"unknown option {key}; `python train.py --cfg job` lists them all")
        node = node[part]


# What a write that failed tells a user, by errno ({disk}: the mount point of the file's disk).
WRITE_ERRORS = {errno.ENOSPC: "no space left on the disk mounted at {disk}",
                errno.EDQUOT: "the disk quota on {disk} is used up",
                errno.EFBIG: "the file size limit (ulimit -f) is reached", errno.EROFS: "read-only file system",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied"}
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_failure(error: OSError, path: str) -> str:
    return WRITE_ERRORS.get(error.errno, error.strerror.lower()).format(disk=mount_point(path))


def mount_point(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def check_writable(folder: str, what: str):
    """Create-and-delete a file in `folder` (or the nearest existing folder above it, which it would be
    created in): os.access answers for neither root nor read-only mounts."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"{what} {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ConfigError(f"cannot write to {what} {folder}: {write_failure(error, existing)}") from None


def write_error_message(error: OSError, folder: str) -> str | None:
    """One line for a file error during training (a full disk, a folder made read-only) in or under `folder`,
    or None for other errors."""
    if error.errno not in WRITE_ERRORS:
        return None
    where = error.filename or folder
    if error.errno in FULL:
        return (f"cannot write {where}: {write_failure(error, where)}; the checkpoints written before are kept: "
                "free some space, then resume with ckpt_path=last")
    return f"{where}: {write_failure(error, where)}"


def warn_cpu_processes(trainer, accelerator: str):
    """`trainer.devices=4` where no GPU is found: Lightning starts 4 training processes on the CPU without a word.
    A warning, not an error: several CPU processes are how DDP code is tried without GPUs (the tests do)."""
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    devices, cores = trainer.num_devices, len(os.sched_getaffinity(0))
    if isinstance(trainer.accelerator, CPUAccelerator) and devices > 1 and (accelerator != "cpu" or devices > cores):
        if rank_zero_only.rank == 0:
            found = "no GPU found" if accelerator != "cpu" else "trainer.accelerator=cpu"
            logging.getLogger(__name__).warning(
                "trainer.devices=%d with %s: %d training processes share this machine's %d CPU cores "
                "(trainer.devices=1 trains in one)", devices, found, devices, cores)


def check_train_config(cfg):
    from omegaconf import OmegaConf

    from colorization.models import BACKBONES, check_image_size
    from colorization.transforms.bins import check_decode
    from colorization.transforms.encoding import check_encoding

    if cfg.bins.n < 2:
        raise ConfigError(f"bins.n={cfg.bins.n}: needs at least 2 bins per channel")
    low, high = cfg.bins.range
    if not low < high:
        raise ConfigError(f"bins.range={list(cfg.bins.range)}: the low end must be below the high end")
    try:
        check_image_size(cfg.data.image_size, "data.image_size")
    except ValueError as error:
        raise ConfigError(str(error)) from None
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
    try:
        check_decode(cfg.decode)
        check_encoding(cfg.input, cfg.output)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    for callback in (cfg.get("callbacks") or {}).values():
        if callback and callback.get("dirpath"):  # checkpoints: Lightning ignores a folder it cannot write
            check_writable(callback.dirpath, "the checkpoint folder")


def exit_bad_input(error: Exception):
    print(f"error: {error}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
