"""Which families of terms explain what a head's table misses: each family's held-out gain over the vocabulary.

    python bench/term_families.py [--model gemma-3-270m] [--every 4] [--families query_tables,nearest,...]
                                  [--json FILE]

For every `every`-th head: the head's wide fit (`scored.fit_wide`, the fixed vocabulary and the head's
invented key terms, as the search fits a table) on the search split's wide sample, scored on the validation
split; then the same fit with one family's terms added, each once for every query alike (as the library's
terms enter a fit). A family's figure is its mean gain over those heads. Terms of the grammar run in the
sandbox, as in a search; the references are numpy columns, upper bounds that are not readable terms.

    query_tables  the grammar's query table on each of its pieces, read off the head        grammar
    nearest       the nearest earlier token of each kind                                    grammar
    since         the keys since the latest token of each kind                              grammar
    same_depth    keys at the query's bracket and quote depth                               grammar
    two_steps     one step then another (previous word then its head, ...)                  grammar
    grammar       all five grammar families at once: what the library could add at most    grammar
    key_table     which key tokens the head favours, read off it                            candidate
    distances     one column per distance, 2 to 15 tokens back                              reference
    key_tokens    one column per frequent key token (the sample's 60 most frequent)         reference

A gain below the fit's own noise between heads (a few thousandths) says the family has little to add.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from evo import capture, linguistic, terms  # noqa: E402
from operators.fitting import fit, grammar, invent, library_terms, scored  # noqa: E402
from operators.shared import score_terms  # noqa: E402
from operators.shared.score_terms import Feature  # noqa: E402

GRAMMAR = ("query_tables", "nearest", "since", "same_depth", "two_steps")
FAMILIES = GRAMMAR + ("grammar", "key_table", "distances", "key_tokens")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m", help="model (default: gemma-3-270m)")
    p.add_argument("--every", type=int, default=4, help="measure every k-th head (default: 4)")
    p.add_argument("--families", default=",".join(FAMILIES), help=f"families (default: {','.join(FAMILIES)})")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        p.error(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    search, val = (capture.ensure(args.model, split=s) for s in ("search", "validation"))
    lingo = linguistic.available()
    for aset in (search, val):
        if lingo:
            linguistic.ensure(aset)
            linguistic.preload(aset.path)
    out = measure(search, val, families, args.every, lingo)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def measure(search, val, families: list[str], every: int, lingo: bool) -> dict:
    """Returns each family's mean held-out gain over the heads measured (printing each head as it goes)."""
    causal = search.causal
    train, held = fit.Sample(search.path, len(search)), fit.Sample(val.path, len(val))
    feats, queries = score_terms.features(lingo, causal), score_terms.queries(lingo)
    base_train, base_held = scored.Problem(train, feats, causal, queries), scored.Problem(held, feats, causal, queries)
    values = library_terms.Values(search.path)
    found = collections.defaultdict(list)
    started = time.time()
    for h in range(0, train.n_heads_total, every):
        target = train.targets[h]
        invented = invent.terms(train.tokens, train.lengths, target, causal)
        label = values.label(h)
        line = []
        for family in ["vocabulary"] + families:
            extra = [] if family == "vocabulary" else _family(family, train, held, target, label, values, causal)
            iou = _held_out(base_train, base_held, train, held, invented + extra, target, held.targets[h], len(feats))
            found[family].append(iou)
            line.append(f"{family} {iou:.4f}")
        print(f"{label}: " + ", ".join(line), flush=True)
    base = float(np.mean(found["vocabulary"]))
    out = {"heads": len(found["vocabulary"]), "vocabulary": round(base, 4), "seconds": round(time.time() - started),
           "gain": {f: round(float(np.mean(found[f])) - base, 4) for f in families},
           "heads_helped": {f: int(sum(a > b + 0.001 for a, b in zip(found[f], found["vocabulary"])))
                            for f in families}}
    print(f"\n{out['heads']} heads, vocabulary alone {base:.4f} held-out IoU; gain of each family:")
    for f in families:
        print(f"  {f:<13} {out['gain'][f]:+.4f}  (heads helped by 0.001 or more: {out['heads_helped'][f]})")
    return out


