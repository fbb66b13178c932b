"""`colorization-app [--ckpt CKPT]`: colorize a photo in the browser with click-to-place colour hints.

Upload a photo, click it to place a hint (its colour starts as the model's most likely colour there;
the swatches below offer the next most likely ones), recolour, resize, move, remove or undo hints; the
result re-colorizes after every edit. Export writes the full-resolution result and the hints as JSON,
which `colorize --hints` reproduces. All computation is colorization.inference, shared with `colorize`.
"""

import argparse
import functools
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageColor, ImageDraw

from colorization.checkpoint import CheckpointError
from colorization.data.decode import DecodeError
from colorization.hint_file import Hint, hints_json, parse_color, to_hex
from colorization.image_io import save_image
from colorization.inference import Colorizer, Photo, resize_L

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: it reads it once
import gradio as gr  # noqa: E402

PREVIEW = 768  # longest side shown in the browser; exports are at full resolution
N_SUGGESTIONS = 8
ADD, MOVE = "adds a hint", "moves the selected hint"


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
    ab: torch.Tensor | None = None  # the latest prediction on the network grid
    logits: torch.Tensor | None = None
    suggestions: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # the latest re-colorization's time

    @property
    def scale(self) -> float:
        """Photo pixels per preview pixel."""
        return self.photo.width / self.L_preview.shape[-1]


# -- the work behind the widgets (plain functions: tests call them without a browser) -------------------
def open_upload(colorizer: Colorizer, path: str, max_bytes: int, max_pixels: int) -> Session:
    """An uploaded file -> a session with its first prediction; UploadError with a message otherwise."""
    name = os.path.basename(path)
    if os.path.getsize(path) > max_bytes:
        raise UploadError(f"{name}: {os.path.getsize(path) / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit")
    try:
        photo = colorizer.load_photo(path, max_pixels)
    except DecodeError as error:  # not an image, truncated, too many pixels, too small
        raise UploadError(str(error).replace(path, name)) from None
    side = max(photo.width, photo.height)
    height, width = (max(1, round(n * min(1.0, PREVIEW / side))) for n in (photo.height, photo.width))
    session = Session(photo, resize_L(photo.L, height, width))
    return recolorize(colorizer, session)


def recolorize(colorizer: Colorizer, session: Session) -> Session:
    start = time.perf_counter()
    session.ab, session.logits = colorizer.predict(session.photo, session.hints)
    session.seconds = time.perf_counter() - start
    return session


def default_size(colorizer: Colorizer, photo: Photo) -> int:
    """A patch of about 3 network pixels: the hint size the networks were trained with."""
    return max(1, round(3 * max(photo.width, photo.height) / colorizer.size))


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
    session.suggestions = colorizer.suggestions(session.photo, session.logits, x, y, N_SUGGESTIONS)
    hints = list(session.hints)
    if mode == MOVE and session.selected is not None:
        old = hints[session.selected]
        hints[session.selected] = Hint(x, y, old.color, old.size)
        return edit(colorizer, session, hints, session.selected)
    hints.append(Hint(x, y, parse_color(session.suggestions[0][0]), int(size)))
    return edit(colorizer, session, hints, len(hints) - 1)


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
    save_image(colorizer.render(session.photo.L, session.ab), image_path)
    with open(hints_path, "w", encoding="utf-8") as f:
        f.write(hints_json(session.hints))
    return [image_path, hints_path]


# -- what the widgets show --------------------------------------------------------------------------------
def served_png(image: np.ndarray, folder: str) -> str:
    """The image as a PNG under `folder` (Gradio's cache), named by its pixels and written once, atomically.

    Why not hand Gradio the array: it writes arrays to a content-hash path in place (truncate, then write),
    so identical outputs of concurrent requests re-wrote a file another request was downloading, which
    arrived truncated. Files already in its cache are served as they are, and these are never re-written.
    """
    digest = hashlib.sha256(str(image.shape).encode() + image.tobytes()).hexdigest()
    path = os.path.join(folder, digest, "image.png")
    if not os.path.exists(path):
        save_image(image, path)  # a temporary file, then a rename: readers see no file or the whole file
    return path


