"""`colorize INPUT... [--ckpt CKPT] [--hints HINTS] -o OUT`: colour photos at their full resolution.

Exit code 0 when every photo was written, 2 for bad input (each problem reported on one line naming the
file); the photos that could be colorized are still written, each atomically.
"""

import argparse
import os
import signal
import sys

from PIL import Image
from tqdm import tqdm

from colorization.cli import SIZE_HELP
from colorization.hint_file import HintError, check_inside, read_hints
from colorization.image_io import save_image, writable_format


class UsageError(ValueError):
    """Arguments that cannot work together; reported like any other bad input."""


def photos_in(folder: str) -> list[str]:
    """The files directly in `folder` that Pillow can open, by extension, sorted."""
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if not name.startswith(".") and os.path.splitext(name)[1].lower() in readable)


def plan(inputs: list[str], output: str, hints: str | None) -> list[tuple[str, str]]:
    """(photo, output path) pairs. OUT is a file for one input photo named with an image extension,
    otherwise a folder that receives each photo under its own name (PNG where its format is read-only)."""
    photos = []
    for path in inputs:
        if os.path.isdir(path):
            photos += photos_in(path)
        elif os.path.exists(path):
            photos.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not photos:
        raise UsageError(f"{', '.join(inputs)}: no photos found")
    if hints and len(photos) != 1:
        raise UsageError(f"--hints {hints}: hints belong to one photo, but {len(photos)} photos were given")
    one_file = len(inputs) == 1 and not os.path.isdir(inputs[0])
    if one_file and not os.path.isdir(output) and os.path.splitext(output)[1]:
        if writable_format(output) is None:
            raise UsageError(f"-o {output}: cannot write images with extension {os.path.splitext(output)[1]!r}")
        return [(photos[0], output)]
    if os.path.isfile(output):
        raise UsageError(f"-o {output}: is a file; several photos need an output folder")
    jobs, seen = [], {}
    for photo in photos:
        name = os.path.basename(photo)
        if writable_format(name) is None:
            name = os.path.splitext(name)[0] + ".png"
        target = os.path.join(output, name)
        if target in seen:
            raise UsageError(f"{photo}: would overwrite the result of {seen[target]} ({target})")
        seen[target] = photo
        jobs.append((photo, target))
    return jobs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="colorize", description="Colorize photos at their full resolution, optionally guided by colour hints.",
        epilog="example: colorize old.jpg --ckpt best.ckpt --hints old-hints.json -o old-colour.png")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="photos (gray or colour) or folders of photos")
    parser.add_argument("--ckpt", default="reference",
                        help="a checkpoint written by train.py (default: the reference model shipped with the package)")
    parser.add_argument("--hints", help='JSON hint file in the photo\'s pixels: [{"x": 10, "y": 20, '
                                        '"color": "#aa3300", "size": 3}] (as the app exports it); one photo only')
    parser.add_argument("-o", "--output", required=True, help="output file (one photo) or folder")
    parser.add_argument("--size", type=int, default=None, help=SIZE_HELP)
    parser.add_argument("--device", default="cpu", help="torch device for the network (cpu, cuda, ...)")
    return parser.parse_args(argv)


def error(message) -> None:
    tqdm.write(f"colorize: error: {message}", file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    # torch and the network only now: `--help` and argument mistakes answer without loading them
    from colorization.checkpoint import CheckpointError
    from colorization.data.decode import DecodeError
    from colorization.inference import Colorizer

    # SIGTERM (a killed job, `timeout`) exits through Python, so the photo being written removes its partial file
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        jobs = plan(args.inputs, args.output, args.hints)
        hints = read_hints(args.hints) if args.hints else []
        colorizer = Colorizer.from_checkpoint(args.ckpt, args.size, args.device)
    except (UsageError, HintError, CheckpointError, ValueError) as problem:  # ValueError: an unusable --size
        error(problem)
        return 2
    failed = 0
    for photo_path, target in tqdm(jobs, desc="colorize", unit="photo", disable=len(jobs) < 2):
        try:
            photo = colorizer.load_photo(photo_path)
            check_inside(hints, photo.width, photo.height, args.hints)
            save_image(colorizer.colorize(photo, hints), target)
        except (DecodeError, HintError, OSError) as problem:  # OSError: the output could not be written
            error(problem)
            failed += 1
    written = len(jobs) - failed
    print(f"colorize: wrote {written} of {len(jobs)} photo(s) to {args.output}", file=sys.stderr)
    return 2 if failed else 0


def run() -> None:
    """The `colorize` command: `main`, then exit without the interpreter's teardown, which with torch loaded costs
    a good part of the command's time (experiments/results/app_latency.md); every photo has been written and
    closed by then."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
