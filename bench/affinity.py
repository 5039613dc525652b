"""What a head's affinity between tokens read alone (evo.affinity) adds: its table and its short program,
fitted without the term, with it, and with it at each pair's distance apart, scored on text no fit saw.

    python bench/affinity.py [--model gemma-3-270m] [--every 1] [--json FILE]

For every `every`-th head, the search's own edits make two children from one parent (the
previous-token seed), once with the run's vocabulary as it was, once with the head's affinity in it
(the tokens alone) and, for a rotary model, once with its affinity at distance instead (what a new run
weighs): `fit_wide` (the head's table, as a search's first request makes it) and `fit_sparse` (the best
program of at most four terms within 60 AST nodes: the readable end of a front). Each child runs in
the sandbox on the validation split and is scored against its head. Printed: each layer's mean
held-out IoU of both, without the term, with it and at distance, and how many short programs chose the
term (at distance, where measured); then
the means over every head measured. A layer whose heads gain much reads content (which token is
which); one that gains little reads position and structure.
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

from evo import affinity, capture, evaluate, files, linguistic  # noqa: E402
from operators import base  # noqa: E402
from operators.edits import symbolic  # noqa: E402

PARENT = "def attention(tokens):\n    return previous_token(tokens)\n"
EDITS = ("fit_wide", "fit_sparse")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m", help="model (default: gemma-3-270m)")
    p.add_argument("--every", type=int, default=1, help="measure every k-th head (default: 1, all)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    search, val = (capture.ensure(args.model, split=s) for s in ("search", "validation"))
    lingo = linguistic.available()
    for aset in (search, val):
        affinity.ensure(aset)
        if lingo:
            linguistic.ensure(aset)
    rows = [measure(search, val, k, lingo) for k in range(0, search.n_layers * search.n_heads, args.every)]
    print(table(rows, search.n_heads))
    if args.json:
        files.write_text(pathlib.Path(args.json), json.dumps({"model": args.model, "heads": rows}, indent=1) + "\n")
    return 0


def measure(search, val, k: int, lingo: bool) -> dict:
    """Returns one head's held-out IoU of each edit's child, without and with its affinity."""
    request = base.Request("mutate", (base.Parent("seed", PARENT, np.zeros(search.n_layers * search.n_heads), 5),),
                           (k,), 1)
    row, start = {"head": k}, time.perf_counter()
    far = affinity.file_for(search, True).is_file()   # a rotary model: its affinities at distance are kept
    variants = (("without", False, False), ("with", True, False)) + ((("distance", True, True),) if far else ())
    for edit in EDITS:
        for label, on, at_distance in variants:
            settings = symbolic.Settings(mutate_weights={e: float(e == edit) for e in symbolic.MUTATE_WEIGHTS},
                                         crossover_weights={e: 0.0 for e in symbolic.CROSSOVER_WEIGHTS},
                                         linguistic=lingo, affinity=on, at_distance=at_distance)
            child = symbolic.SymbolicOperator(settings, aset_path=search.path).vary([request])[0]
            scored = evaluate.evaluate([child.source], val.path)[0] if child.source else None
            row[f"{edit}_{label}"] = round(float(scored.iou[k]), 4) if scored and scored.ok else 0.0
            if on:
                row[f"{edit}_uses"] = affinity.uses(child.source or "")
    print(f"head {k}: " + ", ".join(f"{key} {v}" for key, v in row.items() if key != "head")
          + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    return row


def table(rows: list[dict], n_heads: int) -> str:
    """Returns the per-layer means and the overall means as a Markdown table."""
    by_layer = collections.defaultdict(list)
    for r in rows:
        by_layer[r["head"] // n_heads].append(r)
    labels = ("without", "with", "distance") if all("fit_wide_distance" in r for r in rows) else ("without", "with")
    cols = [f"{e}_{label}" for e in EDITS for label in labels]
    said = {"without": "without", "with": "with", "distance": "at distance"}
    out = ["| layer | heads | " + " | ".join(f"{kind} {said[label]}" for kind in ("table", "short") for label in labels)
           + " | short programs using it |", "|---" * (3 + 2 * len(labels)) + "|"]
    for layer, group in sorted(by_layer.items()) + [("all", rows)]:
        means = [f"{np.mean([r[c] for r in group]):.4f}" for c in cols]
        used = sum(r["fit_sparse_uses"] for r in group)
        out.append(f"| {layer} | {len(group)} | " + " | ".join(means) + f" | {used} / {len(group)} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
