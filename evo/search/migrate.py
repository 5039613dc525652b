"""The one step that brings a run made before programs were finished when made up to date.

Runs made before `operators.finish` stored each program as its operator wrote it, with
the length of that text and no account; export tidied them afterwards, so a front chosen
on one length was shown with another. `finished` rewrites such a checkpoint's archive in
memory: every program that ran gets its canonical source (which computes the same
matrices, so its scores stand), the length of that source and its account, and each head's
front and NSGA-II selection are chosen again on those lengths, as the search itself
would. Programs that became the same text keep their ids; the later ones keep a key of
their own so that the archive still holds each id once. `checkpoint.load` applies it to a
checkpoint without the `finished` mark; the next checkpoint a resumed run writes is in the
new form. This is the only place the engine reads old programs with operators/.
"""

from __future__ import annotations

import types

import numpy as np

from evo import program
from evo.search.archive import FINISHED


def needed(state: dict) -> bool:
    """Returns whether a checkpoint's archive predates programs finished when made."""
    return not (state.get("archive") or {}).get(FINISHED)


def finished(state: dict) -> dict:
    """Returns the checkpoint state with its archive finished and its fronts chosen again."""
    from operators import finish  # the canonical form and accounts of programs made before they were stored so

    causal = bool((state.get("attention_set") or {}).get("causal", True))
    archive = dict(state["archive"])
    rows, seen = [], set()
    for row in archive["records"]:
        row = dict(row)
        if row.get("ok"):
            row["source"], row["account"] = finish.finish(row["source"], row["operator"], causal)
            row["length"], row["key"] = _measured(row)
        if row["key"] in seen:
            row["key"] = f"{row['key']}#{row['id']}"
        seen.add(row["key"])
        rows.append(row)
    archive.update(records=rows, **{FINISHED: True})
    return {**state, "archive": archive, **_selected(state, archive)}


def _measured(row: dict) -> tuple[int, str]:
    """Returns the length and key of a row's source; those it was stored with when it does not parse."""
    try:
        return program.length(row["source"]), program.key(row["source"])
    except ValueError:
        return row["length"], row["key"]


def _selected(state: dict, archive_state: dict) -> dict:
    """Returns the fronts and population the engine's own selection makes on the finished archive."""
    from evo.search import archive as archive_mod
    from evo.search import heads as heads_mod

    arch = archive_mod.Archive.from_state(archive_state)
    defaults = {"pool": 48, "population": 8}
    settings = types.SimpleNamespace(**{**defaults, **(state.get("settings") or {})})
    heads = heads_mod.Heads(arch.n_heads)
    heads.select(arch, settings, with_cost=bool(arch.ppl))
    ids = lambda idx: [arch.records[i].id for i in idx]  # noqa: E731
    out = {"fronts": [ids(f) for f in heads.fronts]}
    if state.get("islands"):
        out["population"] = [ids(p) for p in heads.population(np.asarray(state["islands"], dtype=np.int64))]
    return out
