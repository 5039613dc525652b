"""What a run or an export holds, read one way: per head its front, its two picks, their accounts.

`load(SOURCE)` takes a run directory (config.json + checkpoint.json) or an export
(front.json + programs/), so `evo explain` and `evo report` never care which they got.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import sys

from evo import run, runlock
from evo.explanation import measure
from evo.search import export, picks
from evo.errors import UserError


@dataclasses.dataclass(frozen=True)
class Results(picks.Picks):
    """A run's or an export's fronts, with what is needed to look at them."""

    source: pathlib.Path
    kind: str                 # "run" or "export"
    model: str
    causal: bool
    heads: list[tuple[int, int]]
    fronts: list[list[picks.Entry]]
    sources: dict[str, str]   # program id -> source text
    info: dict                # corpus, split, budget spent, attention-set summary
    aset_path: pathlib.Path | None
    readable_nodes: int = picks.READABLE_NODES
    explained: list | None = None   # per head an evo.explanation.measure.Explained (None: not measured yet)

    def told(self, k: int):
        """Returns head k's measured explanation."""
        assert self.explained is not None, "results.load measures explanations"
        return self.explained[k]

    def index(self, label: str) -> int:
        """Returns the index of the head named `L.H` (also `L5.H1`); a one-line error when there is none."""
        match = re.fullmatch(r"L?(\d+)\.H?(\d+)", label.strip())
        if not match:
            raise UserError(f"head {label!r} is not of the form L.H (e.g. 5.1 or L5.H1)")
        want = (int(match.group(1)), int(match.group(2)))
        if want not in self.heads:
            layers, per = max(h[0] for h in self.heads) + 1, max(h[1] for h in self.heads) + 1
            raise UserError(f"no head {want[0]}.{want[1]} in {self.model} ({layers} layers x {per} heads)")
        return self.heads.index(want)


def load(path, readable_nodes: int | None = None, sentences: int = measure.SENTENCES) -> Results:
    """Returns the results in a run directory or an export, each head's explanation measured (or read
    from the export when it was measured there with the same `readable_nodes`); a one-line error for
    anything else."""
    path = pathlib.Path(path)
    if (path / "front.json").is_file():
        res = _from_export(path)
        stored = res.info.get("readable_nodes")
        if stored is not None and readable_nodes in (None, stored):
            told = _stored_explanations(path, res)
            if told is not None:
                return dataclasses.replace(res, readable_nodes=int(stored), explained=told)
        return _measured(res, readable_nodes, sentences)
    if run.is_run(path):
        live = runlock.note(path)
        if live:
            print(f"evo: {live}", file=sys.stderr)
        return _measured(_from_run(path), readable_nodes, sentences)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    raise UserError(f"{path} is neither a run directory (config.json) nor an export (front.json + programs/)")


def _measured(res: Results, readable_nodes: int | None, sentences: int) -> Results:
    """Returns the results with the readable limit set and each head's explanation measured on its text."""
    res = dataclasses.replace(res, readable_nodes=readable_nodes or picks.READABLE_NODES)
    n = range(len(res.heads))
    told = export.explained(res, [res.readable(k) for k in n], [res.best(k) for k in n], sentences)
    return dataclasses.replace(res, explained=told)


def _stored_explanations(path: pathlib.Path, res: Results) -> list | None:
    """Returns the explanations an export stored in front.json, or None when it has none (an older export)."""
    heads = export.load_front(path)["heads"]
    if not all("family" in h and "shares" in h.get("readable", {}) for h in heads):
        return None
    try:
        return [measure.Explained(str(h["family"]), dict(h["readable"]["shares"]), str(h["readable"]["account"]),
                                  dict(h["best"].get("attribution") or {}), str(h["best"].get("attribution_words", "")))
                for h in heads]
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path / 'front.json'} has a malformed explanation ({type(err).__name__}: {err})") from None


def _from_run(path: pathlib.Path) -> Results:
    fr = export.collect(path)
    info = dict(fr.info)
    aset = info.get("attention_set_path")
    return Results(path, "run", fr.model, bool(info["attention_set"].get("causal", True)), fr.heads, fr.fronts,
                   fr.sources, info, pathlib.Path(aset) if aset else None)


def _from_export(path: pathlib.Path) -> Results:
    doc = export.load_front(path)
    try:
        causal = bool((doc.get("attention_set") or {}).get("causal", True))
        heads, fronts, sources = [], [], {}
        for h in doc["heads"]:
            heads.append((int(h["layer"]), int(h["head"])))
            entries = []
            for e in h["front"]:
                pid = str(e["program"])
                if pid not in sources:
                    sources[pid] = _program(path, pid)
                words = e.get("account") or _first_line(sources[pid])
                entries.append(export.Entry(pid, float(e["iou"]), int(e["length"]),
                                            None if e.get("ppl_increase") is None else float(e["ppl_increase"]),
                                            words))
            if not entries:
                raise UserError(f"{path / 'front.json'}: head {heads[-1][0]}.{heads[-1][1]} has an empty front")
            fronts.append(sorted(entries, key=lambda x: (x.length, -x.iou)))
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path / 'front.json'} is not a valid export front ({type(err).__name__}: {err})") from None
    if not heads:
        raise UserError(f"{path / 'front.json'} lists no heads")
    aset = doc.get("attention_set_path")
    info = {k: v for k, v in doc.items() if k not in ("heads",)}
    return Results(path, "export", str(doc.get("model")), causal, heads, fronts, sources, info,
                   pathlib.Path(aset) if aset else None)


def _program(path: pathlib.Path, pid: str) -> str:
    file = path / "programs" / f"{pid}.py"
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{file} is missing or unreadable ({err.__class__.__name__}); front.json names it") from None


def _first_line(source: str) -> str:
    """Returns an old export's program account: the first line of its docstring (export writes it there)."""
    import ast

    try:
        doc = ast.get_docstring(ast.parse(source))
    except (SyntaxError, ValueError):
        return ""
    line = doc.strip().splitlines()[0] if doc and doc.strip() else ""
    return line.split("): ", 1)[-1].rstrip(".")  # "L5.H1 family (IoU 0.82, 41 nodes): 52 % on ..." -> its account
