"""Writing result images: by extension, atomically, never leaving partial files behind."""

import glob
import os
import tempfile

import numpy as np
from PIL import Image

# PNG at zlib level 1 (OpenCV's default): a full-resolution photo writes several times faster than at Pillow's
# level 6, for a slightly larger file.
SAVE_OPTIONS = {"JPEG": {"quality": 95}, "PNG": {"compress_level": 1}}


def writable_format(path: str) -> str | None:
    """The Pillow format that writes files named like `path` (by extension), or None."""
    image_format = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    return image_format if image_format in Image.SAVE else None


def _partial_prefix(path: str) -> str:
    return f".{os.path.basename(path)}."


def remove_stale_partials(path: str) -> None:
    """Remove the partial files of `path` left by writers that were killed (their process is gone)."""
    folder = os.path.dirname(os.path.abspath(path))
    for partial in glob.glob(os.path.join(glob.escape(folder), glob.escape(_partial_prefix(path)) + "*.part")):
        pid = os.path.basename(partial)[len(_partial_prefix(path)):].split(".")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            try:
                os.unlink(partial)
            except FileNotFoundError:  # another run removed it first
                pass


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (for files named after the process that writes them)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def save_image(rgb: np.ndarray, path: str):
    """Write atomically (a temporary file in the same folder, named with this process's id, then a rename):
    never a half-written photo; partial files of killed earlier writers are removed first."""
    image_format = writable_format(path)
    if image_format is None:
        raise ValueError(f"{path}: cannot write images with extension {os.path.splitext(path)[1] or '(none)'!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_partials(path)
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f"{_partial_prefix(path)}{os.getpid()}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(rgb).save(f, format=image_format, **SAVE_OPTIONS.get(image_format, {}))
        os.chmod(partial, 0o644)  # mkstemp's 0600 would make the result private
        os.replace(partial, path)
    except BaseException:  # also SystemExit from the SIGTERM handler of `colorize`
        os.unlink(partial)
        raise
