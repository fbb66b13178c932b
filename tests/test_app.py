"""The browser app: its editing functions directly, then the real page in a headless Chromium.

About 40 s on 2 cores after the tiny checkpoint is trained, most of it the browser test (skipped with a
reason where /usr/bin/chromium is absent: `.ci/install-browser.sh` installs it).
"""

import io
import json
import os
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.cli import app as colorization_app
from colorization.cli.colorize import main as colorize_main
from colorization.data.catalogue import sample_photo_paths
from colorization.hint_file import read_hints
from colorization.inference import Colorizer
from experiments.bench_app_latency import CHROMIUM, CHROMIUM_ARGS

CHELSEA = next(path for path in sample_photo_paths() if path.endswith("chelsea.png"))


@pytest.fixture(scope="module")
def colorizer(tiny_checkpoint) -> Colorizer:
    return Colorizer.from_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def large_photo(tmp_path_factory) -> str:
    """1000 x 600: larger than the preview, so clicks must be scaled back to the photo's pixels."""
    path = tmp_path_factory.mktemp("photos") / "large.png"
    Image.open(CHELSEA).resize((1000, 600)).save(path)
    return str(path)


def test_uploads_that_cannot_be_used_get_a_message(colorizer, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(colorization_app.UploadError, match=r"^notes.png: cannot identify image file$"):
        colorization_app.open_upload(colorizer, str(text), 10**7, 10**8)
    with pytest.raises(colorization_app.UploadError, match=r"chelsea.png: 0.2 MB is over the 0.1 MB limit"):
        colorization_app.open_upload(colorizer, CHELSEA, 100_000, 10**8)
    with pytest.raises(colorization_app.UploadError, match=r"chelsea.png: 451x300 pixels exceeds the limit of 100000"):
        colorization_app.open_upload(colorizer, CHELSEA, 10**7, 100_000)


def test_click_move_recolour_remove_undo_export(colorizer, large_photo, tmp_path):
    app = colorization_app
    session = app.open_upload(colorizer, large_photo, 10**7, 10**8)
    assert session.L_preview.shape[-2:] == (461, 768)  # the longer side at PREVIEW
    first_ab = session.prediction.ab.clone()
    session = app.click(colorizer, session, 384, 230, app.ADD, 31)
    (hint,) = session.hints
    assert (hint.x, hint.y, hint.size) == (500, 300, 31)  # (384.5 * 1000 / 768, 230.5 * 1000 / 768)
    assert hint.hex == session.suggestions[0][0]  # a new hint starts as the most likely colour there
    assert not torch.equal(session.prediction.ab, first_ab)
    session = app.click(colorizer, session, 10, 20, app.MOVE, 31)
    assert [(h.x, h.y) for h in session.hints] == [(13, 26)]  # (10.5, 20.5) * 1000 / 768
    session = app.restyle(colorizer, session, color="#00ff00", size=5)
    assert (session.hints[0].hex, session.hints[0].size) == ("#00ff00", 5)
    session = app.click(colorizer, session, 700, 400, app.ADD, 9)
    assert len(session.hints) == 2 and session.selected == 1
    session = app.remove(colorizer, session)
    assert len(session.hints) == 1 and session.selected == 0
    session = app.undo(colorizer, session)
    assert len(session.hints) == 2
    files = app.export(colorizer, session, str(tmp_path))
    assert [os.path.basename(f) for f in files] == ["large-colorized.png", "large-hints.json"]
    assert Image.open(files[0]).size == (1000, 600)
    assert read_hints(files[1]) == session.hints
    session = app.clear(colorizer, session)
    assert session.hints == [] and torch.equal(session.prediction.ab, first_ab)


def test_suggestions_are_the_joint_of_the_a_and_b_marginals(colorizer):
    photo = colorizer.load_photo(CHELSEA)
    prediction = colorizer.predict(photo, [])
    n = prediction.net_logits.shape[2]
    every = colorizer.suggestions(photo, prediction, 100, 50, k=n * n)
    probabilities = [p for _, p in every]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)  # outer product of two distributions
    assert probabilities == sorted(probabilities, reverse=True)
    top = colorizer.suggestions(photo, prediction, 100, 50, k=3)
    row, col = photo.grid_cell(100, 50)
    p_a, p_b = prediction.logits()[0, :, :, row, col].softmax(-1)  # the whole grid's distribution, at that cell
    assert top[0][1] == pytest.approx((p_a.max() * p_b.max()).item())
    assert all(len(color) == 7 and color.startswith("#") for color, _ in top)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_at(page, selector: str) -> np.ndarray:
    """The pixels an <img> shows, fetched from the app as the browser sees them."""
    url = page.locator(f"{selector} img").evaluate("img => img.src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(url).body())).convert("RGB"))


@pytest.mark.slow
def test_browser_upload_two_hints_download(colorizer, tiny_checkpoint, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed: run .ci/install-browser.sh "
                    "(apt-get install -y --no-install-recommends chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    port = free_port()
    server = colorization_app.serve(colorizer, port=port, block=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1400}, accept_downloads=True)
            page.set_default_timeout(60_000)
            sync_api.expect.set_options(timeout=60_000)  # two loaded cores: re-colorizations can queue
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#upload input[type=file]", CHELSEA)
            status = page.locator("#status")
            sync_api.expect(status).to_contain_text("chelsea.png: 451x300, network 80x48, 0 hint(s)")
            before = image_at(page, "#result")
            assert before.shape == (300, 451, 3)

            # Two hints placed by clicks on the photo; the first one enlarged to a big patch, which the second
            # then inherits (the tiny model follows hints weakly).
            canvas, hints = page.locator("#canvas img"), page.locator("#hints")
            box = canvas.bounding_box()
            canvas.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.4})
            sync_api.expect(status).to_contain_text("1 hint(s)")
            page.locator("#size input[type=number]").fill("151")
            page.locator("#size input[type=number]").blur()  # the number box sends release on blur
            sync_api.expect(hints).to_contain_text("size 151")
            canvas.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.6})
            sync_api.expect(status).to_contain_text("2 hint(s)")
            # The second hint gets the least likely suggested colour (one click on a swatch) ...
            second = page.locator("#hints label").last.inner_text()
            page.locator("#suggestions button.swatch").last.click()
            sync_api.expect(hints).not_to_contain_text(second)
            # ... the first one red, typed into the colour picker.
            page.locator("#hints label").first.click()
            page.locator("#color button.dialog-button").click()
            page.locator("#color input[type=text]").fill("#ff0000")
            page.locator("#color input[type=text]").press("Enter")
            sync_api.expect(hints).to_contain_text("#ff0000, size 151")
            page.locator("#color button.dialog-button").click()  # closes the picker
            after = image_at(page, "#result")
            assert np.abs(after.astype(int) - before.astype(int)).mean() > 0.3  # the hints changed the result (0.6)

            page.locator("#export").click()
            links = page.locator("#downloads a")
            sync_api.expect(links).to_have_count(2)
            saved = {}
            for i in range(2):
                with page.expect_download() as download:
                    links.nth(i).click()
                saved[download.value.suggested_filename] = tmp_path / download.value.suggested_filename
                download.value.save_as(saved[download.value.suggested_filename])
            browser.close()
    finally:
        server.close()
    result, hints = saved["chelsea-colorized.png"], saved["chelsea-hints.json"]
    assert Image.open(result).size == (451, 300)  # the full-resolution result, not the preview
    assert len(json.loads(hints.read_text())) == 2
    # The exported hints reproduce the exported result with the command.
    again = tmp_path / "again.png"
    assert colorize_main([CHELSEA, "--ckpt", tiny_checkpoint, "--hints", str(hints), "-o", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(result)))
