"""Load test of the browser app: N concurrent uploads through its real HTTP API, on 127.0.0.1 only.

Starts `colorization-app` in a thread on a free local port, then N clients (one thread each) upload a photo
through gradio_client, as a browser's upload does: the app decodes it, colorizes it and returns the canvas
and result images.
Prints p50 / p95 / max latency and the number of errors; exit code 1 if any request
failed or the whole run timed out, 2 for an unusable --ckpt.
Usage: python -m experiments.load_app [--ckpt CKPT] [--requests 20] [--timeout 120] [--total-timeout 600]
"""

import argparse
import itertools
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from colorization.cli import app as colorization_app
from colorization.data.catalogue import sample_photo_paths
from colorization.inference import Colorizer
from colorization.system import CheckpointError, ColorizationSystem

HOST = "127.0.0.1"  # never another interface: the load comes from this machine only
ENDPOINT = "/on_upload"  # upload.upload(on_upload, ...): what a browser's photo upload calls


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_colorizer(ckpt: str | None, size: int) -> Colorizer:
    """The checkpoint's system, or an untrained ResUNet (the latency is the same; the colours are not)."""
    if ckpt:
        return Colorizer.from_checkpoint(ckpt, size)
    return Colorizer(ColorizationSystem({"name": "resunet"}).inference_model(), size)


def one_request(url: str, photo: str, timeout: float) -> float:
    """Seconds for one upload -> colorized result, each on its own client (its own session, like a browser tab)."""
    from gradio_client import Client, handle_file  # installed with gradio; imported late: it is slow to import

    start = time.perf_counter()
    client = Client(url, verbose=False)
    job = client.submit(handle_file(photo), api_name=ENDPOINT)
    outputs = job.result(timeout=timeout)
    # (canvas, result, hints, colour, size, suggestions, status): the state is kept on the server
    status = outputs[-1]
    if not outputs[1] or not os.path.exists(outputs[1]) or "re-colorized" not in str(status):
        raise RuntimeError(f"no colorized result: {status!r}")
    return time.perf_counter() - start


def run_load(colorizer: Colorizer, requests: int = 20, timeout: float = 120.0, total_timeout: float = 600.0,
             photo: str | None = None) -> dict:
    """Serve the app, fire `requests` concurrent uploads (of `photo`, or the embedded photos in turn, so that
    some requests give byte-identical outputs at once); latencies (s) of the answered ones and the errors."""
    photos = [photo] * requests if photo else list(itertools.islice(itertools.cycle(sample_photo_paths()), requests))
    port = free_port()
    server = colorization_app.serve(colorizer, host=HOST, port=port, block=False)
    url = f"http://{HOST}:{port}/"
    latencies, errors = [], []
    try:
        with ThreadPoolExecutor(max_workers=requests) as pool:
            futures = [pool.submit(one_request, url, path, timeout) for path in photos]
            done, pending = wait(futures, timeout=total_timeout)
            for future in pending:  # the whole run overran: count the stragglers as failed
                future.cancel()
                errors.append(f"not answered within --total-timeout={total_timeout:g} s")
            for future in done:
                try:
                    latencies.append(future.result())
                except Exception as error:  # a timeout, an HTTP error, a bad answer: reported, not raised
                    errors.append(f"{type(error).__name__}: {error}")
    finally:
        server.close()
    return {"url": url, "requests": requests, "latencies": latencies, "errors": errors}


def summary(result: dict) -> str:
    times = np.array(result["latencies"]) if result["latencies"] else np.array([np.nan])
    p50, p95 = np.percentile(times, [50, 95])
    return (f"{result['requests']} concurrent requests to {result['url']}: {len(result['latencies'])} answered, "
            f"{len(result['errors'])} errors; latency p50 {p50:.2f} s, p95 {p95:.2f} s, max {np.max(times):.2f} s")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.load_app", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=None, help="a checkpoint written by train.py (default: an untrained ResUNet)")
    parser.add_argument("--size", type=int, default=256, help="network size without a checkpoint-recorded size")
    parser.add_argument("--requests", type=int, default=20, help="concurrent requests, one thread each")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per request")
    parser.add_argument("--total-timeout", type=float, default=600.0, help="seconds allowed for the whole run")
    parser.add_argument("--photo", default=None,
                        help="upload this photo in every request (default: the embedded photos in turn)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.requests < 1:
        print(f"load_app: error: --requests={args.requests}: need at least 1", file=sys.stderr)
        return 2
    try:
        colorizer = make_colorizer(args.ckpt, args.size)
    except (CheckpointError, ValueError) as error:
        print(f"load_app: error: {error}", file=sys.stderr)
        return 2
    result = run_load(colorizer, args.requests, args.timeout, args.total_timeout, args.photo)
    print(summary(result))
    for error in sorted(set(result["errors"])):
        print(f"  error x{result['errors'].count(error)}: {error}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
