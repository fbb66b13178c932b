"""The hint file format (what the app exports and `colorize --hints` reads): a JSON list of
`{"x": column, "y": row, "color": "#rrggbb" or [r, g, b], "size": side}` in the photo's pixel coordinates.

Untrusted input: the file is read up to MAX_FILE_BYTES and holds at most MAX_HINTS hints; every error names the file.
"""

import json
import math
from dataclasses import dataclass

HINT_KEYS = {"x", "y", "color", "size"}
MAX_FILE_BYTES = 1_000_000  # about 15,000 hints written the way the app writes them
MAX_HINTS = 10_000  # far more than anyone clicks; 500 points already hint 60% of a 256 px photo


class HintError(ValueError):
    """A hint file or a hint that cannot be used; the message names the file and the hint."""


def to_hex(color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


@dataclass(frozen=True)
class Hint:
    """A size x size square of colour centred on pixel (x, y) of the original photo."""

    x: int
    y: int
    color: tuple[int, int, int]
    size: int = 1

    @property
    def hex(self) -> str:
        return to_hex(self.color)

    def to_json(self) -> dict:
        return {"x": self.x, "y": self.y, "color": self.hex, "size": self.size}


def parse_color(value) -> tuple[int, int, int]:
    """'#rrggbb', '#rgb' or [r, g, b] (0..255) -> (r, g, b); ValueError otherwise."""
    if isinstance(value, str) and value.startswith("#") and len(value) in (4, 7):
        digits = value[1:] if len(value) == 7 else "".join(c * 2 for c in value[1:])
        try:
            return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            pass
    elif (isinstance(value, list | tuple) and len(value) == 3
          and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)):
        return tuple(value)
    raise ValueError(f"invalid colour {value!r} (expected '#rrggbb' or [r, g, b] with 0..255)")


def _integer(item: dict, key: str, default=None) -> int:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key!r} must be a finite number, got {str(value)[:20]}")
    return math.floor(value)  # a fractional coordinate lies in the pixel it falls into


def parse_hints(data, source: str = "hints") -> list[Hint]:
    """The JSON structure `[{"x", "y", "color", "size"?}, ...]` -> hints; HintError naming `source`."""
    if not isinstance(data, list):
        raise HintError(f"{source}: expected a JSON list of hints, got {type(data).__name__}")
    if len(data) > MAX_HINTS:
        raise HintError(f"{source}: {len(data)} hints, over the limit of {MAX_HINTS}")
    hints = []
    for number, item in enumerate(data, 1):
        try:
            if not isinstance(item, dict):
                raise ValueError(f"expected an object, got {type(item).__name__}")
            if missing := {"x", "y", "color"} - item.keys():
                raise ValueError(f"missing {', '.join(sorted(missing))}")
            if unknown := item.keys() - HINT_KEYS:
                raise ValueError(f"unknown key {', '.join(sorted(unknown))} (expected {', '.join(sorted(HINT_KEYS))})")
            hint = Hint(_integer(item, "x"), _integer(item, "y"), parse_color(item["color"]),
                        _integer(item, "size", 1))
            if hint.size < 1:
                raise ValueError(f"size must be at least 1, got {hint.size}")
        except ValueError as error:
            raise HintError(f"{source}: hint {number}: {error}") from None
        hints.append(hint)
    return hints


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a hint can have")


def read_hints(path: str) -> list[Hint]:
    """A hint file (the format the app exports) -> hints; HintError naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # bounded: a device or a huge file is never read whole
    except FileNotFoundError:
        raise HintError(f"{path}: no such hint file") from None
    except OSError as error:
        raise HintError(f"{path}: cannot read the hint file ({error.strerror or error})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise HintError(f"{path}: larger than the {MAX_FILE_BYTES // 1_000_000} MB a hint file may have")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise HintError(f"{path}: not a JSON hint file (not UTF-8 text)") from None
    except RecursionError:
        raise HintError(f"{path}: not a usable JSON hint file (nested too deeply)") from None
    except ValueError as error:  # JSON syntax, Infinity/NaN, integers too long to convert
        raise HintError(f"{path}: not a readable JSON hint file ({str(error).split(';')[0][:120]})") from None
    return parse_hints(data, path)


def check_inside(hints: list[Hint], width: int, height: int, source: str = "hints"):
    for number, hint in enumerate(hints, 1):
        if not (0 <= hint.x < width and 0 <= hint.y < height):
            raise HintError(f"{source}: hint {number} at ({hint.x}, {hint.y}) is outside the {width}x{height} image")


def hints_json(hints: list[Hint]) -> str:
    return json.dumps([hint.to_json() for hint in hints], indent=1)
