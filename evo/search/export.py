"""Export: a run's per-head Pareto fronts as program files, front.json and best_per_head.csv.

`DIR/programs/<id>.py` holds every program on any head's front in canonical form
(operators.shared.canonical.tidy, which never changes what a program computes), headed by a
docstring whose first line is its account of the head it fits best, then the heads it
explains, its scores and who wrote it (docstrings do not count in length or identity, so
`evo score DIR/programs/` reproduces the IoUs on the run's corpus). Each head gets two
picks: `best` (highest IoU) and `simplest` (the shortest on its front within
`SIMPLEST_MARGIN` of the best).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import pathlib

import numpy as np

from evo import costs, files, program, run
from evo.errors import UserError
from evo.search import archive as archive_mod
from evo.search import checkpoint
from operators.shared import account, canonical

SIMPLEST_MARGIN = 0.01  # the simplest pick may give up this much IoU against the best


@dataclasses.dataclass(frozen=True)
class Entry:
    """One program on one head's front."""

    program: str
    iou: float
    length: int
    ppl_increase: float | None
    account: str = ""  # what the program does, in words (operators.shared.account)


class Picks:
    """Per-head picks over `self.heads` and `self.fronts` (shared by export and evo.results)."""

    def best(self, k: int) -> Entry:
        """Returns head k's highest-IoU front entry (the shortest among ties)."""
        return best_of(self.fronts[k])

    def simplest(self, k: int) -> Entry:
        """Returns head k's shortest front entry within SIMPLEST_MARGIN of the best IoU."""
        return simplest_of(self.fronts[k])

    def label(self, k: int) -> str:
        """Returns head k's name, `L.H`."""
        layer, head = self.heads[k]
        return f"L{layer}.H{head}"


@dataclasses.dataclass(frozen=True)
class Fronts(Picks):
    """A run's fronts: per head (layer, head), entries shortest first; sources by program id."""

    model: str
    heads: list[tuple[int, int]]
    fronts: list[list[Entry]]
    sources: dict[str, str]
    records: dict[str, archive_mod.Record]
    info: dict  # corpus, split, run, budget spent
    llm_model: str | None = None  # the chat model the run's LLM operators used, if any



def best_of(front: list[Entry]) -> Entry:
    """Returns the highest-IoU entry (the shortest among ties)."""
    return max(front, key=lambda e: (e.iou, -e.length))


def simplest_of(front: list[Entry]) -> Entry:
    """Returns the shortest entry within SIMPLEST_MARGIN of the best IoU (the better among ties)."""
    floor = best_of(front).iou - SIMPLEST_MARGIN - 1e-9
    return min((e for e in front if e.iou >= floor), key=lambda e: (e.length, -e.iou))


