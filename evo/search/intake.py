"""What a generation adds to a run: the children never evaluated before, then their records in the
archive and the run log, under fresh ids."""

from __future__ import annotations

from evo import program
from evo.search import archive as archive_mod
from evo.search import runlog
from operators import base


def fresh(children: list[base.Child], requests: list[base.Request], seen) -> tuple[list[base.Child], list, int]:
    """Returns the children whose source was never evaluated (first of each kept), their target heads, and
    how many requests got no child."""
    assert len(children) == len(requests), "operator returned a different number of children"
    made = [(c, r.heads) for c, r in zip(children, requests) if c.source is not None]
    kept = unique([c for c, _ in made], set(seen))
    targets = {id(c): heads for c, heads in made}
    return kept, [targets[id(c)] for c in kept], len(children) - len(made)


def unique(children: list[base.Child], seen: set[str] | None = None) -> list[base.Child]:
    """Returns the children whose normalised source is new, the first of each."""
    seen, out = set(seen or ()), []
    for child in children:
        key = program.key(child.source)
        if key not in seen:
            seen.add(key)
            out.append(child)
    return out


def add(archive: archive_mod.Archive, log_path, generation: int, children: list[base.Child], results: list,
        targets: list | None = None) -> int:
    """Puts evaluated children into the archive and appends their log lines; returns the log's size."""
    assert len(children) == len(results), "evaluator returned a different number of results"
    entries = []
    for child, res, target in zip(children, results, targets or [()] * len(children)):
        record = archive_mod.Record(
            id=new_id(archive, child.meta.get("id") if not child.parents else None), key=res.key,
            source=child.source, parents=tuple(child.parents), operator=child.operator,
            generation=generation, length=int(res.length), ok=bool(res.ok),
            error=res.error, seconds=float(res.seconds), target=tuple(target), account=child.meta.get("account"),
            behaviour=getattr(res, "behaviour", None))
        iou = res.iou if res.ok else None
        archive.add(record, iou)
        entries.append(runlog.line(record, iou))
    return runlog.append(log_path, entries)


def new_id(archive: archive_mod.Archive, wanted: str | None) -> str:
    """Returns `wanted` (a seed's name) or the next `pNNNNNN`, made unique in the archive."""
    pid = wanted or f"p{len(archive):06d}"
    base_id, n = pid, 1
    while pid in archive.by_id:
        n += 1
        pid = f"{base_id}-{n}"
    return pid
