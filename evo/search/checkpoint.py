"""Checkpoints: versioned JSON, written atomically, read strictly.

A write goes to a temporary file in the same directory, is fsynced, and is renamed over
the old file with `os.replace`, so a kill at any instant leaves either the old or the new
checkpoint, never a torn one. A failed write (disk full) removes the temporary file and
says that the previous checkpoint is intact. A missing, truncated, foreign or
wrong-version checkpoint is a `UserError`: a run never silently starts afresh.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from evo import files, run
from evo.search import migrate, progress
from evo.errors import UserError

SCHEMA_VERSION = run.SCHEMA_VERSION
CHECKPOINT = run.CHECKPOINT
REQUIRED = ("schema_version", "generation", "archive", "rng", "spent", "budgets", "attention_set")
_TYPES = {"generation": int, "archive": dict, "rng": dict, "spent": dict, "budgets": dict, "attention_set": dict,
          "fronts": list, "islands": list, "heads": dict, "population": list, "operator": dict, "log_bytes": int,
          "stall": int, "operator_failures": int, "novelty": dict,
          "library": list}


def save(run_dir: pathlib.Path, state: dict) -> None:
    """Writes the run's checkpoint (the state gets the schema version)."""
    files.write_json(pathlib.Path(run_dir) / CHECKPOINT, {"schema_version": SCHEMA_VERSION, **state})


def load(run_dir: pathlib.Path) -> dict:
    """Returns the run's checkpoint, checked for schema version and required fields."""
    path = pathlib.Path(run_dir) / CHECKPOINT
    if not pathlib.Path(run_dir).is_dir():
        raise UserError(f"no run directory at {run_dir}")
    data = files.read_json(path, "checkpoint")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"checkpoint {path} has schema version {version!r}; this headcode reads "
                        f"version {SCHEMA_VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise UserError(f"checkpoint {path} is corrupt (missing {', '.join(missing)})")
    wrong = [f"{k} should be {t.__name__}, got {type(data[k]).__name__}" for k, t in _TYPES.items()
             if k in data and (not isinstance(data[k], t) or (t is int and isinstance(data[k], bool)))]
    if wrong:
        raise UserError(f"checkpoint {path} is corrupt ({'; '.join(wrong)})")
    if migrate.needed(data):
        try:
            data = migrate.finished(data)
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"checkpoint {path} is corrupt (archive: {type(err).__name__}: {err})") from None
    return data


def encode(engine) -> dict:
    """Returns everything needed to continue the engine exactly, as JSON-able data."""
    archive = engine.archive
    ids = lambda idx: [archive.records[i].id for i in idx]  # noqa: E731
    return {
        "generation": engine.generation,
        "spent": {"programs": len(archive), "seconds": engine.elapsed()},
        "budgets": dataclasses.asdict(engine.budget),
        "settings": dataclasses.asdict(engine.settings),
        "attention_set": engine.attention_set,
        "archive": archive.state(),
        "islands": engine.islands.tolist(),
        "heads": engine.heads.state(engine.best),
        "population": [ids(p) for p in engine.population()],
        "fronts": [ids(f) for f in engine.heads.fronts],
        "rng": engine.rng.bit_generator.state,
        "operator": engine.operator.state_dict(),
        "operator_failures": engine.operator_failures,
        "novelty": engine.novelty.state(),
        "library": engine.library.state(),
        "log_bytes": engine.log_bytes,
        "stall": engine.stall,
    }


def restore(engine, state: dict) -> None:
    """Puts a checkpoint's state into the engine (its budget and settings stay as given)."""
    from evo.search import archive as archive_mod
    engine.archive = archive_mod.Archive.from_state(state["archive"])
    engine.generation = int(state["generation"])
    engine.islands = np.asarray(state["islands"], dtype=np.int64)
    engine.heads.load(state["heads"], engine.best)
    engine.rng.bit_generator.state = state["rng"]
    engine.operator.load_state_dict(state.get("operator", {}))
    engine.operator_failures = int(state.get("operator_failures", 0))
    engine.novelty.load(state.get("novelty", {}))
    engine.library.load(state.get("library"))   # runs made before term libraries have none
    engine.stall = int(state.get("stall", 0))
    engine.log_bytes = int(state["log_bytes"])
    engine.clock = progress.Clock(float(state["spent"]["seconds"]))   # this session's clock on top of the earlier