def collect(run_dir: pathlib.Path) -> Fronts:
    """Returns the fronts stored in a run's checkpoint."""
    run_dir = pathlib.Path(run_dir)
    config, state = run.load_config(run_dir), checkpoint.load(run_dir)
    try:
        arch = archive_mod.Archive.from_state(state["archive"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"checkpoint in {run_dir} is corrupt (archive: {type(err).__name__}: {err})") from None
    info = config.attention_set
    n_layers, n_heads = int(info["n_layers"]), int(info["n_heads"])
    if len(state["fronts"]) != n_layers * n_heads:
        raise UserError(f"checkpoint in {run_dir} has {len(state['fronts'])} fronts for "
                        f"{n_layers * n_heads} heads")
    causal = bool(info.get("causal", True))
    used = sorted({pid for ids in state["fronts"] for pid in ids})
    records = {pid: arch.records[arch.by_id[pid]] for pid in used}
    sources = {pid: canonical.tidy(r.source, causal) if r.ok else r.source for pid, r in records.items()}
    words = {pid: account.of_program(src, records[pid].operator, causal) for pid, src in sources.items()}
    measured = costs.load(run_dir)  # evo replace's figures, on more text, win over the search's own
    fronts = []
    for k, ids in enumerate(state["fronts"]):
        entries = []
        for pid in ids:
            i = arch.by_id[pid]
            ppl = (measured.get((k // n_heads, k % n_heads, pid)) or {}).get("cost", arch.ppl.get((i, k)))
            entries.append(Entry(pid, round(float(arch.iou[i, k]), 6), _length(sources[pid], arch.records[i].length),
                                 None if ppl is None else round(ppl, 6), words[pid]))
        fronts.append(sorted(entries, key=lambda e: (e.length, -e.iou)))
    meta = {"run": str(run_dir), "corpus": config.corpus, "split": config.split,
            "sentence_tokens": config.sentence_tokens,
            "attention_set": {k: v for k, v in info.items() if k != "path"}, "attention_set_path": info.get("path"),
            "programs_evaluated": state["spent"]["programs"], "generation": state["generation"]}
    ops = config.operators
    llm = ops.get("llm_model") if ops.get("operators") in ("llm", "mixed") else None
    return Fronts(config.model, [(k // n_heads, k % n_heads) for k in range(n_layers * n_heads)],
                  fronts, sources, records, meta, llm)


def _length(source: str, stored: int) -> int:
    """Returns the canonical source's length (the stored one when it does not parse)."""
    try:
        return program.length(source)
    except ValueError:
        return stored


def export(run_dir: pathlib.Path, out_dir: pathlib.Path) -> dict:
    """Writes programs/, front.json and best_per_head.csv; returns a summary."""
    fr = collect(run_dir)
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory; choose another --out")
    if not out_dir.parent.exists():
        raise UserError(f"--out {out_dir}: its parent folder {out_dir.parent} does not exist")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "front.json").exists():
        raise UserError(f"{out_dir} exists and is not an earlier export; choose an empty or new --out")
    programs = out_dir / "programs"
    programs.mkdir(parents=True, exist_ok=True)
    for stale in programs.glob("*.py"):
        stale.unlink()
    for pid, source in fr.sources.items():
        files.write_text(programs / f"{pid}.py", with_header(source, header(fr, pid)))
    best = [fr.best(k) for k in range(len(fr.heads))]
    simplest = [fr.simplest(k) for k in range(len(fr.heads))]
    doc = {"model": fr.model, **fr.info,
           "mean_best_iou": round(float(np.mean([b.iou for b in best])), 6),
           "mean_simplest_iou": round(float(np.mean([s.iou for s in simplest])), 6),
           "simplest_margin": SIMPLEST_MARGIN,
           "heads": [{"layer": layer, "head": head, "front": [dataclasses.asdict(e) for e in f],
                      "best": dataclasses.asdict(b), "simplest": dataclasses.asdict(s),
                      "account": account.headline(fr.label(k), s.iou, s.account)}
                     for k, ((layer, head), f, b, s) in enumerate(zip(fr.heads, fr.fronts, best, simplest))]}
    files.write_json(out_dir / "front.json", doc)
    _write_csv(out_dir / "best_per_head.csv", fr, best, simplest)
    return {"programs": len(fr.sources), "heads": len(fr.heads), "mean_best_iou": doc["mean_best_iou"],
            "mean_simplest_iou": doc["mean_simplest_iou"],
            "median_best_length": float(np.median([b.length for b in best])),
            "median_simplest_length": float(np.median([s.length for s in simplest]))}


def _write_csv(path: pathlib.Path, fr: Fronts, best: list[Entry], simplest: list[Entry]) -> None:
    """Writes best_per_head.csv atomically: the best pick's columns first, then the simplest pick's."""
    with files.atomic(path) as f:
        writer = csv.writer(f)
        writer.writerow(["layer", "head", "program", "iou", "length",
                         "simplest_program", "simplest_iou", "simplest_length", "account"])
        for (layer, head), b, s in zip(fr.heads, best, simplest):
            writer.writerow([layer, head, b.program, f"{b.iou:.6f}", b.length,
                             s.program, f"{s.iou:.6f}", s.length, s.account])


def header(fr: Fronts, pid: str) -> str:
    """Returns the docstring text for an exported program: what it explains and how well."""
    rec = fr.records[pid]
    hits = sorted(((e.iou, fr.heads[k], e) for k, f in enumerate(fr.fronts) for e in f if e.program == pid),
                  key=lambda h: (-h[0], h[1]))
    named = ", ".join(f"L{layer}.H{head} {iou:.3f}" for iou, (layer, head), _ in hits)
    top_iou, (top_layer, top_head), top = hits[0]
    first = account.headline(f"L{top_layer}.H{top_head}", top_iou, top.account) + "."
    corpus = fr.info["attention_set"].get("corpus") or {}
    corpus = corpus.get("source") if isinstance(corpus, dict) else corpus
    corpus = corpus or fr.info.get("corpus") or f"builtin:{fr.info.get('split')}"
    lines = [first, "",
             f"On the Pareto front of {len(hits)} head(s) of {fr.model} (IoU): {named}.",
             f"Length {top.length} AST nodes. Scored on {corpus}, {fr.info['attention_set'].get('sentences')} sentences.",
             _authorship(fr, rec)]
    return "\n".join(lines)


def _authorship(fr: Fronts, rec: archive_mod.Record) -> str:
    """Returns who wrote the program, and from what."""
    origin = f" in generation {rec.generation}" + (f" from {', '.join(rec.parents)}." if rec.parents else ".")
    if rec.operator.startswith("llm"):
        model = fr.llm_model or "an LLM"
        return f"Written by the LLM {model} ({rec.operator}){origin} The account is the LLM's own."
    if rec.operator == "seed" or not rec.parents:
        return f"A starting program ({rec.operator}){origin} The account is its author's."
    return f"Made by the offline operator {rec.operator}{origin} The account is built from its terms."


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


def load_front(path: pathlib.Path) -> dict:
    """Returns an export's front.json."""
    return files.read_json(pathlib.Path(path) / "front.json", "export front")
