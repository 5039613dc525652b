"""One process per run directory: an OS lock on `RUN/lock`, held while a search or resume runs.

`fcntl.flock` is released by the kernel when the holder exits, however it exits (kill -9
included), so a lock is never stale. The file says who holds it (pid, host, since when) for the
one-line error a second `search` or `resume` gets; readers (export, explain, report, replace)
take no lock: they read the last complete checkpoint, and `holder` tells them the run is live.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import socket
import sys

from evo.errors import UserError

NAME = "lock"


@contextlib.contextmanager
def owned(run_dir: pathlib.Path):
    """Holds the run directory's lock for the `with` block; a one-line error when another process has it."""
    path = pathlib.Path(run_dir) / NAME
    try:
        f = open(path, "a+", encoding="utf-8")
    except OSError as err:
        raise UserError(f"could not open {path} to lock the run: {err.strerror or err}") from None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run_dir} is in use by {describe(_read(path))}; wait for it to finish "
                            f"or stop it first") from None
        try:
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}))
            f.flush()
        except OSError as err:   # a full disk: the lock holds, without the note that names its holder
            print(f"evo: warning: could not write who holds {path} ({err.strerror or err})", file=sys.stderr)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def holder(run_dir: pathlib.Path) -> dict | None:
    """Returns who holds the run's lock now (pid, host, since), or None when no process does."""
    path = pathlib.Path(run_dir) / NAME
    if not path.is_file():
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read(path) or {}
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    except OSError:
        return None
    return None


def _read(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def describe(who: dict) -> str:
    """Returns who holds a lock, in words."""
    if not who:
        return "another process"
    return f"process {who.get('pid')} on {who.get('host')} since {who.get('since')}"


def note(run_dir: pathlib.Path) -> str | None:
    """Returns a line saying the run is still going, for readers, or None when it is not."""
    who = holder(run_dir)
    if who is None:
        return None
    return f"{run_dir} is still running ({describe(who)}); showing its last checkpoint"
