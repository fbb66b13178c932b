"""The reference model shipped with the package: `--ckpt reference` (the default of colorize, the app and
evaluate.py) and `train.py init=reference`. How it was trained: experiments/results/reference_model.md."""

import hashlib
from importlib.resources import files

REFERENCE = "reference"
REFERENCE_FILE = "reference.pt"  # float16 weights, loadable with torch.load(weights_only=True)
# set by experiments/export_reference.py
REFERENCE_SHA256 = "4d80c3eacebc91c3b37877c1563fc2e2813a782ab5ea47bc87370f0ef07167c7"


class WeightsError(ValueError):
    """The shipped weights are missing or not the recorded file."""


def reference_path() -> str:
    """The reference weights' path, after checking the file against its recorded SHA-256."""
    path = str(files(__package__).joinpath(REFERENCE_FILE))
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        raise WeightsError(f"{path}: the reference weights are missing; reinstall the package") from None
    if digest != REFERENCE_SHA256:
        raise WeightsError(f"{path}: the reference weights are corrupt (SHA-256 {digest[:12]}..., expected "
                           f"{REFERENCE_SHA256[:12]}...); reinstall the package")
    return path
