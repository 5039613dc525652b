"""What a head's context adds: its table fitted with its own affinity at distance (each token read alone) and
with its affinity in context (each token read beside 1, 2, ... tokens before it), scored on text no fit saw.

    python bench/context.py [--model gemma-3-270m] [--contexts 1,2,3] [--heads layers|all] [--json FILE]

For each head (`layers`: one a layer past the first, head = layer mod heads; `all`: every head), the wide
fit a search's table makes (`scored.fit_wide`: the fixed vocabulary, per query class where the linguistic
extra is installed, plus the head's own term) is fitted on the search split's 220 fit sentences and scored
on the validation split. Printed: each head's held-out IoU and terms with each term, then the means.
Contexts past evo.affinity.context.MAX are read off the model (the search never offers them).
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from evo import affinity, capture, files, linguistic  # noqa: E402
from operators.edits import symbolic  # noqa: E402
from operators.fitting import fit, scored, scored_problem  # noqa: E402
from operators.shared import score_terms  # noqa: E402



def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m", help="model (default: gemma-3-270m)")
    p.add_argument("--contexts", default="1,2,3", help="tokens of context to measure (default: 1,2,3)")
    p.add_argument("--heads", choices=("layers", "all"), default="layers", help="which heads (default: layers)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    contexts = [int(c) for c in args.contexts.split(",")]
    search, val = (capture.ensure(args.model, split=s) for s in ("search", "validation"))
    lingo = linguistic.available()
    for aset in (search, val):
        affinity.ensure(aset)
        affinity.preload(aset.path)
        if lingo:
            linguistic.ensure(aset)
    fitted = Split(search, lingo, symbolic.Settings().wide_sentences)
    held = Split(val, lingo, len(val.tokens))
    far = affinity.at_distance_kept(search.path)
    heads = (range(search.n_layers * search.n_heads) if args.heads == "all"
             else [layer * search.n_heads + layer % search.n_heads for layer in range(1, search.n_layers)])
    rows = []
    for k in heads:
        layer, head = divmod(k, search.n_heads)
        start = time.perf_counter()
        alone = (score_terms.affinity_at_distance if far else score_terms.affinity)(args.model, layer, head)
        row = {"head": f"{layer}.{head}", "alone": measure(fitted, held, k, alone)}
        for c in contexts:
            row[str(c)] = measure(fitted, held, k, score_terms.affinity_in_context(args.model, layer, head, c))
        rows.append(row)
        print(row, f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(table(rows, ["alone"] + [str(c) for c in contexts]))
    if args.json:
        files.write_text(pathlib.Path(args.json), json.dumps({"model": args.model, "heads": rows}, indent=1) + "\n")
    return 0


class Split:
    """A split's fit sample and the fixed vocabulary's terms on it."""

    def __init__(self, aset, lingo: bool, sentences: int):
        self.sample = fit.Sample(aset.path, sentences)
        self.problem = scored_problem.problem(fit.Fitter(aset.path, 32), lingo, aset.causal, self.sample)


def measure(fitted: Split, held: Split, k: int, own) -> list:
    """Returns [held-out IoU, terms] of head k's wide fit with its own term `own`."""
    problem = fitted.problem.extended(fitted.sample, [own])
    result = scored.fit_wide(problem, fitted.sample.targets[k], symbolic.Settings().wide_terms)
    there = held.problem.extended(held.sample, [own])
    index = there.by_expr
    idx = [index[ast.dump(ast.parse(f.expr, mode="eval").body)] for f, _ in result.terms]
    p = there.attention(np.array([w for _, w in result.terms]), idx)
    return [round(there.iou(p, held.sample.targets[k]), 4), len(result.terms)]


def table(rows: list[dict], keys: list[str]) -> str:
    said = {"alone": "each token alone"}
    out = ["| the head's own term | held-out IoU | terms in the table |", "|---|---|---|"]
    for key in keys:
        out.append(f"| {said.get(key, f'in context, {key} before')} | {np.mean([r[key][0] for r in rows]):.4f} | "
                   f"{np.mean([r[key][1] for r in rows]):.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
