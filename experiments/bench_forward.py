"""Inference figures: ms per 256 px forward of each backbone (default widths, batch 1) in plain eager float32
against channels-last, bfloat16 autocast, both, both with BatchNorm folded into the convolutions, and that with
its weights held in bfloat16 (the network of `InferenceModel.predict`, what colorize, the app and evaluate.py run:
autocast does not cast them at every call), and the
lower bound = the model's FLOPs / this CPU's convolution FLOP/s measured in the same run. The `inference`
section of `python -m experiments.bench` (the colorize command's own timing: its `colorize` section)."""

import copy
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from colorization.models import BACKBONES
from colorization.system import ColorizationSystem
from colorization.transforms import PaperHints, prepare_batch
from experiments.bench_train import default_net
from experiments.bench_util import interleaved

INFER = "channels_last + bf16"
FOLDED = "+ BatchNorm folded"
COLORIZE = "+ weights held in bf16 (`colorize`, app)"  # the network as InferenceModel.predict runs it
BF16 = {"enabled": True, "device_type": "cpu", "dtype": torch.bfloat16}


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def conv_peak_variants() -> tuple[dict, int]:
    """A large 3x3 convolution (256 -> 256 channels at 64x64) per precision and layout: (variant -> no-argument
    callable, FLOPs of one call). Timed beside each backbone's variants, not once: a bound measured at another
    moment than what it bounds moves with the machine's load (ratios below 1)."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).eval()
    x = torch.randn(1, 256, 64, 64)
    conv_cl, x_cl = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

    def bf16(module, inputs):
        with torch.autocast(**BF16):
            module(inputs)

    return ({"conv fp32": lambda: conv(x), "conv fp32 cl": lambda: conv_cl(x_cl),
             "conv bf16": lambda: bf16(conv, x), "conv bf16 cl": lambda: bf16(conv_cl, x_cl)},
            flops(lambda: conv(x)))


def conv_peak(seconds: dict, work: int) -> dict[str, float]:
    """FLOP/s per precision, in the best layout, from the conv variants' seconds."""
    return {precision: work / min(seconds[f"conv {precision}"], seconds[f"conv {precision} cl"])
            for precision in ("fp32", "bf16")}


# Operators that do the counted FLOPs; everything else (BatchNorm, ReLU, cat, upsampling, layout) moves memory.
COMPUTE_OPS = {"aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::addmm", "aten::mm", "aten::bmm",
               "aten::_scaled_dot_product_flash_attention_for_cpu"}


def compute_share(fn) -> float:
    """Fraction of one call's CPU time spent in the FLOP-counted operators (torch.profiler, self time)."""
    with torch.profiler.profile() as profile:
        fn()
    events = profile.key_averages()
    return sum(e.self_cpu_time_total for e in events if e.key in COMPUTE_OPS) / sum(
        e.self_cpu_time_total for e in events)


def forward_variants(name: str, size: int, compile_too: bool = False) -> tuple[dict, int, float]:
    """(variant -> no-argument callable, FLOPs of one forward, seconds to compile or nan)."""
    torch.manual_seed(0)
    plain = ColorizationSystem(default_net(name), channels_last=False).eval()
    fast = ColorizationSystem(default_net(name)).eval()  # channels_last: the default
    fast.load_state_dict(plain.state_dict())
    rgb = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    batch = prepare_batch(rgb, PaperHints())
    x = plain.batch_input(batch)

    def autocast(module, inputs=x):
        with torch.autocast(**BF16):
            module(inputs)

    folded = fast.inference_model().net
    folded_bf16, x_bf16 = copy.deepcopy(folded).to(torch.bfloat16), x.to(torch.bfloat16)
    variants = {"eager fp32": lambda: plain(x), "channels_last fp32": lambda: fast(x),
                "bf16 autocast": lambda: autocast(plain), INFER: lambda: autocast(fast),
                FOLDED: lambda: autocast(folded), COLORIZE: lambda: autocast(folded_bf16, x_bf16)}
    compile_seconds = float("nan")
    if compile_too:
        compiled = torch.compile(fast.net)
        start = time.perf_counter()
        compiled(x.contiguous(memory_format=torch.channels_last))
        compile_seconds = time.perf_counter() - start
        variants["torch.compile fp32"] = lambda: compiled(x.contiguous(memory_format=torch.channels_last))
    return variants, flops(lambda: plain(x)), compile_seconds


@torch.no_grad()
def inference_figures(size: int = 256, repeats: int = 3, compile_too: bool = False) -> dict:
    convs, conv_work = conv_peak_variants()
    out = {"backbones": {}}
    for name in BACKBONES:
        variants, work, compile_seconds = forward_variants(name, size, compile_too)
        seconds = interleaved({**variants, **convs}, repeats)  # the bound in the same rounds as what it bounds
        peak = conv_peak(seconds, conv_work)
        out["backbones"][name] = {"compute share": compute_share(variants[COLORIZE]), "peak": peak,
                                  "ms": {k: seconds[k] * 1000 for k in variants}, "gflop": work / 1e9,
                                  "bound fp32 ms": work / peak["fp32"] * 1000,
                                  "bound bf16 ms": work / peak["bf16"] * 1000, "compile s": compile_seconds}
    return out


@torch.no_grad()
def bf16_error(system: ColorizationSystem, batch: dict) -> dict:
    """|ab| difference in LAB units between float32 and colorize's path (InferenceModel.predict: bf16, BatchNorm
    folded) after decoding."""
    system.eval()
    reference = system.predict_ab(system(system.batch_input(batch)), batch)
    ab = system.inference_model().predict(batch["L"], batch["hint_ab"], batch["mask"]).ab
    difference = (ab - reference).abs().flatten()
    return {"mean": difference.mean().item(), "p99": difference.quantile(0.99).item(), "max": difference.max().item()}
