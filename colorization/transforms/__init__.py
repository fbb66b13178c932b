"""Tensor-in, tensor-out transforms shared by training, evaluation and inference.

They import neither the data code nor the networks.
"""

from colorization.transforms.bins import ab_to_bins, bin_counts, bins_to_ab, class_weights, decode_logits
from colorization.transforms.color import colourfulness, lab_to_rgb, merge_l_ab, rgb_to_lab, rgb_to_lightness
from colorization.transforms.encoding import (
    edge_aware_fill,
    hint_confidence,
    keep_hints,
    levin_fill,
    make_input,
    propagate_hints,
)
from colorization.transforms.hints import NoHints, PaperHints, PointHints, fixed_hints, prepare_batch

__all__ = [
    "NoHints", "PaperHints", "PointHints", "ab_to_bins", "bin_counts", "bins_to_ab", "class_weights",
    "colourfulness", "decode_logits", "edge_aware_fill", "fixed_hints", "hint_confidence", "keep_hints", "lab_to_rgb",
    "levin_fill", "make_input", "merge_l_ab", "prepare_batch", "propagate_hints", "rgb_to_lab", "rgb_to_lightness",
]
