"""The app as a person uses it: swatches follow the selected hint, an edit sends only what changed, and sessions
leave nothing behind (30 sessions opened and closed on 127.0.0.1; the app's folder after a kill)."""

import gc
import os
import re
import subprocess
import sys
import time

import psutil
import pytest
from PIL import Image

from colorization.cli import app as colorization_app
from colorization.data.catalogue import sample_photo_paths
from colorization.hint_file import Hint
from colorization.inference import Colorizer
from experiments.bench_app_latency import CHROMIUM, CHROMIUM_ARGS, HOST, free_port

CHELSEA = next(path for path in sample_photo_paths() if path.endswith("chelsea.png"))


@pytest.fixture(scope="module")
def colorizer(tiny_checkpoint) -> Colorizer:
    return Colorizer.from_checkpoint(tiny_checkpoint)


def test_the_default_hint_patch_covers_three_cells_of_the_photos_grid(colorizer):
    """The patch size the app starts with is the networks' training hint size: about 3 cells of the photo's own
    grid across (it was 3 cells of a square grid as wide as the colorizer's size: nearly 4 of a wide photo's)."""
    photo = colorizer.load_photo(CHELSEA)  # 451x300: a grid wider than it is tall
    size = colorization_app.default_size(photo)
    columns = [colorizer.hint_grid(photo, [Hint(x, 150, (200, 50, 50), size)])[1][0, 0]
               .any(dim=0).sum().item() for x in range(150, 190)]  # 3 or 4 cells, as the patch falls on the grid
    assert abs(sum(columns) / len(columns) - 3) < 0.25, (size, columns)


def test_swatches_follow_the_selected_hint_after_undo(colorizer):
    app = colorization_app
    session = app.open_upload(colorizer, CHELSEA, 10**7, 10**8)
    session = app.click(colorizer, session, 60, 50, app.ADD, 9)
    at_first = session.suggestions
    first_colour = session.hints[0].hex
    session = app.restyle(colorizer, session, color=at_first[3][0])  # the first hint takes its 4th swatch
    session = app.click(colorizer, session, 400, 250, app.ADD, 9)
    at_second = session.suggestions
    assert at_second != at_first
    session = app.undo(colorizer, session)  # back to one hint, selected
    assert session.selected == 0 and session.suggestions == at_first
    assert f"aria-pressed='true' title='{at_first[3][0]}'" in app.swatches_html(session)  # its own colour
    session = app.undo(colorizer, session)
    assert session.hints[0].hex == first_colour and session.suggestions == at_first
    assert f"aria-pressed='true' title='{first_colour}'" in app.swatches_html(session)
    session = app.click(colorizer, session, 400, 250, app.ADD, 9)
    session = app.select(session, 0)
    assert session.suggestions == at_first


def test_an_edit_sends_only_what_changed(colorizer, tmp_path):
    app = colorization_app
    session = app.open_upload(colorizer, CHELSEA, 10**7, 10**8)
    session.folder = str(tmp_path)
    app.changed(colorizer, session, app.view(colorizer, session))
    session = app.click(colorizer, session, 60, 50, app.ADD, 9)
    sent = dict(zip(app.OUTPUTS, app.changed(colorizer, session, app.view(colorizer, session))[1:]))
    assert isinstance(sent["result"], str) and sent["result"].endswith(".jpg")  # the only image
    session = app.restyle(colorizer, session, color="#ff0000")  # same point: no new swatch list, no new size
    sent = dict(zip(app.OUTPUTS, app.changed(colorizer, session, app.view(colorizer, session))[1:]))
    assert sent["size"] == app.gr.skip() and sent["color"] == "#ff0000" and "#ff0000" in str(sent["hints"])
    assert "aria-pressed='true' title='#ff0000'" not in sent["suggestions"]  # red is not among the likely ones
    nothing = dict(zip(app.OUTPUTS, app.changed(colorizer, session, app.view(colorizer, session))[1:]))
    assert all(nothing[name] == app.gr.skip() for name in ("result", "hints", "color", "size", "suggestions"))
    assert len(os.listdir(tmp_path)) == app.KEEP_RESULTS  # the result before last is removed


