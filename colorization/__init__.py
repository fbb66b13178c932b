"""User-guided image colorization: L + sparse ab hints -> binned ab, with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
