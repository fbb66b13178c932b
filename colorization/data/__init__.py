"""Data: the FiftyOne catalogue, decoding in workers, and the DataModule. Knows nothing of the networks."""

from colorization.data.datamodule import ColorizationDataModule
from colorization.data.decode import DecodeError, ImageFiles, decode_image, load_rgb

__all__ = ["ColorizationDataModule", "DecodeError", "ImageFiles", "decode_image", "load_rgb"]
