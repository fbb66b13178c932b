"""Non-learned colorization baselines.

Each baseline has the model's call shape: ``method(L, hint_ab, mask) -> ab``
with ``L`` (B, 1, H, W) in 0..100, ``hint_ab`` (B, 2, H, W), ``mask``
(B, 1, H, W) in {0, 1}, returning ``ab`` (B, 2, H, W) on L's device/dtype.
"""

from colorization.baselines.gray import gray
from colorization.baselines.levin import levin, levin_colorize

BASELINES = {"gray": gray, "levin": levin}

__all__ = ["BASELINES", "gray", "levin", "levin_colorize"]
