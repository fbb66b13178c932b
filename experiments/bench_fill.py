"""The edge-aware fill (input=edge) per batch with its in-block prefix sums two ways, interleaved in one run:
torch.cumsum (what the CPU uses) and shifted additions (what a GPU uses; CUDA's scan of 4-pixel rows was half of a
training step's time).

Usage: python -m experiments.bench fill [--device cuda] [--batch 128] [--size 256] [--repeats 10]
"""

import argparse
from unittest import mock

import torch

from colorization.transforms import encoding
from experiments.bench_util import interleaved


def fill_figures(device: str, batch: int, size: int, repeats: int) -> dict[str, float]:
    """ms per batch of the edge fill of Zhang et al.-like sparse hints (0.2% of pixels), each way."""
    generator = torch.Generator().manual_seed(0)
    L = torch.rand(batch, 1, size, size, generator=generator).mul(100).to(device)
    mask = (torch.rand(batch, 1, size, size, generator=generator) < 0.002).float().to(device)
    hint_ab = torch.randn(batch, 2, size, size, generator=generator).mul(30).to(device) * mask

    def fill():
        encoding.edge_aware_fill(L, hint_ab, mask)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def fill_with(block_cumsum):
        def run():
            with mock.patch.object(encoding, "_block_cumsum", block_cumsum):
                fill()
        return run

    seconds = interleaved({"torch.cumsum": fill_with(lambda x: x.cumsum(-1)),
                           "shifted additions": fill_with(encoding._shifted_cumsum)}, repeats)
    return {name: s * 1000 for name, s in seconds.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.bench fill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    ms = fill_figures(args.device, args.batch, args.size, args.repeats)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"edge fill, {name}, batch {args.batch} at {args.size} px (best of {args.repeats}, interleaved): "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
          + f"; cumsum / shifted additions {ms['torch.cumsum'] / ms['shifted additions']:.2f}")


if __name__ == "__main__":
    main()