def canvas(colorizer: Colorizer, session: Session) -> np.ndarray:
    """The gray photo at preview size with a numbered dot per hint (its patch outlined), the selected one ringed."""
    gray = Image.fromarray(colorizer.render(session.L_preview, torch.zeros(1, 2, 1, 1)))
    draw = ImageDraw.Draw(gray)
    for i, hint in enumerate(session.hints):
        x, y = (hint.x + 0.5) / session.scale, (hint.y + 0.5) / session.scale
        half, r = hint.size / session.scale / 2, 6
        if half > r:  # the patch's extent, when it is larger than the dot
            draw.rectangle((x - half, y - half, x + half, y + half), outline=hint.color, width=2)
        width = 3 if i == session.selected else 1
        draw.ellipse((x - r - 2, y - r - 2, x + r + 2, y + r + 2), outline="black", width=width + 1)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=hint.color, outline="white", width=width)
        draw.text((x + r + 4, y - r - 4), str(i + 1), fill="white", stroke_width=2, stroke_fill="black")
    return np.asarray(gray)


def swatch(color: str) -> np.ndarray:
    return np.broadcast_to(np.array(parse_color(color), dtype=np.uint8), (48, 48, 3)).copy()


def hint_label(i: int, hint: Hint) -> str:
    return f"{i + 1}: ({hint.x}, {hint.y}) {hint.hex}, size {hint.size}"


def view(colorizer: Colorizer, folder: str, session: Session | None, message: str = ""):
    """Every widget's value for a session (the same outputs for every event); images as files in `folder`."""
    if session is None:
        return (None, None, None, gr.update(choices=[], value=None), gr.update(), gr.update(), [],
                message or "Upload a photo to start.")
    labels = [hint_label(i, hint) for i, hint in enumerate(session.hints)]
    selected = session.hints[session.selected] if session.selected is not None else None
    grid_h, grid_w = session.photo.L_net.shape[-2:]
    status = (f"{session.photo.name}: {session.photo.width}x{session.photo.height}, network "
              f"{grid_w}x{grid_h}, {len(session.hints)} hint(s), "
              f"re-colorized in {session.seconds * 1000:.0f} ms")
    return (session, served_png(canvas(colorizer, session), folder),
            served_png(colorizer.render(session.L_preview, session.ab), folder),
            gr.update(choices=labels, value=labels[session.selected] if selected else None),
            gr.update(value=selected.hex) if selected else gr.update(),
            gr.update(value=selected.size) if selected else gr.update(),
            [(served_png(swatch(color), folder), f"{color} {p:.1%}") for color, p in session.suggestions],
            f"{message} {status}".strip())


