"""`colorization-app [--ckpt CKPT]`: colorize a photo in the browser with click-to-place colour hints.

Upload a photo, click it to place a hint (its colour starts as the model's most likely colour there;
the swatches below offer the next most likely ones), recolour, resize, move, remove or undo hints; the
result re-colorizes after every edit. Export writes the full-resolution result and the hints as JSON,
which `colorize --hints` reproduces. All computation is colorization.inference, shared with `colorize`.

After an edit the server sends only what changed: the result (one JPEG at preview size), the hint list and
the markers' positions (drawn by the browser over the gray photo it already has), and the swatches only when
the selected hint's point changed. A tab's photo and files are dropped when the tab closes (or after
IDLE_SECONDS without an edit); the app's files live in one folder, removed at exit and, if the app was
killed, at the next start.
"""

import argparse
import atexit
import base64
import ctypes
import ctypes.util
import gc
import html
import io
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageColor

from colorization.atomic import left_by_dead_processes
from colorization.checkpoint import CheckpointError
from colorization.cli import SIZE_HELP
from colorization.data.decode import DecodeError
from colorization.hint_file import Hint, hints_json, parse_color, to_hex
from colorization.image_io import save_image
from colorization.inference import Colorizer, Photo, Prediction, resize_L

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: it reads it once
import gradio as gr  # noqa: E402
import matplotlib  # noqa: E402, F401  Gradio imports it in every event (to set its backend): the first upload waited

PREVIEW = 768  # longest side shown in the browser; exports are at full resolution
N_SUGGESTIONS = 8
ADD, MOVE = "adds a hint", "moves the selected hint"
IDLE_SECONDS = 30 * 60  # a session that never closes (a script's client) is dropped this long after its last edit
KEEP_RESULTS = 2  # result images kept per session: the one shown and the one before, which may still be loading
FOLDER_PREFIX = "colorization-app-"
# glibc's malloc_trim (absent elsewhere, e.g. musl or macOS)
MALLOC_TRIM = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", None) if sys.platform == "linux" \
    else None
OUTPUTS = ("canvas", "result", "hints", "color", "size", "suggestions", "status")  # after the session state


class UploadError(ValueError):
    """An upload the app cannot use; the message is shown to the user."""


