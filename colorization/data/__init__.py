"""Data: the FiftyOne catalogue, decoding in workers, and the DataModule. Knows nothing of the networks.

The DataModule (Lightning) is imported on first use, so decoding photos (`colorize`, the app) does not load
Lightning."""

from colorization.data.decode import DecodeError, ImageFiles, decode_image, load_rgb

__all__ = ["ColorizationDataModule", "DecodeError", "ImageFiles", "decode_image", "load_rgb"]


def __getattr__(name: str):
    if name == "ColorizationDataModule":
        from colorization.data.datamodule import ColorizationDataModule

        return ColorizationDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