def _held_out(base_train, base_held, train, held, extra, target, held_target, fixed: int) -> float:
    """Returns the held-out IoU of the head's wide fit with `extra` key terms (each for every query alike)."""
    tr, te = base_train.extended(train, extra), base_held.extended(held, extra)
    result = scored.fit_wide(tr, target, 120, allowed=tr.unconditioned(list(range(fixed, len(tr.keys)))))
    if not result.terms:
        return 0.0
    index = {f.expr: i for i, f in enumerate(te.feats)}
    idx, w = [index[f.expr] for f, _ in result.terms], np.array([x for _, x in result.terms])
    return float(te.iou(te.attention(w, idx), np.where(te.valid, held_target, 0.0)))


def _family(name, train, held, target, label, values, causal) -> list[Feature]:
    """Returns a family's terms as score terms on both samples' sentences."""
    if name in ("key_table", "distances", "key_tokens"):
        return _references(name, train, target)
    if name == "grammar":
        return [f for g in GRAMMAR for f in _family(g, train, held, target, label, values, causal)]
    if name in _SAME_FOR_EVERY_HEAD:
        return _SAME_FOR_EVERY_HEAD[name]
    made: list = []
    if name == "query_tables":
        made = [grammar.query_table(train.tokens, train.lengths, target, piece, said, label, causal)
                for piece, said in grammar.PIECES.items()]
    elif name in ("nearest", "since"):
        made = [getattr(grammar, name)(kind, said) for kind, said in grammar.KINDS.items()]
    elif name == "same_depth":
        made = [grammar.same_depth()]
    elif name == "two_steps":
        made = [grammar.then(a, sa, b, sb) for a, sa in grammar.STEPS.items() for b, sb in grammar.STEPS.items()]
    sentences = [list(t) for t in train.tokens] + [list(t) for t in held.tokens]
    found = [f for f in (values.candidate(t, sentences) for t in made if t is not None) if f is not None]
    if name != "query_tables":   # the other grammar families do not read the head: run them once
        _SAME_FOR_EVERY_HEAD[name] = found
    return found


_SAME_FOR_EVERY_HEAD: dict[str, list[Feature]] = {}


def _references(name, train, target) -> list[Feature]:
    """Returns numpy columns: a key-token table read off the head, or the reference one-hot columns."""
    def column(expr, fn):
        return Feature(expr, expr, False, fn)

    if name == "distances":
        return [column(f"distance_{d}", lambda t, d=d: np.eye(len(t), k=-d)) for d in range(2, 16)]
    counts = collections.Counter(x for t in train.tokens for x in t[1:])
    if name == "key_tokens":
        return [column(f"key_is_{w!r}", lambda t, w=w: _keys(t, {w: 1.0})) for w, _ in counts.most_common(60)]
    table = _key_lifts(train, target)
    return [column("key_table", lambda t: _keys(t, table))] if table else []


def _keys(tokens: list[str], table: dict) -> np.ndarray:
    """Returns (n, n): each key's weight from the table, the same for every query."""
    col = np.array([table.get(x, 0.0) for x in tokens])
    return np.broadcast_to(col[None, :], (len(tokens), len(tokens))).copy()


def _key_lifts(train, target, size: int = 40) -> dict[str, float]:
    """Returns the key tokens (past the first) whose attention, over what an even spread would give them, is
    furthest from the median's (log ratio), read off the head's rows."""
    got = collections.defaultdict(list)
    r = 0
    for toks, n in zip(train.tokens, train.lengths):
        block = target[r:r + n, :n]
        r += n
        for i in range(1, n):
            for j in range(1, i + 1):
                got[toks[j]].append(float(block[i, j]) * (i + 1))
    lifts = {w: float(np.log(np.mean(v) + 1e-3)) for w, v in got.items() if len(v) >= 8}
    if len(lifts) < 3:
        return {}
    mid = float(np.median(list(lifts.values())))
    ranked = sorted(lifts, key=lambda w: -abs(lifts[w] - mid))[:size]
    return {w: round(lifts[w] - mid, 1) for w in ranked}


if __name__ == "__main__":
    sys.exit(main())
