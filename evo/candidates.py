"""The programs a run or an export offers per head: each head's candidates for replacement.

`load_best(path)` reads an export (front.json + programs/) or a run (its checkpoint,
through evo.search.export) into a `Best`: per head its best program, and its options in
the order the cost schedule tries them (best, simplest, then the rest of its front by IoU).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

from evo import run as run_dir
from evo.errors import UserError


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A head and one of its programs."""

    layer: int
    head: int
    program: str   # program id (file stem)
    source: str
    iou: float
    length: int = 0
    pick: str = ""  # "best", "simplest" or "front": why it is a candidate for its head

    @property
    def key(self) -> tuple[int, int]:
        return (self.layer, self.head)


@dataclasses.dataclass(frozen=True)
class Best:
    """Every head's best program, from a run or an export."""

    model: str
    n_layers: int
    n_heads: int
    candidates: list[Candidate]   # heads that have a program, in (layer, head) order
    origin: str                   # the run or export directory
    options: dict[tuple[int, int], list[Candidate]] = dataclasses.field(default_factory=dict)
    # per head: its best and simplest programs, then the rest of its front by IoU

    def require(self, heads: list[tuple[int, int]]) -> None:
        """Raises a one-line error naming the heads in `heads` that have no program here."""
        known = {c.key for c in self.candidates}
        missing = [f"{layer}.{head}" for layer, head in heads if (layer, head) not in known]
        if missing:
            raise UserError(f"no program for head(s) {', '.join(missing)} in {self.origin}")

    def choices(self, head: tuple[int, int], count: int) -> list[Candidate]:
        """Returns up to `count` distinct candidates for `head` (best first)."""
        return self.options.get(head, [c for c in self.candidates if c.key == head])[:count]


def load_best(path: str | pathlib.Path) -> Best:
    """Returns the best program per head from an export dir (front.json) or a run dir (its checkpoint)."""
    path = pathlib.Path(path)
    if (path / "front.json").is_file():
        return _from_export(path)
    if run_dir.is_run(path):
        return _from_run(path)
    raise UserError(f"{path} is neither an export (front.json + programs/) nor a run directory (config.json)")


def _from_export(path: pathlib.Path) -> Best:
    """Returns the best programs of an export directory."""
    try:
        doc = json.loads((path / "front.json").read_text(encoding="utf-8"))
        heads = doc["heads"]
        model = doc["model"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path / 'front.json'} is not a readable export front ({err})") from err
    candidates, options = [], {}
    for h in heads:
        if not h.get("front"):
            continue
        layer, head = int(h["layer"]), int(h["head"])
        best = max(h["front"], key=lambda e: (e["iou"], -e["length"]))
        simplest = h.get("simplest") or best
        ordered = [(best, "best"), (simplest, "simplest")] + [
            (e, "front") for e in sorted(h["front"], key=lambda e: (-e["iou"], e["length"]))]
        seen, mine = set(), []
        for e, pick in ordered:
            if e["program"] in seen:
                continue
            seen.add(e["program"])
            file = path / "programs" / f"{e['program']}.py"
            if not file.is_file():
                raise UserError(f"{file} is missing: front.json names program {e['program']} for head "
                                f"{layer}.{head}")
            mine.append(Candidate(layer, head, e["program"], file.read_text(encoding="utf-8"), float(e["iou"]),
                                  int(e.get("length", 0)), pick))
        candidates.append(mine[0])
        options[(layer, head)] = mine
    n_layers = max(int(h["layer"]) for h in heads) + 1
    n_heads = max(int(h["head"]) for h in heads) + 1
    return Best(model, n_layers, n_heads, candidates, str(path), options)


def _from_run(path: pathlib.Path) -> Best:
    """Returns the best programs of a run, read from its checkpoint through evo.export."""
    from evo.search import export

    fronts = export.collect(path)
    candidates, options = [], {}
    for k, (layer, head) in enumerate(fronts.heads):
        if not fronts.fronts[k]:
            continue
        ordered = [(fronts.best(k), "best"), (fronts.simplest(k), "simplest")] + [
            (e, "front") for e in sorted(fronts.fronts[k], key=lambda e: (-e.iou, e.length))]
        seen, mine = set(), []
        for e, pick in ordered:
            if e.program not in seen:
                seen.add(e.program)
                mine.append(Candidate(layer, head, e.program, fronts.sources[e.program], e.iou, e.length, pick))
        candidates.append(mine[0])
        options[(layer, head)] = mine
    n_layers = max(layer for layer, _ in fronts.heads) + 1
    n_heads = max(head for _, head in fronts.heads) + 1
    return Best(fronts.model, n_layers, n_heads, candidates, str(path), options)


def parse_heads(text: str) -> list[tuple[int, int]]:
    """Returns [(layer, head), ...] from "3.1,5.0"."""
    heads = []
    for part in text.split(","):
        layer, dot, head = part.strip().partition(".")
        if not (dot and layer.isdigit() and head.isdigit()):
            raise UserError(f"--heads takes LAYER.HEAD pairs separated by commas (e.g. 3.1,5.0), got {part!r}")
        heads.append((int(layer), int(head)))
    if len(set(heads)) != len(heads):
        raise UserError(f"--heads names a head twice: {text}")
    return heads