def build_app(colorizer: Colorizer, max_bytes: int = 30_000_000, max_pixels: int = 40_000_000) -> gr.Blocks:
    export_folder = tempfile.mkdtemp(prefix="colorization-app-")
    with gr.Blocks(title="Colorize your own photos") as app:
        show = functools.partial(view, colorizer, app.GRADIO_CACHE)
        session = gr.State(None)
        gr.Markdown("## Colorize your own photos\nUpload a photo, click it to place colour hints; "
                    "the result re-colorizes after every edit.")
        upload = gr.File(label="Photo", file_types=["image"], type="filepath", elem_id="upload")
        status = gr.Markdown("Upload a photo to start.", elem_id="status")
        with gr.Row():
            photo = gr.Image(label="Click to place a hint", interactive=False, format="png", elem_id="canvas")
            result = gr.Image(label="Result", interactive=False, format="png", elem_id="result")
        with gr.Row():
            mode = gr.Radio([ADD, MOVE], value=ADD, label="A click", elem_id="mode")
            color = gr.ColorPicker(label="Colour of the selected hint", elem_id="color")
            size = gr.Slider(1, 101, value=1, step=1, label="Patch size of the selected hint (photo pixels)",
                             elem_id="size")
        suggestions = gr.Gallery(label="Likely colours at the clicked point (click one to use it)", columns=8,
                                 height=110, allow_preview=False, format="png", buttons=[], elem_id="suggestions")
        hints = gr.Radio([], type="index", label="Hints (select one to recolour, resize, move or remove)",
                         elem_id="hints")
        with gr.Row():
            remove_button = gr.Button("Remove selected", elem_id="remove")
            undo_button = gr.Button("Undo", elem_id="undo")
            clear_button = gr.Button("Clear hints", elem_id="clear")
            export_button = gr.Button("Export full resolution + hints", variant="primary", elem_id="export")
        downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        outputs = [session, photo, result, hints, color, size, suggestions, status]

        def on_upload(path):
            if path is None:
                return show(None)
            try:
                new = open_upload(colorizer, path, max_bytes, max_pixels)
            except UploadError as error:
                gr.Warning(str(error))
                return show(None, f"Cannot use this file: {error}.")
            values = list(show(new))  # the slider fits the photo: up to its longer side
            values[5] = gr.update(maximum=max(new.photo.width, new.photo.height),
                                  value=default_size(colorizer, new.photo))
            return values

        def on_edit(change):
            """Wrap an edit so that events without a photo loaded do nothing."""
            def handler(state, *args):
                return show(change(state, *args) if state is not None else None)
            return handler

        def on_click(state, click_mode, patch_size, evt: gr.SelectData):
            return show(click(colorizer, state, *evt.index, click_mode, patch_size) if state else None)

        def on_suggestion(state, evt: gr.SelectData):
            return show(restyle(colorizer, state, color=state.suggestions[evt.index][0]))

        def on_color(state, value):
            try:
                rgb = ImageColor.getrgb(value)[:3]  # the picker may send #rrggbb, rgb(...) or hsl(...)
            except (ValueError, TypeError):
                return [gr.skip()] * len(outputs)
            if state is None or state.selected is None or state.hints[state.selected].color == rgb:
                return [gr.skip()] * len(outputs)
            return show(restyle(colorizer, state, color=to_hex(rgb)))

        def on_select_hint(state, index):
            if state is not None and index is not None:
                state.selected = index
                hint = state.hints[index]
                state.suggestions = colorizer.suggestions(state.photo, state.logits, hint.x, hint.y, N_SUGGESTIONS)
            return show(state)

        def on_export(state):
            return export(colorizer, state, export_folder) if state is not None else None

        upload.upload(on_upload, upload, outputs)
        upload.clear(lambda: show(None), None, outputs)
        photo.select(on_click, [session, mode, size], outputs)
        suggestions.select(on_suggestion, session, outputs)
        hints.input(on_select_hint, [session, hints], outputs)
        # .change, not .input: the picker's hex box only sends change. view() setting the value triggers it
        # too, with the hint's own colour: skipped.
        color.change(on_color, [session, color], outputs, trigger_mode="always_last")
        size.release(on_edit(lambda s, n: restyle(colorizer, s, size=n)), [session, size], outputs)
        remove_button.click(on_edit(lambda s: remove(colorizer, s)), session, outputs)
        undo_button.click(on_edit(lambda s: undo(colorizer, s)), session, outputs)
        clear_button.click(on_edit(lambda s: clear(colorizer, s)), session, outputs)
        export_button.click(on_export, session, downloads)
    return app


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="colorization-app",
                                     description="Colorize a photo in the browser with click-to-place colour hints.")
    parser.add_argument("--ckpt", default="reference",
                        help="a checkpoint written by train.py (default: the reference model shipped with the package)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--size", type=int, default=None,
                        help="network input size when the checkpoint does not record its training size (256)")
    parser.add_argument("--device", default="cpu", help="torch device for the network (cpu, cuda, ...)")
    parser.add_argument("--max-upload-mb", type=float, default=30.0, help="largest accepted upload, in MB")
    parser.add_argument("--max-megapixels", type=float, default=40.0, help="largest accepted photo, in megapixels")
    return parser.parse_args(argv)


def serve(colorizer: Colorizer, host: str = "127.0.0.1", port: int | None = None, max_bytes: int = 30_000_000,
          max_pixels: int = 40_000_000, block: bool = True) -> gr.Blocks:
    """Build and start the app; with block=False it serves from a thread and returns (tests close it)."""
    app = build_app(colorizer, max_bytes, max_pixels)
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
    serve(colorizer, args.host, args.port, int(args.max_upload_mb * 1e6), int(args.max_megapixels * 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