@dataclass
class Session:
    """One browser tab's photo, hints and latest prediction (kept in a gr.State)."""

    photo: Photo
    L_preview: torch.Tensor  # the photo's L at the preview size
    hints: list[Hint] = field(default_factory=list)
    history: list[list[Hint]] = field(default_factory=list)  # earlier hint lists, for undo
    selected: int | None = None
    prediction: Prediction | None = None  # the latest, on the network grid
    # The likely colours at each clicked point, from the prediction before that click's edit (what the model
    # believes there without a hint there); the swatches show the selected hint's.
    suggestions_at: dict[tuple[int, int], list[tuple[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0  # the latest re-colorization's time
    folder: str | None = None  # this session's served images, exports and upload (the app's sessions only)
    upload: tuple[str, int] | None = None  # the uploaded file and its inode, removed with the session
    results: list[str] = field(default_factory=list)  # served result images, newest last
    sent: dict = field(default_factory=dict)  # what the browser was last sent, per output: unchanged ones are skipped

    @property
    def scale(self) -> float:
        """Photo pixels per preview pixel."""
        return self.photo.width / self.L_preview.shape[-1]

    @property
    def suggestions(self) -> list[tuple[str, float]]:
        """The likely colours at the selected hint's point (none without a selected hint)."""
        if self.selected is None:
            return []
        hint = self.hints[self.selected]
        return self.suggestions_at.get((hint.x, hint.y), [])


# -- the work behind the widgets (plain functions: tests call them without a browser) -------------------
def open_upload(colorizer: Colorizer, path: str, max_bytes: int, max_pixels: int) -> Session:
    """An uploaded file -> a session with its first prediction; UploadError with a message otherwise."""
    name = os.path.basename(path)
    try:
        if os.path.getsize(path) > max_bytes:
            raise UploadError(f"{name}: {os.path.getsize(path) / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit")
        photo = colorizer.load_photo(path, max_pixels)
    except DecodeError as error:  # not an image, truncated, too many pixels, too small
        raise UploadError(str(error).replace(path, name)) from None
    except FileNotFoundError:  # the same file, uploaded by another tab that has just closed
        raise UploadError(f"{name}: the upload was removed before it was read; upload it again") from None
    side = max(photo.width, photo.height)
    height, width = (max(1, round(n * min(1.0, PREVIEW / side))) for n in (photo.height, photo.width))
    session = Session(photo, resize_L(photo.L, height, width))
    return recolorize(colorizer, session)


def recolorize(colorizer: Colorizer, session: Session) -> Session:
    start = time.perf_counter()
    session.prediction = colorizer.predict(session.photo, session.hints)
    session.seconds = time.perf_counter() - start
    return session


def default_size(photo: Photo) -> int:
    """A patch of about 3 cells of the photo's network grid: the hint size the networks were trained with."""
    return max(1, round(3 * photo.width / photo.L_net.shape[-1]))


def edit(colorizer: Colorizer, session: Session, hints: list[Hint], selected: int | None) -> Session:
    """Replace the hints (the old list goes on the undo stack) and re-colorize."""
    session.history.append(list(session.hints))
    session.hints, session.selected = hints, selected
    return recolorize(colorizer, session)


def click(colorizer: Colorizer, session: Session, px: int, py: int, mode: str, size: int) -> Session:
    """A click at preview pixel (px, py): suggestions for that point, then add a hint or move the selected one."""
    x = min(session.photo.width - 1, int((px + 0.5) * session.scale))
    y = min(session.photo.height - 1, int((py + 0.5) * session.scale))
    # Suggestions from the prediction before this edit: what the model believes there without a hint.
    likely = colorizer.suggestions(session.photo, session.prediction, x, y, N_SUGGESTIONS)
    session.suggestions_at[(x, y)] = likely
    hints = list(session.hints)
    if mode == MOVE and session.selected is not None:
        old = hints[session.selected]
        hints[session.selected] = Hint(x, y, old.color, old.size)
        return edit(colorizer, session, hints, session.selected)
    hints.append(Hint(x, y, parse_color(likely[0][0]), int(size)))
    return edit(colorizer, session, hints, len(hints) - 1)


def select(session: Session, index: int | None) -> Session:
    """Select hint `index` (its swatches are shown; edits apply to it)."""
    if index is not None and 0 <= index < len(session.hints):
        session.selected = index
    return session


def restyle(colorizer: Colorizer, session: Session, color=None, size=None) -> Session:
    """Give the selected hint a new colour and/or patch size."""
    if session.selected is None:
        return session
    hints = list(session.hints)
    old = hints[session.selected]
    hints[session.selected] = Hint(old.x, old.y, parse_color(color) if color else old.color, int(size or old.size))
    if hints[session.selected] == old:
        return session
    return edit(colorizer, session, hints, session.selected)


def remove(colorizer: Colorizer, session: Session) -> Session:
    if session.selected is None:
        return session
    hints = [hint for i, hint in enumerate(session.hints) if i != session.selected]
    return edit(colorizer, session, hints, min(session.selected, len(hints) - 1) if hints else None)


def undo(colorizer: Colorizer, session: Session) -> Session:
    if not session.history:
        return session
    session.hints = session.history.pop()
    session.selected = len(session.hints) - 1 if session.hints else None
    return recolorize(colorizer, session)


def clear(colorizer: Colorizer, session: Session) -> Session:
    return edit(colorizer, session, [], None) if session.hints else session


def export(colorizer: Colorizer, session: Session, folder: str) -> list[str]:
    """The full-resolution result and the hints, named after the photo, for download."""
    stem = os.path.splitext(session.photo.name)[0] or "photo"
    image_path, hints_path = (os.path.join(folder, f"{stem}-{suffix}") for suffix in ("colorized.png", "hints.json"))
    save_image(colorizer.render(session.photo.L, session.prediction.ab), image_path)
    with open(hints_path, "w", encoding="utf-8") as f:
        f.write(hints_json(session.hints))
    return [image_path, hints_path]


# -- files: one folder per app run, one per session in it ---------------------------------------------------
def app_folder(parent: str) -> str:
    """A new folder for this run's files under `parent` (Gradio's cache, which serves them as they are),
    removed at exit; folders of earlier runs whose process is gone (killed) are removed first."""
    for stale in left_by_dead_processes(os.path.join(parent, FOLDER_PREFIX), separator="-"):
        shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-", dir=parent)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def release_freed_memory() -> None:
    """Hand memory freed by Python and torch back to the system. glibc keeps freed blocks in its per-thread
    arenas, so a server whose requests run on many threads stays at its peak without this."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def close_session(session: Session | None) -> None:
    """Remove a session's files (its state is dropped by Gradio): when its tab closes, it idles out or it is
    replaced by a new upload."""
    if session is None:
        return
    if session.folder:
        shutil.rmtree(session.folder, ignore_errors=True)
    if session.upload:
        path, inode = session.upload
        try:
            # Gradio names uploads by their content: the same photo uploaded again since (a reloaded tab) has
            # replaced this file by its own, which that session may not have read yet.
            if os.stat(path).st_ino == inode:
                os.remove(path)
            os.rmdir(os.path.dirname(path))  # Gradio's folder for this upload, when empty
        except OSError:  # already removed, or in use by another upload
            pass
    session.photo = session.L_preview = session.prediction = None  # Gradio may still hold the session
    gc.collect()
    release_freed_memory()


def serve_result(session: Session, image: np.ndarray) -> str:
    """The result as a new JPEG in the session's folder (a new name each time: never re-written while the browser
    loads it); older ones beyond KEEP_RESULTS are removed."""
    path = os.path.join(session.folder, f"result-{len(session.history)}-{time.monotonic_ns()}.jpg")
    save_image(image, path)
    session.results.append(path)
    for old in session.results[:-KEEP_RESULTS]:
        try:
            os.remove(old)
        except FileNotFoundError:
            pass
    del session.results[:-KEEP_RESULTS]
    return path


# -- what the widgets show --------------------------------------------------------------------------------
def data_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def markers(session: Session) -> list[dict]:
    """Each hint's dot, number and patch in preview pixels, for the browser to draw over the gray photo."""
    return [{"x": (hint.x + 0.5) / session.scale, "y": (hint.y + 0.5) / session.scale,
             "half": hint.size / session.scale / 2, "color": hint.hex, "n": i + 1}
            for i, hint in enumerate(session.hints)]


def swatches_html(session: Session | None) -> str:
    """The selected hint's likely colours as buttons (colour, hex and probability), its own colour highlighted."""
    heading = "<div class='heading'>Likely colours at the selected hint's point (click one to use it)</div>"
    if session is None or not session.suggestions:
        return heading + "<div class='empty'>Place or select a hint to see them.</div>"
    own = session.hints[session.selected].hex
    buttons = "".join(
        f"<button class='swatch' data-index='{i}' aria-pressed='{str(color == own).lower()}' title='{color}'>"
        f"<span class='chip' style='background:{html.escape(color)}'></span>"
        f"<span class='label'>{html.escape(color)}<br>{p:.1%}</span></button>"
        for i, (color, p) in enumerate(session.suggestions))
    return f"{heading}<div class='swatches'>{buttons}</div>"


def hint_label(i: int, hint: Hint) -> str:
    return f"{i + 1}: ({hint.x}, {hint.y}) {hint.hex}, size {hint.size}"


def view(colorizer: Colorizer, session: Session | None, message: str = "") -> dict:
    """Every output's value for a session, by name (OUTPUTS); the result image is written only when sent."""
    if session is None:
        return {"canvas": gr.update(value="", marks=[], selected=-1), "result": None,
                "hints": gr.update(choices=[], value=None), "color": gr.update(), "size": gr.update(),
                "suggestions": swatches_html(None), "status": message or "Upload a photo to start."}
    labels = [hint_label(i, hint) for i, hint in enumerate(session.hints)]
    selected = session.hints[session.selected] if session.selected is not None else None
    grid_h, grid_w = session.photo.L_net.shape[-2:]
    status = (f"{session.photo.name}: {session.photo.width}x{session.photo.height}, network "
              f"{grid_w}x{grid_h}, {len(session.hints)} hint(s), "
              f"re-colorized in {session.seconds * 1000:.0f} ms")
    return {"canvas": gr.update(marks=markers(session), selected=-1 if selected is None else session.selected),
            "result": session.prediction.ab,  # a tensor here, an image file once it is sent
            "hints": gr.update(choices=labels, value=labels[session.selected] if selected else None),
            "color": selected.hex if selected else gr.update(), "size": selected.size if selected else gr.update(),
            "suggestions": swatches_html(session), "status": f"{message} {status}".strip()}


def changed(colorizer: Colorizer, session: Session | None, values: dict) -> list:
    """The outputs in OUTPUTS order, those the browser already shows skipped; the result written when sent."""
    if session is None:
        return [None] + [values[name] for name in OUTPUTS]
    outputs = [session]
    for name in OUTPUTS:
        value = values[name]
        same = session.sent.get(name)
        if name == "result":
            unchanged = same is not None and value is same
        else:
            unchanged = same is not None and same == value
        if unchanged:
            outputs.append(gr.skip())
            continue
        session.sent[name] = value
        if name == "result":
            value = serve_result(session, colorizer.render(session.L_preview, session.prediction.ab))
        outputs.append(value)
    return outputs


CANVAS_TEMPLATE = "<div class='stage'><img src='${value}' alt='' draggable='false'><svg></svg></div>"
CANVAS_CSS = """
.stage { position: relative; display: inline-block; max-width: 100%; line-height: 0; }
.stage img { display: block; max-width: 100%; height: auto; cursor: crosshair; }
.stage img[src=''] { display: none; }
.stage svg { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; overflow: visible; }
"""
# Clicks are sent in preview pixels; markers are drawn here, so an edit sends their positions, not a new image.
CANVAS_JS = """
element.addEventListener('click', event => {
  const img = element.querySelector('img');
  if (!img || event.target !== img || !img.naturalWidth) return;
  const box = img.getBoundingClientRect();
  const x = Math.floor((event.clientX - box.left) * img.naturalWidth / box.width);
  const y = Math.floor((event.clientY - box.top) * img.naturalHeight / box.height);
  if (x >= 0 && y >= 0 && x < img.naturalWidth && y < img.naturalHeight) trigger('click', {x, y});
});
const draw = () => {
  const img = element.querySelector('img'), svg = element.querySelector('svg');
  if (!img || !svg) return;
  if (!img.naturalWidth) { img.addEventListener('load', draw, {once: true}); return; }
  svg.setAttribute('viewBox', `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  const shown = img.getBoundingClientRect().width || img.naturalWidth;
  const unit = img.naturalWidth / shown;  // preview pixels per screen pixel: markers keep their screen size
  const r = 6 * unit;
  svg.innerHTML = (props.marks || []).map((m, i) => {
    const ring = i === props.selected ? 3 : 1;
    const patch = m.half > r ? `<rect x="${m.x - m.half}" y="${m.y - m.half}" width="${2 * m.half}"
      height="${2 * m.half}" fill="none" stroke="${m.color}" stroke-width="${2 * unit}"/>` : '';
    return `${patch}<circle cx="${m.x}" cy="${m.y}" r="${r + 2 * unit}" fill="none" stroke="black"
      stroke-width="${(ring + 1) * unit}"/><circle cx="${m.x}" cy="${m.y}" r="${r}" fill="${m.color}" stroke="white"
      stroke-width="${ring * unit}"/><text x="${m.x + r + 4 * unit}" y="${m.y - r}" font-size="${12 * unit}"
      fill="white" stroke="black" stroke-width="${2 * unit}" paint-order="stroke">${m.n}</text>`;
  }).join('');
};
watch(['value', 'marks', 'selected'], draw);
new ResizeObserver(draw).observe(element);
draw();
"""
TYPED_COLOR = "(state, value) => [state, document.querySelector('#color input[type=text]')?.value || value]"
SWATCHES_CSS = """
.heading { font-weight: 600; margin: 4px 0; }
.empty { color: var(--body-text-color-subdued); }
.swatches { display: flex; flex-wrap: wrap; gap: 8px; }
.swatch { display: flex; flex-direction: column; align-items: center; gap: 4px; padding: 4px; cursor: pointer;
  border: 2px solid transparent; border-radius: 6px; background: none; color: inherit; font: inherit;
  font-size: 12px; }
.swatch[aria-pressed='true'] { border-color: var(--color-accent); }
.chip { width: 48px; height: 48px; border-radius: 4px; border: 1px solid var(--border-color-primary); }
.label { white-space: nowrap; text-align: center; line-height: 1.3; }
"""
SWATCHES_JS = """
element.addEventListener('click', event => {
  const swatch = event.target.closest('.swatch');
  if (swatch) trigger('click', {index: Number(swatch.dataset.index)});
});
"""


def build_app(colorizer: Colorizer, max_bytes: int = 30_000_000, max_pixels: int = 40_000_000) -> gr.Blocks:
    with gr.Blocks(title="Colorize your own photos") as app:
        files = app_folder(app.GRADIO_CACHE)
        session = gr.State(None, time_to_live=IDLE_SECONDS, delete_callback=close_session)
        gr.Markdown("## Colorize your own photos\nUpload a photo, click it to place colour hints; "
                    "the result re-colorizes after every edit.")
        upload = gr.File(label="Photo", file_types=["image"], type="filepath", elem_id="upload")
        status = gr.Markdown("Upload a photo to start.", elem_id="status")
        with gr.Row():
            with gr.Column():
                gr.Markdown("Click to place a hint")
                canvas = gr.HTML("", html_template=CANVAS_TEMPLATE, css_template=CANVAS_CSS, js_on_load=CANVAS_JS,
                                 marks=[], selected=-1, elem_id="canvas")
            result = gr.Image(label="Result", interactive=False, elem_id="result")
        with gr.Row():
            mode = gr.Radio([ADD, MOVE], value=ADD, label="A click", elem_id="mode")
            color = gr.ColorPicker(label="Colour of the selected hint", elem_id="color")
            size = gr.Slider(1, 101, value=1, step=1, label="Patch size of the selected hint (photo pixels)",
                             elem_id="size")
        suggestions = gr.HTML(swatches_html(None), css_template=SWATCHES_CSS, js_on_load=SWATCHES_JS,
                              elem_id="suggestions")
        hints = gr.Radio([], type="index", label="Hints (select one to recolour, resize, move or remove)",
                         elem_id="hints")
        with gr.Row():
            remove_button = gr.Button("Remove selected", elem_id="remove")
            undo_button = gr.Button("Undo", elem_id="undo")
            clear_button = gr.Button("Clear hints", elem_id="clear")
            export_button = gr.Button("Export full resolution + hints", variant="primary", elem_id="export")
        downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        outputs = [session, canvas, result, hints, color, size, suggestions, status]
        ended = "This session has ended (its tab was closed, or it was idle): upload the photo again."

        def show(state, message=""):
            return changed(colorizer, state, view(colorizer, state, message))

        def on_upload(old, upload_data):
            close_session(old)
            path = upload_data and upload_data["path"]  # Gradio has checked that it is an upload
            if path is None:
                return show(None)
            try:
                inode = os.stat(path).st_ino  # before reading: a later upload of the same photo is not ours
            except FileNotFoundError:
                inode = None  # open_upload says so in words
            try:
                new = open_upload(colorizer, path, max_bytes, max_pixels)
            except UploadError as error:
                gr.Warning(str(error))
                return show(None, f"Cannot use this file: {error}.")
            new.folder, new.upload = tempfile.mkdtemp(dir=files), (path, inode)
            values = view(colorizer, new)
            values["canvas"] = gr.update(value=data_url(colorizer.render(new.L_preview, torch.zeros(1, 2, 1, 1))),
                                         marks=[], selected=-1)
            # The slider fits the photo: up to its longer side.
            values["size"] = gr.update(maximum=max(new.photo.width, new.photo.height),
                                       value=default_size(new.photo))
            return changed(colorizer, new, values)

        def on_edit(change):
            """Wrap an edit so that events without a photo loaded say so."""
            def handler(state, *args):
                return show(change(state, *args)) if state is not None else show(None, ended)
            return handler

        def on_click(state, click_mode, patch_size, evt: gr.EventData):
            if state is None:
                return show(None, ended)
            return show(click(colorizer, state, int(evt.x), int(evt.y), click_mode, patch_size))

        def on_suggestion(state, evt: gr.EventData):
            if state is None or not 0 <= int(evt.index) < len(state.suggestions):
                return [gr.skip()] * len(outputs)
            return show(restyle(colorizer, state, color=state.suggestions[int(evt.index)][0]))

        def on_color(state, value):
            try:
                rgb = ImageColor.getrgb(value)[:3]  # the picker may send #rrggbb, rgb(...) or hsl(...)
            except (ValueError, TypeError):
                return [gr.skip()] * len(outputs)
            if state is None:
                return [gr.skip()] * len(outputs)
            state.sent["color"] = value  # what the picker shows now, whether or not a hint takes it
            return show(restyle(colorizer, state, color=to_hex(rgb)))

        def on_size(state, value):
            if state is not None:
                state.sent["size"] = value
            return on_edit(lambda s, n: restyle(colorizer, s, size=n))(state, value)

        def on_export(state):
            if state is None:
                return None
            folder = os.path.join(state.folder, "export")
            os.makedirs(folder, exist_ok=True)
            return export(colorizer, state, folder)

        def on_close(request: gr.Request):
            app.state_holder.delete_state(request.session_hash)  # calls close_session

        # Edits draw nothing over the page while they run (the result replaces itself when it arrives); clicks
        # and picks queue in order, colour drags send only their latest colour.
        quiet = {"show_progress": "hidden"}
        # preprocess=False: the upload's path as it is. gr.File's preprocessing also creates an empty temporary
        # file per event in Gradio's cache, never removed.
        upload.upload(on_upload, [session, upload], outputs, preprocess=False, show_progress="minimal")
        upload.clear(on_upload, [session, upload], outputs, preprocess=False, **quiet)
        canvas.click(on_click, [session, mode, size], outputs, trigger_mode="multiple", **quiet)
        suggestions.click(on_suggestion, session, outputs, trigger_mode="multiple", **quiet)
        hints.input(on_edit(select), [session, hints], outputs, **quiet)
        # The picker's .change also fires when the server sets it to the selected hint's colour: a request for
        # nothing. The user's own changes: .input (drags), .submit (Enter in its text box, sent before the box
        # has updated the picker: the box is read), .blur (leaving the picker after typing).
        for event, js in ((color.input, None), (color.submit, TYPED_COLOR), (color.blur, None)):
            event(on_color, [session, color], outputs, js=js, trigger_mode="always_last", **quiet)
        size.release(on_size, [session, size], outputs, **quiet)
        remove_button.click(on_edit(lambda s: remove(colorizer, s)), session, outputs, **quiet)
        undo_button.click(on_edit(lambda s: undo(colorizer, s)), session, outputs, **quiet)
        clear_button.click(on_edit(lambda s: clear(colorizer, s)), session, outputs, **quiet)
        export_button.click(on_export, session, downloads)
        app.unload(on_close)
    return app


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="colorization-app",
                                     description="Colorize a photo in the browser with click-to-place colour hints.")
    parser.add_argument("--ckpt", default="reference",
                        help="a checkpoint written by train.py (default: the reference model shipped with the package)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--size", type=int, default=None, help=SIZE_HELP)
    parser.add_argument("--device", default="cpu", help="torch device for the network (cpu, cuda, ...)")
    parser.add_argument("--max-upload-mb", type=float, default=30.0, help="largest accepted upload, in MB")
    parser.add_argument("--max-megapixels", type=float, default=40.0, help="largest accepted photo, in megapixels")
    return parser.parse_args(argv)


def serve(colorizer: Colorizer, host: str = "127.0.0.1", port: int | None = None, max_bytes: int = 30_000_000,
          max_pixels: int = 40_000_000, block: bool = True) -> gr.Blocks:
    """Build and start the app; with block=False it serves from a thread and returns (tests close it)."""
    app = build_app(colorizer, max_bytes, max_pixels)
    gc.freeze()  # what start-up made (torch, Gradio, the network) lives on: out of the collector's full passes
    # System fonts: the default theme fetches web fonts, and the app must work offline.
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    app.launch(server_name=host, server_port=port, max_file_size=max_bytes, theme=theme,
               prevent_thread_lock=not block, quiet=not block, show_error=True)
    return app


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        colorizer = Colorizer.from_checkpoint(args.ckpt, args.size, args.device)
    except (CheckpointError, ValueError) as error:  # ValueError: an unusable --size
        print(f"colorization-app: error: {error}", file=sys.stderr)
        return 2
    # SIGTERM (a service manager, `timeout`) exits through Python, so the app's files are removed at exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    serve(colorizer, args.host, args.port, int(args.max_upload_mb * 1e6), int(args.max_megapixels * 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