@pytest.mark.slow
def test_browser_a_click_is_one_request_and_the_swatches_follow_the_selected_hint(colorizer):
    """In Chromium: a click sends one request and loads one image (the result; the markers are drawn by the
    page), nothing over the page stays dimmed, the swatches' labels show whole below their heading, and after
    Undo they are the selected hint's, its own colour highlighted."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed: run .ci/install-browser.sh")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    port = free_port()
    server = colorization_app.serve(colorizer, HOST, port, block=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1400})
            page.set_default_timeout(60_000)
            sync_api.expect.set_options(timeout=60_000)
            page.goto(f"http://{HOST}:{port}/")
            page.set_input_files("#upload input[type=file]", CHELSEA)
            status = page.locator("#status")
            sync_api.expect(status).to_contain_text("0 hint(s)")
            # the upload's own images finish loading before the click's are counted
            page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            events, images = [], []
            page.on("request", lambda r: events.append(r.url) if "/queue/join" in r.url else None)
            page.on("request", lambda r: images.append(r.url) if r.resource_type == "image" else None)
            canvas = page.locator("#canvas img")
            box = canvas.bounding_box()
            canvas.click(position={"x": box["width"] * 0.2, "y": box["height"] * 0.3})
            sync_api.expect(status).to_contain_text("1 hint(s)")
            dimmed = page.locator(".wrap.full:not(.hide), .wrap.default:not(.hide)")
            assert dimmed.count() == 0
            shown = "() => [...document.querySelectorAll('#suggestions .swatch')].map(e => e.textContent).join('|')"
            first = page.evaluate(shown)
            time.sleep(1)  # a second request, if any, would have started by now
            assert len(events) == 1 and len(images) == 1 and images[0].endswith(".jpg"), (events, images)

            labels = page.locator("#suggestions .label")
            assert labels.count() == colorization_app.N_SUGGESTIONS
            heading = page.locator("#suggestions .heading").bounding_box()
            for i in range(labels.count()):
                label = labels.nth(i)
                assert label.evaluate("e => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight")
                assert label.bounding_box()["y"] >= heading["y"] + heading["height"]
                assert re.fullmatch(r"#[0-9a-f]{6}\n\d+\.\d%", label.inner_text())

            canvas.click(position={"x": box["width"] * 0.8, "y": box["height"] * 0.7})
            sync_api.expect(status).to_contain_text("2 hint(s)")
            page.wait_for_function(f"first => ({shown})() !== first", arg=first)
            page.locator("#undo").click()
            sync_api.expect(status).to_contain_text("1 hint(s)")
            page.wait_for_function(f"first => ({shown})() === first", arg=first)
            own = page.locator("#hints label").first.inner_text().split()[-3].rstrip(",")
            sync_api.expect(page.locator("#suggestions .swatch[aria-pressed=true]")).to_have_attribute("title", own)
            browser.close()
    finally:
        server.close()


def tree_size(folder) -> int:
    return sum(len(files) + len(dirs) for _, dirs, files in os.walk(folder))


@pytest.mark.slow
def test_thirty_sessions_leave_no_memory_or_files_behind(tiny_checkpoint, tmp_path, monkeypatch):
    """30 sessions (gradio_client, 5 open at a time), each uploading a 2400x1600 photo, then closing: the
    server's resident memory and its temporary folder come back near where they started. Before, a closed
    session's photo was kept for an hour and every served image for ever."""
    client_module = pytest.importorskip("gradio_client")
    cache = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))  # read by Blocks: the app's cache, served files and uploads
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "2")  # how soon the server notices a closed client (15 s)
    photo = tmp_path / "large.jpg"
    Image.open(CHELSEA).resize((2400, 1600)).save(photo)
    port = free_port()
    server = colorization_app.serve(Colorizer.from_checkpoint(tiny_checkpoint), HOST, port, block=False)
    assert gc.get_freeze_count() > 0  # start-up's objects out of the collector's full passes (they were a
    # quarter-second pause at a large upload); the sessions, made later, are still collected
    process = psutil.Process()

    def sessions(count: int) -> int:
        """`count` sessions, 5 open at a time; the resident memory (bytes) with the last 5 open."""
        clients, peak = [], 0
        for i in range(count):
            clients.append(client_module.Client(f"http://{HOST}:{port}/", verbose=False, download_files=False))
            *_, status = clients[-1].predict(client_module.handle_file(str(photo)), api_name="/on_upload")
            assert "2400x1600" in status
            if len(clients) == 5 or i == count - 1:
                peak = max(peak, process.memory_info().rss)
                for client in clients:
                    client.close()
                clients = []
        return peak

    def settled(start_files: int, timeout: float = 40) -> int:
        """The files in Gradio's cache once the closed sessions' are gone (the server notices a closed client
        at its next heartbeat)."""
        deadline = time.monotonic() + timeout
        while tree_size(cache) > start_files and time.monotonic() < deadline:
            time.sleep(0.5)
        return tree_size(cache)

    try:
        start_files = tree_size(cache)  # Gradio's own folders and the app's (empty) one
        sessions(5)  # the first requests allocate what every later one reuses
        assert settled(start_files) == start_files
        start = process.memory_info().rss
        peak = sessions(30)
        files = settled(start_files)
        time.sleep(1)
        end = process.memory_info().rss
    finally:
        server.close()
    per_session = (peak - start) / 5
    print(f"resident {start / 2**20:.0f} MB -> {peak / 2**20:.0f} MB with 5 sessions open "
          f"({per_session / 2**20:.0f} MB each) -> {end / 2**20:.0f} MB after 30; files {start_files} -> {files}")
    assert files <= start_files
    assert end - start < 2 * per_session + 20 * 2**20  # 30 sessions held would be 30 x per_session


@pytest.mark.slow  # starts and kills an app process
def test_a_killed_app_leaves_a_folder_the_next_start_removes(tmp_path):
    """`colorization-app` killed (SIGKILL) leaves its folder; the next start removes it, and a clean stop
    (SIGTERM) removes its own."""
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path), "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "colorization.cli.app", "--port", str(free_port())]

    def started() -> subprocess.Popen:
        app = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in app.stdout:  # Gradio prints its URL once it serves
            if "http://" in line:
                return app
        raise AssertionError(f"the app did not start (exit {app.wait()})")

    def folders() -> list[str]:
        return sorted(name for name in os.listdir(tmp_path) if name.startswith("colorization-app-"))

    killed = started()
    (left,) = folders()
    assert re.fullmatch(rf"colorization-app-{killed.pid}-\w+", left)
    killed.kill()
    killed.wait()
    assert folders() == [left]
    stopped = started()
    assert left not in folders() and len(folders()) == 1
    stopped.terminate()
    assert stopped.wait(timeout=30) == 128 + 15
    assert folders() == []
