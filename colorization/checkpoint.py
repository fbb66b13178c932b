"""Reading checkpoints safely (weights_only), without Lightning: the CLI and the app start without it."""

import torch

from colorization.weights import REFERENCE, WeightsError, reference_path


class CheckpointError(ValueError):
    """A file that is not a checkpoint of this project, or one that does not fit the asked-for model."""


def resolve_checkpoint(path: str | None) -> str:
    """A checkpoint path; `reference` (or None) means the shipped reference weights, checked by their SHA-256."""
    if path in (None, REFERENCE):
        try:
            return reference_path()
        except WeightsError as error:
            raise CheckpointError(str(error)) from None
    return path


def read_checkpoint(path: str | None, map_location="cpu") -> dict:
    """A checkpoint of this project (default: the reference model) as a dictionary with `hyper_parameters`
    (the system's) and `state_dict`, loaded with weights_only=True; CheckpointError naming the file otherwise."""
    path = resolve_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: a folder, not a checkpoint file") from None
    except Exception:  # unpickling refused, truncated file, not a torch file at all
        raise CheckpointError(f"{path}: not a colorization checkpoint (unreadable, truncated, or a pickle "
                              "that is not plain weights)") from None
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "net" not in hparams or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a colorization checkpoint (no network hyper-parameters)")
    checkpoint["path"] = path
    return checkpoint


def load_weights(module: torch.nn.Module, state_dict: dict, checkpoint: dict, assign: bool = False) -> None:
    """`module.load_state_dict(state_dict, assign=assign)` (assign: a module built on the meta device takes the
    tensors themselves); CheckpointError naming the file when the weights do not fit."""
    try:
        module.load_state_dict(state_dict, assign=assign)
    except RuntimeError as error:
        h = checkpoint["hyper_parameters"]
        raise CheckpointError(f"{checkpoint['path']}: weights do not fit {h['net']} with {h.get('n_bins', 32)} bins: "
                              f"{str(error).splitlines()[0]}") from None


def trained_image_size(checkpoint: dict) -> int | None:
    """The training image size recorded with the data module's hyper-parameters, if there is one."""
    size = (checkpoint.get("datamodule_hyper_parameters") or {}).get("image_size")
    return int(size) if isinstance(size, int) else None
