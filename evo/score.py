"""The `evo score` report: every program against every head, its table and its JSON."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from evo import evaluate, files, parallel, program, sandbox
from evo.errors import UserError

THRESHOLDS = (0.5, 0.7, 0.9)


def collect(paths: list[str]) -> list[pathlib.Path]:
    """Returns the program files named by `paths` (files, or directories of *.py), sorted per directory."""
    found: list[pathlib.Path] = []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.py") if p.is_file())
            if not files:
                raise UserError(f"no .py files in directory {path}")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"no such file or directory: {path}")
    unique = list({p.resolve(): p for p in found}.values())
    if not unique:
        raise UserError("no program files given")
    return unique


def build_report(files: list[pathlib.Path], evaluations: list[evaluate.Evaluation], aset) -> dict:
    """Returns the JSON-able report: per head its best program, per program its mean IoU or error."""
    names = [f.stem for f in files]
    ok = [i for i, e in enumerate(evaluations) if e.ok]
    k_total = len(aset.heads)
    table = np.stack([evaluations[i].iou for i in ok]) if ok else np.zeros((0, k_total))  # (P_ok, K)
    heads = []
    for k, (layer, head) in enumerate(aset.heads):
        if not ok:
            heads.append({"layer": layer, "head": head, "best_program": None, "iou": None})
            continue
        # ties go to the shorter program, then to the earlier file
        best = max(ok, key=lambda i: (float(evaluations[i].iou[k]), -evaluations[i].length, -i))
        heads.append({"layer": layer, "head": head, "best_program": names[best],
                      "iou": round(float(evaluations[best].iou[k]), 6)})
    programs = [{"name": names[i], "path": str(f), "length": e.length,
                 "mean_iou": round(float(np.mean(e.iou)), 6) if e.ok else None,
                 "error": e.error, "seconds": round(e.seconds, 3)}
                for i, (f, e) in enumerate(zip(files, evaluations))]
    best_per_head = table.max(axis=0) if ok else None   # (K,)
    return {
        "model": aset.model,
        "n_sentences": len(aset),
        "n_programs": len(files),
        "mean_best_iou": round(float(best_per_head.mean()), 6) if ok else None,
        "heads_at_least": {str(t): int((best_per_head >= t).sum()) if ok else 0 for t in THRESHOLDS},
        "n_heads": k_total,
        "causal": bool(aset.causal),
        "corpus": aset.meta.get("corpus"),
        "attention_set": str(aset.path),
        "heads": heads,
        "programs": programs,
    }


def score(paths: list[str], aset, limits: sandbox.Limits = sandbox.Limits(), workers: int = 1,
          backend: str = "loky", scheduler: str | None = None) -> dict:
    """Returns the report of every program under `paths` scored against the attention set `aset`."""
    files = collect(paths)
    sources = [program.read(f) for f in files]
    with parallel.Pool(backend, workers, scheduler) as pool:
        evaluations = evaluate.evaluate(sources, aset.path, limits, pool=pool)
    return build_report(files, evaluations, aset)


def check_json_target(out: str | os.PathLike) -> pathlib.Path:
    """Returns `out` as a path if a report can be written there; UserError otherwise."""
    path = pathlib.Path(out)
    if path.is_dir():
        raise UserError(f"--json {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: directory {path.parent} does not exist")
    return path


def write_json(report: dict, out: str | os.PathLike) -> pathlib.Path:
    """Returns the path `report` was written to as JSON (atomically: temporary file, then rename)."""
    path = check_json_target(out)
    files.write_text(path, json.dumps(report, indent=1) + "\n")
    return path


def summary(report: dict) -> str:
    """Returns the one-line summary: mean best-fit IoU and how many heads reach each threshold."""
    k = report["n_heads"]
    mean = report["mean_best_iou"]
    reached = ", ".join(f"≥{t}: {report['heads_at_least'][str(t)]}/{k}" for t in THRESHOLDS)
    failed = sum(1 for p in report["programs"] if p["error"])
    head = "mean best-fit IoU " + ("n/a (every program failed)" if mean is None else f"{mean:.3f}")
    return (f"{head} over {k} heads · heads {reached} · {report['n_programs']} programs"
            f"{f' ({failed} failed)' if failed else ''} · {report['n_sentences']} sentences")


def render(report: dict, console) -> None:
    """Prints the per-head and per-program tables and the summary line on a rich console."""
    from rich.markup import escape
    from rich.table import Table

    heads = Table(title=f"best program per head · {report['model']}")
    for col, justify in (("layer", "right"), ("head", "right"), ("best program", "left"), ("IoU", "right")):
        heads.add_column(col, justify=justify)
    for h in report["heads"]:
        iou = "—" if h["iou"] is None else f"{h['iou']:.3f}"
        heads.add_row(str(h["layer"]), str(h["head"]), escape(h["best_program"] or "—"), iou)
    console.print(heads)
    wins: dict[str, int] = {}
    for h in report["heads"]:
        if h["best_program"]:
            wins[h["best_program"]] = wins.get(h["best_program"], 0) + 1
    progs = Table(title="programs")
    for col, justify in (("program", "left"), ("length", "right"), ("mean IoU", "right"),
                         ("best for", "right"), ("error", "left")):
        progs.add_column(col, justify=justify)
    for p in report["programs"]:
        mean = "—" if p["mean_iou"] is None else f"{p['mean_iou']:.3f}"
        progs.add_row(escape(p["name"]), str(p["length"]), mean, str(wins.get(p["name"], 0)),
                      escape(p["error"] or ""), style="red" if p["error"] else None)
    console.print(progs)
    console.print(escape(summary(report)))
