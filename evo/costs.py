"""Measured costs of programs replacing heads, written back where export and report read them.

`evo replace` measures, per head, what each candidate program costs replacing that head
alone (relative perplexity increase; for encoders the drop in embedding cosine), with its
standard error over sentences. `record` keeps those figures beside what they were
measured for: in a run directory as `costs.json` (which `evo export` then shows as each
front entry's `ppl_increase`, in place of the search's own shorter measurement), and in
an export directory straight into `front.json`'s entries.
"""

from __future__ import annotations

import pathlib

from evo import files
from evo import run as run_dir

SCHEMA_VERSION = 1
Key = tuple[int, int, str]  # (layer, head, program id)


def record(origin: str | pathlib.Path, measured: list[dict], text: dict) -> pathlib.Path | None:
    """Writes `measured` ({layer, head, program, cost, cost_se}) back into a run or export; returns the file."""
    origin = pathlib.Path(origin)
    if not measured:
        return None
    if run_dir.is_run(origin):
        path = origin / run_dir.COSTS
        known = load(origin)
        known.update({_key(m): {"cost": m["cost"], "cost_se": m["cost_se"]} for m in measured})
        files.write_json(path, {"schema": SCHEMA_VERSION, "text": text, "costs": [
            {"layer": k[0], "head": k[1], "program": k[2], **v} for k, v in sorted(known.items())]})
        return path
    front = origin / "front.json"
    doc = files.read_json(front, "export front")
    by_key = {_key(m): m for m in measured}
    for h in doc.get("heads", []):
        for entry in h.get("front", []) + [h.get("best") or {}, h.get("simplest") or {}]:
            m = by_key.get((int(h["layer"]), int(h["head"]), str(entry.get("program"))))
            if m is not None:
                entry["ppl_increase"] = round(m["cost"], 6)
                entry["ppl_increase_se"] = round(m["cost_se"], 6)
    doc["costs_measured_on"] = text
    files.write_json(front, doc)
    return front


def measured_on(origin: str | pathlib.Path, fingerprint: str) -> dict[Key, tuple[float, float]]:
    """Returns {(layer, head, program): (cost, se)} already recorded in a run or export for that text."""
    origin = pathlib.Path(origin)
    if run_dir.is_run(origin):
        path = origin / run_dir.COSTS
        doc = files.read_json(path, "measured costs") if path.exists() else {}
        if (doc.get("text") or {}).get("fingerprint") != fingerprint:
            return {}
        return {k: (v["cost"], v["cost_se"]) for k, v in _entries(doc, path).items()}
    doc = files.read_json(origin / "front.json", "export front")
    if (doc.get("costs_measured_on") or {}).get("fingerprint") != fingerprint:
        return {}
    return {(int(h["layer"]), int(h["head"]), str(e["program"])): (float(e["ppl_increase"]),
                                                                   float(e.get("ppl_increase_se") or 0.0))
            for h in doc.get("heads", []) for e in h.get("front", []) if e.get("ppl_increase") is not None}


def load(run: str | pathlib.Path) -> dict[Key, dict]:
    """Returns {(layer, head, program): {cost, cost_se}} from a run's costs.json ({} when none)."""
    path = pathlib.Path(run) / run_dir.COSTS
    if not path.exists():
        return {}
    return _entries(files.read_json(path, "measured costs"), path)


def _entries(doc: dict, path: pathlib.Path) -> dict[Key, dict]:
    """Returns the {(layer, head, program): {cost, cost_se}} a costs file holds; one-line error if malformed."""
    try:
        return {(int(c["layer"]), int(c["head"]), str(c["program"])): {"cost": float(c["cost"]),
                                                                      "cost_se": float(c["cost_se"])}
                for c in doc["costs"]}
    except (KeyError, TypeError, ValueError) as err:
        from evo.errors import UserError
        raise UserError(f"{path} is not a valid costs file ({type(err).__name__}: {err}); delete it to "
                        "measure again") from None


def _key(m: dict) -> Key:
    return (int(m["layer"]), int(m["head"]), str(m["program"]))
