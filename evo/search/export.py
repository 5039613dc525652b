"""Export: a run's per-head Pareto fronts as program files, front.json and best_per_head.csv.

`DIR/programs/<id>.py` holds every program on any head's front as the archive stores it:
in canonical form, with its length and account, since operators finish what they make
(operators.finish; runs made before that are brought up to date on load, evo.search.migrate).
Each file is headed by a docstring whose first line is its account of the head it fits best, then the heads it
explains, its scores and who wrote it (docstrings do not count in length or identity, so
`evo score DIR/programs/` reproduces the IoUs on the run's corpus). Each head gets three
picks (evo.search.picks): `readable` (the best program of at most `readable_nodes` AST nodes,
with its measured shares and the head's family: evo.explanation), `simplest` and `best` (the
best fit, with what each family of its terms is worth). front.json's `library` lists the run's invented
terms (evo.search.library): what each marks, where it came from, what it added on held-out rows and
the exported programs that carry its definition.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import pathlib
import sys

import numpy as np

from evo import costs, files, program, run, terms
from evo.explanation import measure as explanation_measure
from evo.errors import UserError
from evo.search import archive as archive_mod
from evo.search import checkpoint, picks

Entry = picks.Entry            # the names older callers import from here
Picks = picks.Picks
best_of, simplest_of, readable_of = picks.best_of, picks.simplest_of, picks.readable_of
SIMPLEST_MARGIN = picks.SIMPLEST_MARGIN


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
    readable_nodes: int = picks.READABLE_NODES


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
    used = sorted({pid for ids in state["fronts"] for pid in ids})
    records = {pid: arch.records[arch.by_id[pid]] for pid in used}
    sources = {pid: r.source for pid, r in records.items()}
    measured = costs.load(run_dir)  # evo replace's figures, on more text, win over the search's own
    fronts = []
    for k, ids in enumerate(state["fronts"]):
        entries = []
        for pid in ids:
            i = arch.by_id[pid]
            ppl = (measured.get((k // n_heads, k % n_heads, pid)) or {}).get("cost", arch.ppl.get((i, k)))
            entries.append(Entry(pid, round(float(arch.iou[i, k]), 6), arch.records[i].length,
                                 None if ppl is None else round(ppl, 6), arch.records[i].account or ""))
        fronts.append(sorted(entries, key=lambda e: (e.length, -e.iou)))
    meta = {"run": str(run_dir), "corpus": config.corpus, "split": config.split,
            "sentence_tokens": config.sentence_tokens,
            "attention_set": {k: v for k, v in info.items() if k != "path"}, "attention_set_path": info.get("path"),
            "programs_evaluated": state["spent"]["programs"], "generation": state["generation"],
            "library": _library(state.get("library") or [], sources, n_heads)}
    ops = config.operators
    llm = ops.get("llm_model") if ops.get("operators") in ("llm", "mixed") else None
    return Fronts(config.model, [(k // n_heads, k % n_heads) for k in range(n_layers * n_heads)],
                  fronts, sources, records, meta, llm)


def _library(library: list[dict], sources: dict[str, str], n_heads: int) -> list[dict]:
    """Returns the run's invented terms as front.json lists them: what each marks, where it came from, what it
    added on held-out rows, and the exported programs that carry it."""
    out = []
    for found in library:
        term = terms.Term.from_dict(found)
        users = sorted(pid for pid, src in sources.items() if f"def {term.name}(" in src)
        head = f"L{term.head // n_heads}.H{term.head % n_heads}" if term.head >= 0 else None
        out.append({"name": term.name, "doc": term.doc, "origin": term.origin, "head": head,
                    "heldout_gain": term.gain, "generation": term.generation, "programs": users})
    return out


def export(run_dir: pathlib.Path, out_dir: pathlib.Path, readable_nodes: int = picks.READABLE_NODES,
           sentences: int = explanation_measure.SENTENCES) -> dict:
    """Writes programs/, front.json and best_per_head.csv; returns a summary."""
    fr = dataclasses.replace(collect(run_dir), readable_nodes=readable_nodes)
    out_dir = _out_dir(pathlib.Path(out_dir))
    best, simplest, readable = ([pick(k) for k in range(len(fr.heads))] for pick in (fr.best, fr.simplest, fr.readable))
    told = explained(fr, readable, best, sentences)
    programs = out_dir / "programs"
    programs.mkdir(parents=True, exist_ok=True)
    for stale in programs.glob("*.py"):
        stale.unlink()
    for pid, source in fr.sources.items():
        files.write_text(programs / f"{pid}.py", with_header(source, header(fr, pid, told)))
    doc = {"model": fr.model, **fr.info,
           "mean_best_iou": _mean(best, "iou"), "mean_simplest_iou": _mean(simplest, "iou"),
           "mean_readable_iou": _mean(readable, "iou"), "median_readable_length": _median(readable),
           "simplest_margin": SIMPLEST_MARGIN, "readable_nodes": readable_nodes,
           "heads": [_head_doc(fr, k, best[k], simplest[k], readable[k], told[k]) for k in range(len(fr.heads))]}
    files.write_json(out_dir / "front.json", doc)
    _write_csv(out_dir / "best_per_head.csv", fr, best, simplest, readable, told)
    return {"programs": len(fr.sources), "heads": len(fr.heads), "mean_best_iou": doc["mean_best_iou"],
            "mean_simplest_iou": doc["mean_simplest_iou"], "mean_readable_iou": doc["mean_readable_iou"],
            "median_best_length": _median(best), "median_simplest_length": _median(simplest),
            "median_readable_length": doc["median_readable_length"], "readable_nodes": readable_nodes,
            "families": _count(e.family for e in told)}


def _out_dir(out_dir: pathlib.Path) -> pathlib.Path:
    """Returns `out_dir` once it is safe to write an export there; a one-line error otherwise."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory; choose another --out")
    if not out_dir.parent.exists():
        raise UserError(f"--out {out_dir}: its parent folder {out_dir.parent} does not exist")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "front.json").exists():
        raise UserError(f"{out_dir} exists and is not an earlier export; choose an empty or new --out")
    return out_dir


