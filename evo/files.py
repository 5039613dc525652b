"""Output files written atomically: to a temporary file beside the target, fsynced, renamed into place.

A kill at any instant leaves either the old file or the new one, never a torn one; a failed
write (disk full) removes the temporary file and says whether the previous file is intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import tempfile

from evo.errors import UserError


def write_json(path: pathlib.Path, data: dict) -> None:
    """Writes `data` to `path` atomically; on failure the old file is untouched and the error says so."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise UserError(f"could not write {path}: {err.strerror or err}; {kept}") from err
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text(path: pathlib.Path, text: str) -> None:
    """Writes text to `path` atomically (the old file stays whole if the write fails)."""
    with atomic(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def atomic(path: pathlib.Path, mode: str = "w"):
    """Yields a file open for writing that replaces `path` only when the block finishes without error."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise UserError(f"could not write {path}: {err.strerror or err}; {kept}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_json(path: pathlib.Path, what: str) -> dict:
    """Returns the JSON object at `path`, or raises a UserError naming what is wrong."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"no {what} at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{what} {path} is corrupt (not valid JSON: {err}); "
                        "it cannot be resumed or exported") from err
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} is corrupt (expected a JSON object)")
    return data


@contextlib.contextmanager
def locked(path: pathlib.Path):
    """Holds an exclusive lock on `path` for the block (other processes wait); removes the lock file after."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
