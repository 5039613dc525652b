"""Export: a run's per-head Pareto fronts as program files, front.json and best_per_head.csv.

`DIR/programs/<id>.py` holds every program on any head's front, unchanged except for a
header docstring naming the heads it explains and its scores (docstrings do not count in
length or identity, so `evo score DIR/programs/` reproduces the IoUs on the run's corpus).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import json
import pathlib

import numpy as np

from evo import archive as archive_mod
from evo import checkpoint, program
from evo.errors import UserError


@dataclasses.dataclass(frozen=True)
class Entry:
    """One program on one head's front."""

    program: str
    iou: float
    length: int
    ppl_increase: float | None


@dataclasses.dataclass(frozen=True)
class Fronts:
    """A run's fronts: per head (layer, head), entries shortest first; sources by program id."""

    model: str
    heads: list[tuple[int, int]]
    fronts: list[list[Entry]]
    sources: dict[str, str]
    records: dict[str, archive_mod.Record]
    info: dict  # corpus, split, run, budget spent

    def best(self, k: int) -> Entry:
        """Returns head k's highest-IoU front entry (the shortest among ties)."""
        return max(self.fronts[k], key=lambda e: (e.iou, -e.length))


def collect(run_dir: pathlib.Path) -> Fronts:
    """Returns the fronts stored in a run's checkpoint."""
    run_dir = pathlib.Path(run_dir)
    config, state = checkpoint.load_config(run_dir), checkpoint.load(run_dir)
    arch = archive_mod.Archive.from_state(state["archive"])
    info = config["attention_set"]
    n_layers, n_heads = int(info["n_layers"]), int(info["n_heads"])
    if len(state["fronts"]) != n_layers * n_heads:
        raise UserError(f"checkpoint in {run_dir} has {len(state['fronts'])} fronts for "
                        f"{n_layers * n_heads} heads")
    fronts = []
    for k, ids in enumerate(state["fronts"]):
        entries = []
        for pid in ids:
            i = arch.by_id[pid]
            ppl = arch.ppl.get((i, k))
            entries.append(Entry(pid, round(float(arch.iou[i, k]), 6), arch.records[i].length,
                                 None if ppl is None else round(ppl, 6)))
        fronts.append(sorted(entries, key=lambda e: (e.length, -e.iou)))
    used = {e.program for f in fronts for e in f}
    records = {pid: arch.records[arch.by_id[pid]] for pid in sorted(used)}
    meta = {"run": str(run_dir), "corpus": config.get("corpus"), "split": config.get("split"),
            "sentence_tokens": config.get("sentence_tokens"),
            "attention_set": {k: v for k, v in info.items() if k != "path"},
            "programs_evaluated": state["spent"]["programs"], "generation": state["generation"]}
    return Fronts(config["model"], [(k // n_heads, k % n_heads) for k in range(n_layers * n_heads)],
                  fronts, {pid: r.source for pid, r in records.items()}, records, meta)


def export(run_dir: pathlib.Path, out_dir: pathlib.Path) -> dict:
    """Writes programs/, front.json and best_per_head.csv; returns a summary."""
    fr = collect(run_dir)
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "front.json").exists():
        raise UserError(f"{out_dir} exists and is not an earlier export; choose an empty or new --out")
    programs = out_dir / "programs"
    programs.mkdir(parents=True, exist_ok=True)
    for stale in programs.glob("*.py"):
        stale.unlink()
    for pid, source in fr.sources.items():
        (programs / f"{pid}.py").write_text(with_header(source, header(fr, pid)), encoding="utf-8")
    best = [fr.best(k) for k in range(len(fr.heads))]
    doc = {"model": fr.model, **fr.info,
           "mean_best_iou": round(float(np.mean([b.iou for b in best])), 6),
           "heads": [{"layer": layer, "head": head, "front": [dataclasses.asdict(e) for e in f]}
                     for (layer, head), f in zip(fr.heads, fr.fronts)]}
    checkpoint.write_json(out_dir / "front.json", doc)
    with open(out_dir / "best_per_head.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["layer", "head", "program", "iou", "length"])
        for (layer, head), b in zip(fr.heads, best):
            writer.writerow([layer, head, b.program, f"{b.iou:.6f}", b.length])
    return {"programs": len(fr.sources), "heads": len(fr.heads), "mean_best_iou": doc["mean_best_iou"]}


def header(fr: Fronts, pid: str) -> str:
    """Returns the docstring text for an exported program: what it explains and how well."""
    rec = fr.records[pid]
    first = program.docstring(rec.source) if _parses(rec.source) else None
    hits = sorted(((e.iou, fr.heads[k]) for k, f in enumerate(fr.fronts) for e in f if e.program == pid),
                  reverse=True)
    named = ", ".join(f"L{layer}.H{head} {iou:.3f}" for iou, (layer, head) in hits)
    corpus = fr.info["attention_set"].get("corpus") or {}
    corpus = corpus.get("source") if isinstance(corpus, dict) else corpus
    corpus = corpus or fr.info.get("corpus") or f"builtin:{fr.info.get('split')}"
    lines = [first or f"Program {pid}.", "",
             f"On the Pareto front of {len(hits)} head(s) of {fr.model} (IoU): {named}.",
             f"Length {rec.length} AST nodes. Scored on {corpus}, {fr.info['attention_set'].get('sentences')} sentences.",
             f"Made by {rec.operator} in generation {rec.generation}"
             + (f" from {', '.join(rec.parents)}." if rec.parents else ".")]
    return "\n".join(lines)


def with_header(source: str, text: str) -> str:
    """Returns `source` with its module docstring replaced by `text`; same program key."""
    tree = program.parse(source)
    lines = source.splitlines(keepends=True)
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines = lines[: body[0].lineno - 1] + lines[body[0].end_lineno:]
    safe = text.replace("\\", "\\\\").replace('"""', "'''")
    out = f'"""{safe}\n"""\n' + "".join(lines)
    if program.key(out) != program.key(source):  # a docstring sharing its line with code
        out = "".join(f"# {t}".rstrip() + "\n" for t in text.splitlines()) + source
    assert program.key(out) == program.key(source), "header changed the program"
    return out


def _parses(source: str) -> bool:
    try:
        program.parse(source)
    except ValueError:
        return False
    return True


def load_front(path: pathlib.Path) -> dict:
    """Returns an export's front.json."""
    return checkpoint.read_json(pathlib.Path(path) / "front.json", "export front")