def explained(fr: Picks, readable: list[Entry], best: list[Entry],
              sentences: int = explanation_measure.SENTENCES) -> list[explanation_measure.Explained]:
    """Returns each head's measured explanation, on the run's own attention set."""
    path = fr.info.get("attention_set_path")
    if not path or not (pathlib.Path(path) / "meta.json").is_file():
        print(f"evo: warning: the attention set {path or '(none recorded)'} is not on this machine, so shares, "
              f"families and attributions are not measured; recapture it with `evo capture` (same model and "
              f"corpus) and export again", file=sys.stderr)
        return [explanation_measure.unmeasured(r.account) for r in readable]
    return explanation_measure.explain(path, [r.program for r in readable], [b.program for b in best],
                                       fr.sources, sentences)


def _head_doc(fr: Fronts, k: int, best: Entry, simplest: Entry, readable: Entry,
              told: explanation_measure.Explained) -> dict:
    """Returns one head's entry of front.json."""
    layer, head = fr.heads[k]
    return {"layer": layer, "head": head, "family": told.family,
            "front": [dataclasses.asdict(e) for e in fr.fronts[k]],
            "readable": {**dataclasses.asdict(readable), "account": told.account, "shares": told.shares},
            "simplest": dataclasses.asdict(simplest),
            "best": {**dataclasses.asdict(best), "iou_gain": round(best.iou - readable.iou, 6),
                     "attribution": told.attribution, "attribution_words": told.attribution_words},
            "account": headline(fr.label(k), told.family, readable, told.account)}


def headline(label: str, family: str, readable: Entry, words: str) -> str:
    """Returns a head's account line: "L5.H1 previous-token (IoU 0.82, 41 nodes): 52 % on ..."."""
    return f"{label} {family} (IoU {readable.iou:.2f}, {readable.length} nodes): {words}"


def _mean(entries: list[Entry], field: str) -> float:
    return round(float(np.mean([getattr(e, field) for e in entries])), 6)


def _median(entries: list[Entry]) -> float:
    return float(np.median([e.length for e in entries]))


def _count(names) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in names:
        out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _write_csv(path: pathlib.Path, fr: Fronts, best: list[Entry], simplest: list[Entry], readable: list[Entry],
               told: list) -> None:
    """Writes best_per_head.csv atomically: the best pick's columns, the simplest's, the readable's, the family."""
    with files.atomic(path) as f:
        writer = csv.writer(f)
        writer.writerow(["layer", "head", "program", "iou", "length",
                         "simplest_program", "simplest_iou", "simplest_length",
                         "readable_program", "readable_iou", "readable_length", "family", "account"])
        for (layer, head), b, s, r, t in zip(fr.heads, best, simplest, readable, told):
            writer.writerow([layer, head, b.program, f"{b.iou:.6f}", b.length, s.program, f"{s.iou:.6f}", s.length,
                             r.program, f"{r.iou:.6f}", r.length, t.family, t.account])


def header(fr: Fronts, pid: str, told: list | None = None) -> str:
    """Returns the docstring text for an exported program: what it explains and how well."""
    rec = fr.records[pid]
    hits = sorted(((e.iou, fr.heads[k], k, e) for k, f in enumerate(fr.fronts) for e in f if e.program == pid),
                  key=lambda h: (-h[0], h[1]))
    named = ", ".join(f"L{layer}.H{head} {iou:.3f}" for iou, (layer, head), _, _ in hits)
    top_iou, (top_layer, top_head), top_k, top = hits[0]
    first = f"L{top_layer}.H{top_head} (IoU {top_iou:.2f}): {top.account}."
    readable_for = [k for _, _, k, _ in hits if told and fr.readable(k).program == pid]
    if readable_for:
        k = readable_for[0]
        first = headline(fr.label(k), told[k].family, fr.readable(k), told[k].account) + "."
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
