"""Path -> uint8 RGB tensor at the training size. Decoding tricks live here and only here."""

import numpy as np
import torch
from PIL import Image, ImageOps

MAX_PIXELS = 178_956_970  # Pillow's decompression-bomb limit, made an error rather than a warning
MIN_SIDE = 16
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


class DecodeError(Exception):
    """A file that is not a usable photo; the message names the file and the reason."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode (gray, palette, alpha, CMYK, 16-bit) -> 8-bit RGB; transparency composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit gray: keep the top 8 bits, not a clip
        array = np.asarray(image, dtype=np.uint32)
        return Image.fromarray((array >> 8 if array.max() > 255 else array).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _resize(image: Image.Image, size: int, policy: str) -> Image.Image:
    if policy == "stretch":  # the paper: straight to size x size, aspect ratio lost
        return image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    if policy == "crop":  # the centre square, scaled to size (shorter side to size, centre crop)
        width, height = image.size
        side = min(width, height)
        box = ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)
        return image.resize((size, size), Image.BILINEAR, box=box, reducing_gap=2.0)
    raise ValueError(f"data.resize={policy!r}: expected crop or stretch")


def load_rgb(path: str, max_pixels: int = MAX_PIXELS, draft_size: int | None = None) -> Image.Image:
    """Decode `path` to an 8-bit RGB Pillow image, upright (EXIF), or raise DecodeError naming the file.

    Full resolution unless `draft_size` is given: JPEGs are then decoded at a reduced scale (Pillow's draft
    mode: DCT scaling by 1/2, 1/4 or 1/8) that is still at least `draft_size` on each side, so most of the
    decoding work for large photos is skipped.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise DecodeError(f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels}")
            if min(width, height) < MIN_SIDE:
                raise DecodeError(f"{path}: {width}x{height} is smaller than {MIN_SIDE} px")
            if draft_size and image.format == "JPEG" and image.mode in ("RGB", "L"):
                image.draft(image.mode, (draft_size, draft_size))
            return _to_rgb(ImageOps.exif_transpose(image))
    except DecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DecodeError(f"{path}: {type(error).__name__}: {error}") from None


def decode_image(path: str, size: int, resize: str = "crop", max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Decode `path` to a (3, size, size) uint8 tensor, or raise DecodeError naming the file and reason."""
    rgb = _resize(load_rgb(path, max_pixels, draft_size=size), size, resize)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


class ImageFiles(torch.utils.data.Dataset):
    """Plain file paths -> {"rgb", "index"}; a file that fails to decode yields {"error", "index"} instead."""

    def __init__(self, paths: list[str], size: int, resize: str = "crop", max_pixels: int = MAX_PIXELS):
        self.paths, self.size, self.resize, self.max_pixels = list(paths), size, resize, max_pixels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        try:
            return {"rgb": decode_image(self.paths[index], self.size, self.resize, self.max_pixels),
                    "index": index}
        except DecodeError as error:
            return {"error": str(error), "index": index}


def collate(items: list[dict]) -> dict:
    """Stack the good images; carry the bad files' messages along to be reported once, not raised."""
    good = [item for item in items if "error" not in item]
    return {
        "rgb": torch.stack([item["rgb"] for item in good]) if good else torch.empty(0, 3, 0, 0, dtype=torch.uint8),
        "index": torch.tensor([item["index"] for item in good], dtype=torch.long),
        "errors": [item["error"] for item in items if "error" in item],
    }
