"""The benchmarks: the data path, device transforms, training step, inference and memory, each against a plain
baseline measured side by side in the same run (all of them: `make bench`, written to BENCHMARKS.md with a
description of the machine); and stand-alone ones: GPU training, the colorize command, the edge fill's scan.

    python -m experiments.bench [--threads 1] [--out BENCHMARKS.md] [--dir ../shared/data/coco-mini] [--compile]
    python -m experiments.bench SECTION [same options]   one of data, transforms, training, inference, memory:
                                                         its figures as JSON on stdout, BENCHMARKS.md untouched
    python -m experiments.bench gpu --dir PHOTOS [...]   GPU training throughput (bench_gpu.py)
    python -m experiments.bench colorize [...]           colorize's own timing (bench_colorize.py)
    python -m experiments.bench fill [...]               the edge fill's scan, two ways (bench_fill.py)

Every figure is a ratio of two measurements taken here, interleaved; nothing is asserted (tests check equality).
"""

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch

from experiments.bench_data import DEFAULT_DIR, data_figures, data_report, photo_paths, transforms_figures
from experiments.bench_forward import COLORIZE, bf16_error, inference_figures
from experiments.bench_train import datamodule, training_figures
from experiments.bench_util import interleaved, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_NET = {"name": "resunet", "widths": [16, 32, 64, 128]}  # small enough for ~1 s steps on one core


def machine(threads: int) -> list[str]:
    with open("/proc/cpuinfo") as f:
        cpuinfo = f.read()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout
    return [f"- CPU: {model}, {os.cpu_count()} cores ({', '.join(simd) or 'no AVX2'}); no GPU used",
            f"- torch {torch.__version__}, Python {platform.python_version()}, {threads} thread(s) per process "
            f"(torch.set_num_threads and OMP_NUM_THREADS), commit {commit.strip() or '?'}",
            f"- load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
            "(the machine is shared: every ratio below compares variants run in turns within the same minutes)"]


def step_subprocess(name: str, batch: int, size: int, threads: int) -> dict:
    """One training step in a fresh process, so its peak resident memory is that step's alone."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-m", "experiments.bench_train", "--step", name,
                          "--batch", str(batch), "--size", str(size), "--threads", str(threads)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def memory_figures(threads: int, size: int, batch: int = 32) -> dict:
    """One training step per backbone, each in a fresh process: its time and peak resident memory."""
    from colorization.models import BACKBONES

    out = {}
    for name in BACKBONES:
        out[name] = step_subprocess(name, batch, size, threads)
        print(f"  {name}: {out[name]['peak_rss_mb']:.0f} MB, step {out[name]['step_s']:.1f} s", flush=True)
    return out


def accuracy_figures(system, batch: dict, repeats: int = 3) -> dict:
    """ms of the training accuracy on one batch's logits: argmax (before) against gather >= amax (now)."""
    with torch.no_grad():
        logits, target = system(system.batch_input(batch)), system.target(batch["ab"])
    seconds = interleaved({
        "argmax": lambda: (logits.argmax(dim=2) == target).float(),
        "amax": lambda: (logits.gather(2, target.unsqueeze(2)).squeeze(2) >= logits.amax(dim=2)).float(),
    }, repeats)
    return {k: s * 1000 for k, s in seconds.items()}


def section(title: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.0f} s] {title}", flush=True)


