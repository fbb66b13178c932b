"""Browser latency of the app: click on the photo -> new colours shown, in a headless Chromium (Debian's).

Serves `colorization-app` on 127.0.0.1 in this process, opens it in Chromium through Playwright, uploads a small
photo and a 2400x1600 one (by default an embedded photo, and another scaled up), and clicks `--clicks` times on
each (every click adds a hint). A click counts from the pointer press to the first frame painted with the new
result decoded. The server's own share is the time the server spent in its event handlers during that click
(Gradio's processing, the network, upsampling, LAB -> RGB and writing the shown image). Each photo's upload is
timed too, from handing the file to the page to the status line of its first result (the first photo's includes
what the page and the server do once, at their first event).
Prints p50 / p95 per photo; exit code 2 for an unusable --ckpt or a missing browser.
Usage: python -m experiments.bench_app_latency [--ckpt CKPT] [--clicks 20] [--small PHOTO] [--large PHOTO]
"""

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import time

from PIL import Image

from colorization.checkpoint import CheckpointError
from colorization.cli import app as colorization_app
from colorization.data.catalogue import sample_photo_paths
from colorization.inference import Colorizer

HOST = "127.0.0.1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LARGE = (2400, 1600)

# In the page: the time of each pointer press, and a promise for the first frame that shows a new result image.
PAGE_SCRIPT = """() => {
  document.addEventListener('pointerdown', () => { window.benchPressed = performance.now(); }, true);
  window.benchNextResult = () => {
    const before = document.querySelector('#result img')?.src;
    return new Promise(resolve => {
      const check = () => {
        const img = document.querySelector('#result img');
        if (!img || img.src === before) return false;
        observer.disconnect();
        img.decode().catch(() => {}).then(() => requestAnimationFrame(() => resolve(performance.now())));
        return true;
      };
      // woken by the page's own changes, not by polling every frame: the page does what it does for a person
      const observer = new MutationObserver(check);
      observer.observe(document.querySelector('#result'), {subtree: true, childList: true, attributes: true,
                                                           attributeFilter: ['src']});
      check();
    });
  };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def time_server_events(app) -> list[float]:
    """Record the seconds each event spends in the server (Blocks.process_api), appended to the returned list."""
    seconds, process_api = [], app.process_api

    async def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return await process_api(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    app.process_api = timed
    return seconds


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p95), linear interpolation between the closest ranks."""
    p50 = statistics.median(values)
    return p50, statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else p50


def clicks_on(page, photo: str, clicks: int, pause: float, server_seconds: list[float], seed: int = 0) -> dict:
    """Upload `photo`, then click `clicks` times at random points; per click (ms): shown and the server's share."""
    from playwright.sync_api import expect

    page.reload()
    page.evaluate(PAGE_SCRIPT)
    start = time.perf_counter()
    page.set_input_files("#upload input[type=file]", photo)
    expect(page.locator("#status")).to_contain_text("re-colorized", timeout=120_000)
    upload = 1000 * (time.perf_counter() - start)  # to the status line, which comes with the first result
    canvas = page.locator("#canvas img")
    expect(canvas).to_be_visible()
    time.sleep(pause)
    rng = random.Random(seed)
    shown, server = [], []
    for _ in range(clicks):
        box = canvas.bounding_box()
        page.evaluate("() => { window.benchShown = window.benchNextResult(); }")
        server_seconds.clear()
        x, y = box["x"] + box["width"] * rng.uniform(0.1, 0.9), box["y"] + box["height"] * rng.uniform(0.1, 0.9)
        page.mouse.click(x, y)
        shown.append(page.evaluate("async () => (await window.benchShown) - window.benchPressed"))
        time.sleep(pause)  # a person's pace; events the click started after the result was shown count too
        server.append(1000 * sum(server_seconds))
    return {"shown": shown, "server": server, "upload": upload}


def report(name: str, size: tuple[int, int], times: dict) -> str:
    (p50, p95), (s50, s95) = percentiles(times["shown"]), percentiles(times["server"])
    return (f"{name} {size[0]}x{size[1]}, {len(times['shown'])} clicks: click -> shown p50 {p50:.0f} ms, "
            f"p95 {p95:.0f} ms; of that the server p50 {s50:.0f} ms, p95 {s95:.0f} ms; "
            f"upload -> first result {times['upload']:.0f} ms")


def run(colorizer: Colorizer, photos: list[str], clicks: int = 20, pause: float = 0.5) -> list[str]:
    """Serve the app, click on each photo in Chromium; one report line per photo."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = colorization_app.serve(colorizer, HOST, port, block=False)
    server_seconds = time_server_events(server)
    lines = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"http://{HOST}:{port}/")
            for photo in photos:
                times = clicks_on(page, photo, clicks, pause, server_seconds)
                lines.append(report(os.path.basename(photo), Image.open(photo).size, times))
                print(lines[-1], flush=True)
            browser.close()
    finally:
        server.close()
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench_app_latency",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="reference", help="checkpoint the app serves (default: the reference model)")
    parser.add_argument("--clicks", type=int, default=20, help="clicks per photo (each adds a hint)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between clicks, as a person would pause")
    parser.add_argument("--small", default=None, help="the small photo (default: the embedded chelsea.png, 451x300)")
    parser.add_argument("--large", default=None,
                        help="the large photo (default: the embedded coffee.png scaled to 2400x1600)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.exists(CHROMIUM):
        print(f"bench_app_latency: error: {CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        colorizer = Colorizer.from_checkpoint(args.ckpt)
    except CheckpointError as error:
        print(f"bench_app_latency: error: {error}", file=sys.stderr)
        return 2
    samples = {os.path.basename(path): path for path in sample_photo_paths()}
    with tempfile.TemporaryDirectory() as folder:
        large = args.large
        if large is None:
            large = os.path.join(folder, "coffee-2400x1600.png")
            Image.open(samples["coffee.png"]).convert("RGB").resize(LARGE, Image.BICUBIC).save(large)
        run(colorizer, [args.small or samples["chelsea.png"], large], args.clicks, args.pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
