"""Files written whole or not at all: a temporary file beside the target, renamed over it once complete.

The temporary file is `.NAME.PID.RANDOM.part` in the target's folder (the same disk, so the rename is atomic), so
what a killed writer left is recognisable and removable (`remove_stale_partials`).
"""

import contextlib
import glob
import os
import secrets


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _prefix(path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.")


@contextlib.contextmanager
def atomic_path(path: str):
    """A temporary path beside `path` to write to, renamed to `path` when the block completes; removed when it
    fails (also on SystemExit from a SIGTERM handler), so the real name never holds a half-written file."""
    partial = f"{_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        yield partial
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)


def left_by_dead_processes(prefix: str, separator: str = ".") -> list[str]:
    """The paths named `prefix` + PID + `separator` + ... whose process PID is gone (their writer was killed)."""
    stale = []
    for path in glob.glob(glob.escape(prefix) + "*"):
        pid = path[len(prefix):].split(separator)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            stale.append(path)
    return stale


def remove_stale_partials(path: str) -> None:
    """Remove the temporary files of `path` left by writers that were killed (their process is gone)."""
    for partial in left_by_dead_processes(_prefix(path)):
        if partial.endswith(".part"):
            with contextlib.suppress(FileNotFoundError):  # another run removed it first
                os.remove(partial)
