"""Inference figures for `colorize` and the app: ms per re-colorization at the network size (p50, p95) for
each backbone (untrained, the default widths of conf/model), the stages of a full-resolution run on a
synthesized 12-megapixel photo, and the command itself from start to exit against its goal (1.5 s), beside
what importing torch alone costs.

Usage: python -m experiments.bench colorize [--size 256] [--repeats 20] [--runs 7]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from functools import partial

import numpy as np
import torch
from PIL import Image

from colorization.data.catalogue import sample_photo_paths
from colorization.hint_file import Hint
from colorization.image_io import save_image
from colorization.inference import Colorizer
from colorization.models import BACKBONES, count_parameters
from colorization.system import ColorizationSystem
from experiments.bench_train import default_net

HINTS = [Hint(100 * i, 80 * i, (200, 60, 30), 25) for i in range(1, 6)]  # five hints, as while editing


def system_for(name: str) -> ColorizationSystem:
    """An untrained system with the backbone's default configuration (conf/model/NAME.yaml)."""
    return ColorizationSystem(default_net(name))


def percentiles_ms(work, repeats: int, warmup: int = 2) -> tuple[float, float]:
    for _ in range(warmup):
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def synthesize_photo(folder: str, width: int, height: int) -> str:
    """A real photo scaled up to width x height, saved as a JPEG like a camera's."""
    path = os.path.join(folder, f"photo-{width}x{height}.jpg")
    Image.open(sample_photo_paths()[2]).convert("RGB").resize((width, height), Image.BICUBIC).save(path, quality=90)
    return path


COMMAND_GOAL = 1.5  # seconds: `colorize photo.jpg`, start to exit (issue 15)


def command_seconds(folder: str, runs: int) -> dict[str, list[float]]:
    """Wall seconds of whole processes, the variants run in turns (load on the machine falls on all alike):
    `colorize` as installed; the same without its shortcut past the interpreter's teardown; importing torch."""
    photo = next(path for path in sample_photo_paths() if path.endswith("chelsea.png"))
    out = os.path.join(folder, "chelsea-colour.png")
    variants = {
        "`colorize chelsea.png -o OUT` (the command)": ["-c", "from colorization.cli.colorize import run; run()"],
        "the same, exiting through the interpreter's teardown": [
            "-c", "import sys; from colorization.cli.colorize import main; sys.exit(main())"],
        "importing torch alone (the floor)": ["-c", "import os, torch; os._exit(0)"],
    }
    # With bytecode cached, as an installed package has it (pip compiles it): where PYTHONDONTWRITEBYTECODE is set
    # every start would compile the project's modules again (0.1-0.2 s). The first round writes the cache.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    seconds = {name: [] for name in variants}
    for i in range(runs + 1):
        for name, args in variants.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, *args, photo, "-o", out], check=True, capture_output=True, env=env)
            if i:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.bench colorize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="network input size")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=7, help="runs of each whole-command variant")
    args = parser.parse_args(argv)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine inflates every figure
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load {load}\n")

    with tempfile.TemporaryDirectory() as folder:
        path = synthesize_photo(folder, args.width, args.height)
        print(f"## Re-colorization at {args.size} px (forward + decode, 5 hints), ms\n")
        print("| backbone | parameters | p50 | p95 |\n| --- | ---: | ---: | ---: |")
        for name in BACKBONES:
            system = system_for(name)
            colorizer = Colorizer(system.inference_model(), args.size)
            photo = colorizer.load_photo(sample_photo_paths()[0])
            p50, p95 = percentiles_ms(partial(colorizer.predict, photo, HINTS), args.repeats)
            params = count_parameters(system)  # as trained (the colorizer's copy has BatchNorm folded away)
            print(f"| {name} | {params / 1e6:.2f} M | {p50:.0f} | {p95:.0f} |")

        colorizer = Colorizer(system_for("resunet").inference_model(), args.size)
        megapixels = args.width * args.height / 1e6
        print(f"\n## Full resolution, {args.width}x{args.height} ({megapixels:.0f} MP) JPEG, resunet, ms (p50 of 3)\n")
        photo = colorizer.load_photo(path)
        ab = colorizer.predict(photo, HINTS).ab
        rgb = colorizer.render(photo.L, ab)
        stages = {
            "decode + L (load_photo)": lambda: colorizer.load_photo(path),
            f"network at {args.size} px (predict)": lambda: colorizer.predict(photo, HINTS),
            "upsample ab + LAB->RGB (render)": lambda: colorizer.render(photo.L, ab),
            "write JPEG q95 (save_image)": lambda: save_image(rgb, os.path.join(folder, "out.jpg")),
            "write PNG (save_image)": lambda: save_image(rgb, os.path.join(folder, "out.png")),
        }
        print("| stage | ms |\n| --- | ---: |")
        for stage, work in stages.items():
            print(f"| {stage} | {percentiles_ms(work, 3, warmup=0)[0]:.0f} |")

        print(f"\n## The command, start to exit (the reference model; median of {args.runs} runs in turns), s\n")
        print(f"| process | median | min | / goal ({COMMAND_GOAL} s) |\n| --- | ---: | ---: | ---: |")
        for name, times in command_seconds(folder, args.runs).items():
            print(f"| {name} | {np.median(times):.2f} | {min(times):.2f} | {np.median(times) / COMMAND_GOAL:.2f} |")


if __name__ == "__main__":
    main()
