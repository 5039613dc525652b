"""The run log: an append-only JSONL line per evaluated program.

Each line: id, key, source, parents, operator, generation, time (unix seconds), length,
ok, error, seconds (evaluation time), and the scores against every head as base64
float16 (`iou_f16`, K values, little-endian) plus `iou_max` and `iou_mean` for a quick
look with jq. float16 keeps three significant digits: enough to rebuild every front;
the checkpoint keeps the exact float32 scores.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import numpy as np

from evo.errors import UserError
from evo.search import archive as archive_mod


def line(record: archive_mod.Record, iou: np.ndarray | None, when: float | None = None) -> dict:
    """Returns the log entry for one evaluated program."""
    entry = {
        "id": record.id, "key": record.key, "source": record.source,
        "parents": list(record.parents), "operator": record.operator, "target": list(record.target),
        "generation": record.generation, "time": round(time.time() if when is None else when, 3),
        "length": record.length, "ok": record.ok, "error": record.error,
        "seconds": round(record.seconds, 4),
        "iou_f16": None, "iou_max": None, "iou_mean": None,
    }
    if iou is not None:
        entry["iou_f16"] = archive_mod.encode(iou, np.float16)
        entry["iou_max"] = round(float(np.max(iou)), 4)
        entry["iou_mean"] = round(float(np.mean(iou)), 4)
    return entry


def append(path: pathlib.Path, entries: list[dict]) -> int:
    """Appends entries (flushed and fsynced); returns the log's size in bytes afterwards. A write that
    fails (a full disk) is a one-line error: resuming cuts the log back to the last checkpoint's size."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            for entry in entries:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
            return f.tell()
    except OSError as err:
        raise UserError(f"could not append to {path}: {err.strerror or err}; the last checkpoint is intact, "
                        f"free space and `evo resume` the run") from None


def truncate(path: pathlib.Path, size: int) -> None:
    """Cuts the log back to `size` bytes: drops lines written after the last checkpoint."""
    if not path.exists():
        if size:
            raise UserError(f"{path} is missing but the checkpoint expects {size} bytes of it; "
                            "restore it from a backup to resume")
        path.touch()
        return
    actual = path.stat().st_size
    if actual < size:
        raise UserError(f"{path} has {actual} bytes but the checkpoint expects at least {size}; "
                        "the log was cut or replaced, so the run cannot resume exactly")
    if actual > size:
        with open(path, "r+b") as f:
            f.truncate(size)


def read(path: pathlib.Path) -> list[dict]:
    """Returns every entry, with `iou` decoded to a float16 array (None for failures)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not a JSON line ({err.msg})") from err
            code = entry.get("iou_f16")
            entry["iou"] = archive_mod.decode(code, np.float16) if code else None
            out.append(entry)
    return out