SECTIONS = ["data", "transforms", "training", "inference", "memory"]  # `make bench`, in this order
STANDALONE = {"gpu": "experiments.bench_gpu", "colorize": "experiments.bench_colorize",  # their own options
              "fill": "experiments.bench_fill"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in STANDALONE:
        return importlib.import_module(STANDALONE[argv[0]]).main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("section", nargs="?", choices=[*SECTIONS, *STANDALONE],
                        help="run this section only (default: all of " + ", ".join(SECTIONS) + " -> --out); "
                        f"{' and '.join(STANDALONE)} take their own options (`... gpu --help`)")
    parser.add_argument("--threads", type=int, default=1, help="threads per process (default 1: per-core figures)")
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    parser.add_argument("--dir", default=DEFAULT_DIR, help="COCO-format photos (default ../shared/data/coco-mini)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile on CPU)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, figures meaningless")
    args = parser.parse_args(argv)
    if args.section in STANDALONE:  # options before it: `--threads 2 gpu`
        parser.error(f"{args.section} comes first and takes its own options: {parser.prog} {args.section} --help")
    wanted = [args.section] if args.section else SECTIONS
    size = 64 if args.quick else 256
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    started = time.perf_counter()
    header = machine(args.threads)
    photo_dir = args.dir if photo_paths(args.dir) else None
    r = {}
    with tempfile.TemporaryDirectory(prefix="colorization-bench-", ignore_cleanup_errors=True) as cache_dir:
        # A private FiftyOne database (its own MongoDB, started on first use): the user's catalogues stay
        # untouched, and no other process can stop the database under a running benchmark.
        os.environ.update({"FIFTYONE_DATABASE_DIR": os.path.join(cache_dir, "fiftyone-db"),
                           "FIFTYONE_DATABASE_VALIDATION": "false", "FIFTYONE_DO_NOT_TRACK": "true"})
        if "data" in wanted and photo_dir:
            section("data: naive PIL, decoder, resize cache", started)
            r["data"] = data_figures(photo_paths(photo_dir, 16 if args.quick else 160), size,
                                     os.path.join(cache_dir, "data"))
        elif "data" in wanted:
            print(f"data: skipped, no JPEGs under {args.dir} (pass --dir)")
        if "transforms" in wanted:
            section("device transforms: Kornia LAB against the project's", started)
            r["transforms"] = transforms_figures(size, 32)
        if "training" in wanted:
            section("training: Lightning against a bare loop", started)
            dm = datamodule(photo_dir, size // 2, 8, os.path.join(cache_dir, "train"))
            r["train"] = training_figures(dm, TRAIN_NET, steps=2 if args.quick else 24)
            val = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
            r["accuracy"] = accuracy_figures(r["train"]["system"], val)
            r["bf16 error"] = bf16_error(r["train"]["system"], val)
        if "inference" in wanted:
            section("inference: eager against channels_last / bf16 and the FLOP bound", started)
            r["inference"] = inference_figures(size, compile_too=args.compile)
        if "memory" in wanted:
            section("memory: one training step per backbone in a fresh process", started)
            r["memory"] = memory_figures(args.threads, size)
    section("done", started)
    if args.section:
        r.get("train", {}).pop("system", None)
        print(json.dumps(r, indent=1))
        return
    minutes = (time.perf_counter() - started) / 60
    text = report(r, header, photo_dir, dm, minutes)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


def report(r: dict, header: list[str], photo_dir, dm, minutes: float) -> str:
    t, train, inf, mem = r["transforms"], r["train"], r["inference"], r["memory"]
    share = {name: {k: t[f"prepare {k}"] / (t[f"prepare {k}"] + m["step_s"] * 1000) for k in ("kornia", "fast")}
             for name, m in mem.items()}
    fraction = share["resunet"]  # the default backbone
    best = {name: min(b["ms"].items(), key=lambda kv: kv[1]) for name, b in inf["backbones"].items()}
    fp32 = {name: min(b["ms"]["eager fp32"], b["ms"]["channels_last fp32"]) for name, b in inf["backbones"].items()}
    data_ratio = r["data"]["loader cache"] / r["data"]["naive"] if "data" in r else float("nan")
    lines = ["# Benchmarks", "", f"Written by `make bench` (python -m experiments.bench) in {minutes:.1f} min on:", "",
             *header,
             f"- load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", "",
             "CPU figures on one core; a GPU changes every ratio here (`python -m experiments.bench gpu` measures "
             "training on a GPU). Each figure is the best of interleaved repeats (training: the median step).", "",
             "## Goals", ""]
    lines += table(["goal", "target", "measured", "met"], [
        ["1. data: images/s per worker, the project's loader / naive PIL", ">= 2x", f"{data_ratio:.1f}x",
         "yes" if data_ratio >= 2 else ("skipped" if data_ratio != data_ratio else "no")],
        ["2. device transforms / training step (batch 32, 256 px, resunet, CPU)", "<= 5%",
         f"{100 * fraction['fast']:.2f}% (Kornia LAB: {100 * fraction['kornia']:.2f}%)",
         "yes" if fraction["fast"] <= 0.05 else "no"],
        ["3. training images/s, Lightning / bare loop", ">= 0.95", f"{train['ratio']:.3f}",
         "yes" if train["ratio"] >= 0.95 else "no"],
        *[[f"4. inference {name}: best float32 / float32 FLOP bound", "<= 2x",
           f"{fp32[name] / b['bound fp32 ms']:.2f}x", "yes" if fp32[name] <= 2 * b["bound fp32 ms"] else "no"]
          for name, b in inf["backbones"].items()],
        *[[f"4. inference {name}: `colorize`'s path (bf16, BatchNorm folded) / bf16 FLOP bound", "<= 2x",
           f"{b['ms'][COLORIZE] / b['bound bf16 ms']:.2f}x ({b['ms'][COLORIZE] / b['bound fp32 ms']:.2f}x the float32 "
           f"bound; {b['ms']['eager fp32'] / b['ms'][COLORIZE]:.1f}x faster than eager)",
           "yes" if b["ms"][COLORIZE] <= 2 * b["bound bf16 ms"] else "no"]
          for name, b in inf["backbones"].items()],
    ])
    of_fp32 = [b["ms"][COLORIZE] / b["bound fp32 ms"] for b in inf["backbones"].values()]
    lines += ["", "Goal 4 has two rows per backbone: the float32 paths against the float32 bound, and the default "
              f"bfloat16 path against the bfloat16 bound. The bfloat16 path takes {min(of_fp32):.2f}-"
              f"{max(of_fp32):.2f}x the float32 bound, but its convolutions run so fast on AMX that the "
              "memory-bound layers between them dominate (section 4).",
              "", "## 1. Data: decode + resize", ""]
    if "data" in r:
        lines += data_report(r["data"], r["data"]["photos"], r["data"]["size"])
        lines += ["", "The default (`data.cache_resized: true`): `prepare_data` decodes each split once into a uint8 "
                  "(N, 3, S, S) `.npy` in `paths.cache_dir` (colorization/data/decode.py), keyed by the files with "
                  "their sizes and modification times, the image size, the resize policy and the pixel limit; "
                  "workers then read rows. The decoder itself stays Pillow: draft mode cannot reduce a 640x480 JPEG "
                  "and stay at least 256 px on both sides, nor can OpenCV's reduced reads, and upsampling would "
                  "change the pixels."]
    else:
        lines += ["Skipped: no COCO JPEGs found (pass --dir)."]
    lines += ["", "## 2. Device transforms (LAB, paper hints, bins), batch 32 at 256 px on the CPU", ""]
    speedup = {k: f"{t[f'{k} kornia'] / t[f'{k} fast']:.1f}x" for k in ("lab", "rgb", "prepare")}
    lines += table(["", "Kornia LAB (before)", "project LAB (now)", "speed-up"], [
        ["rgb_to_lab, ms", t["lab kornia"], t["lab fast"], speedup["lab"]],
        ["lab_to_rgb, ms (evaluation, `colorize`, the app)", t["rgb kornia"], t["rgb fast"], speedup["rgb"]],
        ["prepare_batch, ms", t["prepare kornia"], t["prepare fast"], speedup["prepare"]],
        ["share of a training step (resunet)", f"{100 * fraction['kornia']:.2f}%", f"{100 * fraction['fast']:.2f}%",
         ""],
    ])
    steps = [m["step_s"] for m in mem.values()]
    lines += ["", "Share of each backbone's step: " + ", ".join(
        f"{name} {100 * s['fast']:.2f}% (Kornia {100 * s['kornia']:.2f}%)" for name, s in share.items()) + ". "
              f"The training step itself (default widths, forward + loss + backward + Adam, section 5) takes "
              f"{min(steps):.0f}-{max(steps):.0f} s at batch 32 on one core, so the transforms were never the "
              "bottleneck here; the project's rgb_to_lab (a 256-entry table for sRGB -> linear through numpy's "
              "take, white point folded into the matrix, cube root as exp(log / 3)) equals Kornia's within 1e-3 "
              "(tests/test_perf_equivalence.py) and matters more on a GPU-fed step. `rgb_to_lab(x, impl='kornia')` "
              "is the switch back. lab_to_rgb likewise (both matrices inverted, the sRGB curve as exp(log / 2.4), "
              "few new tensors: on the CPU a fresh one costs more than an in-place pass) equals Kornia's within "
              "1e-3; it is most of `colorize`'s render of a large photo (the full-resolution stages of "
              "`python -m experiments.bench colorize`)."]
    source = f"COCO-mini ({len(dm.files['train'])} training photos)" if photo_dir else "the embedded sample photos"
    lines += ["", f"## 3. Training: Lightning against a bare loop ({TRAIN_NET['name']} widths {TRAIN_NET['widths']}, "
              f"128 px, batch 8, Adam, {source})", ""]
    lines += table(["variant", "images/s (median step)", "x bare (median of per-step ratios)"], [
        ["bare PyTorch loop (loader, prepare_batch, forward, loss, backward, Adam)", train["bare"], 1.0],
        ["**Lightning: ColorizationSystem + ColorizationDataModule + Trainer**", train["lightning"],
         train["ratio"]],
        ["bare loop with `channels_last=false` (NCHW)", train["bare nchw"], train["bare nchw"] / train["bare"]],
        ["bare loop under bfloat16 autocast (`trainer.precision=bf16-mixed`)", train["bare bf16-mixed"],
         train["bare bf16-mixed"] / train["bare"]],
    ])
    losses = {name: sum(values[-8:]) / len(values[-8:]) for name, values in train["losses"].items()}
    lines += ["", f"bf16-mixed trains as float32 does: mean loss of the last 8 steps {losses['bare bf16-mixed']:.3f} "
              f"against {losses['bare']:.3f} (the same initial weights and photos, hints drawn independently)."]
    lines += ["", f"The four run in lockstep, one step each in turn ({train['steps']} timed steps each after 2 "
              "warm-up steps): a callback of the Lightning fit runs the bare loops' steps, so load from other "
              "processes, which comes and goes over seconds, falls on all variants alike (separate runs drifted "
              "apart by more than the 5% measured here on this shared machine). Logger and "
              "checkpointing off, a private FiftyOne database, loaders in the main process (the resize cache makes "
              f"workers unnecessary at this size). The whole `fit`, bare steps and Trainer start-up included, took "
              f"{train['fit seconds']:.0f} s. What Lightning adds per step is mostly the system's training metrics "
              "(accuracy, logging); the accuracy now compares the target's logit with the largest (gather >= amax: "
              f"{r['accuracy']['amax']:.1f} ms on a validation batch of these logits) instead of taking the argmax "
              f"({r['accuracy']['argmax']:.1f} ms), for float32 logits. The NCHW row is the other layout of the "
              "`channels_last` switch, on this CPU."]
    lines += ["", "## 4. Inference: ms per 256 px forward, batch 1, default widths", ""]
    names = list(next(iter(inf["backbones"].values()))["ms"])
    lines += table(["backbone", "GFLOP", *names, "bound fp32", "bound bf16", "best / eager"], [
        [name, b["gflop"], *[b["ms"][n] for n in names], b["bound fp32 ms"], b["bound bf16 ms"],
         f"{b['ms']['eager fp32'] / best[name][1]:.1f}x"] for name, b in inf["backbones"].items()])
    e = r["bf16 error"]
    peaks = {p: [b["peak"][p] / 1e9 for b in inf["backbones"].values()] for p in ("fp32", "bf16")}
    lines += ["", f"Bounds: FLOPs (torch.utils.flop_counter) / the FLOP/s of a 256->256 3x3 convolution at 64x64, "
              "timed in the same rounds as each backbone's variants (a bound timed apart moves with the load): "
              f"{min(peaks['fp32']):.0f}-{max(peaks['fp32']):.0f} GFLOP/s in float32, "
              f"{min(peaks['bf16']):.0f}-{max(peaks['bf16']):.0f} GFLOP/s in bfloat16 (AMX). The default inference "
              "path, `InferenceModel.predict` (used by `colorize`, the app and evaluate.py), folds BatchNorm into the "
              "convolutions and runs the channels-last network under bfloat16 autocast where the CPU has native "
              "bf16, from a copy of its weights held in bfloat16 (autocast would cast them at every call); "
              "`model.bf16 = False` switches bf16 off, and `channels_last=false` the layout. "
              "Its decoded ab differ from float32 by "
              f"{e['mean']:.3f} LAB units on average (99th percentile {e['p99']:.2f}, max {e['max']:.2f}; the "
              "Lightning system of section 3 on validation photos); a just-noticeable colour difference is about 2.3. "
              "Where the rest goes: convolutions and matrix products take only "
              + ", ".join(f"{100 * b['compute share']:.0f}% ({n})" for n, b in inf["backbones"].items())
              + " of the default path's time (torch.profiler); the rest is ReLU, concatenation, "
              "upsampling and layout changes, each a separate pass over memory in eager mode (a compiler would "
              "fuse them). torch.compile: "
              + ("; ".join(f"{n} compiled in {b['compile s']:.0f} s" for n, b in inf["backbones"].items())
                 if any(b["compile s"] == b["compile s"] for b in inf["backbones"].values())
                 else "not timed by default (`--compile` adds it): compiling each backbone takes minutes on a "
                 "2-core CPU, beyond this benchmark's budget.")]
    lines += ["", "## 5. Memory: one training step at batch 32, 256 px, default widths, in a fresh process", ""]
    lines += table(["backbone", "peak resident memory, MB", "step, s", "images/s"],
                   [[name, m["peak_rss_mb"], m["step_s"], m["batch"] / m["step_s"]] for name, m in mem.items()])
    lines += ["", "Peak resident memory is the process's VmHWM (getrusage's maxrss would include the benchmark "
              "process's own peak, inherited through fork + exec). Forward, class-rebalanced loss, backward and one "
              "Adam step on random photos; the data path adds nothing here (section 1: rows are read, not mapped)."]
    lines += ["", "## 6. The browser app", "", "Click -> new colours shown in Chromium, p50 / p95, and memory per "
              "session: `python -m experiments.bench_app_latency` (needs Debian's Chromium, not part of `make bench`); "
              "figures against the goals in [experiments/results/app_latency.md](experiments/results/app_latency.md)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
