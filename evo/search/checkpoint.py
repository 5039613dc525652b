"""Checkpoints and run configs: versioned JSON, written atomically, read strictly.

A write goes to a temporary file in the same directory, is fsynced, and is renamed over
the old file with `os.replace`, so a kill at any instant leaves either the old or the new
checkpoint, never a torn one. A failed write (disk full) removes the temporary file and
says that the previous checkpoint is intact. A missing, truncated, foreign or
wrong-version checkpoint is a `UserError`: a run never silently starts afresh.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

from evo.errors import UserError

SCHEMA_VERSION = 1
CHECKPOINT = "checkpoint.json"
CONFIG = "config.json"
REQUIRED = ("schema_version", "generation", "archive", "rng", "spent", "budgets", "attention_set")


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


def save(run_dir: pathlib.Path, state: dict) -> None:
    """Writes the run's checkpoint (the state gets the schema version)."""
    write_json(pathlib.Path(run_dir) / CHECKPOINT, {"schema_version": SCHEMA_VERSION, **state})


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


def load(run_dir: pathlib.Path) -> dict:
    """Returns the run's checkpoint, checked for schema version and required fields."""
    path = pathlib.Path(run_dir) / CHECKPOINT
    if not pathlib.Path(run_dir).is_dir():
        raise UserError(f"no run directory at {run_dir}")
    data = read_json(path, "checkpoint")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"checkpoint {path} has schema version {version!r}; this headcode reads "
                        f"version {SCHEMA_VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise UserError(f"checkpoint {path} is corrupt (missing {', '.join(missing)})")
    return data


def save_config(run_dir: pathlib.Path, config: dict) -> None:
    """Writes the run's config.json."""
    write_json(pathlib.Path(run_dir) / CONFIG, {"schema_version": SCHEMA_VERSION, **config})


def load_config(run_dir: pathlib.Path) -> dict:
    """Returns the run's config.json."""
    data = read_json(pathlib.Path(run_dir) / CONFIG, "run config")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"run config in {run_dir} has schema version {data.get('schema_version')!r}; "
                        f"this headcode reads version {SCHEMA_VERSION}")
    return data
