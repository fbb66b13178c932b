"""Downloads of the app's output images while identical uploads re-produce them: are any truncated?

Starts the app on 127.0.0.1, uploads one photo, then 3 threads download its canvas and result images in a
loop while `--uploads` more uploads of the same photo produce byte-identical images. Prints the downloads
and how many were truncated or cut off; exit code 1 if any were. (Before the app wrote its images itself,
Gradio re-wrote identical outputs in place and some downloads arrived truncated.)
Usage: python -m experiments.app_download_race [--uploads 20]
"""

import argparse
import sys
import threading

import httpx

from colorization.cli import app as colorization_app
from colorization.data.catalogue import sample_photo_paths
from experiments.load_app import ENDPOINT, HOST, free_port, make_colorizer


def download_until(stop: threading.Event, urls: list[str], counts: dict, bad: list) -> None:
    client = httpx.Client()
    while not stop.is_set():
        for url in urls:
            try:
                response = client.get(url)
                counts["downloads"] += 1
                if response.status_code != 200 or len(response.content) != int(response.headers["content-length"]):
                    bad.append(f"HTTP {response.status_code}, {len(response.content)} bytes")
            except httpx.HTTPError as error:  # the server closed the connection mid-body
                bad.append(type(error).__name__)
                client.close()
                client = httpx.Client()
    client.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.app_download_race",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=20, help="identical uploads while downloading")
    args = parser.parse_args(argv)
    from gradio_client import Client, handle_file  # slow to import

    port = free_port()
    server = colorization_app.serve(make_colorizer(None, 256), HOST, port, block=False)
    url, photo = f"http://{HOST}:{port}/", handle_file(sample_photo_paths()[0])
    try:
        canvas, result, *_ = Client(url, verbose=False, download_files=False).predict(photo, api_name=ENDPOINT)
        stop, counts, bad = threading.Event(), {"downloads": 0}, []
        threads = [threading.Thread(target=download_until, args=(stop, [canvas["url"], result["url"]], counts, bad))
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for _ in range(args.uploads):
            Client(url, verbose=False, download_files=False).predict(photo, api_name=ENDPOINT)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        server.close()
    print(f"{args.uploads} identical uploads: {counts['downloads']} downloads of their images, {len(bad)} truncated"
          + (f" ({', '.join(sorted(set(bad)))})" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
