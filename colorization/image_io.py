"""Writing result images: by extension, atomically, never leaving partial files behind."""

import os

import numpy as np
from PIL import Image

from colorization.atomic import atomic_path, remove_stale_partials

# PNG at zlib level 1 (OpenCV's default): a full-resolution photo writes several times faster than at Pillow's
# level 6, for a slightly larger file.
SAVE_OPTIONS = {"JPEG": {"quality": 95}, "PNG": {"compress_level": 1}}


def writable_format(path: str) -> str | None:
    """The Pillow format that writes files named like `path` (by extension), or None."""
    image_format = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    return image_format if image_format in Image.SAVE else None


def save_image(rgb: np.ndarray, path: str):
    """Write atomically (`atomic_path`): never a half-written photo; partial files of killed earlier writers of
    the same photo are removed first."""
    image_format = writable_format(path)
    if image_format is None:
        raise ValueError(f"{path}: cannot write images with extension {os.path.splitext(path)[1] or '(none)'!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    remove_stale_partials(path)
    with atomic_path(path) as partial, open(partial, "wb") as f:
        Image.fromarray(rgb).save(f, format=image_format, **SAVE_OPTIONS.get(image_format, {}))
